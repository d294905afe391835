"""Micro-batches with gradient accumulation: a big batch's gradient, a small batch's activations.

One training step on a batch of ``B`` examples is run as ``n`` smaller
forward/backward passes. Each chunk's mean loss is scaled by
``len(chunk) / B`` before ``backward()``; PyTorch *adds* gradients into
``.grad``, so after the last chunk ``.grad`` holds

.. math::

    \\sum_c \\frac{|c|}{B} \\nabla \\mathrm{mean}_{i \\in c}\\, \\ell_i
    = \\nabla \\frac{1}{B} \\sum_i \\ell_i,

the gradient of the full batch's mean loss, and one ``optimizer.step()``
follows. Only one chunk's activations are alive at a time.

Rules:

* chunks come from :func:`torch.tensor_split` along dimension 0: when ``n``
  does not divide ``B`` their sizes differ by one (``B=10, n=4``: 3, 3, 2,
  2) and each is weighted by its own size, so the result is still exact;
  with ``B < n`` there are ``B`` chunks of one example;
* ``loss_fn`` must return the *mean* over the examples of the chunk
  (``reduction="mean"``, PyTorch's default; a sequence model may average
  over tokens too, as long as every example has the same number of them);
* the equality holds for layers without batch statistics (Linear, Conv,
  LayerNorm, GroupNorm, attention...). **BatchNorm in train mode normalises
  each micro-batch with its own statistics, so micro-batching changes the
  result**; use ``bn="frozen"`` or ``bn="group"`` (see
  :mod:`odtlab.recipes.activations.batchnorm`) to make it exact again. Dropout draws
  different masks too (the random stream is consumed in another order).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.activations.batchnorm import BN_MODES, BatchNormPolicy
from odtlab.recipes.base import RecipePart, check_choice, check_positive_int, register_kind

if TYPE_CHECKING:
    from odtlab.recipes.precision.mixed import PrecisionPart

__all__ = [
    "MicroBatch",
    "split_batch",
    "accumulate_step",
    "default_loss",
    "explain_tiny_batch",
]

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


def default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (mean); sequence logits ``(B, T, C)`` with targets ``(B, T)`` are flattened."""
    if outputs.dim() > 2 and targets.dim() == outputs.dim() - 1:
        outputs, targets = outputs.flatten(0, -2), targets.flatten()
    return F.cross_entropy(outputs, targets)


def _rows(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return int(x.shape[0]) if x.dim() else 0
    if isinstance(x, (tuple, list)) and x and all(isinstance(t, torch.Tensor) for t in x):
        return _rows(x[0])
    raise InvalidRecipe(
        f"inputs must be a tensor (or a tuple of tensors) with the batch in dimension 0; "
        f"got {type(x).__name__}"
    )


def _split(x: Any, n: int) -> list[Any]:
    if isinstance(x, torch.Tensor):
        return list(torch.tensor_split(x, n))
    parts = [_split(t, n) for t in x]
    return [type(x)(chunk) for chunk in zip(*parts, strict=True)]


def split_batch(
    inputs: Any, targets: torch.Tensor, n: int
) -> list[tuple[Any, torch.Tensor, float]]:
    """Cut a batch into ``min(n, B)`` chunks: ``[(inputs, targets, weight), ...]``.

    The chunks are views (no copy); ``weight = len(chunk) / B`` and the
    weights add up to 1.

    Examples
    --------
    >>> x, y = torch.zeros(10, 3), torch.zeros(10, dtype=torch.long)
    >>> [(len(a), w) for a, _, w in split_batch(x, y, 4)]
    [(3, 0.3), (3, 0.3), (2, 0.2), (2, 0.2)]
    """
    batch = _rows(inputs)
    if batch < 1 or not isinstance(targets, torch.Tensor) or targets.dim() == 0:
        raise InvalidRecipe(
            "a training batch needs at least one example and targets with the batch in "
            f"dimension 0; got {batch} inputs and targets {type(targets).__name__}"
        )
    if int(targets.shape[0]) != batch:
        raise InvalidRecipe(
            f"inputs hold {batch} examples but targets hold {int(targets.shape[0])}; "
            "pass matching (inputs, targets)"
        )
    count = min(n, batch)
    xs, ys = _split(inputs, count), list(torch.tensor_split(targets, count))
    return [(x, y, _rows(x) / batch) for x, y in zip(xs, ys, strict=True)]


def explain_tiny_batch(err: BaseException, examples: int) -> InvalidRecipe | None:
    """An :class:`InvalidRecipe` explaining BatchNorm's "more than 1 value per channel" error."""
    text = f"{err} {err.__cause__ or ''}"
    if "more than 1 value per channel" not in text:
        return None
    return InvalidRecipe(
        f"a micro-batch of {examples} example(s) reaches a BatchNorm with a single value per "
        "channel, so it has no batch statistics to normalise with; use fewer micro-batches, "
        "MicroBatch(n, bn='frozen') or MicroBatch(n, bn='group')"
    )


def accumulate_step(
    model: nn.Module,
    inputs: Any,
    targets: torch.Tensor,
    loss_fn: LossFn | None,
    optimizer: torch.optim.Optimizer,
    micro_batches: int = 1,
    *,
    precision: PrecisionPart | None = None,
) -> float:
    """One optimizer step on ``(inputs, targets)`` in ``micro_batches`` chunks.

    ``optimizer.zero_grad()``, then for each chunk
    ``(loss_fn(model(x), y) * len(x) / B).backward()``, then
    ``optimizer.step()``. The model's train/eval mode is left as it is.
    With a ``precision`` part (:class:`~odtlab.recipes.MixedPrecision`...),
    each chunk's forward pass and loss run under ``precision.autocast(model)``,
    and backward and step go through ``precision.backward`` and
    ``precision.step`` (where fp16 scales the loss).

    Returns
    -------
    float
        The mean loss over the whole batch (before the step).
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise InvalidRecipe(
            f"optimizer must be a torch.optim.Optimizer, e.g. recipe.make_optimizer("
            f"model.parameters()); got {type(optimizer).__name__}"
        )
    loss_fn = default_loss if loss_fn is None else loss_fn
    optimizer.zero_grad(set_to_none=True)
    total = None
    for x, y, weight in split_batch(inputs, targets, micro_batches):
        with contextlib.nullcontext() if precision is None else precision.autocast(model):
            try:
                outputs = model(x)
            except ValueError as err:
                better = explain_tiny_batch(err, _rows(x))
                if better is None:
                    raise
                raise better from err
            loss = loss_fn(outputs, y)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise InvalidRecipe("loss_fn must return a scalar tensor, the mean loss of the chunk")
        if precision is None:
            (loss * weight).backward()
        else:
            precision.backward(loss * weight, optimizer)
        part = loss.detach().float() * weight
        total = part if total is None else total + part
    if precision is None:
        optimizer.step()
    else:
        precision.step(optimizer)
    return float(total)  # type: ignore[arg-type]


@dataclass(frozen=True)
class MicroBatch(RecipePart):
    """Split each batch into ``n`` micro-batches and accumulate their gradients.

    Parameters
    ----------
    n : int
        Number of micro-batches (>= 1). Activation memory is that of a batch
        of ``ceil(B / n)``; the step takes about as long (a little longer).
    bn : {"keep", "frozen", "group"}
        What BatchNorm does (see :mod:`odtlab.recipes.activations.batchnorm`): ``"keep"``
        (statistics per micro-batch: results differ from the full batch),
        ``"frozen"`` (running statistics) or ``"group"`` (GroupNorm); with
        the last two, micro-batching gives the full batch's gradient.
    groups : int
        Most GroupNorm groups for ``bn="group"``.

    Examples
    --------
    >>> MicroBatch(4).name, MicroBatch(4, bn="frozen").name
    ('mb(4)', 'mb(4,bn-frozen)')
    """

    kind: ClassVar[str] = "micro-batch"
    n: int = 2
    bn: str = "keep"
    groups: int = 8

    def __post_init__(self) -> None:
        check_positive_int("MicroBatch", "n", self.n)
        check_choice("MicroBatch", "bn", self.bn, BN_MODES)
        check_positive_int("MicroBatch", "groups", self.groups)

    @property
    def name(self) -> str:
        return f"mb({self.n})" if self.bn == "keep" else f"mb({self.n},bn-{self.bn})"

    def implied_parts(self) -> tuple[RecipePart, ...]:
        """``bn="frozen"`` or ``"group"`` stands for a :class:`BatchNormPolicy` (its one owner)."""
        return () if self.bn == "keep" else (BatchNormPolicy(self.bn, self.groups),)


register_kind("micro-batch", stage=60)
