"""Which formula applies to which layer type and which torch function.

:data:`LAYER_FORMULAS` maps leaf layer classes (``nn.Conv2d``...) to the
formulas of :mod:`odtlab.memory.formulas`; :data:`FUNCTION_FORMULAS` maps
torch functions called directly in a ``forward`` or a loss (``matmul``,
``softmax``, ``cross_entropy``...) by name; :data:`NO_SAVE_FUNCTIONS` lists
the functions that keep nothing (views, adds, means). A leaf layer whose
type is not in the table is traced op by op instead, so a custom layer
built from known operations still works. Under autocast the formulas see
each call as it ran, with its casts (:func:`with_casts`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from odtlab.memory.errors import AnalyticUnsupported
from odtlab.memory.formulas import (
    Kept,
    adaptive_avg_pool_kept,
    batch_norm_kept,
    conv_kept,
    cross_entropy_kept,
    div_kept,
    dropout_kept,
    embedding_kept,
    group_norm_kept,
    hardtanh_kept,
    input_kept,
    layer_norm_kept,
    linear_kept,
    matmul_kept,
    max_pool_kept,
    mm_kept,
    mse_kept,
    mul_kept,
    needs_grad,
    nll_loss_kept,
    output_kept,
)

__all__ = [
    "LAYER_FORMULAS",
    "FUNCTION_FORMULAS",
    "NO_SAVE_FUNCTIONS",
    "layer_formula",
    "kept_for_call",
    "with_casts",
]


def _first(call: Any) -> torch.Tensor:
    return call.args[0] if call.args else next(iter(call.kwargs.values()))


def _arg(call: Any, index: int, name: str, default: Any = None) -> Any:
    if len(call.args) > index:
        return call.args[index]
    return call.kwargs.get(name, default)


def _bn_layer(call: Any) -> list[Kept]:
    training = call.training or (call.buffers.get("running_mean") is None)
    return batch_norm_kept(
        _first(call), call.params.get("weight"), call.params.get("bias"), training
    )


_ACT_OUT = output_kept("output")

#: Formulas of leaf layer types, by class (subclasses match too).
LAYER_FORMULAS: dict[type, Callable[[Any], list[Kept]]] = {
    nn.Linear: lambda c: linear_kept(_first(c), c.params["weight"], c.params.get("bias")),
    nn.Conv1d: lambda c: conv_kept(_first(c), c.params["weight"], c.params.get("bias")),
    nn.Conv2d: lambda c: conv_kept(_first(c), c.params["weight"], c.params.get("bias")),
    nn.Conv3d: lambda c: conv_kept(_first(c), c.params["weight"], c.params.get("bias")),
    nn.BatchNorm1d: _bn_layer,
    nn.BatchNorm2d: _bn_layer,
    nn.BatchNorm3d: _bn_layer,
    nn.LayerNorm: lambda c: layer_norm_kept(
        _first(c), tuple(c.target.normalized_shape), c.params.get("weight"), c.params.get("bias")
    ),
    nn.GroupNorm: lambda c: group_norm_kept(
        _first(c), c.target.num_groups, c.params.get("weight"), c.params.get("bias")
    ),
    nn.ReLU: lambda c: _ACT_OUT(_first(c), c.output),
    nn.Hardtanh: lambda c: hardtanh_kept(_first(c), c.output, c.target.inplace),  # ReLU6 too
    nn.LeakyReLU: lambda c: (
        _ACT_OUT(_first(c), c.output) if c.target.inplace else input_kept(_first(c), c.output)
    ),
    nn.GELU: lambda c: input_kept(_first(c), c.output),
    nn.SiLU: lambda c: input_kept(_first(c), c.output),
    nn.Hardswish: lambda c: input_kept(_first(c), c.output),
    nn.Sigmoid: lambda c: _ACT_OUT(_first(c), c.output),
    nn.Tanh: lambda c: _ACT_OUT(_first(c), c.output),
    nn.Softmax: lambda c: _ACT_OUT(_first(c), c.output),
    nn.LogSoftmax: lambda c: _ACT_OUT(_first(c), c.output),
    nn.MaxPool1d: lambda c: max_pool_kept(_first(c), c.output),
    nn.MaxPool2d: lambda c: max_pool_kept(_first(c), c.output),
    nn.AdaptiveMaxPool2d: lambda c: max_pool_kept(_first(c), c.output),
    nn.AvgPool1d: lambda c: input_kept(_first(c), c.output),
    nn.AvgPool2d: lambda c: input_kept(_first(c), c.output),
    nn.AdaptiveAvgPool2d: lambda c: adaptive_avg_pool_kept(_first(c), c.output),
    nn.Dropout: lambda c: dropout_kept(_first(c), c.target.p, c.training, c.device_type),
    nn.Embedding: lambda c: embedding_kept(_first(c), c.params["weight"]),
    nn.Flatten: lambda c: [],
    nn.Unflatten: lambda c: [],
    nn.Identity: lambda c: [],
}

#: Torch functions (by :func:`odtlab.memory.records.function_kind` name) that keep nothing.
NO_SAVE_FUNCTIONS = frozenset(
    "add add_ sub sub_ neg view reshape flatten unflatten transpose permute contiguous mean sum "
    "cat stack getitem unsqueeze squeeze expand expand_as clone split chunk unbind narrow "
    "select t mT view_as reshape_as detach to float type_as".split()
)


def _inplace_relu(c: Any) -> list[Kept]:
    return _ACT_OUT(_first(c), c.output)


#: Formulas of torch functions called directly in a ``forward`` or a loss.
FUNCTION_FORMULAS: dict[str, Callable[[Any], list[Kept]]] = {
    "matmul": lambda c: matmul_kept(c.args[0], c.args[1], needs_grad(c.args[0]), needs_grad(c.args[1])),
    "bmm": lambda c: mm_kept(c.args[0], c.args[1], needs_grad(c.args[0]), needs_grad(c.args[1])),
    "mm": lambda c: mm_kept(c.args[0], c.args[1], needs_grad(c.args[0]), needs_grad(c.args[1])),
    "mul": lambda c: mul_kept(c.args[0], c.args[1]),
    "mul_": lambda c: mul_kept(c.args[0], c.args[1]),
    "div": lambda c: div_kept(c.args[0], c.args[1]),
    "div_": lambda c: div_kept(c.args[0], c.args[1]),
    "softmax": lambda c: _ACT_OUT(_first(c), c.output),
    "log_softmax": lambda c: _ACT_OUT(_first(c), c.output),
    "sigmoid": lambda c: _ACT_OUT(_first(c), c.output),
    "tanh": lambda c: _ACT_OUT(_first(c), c.output),
    "relu": _inplace_relu,
    "relu_": _inplace_relu,
    "gelu": lambda c: input_kept(_first(c), c.output),
    "silu": lambda c: input_kept(_first(c), c.output),
    "hardswish": lambda c: input_kept(_first(c), c.output),
    "relu6": lambda c: hardtanh_kept(_first(c), c.output, bool(_arg(c, 1, "inplace", False))),
    "hardtanh": lambda c: hardtanh_kept(_first(c), c.output, bool(_arg(c, 3, "inplace", False))),
    "dropout": lambda c: dropout_kept(
        _first(c), float(_arg(c, 1, "p", 0.5)), bool(_arg(c, 2, "training", True)), c.device_type
    ),
    "linear": lambda c: linear_kept(c.args[0], _arg(c, 1, "weight"), _arg(c, 2, "bias")),
    "conv1d": lambda c: conv_kept(c.args[0], _arg(c, 1, "weight"), _arg(c, 2, "bias")),
    "conv2d": lambda c: conv_kept(c.args[0], _arg(c, 1, "weight"), _arg(c, 2, "bias")),
    "layer_norm": lambda c: layer_norm_kept(
        c.args[0], tuple(_arg(c, 1, "normalized_shape")), _arg(c, 2, "weight"), _arg(c, 3, "bias")
    ),
    "group_norm": lambda c: group_norm_kept(
        c.args[0], int(_arg(c, 1, "num_groups")), _arg(c, 2, "weight"), _arg(c, 3, "bias")
    ),
    "batch_norm": lambda c: batch_norm_kept(
        c.args[0], _arg(c, 3, "weight"), _arg(c, 4, "bias"), bool(_arg(c, 5, "training", False))
    ),
    "embedding": lambda c: embedding_kept(c.args[0], _arg(c, 1, "weight")),
    "max_pool2d": lambda c: max_pool_kept(_first(c), c.output),
    "avg_pool2d": lambda c: input_kept(_first(c), c.output),
    "adaptive_avg_pool2d": lambda c: adaptive_avg_pool_kept(_first(c), c.output),
    "cross_entropy": lambda c: cross_entropy_kept(
        c.args[0], _arg(c, 1, "target"), {k: v for k, v in c.kwargs.items()}
    ),
    "nll_loss": lambda c: nll_loss_kept(c.args[0], _arg(c, 1, "target")),
    "mse_loss": lambda c: mse_kept(c.args[0], _arg(c, 1, "target")),
}


def layer_formula(module: nn.Module) -> Callable[[Any], list[Kept]] | None:
    """The formula of ``module``'s type (or of its nearest known base class), or ``None``."""
    for cls in type(module).__mro__:
        if cls in LAYER_FORMULAS:
            return LAYER_FORMULAS[cls]
    return None


def _swap(obj: Any, casts: dict[int, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        return casts.get(id(obj), obj)
    if isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        return type(obj)(_swap(x, casts) for x in obj)
    return obj


def with_casts(call: Any) -> Any:
    """``call`` as the layer ran it under autocast: each cast tensor replaced by its cast.

    The formulas then keep what autograd keeps: a convolution under bf16
    autocast keeps its bf16 input and the bf16 copy of its weight, not the
    fp32 originals (see :mod:`odtlab.memory.autocast`).
    """
    casts = getattr(call, "casts", None)
    if not casts:
        return call
    return dataclasses.replace(
        call,
        args=_swap(tuple(call.args), casts),
        kwargs={k: _swap(v, casts) for k, v in call.kwargs.items()},
        params={k: _swap(v, casts) for k, v in call.params.items()},
    )


def kept_for_call(call: Any, kind: str, module_name: str) -> list[Kept]:
    """What one recorded call keeps for backward, by its layer type or function name.

    Raises
    ------
    AnalyticUnsupported
        For a layer type or function with no formula that has an input or
        parameter requiring grad (anything else keeps nothing, whatever it is).
    """
    call = with_casts(call)
    tensors = [t for t in (*call.args, *call.kwargs.values(), *call.params.values())]
    if not any(needs_grad(t) for t in tensors) and not any(
        needs_grad(x) for a in call.args if isinstance(a, (list, tuple)) for x in a
    ):
        return []
    if isinstance(call.target, nn.Module):
        formula = layer_formula(call.target)
        if formula is None:  # pragma: no cover - unknown leaves are traced op by op instead
            raise AnalyticUnsupported(_unknown(type(call.target).__name__, module_name))
        return formula(call)
    if kind in NO_SAVE_FUNCTIONS:
        return []
    if kind in FUNCTION_FORMULAS:
        return FUNCTION_FORMULAS[kind](call)
    raise AnalyticUnsupported(_unknown(f"operation {kind!r}", module_name))


def _unknown(what: str, module_name: str) -> str:
    return (
        f"the analytic memory model has no formula for {what} (in {module_name!r}); "
        "use method='measured' (the default), which asks PyTorch what it saves and works for "
        "every model, or add a formula to odtlab.memory.formulas"
    )
