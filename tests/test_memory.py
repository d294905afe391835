"""odtlab.memory public API: the report, its table and plots, the timeline, FLOPs, errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import odtlab  # noqa: E402
import odtlab as odt
from odtlab import memory, models  # noqa: E402
from odtlab.memory import MemoryArgumentError, format_bytes, profile_training  # noqa: E402


@pytest.fixture
def cnn() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    return models.build("cnn"), models.example_batch("cnn", 4, resolution=16)


def test_report_contract(cnn: tuple) -> None:
    model, batch = cnn
    report = profile_training(model, batch, None, "adam")
    assert set(report.totals) == {"weights", "gradients", "optimizer", "activations", "peak"}
    assert all(type(v) is int for v in report.totals.values())
    params = sum(p.numel() * 4 for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert report.totals["weights"] == params + buffers
    assert report.totals["gradients"] == params
    assert report.totals["optimizer"] == 2 * params + 4 * len(list(model.parameters()))
    assert report.totals["activations"] == memory.saved_activation_bytes(model, batch)
    assert report.accounting == "pytorch" and report.method == "measured"
    assert report.optimizer == "Adam"
    # per-layer records add up to the totals
    assert sum(r.param_bytes for r in report.layers) == report.totals["weights"]
    assert sum(r.grad_bytes for r in report.layers) == report.totals["gradients"]
    assert sum(r.optimizer_bytes for r in report.layers) == report.totals["optimizer"]
    assert sum(r.activation_bytes for r in report.layers) == report.totals["activations"]
    assert report.layer("features.block1.conv").type == "Conv2d"


def test_report_table_records_dataframe(cnn: tuple) -> None:
    report = profile_training(*cnn)
    text = str(report)
    for word in ("features.block1.conv", "peak", "inference", "activations", "FLOPs"):
        assert word in text
    records = report.to_records()
    assert len(records) == len(report.layers)
    assert set(records[0]) == {
        "name", "type", "trainable", "param_bytes", "grad_bytes", "optimizer_bytes",
        "activation_bytes",
    }  # fmt: skip
    df = report.to_dataframe()
    assert list(df["name"]) == [r.name for r in report.layers]
    assert int(df["activation_bytes"].sum()) == report.totals["activations"]


def test_plots(cnn: tuple) -> None:
    model, batch = cnn
    cmp = memory.compare_accountings(model, batch, trainable=["classifier"])
    ax = cmp.pytorch.plot_breakdown(compare=[cmp.engine], labels=["pytorch", "engine"])
    assert len(ax.patches) == 2 * 4  # two stacked bars of four categories
    ax = cmp.plot()
    ax = cmp.pytorch.plot_timeline()
    assert ax.get_ylabel() == "live memory (MiB)"
    plt.close("all")


def test_timeline_phases_and_categories(cnn: tuple) -> None:
    report = profile_training(*cnn, optimizer="momentum", flops=False)
    events = report.timeline.events
    phases = [e.phase for e in events]
    assert phases[0] == "start" and phases[-1] == "optimizer"
    assert phases.index("backward") > phases.index("loss") > phases.index("forward")
    assert report.timeline.peak == max(e.total for e in events) == report.totals["peak"]
    forward = [e for e in events if e.phase == "forward"]
    backward = [e for e in events if e.phase == "backward"]
    # activations pile up during forward, and are all freed by the end of backward
    acts = [e.live["activations"] for e in forward]
    assert acts == sorted(acts)
    assert backward[-1].live["activations"] == 0
    # gradients appear during backward and never shrink; weights stay resident
    grads = [e.live["gradients"] for e in backward]
    assert grads == sorted(grads) and grads[-1] == report.totals["gradients"]
    assert {e.live["weights"] for e in events} == {report.totals["weights"]}
    # steady state: the optimizer state of earlier steps is resident all along
    assert events[-1].live["optimizer"] == report.totals["optimizer"] > 0
    assert all(e.live["optimizer"] == report.totals["optimizer"] for e in forward + backward)
    records = report.timeline.to_records()
    assert records[0]["total"] == events[0].total


def test_engine_vs_pytorch_on_mobilenet() -> None:
    model = models.build("mobilenetv2", width_mult=0.35, num_classes=10, device="meta")
    batch = models.example_batch("mobilenetv2", 8, resolution=64, num_classes=10, device="meta")
    cmp = memory.compare_accountings(model, batch, method="analytic")
    assert cmp.engine.totals["activations"] * 4 < cmp.pytorch.totals["activations"]
    assert cmp.engine.totals["weights"] == cmp.pytorch.totals["weights"]  # all trained: fp32
    assert cmp.savings()["activations"] > 4
    head = memory.compare_accountings(model, batch, trainable=["classifier"], method="analytic")
    assert head.engine.totals["weights"] < head.pytorch.totals["weights"] / 3  # int8 backbone
    assert "pytorch/engine" in str(head) and len(head.to_records()) == 5


def test_model_is_left_unchanged() -> None:
    model = models.build("mobilenetv2", width_mult=0.35, num_classes=10)  # has dropout
    batch = models.example_batch("mobilenetv2", 2, resolution=32, num_classes=10)
    model.features.requires_grad_(False)
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    runs = [
        (None, "adam", True),
        (["features.18"], "sgd", False),
        (lambda n, p: "bn" in n, "momentum", False),
    ]
    for trainable, optimizer, flops in runs:
        profile_training(model, batch, optimizer=optimizer, trainable=trainable, flops=flops)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(not m.training for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())


def test_trainable_specs(cnn: tuple) -> None:
    model, batch = cnn
    by_prefix = profile_training(model, batch, trainable="classifier", flops=False)
    by_list = profile_training(model, batch, trainable=["classifier.weight", "classifier.bias"])
    by_fn = profile_training(model, batch, trainable=lambda n, p: n.startswith("classifier"))
    assert by_prefix.totals == by_list.totals == by_fn.totals
    assert by_prefix.totals["gradients"] == sum(
        p.numel() * 4 for p in model.classifier.parameters()
    )
    # "features.block1" selects block1 only, not a hypothetical "features.block10"
    block1 = profile_training(model, batch, trainable=["features.block1"], flops=False)
    assert [r.name for r in block1.layers if r.trainable] == [
        "features.block1.conv", "features.block1.bn"
    ]  # fmt: skip


def test_flops() -> None:
    # Linear(100, 10) on 8 examples: forward 2*8*100*10; backward: weight grad only
    f = memory.training_flops(nn.Linear(100, 10), (torch.zeros(8, 100), torch.zeros(8).long()))
    assert (f["forward"], f["backward"], f["total"]) == (16000, 16000, 32000)
    # a depthwise conv: each gradient costs its forward (torch 2.13 overcounts it 8x here)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 1, bias=False), nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2, bias=False),
    )  # fmt: skip
    batch = (torch.zeros(2, 3, 5, 5), torch.zeros(2).long())
    pw, dw, fc = 2 * 2 * 25 * 8 * 3, 2 * 2 * 25 * 8 * 9, 2 * 2 * 8 * 2
    f = memory.training_flops(net, batch)
    assert f["forward"] == pw + dw + fc
    assert f["backward"] == pw + 2 * dw + 2 * fc  # the first conv needs no input gradient
    head = memory.training_flops(net, batch, trainable=["4"])
    assert head["backward"] == fc  # frozen prefix: no backward at all
    meta_model = models.build("cnn", device="meta")
    meta = memory.training_flops(meta_model, models.example_batch("cnn", device="meta"))
    assert meta["forward"] == memory.training_flops(
        models.build("cnn"), models.example_batch("cnn")
    )["forward"]  # fmt: skip
    assert "features.block1.conv" in meta["per_module"]


@pytest.mark.parametrize("name", ["mobilenetv2", "mcunet", "transformer"])
def test_flops_counted_on_the_cpu_equal_those_counted_on_meta(name: str) -> None:
    kw = {"seq_len": 16} if name == "transformer" else {}
    real = memory.training_flops(models.build(name, seed=0, **kw), models.example_batch(name, 4, **kw))
    meta = memory.training_flops(
        models.build(name, device="meta", **kw), models.example_batch(name, 4, device="meta", **kw)
    )
    assert real == meta and real["total"] > 0


def test_counting_flops_on_the_cpu_leaves_model_and_random_state_alone() -> None:
    net = models.build("mobilenetv2", num_classes=10, width_mult=0.35, seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    memory.training_flops(net, models.example_batch("mobilenetv2", 4, resolution=32, num_classes=10))
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("bad", ["adagrad", "SGD", 3])
def test_unknown_optimizer(cnn: tuple, bad: object) -> None:
    with pytest.raises(MemoryArgumentError, match="optimizer must be one of 'sgd', 'momentum'"):
        profile_training(*cnn, optimizer=bad)
    with pytest.raises(ValueError):  # also a ValueError ...
        memory.measure_optimizer_state(cnn[0], bad)
    with pytest.raises(odtlab.OdtlabError):  # ... and an OdtlabError
        memory.measure_optimizer_state(cnn[0], bad)


def test_optimizer_callable_must_return_an_optimizer(cnn: tuple) -> None:
    with pytest.raises(MemoryArgumentError, match="torch.optim.Optimizer"):
        profile_training(*cnn, optimizer=lambda params: None)


@pytest.mark.parametrize(
    "trainable, pattern",
    [
        (["clasifier"], "trainable='clasifier' matches no parameter"),
        ("features.block9", "trainable='features.block9' matches no parameter"),
        ([], "selects no parameter"),
        (lambda n, p: False, "selects no parameter"),
        ([3], "trainable must be None"),
    ],
)
def test_bad_trainable(cnn: tuple, trainable: object, pattern: str) -> None:
    with pytest.raises(MemoryArgumentError, match=pattern):
        profile_training(*cnn, trainable=trainable)


def test_nothing_requires_grad(cnn: tuple) -> None:
    model, batch = cnn
    model.requires_grad_(False)
    with pytest.raises(MemoryArgumentError, match="selects no parameter"):
        profile_training(model, batch)


def test_wrong_batch(cnn: tuple) -> None:
    model, (x, y) = cnn
    with pytest.raises(MemoryArgumentError, match=r"example_batch does not fit the model.*\(4, 3"):
        profile_training(model, (torch.zeros(4, 3, 16, 16), y))  # 3 channels, model wants 1
    with pytest.raises(MemoryArgumentError, match="example_batch must be a pair"):
        profile_training(model, x)
    with pytest.raises(MemoryArgumentError, match="example_batch must hold two tensors"):
        profile_training(model, (x, [0, 1]))
    with pytest.raises(MemoryArgumentError, match="does not fit"):
        memory.training_flops(model, (torch.zeros(4, 3, 16, 16), y))


def test_bad_choices(cnn: tuple) -> None:
    with pytest.raises(MemoryArgumentError, match="accounting must be one of 'pytorch', 'engine'"):
        profile_training(*cnn, accounting="tinyengine")
    with pytest.raises(MemoryArgumentError, match="method must be one of 'measured', 'analytic'"):
        profile_training(*cnn, method="guess")
    with pytest.raises(MemoryArgumentError, match="loss_fn must be None"):
        profile_training(*cnn, loss_fn="mse")
    with pytest.raises(MemoryArgumentError, match="torch.nn.Module"):
        profile_training("cnn", cnn[1])


class Exp(nn.Module):
    """A leaf layer type the analytic model does not know."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x) * self.scale


def test_unknown_layer_names_the_type_and_the_way_out() -> None:
    model = nn.Sequential(nn.Linear(4, 3), Exp())
    batch = (torch.zeros(2, 4), torch.zeros(2).long())
    with pytest.raises(memory.AnalyticUnsupported, match=r"'exp'.*measured.*a Exp"):
        memory.analytic_saved_tensors(model, batch)
    with pytest.raises(NotImplementedError):
        memory.analytic_report(model, batch)
    # the measured path works: exp keeps its output, mul keeps exp's output and scale's operand
    assert memory.profile_training(model, batch).totals["activations"] > 0


def test_custom_loss_and_sequence_targets() -> None:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10))
    tokens = torch.randint(0, 10, (2, 5))
    report = profile_training(model, (tokens, tokens), flops=False)  # (B, T, C) logits
    analytic = memory.analytic_report(model, (tokens, tokens), flops=False)
    assert report.totals == analytic.totals
    mse = profile_training(
        nn.Linear(3, 2), (torch.zeros(4, 3), torch.zeros(4, 2)), loss_fn=nn.functional.mse_loss
    )
    # Linear keeps its input (48 B); mse keeps its input and target (32 + 32 B)
    assert mse.totals["activations"] == 48 + 32 + 32


def test_format_bytes() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(5 * 2**20) == "5.00 MiB"
    assert format_bytes(3 * 2**30) == "3.00 GiB"
    assert format_bytes is odt.devices.format_bytes
    assert format_bytes(-2048) == "-2.0 KiB"


def test_public_api() -> None:
    for name in memory.__all__:
        assert hasattr(memory, name), name


def test_steady_state_peak_carries_the_optimizer_state(cnn: tuple) -> None:
    # After the first step the optimizer state persists through forward and
    # backward, so Adam's peak is at least SGD's peak plus Adam's whole state.
    sgd = profile_training(*cnn, optimizer="sgd", flops=False)
    adam = profile_training(*cnn, optimizer="adam", flops=False)
    assert adam.totals["optimizer"] > 0
    assert adam.totals["peak"] >= sgd.totals["peak"] + adam.totals["optimizer"]
