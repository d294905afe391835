"""odtlab.recipes in training: micro-batches, checkpointing, BatchNorm options, train_step."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from odtlab import data, models
from odtlab.recipes import (
    SGD,
    Adam,
    BiasOnly,
    Checkpointing,
    Full,
    LastLayer,
    MicroBatch,
    Recipe,
)
from odtlab.recipes.activations import checkpointing, split_batch

MBV2 = {"width_mult": 0.35, "num_classes": 10}


def step(
    recipe: Recipe, model: nn.Module, batch: tuple, seed: int = 1
) -> tuple[float, dict[str, torch.Tensor], nn.Module]:
    """One train_step on a prepared copy with plain SGD(lr=1): returns loss, gradients, model."""
    net = recipe.prepare(copy.deepcopy(model)).train()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1.0)
    torch.manual_seed(seed)  # same dropout masks for every recipe
    loss = recipe.train_step(net, *batch, None, opt)
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    return loss, grads, net


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[n] - b[n]).abs().max().item() for n in a)


# ---- micro-batches ---------------------------------------------------------------------------------------
def test_split_batch_uneven_chunks_are_weighted_by_size() -> None:
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    chunks = split_batch(x, y, 4)
    assert [len(c[0]) for c in chunks] == [3, 3, 2, 2]
    assert [c[2] for c in chunks] == [0.3, 0.3, 0.2, 0.2]
    assert torch.equal(torch.cat([c[1] for c in chunks]), y)
    assert [len(c[0]) for c in split_batch(x[:3], y[:3], 8)] == [1, 1, 1]  # n > B: B chunks


@pytest.mark.parametrize(("batch_size", "n"), [(16, 4), (10, 4), (7, 3), (3, 8)])
def test_micro_batches_give_the_full_batch_gradient_mlp(batch_size: int, n: int) -> None:
    model = models.build("mlp")
    batch = models.example_batch("mlp", batch_size)
    loss, grads, _ = step(Recipe(Full()), model, batch)
    loss_mb, grads_mb, _ = step(Recipe(Full(), MicroBatch(n)), model, batch)
    assert max_difference(grads, grads_mb) < 1e-6
    assert loss_mb == pytest.approx(loss, abs=1e-6)  # the full batch's mean loss


def test_micro_batches_give_the_full_batch_gradient_transformer() -> None:
    model = models.build("transformer", seq_len=16)
    batch = models.example_batch("transformer", 10, seq_len=16)
    loss, grads, _ = step(Recipe(Full()), model, batch)
    loss_mb, grads_mb, _ = step(Recipe(Full(), MicroBatch(4)), model, batch)
    assert max_difference(grads, grads_mb) < 1e-6
    assert loss_mb == pytest.approx(loss, abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), batch_size=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_micro_batch_property(n: int, batch_size: int, seed: int) -> None:
    model = models.mlp(in_features=6, hidden=(8,), num_classes=3, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    batch = (
        torch.randn(batch_size, 6, generator=gen),
        torch.randint(0, 3, (batch_size,), generator=gen),
    )
    _, grads, _ = step(Recipe(Full()), model, batch)
    _, grads_mb, _ = step(Recipe(Full(), MicroBatch(n)), model, batch)
    assert max_difference(grads, grads_mb) < 1e-6


def test_batchnorm_makes_micro_batches_differ_unless_frozen_or_grouped() -> None:
    model = models.build("cnn")
    batch = models.example_batch("cnn", 8, resolution=16)
    _, full, _ = step(Recipe(Full()), model, batch)
    _, keep, _ = step(Recipe(Full(), MicroBatch(4)), model, batch)
    assert max_difference(full, keep) > 1e-3  # statistics per micro-batch: another gradient
    for bn in ("frozen", "group"):
        _, whole, _ = step(Recipe(Full(), MicroBatch(1, bn=bn)), model, batch)
        _, split, _ = step(Recipe(Full(), MicroBatch(4, bn=bn)), model, batch)
        assert max_difference(whole, split) < 1e-5, bn


def test_train_step_reduces_the_loss() -> None:
    digits = data.digits("train")  # a real tiny task: 8x8 digits, shipped with scikit-learn
    x = torch.stack([digits[i][0] for i in range(64)])
    y = torch.stack([torch.as_tensor(digits[i][1]) for i in range(64)])
    model = models.build("mlp")
    recipes = (
        Recipe(Full(), SGD(lr=0.3)),
        Recipe(BiasOnly(), MicroBatch(4), Adam(lr=0.05)),
        Recipe(Full(), Checkpointing(2), Adam(lr=0.01)),
    )
    for recipe in recipes:
        net = recipe.prepare(copy.deepcopy(model)).train()
        opt = recipe.make_optimizer(net.parameters())
        losses = [recipe.train_step(net, x, y, None, opt) for _ in range(15)]
        assert isinstance(losses[0], float)
        assert losses[-1] < 0.5 * losses[0], (recipe.name, losses)


# ---- checkpointing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs", "batch_kwargs", "segments"),
    [
        ("mobilenetv2", MBV2, {"resolution": 32}, 3),
        ("cnn", {}, {"resolution": 16}, 5),
        ("transformer", {"seq_len": 8, "dropout": 0.2}, {}, 2),  # dropout inside the segments
        ("mlp", {}, {}, 2),
    ],
)
def test_checkpointing_gives_identical_gradients(
    name: str, kwargs: dict, batch_kwargs: dict, segments: int
) -> None:
    model = models.build(name, **kwargs)
    batch = models.example_batch(name, 4, **batch_kwargs, **kwargs)
    loss, grads, plain = step(Recipe(Full()), model, batch)
    loss_ck, grads_ck, ckpt = step(Recipe(Full(), Checkpointing(segments)), model, batch)
    assert loss_ck == loss
    assert max_difference(grads, grads_ck) == 0.0  # bit for bit
    for (n, a), (_, b) in zip(plain.named_buffers(), ckpt.named_buffers(), strict=True):
        assert torch.equal(a, b), n  # running statistics moved once, not twice


def test_naive_recompute_would_update_batchnorm_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    model = models.build("cnn")
    batch = models.example_batch("cnn", 4, resolution=16)
    monkeypatch.setattr(
        checkpointing, "_running_stats_restored", lambda layers: contextlib.nullcontext()
    )
    _, grads_naive, naive = step(Recipe(Full(), Checkpointing(2)), model, batch)
    assert int(naive.features.block1.bn.num_batches_tracked) == 2  # one step, two updates
    _, grads, plain = step(Recipe(Full()), model, batch)
    assert int(plain.features.block1.bn.num_batches_tracked) == 1
    assert not torch.equal(
        naive.features.block1.bn.running_mean, plain.features.block1.bn.running_mean
    )
    assert max_difference(grads, grads_naive) == 0.0  # gradients were fine; statistics were not


def test_frozen_segments_are_not_checkpointed() -> None:
    model = Recipe(LastLayer(), Checkpointing(2)).prepare(models.build("cnn"))
    calls = []
    original = checkpointing.checkpoint

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpointing, "checkpoint", spy)
        model(models.example_batch("cnn", 2, resolution=16)[0])
        assert calls == []  # nothing needs a gradient in the trunk: plain run
        Recipe(Full(), Checkpointing(2)).prepare(model)
        model(models.example_batch("cnn", 2, resolution=16)[0])
        assert len(calls) == 2
