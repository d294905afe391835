"""Energy by memory level: MACs x energy per MAC + bytes x energy per byte of their level."""

from __future__ import annotations

import math

import pytest

import odtlab as odt
from odtlab import devices


def _round_device() -> devices.DeviceProfile:
    """An MCU with round figures, so that expected joules can be worked out by hand."""
    d = devices.get("mcu").to_dict()
    d.update(
        name="round-mcu",
        energy_per_mac_j={"fp32": 1e-12, "fp16": 1e-12, "int8": 1e-12},  # 1 pJ per MAC
        energy_per_byte_j=10e-12,  # 10 pJ per byte with no level
        energy_per_byte_by_level_j={"sram": 1e-12, "flash": 100e-12},  # 1 and 100 pJ per byte
    )
    return devices.DeviceProfile.from_dict(d)


# One layer: Linear(100, 100) in fp32, batch 10, only its 100-entry bias trains (SGD).
WEIGHT_BYTES = 100 * 100 * 4  # 40,000 bytes, frozen
BIAS_BYTES = 100 * 4  # 400 bytes, trainable
SAVED_INPUT_BYTES = 10 * 100 * 4  # 4,000 bytes of activations kept for backward
FLOPS = 400_000  # 200,000 MACs, a round number for the step


def _one_layer_moved() -> dict[str, int]:
    return devices.bytes_moved_by_category(
        WEIGHT_BYTES + BIAS_BYTES, SAVED_INPUT_BYTES, trainable_param_bytes=BIAS_BYTES
    )


def test_one_layer_by_hand():
    moved = _one_layer_moved()
    # frozen weights read in forward and backward; bias read twice + read and written by
    # the update; its gradient written and read; saved input written and read
    assert moved == {
        "frozen_weights": 2 * 40_000,
        "trainable_weights": 4 * 400,
        "gradients": 2 * 400,
        "optimizer": 0,
        "activations": 2 * 4_000,
        "input": 0,
    }
    total = sum(moved.values())
    assert total == 90_400 == devices.estimate_bytes_moved(40_400, 4_000, trainable_param_bytes=400)

    mcu = _round_device()
    split = devices.bytes_by_level(moved, mcu)
    assert split == {"sram": 10_400.0, "flash": 80_000.0}  # frozen weights stay in flash
    step = devices.Workload(
        flops_per_step=FLOPS, bytes_moved_per_step=total, peak_bytes=0, bytes_by_level=split
    )
    parts = devices.energy_by_level(step, mcu)
    by_hand = {
        "mac": 200_000 * 1e-12,  # 0.2 µJ
        "sram": 10_400 * 1e-12,  # 10.4 nJ
        "dram": 0.0,
        "flash": 80_000 * 100e-12,  # 8 µJ
        "unplaced": 0.0,
    }
    assert list(parts) == list(devices.ENERGY_PARTS)
    for key, joules in by_hand.items():
        assert parts[key] == pytest.approx(joules, rel=1e-12, abs=1e-30), key
    assert sum(parts.values()) == pytest.approx(8.2104e-6, rel=1e-12)


def test_levels_add_up_to_the_simulated_dynamic_energy():
    mcu = _round_device()
    moved = _one_layer_moved()
    # place only part of the bytes: the rest costs energy_per_byte_j
    split = {"sram": 400.0, "flash": 80_000.0}
    step = devices.Workload(
        flops_per_step=FLOPS, bytes_moved_per_step=sum(moved.values()), peak_bytes=0,
        bytes_by_level=split,
    )  # fmt: skip
    parts = devices.energy_by_level(step, mcu)
    assert parts["unplaced"] == pytest.approx(10_000 * 10e-12)
    dynamic = sum(parts.values())
    assert devices.dynamic_energy_j(step, mcu) == pytest.approx(dynamic, rel=1e-15)
    result = devices.simulate(step, mcu, thermal=False, check_memory=False)
    expected = dynamic + mcu.idle_power_w * result.step_time_s[0]
    assert result.step_energy_j[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["stm32f746", "phone-mid"])
def test_levels_sum_to_total_on_presets(name):
    moved = _one_layer_moved()
    device = devices.get(name)
    step = devices.Workload(
        flops_per_step=FLOPS, bytes_moved_per_step=sum(moved.values()), peak_bytes=0,
        bytes_by_level=devices.bytes_by_level(moved, device),
    )  # fmt: skip
    parts = devices.energy_by_level(step, device)
    assert parts["unplaced"] == 0.0
    sim = devices.simulate(step, device, thermal=False, check_memory=False)
    idle = device.idle_power_w * sim.step_time_s[0]
    assert sim.step_energy_j[0] - idle == pytest.approx(sum(parts.values()), rel=1e-12)


def test_flash_costs_more_than_sram_on_the_mcu_preset():
    mcu = devices.get("mcu")
    assert "dram" not in mcu.energy_per_byte_by_level_j  # an MCU has no DRAM
    assert mcu.energy_per_byte_at("flash") > mcu.energy_per_byte_at("sram")
    same = 10_000.0
    sram = devices.Workload(
        flops_per_step=0, bytes_moved_per_step=same, peak_bytes=0, bytes_by_level={"sram": same}
    )
    flash = devices.Workload(
        flops_per_step=0, bytes_moved_per_step=same, peak_bytes=0, bytes_by_level={"flash": same}
    )
    assert devices.energy_by_level(flash, mcu)["flash"] > devices.energy_by_level(sram, mcu)["sram"]
    # the stated placement: frozen weights in flash on the MCU, everything in DRAM on a phone
    assert devices.placement(mcu)["frozen_weights"] == "flash"
    assert devices.placement(mcu)["activations"] == "sram"
    assert set(devices.placement("phone").values()) == {"dram"}


def test_every_preset_prices_its_levels_and_cites_horowitz():
    for name, p in devices.presets().items():
        levels = p.energy_per_byte_by_level_j
        assert set(levels) <= set(devices.LEVELS)
        assert ("dram" in levels) == (p.dram_bytes > 0), name
        assert levels["sram"] < levels["flash"], name
        if "dram" in levels:
            # DRAM keeps the figure energy_per_byte_j always had: all-DRAM == no split
            assert levels["dram"] == p.energy_per_byte_j
        assert any(s.startswith("horowitz2014energy") for s in p.sources), name


@pytest.mark.parametrize("name", sorted(devices.presets()))
def test_without_a_split_nothing_changes(name):
    device = devices.get(name)
    step = devices.Workload(
        flops_per_step=2e6, bytes_moved_per_step=3e5, peak_bytes=0, steps=3, dtype="int8"
    )
    old = 1e6 * device.energy_per_mac_j["int8"] + 3e5 * device.energy_per_byte_j
    assert devices.dynamic_energy_j(step, device) == old  # exactly, not approximately
    parts = devices.energy_by_level(step, device)
    assert parts["sram"] == parts["dram"] == parts["flash"] == 0.0
    assert sum(parts.values()) == old
    sim = devices.simulate(step, device, thermal=False, check_memory=False)
    assert (sim.step_energy_j == old + device.idle_power_w * sim.step_time_s).all()


def test_a_split_at_the_default_level_gives_the_same_energy():
    phone, mcu = devices.get("phone-mid"), devices.get("mcu")
    for device, level in ((phone, "dram"), (mcu, "sram")):
        plain = devices.Workload(flops_per_step=2e6, bytes_moved_per_step=3e5, peak_bytes=0)
        split = devices.Workload(
            flops_per_step=2e6, bytes_moved_per_step=3e5, peak_bytes=0, bytes_by_level={level: 3e5}
        )
        assert devices.dynamic_energy_j(split, device) == pytest.approx(
            devices.dynamic_energy_j(plain, device), rel=1e-15
        )


def test_profile_yaml_round_trip_keeps_the_levels():
    mcu = devices.get("mcu")
    back = devices.DeviceProfile.from_yaml(mcu.to_yaml())
    assert back.energy_per_byte_by_level_j == mcu.energy_per_byte_by_level_j
    # a profile written before levels existed still loads, with no levels
    d = mcu.to_dict()
    del d["energy_per_byte_by_level_j"]
    assert devices.DeviceProfile.from_dict(d).energy_per_byte_by_level_j == {}


# ------------------------------------------------------------------ bad inputs
def _with_levels(levels: object, **changes: object) -> devices.DeviceProfile:
    d = devices.get("mcu").to_dict()
    d.update(name="bad", energy_per_byte_by_level_j=levels, **changes)
    return devices.DeviceProfile.from_dict(d)


@pytest.mark.parametrize(
    "levels, words",
    [
        ({"l2": 1e-12}, "unknown memory level"),
        ({"sram": -1e-12}, "'sram'"),
        ({"sram": math.nan}, "'sram'"),
        ({"flash": math.inf}, "'flash'"),
        ({"sram": 0.0}, "> 0"),
        ({"sram": "cheap"}, "'sram'"),
        ({"dram": 30e-12}, "dram_bytes=0"),  # an MCU has no DRAM
        ([1e-12], "must map"),
    ],
)
def test_bad_level_energies_are_refused_with_the_allowed_levels(levels, words):
    with pytest.raises(devices.MemoryLevelError) as info:
        _with_levels(levels)
    message = str(info.value)
    assert words in message
    assert "'sram'" in message or "dram_bytes" in message
    assert isinstance(info.value, odt.OdtlabError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "split, words",
    [
        ({"hbm": 10}, "'sram', 'dram', 'flash'"),
        ({"sram": -1}, ">= 0"),
        ({"sram": math.nan}, ">= 0"),
        ({"sram": 600, "flash": 600}, "more than bytes_moved_per_step"),
    ],
)
def test_bad_workload_splits_are_refused(split, words):
    with pytest.raises(devices.MemoryLevelError, match="bytes_by_level") as info:
        devices.Workload(
            flops_per_step=2, bytes_moved_per_step=1000, peak_bytes=0, bytes_by_level=split
        )
    assert words in str(info.value)


def test_a_level_the_device_lacks_is_named_with_the_levels_it_has():
    step = devices.Workload(
        flops_per_step=2, bytes_moved_per_step=1000, peak_bytes=0, bytes_by_level={"dram": 1000}
    )
    with pytest.raises(devices.MemoryLevelError, match=r"'dram'.*\['sram', 'flash'\]"):
        devices.energy_by_level(step, "mcu")
    with pytest.raises(devices.MemoryLevelError, match="'sram', 'dram', 'flash'"):
        devices.get("mcu").energy_per_byte_at("l3")
    with pytest.raises(devices.MemoryLevelError, match="frozen_weights"):
        devices.bytes_by_level({"weights": 10}, "mcu")
    with pytest.raises(devices.MemoryLevelError, match=">= 0"):
        devices.bytes_by_level({"activations": -1}, "mcu")
    with pytest.raises(ValueError, match="exceeds param_bytes"):
        devices.bytes_moved_by_category(10, 0, trainable_param_bytes=20)


def test_a_daily_job_keeps_the_split():
    mcu = devices.get("mcu")
    plain = devices.Workload(flops_per_step=2e6, bytes_moved_per_step=3e5, peak_bytes=0)
    split = devices.Workload(
        flops_per_step=2e6, bytes_moved_per_step=3e5, peak_bytes=0, bytes_by_level={"flash": 3e5}
    )
    job = devices.DailyJob.from_workload(split, mcu, steps_per_day=10)
    assert job.step_dynamic_j == pytest.approx(devices.dynamic_energy_j(split, mcu), rel=1e-9)
    assert job.step_dynamic_j > devices.DailyJob.from_workload(plain, mcu, 10).step_dynamic_j
