"""Run one recorded forward + loss safely: the driver shared by the measured and analytic paths."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from odtlab.errors import OdtlabError
from odtlab.memory._setup import (
    LossFn,
    TrainableSpec,
    check_batch,
    forked_rng,
    model_device,
    resolve_loss,
    select_trainable,
    substitutes,
    train_mode,
)
from odtlab.memory.autocast import resolve_autocast
from odtlab.memory.errors import MemoryArgumentError
from odtlab.memory.records import Trace
from odtlab.memory.registry import layer_formula
from odtlab.memory.trace import trace_training_forward

__all__ = ["run_trace", "is_known_leaf", "to_meta"]


def is_known_leaf(module: nn.Module) -> bool:
    """A leaf layer whose type has a formula: recorded as one step."""
    return next(module.children(), None) is None and layer_formula(module) is not None


def to_meta(*objs: Any) -> tuple[Any, ...]:
    """Empty ``meta`` twins of tensors: same shape, dtype, strides and offset, no memory.

    Tensors that share a storage (the same batch passed as inputs and
    targets, a view of another) get twins that share one meta storage, so
    they are still counted once.
    """
    storages: dict[int, torch.UntypedStorage] = {}
    out = []
    for obj in objs:
        if not isinstance(obj, torch.Tensor) or obj.device.type == "meta":
            out.append(obj)
            continue
        key = int(obj.untyped_storage()._cdata)
        if key not in storages:
            storages[key] = torch.UntypedStorage(obj.untyped_storage().nbytes(), device="meta")
        twin = torch.empty(0, dtype=obj.dtype, device="meta")
        out.append(twin.set_(storages[key], obj.storage_offset(), obj.shape, obj.stride()))
    return tuple(out)


def _describe(t: Any) -> str:
    if isinstance(t, torch.Tensor):
        return f"shape {tuple(t.shape)} ({str(t.dtype).replace('torch.', '')}, {t.device})"
    return type(t).__name__


def run_trace(
    model: nn.Module,
    example_batch: Any,
    loss_fn: LossFn | None,
    trainable: TrainableSpec,
    *,
    meta: bool,
    record_saved: bool,
    train: bool = True,
    autocast: Any = None,
) -> tuple[Trace, dict[str, bool]]:
    """Trace ``loss_fn(model(inputs), targets)`` without changing ``model``.

    With ``meta=True`` the model's parameters, buffers and the batch are
    replaced by empty ``meta`` tensors: shapes and storages are tracked, no
    memory is allocated and nothing is computed (the analytic path). With
    ``meta=False`` the forward runs for real on the model's device (the
    measured path).

    ``autocast`` (see :func:`odtlab.memory.autocast.resolve_autocast`) runs
    the forward and the loss in mixed precision: under ``torch.autocast`` on
    a real device, under the emulated CPU policy on ``meta``.

    Returns the :class:`Trace` and the ``{parameter name: trainable}`` map.
    """
    if not isinstance(model, nn.Module):
        raise MemoryArgumentError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    inputs, targets = check_batch(example_batch)
    loss = resolve_loss(loss_fn)
    chosen = select_trainable(model, trainable)
    device_type = model_device(model).type
    on_meta = meta or device_type == "meta"
    device_type = "cpu" if device_type == "meta" else device_type
    dtype = resolve_autocast(autocast, device_type)
    if meta:
        inputs, targets = to_meta(inputs, targets)
    tensors, param_names, buffer_names = substitutes(model, chosen, meta=meta)
    try:
        with train_mode(model, train), forked_rng(model_device(model)):
            trace = trace_training_forward(
                model,
                tensors,
                inputs,
                targets,
                loss,
                param_names=param_names,
                buffer_names=buffer_names,
                opaque=is_known_leaf,
                record_saved=record_saved,
                keep_calls=True,
                device_type=device_type,
                autocast=dtype,
                emulate_autocast=on_meta,
            )
    except OdtlabError:
        raise
    except Exception as err:  # the batch does not fit the model, or the loss the outputs
        hint = (
            " If the batch is right, the model may make tensors on a fixed device inside "
            "forward, which the analytic path (it runs on 'meta') cannot follow: use "
            "method='measured'."
            if meta
            else ""
        )
        raise MemoryArgumentError(
            f"example_batch does not fit the model: inputs of {_describe(inputs)} and targets of "
            f"{_describe(targets)} raised {type(err).__name__}: {str(err).rstrip('.')}. Build a "
            "matching batch, e.g. odtlab.models.example_batch(name), and check that "
            f"loss_fn(model(inputs), targets) works.{hint}"
        ) from err
    return trace, chosen
