"""Sparse update on the int8 graph: :class:`QuantSparseConv2d`.

The 256 KB paper's full method is sparse update *and* int8 training with
QAS: ``Recipe(SparseUpdate(...), Int8())``. :class:`~odtlab.recipes.SparseUpdate`
turns the convolutions on the gradient path into
:class:`~odtlab.recipes.layers.sparse_conv.SparseConv2d` (the weight stored as a
trained slice ``weight_train`` of the first ``k`` input channels and a frozen
rest ``weight_frozen``), and :class:`~odtlab.recipes.Int8` then turns each of
those into a :class:`QuantSparseConv2d`: the same two parameters in integer
units (``W̄ = W / s``, one scale ``s`` per output channel for the whole
weight), the input fake-quantised to int8, rounding with the
straight-through estimator and QAS on ``weight_train``'s gradient, exactly
as in :mod:`odtlab.recipes.layers.quant`. The backward pass is
:class:`~odtlab.recipes.layers.sparse_conv.SparseConvFunction`'s: it keeps only the
``k`` trained input channels of the (int8-rounded) input.

What autograd keeps (registered with :func:`odtlab.memory.register_layer`,
equal to the measurement to the byte): a 1-byte mask of the input when it
requires grad, a 1-byte mask of ``weight_train`` when it trains; the first
``k`` channels of the rounded input (fp32; the whole rounded input when
``k`` is every channel) when ``weight_train`` trains; both dequantised
weight parts (fp32) when the input requires grad.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from odtlab.memory import register_layer
from odtlab.memory.formulas import Kept, fresh, keep, needs_grad
from odtlab.recipes.layers.quant import (
    QuantConv2d,
    QuantMixin,
    round_ste,
    to_integer_units,
    weight_scales,
)
from odtlab.recipes.layers.sparse_conv import SparseConv2d, SparseConvFunction
from odtlab.recipes.layers.sparse_conv_rules import sparse_conv_engine

__all__ = ["QuantSparseConv2d", "quant_sparse_kept"]


class QuantSparseConv2d(QuantMixin, SparseConv2d):
    """A :class:`SparseConv2d` that trains its int8 weight slice (see the module docstring).

    Build it with :meth:`from_sparse`. ``weight_train`` and ``weight_frozen``
    hold ``W̄`` in integer units; ``weight`` reads the whole ``W̄``.
    """

    @classmethod
    def from_sparse(
        cls, conv: SparseConv2d, *, qas: bool = True, per_channel: bool = True,
        activations: bool = True,
    ) -> QuantSparseConv2d:  # fmt: skip
        """A quantised copy of ``conv`` (same shape, ratio, flags and device)."""
        layer = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
            conv.dilation, conv.groups, conv.bias is not None, device="meta",  # type: ignore[arg-type]
            dtype=conv.weight_train.dtype, update_ratio=conv.update_ratio,
        )  # fmt: skip
        full = conv.weight.detach()
        scale = weight_scales(full, per_channel).to(full.device)
        layer._init_quant(
            scale, full.dim(), qas=qas, per_channel=per_channel, activations=activations
        )
        layer.weight = to_integer_units(full, layer._per_channel(scale))  # splits in two
        layer.weight_train.requires_grad_(conv.weight_train.requires_grad)
        if conv.bias is not None:
            bias = torch.nn.Parameter(conv.bias.detach().clone())
            layer.bias = bias.requires_grad_(conv.bias.requires_grad)
        return layer.train(conv.training)

    def to_conv2d(self) -> Any:
        """A :class:`~odtlab.recipes.layers.quant.QuantConv2d` with the same int8 state."""
        conv = QuantConv2d(
            self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,  # type: ignore[arg-type]
            self.dilation, self.groups, self.bias is not None, device="meta",  # type: ignore[arg-type]
        )  # fmt: skip
        conv._init_quant(
            self.weight_scale.clone(), 4, qas=self.qas, per_channel=self.per_channel,
            activations=self.activations,
        )  # fmt: skip
        for name in ("act_min", "act_max", "act_scale", "act_zero_point"):
            getattr(conv, name).data = getattr(self, name).clone()
        conv.weight = torch.nn.Parameter(self.weight.detach().clone())
        conv.weight.requires_grad_(bool(self.weight_train.requires_grad))
        if self.bias is not None:
            conv.bias = self.bias
        return conv.train(self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantize_input(x)
        scale = self._per_channel(self.weight_scale)
        w_train = self.int8_weight(self.weight_train) * scale
        w_frozen = round_ste(self.weight_frozen) * scale
        bias = self.bias
        needs = (
            x.requires_grad or w_train.requires_grad or (bias is not None and bias.requires_grad)
        )
        if not (torch.is_grad_enabled() and needs):
            weight = torch.cat([w_train, w_frozen], dim=1)
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        return SparseConvFunction.apply(  # type: ignore[no-any-return]
            x, w_train, w_frozen, bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.quant_extra_repr()}"



def quant_sparse_kept(call: Any) -> list[Kept]:
    """What autograd keeps for one call of a :class:`QuantSparseConv2d` (PyTorch 2.13, CPU)."""
    layer, x = call.target, call.args[0]
    w_train, w_frozen = call.params["weight_train"], call.params["weight_frozen"]
    k, total = int(w_train.shape[1]), int(w_train.shape[1] + w_frozen.shape[1])
    kept: list[Kept] = []
    if layer.activations and needs_grad(x):
        kept.append(fresh("input clamp mask (bool)", tuple(x.shape), torch.bool))
    if needs_grad(w_train):
        kept.append(fresh("weight clamp mask (bool)", tuple(w_train.shape), torch.bool))
    if needs_grad(w_train) and k > 0:
        if k < total:
            shape = (x.shape[0], k, *x.shape[2:])
            kept.append(fresh(f"int8 input channels 0..{k - 1} (as fp32)", shape, x.dtype))
        elif layer.activations:
            kept.append(fresh("int8 input (as fp32)", tuple(x.shape), x.dtype))
        else:
            kept.append(keep("input", x))
    if needs_grad(x):
        kept.append(fresh("dequantized weight (trained slice)", tuple(w_train.shape), x.dtype))
        kept.append(fresh("dequantized weight (frozen)", tuple(w_frozen.shape), x.dtype))
    return kept


register_layer(QuantSparseConv2d, pytorch=quant_sparse_kept, engine=sparse_conv_engine)
