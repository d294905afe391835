"""Activation checkpointing: keep less for backward, compute some of the forward twice.

The model's main sequential trunk (``model.features`` in the zoo) is cut
into ``segments`` groups of consecutive layers. Each group runs under
:func:`torch.utils.checkpoint.checkpoint` (non-reentrant,
``use_reentrant=False``): during the forward pass the group keeps *only its
input*; everything its layers would save for backward is dropped. When the
backward pass reaches the group, its forward is run again (the
*recompute*) to get those tensors back, one group at a time. Memory: the
group inputs plus the largest group's saved tensors, instead of all saved
tensors. Cost: about one extra forward pass of the trunk.

How it is installed. :func:`checkpoint_trunk` switches the trunk's class
from ``nn.Sequential`` to :class:`CheckpointedSequential`, a subclass whose
``forward`` runs the groups under ``checkpoint``. Nothing else changes:
parameter names, ``state_dict()``, hooks and the module tree are the same.
Unlike :func:`torch.utils.checkpoint.checkpoint_sequential`, which leaves its
last segment un-checkpointed, *every* group here is checkpointed, so
``Checkpointing(1)`` checkpoints the whole trunk. A group in which nothing
needs a gradient (a frozen backbone) runs plainly: there is nothing to save.

Gradients are **identical** to training without checkpointing: the
recompute runs the same operations on the same inputs with the same random
state (``preserve_rng_state``). Bit for bit on the CPU; on a CUDA GPU equal
to float rounding (1e-7 seen on an H100 for MobileNetV2, where cuDNN may
pick another convolution algorithm for the recompute).

BatchNorm's running statistics. In train mode a BatchNorm updates
``running_mean``, ``running_var`` and ``num_batches_tracked`` every time it
runs, so a naive recompute would update them twice per step (the moving
average would forget twice as fast). Here the recompute still normalises
with the batch statistics (so the saved tensors and the gradients are
exactly those of the first pass), and the three buffers of every BatchNorm
in the group are put back to their values from before the recompute. The
tests check that running statistics after a checkpointed step equal those
after a plain step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from odtlab.errors import InvalidRecipe
from odtlab.recipes.activations.batchnorm import BATCHNORM_TYPES
from odtlab.recipes.activations.inplace import INPLACE_TYPES
from odtlab.recipes.base import RecipePart, check_positive_int, register_kind

if TYPE_CHECKING:
    from odtlab.recipes.recipe import Recipe

__all__ = [
    "Checkpointing",
    "CheckpointedSequential",
    "find_trunk",
    "segment_bounds",
    "plan_segments",
    "checkpoint_trunk",
    "remove_checkpointing",
    "checkpointed_trunk",
    "checkpointing_disabled",
]

#: ``probe(segment index, layers, input) -> output``: runs a segment instead of checkpoint.
Probe = Callable[[int, list[nn.Module], torch.Tensor], torch.Tensor]


def _run(layers: list[nn.Module], x: Any) -> Any:
    for layer in layers:
        x = layer(x)
    return x


@contextlib.contextmanager
def _running_stats_restored(layers: list[nn.Module]) -> Iterator[None]:
    """Put every training BatchNorm's running statistics back after the block."""
    saved = []
    for layer in layers:
        for m in layer.modules():
            if isinstance(m, BATCHNORM_TYPES) and m.training and m.running_mean is not None:
                stats = [m.running_mean, m.running_var, m.num_batches_tracked]
                saved.append([(t, t.detach().clone()) for t in stats if t is not None])
    try:
        yield
    finally:
        with torch.no_grad():
            for pairs in saved:
                for buffer, value in pairs:
                    buffer.copy_(value)


class _Segment:
    """One group's function for ``checkpoint``: the first call is the forward, later calls recompute."""

    def __init__(self, layers: list[nn.Module]) -> None:
        self.layers = layers
        self.calls = 0

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            return _run(self.layers, x)
        with _running_stats_restored(self.layers):
            return _run(self.layers, x)


def _needs_grad(layers: list[nn.Module], x: Any) -> bool:
    if isinstance(x, torch.Tensor) and x.requires_grad:
        return True
    return any(p.requires_grad for layer in layers for p in layer.parameters())


class CheckpointedSequential(nn.Sequential):
    """An ``nn.Sequential`` whose children run in checkpointed groups.

    Made by :func:`checkpoint_trunk` (it switches an ``nn.Sequential``'s class
    in place). Attributes:

    ``segment_bounds``
        ``((start, stop), ...)``: the children ``start:stop`` form one group.
    ``checkpoint_enabled``
        ``False`` runs it as a plain ``nn.Sequential`` (used to count FLOPs).
    """

    segment_bounds: tuple[tuple[int, int], ...]
    checkpoint_enabled: bool = True
    _probe: Probe | None = None

    def forward(self, input: Any) -> Any:  # noqa: A002 - the name nn.Sequential uses
        layers = list(self._modules.values())
        x = input
        for k, (start, stop) in enumerate(self.segment_bounds):
            group = [m for m in layers[start:stop] if m is not None]
            if self._probe is not None:
                x = self._probe(k, group, x)
            elif self.checkpoint_enabled and torch.is_grad_enabled() and _needs_grad(group, x):
                x = checkpoint(_Segment(group), x, use_reentrant=False)
            else:
                x = _run(group, x)
        return x


def find_trunk(model: nn.Module, name: str | None = None) -> tuple[str, nn.Sequential]:
    """The main sequential trunk of ``model``: ``(its name, the module)``.

    ``name`` picks it explicitly. Otherwise: ``model.features`` if it is an
    ``nn.Sequential`` (every zoo CNN); else ``model`` itself if it is an
    ``nn.Sequential`` (name ``""``); else the top-level ``nn.Sequential``
    child with the most children (``blocks`` in the tiny transformer).

    Raises
    ------
    InvalidRecipe
        If there is no such trunk.

    Examples
    --------
    >>> from odtlab import models
    >>> find_trunk(models.build("transformer"))[0]
    'blocks'
    """
    if name is not None:
        try:
            trunk = model.get_submodule(name)
        except AttributeError:
            trunk = None
        if not isinstance(trunk, nn.Sequential):
            raise InvalidRecipe(
                f"Checkpointing(trunk={name!r}): {type(model).__name__} has no nn.Sequential "
                f"called {name!r}; its top-level modules are "
                f"{', '.join(repr(n) for n, _ in model.named_children())}"
            )
        return name, trunk
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return "features", features
    if isinstance(model, nn.Sequential):
        return "", model
    children = [(n, m) for n, m in model.named_children() if isinstance(m, nn.Sequential)]
    if not children:
        raise InvalidRecipe(
            f"Checkpointing needs a main sequential trunk to cut into segments: "
            f"{type(model).__name__} has no 'features' nn.Sequential and no top-level "
            "nn.Sequential; put the repeated layers in an nn.Sequential, or pass "
            "Checkpointing(segments, trunk='name of that Sequential')"
        )
    return max(children, key=lambda nc: len(nc[1]))


def segment_bounds(layers: int, segments: int) -> tuple[tuple[int, int], ...]:
    """Cut ``layers`` consecutive children into ``segments`` groups, sizes differing by at most 1.

    Examples
    --------
    >>> segment_bounds(10, 4)
    ((0, 3), (3, 6), (6, 8), (8, 10))
    """
    size, extra = divmod(layers, segments)
    bounds, start = [], 0
    for k in range(segments):
        stop = start + size + (1 if k < extra else 0)
        bounds.append((start, stop))
        start = stop
    return tuple(bounds)


def _first_leaf(module: nn.Module) -> nn.Module:
    while True:
        child = next(module.children(), None)
        if child is None:
            return module
        module = child


def plan_segments(
    model: nn.Module,
    segments: int | None = None,
    trunk: str | None = None,
    *,
    inplace: bool | None = None,
) -> tuple[str, nn.Sequential, tuple[tuple[int, int], ...]]:
    """Check that ``model``'s trunk can be checkpointed in ``segments`` groups; change nothing.

    Returns ``(trunk name, trunk, segment bounds)``. ``segments=None`` uses
    ``round(sqrt(number of children))`` groups, the classic choice that
    balances kept inputs against the largest recompute (Chen et al., 2016,
    "Training deep nets with sublinear memory cost"). ``inplace`` tells
    what the activations' ``inplace`` flags will be (``None``: as they are).

    Raises
    ------
    InvalidRecipe
        No plain ``nn.Sequential`` trunk, more segments than its children,
        or a segment that starts with an in-place activation (it would
        overwrite the input that the checkpoint keeps).
    """
    name, module = find_trunk(model, trunk)
    label = f"{type(model).__name__}.{name}" if name else type(model).__name__
    if type(module) not in (nn.Sequential, CheckpointedSequential):
        raise InvalidRecipe(
            f"Checkpointing: the trunk {label} is a {type(module).__name__}, a subclass of "
            "nn.Sequential with its own behaviour; checkpointing only rewires a plain "
            "nn.Sequential. Pass Checkpointing(trunk=...) naming a plain nn.Sequential"
        )
    count = len(module)
    wanted = max(1, round(math.sqrt(count))) if segments is None else segments
    if wanted > count:
        raise InvalidRecipe(
            f"Checkpointing(segments={wanted}) asks for more segments than the {count} layers "
            f"of {label}; use segments between 1 and {count}"
        )
    bounds = segment_bounds(count, wanted)
    layers = list(module.children())
    for start, _ in bounds:
        leaf = _first_leaf(layers[start])
        if isinstance(leaf, INPLACE_TYPES) and (leaf.inplace if inplace is None else inplace):
            raise InvalidRecipe(
                f"Checkpointing: segment starting at layer {start} of {label} begins with an "
                f"in-place {type(leaf).__name__}, which would overwrite the input the checkpoint "
                "keeps; choose another segment count or add InPlaceActivations(False)"
            )
    return name, module, bounds


def checkpoint_trunk(
    model: nn.Module, segments: int | None = None, trunk: str | None = None
) -> tuple[str, CheckpointedSequential]:
    """Checkpoint the trunk of ``model`` in ``segments`` groups (in place); return it.

    See :func:`plan_segments` for the checks and the choice of ``segments=None``.

    Examples
    --------
    >>> from odtlab import models
    >>> name, trunk = checkpoint_trunk(models.build("cnn"), 2)
    >>> name, type(trunk).__name__, trunk.segment_bounds
    ('features', 'CheckpointedSequential', ((0, 3), (3, 5)))
    """
    name, module, bounds = plan_segments(model, segments, trunk)
    module.__class__ = CheckpointedSequential
    module.segment_bounds = bounds  # type: ignore[attr-defined]
    module.checkpoint_enabled = True  # type: ignore[attr-defined]
    return name, module  # type: ignore[return-value]


def remove_checkpointing(model: nn.Module) -> int:
    """Turn every :class:`CheckpointedSequential` in ``model`` back into ``nn.Sequential``."""
    count = 0
    for m in model.modules():
        if isinstance(m, CheckpointedSequential):
            m.__class__ = nn.Sequential
            for attr in ("segment_bounds", "checkpoint_enabled", "_probe"):
                m.__dict__.pop(attr, None)
            count += 1
    return count


def checkpointed_trunk(model: nn.Module) -> tuple[str, CheckpointedSequential] | None:
    """The checkpointed trunk of ``model`` (name, module), or ``None``."""
    for name, m in model.named_modules():
        if isinstance(m, CheckpointedSequential):
            return name, m
    return None


@contextlib.contextmanager
def checkpointing_disabled(model: nn.Module) -> Iterator[None]:
    """Run every checkpointed trunk of ``model`` plainly inside the block."""
    trunks = [m for m in model.modules() if isinstance(m, CheckpointedSequential)]
    before = [m.checkpoint_enabled for m in trunks]
    try:
        for m in trunks:
            m.checkpoint_enabled = False
        yield
    finally:
        for m, flag in zip(trunks, before, strict=True):
            m.checkpoint_enabled = flag


@contextlib.contextmanager
def probing(trunk: CheckpointedSequential, probe: Probe) -> Iterator[None]:
    """Let ``probe`` run each segment of ``trunk`` inside the block (memory measurement)."""
    trunk._probe = probe
    try:
        yield
    finally:
        trunk.__dict__.pop("_probe", None)


@dataclass(frozen=True)
class Checkpointing(RecipePart):
    """Checkpoint the model's trunk in ``segments`` groups (see this module's docstring).

    Parameters
    ----------
    segments : int or None
        Number of groups, between 1 and the number of trunk children (4 by
        default); ``None``: ``round(sqrt(children))``.
    trunk : str or None
        Name of the ``nn.Sequential`` to cut; ``None`` finds it
        (:func:`find_trunk`).

    Examples
    --------
    >>> Checkpointing(4).name, Checkpointing(None).name
    ('ckpt(4)', 'ckpt(sqrt)')
    """

    kind: ClassVar[str] = "checkpointing"
    segments: int | None = 4
    trunk: str | None = None

    def __post_init__(self) -> None:
        if self.segments is not None:
            check_positive_int("Checkpointing", "segments", self.segments)

    @property
    def name(self) -> str:
        return f"ckpt({'sqrt' if self.segments is None else self.segments})"

    def validate(self, model: nn.Module, recipe: Recipe) -> None:
        """Check that the trunk exists and can be cut in :attr:`segments` (changes nothing)."""
        act = recipe.part("activations")
        inplace = getattr(act, "enabled", None) if act is not None else None
        plan_segments(model, self.segments, self.trunk, inplace=inplace)

    def apply(self, model: nn.Module) -> None:
        remove_checkpointing(model)
        checkpoint_trunk(model, self.segments, self.trunk)


# A recipe without checkpointing removes what an earlier recipe installed.
register_kind("checkpointing", stage=50, when_absent=remove_checkpointing)
