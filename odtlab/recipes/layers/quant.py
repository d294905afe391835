"""Layers that train the int8 graph: :class:`QuantConv2d` and :class:`QuantLinear`.

The 256 KB paper (Lin et al., NeurIPS 2022, Section 2.1) trains a *real*
int8 graph: the weights are stored as int8 numbers ``W̄`` and a per-channel
float scale ``s`` turns them back into real weights, ``W = s * W̄``. We
simulate that graph in floating point ("fake quantisation"), with the
trained parameter in the same units as on the device:

* ``layer.weight`` holds ``W̄ = W / s``: integer units, values in
  ``[-127, 127]`` (a float tensor, so that SGD can move it by fractions);
* ``layer.weight_scale`` (a buffer, one value per output channel, fixed at
  conversion) is ``s = max|W_c| / 127``, the scale of int8 symmetric
  quantisation;
* ``forward`` uses ``round(clamp(W̄, -127, 127)) * s``, the int8 weight the
  device would use. Rounding has no useful derivative, so the backward pass
  uses the *straight-through estimator* (STE): the gradient passes through
  the rounding as if it were the identity (and is zero where the clamp cut).
  PyTorch's :func:`torch.fake_quantize_per_tensor_affine` does exactly this;
* the input of the layer is quantised too (``activations=True``), to int8
  with a scale and zero point from a moving-average min/max of what it saw
  (PyTorch's :func:`torch.fused_moving_avg_obs_fake_quant`, the op behind
  ``torch.ao.quantization.FusedMovingAvgObsFakeQuantize``; averaging
  constant 0.01). Statistics move in train mode only (in eval mode too
  before the first batch ever seen);
* the bias stays fp32 (the paper keeps an int32 bias in units of
  ``s_w * s_x``; an fp32 bias is the same number without rounding).

**QAS.** By the chain rule ``dL/dW̄ = s * dL/dW``: the int8 weight is ``1/s``
times larger and its gradient ``s`` times smaller, so SGD with an fp32
learning rate moves ``W`` by ``s**2`` times the fp32 step (``s`` ~ 0.01 in
practice: 10,000 times too little). Quantisation-aware scaling multiplies
the gradient of ``W̄`` by ``s**-2`` (per channel), a hook on the weight as
the layer reads it (:meth:`QuantMixin.int8_weight`), so that the step taken in ``W``
is the fp32 step again. With an fp32 bias no bias scaling is needed (the
paper scales its int32 bias gradient by ``(s_w * s_x)**-2`` for the same
reason).

What autograd keeps (PyTorch 2.13, CPU), registered with
:func:`odtlab.memory.register_layer` so the analytic memory model agrees
with the measurement to the byte: the int8-rounded input (fp32, the input's
size) and a 1-byte mask of the input (which values the clamp cut) when the
input requires grad; a 1-byte mask of the weight when the weight is
trained; the dequantised weight (fp32, the weight's size). A conv keeps its
rounded input and weight whenever anything in it needs grad; a linear
layer keeps the rounded input iff the weight is trained and the weight iff
the input needs grad. On the ``meta`` device (the analytic memory model's
shape-only pass) PyTorch has no kernel for the rounding ops; we skip them
there, where no value is computed anyway.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from odtlab.memory import engine_int8, register_layer
from odtlab.memory.formulas import Kept, fresh, keep, needs_grad

__all__ = [
    "QuantMixin",
    "QuantConv2d",
    "QuantLinear",
    "weight_scales",
    "round_ste",
    "to_integer_units",
    "quant_kept",
    "quant_engine",
    "WEIGHT_QMAX",
    "ACT_QMIN",
    "ACT_QMAX",
]

#: Weights: symmetric int8 in ``[-127, 127]`` (the TFLite convention the paper follows).
WEIGHT_QMAX = 127
#: Activations: asymmetric int8, ``[-128, 127]`` with a zero point.
ACT_QMIN, ACT_QMAX = -128, 127
#: Moving-average constant of the activation min/max (``MovingAverageMinMaxObserver``'s).
AVERAGING_CONSTANT = 0.01


def weight_scales(weight: torch.Tensor, per_channel: bool = True) -> torch.Tensor:
    """Scale ``s`` of symmetric int8 quantisation: ``max|W| / 127``, one per output channel.

    With ``per_channel=False`` every channel gets the tensor's scale. A
    channel of zeros gets scale 1 (its ``W̄`` is 0 anyway). Shape
    ``(out_channels,)``, fp32, in the weight's units per integer step.

    >>> weight_scales(torch.tensor([[127.0, -1.0], [0.5, 0.0]]))
    tensor([1.0000, 0.0039])
    """
    w = weight.detach().float().flatten(1).abs()
    top = w.amax(dim=1) if per_channel else w.amax().expand(w.shape[0])
    return torch.where(top > 0, top / WEIGHT_QMAX, torch.ones_like(top)).clone()


def round_ste(t: torch.Tensor, qmin: int = -WEIGHT_QMAX, qmax: int = WEIGHT_QMAX) -> torch.Tensor:
    """``round(clamp(t, qmin, qmax))`` with the straight-through gradient (1 inside, 0 outside).

    ``t`` is already in integer units (scale 1, zero point 0).

    >>> round_ste(torch.tensor([0.4, 1.6, 300.0]))
    tensor([  0.,   2., 127.])
    """
    if t.device.type == "meta":  # no meta kernel; the analytic pass needs shapes only
        return t.clamp(qmin, qmax)
    return torch.fake_quantize_per_tensor_affine(t, 1.0, 0, qmin, qmax)


def to_integer_units(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``W / s`` clamped to ``[-127, 127]`` (``scale`` broadcastable against ``weight``)."""
    return (weight / scale).clamp(-WEIGHT_QMAX, WEIGHT_QMAX)


class QuantMixin:
    """What :class:`QuantConv2d` and :class:`QuantLinear` share (see the module docstring).

    Attributes
    ----------
    qas : bool
        Scale the gradient of ``weight`` by ``weight_scale ** -2``.
    activations : bool
        Fake-quantise the input to int8.
    per_channel : bool
        One scale per output channel (else one per tensor).
    """

    weight: nn.Parameter
    bias: nn.Parameter | None
    weight_scale: torch.Tensor
    act_min: torch.Tensor
    act_max: torch.Tensor
    act_scale: torch.Tensor
    act_zero_point: torch.Tensor
    training: bool
    weight_dims: int

    def _init_quant(
        self, scale: torch.Tensor, dims: int, *, qas: bool, per_channel: bool, activations: bool
    ) -> None:
        """Register the scale and activation-statistics buffers; set the flags."""
        kw = {"device": scale.device}
        buffers = {
            "weight_scale": scale,
            "act_min": torch.full((1,), float("inf"), **kw),
            "act_max": torch.full((1,), float("-inf"), **kw),
            "act_scale": torch.ones(1, **kw),
            "act_zero_point": torch.zeros(1, dtype=torch.int32, **kw),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value)  # type: ignore[attr-defined]
        self.weight_dims = dims
        self.qas, self.per_channel, self.activations = qas, per_channel, activations

    def _copy_from(self, source: nn.Module, **flags: bool) -> None:
        """Quantise ``source.weight`` into ``self.weight`` (integer units), copy the bias."""
        weight = source.weight.detach()
        scale = weight_scales(weight, flags["per_channel"]).to(weight.device)
        self._init_quant(scale, weight.dim(), **flags)
        with torch.no_grad():
            self.weight.copy_(to_integer_units(weight, self._per_channel(scale)))
            if source.bias is not None and self.bias is not None:
                self.bias.copy_(source.bias.detach())
        self.weight.requires_grad_(source.weight.requires_grad)
        if source.bias is not None and self.bias is not None:
            self.bias.requires_grad_(source.bias.requires_grad)

    def _per_channel(self, v: torch.Tensor) -> torch.Tensor:
        """``v`` of shape ``(C_out,)`` viewed to broadcast against the weight."""
        return v.view(-1, *([1] * (self.weight_dims - 1)))

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` fake-quantised to int8 (observing its range first in train mode)."""
        if not self.activations:
            return x
        if self.training:
            observe = torch.ones(1, dtype=torch.long, device=x.device)
        else:  # frozen statistics, unless none were ever gathered
            observe = torch.isinf(self.act_min).to(torch.long)
        on = torch.ones(1, dtype=torch.long, device=x.device)
        return torch.fused_moving_avg_obs_fake_quant(
            x, observe, on, self.act_min, self.act_max, self.act_scale, self.act_zero_point,
            AVERAGING_CONSTANT, ACT_QMIN, ACT_QMAX, 0,
        )  # fmt: skip

    def int8_weight(self, w: torch.Tensor | None = None) -> torch.Tensor:
        """The int8 weight in integer units, ``round(clamp(W̄))``, with QAS on its gradient.

        ``w``: the trained tensor to read (default ``self.weight``).
        """
        w = self.weight if w is None else w
        if self.qas and w.requires_grad and torch.is_grad_enabled():
            w = w.view_as(w)  # a fresh node, so the hook lives and dies with this graph
            factor = self._per_channel(self.weight_scale.detach().pow(-2))
            w.register_hook(lambda grad: grad * factor)
        return round_ste(w)

    def dequantized_weight(self) -> torch.Tensor:
        """The real weight the forward uses, ``round(clamp(W̄)) * s`` (fp32)."""
        return self.int8_weight() * self._per_channel(self.weight_scale)

    def quant_extra_repr(self) -> str:
        return (
            f"int8, qas={self.qas}, per_channel={self.per_channel}, activations={self.activations}"
        )


class QuantConv2d(QuantMixin, nn.Conv2d):
    """An ``nn.Conv2d`` that trains its int8 weight (see the module docstring).

    Build it with :meth:`from_float`; ``weight`` is then ``W̄`` in integer units.
    """

    @classmethod
    def from_float(
        cls, conv: nn.Conv2d, *, qas: bool = True, per_channel: bool = True,
        activations: bool = True,
    ) -> QuantConv2d:  # fmt: skip
        """A quantised copy of ``conv`` (same hyper-parameters, device and flags)."""
        layer = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding, dilation=conv.dilation, groups=conv.groups,  # type: ignore[arg-type]
            bias=conv.bias is not None, padding_mode=conv.padding_mode,
            device=conv.weight.device, dtype=conv.weight.dtype,
        )  # fmt: skip
        layer.train(conv.training)
        layer._copy_from(conv, qas=qas, per_channel=per_channel, activations=activations)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quantize_input(x), self.dequantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.quant_extra_repr()}"


class QuantLinear(QuantMixin, nn.Linear):
    """An ``nn.Linear`` that trains its int8 weight (see the module docstring)."""

    @classmethod
    def from_float(
        cls, linear: nn.Linear, *, qas: bool = True, per_channel: bool = True,
        activations: bool = True,
    ) -> QuantLinear:  # fmt: skip
        """A quantised copy of ``linear`` (same sizes, device and flags)."""
        layer = cls(
            linear.in_features, linear.out_features, bias=linear.bias is not None,
            device=linear.weight.device, dtype=linear.weight.dtype,
        )  # fmt: skip
        layer.train(linear.training)
        layer._copy_from(linear, qas=qas, per_channel=per_channel, activations=activations)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantize_input(x), self.dequantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.quant_extra_repr()}"


# ---- the memory model's rules -------------------------------------------------------------------



def quant_kept(call: Any) -> list[Kept]:
    """What autograd keeps for one call of a quantised layer (PyTorch 2.13, CPU)."""
    layer, x = call.target, call.args[0]
    w, b = call.params["weight"], call.params.get("bias")
    kept: list[Kept] = []
    if layer.activations and needs_grad(x):
        kept.append(fresh("input clamp mask (bool)", tuple(x.shape), torch.bool))
    if needs_grad(w):
        kept.append(fresh("weight clamp mask (bool)", tuple(w.shape), torch.bool))
    if isinstance(layer, nn.Conv2d):
        need_input = need_weight = needs_grad(x) or needs_grad(w) or needs_grad(b)
    else:
        need_input, need_weight = needs_grad(w), needs_grad(x)
    if need_input:
        kept.append(
            fresh("int8 input (as fp32)", tuple(x.shape), x.dtype)
            if layer.activations
            else keep("input", x)
        )
    if need_weight:
        kept.append(fresh("dequantized weight", tuple(w.shape), w.dtype))
    return kept


def quant_engine(call: Any) -> list[Any]:
    """The engine keeps the 8-bit input iff the weight is trained, as for any conv."""
    return [engine_int8("input (8-bit)", call.args[0])] if needs_grad(call.params["weight"]) else []


for _cls in (QuantConv2d, QuantLinear):
    register_layer(_cls, pytorch=quant_kept, engine=quant_engine)
