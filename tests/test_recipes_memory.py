"""recipe.memory_report: measured memory of each recipe, checked by hand and against torch.profiler."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odtlab import memory, models
from odtlab.recipes import (
    SGD,
    Adam,
    AdamW,
    BiasOnly,
    Checkpointing,
    Full,
    LastLayer,
    MicroBatch,
    Momentum,
    Recipe,
)
from odtlab.recipes.activations import CheckpointedSequential
from odtlab.train import RecipeMemoryReport, profile
from odtlab.train.profile import profiled_recipe_peak

MBV2 = {"width_mult": 0.35, "num_classes": 10}
RNG = torch.get_rng_state().numel()  # the CPU generator state a checkpoint keeps: 5056 bytes


real_peak = profiled_recipe_peak  # the library's check, shared with the tests


class Tiny(nn.Module):
    """features: Linear(8,16) ReLU Linear(16,16) ReLU; classifier Linear(16,4)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
        self.classifier = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def tiny_batch(b: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(b, 8, generator=gen), torch.randint(0, 4, (b,), generator=gen)


def test_checkpointed_activations_by_hand() -> None:
    b = 5
    loss = 4 * b * 4 + 8 * b + 4  # log-softmax, int64 targets, total weight
    full = profile(Tiny(), tiny_batch(b), Recipe(Full()))
    # the batch (kept by the first Linear), both ReLU outputs, the loss
    assert full.totals["activations"] == 4 * b * 8 + 2 * 4 * b * 16 + loss
    ckpt = profile(Tiny(), tiny_batch(b), Recipe(Full(), Checkpointing(2)))
    assert isinstance(ckpt, RecipeMemoryReport)
    # kept: segment inputs (batch 160, first ReLU output 320), classifier input 320, loss, 2 RNG states
    assert ckpt.totals["activations"] == 4 * b * 8 + 4 * b * 16 + 4 * b * 16 + loss + 2 * RNG
    seg0, seg1 = ckpt.segments
    assert (seg0.layers, seg1.layers) == (
        ("features.0", "features.1"),
        ("features.2", "features.3"),
    )
    assert (seg0.kept_input_bytes, seg1.kept_input_bytes) == (4 * b * 8, 4 * b * 16)
    assert seg0.recompute_by_module == (("features.1", 4 * b * 16),)  # the ReLU output, again
    assert seg1.recompute_bytes == 4 * b * 16
    assert (
        ckpt.flops["recompute"]
        == seg0.recompute_flops + seg1.recompute_flops
        == 2 * b * (8 * 16 + 16 * 16)
    )
    real = real_peak(Recipe(Full(), Checkpointing(2)), Tiny(), tiny_batch(b))
    assert ckpt.totals["peak"] == pytest.approx(real, rel=0.01)  # 18860 vs 18948 bytes
    assert ckpt.timeline.peak_event.label == "recompute segment 1"  # the RNG copy of fork_rng
    assert ckpt.layer("features").activation_bytes == 4 * b * (8 + 16) + 2 * RNG


@pytest.mark.parametrize(
    ("name", "kwargs", "batch_kwargs", "batch_size", "recipe"),
    [
        ("cnn", {}, {"resolution": 32}, 8, Recipe(Full(), Checkpointing(2))),
        ("cnn", {}, {"resolution": 32}, 8, Recipe(Full(), Checkpointing(4), MicroBatch(4))),
        ("transformer", {"seq_len": 16}, {}, 4, Recipe(Full(), Checkpointing(2))),
        ("cnn", {}, {"resolution": 32}, 8, Recipe(Full(), MicroBatch(4), Adam())),
        ("transformer", {"seq_len": 16}, {}, 6, Recipe(BiasOnly(), MicroBatch(4))),
        ("mlp", {}, {}, 10, Recipe(Full(), MicroBatch(3), Momentum())),
    ],
    ids=lambda v: v.name if isinstance(v, Recipe) else None,
)
def test_peak_matches_torch_profiler(
    name: str, kwargs: dict, batch_kwargs: dict, batch_size: int, recipe: Recipe
) -> None:
    model = models.build(name, **kwargs)
    batch = models.example_batch(name, batch_size, **batch_kwargs, **kwargs)
    predicted = profile(model, batch, recipe).totals["peak"]
    assert predicted == pytest.approx(real_peak(recipe, model, batch), rel=0.03)


@pytest.fixture(scope="module")
def mbv2() -> tuple[nn.Module, tuple, RecipeMemoryReport]:
    """MobileNetV2-0.35 at 64x64, batch 4, and its full-training report."""
    model = models.build("mobilenetv2", **MBV2)
    batch = models.example_batch("mobilenetv2", 4, resolution=64, **MBV2)
    return model, batch, profile(model, batch, Recipe(Full()))


def test_checkpointing_keeps_far_fewer_activations(mbv2: tuple) -> None:
    model, batch, full = mbv2
    ckpt = profile(model, batch, Recipe(Full(), Checkpointing(4)))
    ratio = ckpt.totals["activations"] / full.totals["activations"]
    print(
        f"checkpointing(4) / full, activations {ratio:.3f}, peak {ckpt.totals['peak'] / full.totals['peak']:.3f}"
    )
    assert ratio < 0.05  # 0.026 measured: 284 KB of 11.1 MB
    assert ckpt.totals["peak"] < 0.8 * full.totals["peak"]  # the recompute of one segment stays
    assert ckpt.totals["gradients"] == full.totals["gradients"]
    assert ckpt.flops["total"] > full.flops["total"]  # paid in FLOPs
    assert "segment 0 (features.0 .. features.4)" in str(ckpt)


def test_last_layer_needs_far_fewer_activations_than_full(mbv2: tuple) -> None:
    model, batch, full = mbv2
    head = profile(model, batch, Recipe(LastLayer()))
    assert head.totals["activations"] < 0.01 * full.totals["activations"]  # 20.7 KB vs 11.1 MB
    assert head.totals["gradients"] == (1280 * 10 + 10) * 4
    assert head.totals["peak"] < 0.5 * full.totals["peak"]


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (SGD(), lambda nbytes, tensors: 0),
        (Momentum(), lambda nbytes, tensors: nbytes),
        (Adam(), lambda nbytes, tensors: 2 * nbytes + 4 * tensors),  # + one 4-byte step per tensor
        (AdamW(), lambda nbytes, tensors: 2 * nbytes + 4 * tensors),
    ],
)
def test_optimizer_part_sets_optimizer_bytes(part, expected) -> None:  # noqa: ANN001
    recipe = Recipe(BiasOnly(), part)
    model = models.build("cnn")
    summary = recipe.describe(model)
    assert (summary.trainable_bytes, summary.trainable_tensors) == ((112 + 650) * 4, 5)
    report = profile(model, models.example_batch("cnn", 4, resolution=16), recipe)
    assert report.totals["optimizer"] == expected(
        summary.trainable_bytes, summary.trainable_tensors
    )
    assert report.totals["gradients"] == summary.trainable_bytes


def test_micro_batches_measure_one_chunk_and_keep_the_gradients() -> None:
    model = models.build("cnn")
    batch = models.example_batch("cnn", 16, resolution=32)
    full = profile(model, batch, Recipe(Full()))
    mb = profile(model, batch, Recipe(Full(), MicroBatch(4)))
    chunk = tuple(t[:4].clone() for t in batch)
    alone = memory.profile_training(model, chunk)
    assert mb.totals["activations"] == alone.totals["activations"]
    assert (mb.micro_batches, mb.micro_batch_size, mb.batch_bytes) == (4, 4, full.batch_bytes)
    ratio = mb.totals["peak"] / full.totals["peak"]
    print(f"micro-batches(4) / full, peak {ratio:.3f}")
    assert ratio < 0.4
    assert mb.totals["peak"] > alone.totals["peak"]  # every gradient alive, the whole batch held
    start = mb.timeline.events[0]
    assert start.live["gradients"] == full.totals["gradients"]
    assert start.live["batch"] == full.batch_bytes


def test_memory_report_leaves_the_model_alone() -> None:
    model = models.build("mobilenetv2", **MBV2)
    flags = [p.requires_grad for p in model.parameters()]
    stats = model.features[0].bn.running_mean.clone()
    report = profile(model, models.example_batch("mobilenetv2", 2, resolution=32, **MBV2), Recipe(BiasOnly(), Checkpointing(3), MicroBatch(2, bn="frozen")))
    assert report.recipe == "bias-only+ckpt(3)+mb(2,bn-frozen)"
    assert type(model.features) is nn.Sequential and type(model.features[0].bn) is nn.BatchNorm2d
    assert flags == [p.requires_grad for p in model.parameters()]
    assert torch.equal(stats, model.features[0].bn.running_mean)
    assert not isinstance(model.features, CheckpointedSequential)


def test_engine_accounting_works_with_micro_batches() -> None:
    batch = models.example_batch("cnn", 8, resolution=16)
    engine = profile(models.build("cnn"), batch, Recipe(Full(), MicroBatch(2)), accounting="engine")
    pytorch = profile(models.build("cnn"), batch, Recipe(Full(), MicroBatch(2)))
    assert (
        engine.accounting == "engine"
        and engine.totals["activations"] < pytorch.totals["activations"]
    )
