"""What to do with BatchNorm when the batch gets small: keep it, freeze it, or swap it for GroupNorm.

BatchNorm in train mode normalises each channel with the mean and variance
of *the batch it sees*. Split a batch of 16 into 4 micro-batches and every
BatchNorm sees 4 examples: other statistics, other outputs, other
gradients. Three ways to deal with it:

==========  ===============================================================
``"keep"``  leave BatchNorm as it is (statistics per micro-batch: results
            differ from the full batch, and are noisier for tiny batches)
``"frozen"`` normalise with the *running* statistics, never update them
            (eval behaviour, kept even when ``model.train()`` is called);
            each example is then processed on its own, so micro-batching
            equals the full batch. gamma and beta still learn if the
            trainable rule says so (``Full()`` trains them, ``BiasOnly()``
            trains beta only, ``LastLayer()`` neither). Right for fine-tuning
            a pretrained model; useless from scratch (the statistics stay at
            their initial 0 and 1)
``"group"`` replace every BatchNorm by ``nn.GroupNorm`` with the same
            channels, ``eps`` and (copied) gamma and beta; GroupNorm
            normalises each example over groups of channels, so it does not
            depend on the batch at all. The number of groups is the largest
            divisor of the channel count that is ``<= groups`` (8 by
            default: 16 channels get 8 groups, 24 get 8, 12 get 6). It
            changes the function the model computes: pretrained BatchNorm
            statistics are lost, and the running-statistics buffers leave
            ``state_dict()``
==========  ===============================================================

Use them through ``MicroBatch(4, bn="frozen")`` or, without micro-batches,
``BatchNormPolicy("frozen")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.base import RecipePart, check_choice, check_positive_int, register_kind

__all__ = [
    "BN_MODES",
    "BATCHNORM_TYPES",
    "BatchNormPolicy",
    "FrozenBatchNorm1d",
    "FrozenBatchNorm2d",
    "FrozenBatchNorm3d",
    "freeze_batchnorm",
    "unfreeze_batchnorm",
    "batchnorm_to_groupnorm",
    "group_count",
    "set_batchnorm_mode",
]

BN_MODES = ("keep", "frozen", "group")
BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _FrozenStatistics:
    """Mixin: a BatchNorm that stays in eval mode, whatever ``model.train()`` says."""

    def train(self, mode: bool = True):  # type: ignore[no-untyped-def]
        return super().train(False)  # type: ignore[misc]


class FrozenBatchNorm1d(_FrozenStatistics, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that always normalises with its running statistics."""


class FrozenBatchNorm2d(_FrozenStatistics, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that always normalises with its running statistics.

    Same parameters, buffers and ``state_dict`` keys as ``nn.BatchNorm2d``;
    only ``train()`` differs: it keeps the layer in eval mode.
    """


class FrozenBatchNorm3d(_FrozenStatistics, nn.BatchNorm3d):
    """``nn.BatchNorm3d`` that always normalises with its running statistics."""


_FROZEN = {
    nn.BatchNorm1d: FrozenBatchNorm1d,
    nn.BatchNorm2d: FrozenBatchNorm2d,
    nn.BatchNorm3d: FrozenBatchNorm3d,
}
_UNFROZEN = {frozen: plain for plain, frozen in _FROZEN.items()}


def _batchnorms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BATCHNORM_TYPES)]


def freeze_batchnorm(model: nn.Module) -> int:
    """Make every BatchNorm of ``model`` use (and keep) its running statistics.

    The layers' class becomes :class:`FrozenBatchNorm2d` (or 1d/3d), a
    subclass whose ``train()`` keeps eval mode; weights, buffers and hooks
    are untouched. Returns the number of layers frozen now.

    Raises
    ------
    InvalidRecipe
        If a BatchNorm has no running statistics (``track_running_stats=False``).

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    >>> freeze_batchnorm(net), net.train()[1].training
    (1, False)
    """
    count = 0
    for name, m in _batchnorms(model):
        if type(m) in _UNFROZEN:
            continue
        if m.running_mean is None or type(m) not in _FROZEN:
            raise InvalidRecipe(
                f"BatchNorm {name!r} ({type(m).__name__}, track_running_stats="
                f"{m.track_running_stats}) cannot be frozen: it needs running statistics of the "
                "plain nn.BatchNorm1d/2d/3d kind; use bn='group' instead"
            )
        m.__class__ = _FROZEN[type(m)]
        m.training = False
        count += 1
    return count


def unfreeze_batchnorm(model: nn.Module) -> int:
    """Undo :func:`freeze_batchnorm`: back to plain BatchNorm in the model's mode."""
    count = 0
    for _, m in _batchnorms(model):
        if type(m) in _UNFROZEN:
            m.__class__ = _UNFROZEN[type(m)]
            m.training = model.training
            count += 1
    return count


def group_count(channels: int, groups: int = 8) -> int:
    """The largest divisor of ``channels`` that is at most ``groups``.

    Examples
    --------
    >>> group_count(16), group_count(24), group_count(12), group_count(7)
    (8, 8, 6, 7)
    """
    return max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)


def batchnorm_to_groupnorm(model: nn.Module, groups: int = 8) -> int:
    """Replace every BatchNorm of ``model`` by ``nn.GroupNorm`` (in place); return how many.

    Each GroupNorm has :func:`group_count` groups, the BatchNorm's ``eps``
    and ``affine``, and a copy of its gamma (``weight``) and beta (``bias``),
    so parameter names stay the same. Running statistics are dropped.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16))
    >>> batchnorm_to_groupnorm(net), net[1].num_groups, net[1].num_channels
    (1, 8, 16)
    """
    count = 0
    for name, bn in _batchnorms(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        ref = bn.weight if bn.weight is not None else bn.running_mean
        gn = nn.GroupNorm(
            group_count(bn.num_features, groups), bn.num_features, eps=bn.eps, affine=bn.affine,
            device=ref.device if ref is not None else None,
            dtype=ref.dtype if ref is not None else None,
        )  # fmt: skip
        if bn.affine:
            with torch.no_grad():
                gn.weight.copy_(bn.weight)
                gn.bias.copy_(bn.bias)
            gn.weight.requires_grad_(bn.weight.requires_grad)
            gn.bias.requires_grad_(bn.bias.requires_grad)
        gn.train(model.training)  # GroupNorm behaves the same in both modes
        setattr(parent, child, gn)
        count += 1
    return count


def set_batchnorm_mode(model: nn.Module, mode: str, groups: int = 8) -> None:
    """Put every BatchNorm of ``model`` in ``mode`` (``"keep"``, ``"frozen"`` or ``"group"``).

    ``"keep"`` also undoes an earlier ``"frozen"``; ``"group"`` cannot be
    undone (the BatchNorm layers are gone).
    """
    check_choice("BatchNormPolicy", "mode", mode, BN_MODES)
    if mode == "keep":
        unfreeze_batchnorm(model)
    elif mode == "frozen":
        freeze_batchnorm(model)
    else:
        batchnorm_to_groupnorm(model, groups)


@dataclass(frozen=True)
class BatchNormPolicy(RecipePart):
    """A recipe part that sets how BatchNorm behaves (see the table in this module).

    ``MicroBatch(n, bn=...)`` does the same for micro-batching; give one or
    the other. A recipe without either leaves BatchNorm in ``"keep"`` mode
    (and un-freezes layers frozen by an earlier recipe).

    Parameters
    ----------
    mode : {"keep", "frozen", "group"}
    groups : int
        Most GroupNorm groups for ``"group"`` (largest divisor of the channels).

    Examples
    --------
    >>> BatchNormPolicy("frozen").name, BatchNormPolicy("group").name
    ('bn-frozen', 'bn-group')
    """

    kind: ClassVar[str] = "batchnorm"
    mode: str = "keep"
    groups: int = 8

    def __post_init__(self) -> None:
        check_choice("BatchNormPolicy", "mode", self.mode, BN_MODES)
        check_positive_int("BatchNormPolicy", "groups", self.groups)

    @property
    def name(self) -> str:
        return f"bn-{self.mode}"

    def apply(self, model: nn.Module) -> None:
        set_batchnorm_mode(model, self.mode, self.groups)


# Without a policy a recipe puts BatchNorm back in "keep" mode (undoing an earlier freeze).
register_kind("batchnorm", stage=30, default=BatchNormPolicy)
