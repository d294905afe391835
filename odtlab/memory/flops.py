"""FLOPs of one training step, counted by ``torch.utils.flop_counter.FlopCounterMode``.

The forward pass, the loss and the backward pass run on ``meta`` stand-ins
of the model and the batch (no memory, no arithmetic), under
:class:`~torch.utils.flop_counter.FlopCounterMode`, which adds up the
floating-point operations of every matrix product and convolution (a
multiply-add counts as 2 FLOPs). Element-wise work (activations,
normalisation, the optimizer update) is not counted: it is small next to
the products and bound by memory traffic rather than arithmetic.

Backward FLOPs depend on what is trained: a frozen layer on the gradient
path computes only its input gradient (about its forward FLOPs), a trained
one also its weight gradient (twice), and a frozen prefix computes nothing.

One correction to torch 2.13: its formula for the backward of a *grouped*
convolution counts the weight gradient as if the convolution were dense
(``groups`` times too many FLOPs: 32x to 960x for MobileNetV2's depthwise
layers). We count the weight gradient of a grouped convolution like its
forward, which is what the computation is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_backward_flop

from odtlab.memory._session import to_meta
from odtlab.memory._setup import (
    LossFn,
    TrainableSpec,
    check_batch,
    resolve_loss,
    select_trainable,
    substitutes,
    train_mode,
)
from odtlab.memory.errors import MemoryArgumentError

__all__ = ["training_flops"]


def _conv_backward(
    grad_out_shape: list[int],
    x_shape: list[int],
    w_shape: list[int],
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: int,
    output_mask: list[bool],
    out_shape: Any,
    **kwargs: Any,
) -> int:
    """Backward FLOPs of a convolution: each gradient costs as much as the forward."""
    if transposed:  # torch's own formula (it has no groups problem to fix here)
        return conv_backward_flop.__wrapped__(
            grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
            output_padding, groups, output_mask, out_shape,
        )  # fmt: skip
    # forward FLOPs: 2 * batch * output positions * (C_out * C_in / groups * kernel area)
    forward = 2 * grad_out_shape[0] * math.prod(grad_out_shape[2:]) * math.prod(w_shape)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def training_flops(
    model: torch.nn.Module,
    example_batch: tuple[Any, torch.Tensor],
    loss_fn: LossFn | None = None,
    trainable: TrainableSpec | Iterable[str] = None,
) -> dict[str, Any]:
    """Count the FLOPs of one forward + backward pass (nothing of the model changes).

    Parameters
    ----------
    model : nn.Module
        On the CPU, one step runs on stand-ins of its tensors; on ``meta``,
        on ``meta`` (no memory). The model is left unchanged.
    example_batch : (inputs, targets)
    loss_fn : callable or None
        ``None`` is cross-entropy.
    trainable : None, names/prefixes, or callable
        Which parameters are trained (changes the backward count).

    Returns
    -------
    dict
        ``"forward"`` (model and loss), ``"backward"`` and ``"total"`` FLOPs
        (ints), and ``"per_module"``: ``{module name: FLOPs of forward and
        backward}``; a module's count includes its children's, and the
        model itself is ``"(model)"``.

    Examples
    --------
    >>> net = torch.nn.Linear(100, 10)
    >>> batch = (torch.zeros(8, 100), torch.zeros(8, dtype=torch.long))
    >>> f = training_flops(net, batch)
    >>> f["forward"], f["backward"]   # 2*8*100*10, weight grad only (the input needs none)
    (16000, 16000)
    """
    inputs, targets = check_batch(example_batch)
    loss = resolve_loss(loss_fn)
    chosen = select_trainable(model, trainable)
    # Counting needs only shapes, so ``meta`` would do; but PyTorch's meta kernels are Python
    # code, slower than running a small step for real on the CPU (0.2 s against 0.7 s for
    # MobileNetV2-0.35 at 32x32, batch 32). A CPU model with a small batch (at most 2**20 input
    # elements) is therefore counted on the CPU, on stand-ins (the model, its buffers and the
    # global random state are left alone); others on ``meta``. The aten calls, and so the
    # counts, are the same either way (tests/test_memory.py holds them equal).
    on_cpu = all(
        t.device.type == "cpu" for t in (*model.parameters(), *model.buffers())
    ) and _elements(inputs) <= 2**20
    tensors, _, _ = substitutes(model, chosen, meta=not on_cpu)
    counter = FlopCounterMode(
        display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward}
    )
    meta_inputs, meta_targets = (inputs, targets) if on_cpu else to_meta(inputs, targets)
    with torch.random.fork_rng(devices=[]), train_mode(model), counter:
        try:
            out = torch.func.functional_call(model, tensors, (meta_inputs,), strict=False)
            value = loss(out, meta_targets)
        except Exception as err:
            raise MemoryArgumentError(
                f"example_batch does not fit the model ({type(err).__name__}: {err}); build a "
                "matching batch, e.g. odtlab.models.example_batch(name)"
            ) from err
        forward = counter.get_total_flops()
        value.backward()
    total = counter.get_total_flops()
    per_module = {}
    for name, counts in counter.get_flop_counts().items():
        if name == "Global":
            continue
        path = name.split(".", 1)[1] if "." in name else "(model)"
        per_module[path] = int(sum(counts.values()))
    return {
        "forward": int(forward),
        "backward": int(total - forward),
        "total": int(total),
        "per_module": per_module,
    }


def _elements(x: Any) -> int:
    """Number of elements in a tensor or a (nested) tuple/list of tensors; 0 for anything else."""
    if isinstance(x, torch.Tensor):
        return x.numel()
    if isinstance(x, (tuple, list)):
        return sum(_elements(t) for t in x)
    return 0
