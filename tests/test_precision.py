"""Mixed precision as a recipe part: MixedPrecision("bf16" | "fp16").

Byte counts were measured with torch 2.13.0 on the CPU.
"""

from __future__ import annotations

import math

import pytest
import torch

from odtlab import data, models
from odtlab.errors import InvalidRecipe
from odtlab.recipes import SGD, Full, MicroBatch, Recipe
from odtlab.recipes.base import KINDS
from odtlab.recipes.precision import MixedPrecision, PrecisionPart
from odtlab.recipes.quantized import Int8


def _layers(report: object) -> dict[str, int]:
    return {layer.name: layer.activation_bytes for layer in report.layers}  # type: ignore[attr-defined]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_16_bit_activations_are_half_plus_a_16_bit_weight_copy(dtype: str) -> None:
    """The CNN, 8 images of 32x32, measured under autocast.

    Every conv and linear layer keeps its input in 16 bits (half the fp32
    bytes) plus autocast's 16-bit copy of its weight (2 bytes per weight):
    block1.conv 32,768 -> 16,384 + 288 = 16,672 bytes, block2.conv 131,072 ->
    65,536 + 9,216 = 74,752, block3.conv 65,536 -> 32,768 + 36,864 = 69,632
    (more than fp32: its weight is bigger than its input at this batch size),
    classifier 2,048 -> 1,024 + 1,280 = 2,304. BatchNorm and ReLU keep 16-bit
    inputs/outputs too (BatchNorm's per-channel statistics stay fp32). In
    all: 2,460,932 -> 1,475,364 bytes of activations (0.600x).
    """
    model = models.build("cnn")
    batch = models.example_batch("cnn", 8)
    fp32 = Recipe(Full()).memory_report(model, batch)
    half = Recipe(Full(), MixedPrecision(dtype)).memory_report(model, batch)
    a, b = _layers(fp32), _layers(half)
    weights = {n: m.weight.numel() for n, m in model.named_modules() if hasattr(m, "weight")}
    for name in ["features.block1.conv", "features.block2.conv", "features.block3.conv",
                 "classifier"]:  # fmt: skip
        assert b[name] == a[name] // 2 + 2 * weights[name]
    assert (a["features.block1.conv"], b["features.block1.conv"]) == (32768, 16672)
    assert b["features.block1.relu"] == a["features.block1.relu"] // 2 == 262144
    assert b["features.block1.bn"] == 262144 + 2 * 16 * 4  # bf16 input, fp32 mean and invstd
    assert (fp32.totals["activations"], half.totals["activations"]) == (2460932, 1475364)
    assert half.totals["peak"] < fp32.totals["peak"]
    assert half.totals["weights"] == fp32.totals["weights"]  # fp32 master weights


def _digits_run(recipe: Recipe, steps: int = 40) -> tuple[list[float], torch.nn.Module]:
    x, y = data.as_tensors(data.digits("train", resolution=16))
    net = recipe.prepare(models.build("cnn")).train()
    opt = recipe.make_optimizer(net.parameters())
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g)
        losses.append(recipe.train_step(net, x[idx], y[idx], None, opt))
    return losses, net


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_mixed_precision_training_loss_falls(dtype: str) -> None:
    """The CNN on 16x16 digits, 40 SGD steps (lr 0.2) of 32: first loss vs mean of the last 5.

    Measured (seed 0): fp32 2.344 -> 1.284, bf16 2.344 -> 1.308, fp16
    2.344 -> 1.303. Bounds: below 0.7x the first loss, within 0.05 of fp32.
    """
    losses, net = _digits_run(Recipe(Full(), MixedPrecision(dtype), SGD(lr=0.2)))
    reference, _ = _digits_run(Recipe(Full(), SGD(lr=0.2)))
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0]
    assert abs(sum(losses[-5:]) - sum(reference[-5:])) / 5 < 0.05
    assert all(p.dtype == torch.float32 for p in net.parameters())  # master weights


def test_fp16_scales_the_loss_and_bf16_does_not() -> None:
    net = models.build("cnn")
    batch = models.example_batch("cnn", 8)
    for dtype, expected in [("bf16", None), ("fp16", torch.amp.GradScaler)]:
        recipe = Recipe(Full(), MixedPrecision(dtype), MicroBatch(2))
        opt = recipe.make_optimizer(recipe.prepare(net).parameters())
        recipe.train_step(net, *batch, None, opt)
        scaler = recipe.part("precision").scaler(opt)  # type: ignore[union-attr]
        assert scaler is None if expected is None else isinstance(scaler, expected)
    assert 0 < scaler.get_scale() <= 2.0**16  # type: ignore[union-attr]


def test_autocast_follows_the_model() -> None:
    part = MixedPrecision()
    net = models.build("cnn")
    x, _ = models.example_batch("cnn", 2)
    with part.autocast(net):
        assert net(x).dtype == torch.bfloat16
    assert net(x).dtype == torch.float32


def test_bad_dtype_lists_the_allowed_ones() -> None:
    with pytest.raises(InvalidRecipe, match="dtype must be one of 'bf16', 'fp16'"):
        MixedPrecision("fp8")
    with pytest.raises(InvalidRecipe, match="'bf16', 'fp16'"):
        MixedPrecision(torch.bfloat16)  # type: ignore[arg-type]


def test_precision_is_a_recipe_slot() -> None:
    assert "precision" in KINDS
    recipe = Recipe(Full(), MixedPrecision("bf16"))
    assert recipe.name == "full+bf16" and recipe.part("precision") == MixedPrecision()
    assert isinstance(recipe.precision_part, PrecisionPart)
    assert Recipe(Full()).part("precision") is None
    with pytest.raises(InvalidRecipe, match="one precision part"):
        Recipe(Int8(), MixedPrecision())
    batch = models.example_batch("cnn", 4)
    net = recipe.prepare(models.build("cnn"))
    assert math.isfinite(
        recipe.train_step(net, *batch, None, recipe.make_optimizer(net.parameters()))
    )
