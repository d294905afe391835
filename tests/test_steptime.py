"""Step-time prediction: the host profile, the per-operator roofline and its calibration.

The roofline and energy numbers of one Linear layer are worked out by hand in
the comments; the measured ones are only checked for sign and shape, since
they depend on the machine.
"""

from __future__ import annotations

import pytest
import torch

import odtlab as odt
from odtlab import devices
from odtlab.train import OpCost, fit_efficiency, predict_step_time, step_costs

# A toy device: 1e9 MAC/s (2e9 FLOP/s) fp32, 1e8 B/s, 1 pJ/MAC, 10 pJ/byte, idle 0.1 W.
TOY = devices.DeviceProfile(
    name="toy", kind="sbc", sram_bytes=2**20, dram_bytes=2**30, flash_bytes=2**30,
    training_memory_bytes=2**29, macs_per_second={"fp32": 1e9, "fp16": 1e9, "int8": 1e9},
    memory_bandwidth_bytes_per_s=1e8, energy_per_mac_j={"fp32": 1e-12, "fp16": 1e-12, "int8": 1e-12},
    energy_per_byte_j=10e-12, idle_power_w=0.1, active_power_w=1.0, thermal_resistance_k_per_w=10,
    thermal_capacitance_j_per_k=10, throttle_temp_c=80, throttle_factor=0.5, uplink_bytes_per_s=1e6,
)  # fmt: skip

# Linear(256, 128) on a batch of 32: the forward is one addmm(bias, x, W^T)
# FLOPs = 2 * 32 * 256 * 128 = 2,097,152
# bytes = 4 * (128 bias + 32*256 x + 256*128 W + 32*128 out) = 4 * 45,184 = 180,736
FLOPS, BYTES = 2_097_152.0, 180_736.0


def _layer_step():
    torch.manual_seed(0)
    return torch.nn.Linear(256, 128), (torch.randn(32, 256), torch.randn(32, 128))


def test_forward_product_of_a_linear_layer_by_hand():
    layer, batch = _layer_step()
    costs = step_costs(layer, batch, loss="mse")
    forward = [c for c in costs if c.op == "addmm"]
    assert forward == [OpCost("addmm", FLOPS, BYTES)]
    # backward: grad of W is one mm of the same size (x was not trainable: no grad of x)
    assert sorted(c.flops for c in costs if c.op == "mm") == [FLOPS]
    assert all(c.bytes == 0 for c in costs if c.op in ("t", "view", "detach"))  # views move nothing


def test_roofline_time_of_the_layer_by_hand():
    op = [OpCost("addmm", FLOPS, BYTES)]
    # compute 2,097,152 / 2e9 = 1.048576 ms; memory 180,736 / 1e8 = 1.80736 ms: memory-bound
    assert predict_step_time(op, TOY) == pytest.approx(1.80736e-3, rel=1e-12)
    # at half the roofline's speed, plus 10 us of overhead
    assert predict_step_time(op, TOY, overhead_s=1e-5, efficiency=0.5) == pytest.approx(3.62472e-3)
    # twice the bandwidth: 0.90368 ms of memory, now compute-bound at 1.048576 ms
    fast = TOY.to_dict() | {"memory_bandwidth_bytes_per_s": 2e8}
    assert predict_step_time(op, devices.DeviceProfile.from_dict(fast)) == pytest.approx(
        1.048576e-3
    )


def test_per_op_roofline_is_never_faster_than_the_whole_step_roofline():
    ops = [OpCost("mm", 2e9, 0.0), OpCost("add_", 0.0, 1e8)]  # 1 s compute-bound, 1 s memory-bound
    assert predict_step_time(ops, TOY) == pytest.approx(2.0)  # no overlap between operators
    assert predict_step_time(ops, TOY, per_op=False) == pytest.approx(1.0)  # perfect overlap


def test_energy_of_the_layer_by_hand():
    job = devices.Workload(flops_per_step=FLOPS, bytes_moved_per_step=BYTES, peak_bytes=0, steps=1)
    result = devices.simulate(job, TOY, thermal=False)
    # 1,048,576 MACs * 1 pJ + 180,736 B * 10 pJ + 0.1 W * 1.80736 ms
    assert result.total_energy_j == pytest.approx(1.048576e-6 + 1.80736e-6 + 1.80736e-4)


def test_fit_efficiency_inverts_the_prediction_and_refuses_overhead_only_steps():
    ops = [OpCost("addmm", FLOPS, BYTES)] * 3
    measured = predict_step_time(ops, TOY, overhead_s=2e-5, efficiency=0.3)
    assert fit_efficiency(ops, measured, TOY, overhead_s=2e-5) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="overheads"):
        fit_efficiency(ops, 1e-5, TOY, overhead_s=2e-5)
    with pytest.raises(ValueError, match="efficiency"):
        predict_step_time(ops, TOY, efficiency=1.5)
    with pytest.raises(ValueError, match="overhead_s"):
        predict_step_time(ops, TOY, overhead_s=-1.0)


def test_measure_host_is_a_valid_profile_of_this_machine():
    host = devices.measure_host(0.2)
    assert host.kind == "sbc" and host.throttle_factor == 1.0
    assert host.macs_per_second["fp32"] > 1e7 and host.memory_bandwidth_bytes_per_s > 1e7
    assert host.sources[0].startswith("measured: fp32 torch.mm")
    assert host.energy_per_byte_j == devices.HOST_ENERGY_PER_BYTE_J
    with pytest.raises(ValueError, match="seconds"):
        devices.measure_matmul_flops(0)


def test_predicted_vs_measured_fits_on_one_model_and_predicts_the_others():
    cases = [("mlp", {}), ("cnn", {"resolution": 16})]
    fast = TOY.to_dict() | {
        "macs_per_second": {d: 1e15 for d in devices.DTYPES},
        "memory_bandwidth_bytes_per_s": 1e15,
    }  # roofline far below the stopwatch
    rows = odt.train.predicted_vs_measured(cases, device=devices.DeviceProfile.from_dict(fast), overhead_s=1e-6, calibrate_on="cnn",
                                           batch_size=4, seconds=0.05)  # fmt: skip
    assert [r["model"] for r in rows] == ["mlp", "cnn"]
    assert rows[1]["error %"] == pytest.approx(0.0, abs=1e-6)  # fitted on itself
    assert all(r["measured"] > 0 and r["per-op roofline"] >= r["whole-step roofline"] for r in rows)
    assert all(r["roofline error %"] < 0 and 0 < r["efficiency"] < 1 for r in rows)
    with pytest.raises(ValueError, match="calibrate_on"):
        odt.train.predicted_vs_measured(cases, device=TOY, calibrate_on="resnet")
    assert odt.train.measure_op_overhead(0.05) > 0


def test_the_roofline_plot_draws_one_roof_per_device_and_marks_the_points(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ax = odt.viz.plot_roofline([TOY, devices.get("phone-mid")], {"layer": (FLOPS / 2 / BYTES, 1e8)})
    roofs = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert len(roofs) == 2
    x, y = roofs[0].get_xdata(), roofs[0].get_ydata()
    # below the ridge (10 MACs/byte) the roof is intensity x 1e8 B/s; above it 1e9 MAC/s
    assert y[0] == pytest.approx(x[0] * 1e8) and y[-1] == pytest.approx(1e9)
    ax.figure.savefig(tmp_path / "roofline.png")
    assert (tmp_path / "roofline.png").stat().st_size > 0
