"""The memory model's rules for :class:`~odtlab.recipes.layers.sparse_conv.SparseConv2d`.

Registered by :mod:`odtlab.recipes.layers.sparse_conv` with
:func:`odtlab.memory.register_layer`: ``pytorch`` is exactly what
:class:`~odtlab.recipes.layers.sparse_conv.SparseConvFunction` saves (tested equal
to the measurement, to the byte), ``engine`` what a memory-optimised engine
keeps (the ``k`` trained input channels in 8 bits, nothing for a frozen
weight).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from odtlab.memory import engine_int8
from odtlab.memory.extend import Item
from odtlab.memory.formulas import Kept, fresh, keep, needs_grad

__all__ = ["sparse_conv_kept", "sparse_conv_engine"]



def _parts(call: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    x = call.args[0] if call.args else call.kwargs["input"]
    w_train, w_frozen = call.params["weight_train"], call.params["weight_frozen"]
    return x, w_train, w_frozen, int(w_train.shape[1])


def sparse_conv_kept(call: Any) -> list[Kept]:
    """What :class:`SparseConvFunction` saves: ``x[:, :k]`` if the slice trains, weights if ``x`` needs grad."""
    x, w_train, w_frozen, k = _parts(call)
    kept: list[Kept] = []
    if needs_grad(w_train) and k > 0:
        if k == w_train.shape[1] + w_frozen.shape[1]:
            kept.append(keep("input", x))
        else:
            shape = (x.shape[0], k, *x.shape[2:])
            kept.append(fresh(f"input channels 0..{k - 1}", tuple(shape), x.dtype))
    if needs_grad(x):
        kept += [keep("weight (trained slice)", w_train), keep("weight (frozen)", w_frozen)]
    return kept


def sparse_conv_engine(call: Any) -> list[Item]:
    """The engine keeps the ``k`` trained input channels of ``x`` in 8 bits, or nothing."""
    x, w_train, w_frozen, k = _parts(call)
    if not (needs_grad(w_train) and k > 0):
        return []
    if k == w_train.shape[1] + w_frozen.shape[1]:
        return [engine_int8("input (8-bit)", x)]
    shape = (x.shape[0], k, *x.shape[2:])
    nbytes = math.prod(shape)  # 1 byte per element
    return [Item(f"input channels 0..{k - 1} (8-bit)", x, f"int8[:{k}]", nbytes, tuple(shape))]
