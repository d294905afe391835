"""Measured activation memory: ask autograd which tensors it keeps for backward.

The forward pass and the loss run under
:func:`torch.autograd.graph.saved_tensors_hooks`; the *pack* hook sees every
tensor autograd saves. We count each **storage** once (two views of one
tensor, a tensor saved by two ops, an input read by two layers: one
storage), skip the storages of parameters and buffers (a Linear weight is
saved to compute its input's gradient, but it is a weight, not an
activation), and give each storage to the layer that saved it first.

It works on the ``meta`` device as well: meta tensors have storages with
sizes (but no data), so a big model can be measured without memory. Under
mixed precision (``autocast=torch.bfloat16``) the forward runs under
``torch.autocast``; on ``meta``, where autocast does nothing, its CPU policy
is replayed by :class:`odtlab.memory.autocast.AutocastEmulator`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from odtlab.memory._session import run_trace
from odtlab.memory._setup import LossFn, TrainableSpec
from odtlab.memory.records import SavedTensor
from odtlab.memory.units import format_bytes

__all__ = ["SavedActivations", "measure_saved_tensors", "saved_activation_bytes"]


@dataclass
class SavedActivations:
    """The storages kept for backward, each once, with the layer that first kept it.

    Attributes
    ----------
    tensors : list of SavedTensor
        In the order they were saved.
    method : str
        ``"measured"`` (from autograd's hooks) or ``"analytic"`` (formulas).
    users : dict
        ``{storage key: indices of every step that keeps it}``; the storage is
        freed after the backward of the earliest of them.
    """

    tensors: list[SavedTensor]
    method: str
    users: dict[int, set[int]] = field(default_factory=dict, repr=False)

    def lifetimes(self) -> list[tuple[int, int, set[int]]]:
        """``(key, nbytes, users)`` for each storage, as the timeline wants them."""
        return [(t.key, t.nbytes, self.users.get(t.key, {t.step})) for t in self.tensors]

    @property
    def total_bytes(self) -> int:
        """Sum of the storages' bytes."""
        return sum(t.nbytes for t in self.tensors)

    def by_module(self) -> dict[str, int]:
        """Bytes per layer (the layer that saved each storage first), in execution order."""
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.module] = out.get(t.module, 0) + t.nbytes
        return out

    def __str__(self) -> str:
        lines = [f"saved for backward ({self.method}): {format_bytes(self.total_bytes)}"]
        for t in self.tensors:
            shape = "x".join(str(s) for s in t.shape) or "scalar"
            dtype = str(t.dtype).replace("torch.", "") if t.dtype is not None else ""
            lines.append(
                f"  {t.module:<32} {t.label:<28} {shape:>16} {dtype:<8} {format_bytes(t.nbytes):>10}"
            )
        return "\n".join(lines)


def measure_saved_tensors(
    model: nn.Module,
    example_batch: tuple,
    loss_fn: LossFn | None = None,
    trainable: TrainableSpec | Iterable[str] = None,
    *,
    train: bool = True,
    autocast: Any = None,
) -> SavedActivations:
    """Run ``loss_fn(model(inputs), targets)`` once and list what autograd saves.

    Parameters
    ----------
    model : nn.Module
        Left as it was: parameters, buffers, ``requires_grad`` flags, train
        mode and torch's random state are all restored.
    example_batch : (inputs, targets)
        One batch; its inputs count as activations when a layer keeps them.
    loss_fn : callable or None
        ``loss_fn(outputs, targets)``; ``None`` is cross-entropy.
    trainable : None, names/prefixes, or callable
        Which parameters are trained (see :func:`odtlab.memory.profile_training`).
    train : bool
        ``True``: switch to train mode for the measurement (BatchNorm uses
        batch statistics, dropout is on), then restore every module's mode.
        ``False``: keep each module in the mode it is in (e.g. a frozen
        backbone in eval mode).
    autocast : torch.dtype, str or None
        Mixed precision: ``torch.bfloat16``/``"bf16"`` or
        ``torch.float16``/``"fp16"`` runs the forward and the loss under
        ``torch.autocast`` (emulated on ``meta``, see
        :mod:`odtlab.memory.autocast`); ``None`` follows the autocast already
        enabled around the call, if any (else fp32).

    Returns
    -------
    SavedActivations
        ``.total_bytes`` is the activation memory in bytes.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> batch = (torch.zeros(5, 4), torch.zeros(5, dtype=torch.long))
    >>> measure_saved_tensors(net, batch).total_bytes   # input 80 + ReLU out 60 + loss 40+40+4
    224
    """
    trace, _ = run_trace(
        model, example_batch, loss_fn, trainable, meta=False, record_saved=True, train=train,
        autocast=autocast,
    )  # fmt: skip
    saved = SavedActivations(list(trace.saved), "measured", dict(trace.saved_users))
    trace.release()
    return saved


def saved_activation_bytes(
    model: nn.Module,
    example_batch: tuple,
    loss_fn: LossFn | None = None,
    trainable: TrainableSpec | Iterable[str] = None,
) -> int:
    """Bytes of every storage autograd keeps for backward, each counted once.

    A shortcut for ``measure_saved_tensors(...).total_bytes``.
    """
    return measure_saved_tensors(model, example_batch, loss_fn, trainable).total_bytes
