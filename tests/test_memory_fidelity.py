"""odtlab.memory on every zoo model: analytic == measured, timeline ~ torch.profiler."""

from __future__ import annotations

import pytest
import torch

from odtlab import memory, models
from odtlab.memory import analytic_saved_tensors, measure_saved_tensors

# Small sizes so the whole suite stays fast; every zoo name is covered (new ones with defaults).
SMALL: dict[str, tuple[dict, dict]] = {
    # name: (builder kwargs, example_batch kwargs besides the builder's)
    "mlp": ({}, {}),
    "cnn": ({}, {"resolution": 16}),
    "mobilenetv2": ({"width_mult": 0.35, "num_classes": 10}, {"resolution": 32}),
    "mcunet": ({}, {"resolution": 32}),
    "proxylessnas-mobile": ({"num_classes": 10}, {"resolution": 32}),
    "transformer": ({"seq_len": 16}, {}),
}
ZOO = models.available()
TOLERANCE = 0.10  # timeline peak vs torch.profiler


def zoo_case(name: str, device: str = "cpu", batch_size: int = 2) -> tuple:
    build_kw, batch_kw = SMALL.get(name, ({}, {}))
    model = models.build(name, device=device, **build_kw)
    batch = models.example_batch(name, batch_size, device=device, **batch_kw, **build_kw)
    return model, batch


def test_every_zoo_model_is_covered() -> None:
    assert set(ZOO) <= set(SMALL) | set(ZOO)  # new names run with their defaults
    assert {"mlp", "cnn", "mobilenetv2", "mcunet", "transformer"} <= set(ZOO)


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("trainable", [None, ["classifier"]], ids=["full", "head-only"])
@pytest.mark.parametrize("name", ZOO)
def test_analytic_equals_measured(name: str, trainable: list | None, device: str) -> None:
    model, batch = zoo_case(name, device)
    measured = measure_saved_tensors(model, batch, trainable=trainable)
    predicted = analytic_saved_tensors(model, batch, trainable=trainable)
    assert predicted.total_bytes == measured.total_bytes  # exact, to the byte
    assert predicted.by_module() == measured.by_module()  # and layer by layer


@pytest.mark.parametrize("name", ZOO)
def test_frozen_backbone_saves_almost_nothing(name: str) -> None:
    model, batch = zoo_case(name, "meta")
    full = measure_saved_tensors(model, batch).total_bytes
    head = measure_saved_tensors(model, batch, trainable=["classifier"])
    # only the classifier's input and the loss are kept
    assert set(head.by_module()) == {"classifier", "loss"}
    x_head = model.classifier.in_features * 2 * 4  # (B=2, in_features) floats
    loss = 2 * model.classifier.out_features * 4 + 2 * 8 + 4
    assert head.total_bytes == x_head + loss
    assert head.total_bytes < full / 3


def test_measured_is_the_same_on_cpu_and_meta() -> None:
    for name in ZOO:
        cpu = measure_saved_tensors(*zoo_case(name, "cpu")).total_bytes
        meta = measure_saved_tensors(*zoo_case(name, "meta")).total_bytes
        assert cpu == meta, name


@pytest.mark.parametrize(
    "optimizer, trainable",
    [("sgd", None), ("adam", None), ("sgd", ["classifier"])],
    ids=["sgd-full", "adam-full", "sgd-head"],
)
@pytest.mark.parametrize("name", ZOO)
def test_timeline_peak_matches_profiler(name: str, optimizer: str, trainable: list | None) -> None:
    model, batch = zoo_case(name)
    report = memory.profile_training(model, batch, None, optimizer, trainable, flops=False)
    real = memory.profiled_training_peak(model, batch, None, optimizer, trainable)
    assert abs(report.totals["peak"] - real) <= TOLERANCE * real, (report.totals["peak"], real)


@pytest.mark.parametrize("name", ZOO)
def test_inference_peak_matches_profiler(name: str) -> None:
    model, batch = zoo_case(name)
    report = memory.profile_training(model, batch, flops=False)
    real = memory.profiled_inference_peak(model, batch[0])
    assert abs(report.inference_peak - real) <= TOLERANCE * real, (report.inference_peak, real)
    assert report.ratio > 1


@pytest.mark.parametrize("name", ZOO)
def test_optimizer_state_on_zoo(name: str) -> None:
    model, _ = zoo_case(name, "meta")
    params = list(model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    assert memory.measure_optimizer_state(model, "sgd").total_bytes == 0
    assert memory.measure_optimizer_state(model, "momentum").total_bytes == param_bytes
    adam = memory.measure_optimizer_state(model, "adam")
    assert adam.total_bytes == 2 * param_bytes + 4 * len(params)  # + one 4-byte step each
    head = memory.measure_optimizer_state(model, "momentum", ["classifier"])
    assert head.total_bytes == sum(p.numel() * 4 for p in model.classifier.parameters())


@pytest.mark.parametrize("name", ZOO)
def test_analytic_report_equals_measured_report(name: str) -> None:
    model, batch = zoo_case(name)
    measured = memory.profile_training(model, batch, optimizer="momentum", flops=False)
    analytic = memory.analytic_report(model, batch, optimizer="momentum", flops=False)
    assert analytic.totals == measured.totals
    assert analytic.inference_peak == measured.inference_peak
    for acc in ("engine",):
        a = memory.profile_training(model, batch, accounting=acc, method="analytic", flops=False)
        m = memory.profile_training(model, batch, accounting=acc, flops=False)
        assert a.totals == m.totals


def test_meta_mobilenetv2_224_batch8_runs() -> None:
    model = models.build("mobilenetv2", device="meta")
    batch = models.example_batch("mobilenetv2", 8, device="meta")
    report = memory.analytic_report(model, batch)
    assert all(isinstance(v, int) for v in report.totals.values())
    assert report.totals["weights"] == 3_504_872 * 4 + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    assert report.totals["activations"] > 100 * 2**20  # hundreds of MiB at batch 8
    assert report.totals["peak"] >= report.totals["activations"]
    assert report.flops["backward"] > report.flops["forward"] > 0
    engine = memory.analytic_report(model, batch, accounting="engine", flops=False)
    assert engine.totals["activations"] < report.totals["activations"] / 4


def test_profiler_refuses_meta_models() -> None:
    model, batch = zoo_case("mlp", "meta")
    with pytest.raises(memory.MemoryArgumentError, match="cpu"):
        memory.profiled_training_peak(model, batch)


def test_profiler_leaves_the_model_alone() -> None:
    model, batch = zoo_case("cnn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    memory.profiled_training_peak(model, batch, optimizer="adam")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
