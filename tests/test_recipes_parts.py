"""odtlab.recipes: parts, names, trainable sets, prepare(), optimizers and every InvalidRecipe."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn

import odtlab
from odtlab import models
from odtlab.errors import InvalidRecipe
from odtlab.recipes import (
    SGD,
    Adam,
    AdamW,
    BatchNormPolicy,
    BiasOnly,
    Checkpointing,
    Freeze,
    Full,
    InPlaceActivations,
    LastLayer,
    MicroBatch,
    Momentum,
    Recipe,
    RecipePart,
    named,
    recipe_names,
    register_recipe,
)
from odtlab.recipes.activations import (
    CheckpointedSequential,
    FrozenBatchNorm2d,
    batchnorm_to_groupnorm,
    find_trunk,
    segment_bounds,
)
from odtlab.train import profile

MBV2 = {"width_mult": 0.35, "num_classes": 10}


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---- names and printing -------------------------------------------------------------------------
def test_names_are_derived_from_parts() -> None:
    assert Recipe().name == "full"
    assert Recipe(BiasOnly(), MicroBatch(4), SGD()).name == "bias-only+mb(4)+sgd"
    assert Recipe(MicroBatch(4), BiasOnly()).name == "bias-only+mb(4)"  # trainable set first
    assert Recipe(Full(), Checkpointing(4), Adam()).name == "full+ckpt(4)+adam"
    assert Recipe(LastLayer(), name="head").name == "head"
    assert Recipe(MicroBatch(2, bn="group")).name == "full+mb(2,bn-group)"
    assert [p.name for p in (Momentum(), AdamW(), SGD(momentum=0.5), Freeze(["a", "b", "c"]))] == [
        "momentum",
        "adamw",
        "sgd(m=0.5)",
        "freeze(3 layers)",
    ]


def test_repr_and_str_are_readable() -> None:
    recipe = Recipe(BiasOnly(), MicroBatch(4))
    assert repr(recipe) == (
        "Recipe(BiasOnly(include_classifier=True), MicroBatch(n=4, bn='keep', groups=8), "
        "name='bias-only+mb(4)')"
    )
    text = str(recipe)
    assert "recipe bias-only+mb(4)" in text and "SGD(lr=0.05" in text and "(default)" in text
    assert recipe.micro_batches == 4 and Recipe().micro_batches == 1
    assert isinstance(recipe.optimizer_part, SGD) and recipe.optimizer_part.lr == 0.05
    assert recipe.part("micro-batch") == MicroBatch(4) and recipe.part("checkpointing") is None


def test_named_recipes_are_unique_and_fresh() -> None:
    names = recipe_names()
    assert names[:6] == ["full", "last-layer", "bias-only", "full+ckpt", "full+mb4", "full+adam"]
    assert len(names) == len(set(names)) and "tinytl/lite+bias" in names
    assert all(named(name).name == name for name in names)
    assert named("full+ckpt").checkpointing == Checkpointing(4)
    assert named("full") is not named("full")  # fresh objects each call
    with pytest.raises(InvalidRecipe, match="already registered"):
        register_recipe("full", lambda: Recipe())
    with pytest.raises(InvalidRecipe, match="known recipes: full, last-layer"):
        named("ful")


# ---- trainable sets: hand-checkable counts ------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "cnn", "mobilenetv2", "mcunet", "transformer"])
def test_last_layer_trains_exactly_the_classifier(name: str) -> None:
    model = Recipe(LastLayer()).prepare(
        models.build(name, **(MBV2 if name == "mobilenetv2" else {}))
    )
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained == ["classifier.weight", "classifier.bias"]
    head = model.classifier
    assert trainable_count(model) == head.in_features * head.out_features + head.out_features


def test_bias_only_counts() -> None:
    # MLP: biases of fc1 (128), fc2 (64), classifier (10) + classifier weight 64 x 10
    assert trainable_count(Recipe(BiasOnly()).prepare(models.build("mlp"))) == 128 + 64 + 10 + 640
    # CNN: BatchNorm shifts 16 + 32 + 64, classifier 64 x 10 + 10 (convs have no bias)
    assert trainable_count(Recipe(BiasOnly()).prepare(models.build("cnn"))) == 112 + 650
    cnn = Recipe(BiasOnly(include_classifier=False)).prepare(models.build("cnn"))
    assert trainable_count(cnn) == 112 + 10
    assert not cnn.features.block1.bn.weight.requires_grad  # gamma is not a bias
    mbv2 = Recipe(BiasOnly()).prepare(models.build("mobilenetv2", **MBV2))
    bn_shifts = sum(m.num_features for m in mbv2.modules() if isinstance(m, nn.BatchNorm2d))
    assert trainable_count(mbv2) == bn_shifts + 1280 * 10 + 10 == 19850


def test_freeze_and_full() -> None:
    assert trainable_count(Recipe(Full()).prepare(models.build("mlp"))) == 17226
    assert trainable_count(Recipe(Freeze("features")).prepare(models.build("mlp"))) == 650
    model = Recipe(Freeze(["features.fc1"])).prepare(models.build("mlp"))
    assert trainable_count(model) == 17226 - (64 * 128 + 128)
    net = models.build("mobilenetv2", **MBV2)  # "features.1" must not freeze "features.10"
    Recipe(Freeze(["features.1"])).prepare(net)
    assert not net.features[1].conv.depthwise.conv.weight.requires_grad
    assert net.features[10].conv.expand.conv.weight.requires_grad


def test_last_layer_falls_back_to_the_last_linear() -> None:
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    recipe = Recipe(LastLayer())
    recipe.prepare(net)
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["2.weight", "2.bias"]
    assert recipe.is_trainable("2.bias", net[2].bias) and not recipe.is_trainable("0.bias", None)


def test_prepare_is_idempotent_and_in_place() -> None:
    recipe = Recipe(BiasOnly(), Checkpointing(3), MicroBatch(2, bn="frozen"), InPlaceActivations())
    model = models.build("mobilenetv2", **MBV2)
    keys = list(model.state_dict())
    assert recipe.prepare(model) is model
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    assert recipe.prepare(model) is model
    assert flags == {n: p.requires_grad for n, p in model.named_parameters()}
    assert type(model.features) is CheckpointedSequential
    assert model.features.segment_bounds == segment_bounds(19, 3) == ((0, 7), (7, 13), (13, 19))
    assert list(model.state_dict()) == keys  # names, buffers: unchanged
    assert all(recipe.is_trainable(n, p) == p.requires_grad for n, p in model.named_parameters())
    # a recipe without those parts undoes checkpointing and frozen BatchNorm
    Recipe(Full()).prepare(model)
    assert type(model.features) is nn.Sequential and type(model.features[0].bn) is nn.BatchNorm2d


def test_describe_table() -> None:
    summary = Recipe(LastLayer()).describe(models.build("mlp"))
    assert (summary.trainable_params, summary.total_params) == (650, 17226)
    assert summary.trainable_bytes == 650 * 4 and summary.trainable_tensors == 2
    assert [r.name for r in summary.layers] == ["features.fc1", "features.fc2", "classifier"]
    assert summary.layers[-1].trainable == 650 and summary.layers[0].trainable == 0
    text = str(summary)
    assert "recipe last-layer: trains 650 of 17,226 parameters (3.8 %)" in text


# ---- optimizers ---------------------------------------------------------------------------------------
def test_make_optimizer_uses_the_part_and_skips_frozen_parameters() -> None:
    model = Recipe(LastLayer()).prepare(models.build("mlp"))
    opt = Recipe(LastLayer()).make_optimizer(model.parameters())
    assert type(opt) is torch.optim.SGD and opt.defaults["lr"] == 0.05
    assert sum(len(g["params"]) for g in opt.param_groups) == 2
    adam = Recipe(Adam(lr=0.01)).make_optimizer(model.parameters())
    assert type(adam) is torch.optim.Adam and adam.defaults["lr"] == 0.01
    assert type(Recipe(AdamW()).make_optimizer(model.parameters())) is torch.optim.AdamW
    assert Recipe(Momentum()).make_optimizer(model.parameters()).defaults["momentum"] == 0.9


# ---- BatchNorm options and in-place activations ---------------------------------------------------------
def test_group_norm_replacement_copies_affine_parameters() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 24, 3), nn.BatchNorm2d(24), nn.Conv2d(24, 12, 1), nn.BatchNorm2d(12)
    )
    with torch.no_grad():
        net[1].weight.uniform_()
        net[1].bias.uniform_()
    gamma = net[1].weight.detach().clone()
    assert batchnorm_to_groupnorm(net) == 2
    assert isinstance(net[1], nn.GroupNorm) and (net[1].num_groups, net[3].num_groups) == (8, 6)
    assert torch.equal(net[1].weight, gamma)
    assert "1.running_mean" not in net.state_dict() and "1.weight" in net.state_dict()


def test_frozen_batchnorm_stays_in_eval_mode() -> None:
    model = Recipe(BatchNormPolicy("frozen")).prepare(models.build("cnn"))
    model.train()
    bn = model.features.block1.bn
    assert type(bn) is FrozenBatchNorm2d and not bn.training and model.training
    before = bn.running_mean.clone()
    model(models.example_batch("cnn", 4, resolution=16)[0])
    assert torch.equal(bn.running_mean, before)
    assert bn.weight.requires_grad  # Full() still trains gamma and beta


def test_in_place_activations_switch_flags() -> None:
    model = Recipe(InPlaceActivations(True)).prepare(models.build("mlp"))
    assert model.features.relu1.inplace
    Recipe(InPlaceActivations(False)).prepare(model)
    assert not model.features.relu1.inplace


def test_find_trunk() -> None:
    assert find_trunk(models.build("cnn"))[0] == "features"
    assert find_trunk(models.build("transformer"))[0] == "blocks"
    assert find_trunk(nn.Sequential(nn.Linear(2, 2)))[0] == ""


# ---- every InvalidRecipe, with the message that says how to fix it -------------------------------------
class NoTrunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Recipe(Full(), BiasOnly()), ["one trainable part", "Full()", "BiasOnly("]),
        (lambda: Recipe(SGD(), Adam()), ["one optimizer part", "keep one"]),
        (lambda: Recipe(Checkpointing(2), Checkpointing(3)), ["one checkpointing part"]),
        (lambda: Recipe(BiasOnly), ["class BiasOnly", "did you mean BiasOnly()?"]),
        (lambda: Recipe("bias-only"), ["RecipePart", "named(name)"]),
        (lambda: Recipe([Full(), SGD()]), ["one by one"]),
        (lambda: MicroBatch(0), ["MicroBatch(n=0)", ">= 1"]),
        (lambda: MicroBatch(2, bn="batch"), ["'keep', 'frozen', 'group'"]),
        (lambda: Checkpointing(0), ["segments must be a whole number >= 1"]),
        (lambda: SGD(lr=-1), ["lr must be a number > 0"]),
        (lambda: Adam(betas=(0.9, 1.5)), ["betas"]),
        (lambda: Freeze([]), ["Full()"]),
        (
            lambda: Recipe(MicroBatch(4, bn="group"), BatchNormPolicy("frozen")),
            ["different batchnorm settings"],
        ),
    ],
)
def test_invalid_recipes(make, words: list[str]) -> None:  # noqa: ANN001
    with pytest.raises(odtlab.InvalidRecipe) as info:
        make()
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, odtlab.OdtlabError)


@pytest.mark.parametrize(
    ("recipe", "model", "words"),
    [
        (Recipe(Checkpointing(6)), "mlp", ["more segments than the 5 layers", "between 1 and 5"]),
        (Recipe(Checkpointing(2)), NoTrunk, ["main sequential trunk", "trunk='"]),
        (Recipe(Checkpointing(2, trunk="head")), "mlp", ["no nn.Sequential called 'head'"]),
        (Recipe(Freeze(["featurs.fc1"])), "mlp", ["did you mean 'features.fc1'"]),
        (Recipe(Freeze(["features", "classifier"])), "mlp", ["leaves no parameter", "trainable"]),
        (
            Recipe(InPlaceActivations(), Checkpointing(5)),
            "mlp",
            ["in-place ReLU", "InPlaceActivations(False)"],
        ),
        (Recipe(LastLayer()), lambda: nn.Sequential(nn.Conv2d(3, 4, 3)), ["no nn.Linear"]),
        (Recipe(MicroBatch(2, bn="frozen"), Checkpointing(9)), "cnn", ["between 1 and 5"]),
    ],
)
def test_invalid_for_the_model(recipe: Recipe, model, words: list[str]) -> None:  # noqa: ANN001
    net = models.build(model) if isinstance(model, str) else model()
    before = [(type(m), getattr(m, "inplace", None)) for m in net.modules()]
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    with pytest.raises(odtlab.InvalidRecipe) as info:
        recipe.prepare(net)
    for word in words:
        assert word in str(info.value)
    # checked before anything changes: the model is as it was
    assert before == [(type(m), getattr(m, "inplace", None)) for m in net.modules()]
    assert flags == {n: p.requires_grad for n, p in net.named_parameters()}


def test_invalid_at_use_time() -> None:
    model = models.build("mlp")
    with pytest.raises(odtlab.InvalidRecipe, match="call recipe.prepare"):
        Recipe().make_optimizer([p.detach() for p in model.parameters()])
    batch = models.example_batch("cnn", 4, resolution=16)
    with pytest.raises(odtlab.InvalidRecipe, match="accounting='pytorch'"):
        profile(models.build("cnn"), batch, Recipe(Checkpointing(2)), accounting="engine")
    tiny = models.example_batch("mcunet", 4, resolution=32)
    with pytest.raises(odtlab.InvalidRecipe, match="bn='frozen'"):
        profile(models.build("mcunet"), tiny, Recipe(MicroBatch(4)))
    net = Recipe(MicroBatch(4)).prepare(models.build("mcunet"))
    with pytest.raises(odtlab.InvalidRecipe, match="single value per channel"):
        Recipe(MicroBatch(4)).train_step(net, *tiny, None, torch.optim.SGD(net.parameters(), 0.1))
    with pytest.raises(odtlab.InvalidRecipe, match="targets hold 3"):
        Recipe().train_step(model, torch.zeros(4, 64), torch.zeros(3, dtype=torch.long), None,
                            torch.optim.SGD(model.parameters(), 0.1))  # fmt: skip


def test_every_part_is_a_recipe_part() -> None:
    parts = [Full(), LastLayer(), BiasOnly(), Freeze("x"), Checkpointing(), MicroBatch(2), SGD(),
             Momentum(), Adam(), AdamW(), BatchNormPolicy(), InPlaceActivations()]  # fmt: skip
    assert all(isinstance(p, RecipePart) for p in parts)
    assert len({p.kind for p in parts}) == 6
    assert Checkpointing() == Checkpointing(4) and hash(BiasOnly()) == hash(BiasOnly())


@pytest.mark.parametrize(
    "module",
    [
        "base",
        "trainable.basic",
        "optim.basic",
        "activations.batchnorm",
        "activations.inplace",
        "activations.checkpointing",
        "activations.microbatch",
        "trainable.summary",
        "registry",
        "recipe",
        "",
    ],  # fmt: skip
)
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(f"odtlab.recipes.{module}".rstrip("."))
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_a_new_technique_is_one_new_part_and_recipe_does_not_change() -> None:
    # A part of a new kind, written as a learner would in a module of their own: it registers
    # its kind, and Recipe runs its hooks without knowing it (here: clip the gradient norm).
    from dataclasses import dataclass

    from odtlab.recipes import UpdateInBackward
    from odtlab.recipes.base import KINDS, register_kind

    @dataclass(frozen=True)
    class ClipGradNorm(RecipePart):
        kind = "test-clipping"  # a class attribute (no annotation): not a dataclass field
        max_norm: float = 1.0

        def check(self, recipe: Recipe) -> None:
            if recipe.update_in_backward:
                raise InvalidRecipe("ClipGradNorm needs every gradient before the step")

        def wrap_optimizer(self, build):
            def clipped(params):
                opt = build(params)
                step = opt.step

                def step_after_clipping(*args, **kwargs):
                    tensors = [p for g in opt.param_groups for p in g["params"]]
                    torch.nn.utils.clip_grad_norm_(tensors, self.max_norm)
                    return step(*args, **kwargs)

                opt.step = step_after_clipping
                return opt

            return clipped

    register_kind("test-clipping", stage=75)
    try:
        with pytest.raises(InvalidRecipe, match="already registered"):
            register_kind("test-clipping", stage=75)
        recipe = Recipe(Full(), ClipGradNorm(1e-3), SGD(lr=1.0))
        assert recipe.name == "full+clipgradnorm+sgd" and recipe.part("test-clipping").max_norm == 1e-3
        net = recipe.prepare(models.build("mlp", seed=0))
        before = [p.detach().clone() for p in net.parameters()]
        x, y = models.example_batch("mlp", 8)
        recipe.train_step(net, x, y, None, recipe.make_optimizer(net.parameters()))
        moved = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(net.parameters(), before, strict=True)))
        assert 0 < moved.item() <= 1e-3 * 1.0001  # lr 1 times a gradient of norm at most 1e-3
        with pytest.raises(InvalidRecipe, match="needs every gradient"):
            Recipe(Full(), ClipGradNorm(), UpdateInBackward())
    finally:
        KINDS.pop("test-clipping")
