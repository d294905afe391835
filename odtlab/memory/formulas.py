"""What each layer keeps for backward in PyTorch 2.13 (CPU), one formula per layer type.

Every formula receives one recorded call (the layer, its inputs, its output)
and returns the tensors autograd keeps, as :class:`Kept` items: either *a
tensor that already exists* (the input, the output: its whole storage is
kept, and two layers keeping the same storage count it once) or *a fresh
buffer* of known bytes (BatchNorm's per-channel mean, a dropout mask, the
clone an in-place ReLU6 makes).

The rules were found by printing what each op packs under
:func:`torch.autograd.graph.saved_tensors_hooks` (see the table in
:mod:`odtlab.memory`). The ones students find surprising:

* autograd saves nothing for a layer when neither its input nor any of its
  parameters requires grad: a frozen prefix of the network saves nothing;
* ``Linear`` keeps its input only if its weight is trainable, but
  ``Conv2d`` keeps input *and* weight as soon as anything in it needs grad
  (bias-only training of a conv still keeps the whole input);
* ``ReLU`` keeps its *output*; ``ReLU(inplace=True)`` keeps the same storage
  (now overwritten by the output), so it costs nothing extra; but
  ``ReLU6``/``Hardtanh(inplace=True)`` makes a *clone* of its input first,
  a full extra copy;
* ``AvgPool2d`` keeps its input, ``AdaptiveAvgPool2d(1)`` keeps nothing
  (it is a mean); ``MaxPool2d`` keeps its input and int64 indices;
* BatchNorm in eval mode keeps zero-sized mean/invstd on CPU (the ``meta``
  device reports them per channel; we follow the CPU);
* ``q @ k.transpose(-2, -1)`` on split heads copies both operands into
  contiguous 3-D batches and keeps the copies.

Parameters and buffers are also saved by autograd (a Linear weight is saved
to compute the gradient of its input) but they are not activations; the
caller drops every kept storage that belongs to a parameter or buffer.
Which formula applies to which layer type is in :mod:`odtlab.memory.registry`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from odtlab.memory.errors import AnalyticUnsupported

__all__ = [
    "Kept", "keep", "fresh", "mm_kept", "matmul_kept", "linear_kept", "conv_kept",
    "batch_norm_kept", "layer_norm_kept", "group_norm_kept", "output_kept", "input_kept", "hardtanh_kept",
    "max_pool_kept", "adaptive_avg_pool_kept", "dropout_kept", "embedding_kept", "mul_kept",
    "div_kept", "cross_entropy_kept", "nll_loss_kept", "mse_kept", "needs_grad"]  # fmt: skip


@dataclass
class Kept:
    """One thing a layer keeps for backward.

    ``tensor`` set: that tensor's whole storage is kept (shared with anyone
    else keeping it). Otherwise a fresh buffer of ``nbytes`` bytes.
    """

    label: str
    tensor: torch.Tensor | None = None
    nbytes: int = 0
    shape: tuple[int, ...] = ()
    dtype: torch.dtype | None = None


def needs_grad(t: Any) -> bool:
    """Whether ``t`` is a tensor that autograd tracks (``requires_grad``); the question every rule asks."""
    return isinstance(t, torch.Tensor) and t.requires_grad


def keep(label: str, t: torch.Tensor) -> Kept:
    """Keep the storage of an existing tensor."""
    return Kept(label, tensor=t, shape=tuple(t.shape), dtype=t.dtype)


def fresh(label: str, shape: tuple[int, ...], dtype: torch.dtype) -> Kept:
    """Keep a new buffer of ``shape`` and ``dtype``."""
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype, device="meta").element_size()
    return Kept(label, nbytes=nbytes, shape=tuple(shape), dtype=dtype)


def _acc(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype of normalisation statistics on CPU."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---- the operations ------------------------------------------------------------------------


def mm_kept(a: torch.Tensor, b: torch.Tensor, a_rg: bool, b_rg: bool) -> list[Kept]:
    """``a @ b`` as a 2-D/3-D product: ``b`` is kept to get ``grad a``, ``a`` to get ``grad b``."""
    out = []
    if a_rg:
        out.append(keep("right operand", b))
    if b_rg:
        out.append(keep("left operand", a))
    return out


def _should_fold(a: torch.Tensor, b: torch.Tensor, a_rg: bool, b_rg: bool) -> bool:
    """PyTorch's choice between one big ``mm`` (fold the batch) and a ``bmm``."""
    t1, t2, t2_rg = (a, b, b_rg) if a.dim() >= b.dim() else (b, a, a_rg)
    if not (t1.dim() >= 3 and t2.dim() <= 2):
        return False
    if t2_rg:  # folding copies t1 but keeps the weight gradient small
        return True
    if a.dim() == 2:
        return False
    if t1.numel() == 0:
        return True
    expected = 1
    for size, stride in reversed(list(zip(t1.shape[1:], t1.stride()[:-1], strict=True))):
        expected *= size
        if size != 1 and stride != expected:
            return False
    return True


def matmul_kept(a: torch.Tensor, b: torch.Tensor, a_rg: bool, b_rg: bool) -> list[Kept]:
    """``torch.matmul``: the operands are reshaped (a view, or a copy) and then kept."""
    if not (a_rg or b_rg):
        return []
    da, db = a.dim(), b.dim()
    with torch.no_grad():
        if da <= 2 and db <= 2:
            a2 = a.unsqueeze(0) if (da == 1 and db == 2) else a
            return mm_kept(a2, b, a_rg, b_rg)
        if _should_fold(a, b, a_rg, b_rg):
            if db > da:  # compute (b^T @ a^T)^T
                t1, t2, t1_rg, t2_rg = b.mT, (a.t() if da == 2 else a), b_rg, a_rg
            else:
                t1, t2, t1_rg, t2_rg = a, b, a_rg, b_rg
            folded = t1.reshape(-1, t1.shape[-1])
            return mm_kept(folded, t2, t1_rg, t2_rg)
        n, m = (a.shape[-2] if da > 1 else 1), a.shape[-1]
        p = b.shape[-1] if db > 1 else 1
        batch = list(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        count = math.prod(batch)
        a3 = a.expand([*batch, n, m]).reshape(count, n, m)
        b3 = (
            b.expand([*batch, b.shape[-1]]).reshape(count, b.shape[-1])
            if db == 1
            else b.expand([*batch, b.shape[-2], p]).reshape(count, b.shape[-2], p)
        )
        return mm_kept(a3, b3, a_rg, b_rg)


def linear_kept(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> list[Kept]:
    """``nn.Linear``: keeps its input (as a 2-D view) iff the weight is trainable."""
    if not (needs_grad(x) or needs_grad(weight) or needs_grad(bias)):
        return []
    with torch.no_grad():
        wt = weight.t()
        if bias is not None and (x.dim() == 2 or (x.dim() == 3 and x.is_contiguous())):
            x2 = x if x.dim() == 2 else x.view(-1, x.shape[-1])
            kept = mm_kept(x2, wt, needs_grad(x), needs_grad(weight))
        else:
            kept = matmul_kept(x, wt, needs_grad(x), needs_grad(weight))
    return [keep("input" if k.label == "left operand" else "weight", k.tensor) for k in kept]


def conv_kept(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> list[Kept]:
    """``nn.Conv1d/2d/3d`` (any groups): input and weight, as soon as anything needs grad."""
    if not (needs_grad(x) or needs_grad(weight) or needs_grad(bias)):
        return []
    return [keep("input", x), keep("weight", weight)]


def batch_norm_kept(x: torch.Tensor, weight: Any, bias: Any, training: bool) -> list[Kept]:
    """``nn.BatchNorm``: input, plus per-channel mean and inverse std (train mode)."""
    if not (needs_grad(x) or needs_grad(weight) or needs_grad(bias)):
        return []
    channels = x.shape[1] if training else 0  # CPU keeps empty statistics in eval mode
    acc = _acc(x.dtype)
    return [keep("input", x), fresh("mean", (channels,), acc), fresh("invstd", (channels,), acc)]


def layer_norm_kept(
    x: torch.Tensor, normalized: tuple[int, ...], weight: Any, bias: Any
) -> list[Kept]:
    """``nn.LayerNorm``: input, plus one mean and one rstd per normalised row."""
    if not (needs_grad(x) or needs_grad(weight) or needs_grad(bias)):
        return []
    rows = tuple(x.shape[: x.dim() - len(normalized)]) + (1,) * len(normalized)
    acc = _acc(x.dtype)
    return [keep("input", x), fresh("mean", rows, acc), fresh("rstd", rows, acc)]


def group_norm_kept(x: torch.Tensor, groups: int, weight: Any, bias: Any) -> list[Kept]:
    """``nn.GroupNorm``: input, plus one mean and one rstd per (sample, group).

    PyTorch's ``native_group_norm`` saves its input and two ``(N, groups)``
    statistics in the accumulation dtype (fp32 for fp32 and 16-bit inputs).
    """
    if not (needs_grad(x) or needs_grad(weight) or needs_grad(bias)):
        return []
    acc = _acc(x.dtype)
    stats = (x.shape[0], groups)
    return [keep("input", x), fresh("mean", stats, acc), fresh("rstd", stats, acc)]


def output_kept(label: str) -> Callable[[torch.Tensor, torch.Tensor], list[Kept]]:
    """Ops whose backward needs only their output (ReLU, sigmoid, tanh, softmax)."""

    def formula(x: torch.Tensor, out: torch.Tensor) -> list[Kept]:
        return [keep(label, out)] if needs_grad(x) else []

    return formula


def input_kept(x: torch.Tensor, out: torch.Tensor) -> list[Kept]:
    """Ops whose backward needs their input (GELU, SiLU, Hardswish, LeakyReLU, AvgPool)."""
    return [keep("input", x)] if needs_grad(x) else []


def hardtanh_kept(x: torch.Tensor, out: torch.Tensor, inplace: bool) -> list[Kept]:
    """``ReLU6``/``Hardtanh``: the input; in place, a clone of the input made before overwriting."""
    if not needs_grad(x):
        return []
    if inplace:
        return [fresh("input clone", tuple(x.shape), x.dtype)]
    return [keep("input", x)]


def max_pool_kept(x: torch.Tensor, out: torch.Tensor) -> list[Kept]:
    """``MaxPool2d``: the input and the int64 index of every output element's maximum."""
    if not needs_grad(x):
        return []
    return [keep("input", x), fresh("indices", tuple(out.shape), torch.int64)]


def adaptive_avg_pool_kept(x: torch.Tensor, out: torch.Tensor) -> list[Kept]:
    """``AdaptiveAvgPool2d``: to 1x1 it is a mean (keeps nothing), else it keeps the input."""
    if not needs_grad(x) or all(s == 1 for s in out.shape[2:]):
        return []
    return [keep("input", x)]


def dropout_kept(x: torch.Tensor, p: float, training: bool, device_type: str = "cpu") -> list[Kept]:
    """``Dropout`` in train mode with ``p > 0``: a mask of the input's shape.

    On the CPU the mask has the input's dtype (4 bytes per element in fp32);
    CUDA's fused kernel keeps a ``bool`` mask (1 byte per element).
    """
    if not needs_grad(x) or not training or p == 0:
        return []
    fused = device_type == "cuda" and 0 < p < 1
    return [fresh("mask", tuple(x.shape), torch.bool if fused else x.dtype)]


def embedding_kept(indices: torch.Tensor, weight: torch.Tensor) -> list[Kept]:
    """``nn.Embedding``: the indices, iff the table is trainable."""
    return [keep("indices", indices)] if needs_grad(weight) else []


def mul_kept(a: Any, b: Any) -> list[Kept]:
    """``a * b``: each tensor operand is kept for the other's gradient (nothing for scalars)."""
    out = []
    if needs_grad(a) and isinstance(b, torch.Tensor):
        out.append(keep("other operand", b))
    if needs_grad(b) and isinstance(a, torch.Tensor):
        out.append(keep("other operand", a))
    return out


def div_kept(a: Any, b: Any) -> list[Kept]:
    """``a / b``: the divisor for ``grad a``; both operands for ``grad b``."""
    if not isinstance(b, torch.Tensor):
        return []
    out = [keep("divisor", b)] if (needs_grad(a) or needs_grad(b)) else []
    if needs_grad(b) and isinstance(a, torch.Tensor):
        out.append(keep("dividend", a))
    return out


def cross_entropy_kept(
    logits: torch.Tensor, target: torch.Tensor, kwargs: dict[str, Any]
) -> list[Kept]:
    """Cross-entropy: the log-softmax of the logits, the targets and a scalar total weight."""
    if kwargs.get("weight") is not None or kwargs.get("label_smoothing", 0.0):
        raise AnalyticUnsupported(
            "cross_entropy with class weights or label smoothing has no analytic formula yet; "
            "the measured path (method='measured') still works"
        )
    if not needs_grad(logits):
        return []
    return [
        fresh("log-softmax", tuple(logits.shape), logits.dtype),
        keep("targets", target),
        fresh("total weight", (), logits.dtype),
    ]


def nll_loss_kept(logp: torch.Tensor, target: torch.Tensor) -> list[Kept]:
    """``nll_loss``: its input, the targets and a scalar total weight."""
    if not needs_grad(logp):
        return []
    return [keep("input", logp), keep("targets", target), fresh("total weight", (), logp.dtype)]


def mse_kept(a: torch.Tensor, b: torch.Tensor) -> list[Kept]:
    """``mse_loss``: both its input and its target."""
    return [keep("input", a), keep("target", b)] if (needs_grad(a) or needs_grad(b)) else []
