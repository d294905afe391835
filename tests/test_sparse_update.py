"""Sparse update (Lin et al., NeurIPS 2022): SparseConv2d's gradients and saved bytes, the recipe part."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from odtlab import data, memory, models
from odtlab.errors import InvalidRecipe
from odtlab.recipes import SGD, BiasOnly, Full, Recipe, paper_scheme_100kb
from odtlab.recipes.layers.fold import fold_batchnorm
from odtlab.recipes.layers.sparse_conv import SparseConv2d, channels_to_update
from odtlab.recipes.trainable.sparse_update import (
    SparseUpdate,
    describe_scheme,
    sparse_layers,
)
from odtlab.train import profile

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- SparseConv2d: the same gradients as nn.Conv2d -------------------------------------------

CONVS = {  # (in, out, kernel, stride, padding, groups)
    "pointwise": (12, 6, 1, 1, 0, 1),
    "3x3 stride 2": (8, 5, 3, 2, 1, 1),
    "depthwise 5x5": (6, 6, 5, 1, 2, 6),
}


@pytest.mark.parametrize(
    "conv_name, ratio",
    [
        ("pointwise", 0.25),
        ("pointwise", 0.3),  # ceil(0.3 * 12) = 4 channels
        ("pointwise", 1.0),
        ("3x3 stride 2", 0.5),
        ("3x3 stride 2", 0.0),
        ("depthwise 5x5", 1.0),
        ("depthwise 5x5", 0.0),
    ],
)
def test_gradients_equal_those_of_nn_conv2d(conv_name: str, ratio: float) -> None:
    cin, cout, k, stride, pad, groups = CONVS[conv_name]
    torch.manual_seed(0)
    dense = nn.Conv2d(cin, cout, k, stride, pad, groups=groups).double()
    sparse = SparseConv2d.from_conv(dense, ratio)
    x = torch.randn(3, cin, 9, 9, dtype=torch.float64, generator=_gen(1), requires_grad=True)
    g = torch.randn_like(dense(x))
    torch.testing.assert_close(sparse(x), dense(x), rtol=0, atol=1e-12)
    gx, gw, gb = torch.autograd.grad(dense(x), [x, dense.weight, dense.bias], g)
    wanted = [x, sparse.bias] + ([sparse.weight_train] if sparse.channels_trained else [])
    got = torch.autograd.grad(sparse(x), wanted, g)
    kept = channels_to_update(cin // groups, ratio, groups)
    assert (
        sparse.channels_trained
        == kept
        == {0.25: 3, 0.3: 4, 0.5: 4, 1.0: cin // groups}.get(ratio, 0)
    )
    torch.testing.assert_close(got[0], gx, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[1], gb, rtol=1e-10, atol=1e-12)
    if kept:
        torch.testing.assert_close(got[2], gw[:, :kept], rtol=1e-10, atol=1e-12)


def test_gradcheck_in_float64() -> None:
    conv = SparseConv2d(6, 4, 3, stride=2, padding=1, update_ratio=0.5).double()
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64, generator=_gen(2), requires_grad=True)

    def f(x: torch.Tensor, w_train: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(conv, {"weight_train": w_train, "bias": bias}, (x,))

    weight_train = conv.weight_train.detach().clone().requires_grad_()
    bias = conv.bias.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(f, (x, weight_train, bias))


def test_only_the_slice_has_gradient_and_optimizer_state() -> None:
    conv = SparseConv2d(16, 8, 1, update_ratio=0.125)
    x = torch.randn(4, 16, 5, 5, generator=_gen(3), requires_grad=True)
    optimizer = torch.optim.Adam([p for p in conv.parameters() if p.requires_grad])
    conv(x).square().mean().backward()
    optimizer.step()
    assert conv.weight_frozen.grad is None and not conv.weight_frozen.requires_grad
    assert conv.weight_train.grad.shape == (8, 2, 1, 1)  # 2 of 16 input channels
    state = optimizer.state[conv.weight_train]
    assert state["exp_avg"].numel() == 8 * 2  # k/C = 1/8 of the 128 weights


def test_state_dict_is_that_of_nn_conv2d_both_ways() -> None:
    dense = nn.Conv2d(8, 4, 3, padding=1)
    sparse = SparseConv2d(8, 4, 3, padding=1, update_ratio=0.25)
    sparse.load_state_dict(dense.state_dict())
    assert set(sparse.state_dict()) == {"weight", "bias"}
    torch.testing.assert_close(sparse.weight, dense.weight, rtol=0, atol=0)
    other = nn.Conv2d(8, 4, 3, padding=1)
    other.load_state_dict(sparse.state_dict())
    torch.testing.assert_close(other.weight, dense.weight, rtol=0, atol=0)
    sparse.weight = torch.zeros(4, 8, 3, 3)  # assigning splits
    assert sparse.weight_train.abs().sum() == 0 and sparse.weight_frozen.abs().sum() == 0
    assert sparse.to_conv2d().weight.shape == (4, 8, 3, 3)


# ---- what it saves for backward, measured ------------------------------------------------------


def _probe(conv: nn.Module) -> nn.Sequential:
    """A frozen-weight 1x1 conv whose bias trains (so its output requires grad), then ``conv``."""
    first = SparseConv2d(3, 16, 1, update_ratio=0.0)
    return nn.Sequential(first, conv)


def _saved_by_probe(conv: nn.Module, train_weight: bool) -> int:
    net = _probe(conv)
    for name, p in net.named_parameters():
        p.requires_grad_(name.endswith("bias") or (train_weight and name.startswith("1.weight")))
    batch = (torch.randn(2, 3, 8, 8, generator=_gen(4)), torch.zeros(2))
    saved = memory.measure_saved_tensors(net, batch, lambda out, y: out.sum())
    return saved.by_module().get("1", 0)


def test_saved_bytes_are_the_trained_share_of_the_input() -> None:
    # the probed conv's input: 2 x 16 x 8 x 8 float32 = 8192 bytes
    assert _saved_by_probe(nn.Conv2d(16, 8, 3, padding=1), train_weight=True) == 8192
    sparse = _saved_by_probe(SparseConv2d(16, 8, 3, padding=1, update_ratio=0.25), True)
    assert sparse == 2048  # ceil(0.25 * 16) = 4 channels: 4/16 of 8192
    odd = _saved_by_probe(SparseConv2d(16, 8, 3, padding=1, update_ratio=0.3), True)
    assert odd == 2560  # ceil(0.3 * 16) = 5 channels: 5/16 of 8192
    whole = _saved_by_probe(SparseConv2d(16, 8, 3, padding=1, update_ratio=1.0), True)
    assert whole == 8192  # x itself, no copy


def test_a_frozen_weight_on_the_gradient_path_saves_nothing() -> None:
    # bias trains, weight frozen: nn.Conv2d still keeps its whole input, SparseConv2d nothing
    assert _saved_by_probe(nn.Conv2d(16, 8, 3, padding=1), train_weight=False) == 8192
    assert _saved_by_probe(SparseConv2d(16, 8, 3, padding=1, update_ratio=0.0), False) == 0
    depthwise = SparseConv2d(16, 16, 3, padding=1, groups=16, update_ratio=0.0)
    assert _saved_by_probe(depthwise, False) == 0


SCHEME = SparseUpdate(bias_layers=6, weights={24: 0.5, 27: 1.0, 29: 0.25})


def _mcunet_batch(n: int = 4, resolution: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 3, resolution, resolution, generator=_gen(5)), torch.arange(n) % 10


@pytest.mark.parametrize("accounting", ["pytorch", "engine"])
def test_analytic_memory_equals_measured_for_a_whole_recipe(accounting: str) -> None:
    model, (x, y) = models.mcunet(), _mcunet_batch()
    measured = profile(model, (x, y), Recipe(SCHEME), accounting=accounting)
    net = Recipe(SCHEME).prepare(copy.deepcopy(model))
    meta_net, meta_batch = copy.deepcopy(net).to("meta"), (x.to("meta"), y.to("meta"))
    analytic = memory.analytic_report(meta_net, meta_batch, accounting=accounting)
    assert analytic.totals == measured.totals  # the engine counts the batch at 1 byte/element
    if accounting == "pytorch":
        saved = memory.measure_saved_tensors(net, (x, y))  # autograd's own hooks, on the CPU
        on_meta = memory.measure_saved_tensors(meta_net, meta_batch)  # and on meta
        assert saved.total_bytes == on_meta.total_bytes == measured.totals["activations"] == 38_212


# ---- the recipe trains, and its memory ----------------------------------------------------------


def test_the_recipe_trains_only_the_scheme_and_the_loss_falls() -> None:
    if "mbv2-shapes" not in models.available_pretrained():
        pytest.skip("the shipped pretrained backbone is missing")
    backbone = models.pretrained("mbv2-shapes")  # MobileNetV2-0.35: 52 convs
    train_set, _ = data.train_test("target-colors", 80, 10, seed=0, resolution=32)
    batches = list(data.loader(train_set, batch_size=8, seed=0))  # 2 x 10 steps
    part = SparseUpdate(bias_layers=12, weights={45: 1.0, 48: 0.5})  # two expand convs
    recipe = Recipe(part, SGD(lr=0.05))
    net = recipe.prepare(copy.deepcopy(backbone)).train()
    trained = {n for n, p in net.named_parameters() if p.requires_grad}
    assert "features.16.conv.expand.conv.weight" in trained  # ratio 1: plain nn.Conv2d
    assert "features.17.conv.expand.conv.weight_train" in trained  # 28 of its 56 input channels
    assert net.features[17].conv.expand.conv.weight_train.shape[1] == 28
    assert "features.14.conv.expand.conv.bias" not in trained  # conv 39, before the last 12
    assert len(trained) == 12 + 2 + 2  # 12 biases, 2 weights, classifier weight and bias
    optimizer = recipe.make_optimizer(net.parameters())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        losses = [recipe.train_step(net, x, y, None, optimizer) for x, y in batches + batches]
    # measured: the first four steps average 5.5, the last four 2.0
    assert sum(losses[-4:]) < 0.5 * sum(losses[:4]), losses


def test_sparse_saves_less_than_bias_only_without_the_trick_less_than_full() -> None:
    model, batch = models.mcunet(), _mcunet_batch(8)
    folded = fold_batchnorm(copy.deepcopy(model))  # the paper's graph, still with nn.Conv2d

    def activations(part: object, net: nn.Module) -> int:
        return profile(net, batch, Recipe(part)).totals["activations"]  # type: ignore[arg-type]

    acts = {
        "full": activations(Full(), model),
        "bias-only": activations(BiasOnly(), model),
        "full, folded": activations(Full(), folded),
        "bias-only, folded": activations(BiasOnly(), folded),
        "bias-only, SparseConv2d": activations(SparseUpdate(bias_layers=30), model),
        "scheme": activations(SCHEME, model),
    }
    # MCUNet-like, 8 images of 32x32, pytorch accounting. BiasOnly() with BatchNorm in train
    # mode saves 2 % less than full training; after folding, bias-only with nn.Conv2d saves
    # exactly what full training saves (each conv keeps its whole input as soon as its bias
    # trains). The same biases through SparseConv2d: 2.2x less (what is left are the clones
    # ReLU6(inplace=True) makes, and the loss); the sparse scheme: 39x less still.
    assert acts == {
        "full": 4_575_428,
        "bias-only": 4_477_124,
        "full, folded": 3_006_852,
        "bias-only, folded": 3_006_852,
        "bias-only, SparseConv2d": 1_368_452,
        "scheme": 76_420,
    }


def test_the_100kb_scheme_is_far_below_full_update_on_mcunet_5fps() -> None:
    model = models.mcunet(blocks="mcunet-5fps", num_classes=102, device="meta")
    batch = (
        torch.empty(1, 3, 128, 128, device="meta"),
        torch.zeros(1, dtype=torch.long, device="meta"),
    )
    part = paper_scheme_100kb()
    assert part.weights == ((21, 1.0), (24, 1.0), (27, 1.0), (30, 1.0), (36, 0.125), (39, 0.25))
    plans = part.plan(model)
    assert len(plans) == 42 and [p.index for p in plans if p.bias] == list(range(20, 42))
    assert {p.index: p.channels for p in plans if p.ratio} == {
        21: 40,
        24: 48,
        27: 48,
        30: 48,
        36: 12,
        39: 24,
    }
    peaks = {}
    for name, trainable in (("full", Full()), ("100kb", part)):
        net = Recipe(trainable, SGD()).prepare(copy.deepcopy(model))
        report = memory.analytic_report(
            net, batch, accounting="engine", optimizer="sgd", flops=False
        )
        frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
        peaks[name] = (report.totals["peak"], report.totals["peak"] - frozen)
    # measured: full 5,365,097 B; the scheme 1,065,865 B with its frozen weights (411,952 B in
    # int8), 653,913 B without them (on an MCU they stay in flash): 5.0x and 8.2x less (the
    # paper measures 7-9x on the device)
    assert peaks == {"full": (5_365_097, 5_365_097), "100kb": (1_065_865, 653_913)}
    assert peaks["full"][1] / peaks["100kb"][1] > 8.0


def test_the_mcunet_5fps_preset_matches_the_published_size() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    net = models.mcunet(blocks="mcunet-5fps", num_classes=1000).eval()
    assert len(sparse_layers(net)) == 42
    # the MCUNet README: mcunet-5fps has 0.64 M parameters and 12.8 M MACs (at 96x96)
    assert sum(p.numel() for p in net.parameters()) == 636_232
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, 96, 96))
    assert counter.get_total_flops() // 2 == 12_790_096
    with pytest.raises(ValueError, match="'mcunet-5fps'"):
        models.mcunet(blocks="mcunet-6fps")


# ---- the part itself ------------------------------------------------------------------------------


def test_apply_twice_keeps_the_outputs_and_swaps_only_what_is_needed() -> None:
    model = models.mcunet().eval()
    x = torch.randn(2, 3, 32, 32, generator=_gen(6))
    before = model(x)
    SCHEME.apply(model)
    SCHEME.apply(model)
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)
    kinds = {i: type(m).__name__ for i, _, m in sparse_layers(model)}
    assert kinds[23] == "Conv2d"  # before the first updated layer (24): no backward
    assert kinds[24] == kinds[25] == kinds[29] == "SparseConv2d"
    assert kinds[27] == "Conv2d"  # whole weight trains: nn.Conv2d keeps what it needs
    SparseUpdate(bias_layers=1).apply(model)  # another scheme afterwards
    kinds = {i: type(m).__name__ for i, _, m in sparse_layers(model)}
    assert kinds[24] == "Conv2d" and kinds[29] == "SparseConv2d"
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)


def test_the_part_is_hashable_named_and_described() -> None:
    a = SparseUpdate(22, {36: 0.125, 21: 1})
    b = SparseUpdate(bias_layers=22, weights=((21, 1.0), (36, 0.125)))
    assert a == b and len({a, b}) == 1 and a.name == "sparse(b22,w2)"
    assert SparseUpdate(include_classifier=False).name == "sparse(b0,w0,no-head)"
    assert a.rule(None)("classifier.weight", None) and not a.rule(None)(
        "features.0.conv.bias", None
    )
    text = describe_scheme(models.mcunet(), SparseUpdate(2, {29: 0.5}))
    assert text.splitlines()[-1].split() == [
        "29", "features.10.conv.project.conv", "pointwise", "288->96", "bias", "+", "weight",
        "144/288", "in-channels",
    ]  # fmt: skip


def test_without_folding_the_bias_of_a_conv_is_the_next_batchnorm_shift() -> None:
    net = Recipe(SparseUpdate(bias_layers=1, fold_bn=False)).prepare(models.mcunet())
    trained = sorted(n for n, p in net.named_parameters() if p.requires_grad)
    assert trained == ["classifier.bias", "classifier.weight", "features.10.conv.project.bn.bias"]


# ---- errors that say how to fix them ------------------------------------------------------------


def test_bad_indices_and_ratios_are_explained() -> None:
    model = models.mcunet()
    with pytest.raises(
        InvalidRecipe, match=r"layer index 30 does not exist.*indices 0\.\.29.*features\.0\.conv"
    ):
        Recipe(SparseUpdate(weights={30: 1.0})).prepare(model)
    with pytest.raises(InvalidRecipe, match=r"bias_layers=31 does not exist.*at most 30"):
        SparseUpdate(bias_layers=31).plan(model)
    with pytest.raises(InvalidRecipe, match=r"ratio of layer 3 is 1\.5.*\(0, 1\]"):
        SparseUpdate(weights={3: 1.5})
    with pytest.raises(InvalidRecipe, match=r"ratio of layer 3 is 0.*leave the layer out"):
        SparseUpdate(weights={3: 0})
    with pytest.raises(InvalidRecipe, match=r"whole number >= 0"):
        SparseUpdate(bias_layers=-1)
    with pytest.raises(InvalidRecipe, match=r"layer index -2"):
        SparseUpdate(weights={-2: 1.0})
    with pytest.raises(
        InvalidRecipe,
        match=r"layer 28 \(features\.10\.conv\.depthwise\.conv\).*0 \(frozen weight\) or 1",
    ):
        SparseUpdate(weights={28: 0.5}).apply(model)
    assert type(sparse_layers(model)[28][2]) is nn.Conv2d  # nothing changed before the error
    with pytest.raises(InvalidRecipe, match=r"number in \[0, 1\]"):
        SparseConv2d(4, 4, 1, update_ratio=2.0)
    with pytest.raises(InvalidRecipe, match=r"padding_mode='zeros'"):
        SparseConv2d(4, 4, 3, padding=1, padding_mode="reflect")


def test_one_example_keeps_only_the_trained_channels() -> None:
    # With batch 1 the first k channels of a contiguous input are themselves contiguous:
    # a view of them would keep the whole input alive. The saved copy must be its own.
    from odtlab import memory
    from odtlab.recipes.layers.sparse_conv import SparseConv2d

    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        SparseConv2d(16, 16, 1, update_ratio=0.125),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )
    batch = (torch.randn(1, 3, 4, 4), torch.zeros(1, dtype=torch.long))
    kept = memory.measure_saved_tensors(net, batch).by_module()["1"]
    assert kept == 1 * 2 * 4 * 4 * 4  # 2 of 16 channels, fp32: 128 bytes, not 1024
    assert memory.analytic_saved_tensors(net, batch).by_module()["1"] == kept
