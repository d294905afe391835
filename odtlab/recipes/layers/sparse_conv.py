"""A convolution that trains only part of its weight and *saves* only what that part needs.

The 256 KB paper (Lin et al., NeurIPS 2022, ``lin2022ondevice``) updates a
few layers of a network, and in some of them only a fraction of the weight
("sparse tensor update"). Its reference code (``mit-han-lab/tiny-training``,
``algorithm/core/utils/partial_backward.py``) runs PyTorch's *full* backward
and then zeroes the gradients it does not want, so in PyTorch the memory
savings exist only on paper; the paper's own compiler (Tiny Training Engine)
prunes the backward graph to realise them on the microcontroller.

:class:`SparseConv2d` realises them in PyTorch. Why it can: for a
convolution ``y = conv(x, W) + b``,

* ``grad b = sum of grad y`` over batch and positions: needs nothing saved;
* ``grad x = conv_transpose(grad y, W)``: needs the weight, not ``x``;
* ``grad W[:, c] = correlate(x[:, c], grad y)``: the gradient of the weight
  slice of *input channel* ``c`` needs only input channel ``c`` of ``x``.

So a layer that trains the weights of its first ``k`` input channels needs
only ``x[:, :k]`` for backward, ``k / C`` of its input; a layer whose weight
is frozen needs nothing of ``x`` at all (``nn.Conv2d`` keeps the whole input
as soon as anything in it needs a gradient, bias included).

Design choices
--------------
* **Input channels, the first k.** The gradient of a slice of *output*
  channels still needs the whole input, so only a subset of *input* channels
  cuts the saved activation. The reference code also selects input channels
  (``keep_mask.view(1, -1, 1, 1)`` on ``(out, in, kh, kw)`` weights, for
  ``groups == 1``), ``int(in_channels * ratio)`` of them, the ones with the
  largest weight norm (``weight_select_criteria: magnitude+``). We take the
  *first* ``k = ceil(ratio * in_channels)`` channels instead: the saved
  slice is then a plain ``x[:, :k]`` copy, and a pretrained network has no
  preferred channel order anyway (reorder the channels of the previous layer
  to choose others). ``ceil`` makes any ratio > 0 train at least one channel.
  For a depthwise convolution the reference also masks channels (channel
  ``c``'s filter needs only input channel ``c``); we do not split those:
  grouped and depthwise convolutions take ratio 0 or 1 here.
* **Two parameters.** The weight is stored as ``weight_train`` (the first
  ``k`` input channels, ``requires_grad=True`` when trained) and
  ``weight_frozen`` (the rest, never trained), so the gradient and the
  optimizer state are ``k / C`` of the weight too: the optimizer only ever
  sees ``weight_train``. ``module.weight`` still reads the whole weight (a
  new tensor, concatenated), assigning ``module.weight = w`` splits ``w``,
  and ``state_dict()`` / ``load_state_dict()`` use the single key
  ``"weight"`` of ``nn.Conv2d``, so checkpoints move freely between the two.
  Code that reads ``conv.weight.grad`` must read ``conv.weight_train.grad``
  instead: the concatenated ``weight`` is not a leaf and has no ``.grad``.
* **What backward keeps** (the custom :class:`torch.autograd.Function`):
  ``x[:, :k]`` as a contiguous copy when ``weight_train`` requires grad
  (``x`` itself when ``k`` is every channel), nothing of ``x`` otherwise; the
  two weight parameters when ``x`` requires grad (they are weights, not
  activations).

The memory model knows the class: :func:`odtlab.memory.register_layer` gives
it a ``pytorch`` rule (what the Function saves, checked to the byte) and an
``engine`` rule (the ``k`` selected input channels in 8 bits, 1 byte per
element, when the weight slice trains; nothing when it is frozen).

Examples
--------
>>> conv = SparseConv2d(16, 8, 3, padding=1, update_ratio=0.25)
>>> conv.channels_trained, tuple(conv.weight_train.shape), tuple(conv.weight.shape)
(4, (8, 4, 3, 3), (8, 16, 3, 3))
>>> sorted(conv.state_dict())
['bias', 'weight']
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

from odtlab.errors import InvalidRecipe
from odtlab.memory.extend import register_layer
from odtlab.recipes.layers.sparse_conv_rules import sparse_conv_engine, sparse_conv_kept

__all__ = ["SparseConv2d", "SparseConvFunction", "channels_to_update"]


def channels_to_update(in_channels_per_group: int, update_ratio: float, groups: int = 1) -> int:
    """How many input channels a ratio trains: ``k = ceil(ratio * in_channels_per_group)``.

    Parameters
    ----------
    in_channels_per_group : int
        Input channels each output channel sees (``in_channels / groups``).
    update_ratio : float
        In ``[0, 1]``; 0 freezes the weight. Grouped and depthwise convolutions
        (``groups > 1``) take 0 or 1 only.
    groups : int

    Raises
    ------
    InvalidRecipe
        For a ratio outside ``[0, 1]``, or a fractional ratio with ``groups > 1``.

    Examples
    --------
    >>> channels_to_update(48, 0.125), channels_to_update(48, 0.1), channels_to_update(48, 0)
    (6, 5, 0)
    """
    ok = isinstance(update_ratio, (int, float)) and not isinstance(update_ratio, bool)
    if not ok or not 0 <= update_ratio <= 1:
        raise InvalidRecipe(
            f"update_ratio={update_ratio!r}: give a number in [0, 1], the fraction of input "
            "channels whose weights train (0 freezes the weight, 1 trains all of it)"
        )
    if groups > 1 and update_ratio not in (0, 1):
        raise InvalidRecipe(
            f"update_ratio={update_ratio!r} on a grouped/depthwise convolution (groups={groups}): "
            "SparseConv2d trains a subset of input channels of groups=1 convolutions only; "
            "use 0 (frozen weight) or 1 (the whole weight) here"
        )
    if update_ratio == 0:
        return 0
    # at least one channel; the small epsilon keeps float error (0.1 * 30 = 3.0000000000000004)
    # from adding a channel
    return max(1, math.ceil(update_ratio * in_channels_per_group - 1e-9))


def _whole(w_train: torch.Tensor, w_frozen: torch.Tensor) -> torch.Tensor:
    """The whole weight; no copy when one part is empty (a frozen or a fully trained conv)."""
    if w_train.shape[1] == 0:
        return w_frozen
    if w_frozen.shape[1] == 0:
        return w_train
    return torch.cat([w_train, w_frozen], dim=1)


class SparseConvFunction(torch.autograd.Function):
    """``conv2d(x, cat(w_train, w_frozen), bias)`` whose backward needs only ``x[:, :k]``.

    ``k = w_train.shape[1]``. Inputs: ``x, w_train, w_frozen, bias`` (bias may
    be ``None``) and the convolution's ``stride, padding, dilation, groups``.
    Saved for backward: ``x[:, :k]`` (a contiguous copy; ``x`` itself when
    ``k`` is every channel) if ``w_train`` requires grad; the two weights if
    ``x`` requires grad. Gradients come from :func:`torch.nn.grad.conv2d_input`
    and :func:`torch.nn.grad.conv2d_weight`; ``w_frozen`` gets none.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        w_train: torch.Tensor,
        w_frozen: torch.Tensor,
        bias: torch.Tensor | None,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        groups: int,
    ) -> torch.Tensor:
        weight = _whole(w_train, w_frozen)
        out = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        k = w_train.shape[1]
        wants_x, wants_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1] and k > 0
        part = None
        if wants_w:
            # clone, not contiguous(): with one example, x[:, :k] is already contiguous and
            # would be a view that keeps the whole input's storage alive
            part = (
                x if k == weight.shape[1] else x[:, :k].clone(memory_format=torch.contiguous_format)
            )
        ctx.save_for_backward(part, w_train if wants_x else None, w_frozen if wants_x else None)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.shapes = (tuple(x.shape), tuple(w_train.shape))
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        part, w_train, w_frozen = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        x_shape, w_train_shape = ctx.shapes
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            weight = _whole(w_train, w_frozen)
            grad_x = torch.nn.grad.conv2d_input(
                list(x_shape), weight, grad_out, stride, padding, dilation, groups
            )
        if ctx.needs_input_grad[1] and part is not None:
            grad_w = torch.nn.grad.conv2d_weight(
                part, list(w_train_shape), grad_out, stride, padding, dilation, groups
            )
        if ctx.needs_input_grad[3]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, None, grad_b, None, None, None, None


class SparseConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that trains only its first ``k`` input channels' weights.

    See the module docstring for what it saves and why. A leaf module with
    the arguments of ``nn.Conv2d`` plus ``update_ratio``; build one from an
    existing convolution with :meth:`from_conv`.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, device, dtype
        As for ``nn.Conv2d``. ``padding`` must be numbers (not ``"same"``)
        and ``padding_mode`` ``"zeros"``.
    update_ratio : float
        Fraction of input channels (per group) whose weights train, in
        ``[0, 1]``: ``k = ceil(update_ratio * in_channels / groups)``. 0
        freezes the whole weight (the bias may still train). Grouped and
        depthwise convolutions take 0 or 1.

    Attributes
    ----------
    weight_train : nn.Parameter
        ``(out, k, kh, kw)``, the trainable slice (``requires_grad`` is
        ``k > 0`` at construction; a recipe's rule sets it afterwards).
    weight_frozen : nn.Parameter
        ``(out, in / groups - k, kh, kw)``, ``requires_grad=False``.
    weight : torch.Tensor
        The whole weight, ``cat([weight_train, weight_frozen], dim=1)``
        (read: a new tensor; assign: split into the two parameters).
    channels_trained : int
        ``k``.

    Examples
    --------
    >>> conv = SparseConv2d(8, 4, 1, update_ratio=0.5)
    >>> x = torch.randn(2, 8, 5, 5, requires_grad=True)
    >>> conv(x).sum().backward()
    >>> tuple(conv.weight_train.grad.shape), conv.weight_frozen.grad is None
    ((4, 4, 1, 1), True)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        update_ratio: float = 1.0,
    ) -> None:
        if padding_mode != "zeros" or isinstance(padding, str):
            raise InvalidRecipe(
                f"SparseConv2d supports numeric padding with padding_mode='zeros' only, got "
                f"padding={padding!r}, padding_mode={padding_mode!r}; pad the input with "
                "torch.nn.functional.pad before the convolution instead"
            )
        k = channels_to_update(in_channels // groups, update_ratio, groups)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, device, dtype,
        )  # fmt: skip
        self.update_ratio = float(update_ratio)
        self.channels_trained = k
        full = self._parameters.pop("weight")
        assert full is not None
        self._split(full.detach(), trained=k > 0)

    # ---- the weight, stored in two parts -------------------------------------------------
    def _split(self, full: torch.Tensor, trained: bool) -> None:
        k = self.channels_trained
        with torch.no_grad():
            self.weight_train = nn.Parameter(full[:, :k].clone(), requires_grad=trained)
            self.weight_frozen = nn.Parameter(full[:, k:].clone(), requires_grad=False)

    @property  # type: ignore[override]
    def weight(self) -> torch.Tensor:  # noqa: D102 - documented in the class docstring
        params = self.__dict__["_parameters"]
        if "weight_train" in params:
            return torch.cat([params["weight_train"], params["weight_frozen"]], dim=1)
        if "weight" in params:  # only while nn.Conv2d.__init__ runs
            return params["weight"]
        raise AttributeError("weight")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "weight" and "weight_train" in self.__dict__.get("_parameters", {}):
            if not isinstance(value, torch.Tensor) or value.shape != self.weight.shape:
                shape = tuple(self.weight.shape)
                raise InvalidRecipe(
                    f"SparseConv2d.weight must be assigned a tensor of shape {shape}, "
                    f"got {getattr(value, 'shape', type(value).__name__)}"
                )
            self._split(value.detach(), trained=self.weight_train.requires_grad)
            return
        super().__setattr__(name, value)

    def reset_parameters(self) -> None:
        """Initialise like ``nn.Conv2d`` (Kaiming-uniform weight, uniform bias)."""
        if "weight_train" not in self._parameters:
            super().reset_parameters()
            return
        full = torch.empty_like(self.weight)
        init.kaiming_uniform_(full, a=math.sqrt(5))
        self.weight = full
        if self.bias is not None:
            bound = 1 / math.sqrt(full[0].numel()) if full[0].numel() else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        weight = self.weight if keep_vars else self.weight.detach()
        destination[prefix + "weight"] = weight
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf.detach()

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        key = prefix + "weight"
        if key in state_dict:
            full = state_dict.pop(key)
            k = self.channels_trained
            state_dict[prefix + "weight_train"] = full[:, :k]
            state_dict[prefix + "weight_frozen"] = full[:, k:]
        super()._load_from_state_dict(state_dict, prefix, *args)

    # ---- building and running ---------------------------------------------------------------
    @classmethod
    def from_conv(cls, conv: nn.Conv2d, update_ratio: float) -> SparseConv2d:
        """A :class:`SparseConv2d` computing what ``conv`` computes, with its weight copied.

        The bias parameter is *shared* (the same object), the weight is split
        into two new parameters. ``conv`` may itself be a :class:`SparseConv2d`.
        """
        if not isinstance(conv, nn.Conv2d):
            raise InvalidRecipe(f"from_conv needs an nn.Conv2d, got {type(conv).__name__}")
        new = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
            conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,  # type: ignore[arg-type]
            device="meta", dtype=conv.weight.dtype,
            update_ratio=update_ratio,
        )  # fmt: skip
        weight = conv.weight.detach()
        new._split(weight, trained=bool(conv.weight.requires_grad) and new.channels_trained > 0)
        if conv.bias is not None:
            new.bias = conv.bias
        return new.train(conv.training)

    def to_conv2d(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` with the same weight (copied) and bias (shared)."""
        conv = nn.Conv2d(
            self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,  # type: ignore[arg-type]
            self.dilation, self.groups, self.bias is not None, device="meta",  # type: ignore[arg-type]
        )  # fmt: skip
        conv.weight = nn.Parameter(self.weight.detach().clone())
        conv.weight.requires_grad_(bool(self.weight_train.requires_grad))
        if self.bias is not None:
            conv.bias = self.bias
        return conv.train(self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``conv2d(x, weight, bias)``, through :class:`SparseConvFunction` when training."""
        w_train, w_frozen, bias = self.weight_train, self.weight_frozen, self.bias
        needs = (
            x.requires_grad or w_train.requires_grad or (bias is not None and bias.requires_grad)
        )
        if not (torch.is_grad_enabled() and needs):
            weight = _whole(w_train, w_frozen)
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        return SparseConvFunction.apply(  # type: ignore[no-any-return]
            x, w_train, w_frozen, bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        per_group = self.in_channels // self.groups
        return f"{super().extra_repr()}, update_ratio={self.update_ratio:g} ({self.channels_trained}/{per_group} input channels)"


# The memory model's rules (odtlab/recipes/layers/sparse_conv_rules.py).
register_layer(SparseConv2d, pytorch=sparse_conv_kept, engine=sparse_conv_engine)
