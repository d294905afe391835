"""Analytic activation memory: per-layer formulas over a shape-only forward on ``meta``.

The model's parameters, buffers and the batch are replaced by empty tensors
on the ``meta`` device; one forward runs with hooks that record every
layer's inputs and output (shapes, dtypes, which storage they live in,
whether they require grad). Nothing is allocated and nothing is computed,
so a 224x224 MobileNetV2 with batch 8 is analysed in a fraction of a second.

Then each layer's formula (:mod:`odtlab.memory.formulas`) says what it
keeps for backward; a storage kept by several layers (the output of a
ReLU that the next convolution also keeps) is counted once, and storages of
parameters and buffers are not activations.

The tests hold this prediction equal, byte for byte, to the measured one
(:mod:`odtlab.memory.saved`) on every model of the zoo, for full training
and for a frozen backbone, in fp32 and under bf16 and fp16 autocast (whose
casts the trace replays on ``meta``, :mod:`odtlab.memory.autocast`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from odtlab.memory._session import run_trace
from odtlab.memory._setup import LossFn, TrainableSpec, storage_key
from odtlab.memory.errors import AnalyticUnsupported
from odtlab.memory.formulas import Kept
from odtlab.memory.records import SavedTensor, Step, Trace
from odtlab.memory.registry import kept_for_call
from odtlab.memory.saved import SavedActivations

__all__ = ["predict_saved_tensors", "analytic_saved_tensors", "kept_by_step"]


def kept_by_step(step: Step) -> list[Kept]:
    """What one recorded step keeps for backward (parameters included), by its formula."""
    try:
        return kept_for_call(step.call, step.kind, step.module)
    except AnalyticUnsupported as err:
        where = f" (a {step.module_type})" if step.module_type else ""
        raise AnalyticUnsupported(f"{err}; layer {step.module!r}{where}") from None


def predict_saved_tensors(trace: Trace) -> SavedActivations:
    """Apply the formulas to every step of ``trace`` and count each storage once.

    The trace must come from :func:`odtlab.memory._session.run_trace` with
    the live calls kept (they are, by default).
    """
    seen: dict[int, SavedTensor] = {}
    users: dict[int, set[int]] = {}
    holders: list[Any] = []  # keep copies made by the formulas alive: their storages stay unique
    fresh_key = -1
    excluded = set(trace.param_names) | set(trace.buffer_names)
    for step in trace.steps:
        if step.call is None:
            raise ValueError("the trace was released; analyse it before calling release()")
        for item in kept_by_step(step):
            if item.tensor is not None:
                holders.append(item.tensor)
                key = storage_key(item.tensor)
                if key in excluded:
                    continue
                users.setdefault(key, set()).add(step.index)
                if key in seen:
                    continue
                nbytes = int(item.tensor.untyped_storage().nbytes())
            else:
                key, fresh_key = fresh_key, fresh_key - 1
                nbytes = item.nbytes
                users[key] = {step.index}
            seen[key] = SavedTensor(
                key=key,
                nbytes=nbytes,
                shape=item.shape,
                dtype=item.dtype,
                module=step.module,
                step=step.index,
                label=item.label,
            )
    return SavedActivations(list(seen.values()), "analytic", users)


def analytic_saved_tensors(
    model: nn.Module,
    example_batch: tuple,
    loss_fn: LossFn | None = None,
    trainable: TrainableSpec | Iterable[str] = None,
    *,
    train: bool = True,
    autocast: Any = None,
) -> SavedActivations:
    """Predict what autograd keeps for backward, from shapes alone (on ``meta``).

    Same arguments and result type as
    :func:`odtlab.memory.measure_saved_tensors`; the model and the batch
    may live on any device (they are mirrored on ``meta``, nothing is
    copied but shapes). With ``autocast=torch.bfloat16`` (or
    ``torch.float16``) the prediction follows PyTorch's CPU autocast policy
    (:mod:`odtlab.memory.autocast`): convolutions and linear layers keep
    16-bit copies of their inputs and weights, the loss an fp32 log-softmax.

    Raises
    ------
    AnalyticUnsupported
        If a layer type or operation that needs a gradient has no formula;
        the message names it. The measured path still works.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> batch = (torch.zeros(5, 4), torch.zeros(5, dtype=torch.long))
    >>> analytic_saved_tensors(net, batch).total_bytes
    224

    Under bf16 autocast the first layer keeps a bf16 copy of its input (40
    bytes), ReLU its bf16 output (30), the second layer the bf16 copy of its
    weight (12) and the loss an fp32 log-softmax (40), targets (40) and a
    scalar (4):

    >>> analytic_saved_tensors(net, batch, autocast=torch.bfloat16).total_bytes
    166
    """
    trace, _ = run_trace(
        model, example_batch, loss_fn, trainable, meta=True, record_saved=False, train=train,
        autocast=autocast,
    )  # fmt: skip
    try:
        return predict_saved_tensors(trace)
    finally:
        trace.release()
