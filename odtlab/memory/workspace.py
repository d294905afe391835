"""Scratch memory that CPU kernels allocate *inside* one layer call.

These buffers live only while the layer (or its backward) runs, so they
never show up as activations, but they can set the peak. The timeline adds
them for the PyTorch accounting; the rules below were read off
``torch.profiler`` allocation events of torch 2.13 on the CPU.

* **Convolution** (oneDNN, float32): each call reorders its operands into a
  blocked memory layout. Forward: copies of the input and the weight, then
  a blocked output that is copied into the plain output; the scratch on top
  of the output is ``max(input + weight, output)`` bytes. Backward: for the
  input gradient, copies of the output gradient and the weight; for the
  weight gradient, copies of the output gradient and the input plus a
  blocked weight gradient. On top of the results (input and weight
  gradients) that is ``max(input + grad_output, weight)`` with a trainable
  weight and ``grad_output + weight`` without.
* **matmul**: when an operand cannot be reshaped into a 3-D batch as a view
  (the split heads of attention), it is copied; copies that are not kept
  for backward are scratch.

Blocked layouts pad channels to a multiple of 8 or 16, so for very narrow
layers the real scratch is a bit larger than these rules say.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from odtlab.memory._setup import storage_key
from odtlab.memory.formulas import matmul_kept
from odtlab.memory.records import Step

__all__ = ["forward_workspace", "backward_workspace"]

_CONV_FUNCTIONS = {"conv1d", "conv2d", "conv3d"}


def _nbytes(t: Any) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def _conv_operands(step: Step) -> tuple[Any, Any, Any] | None:
    call = step.call
    if call is None:
        return None
    if isinstance(call.target, nn.modules.conv._ConvNd):
        return call.args[0], call.params.get("weight"), call.output
    if not isinstance(call.target, nn.Module) and step.kind in _CONV_FUNCTIONS:
        weight = call.args[1] if len(call.args) > 1 else call.kwargs.get("weight")
        return call.args[0], weight, call.output
    return None


def _matmul_copies(step: Step, grad: bool) -> int:
    call = step.call
    if call is None or isinstance(call.target, nn.Module) or step.kind != "matmul":
        return 0
    a, b = call.args[0], call.args[1]
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return 0
    a_meta = torch.empty_strided(a.shape, a.stride(), dtype=a.dtype, device="meta")
    b_meta = torch.empty_strided(b.shape, b.stride(), dtype=b.dtype, device="meta")
    operands = matmul_kept(a_meta, b_meta, True, True)
    inputs = {storage_key(a_meta), storage_key(b_meta)}
    copies = [k.tensor for k in operands if k.tensor is not None]
    copied = [t for t in copies if storage_key(t) not in inputs]
    kept = 0  # copies autograd keeps are activations already
    if grad and (a.requires_grad or b.requires_grad):
        kept_now = matmul_kept(a_meta, b_meta, a.requires_grad, b.requires_grad)
        kept = sum(_nbytes(k.tensor) for k in kept_now if storage_key(k.tensor) not in inputs)
    return max(0, sum(_nbytes(t) for t in copied) - kept)


def forward_workspace(step: Step, grad: bool = True) -> int:
    """Bytes of scratch alive during the forward of ``step`` (besides its output).

    ``grad=False`` for a forward under ``torch.no_grad()`` (nothing is kept, so
    every copy is scratch).
    """
    conv = _conv_operands(step)
    if conv is not None:
        x, w, y = conv
        return max(_nbytes(x) + _nbytes(w), _nbytes(y))
    return _matmul_copies(step, grad)


def backward_workspace(step: Step) -> int:
    """Bytes of scratch alive during the backward of ``step`` (besides the gradients it makes)."""
    conv = _conv_operands(step)
    if conv is None:
        return 0
    x, w, y = conv
    if isinstance(w, torch.Tensor) and w.requires_grad:
        return max(_nbytes(x) + _nbytes(y), _nbytes(w))
    return _nbytes(y) + _nbytes(w)
