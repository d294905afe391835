"""Teach the memory model a new layer type: :func:`register_layer`.

The analytic model knows the layers of ``torch.nn`` (see
:mod:`odtlab.memory.registry`). A library or a course chapter that writes its
own layer with a custom :class:`torch.autograd.Function` (a channel-sparse
convolution, a fake-quantised linear layer) saves what *its* ``forward``
decides, which no built-in formula can guess. :func:`register_layer` adds
two rules for such a class:

* ``pytorch``: what autograd really keeps, as :class:`~odtlab.memory.formulas.Kept`
  items (use :func:`~odtlab.memory.formulas.keep` for an existing tensor and
  :func:`~odtlab.memory.formulas.fresh` for a new buffer); the tests hold it
  equal to the measurement;
* ``engine``: what a memory-optimised engine would store, as items made with
  :func:`engine_int8`, :func:`engine_mask` and :func:`engine_fresh`.

A registered class must be a *leaf* (no child modules): the tracer records
one step per call of it. Both rules receive that recorded call: ``call.target``
(the module), ``call.args`` / ``call.kwargs`` (its inputs), ``call.params``
(``{"weight": ..., "bias": ...}`` by local name), ``call.buffers`` and
``call.output``. They are asked only when something in the call requires
grad.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from odtlab.memory.formulas import keep
>>> class Scale(nn.Module):                      # y = x * w, w a trained scalar
...     def __init__(self):
...         super().__init__()
...         self.weight = nn.Parameter(torch.ones(()))
...     def forward(self, x):
...         return x * self.weight
>>> register_layer(Scale, pytorch=lambda c: [keep("input", c.args[0])],
...                engine=lambda c: [engine_int8("input (8-bit)", c.args[0])])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from odtlab.memory.engine import ENGINE_RULES, Item, mask_bytes
from odtlab.memory.errors import MemoryArgumentError
from odtlab.memory.formulas import Kept, needs_grad
from odtlab.memory.registry import LAYER_FORMULAS

__all__ = ["register_layer", "engine_int8", "engine_mask", "engine_fresh", "Item", "needs_grad"]


def engine_int8(label: str, t: torch.Tensor) -> Item:
    """The engine keeps ``t`` in 8 bits: 1 byte per element, shared by every layer using it."""
    return Item(label, t, "int8", t.numel(), tuple(t.shape))


def engine_mask(t: torch.Tensor) -> Item:
    """The engine keeps a 1-bit mask over ``t``: ``ceil(numel / 8)`` bytes."""
    return Item("1-bit mask", None, "mask", mask_bytes(t.numel()), tuple(t.shape))


def engine_fresh(label: str, nbytes: int, shape: tuple[int, ...] = ()) -> Item:
    """The engine keeps a new buffer of ``nbytes`` bytes (never shared)."""
    return Item(label, None, "", int(nbytes), tuple(shape))


def register_layer(
    cls: type[nn.Module],
    *,
    pytorch: Callable[[Any], list[Kept]],
    engine: Callable[[Any], list[Item]] | None = None,
) -> None:
    """Give the memory model the rules of the leaf layer class ``cls``.

    Parameters
    ----------
    cls : type
        A subclass of ``nn.Module`` without child modules. Subclasses of
        ``cls`` use the same rules unless they are registered themselves.
    pytorch : callable
        ``call -> list[Kept]``: what autograd keeps for backward.
    engine : callable or None
        ``call -> list[Item]``: what the memory-optimised engine keeps;
        ``None`` leaves the class unsupported by ``accounting="engine"``.

    Registering the same class again replaces its rules.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise MemoryArgumentError(f"register_layer needs an nn.Module subclass, got {cls!r}")
    if not callable(pytorch) or (engine is not None and not callable(engine)):
        raise MemoryArgumentError(
            "register_layer(cls, pytorch=..., engine=...): the rules must be functions of the "
            "recorded call, e.g. pytorch=lambda call: [keep('input', call.args[0])]"
        )
    LAYER_FORMULAS[cls] = pytorch
    if engine is None:
        ENGINE_RULES.pop(cls, None)
    else:
        ENGINE_RULES[cls] = engine
