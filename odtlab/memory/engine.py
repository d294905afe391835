"""The ``"engine"`` accounting: what a memory-optimised training engine would store.

PyTorch keeps fp32 tensors and often more than backward strictly needs.
On-device training engines do better; we follow the conventions of TinyTL
(Cai et al., NeurIPS 2020, ``cai2020tinytl``) and of the 256 KB paper
(Lin et al., NeurIPS 2022, ``lin2022ondevice``). The rules, per layer, given
which of its inputs require grad and which of its parameters are trained:

1. A layer with no trainable parameter and no input that requires grad
   stores nothing: a frozen prefix of the network costs no activation
   memory.
2. ``Linear``/``Conv``: its input, in 8 bits (1 byte per element), only if
   its **weight** is trained. A frozen weight on the gradient path keeps
   nothing for a weight gradient; bias-only training keeps nothing either
   (the bias gradient is a sum of the output gradient: TinyTL's point).
3. ReLU family (``ReLU``, ``ReLU6``, ``Hardtanh``, ``LeakyReLU``) and
   ``Dropout``: a 1-bit mask, ``ceil(numel / 8)`` bytes, when the gradient
   flows through them.
4. Smooth activations (``GELU``, ``SiLU``, ``Hardswish``) keep their input,
   ``Sigmoid``/``Tanh``/``Softmax`` their output, in 8 bits.
5. ``BatchNorm`` with trained affine parameters: input in 8 bits plus fp32
   mean and inverse std per channel (``2 * C * 4`` bytes); a frozen
   BatchNorm is folded into the previous convolution (a fixed per-channel
   scale, as in the 256 KB paper's compiled graph) and stores nothing.
   ``LayerNorm`` on the gradient path: input in 8 bits plus fp32 mean and
   rstd per row (it cannot be folded). ``GroupNorm`` likewise: input in 8
   bits plus fp32 mean and rstd per sample and group (``2 * N * G * 4``
   bytes); its statistics depend on the sample, so it cannot be folded either.
6. ``MaxPool``: 1 byte per output element (the position of the maximum in
   its window); average pools, flatten/view, residual adds, scalar
   products, means: nothing.
7. ``Embedding`` with a trained table: the indices, in the smallest
   unsigned integer that holds ``num_embeddings - 1`` (1, 2 or 4 bytes).
8. Products of two activations (attention's ``q @ k.T``, ``weights @ v``,
   elementwise ``a * b``): the operand the other's gradient needs, in 8 bits.
9. Cross-entropy: the softmax probabilities in 8 bits plus the targets in
   the smallest unsigned integer that holds the class count.
10. Each stored item is counted once: one 8-bit copy of a tensor serves every
    layer that needs it; a ReLU mask and an 8-bit copy are different items.

The other categories in the engine accounting: **weights** count trainable
parameters at 4 bytes per element (fp32 master weights) and frozen ones at 1
byte (int8), buffers at their real size; **gradients** are fp32 (4 bytes per
trainable element); **optimizer** state is measured as for PyTorch (fp32).
The engine's peak replays the same timeline with 1 byte per element for
every activation-shaped tensor (forward tensors and their gradients) and no
kernel scratch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from odtlab.memory._setup import storage_key
from odtlab.memory.errors import AnalyticUnsupported
from odtlab.memory.formulas import needs_grad
from odtlab.memory.records import SavedTensor, Step, Trace
from odtlab.memory.registry import NO_SAVE_FUNCTIONS
from odtlab.memory.saved import SavedActivations

__all__ = [
    "engine_saved_tensors", "engine_weight_bytes", "index_bytes", "mask_bytes", "ENGINE_RULES", "Item"
]  # fmt: skip


def mask_bytes(numel: int) -> int:
    """Bytes of a 1-bit mask over ``numel`` elements: ``ceil(numel / 8)``."""
    return math.ceil(numel / 8)


def index_bytes(count: int) -> int:
    """Bytes of the smallest unsigned integer that holds ``0 .. count - 1`` (1, 2 or 4)."""
    return 1 if count <= 2**8 else 2 if count <= 2**16 else 4



def _first(call: Any) -> torch.Tensor:
    return call.args[0] if call.args else next(iter(call.kwargs.values()))


class Item(NamedTuple):
    """One thing the engine stores: an encoding of ``tensor``, or a fresh buffer (``None``)."""

    label: str
    tensor: torch.Tensor | None
    encoding: str
    nbytes: int
    shape: tuple[int, ...] = ()


def _int8(label: str, t: torch.Tensor) -> Item:
    return Item(label, t, "int8", t.numel(), tuple(t.shape))


def _mask(t: torch.Tensor) -> Item:
    return Item("1-bit mask", None, "mask", mask_bytes(t.numel()), tuple(t.shape))


def _fresh(label: str, nbytes: int, shape: tuple[int, ...] = ()) -> Item:
    return Item(label, None, "", nbytes, shape)


_RELU_TYPES = (nn.ReLU, nn.Hardtanh, nn.LeakyReLU)  # Hardtanh covers ReLU6
_INPUT_ACTS = (nn.GELU, nn.SiLU, nn.Hardswish)
_OUTPUT_ACTS = (nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax)
_NORM_TYPES = (nn.modules.batchnorm._BatchNorm,)

#: Rules of layer classes added by :func:`odtlab.memory.extend.register_layer`.
ENGINE_RULES: dict[type, Callable[[Any], list[Item]]] = {}


def _module_items(call: Any) -> list[Item]:
    m, x, out = call.target, _first(call), call.output
    weight, bias = call.params.get("weight"), call.params.get("bias")
    for cls in type(m).__mro__:  # registered classes first: they may subclass nn.Conv2d
        if cls in ENGINE_RULES:
            return ENGINE_RULES[cls](call)
    if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
        return [_int8("input (8-bit)", x)] if needs_grad(weight) else []
    if isinstance(m, _RELU_TYPES):
        return [_mask(x)] if needs_grad(x) else []
    if isinstance(m, nn.Dropout):
        return [_mask(x)] if (needs_grad(x) and call.training and m.p > 0) else []
    if isinstance(m, _INPUT_ACTS):
        return [_int8("input (8-bit)", x)] if needs_grad(x) else []
    if isinstance(m, _OUTPUT_ACTS):
        return [_int8("output (8-bit)", out)] if needs_grad(x) else []
    if isinstance(m, _NORM_TYPES):
        if not (needs_grad(weight) or needs_grad(bias)):
            return []  # folded into the previous convolution
        return [_int8("input (8-bit)", x), _fresh("mean, invstd (fp32)", 2 * x.shape[1] * 4)]
    if isinstance(m, nn.LayerNorm):
        rows = x.numel() // max(1, math.prod(m.normalized_shape))
        return [_int8("input (8-bit)", x), _fresh("mean, rstd (fp32)", 2 * rows * 4)]
    if isinstance(m, nn.GroupNorm):
        stats = 2 * x.shape[0] * m.num_groups * 4
        return [_int8("input (8-bit)", x), _fresh("mean, rstd (fp32)", stats)]
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
        return [_fresh("argmax in window", out.numel(), tuple(out.shape))] if needs_grad(x) else []
    if isinstance(m, nn.Embedding):
        if not needs_grad(weight):
            return []
        nbytes = x.numel() * index_bytes(m.num_embeddings)
        return [Item("indices", x, "index", nbytes, tuple(x.shape))]
    if isinstance(
        m, (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Unflatten, nn.Identity)
    ):
        return []
    raise AnalyticUnsupported(
        f"the engine accounting has no rule for layer type {type(m).__name__}; "
        "use accounting='pytorch'"
    )


def _product_items(a: Any, b: Any) -> list[Item]:
    items = []
    if needs_grad(a) and isinstance(b, torch.Tensor):
        items.append(_int8("operand (8-bit)", b))
    if needs_grad(b) and isinstance(a, torch.Tensor):
        items.append(_int8("operand (8-bit)", a))
    return items


def _loss_items(call: Any) -> list[Item]:
    logits, target = call.args[0], call.args[1] if len(call.args) > 1 else call.kwargs["target"]
    if not needs_grad(logits):
        return []
    classes = logits.shape[1] if logits.dim() > 1 else logits.shape[0]
    return [
        _fresh("probabilities (8-bit)", logits.numel(), tuple(logits.shape)),
        Item(
            "targets", target, "index", target.numel() * index_bytes(classes), tuple(target.shape)
        ),
    ]


_FUNCTION_RULES: dict[str, Callable[[Any], list[Item]]] = {
    "matmul": lambda c: _product_items(c.args[0], c.args[1]),
    "bmm": lambda c: _product_items(c.args[0], c.args[1]),
    "mm": lambda c: _product_items(c.args[0], c.args[1]),
    "mul": lambda c: _product_items(c.args[0], c.args[1]),
    "div": lambda c: _product_items(c.args[0], c.args[1]),
    "relu": lambda c: [_mask(_first(c))] if needs_grad(_first(c)) else [],
    "relu_": lambda c: [_mask(_first(c))] if needs_grad(_first(c)) else [],
    "relu6": lambda c: [_mask(_first(c))] if needs_grad(_first(c)) else [],
    "hardtanh": lambda c: [_mask(_first(c))] if needs_grad(_first(c)) else [],
    "gelu": lambda c: [_int8("input (8-bit)", _first(c))] if needs_grad(_first(c)) else [],
    "silu": lambda c: [_int8("input (8-bit)", _first(c))] if needs_grad(_first(c)) else [],
    "softmax": lambda c: [_int8("output (8-bit)", c.output)] if needs_grad(_first(c)) else [],
    "log_softmax": lambda c: [_int8("output (8-bit)", c.output)] if needs_grad(_first(c)) else [],
    "sigmoid": lambda c: [_int8("output (8-bit)", c.output)] if needs_grad(_first(c)) else [],
    "tanh": lambda c: [_int8("output (8-bit)", c.output)] if needs_grad(_first(c)) else [],
    "cross_entropy": _loss_items,
    "nll_loss": _loss_items,
    "mse_loss": lambda c: [_int8("input (8-bit)", c.args[0]), _int8("target (8-bit)", c.args[1])],
    "max_pool2d": lambda c: (
        [_fresh("argmax in window", c.output.numel())] if needs_grad(_first(c)) else []
    ),
    "avg_pool2d": lambda c: [],
    "adaptive_avg_pool2d": lambda c: [],
}


def engine_items(step: Step) -> list[Item]:
    """What the engine stores for one step: ``(label, tensor or None, encoding, bytes)`` items."""
    call = step.call
    if call is None:
        raise ValueError("the trace was released; analyse it before calling release()")
    tensors = [*call.args, *call.kwargs.values(), *call.params.values()]
    if not any(needs_grad(t) for t in tensors):
        return []  # rule 1
    if isinstance(call.target, nn.Module):
        return _module_items(call)
    if step.kind in NO_SAVE_FUNCTIONS:
        return []
    if step.kind in _FUNCTION_RULES:
        return _FUNCTION_RULES[step.kind](call)
    raise AnalyticUnsupported(
        f"the engine accounting has no rule for operation {step.kind!r} (in {step.module!r}); "
        "use accounting='pytorch'"
    )


def engine_saved_tensors(trace: Trace) -> SavedActivations:
    """Apply the engine rules to every step of ``trace``; each item counted once.

    An item that encodes an existing tensor is identified by that tensor's
    storage, the step that last wrote it (in-place ops make a new value) and
    the encoding, so one 8-bit copy serves every layer that needs it.
    """
    seen: dict[Any, SavedTensor] = {}
    users: dict[int, set[int]] = {}
    keys: dict[Any, int] = {}
    producer: dict[int, int] = {}
    for step in trace.steps:
        outputs = {o.key for o in step.outputs}
        for item in engine_items(step):
            if item.tensor is None:
                identity: Any = ("fresh", len(keys))
            else:
                key = storage_key(item.tensor)
                written = step.index if key in outputs else producer.get(key, -1)
                identity = (item.encoding, key, written)
            index = keys.setdefault(identity, -(len(keys) + 1))
            users.setdefault(index, set()).add(step.index)
            if identity not in seen:
                seen[identity] = SavedTensor(
                    index, int(item.nbytes), item.shape, None, step.module, step.index, item.label
                )
        if not _passes_through(step):
            for key in outputs:
                producer[key] = step.index
    return SavedActivations(list(seen.values()), "engine", users)


#: Steps that hand their input on unchanged (same storage, same values): an 8-bit copy
#: made before them still serves the layers after them.
_PASS_THROUGH_MODULES = (nn.Identity, nn.Flatten, nn.Unflatten)
_PASS_THROUGH_FUNCTIONS = frozenset(
    "view reshape flatten unflatten transpose permute contiguous getitem unsqueeze squeeze "
    "expand expand_as split chunk unbind narrow select t mT view_as reshape_as detach".split()
)


def _passes_through(step: Step) -> bool:
    call = step.call
    if call is not None and isinstance(call.target, nn.Module):
        return isinstance(call.target, _PASS_THROUGH_MODULES)
    return step.kind in _PASS_THROUGH_FUNCTIONS


def engine_weight_bytes(model: nn.Module, chosen: dict[str, bool]) -> int:
    """Weights in the engine: trained fp32 (4 B/element), frozen int8 (1 B), buffers as they are."""
    total = 0
    for name, p in model.named_parameters():
        total += p.numel() * (4 if chosen[name] else 1)
    for b in model.buffers():
        total += b.numel() * b.element_size()
    return total
