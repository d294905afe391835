"""LoRA: the layers against peft, zero init, merging, the recipe part, its training and memory."""

from __future__ import annotations

import copy
import doctest
import importlib

import pytest
import torch
from torch import nn

from odtlab import data, memory, models
from odtlab.errors import InvalidRecipe
from odtlab.recipes import Adam, Full, Recipe
from odtlab.recipes.trainable.lora import (
    LoRA,
    LoRAConv2d,
    LoRALinear,
    add_lora,
    lora_layers,
    merge_lora,
    remove_lora,
)
from odtlab.train import profile

#: The zoo models of these tests, small: (builder kwargs, example_batch kwargs, peft targets).
ZOO = {
    "transformer": (
        {"seq_len": 16, "num_classes": 4},
        {},
        ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    ),
    "cnn": ({}, {"resolution": 16}, ["conv"]),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _model_and_batch(name: str, batch: int = 4) -> tuple[nn.Module, tuple]:
    kwargs, batch_kwargs, _ = ZOO[name]
    return models.build(name, **kwargs), models.example_batch(name, batch, **batch_kwargs, **kwargs)


def _randomize_adapters(model: nn.Module, seed: int) -> None:
    """Non-zero A and B, so that the LoRA path really contributes."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            for weight in (layer.lora_A.weight, layer.lora_B.weight):
                weight.copy_(0.1 * torch.randn(weight.shape, generator=gen))


# ---- the layers against peft ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(ZOO))
def test_outputs_and_gradients_equal_peft(name: str) -> None:
    peft = pytest.importorskip("peft")
    base, (x, y) = _model_and_batch(name)
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    wrapped = add_lora(ours, rank=4, alpha=8)
    config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=ZOO[name][2])
    theirs = peft.inject_adapter_in_model(config, theirs)
    _randomize_adapters(ours, seed=1)
    for layer_name, layer in lora_layers(ours).items():
        twin = theirs.get_submodule(layer_name)
        assert twin.scaling["default"] == layer.scaling == 2.0
        with torch.no_grad():
            twin.lora_A["default"].weight.copy_(layer.lora_A.weight)
            twin.lora_B["default"].weight.copy_(layer.lora_B.weight)
    # peft adapts the same layers: every Linear/Conv2d except the classifier
    peft_params = {n for n, p in theirs.named_parameters() if p.requires_grad}
    assert {n.rsplit(".", 3)[0] for n in peft_params} == set(wrapped)
    assert sum(p.numel() for p in theirs.parameters() if p.requires_grad) == sum(
        p.numel() for n, p in ours.named_parameters() if ".lora_" in n
    )
    ours.train()
    theirs.train()
    out_ours, out_theirs = ours(x), theirs(x)
    torch.testing.assert_close(out_ours, out_theirs)
    assert not torch.allclose(out_ours, base.train()(x))  # the adapters do contribute
    nn.functional.cross_entropy(out_ours, y).backward()
    nn.functional.cross_entropy(out_theirs, y).backward()
    for layer_name, layer in lora_layers(ours).items():
        twin = theirs.get_submodule(layer_name)
        torch.testing.assert_close(layer.lora_A.weight.grad, twin.lora_A["default"].weight.grad)
        torch.testing.assert_close(layer.lora_B.weight.grad, twin.lora_B["default"].weight.grad)
        assert layer.lora_B.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_zero_init_leaves_the_output_exactly_unchanged(name: str, mode: str) -> None:
    base, (x, _) = _model_and_batch(name)
    base.train(mode == "train")
    adapted = copy.deepcopy(base)
    assert len(add_lora(adapted, rank=4, alpha=8)) == (12 if name == "transformer" else 3)
    assert all(torch.count_nonzero(m.lora_B.weight) == 0 for m in lora_layers(adapted).values())
    assert all(torch.count_nonzero(m.lora_A.weight) > 0 for m in lora_layers(adapted).values())
    assert torch.equal(adapted(x), base(x))


@pytest.mark.parametrize(
    "layer",
    [
        nn.Linear(12, 7),
        nn.Linear(12, 7, bias=False),
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, bias=False),
        nn.Conv2d(5, 9, 1),
    ],
    ids=str,
)
def test_merge_folds_the_update_into_the_weight(layer: nn.Module) -> None:
    wrapper = LoRALinear if isinstance(layer, nn.Linear) else LoRAConv2d
    lora = wrapper(copy.deepcopy(layer), rank=3, alpha=6.0)
    _randomize_adapters(lora, seed=2)
    shape = (4, 12) if isinstance(layer, nn.Linear) else (2, layer.in_channels, 9, 9)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    merged = lora.merge()
    assert type(merged) is type(layer) and lora_layers(merged) == {}
    torch.testing.assert_close(merged(x), lora(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(merged(x), layer(x))  # the update is there
    assert torch.equal(lora.base.weight, layer.weight)  # merge() copies, the layer is unchanged


def test_merge_lora_and_remove_lora_on_a_model() -> None:
    base, (x, _) = _model_and_batch("transformer")
    adapted = copy.deepcopy(base).eval()
    keys_before = set(base.state_dict())
    names = add_lora(adapted, rank=2, alpha=4)
    _randomize_adapters(adapted, seed=4)
    assert "blocks.0.attn.q_proj.base.weight" in adapted.state_dict()
    expected = adapted(x)
    merged = copy.deepcopy(adapted)
    assert merge_lora(merged) == names
    assert set(merged.state_dict()) == keys_before
    torch.testing.assert_close(merged(x), expected, rtol=1e-5, atol=1e-5)
    assert remove_lora(adapted) == names and lora_layers(adapted) == {}
    assert set(adapted.state_dict()) == keys_before
    assert torch.equal(adapted(x), base.eval()(x))  # the update is thrown away


def test_adding_twice_is_safe_and_the_same_seed_gives_the_same_adapters() -> None:
    net = models.build("cnn")
    assert add_lora(net, rank=2, alpha=4, seed=5) == [
        "features.block1.conv", "features.block2.conv", "features.block3.conv",
    ]  # fmt: skip
    assert add_lora(net, rank=2, alpha=4, seed=5) == []
    other = models.build("cnn")
    add_lora(other, rank=2, alpha=4, seed=5)
    for a, b in zip(lora_layers(net).values(), lora_layers(other).values(), strict=True):
        assert torch.equal(a.lora_A.weight, b.lora_A.weight)
    third = models.build("cnn")
    add_lora(third, rank=2, alpha=4, seed=6)
    first = next(iter(lora_layers(third).values())).lora_A.weight
    assert not torch.equal(first, next(iter(lora_layers(net).values())).lora_A.weight)
    with pytest.raises(InvalidRecipe, match="rank=2, alpha=4.*remove_lora"):
        add_lora(net, rank=8, alpha=4)


def test_targets_by_suffix_glob_parent_and_type() -> None:
    net = models.build("transformer")
    assert add_lora(copy.deepcopy(net), targets=["q_proj", "v_proj"]) == [
        "blocks.0.attn.q_proj", "blocks.0.attn.v_proj",
        "blocks.1.attn.q_proj", "blocks.1.attn.v_proj",
    ]  # fmt: skip
    assert add_lora(copy.deepcopy(net), targets=["blocks.*.mlp.fc1"]) == [
        "blocks.0.mlp.fc1", "blocks.1.mlp.fc1",
    ]  # fmt: skip
    assert len(add_lora(copy.deepcopy(net), targets=["blocks.1"])) == 6
    assert add_lora(copy.deepcopy(net), targets=["classifier"]) == ["classifier"]
    cnn = models.build("cnn")
    assert len(add_lora(copy.deepcopy(cnn), targets=[nn.Conv2d])) == 3
    assert add_lora(copy.deepcopy(cnn), targets=[nn.Linear]) == ["classifier"]


def test_depthwise_convolutions_are_skipped_by_default_and_refused_when_named() -> None:
    net = models.mobilenetv2(num_classes=10, width_mult=0.35, device="meta")
    convs = {n: m for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    depthwise = {n for n, m in convs.items() if m.groups > 1}
    wrapped = add_lora(copy.deepcopy(net), rank=2)
    assert len(depthwise) == 17 and set(wrapped) == set(convs) - depthwise
    with pytest.raises(InvalidRecipe, match="groups=.*depthwise"):
        add_lora(copy.deepcopy(net), rank=2, targets=["features.1.conv.depthwise.conv"])


def test_errors_say_what_is_wrong_and_what_to_do() -> None:
    with pytest.raises(InvalidRecipe, match="rank must be a whole number >= 1"):
        LoRA(rank=0)
    with pytest.raises(InvalidRecipe, match="rank must be a whole number"):
        LoRALinear(nn.Linear(4, 4), rank=0)
    with pytest.raises(InvalidRecipe, match=r"larger than min\(in_features, out_features\) = 3"):
        LoRALinear(nn.Linear(8, 3), rank=4)
    with pytest.raises(InvalidRecipe, match=r"min\(in_channels \* kh \* kw, out_channels\) = 9"):
        LoRAConv2d(nn.Conv2d(1, 16, 3), rank=10)
    with pytest.raises(InvalidRecipe, match="dropout must be in"):
        LoRA(dropout=1.0)
    with pytest.raises(InvalidRecipe, match="module names"):
        LoRA(targets=[nn.ReLU])
    # a rank too large for one layer: nothing changes
    net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2), nn.Linear(2, 2))
    with pytest.raises(InvalidRecipe, match="layer '2'.*rank <= 2"):
        add_lora(net, rank=4, targets=["0", "2"])
    assert lora_layers(net) == {} and all(p.requires_grad for p in net.parameters())
    # no layer to adapt: the message lists what there is
    only_head = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(InvalidRecipe, match=r"layers are \['2'\], of which 2 \(the head\)"):
        add_lora(only_head)
    with pytest.raises(InvalidRecipe, match=r"targets=\['q_prj'\].*blocks.0.attn.q_proj"):
        add_lora(models.build("transformer"), targets=["q_prj"])
    with pytest.raises(InvalidRecipe, match="LoRALinear"):
        add_lora(nn.Linear(4, 4), targets=[nn.Linear])


# ---- the recipe part ------------------------------------------------------------------------


def _lora_parameters(model: nn.Module, rank: int) -> int:
    """r * (in + out) per adapted Linear, r * (in * kh * kw + out) per adapted Conv2d."""
    total = 0
    for layer in lora_layers(model).values():
        if isinstance(layer, LoRALinear):
            total += rank * (layer.in_features + layer.out_features)
        else:
            kh, kw = layer.base.kernel_size
            total += rank * (layer.in_channels * kh * kw + layer.out_channels)
    return total


@pytest.mark.parametrize("name", list(ZOO))
def test_the_recipe_trains_the_adapters_and_the_head(name: str) -> None:
    recipe = Recipe(LoRA(rank=4, alpha=8), Adam())
    assert recipe.name == "lora(r=4)+adam"
    net = recipe.prepare(_model_and_batch(name)[0])
    recipe.prepare(net)  # twice is safe
    head = 64 * (4 if name == "transformer" else 10) + (4 if name == "transformer" else 10)
    trained = {n for n, p in net.named_parameters() if p.requires_grad}
    assert all(".lora_" in n or n.startswith("classifier.") for n in trained)
    count = sum(p.numel() for p in net.parameters() if p.requires_grad)
    # transformer: 2 blocks x (4 x 4 x (64 + 64) + 2 x 4 x (64 + 128)) = 7168, head 260;
    # cnn: 4 x (9 + 16) + 4 x (144 + 32) + 4 x (288 + 64) = 2212, head 650
    assert count == _lora_parameters(net, 4) + head == {"transformer": 7428, "cnn": 2862}[name]
    no_head = Recipe(LoRA(rank=4, include_classifier=False)).prepare(_model_and_batch(name)[0])
    assert sum(p.numel() for p in no_head.parameters() if p.requires_grad) == count - head
    assert Recipe(LoRA()).describe(_model_and_batch(name)[0]).trainable_params == count


def _token_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4 classes of 16-token sequences: half the tokens come from the class's band of 8 ids."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=gen)
    band = y[:, None] * 8 + torch.randint(0, 8, (n, 16), generator=gen)
    noise = torch.randint(0, 64, (n, 16), generator=gen)
    return torch.where(torch.rand(n, 16, generator=gen) < 0.5, band, noise), y


def test_lora_learns_a_token_task_on_the_transformer() -> None:
    x, y = _token_task(256, seed=0)
    recipe = Recipe(LoRA(rank=4, alpha=8), Adam(lr=3e-3))
    net = recipe.prepare(models.build("transformer", seq_len=16, num_classes=4)).train()
    opt = recipe.make_optimizer(net.parameters())
    frozen = {n: p.clone() for n, p in net.named_parameters() if not p.requires_grad}
    losses = [
        recipe.train_step(net, x[i : i + 32], y[i : i + 32], None, opt)
        for _ in range(3)
        for i in range(0, 256, 32)
    ]
    # measured: the first three 1.380, 1.322, 1.278; the last three 0.116, 0.288, 0.158
    assert sum(losses[-3:]) / 3 < 0.4 < 1.2 < sum(losses[:3]) / 3
    assert all(torch.equal(p, frozen[n]) for n, p in net.named_parameters() if n in frozen)


def test_lora_learns_digits_on_the_cnn() -> None:
    batches = list(data.loader(data.digits("train"), batch_size=64, seed=0))[:20]
    recipe = Recipe(LoRA(rank=4, alpha=8), Adam(lr=1e-2))
    net = recipe.prepare(models.build("cnn")).train()
    opt = recipe.make_optimizer(net.parameters())
    losses = [recipe.train_step(net, x, y, None, opt) for x, y in batches]
    # measured: 2.288, 2.280, 2.195 at first; 1.119, 1.156, 1.114 at the end
    assert sum(losses[-3:]) / 3 < 1.4 < 2.1 < sum(losses[:3]) / 3


# ---- memory ---------------------------------------------------------------------------------


@pytest.mark.parametrize("accounting", ["pytorch", "engine"])
@pytest.mark.parametrize("name", list(ZOO))
def test_analytic_activations_equal_the_measured_ones(name: str, accounting: str) -> None:
    model, (x, y) = _model_and_batch(name)
    net = Recipe(LoRA(rank=4, alpha=8)).prepare(model)
    measured = memory.profile_training(net, (x, y), accounting=accounting, flops=False)
    analytic = memory.analytic_report(
        copy.deepcopy(net).to("meta"), (x.to("meta"), y.to("meta")), accounting=accounting,
        flops=False,
    )  # fmt: skip
    assert analytic.totals == measured.totals
    by_module = measured.saved.by_module()
    assert any(".lora_A" in m for m in by_module) and any(".lora_B" in m for m in by_module)


@pytest.mark.parametrize("name", list(ZOO))
def test_adam_state_is_eight_bytes_per_trained_element(name: str) -> None:
    model, batch = _model_and_batch(name)
    recipe = Recipe(LoRA(rank=4, alpha=8), Adam())
    report = profile(model, batch, recipe)
    net = recipe.prepare(copy.deepcopy(model))
    trained = [p for p in net.parameters() if p.requires_grad]
    elements = sum(p.numel() for p in trained)
    # exp_avg and exp_avg_sq in fp32, plus one 4-byte step counter per tensor
    assert report.totals["optimizer"] == 2 * 4 * elements + 4 * len(trained)
    assert report.totals["gradients"] == 4 * elements
    full = profile(model, batch, Recipe(Full(), Adam()))
    # transformer (seq 16, 4 classes): 59,528 vs 579,768 bytes; cnn: 22,928 vs 192,508
    assert report.totals["optimizer"] < 0.15 * full.totals["optimizer"]


def test_the_rule_without_a_model_uses_zoo_names() -> None:
    rule = LoRA().rule(None)
    assert rule("blocks.0.mlp.fc1.lora_B.weight", None)
    assert rule("classifier.bias", None)
    assert not rule("blocks.0.mlp.fc1.base.bias", None)
    assert not LoRA(include_classifier=False).rule(None)("classifier.weight", None)
    assert LoRA(include_classifier=False).name == "lora(r=4)(no-head)"


def test_docstring_examples() -> None:
    module = importlib.import_module("odtlab.recipes.trainable.lora")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
