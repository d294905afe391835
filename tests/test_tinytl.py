"""TinyTL: the lite residual module, the TinyTL recipe part, the paper's methods, their memory."""

from __future__ import annotations

import copy
import doctest
import importlib
import re

import pytest
import torch
import torch.nn.functional as F

from odtlab import data, devices, memory, models
from odtlab.errors import InvalidRecipe
from odtlab.models import InvertedResidual
from odtlab.recipes import SGD, BatchNormPolicy, BiasOnly, Recipe, tinytl_methods
from odtlab.recipes.layers.lite_residual import (
    InvertedResidualWithLite,
    LiteResidual,
    add_lite_residuals,
    bilinear_matrix,
    lite_residuals,
    remove_lite_residuals,
)
from odtlab.recipes.trainable.tinytl import NormOnly, TinyTL

BLOCK = re.compile(r"^features\.(\d+)\.")


def _batch(n: int = 8, resolution: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, resolution, resolution, generator=gen), torch.randint(
        0, 10, (n,), generator=gen
    )


def _backbone() -> torch.nn.Module:
    """The pretrained backbone when shipped, else a fresh small MobileNetV2."""
    if "mbv2-shapes" in models.available_pretrained():
        return models.pretrained("mbv2-shapes")
    return models.mobilenetv2(num_classes=10, width_mult=0.35)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def backbone() -> torch.nn.Module:
    return _backbone()


# ---- the module ------------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_lite_residual_is_zero_at_init_and_has_the_block_output_shape(stride: int, norm: str):
    lite = LiteResidual(16, 24, stride, norm=norm)
    x = torch.randn(2, 16, 15, 15, generator=torch.Generator().manual_seed(0))
    size = (15 // stride + 15 % stride, 15 // stride + 15 % stride)
    out = lite(x, size)
    assert out.shape == (2, 24, *size)
    assert torch.count_nonzero(out) == 0
    assert torch.count_nonzero(lite.final_norm.weight) == 0
    assert lite.pool(x).shape[-1] == 8  # half resolution, rounded up


@pytest.mark.parametrize("out_size,in_size", [(4, 2), (7, 4), (16, 8), (5, 3), (2, 1), (1, 1)])
def test_upsample_is_bilinear_interpolation(out_size: int, in_size: int):
    y = torch.randn(2, 3, in_size, in_size + 1, generator=torch.Generator().manual_seed(1))
    size = (out_size, out_size + 2)
    expected = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(LiteResidual.upsample(y, size), expected)
    assert torch.allclose(bilinear_matrix(out_size, in_size).sum(dim=1), torch.ones(out_size))


def test_bad_arguments_say_what_to_use():
    with pytest.raises(InvalidRecipe, match="odd kernel"):
        LiteResidual(8, 8, kernel_size=4)
    with pytest.raises(InvalidRecipe, match="'batch', 'group'"):
        LiteResidual(8, 8, norm="layer")
    with pytest.raises(InvalidRecipe, match="LastLayer"):
        TinyTL(lite_residual=False, bias=False)


# ---- attaching it --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["mobilenetv2", "pretrained", "mcunet"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_attaching_leaves_the_output_exactly_unchanged(which: str, mode: str, backbone):
    plain = {
        "mobilenetv2": lambda: models.mobilenetv2(num_classes=10, width_mult=0.35),
        "pretrained": lambda: backbone,
        "mcunet": lambda: models.mcunet(num_classes=10),
    }[which]()
    plain = copy.deepcopy(plain).train(mode == "train")
    with_lite = copy.deepcopy(plain)  # its own BatchNorm running statistics
    added = add_lite_residuals(with_lite)
    assert len(added) == sum(isinstance(m, InvertedResidual) for m in plain.modules())
    assert all(m.training == (mode == "train") for m in added)
    x, _ = _batch(4, resolution=64 if which == "mcunet" else 32)
    outputs = []
    for net in (plain, with_lite):
        with torch.random.fork_rng():  # same dropout mask in train mode
            torch.manual_seed(0)
            outputs.append(net(x))
    assert torch.equal(outputs[0], outputs[1])


def test_state_dict_keys_are_kept_and_removal_restores_the_model():
    net = models.mobilenetv2(num_classes=10, width_mult=0.35)
    before = net.state_dict()
    blocks = [m for m in net.modules() if isinstance(m, InvertedResidual)]
    add_lite_residuals(net)
    after = net.state_dict()
    assert set(before) < set(after)
    assert all(".lite_residual." in k for k in set(after) - set(before))
    assert all(isinstance(b, InvertedResidualWithLite) for b in blocks)  # same objects
    assert len(add_lite_residuals(net)) == 0 and len(lite_residuals(net)) == 17  # idempotent
    missing, unexpected = net.load_state_dict(before, strict=False)  # pretrained weights load
    assert not unexpected and all(".lite_residual." in k for k in missing)
    clone = copy.deepcopy(net)
    assert len(lite_residuals(clone)) == 17
    assert len(remove_lite_residuals(net)) == 17
    assert set(net.state_dict()) == set(before)
    assert all(type(b) is InvertedResidual for b in blocks)


def test_same_seed_same_branches():
    a = add_lite_residuals(models.mobilenetv2(num_classes=10, width_mult=0.35), seed=3)
    b = add_lite_residuals(models.mobilenetv2(num_classes=10, width_mult=0.35), seed=3)
    assert all(torch.equal(p.conv.weight, q.conv.weight) for p, q in zip(a, b, strict=True))


def test_a_model_without_inverted_residuals_is_refused():
    with pytest.raises(InvalidRecipe, match="mobilenetv2"):
        add_lite_residuals(models.resnet50(device="meta"))
    with pytest.raises(InvalidRecipe, match="InvertedResidual"):
        Recipe(TinyTL()).prepare(models.build("cnn"))


def test_tinytl_conflicts_with_another_trainable_set():
    with pytest.raises(InvalidRecipe, match="one trainable part"):
        Recipe(TinyTL(), BiasOnly())


# ---- the recipe part ------------------------------------------------------------------------


def test_tinytl_trains_biases_lite_residuals_and_the_classifier():
    net = Recipe(TinyTL()).prepare(models.mobilenetv2(num_classes=10, width_mult=0.35))
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    assert flags["features.3.lite_residual.conv.weight"]
    assert flags["features.3.lite_residual.final_norm.weight"]
    assert flags["features.3.conv.project.bn.bias"]
    assert not flags["features.3.conv.project.bn.weight"]
    assert not flags["features.3.conv.expand.conv.weight"]
    assert flags["classifier.weight"] and flags["classifier.bias"]

    lite_only = Recipe(TinyTL(bias=False)).prepare(copy.deepcopy(net))
    trained = {n for n, p in lite_only.named_parameters() if p.requires_grad}
    assert trained == {n for n in flags if ".lite_residual." in n or n.startswith("classifier")}

    bias_only = Recipe(TinyTL(lite_residual=False)).prepare(
        models.mobilenetv2(num_classes=10, width_mult=0.35)
    )
    reference = Recipe(BiasOnly()).prepare(models.mobilenetv2(num_classes=10, width_mult=0.35))
    assert not lite_residuals(bias_only)
    assert [p.requires_grad for p in bias_only.parameters()] == [
        p.requires_grad for p in reference.parameters()
    ]


def test_norm_only_trains_gamma_beta_and_head():
    net = Recipe(NormOnly()).prepare(models.mobilenetv2(num_classes=10, width_mult=0.35))
    trained = {n for n, p in net.named_parameters() if p.requires_grad}
    assert "features.5.conv.depthwise.bn.weight" in trained
    assert "features.5.conv.depthwise.bn.bias" in trained
    assert "features.5.conv.depthwise.conv.weight" not in trained
    assert "classifier.weight" in trained


def test_group_norm_everywhere_with_the_batchnorm_policy():
    net = Recipe(TinyTL(), BatchNormPolicy("group")).prepare(
        models.mobilenetv2(num_classes=10, width_mult=0.35)
    )
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert all(torch.count_nonzero(m.final_norm.weight) == 0 for m in lite_residuals(net))


def test_the_branch_learns_after_one_step(backbone):
    recipe = Recipe(TinyTL(), SGD(lr=0.1))
    net = recipe.prepare(copy.deepcopy(backbone)).train()
    x, y = _batch(8)
    recipe.train_step(net, x, y, None, recipe.make_optimizer(net.parameters()))
    lite = net.features[4].lite_residual
    assert torch.count_nonzero(lite.final_norm.weight) > 0
    probe = torch.randn(2, lite.in_channels, 8, 8, generator=torch.Generator().manual_seed(2))
    assert torch.count_nonzero(lite.eval()(probe)) > 0


def test_every_method_learns_the_transfer_task(backbone):
    train_set, _ = data.train_test("target-colors", 80, 10, seed=0, resolution=32)
    batches = list(data.loader(train_set, batch_size=8, seed=0))  # 2 x 10 steps
    for name, recipe in tinytl_methods().items():
        net = recipe.prepare(copy.deepcopy(backbone)).train()
        opt = recipe.make_optimizer(net.parameters())
        with torch.random.fork_rng():
            torch.manual_seed(0)
            losses = [recipe.train_step(net, x, y, None, opt) for x, y in batches + batches]
        assert sum(losses[-4:]) < 0.9 * sum(losses[:4]), (name, losses)


# ---- memory ---------------------------------------------------------------------------------


def _measure(
    recipe: Recipe, model: torch.nn.Module, accounting: str
) -> memory.TrainingMemoryReport:
    net = recipe.prepare(copy.deepcopy(model))
    return memory.profile_training(net, _batch(8), accounting=accounting, flops=False)


def _block_and_lite_bytes(report: memory.TrainingMemoryReport) -> tuple[int, int]:
    blocks = lite = 0
    for module, nbytes in report.saved.by_module().items():
        if ".lite_residual" in module:
            lite += nbytes
        elif BLOCK.match(module) and 1 <= int(BLOCK.match(module).group(1)) <= 17:
            blocks += nbytes
    return blocks, lite


@pytest.fixture(scope="module")
def measured(backbone) -> dict[tuple[str, str], memory.TrainingMemoryReport]:
    methods = tinytl_methods(SGD())
    names = ("tinytl/full", "tinytl/bias", "tinytl/lite", "tinytl/lite+bias")
    return {
        (name, acc): _measure(methods[name], backbone, acc)
        for name in names
        for acc in ("engine", "pytorch")
    }


def test_lite_residual_plus_bias_saves_activation_memory(measured):
    act = {k: r.totals["activations"] for k, r in measured.items()}
    full, bias = act["tinytl/full", "engine"], act["tinytl/bias", "engine"]
    lite_bias, lite = act["tinytl/lite+bias", "engine"], act["tinytl/lite", "engine"]
    # engine accounting (pretrained MobileNetV2-0.35, 32x32, batch 8): 1.07 MB, 0.59 MB,
    # 0.66 MB and 0.13 MB
    assert bias < lite_bias < 0.7 * full
    assert lite < 0.2 * full
    # PyTorch keeps a frozen conv's input whenever a gradient passes through it, so in
    # plain PyTorch bias training saves (almost) nothing: TinyTL's point needs an engine
    assert act["tinytl/lite+bias", "pytorch"] > 0.9 * act["tinytl/full", "pytorch"]


@pytest.mark.parametrize("accounting", ["engine", "pytorch"])
def test_the_branches_keep_a_small_fraction_of_the_blocks_activations(measured, accounting):
    blocks, _ = _block_and_lite_bytes(measured["tinytl/full", accounting])
    _, lite = _block_and_lite_bytes(measured["tinytl/lite+bias", accounting])
    # measured: 7.1 % (engine) and 4.8 % (pytorch) of what full fine-tuning keeps in the blocks
    assert 0 < lite < 0.1 * blocks


@pytest.mark.parametrize("accounting", ["engine", "pytorch"])
@pytest.mark.parametrize("part", [TinyTL(), TinyTL(bias=False)])
def test_analytic_memory_agrees_with_measurement_with_lite_residuals(part, accounting):
    net = Recipe(part).prepare(models.mobilenetv2(num_classes=10, width_mult=0.35))
    x, y = _batch(4)
    measured = memory.profile_training(net, (x, y), accounting=accounting, flops=False)
    analytic = memory.analytic_report(
        copy.deepcopy(net).to("meta"), (x.to("meta"), y.to("meta")), accounting=accounting,
        flops=False,
    )  # fmt: skip
    assert analytic.totals == measured.totals


def test_analytic_memory_with_group_norm_branches():
    net = Recipe(TinyTL(norm="group")).prepare(models.mobilenetv2(num_classes=10, width_mult=0.35))
    x, y = _batch(4)
    measured = memory.profile_training(net, (x, y), accounting="engine", flops=False)
    analytic = memory.analytic_report(
        copy.deepcopy(net).to("meta"), (x.to("meta"), y.to("meta")), accounting="engine",
        flops=False,
    )  # fmt: skip
    assert analytic.totals == measured.totals


def test_lite_residual_plus_bias_fits_where_full_fine_tuning_does_not():
    # TinyTL, Section 1: "a Raspberry Pi 1 Model A only has 256MB of memory".
    spec = devices.get("rpi4").to_dict()
    spec.update(
        name="rpi1-model-a", description="Raspberry Pi 1 Model A, 256 MB", dram_bytes=256 * 2**20
    )
    del spec["training_memory_bytes"]  # the rule: 75 % of a board's DRAM, 192 MiB
    board = devices.DeviceProfile.from_dict(spec)
    model = models.mobilenetv2(num_classes=102, device="meta")
    x = torch.empty(16, 3, 224, 224, device="meta")
    y = torch.zeros(16, dtype=torch.long, device="meta")
    methods = tinytl_methods(SGD())
    reports = {}
    for name in ("tinytl/full", "tinytl/lite+bias"):
        net = methods[name].prepare(copy.deepcopy(model))
        reports[name] = memory.analytic_report(net, (x, y), accounting="engine", flops=False)
    assert not devices.fits(reports["tinytl/full"], board)  # ~235 MiB
    assert devices.fits(reports["tinytl/lite+bias"], board)  # ~142 MiB


@pytest.mark.parametrize("module", ["layers.lite_residual", "trainable.tinytl"])
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"odtlab.recipes.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_describe_counts_the_lite_residuals_without_changing_the_model():
    net = models.mobilenetv2(width_mult=0.35, num_classes=10)
    summary = Recipe(TinyTL()).describe(net)
    assert lite_residuals(net) == []  # describe() works on a copy
    prepared = Recipe(TinyTL()).prepare(net)
    assert summary.trainable_params == sum(p.numel() for p in prepared.parameters() if p.requires_grad)
    assert len(lite_residuals(prepared)) == 17
