"""Train the int8 graph, with quantisation-aware scaling: :class:`Int8` and its tools.

The 256 KB paper (Lin et al., NeurIPS 2022, ``lin2022ondevice``, Section 2.1
"Quantization-aware scaling") fine-tunes the *int8* model that runs on the
microcontroller, BatchNorm folded into the convolutions. Two things make
that graph hard to train with plain SGD: it has no normalisation, and its
weights live in integer units. :class:`Int8` builds that graph in PyTorch
(:func:`convert_to_int8`, layers in :mod:`odtlab.recipes.layers.quant`) and
fixes the second problem with QAS.

Why QAS. A layer computes with ``W = s * W̄`` (``W̄`` the int8 weight, ``s``
its scale, about ``max|W| / 127``). The chain rule gives ``G_W̄ = s * G_W``,
so ::

    ||W̄|| / ||G_W̄||  =  s**-2 * ||W|| / ||G_W||

With ``s`` around 0.01 the int8 weight is 10,000 times "heavier" relative to
its gradient than the fp32 weight, and SGD with an fp32 learning rate barely
moves it (or, for a layer with ``s > 1``, moves it too far). QAS multiplies
``G_W̄`` by ``s**-2``, which restores the fp32 ratio and makes the SGD step
in ``W`` the fp32 step. :func:`weight_gradient_ratios` and
:func:`qas_gradient_scale_report` measure it.

Examples
--------
>>> import torch
>>> from odtlab import models
>>> from odtlab.recipes import Recipe, BiasOnly
>>> net = Recipe(BiasOnly(), Int8()).prepare(models.build("cnn"))
>>> type(net.features[0].conv).__name__, net.features[0].conv.bias.requires_grad
('QuantConv2d', True)
>>> float(net.features[0].conv.weight.abs().max())  # integer units
127.0
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.activations.microbatch import LossFn
from odtlab.recipes.layers.fold import fold_batchnorm
from odtlab.recipes.layers.quant import QuantConv2d, QuantLinear, QuantMixin
from odtlab.recipes.layers.quant_sparse import QuantSparseConv2d
from odtlab.recipes.layers.sparse_conv import SparseConv2d
from odtlab.recipes.precision.mixed import PrecisionPart
from odtlab.recipes.precision.qas import QASReport, weight_gradient_ratios

__all__ = [
    "Int8",
    "convert_to_int8",
    "quantized_layers",
    "dequantized_state",
    "weight_gradient_ratios",
    "qas_gradient_scale_report",
    "QASReport",
]

_QUANT_BUFFERS = ("weight_scale", "act_min", "act_max", "act_scale", "act_zero_point")


def _check_bool(arg: str, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidRecipe(f"Int8({arg}={value!r}): {arg} must be True or False")


def quantized_layers(model: nn.Module) -> dict[str, QuantMixin]:
    """The int8 layers of ``model`` by name (empty for an fp32 model)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantMixin)}


def convert_to_int8(
    model: nn.Module,
    *,
    qas: bool = True,
    per_channel: bool = True,
    activations: bool = True,
    fold_bn: bool = True,
) -> nn.Module:
    """Turn ``model`` into its int8 training graph, in place, and return it.

    First every ``Conv2d -> BatchNorm2d`` pair is folded
    (:func:`~odtlab.recipes.layers.fold.fold_batchnorm`, if ``fold_bn``), then every
    ``nn.Conv2d`` and ``nn.Linear`` becomes a
    :class:`~odtlab.recipes.layers.quant.QuantConv2d` /
    :class:`~odtlab.recipes.layers.quant.QuantLinear` *under the same name*,
    so parameter names stay ``....conv.weight``, ``....conv.bias``; a
    :class:`~odtlab.recipes.layers.sparse_conv.SparseConv2d` (from
    :class:`~odtlab.recipes.SparseUpdate`) becomes a
    :class:`~odtlab.recipes.layers.quant_sparse.QuantSparseConv2d` (still
    ``weight_train`` / ``weight_frozen``). Layers already converted only
    take the new ``qas`` and ``activations`` settings, so calling it twice
    is safe. Other subclasses of ``nn.Conv2d`` / ``nn.Linear`` with their
    own forward (LoRA layers, ``MultiheadAttention``'s projection) are left
    in fp32, with a warning naming them: converting them would lose what
    they do. Convert an fp32 model once: a recipe whose trainable part
    swaps layers again (another sparse scheme) needs a fresh fp32 copy.

    Parameters
    ----------
    qas : bool
        Quantisation-aware scaling of the weight gradients.
    per_channel : bool
        One weight scale per output channel (else one per tensor).
    activations : bool
        Fake-quantise each layer's input to int8 too.
    fold_bn : bool
        Fold BatchNorm into the convolutions first (the paper's int8 graph
        has none).

    Raises
    ------
    InvalidRecipe
        If ``model`` is itself a bare ``Conv2d``/``Linear`` (wrap it in
        ``nn.Sequential``), or was converted with another ``per_channel``.
    """
    for arg, value in (("qas", qas), ("per_channel", per_channel),
                       ("activations", activations), ("fold_bn", fold_bn)):  # fmt: skip
        _check_bool(arg, value)
    if type(model) in (nn.Conv2d, nn.Linear):
        raise InvalidRecipe(
            f"convert_to_int8 replaces layers inside a model; got a bare {type(model).__name__}. "
            "Wrap it: nn.Sequential(layer)"
        )
    if fold_bn:
        fold_batchnorm(model)
    kw = {"qas": qas, "per_channel": per_channel, "activations": activations}
    skipped = []
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            full = f"{parent_name}.{name}" if parent_name else name
            if isinstance(child, QuantMixin):
                if child.per_channel != per_channel:
                    raise InvalidRecipe(
                        f"{full} was converted with per_channel={child.per_channel}; convert a "
                        f"fresh fp32 copy to use per_channel={per_channel}"
                    )
                child.qas, child.activations = qas, activations
            elif type(child) is nn.Conv2d:
                parent._modules[name] = QuantConv2d.from_float(child, **kw)
            elif type(child) is nn.Linear:
                parent._modules[name] = QuantLinear.from_float(child, **kw)
            elif type(child) is SparseConv2d:
                parent._modules[name] = QuantSparseConv2d.from_sparse(child, **kw)
            elif isinstance(child, (nn.Conv2d, nn.Linear)):
                skipped.append(f"{full} ({type(child).__name__})")
    if skipped:
        warnings.warn(
            f"Int8 left {len(skipped)} layer(s) in fp32 because they subclass nn.Conv2d/"
            f"nn.Linear with their own forward: {', '.join(skipped[:4])}"
            f"{' ...' if len(skipped) > 4 else ''}",
            stacklevel=2,
        )
    return model


@dataclass(frozen=True)
class Int8(PrecisionPart):
    """Train the int8 graph of the 256 KB paper, with QAS (see the module docstring).

    Parameters
    ----------
    qas : bool
        Quantisation-aware scaling: multiply each int8 weight's gradient by
        ``s**-2`` so that an fp32 learning rate takes fp32-sized steps.
    per_channel : bool
        One weight scale per output channel (the paper's), else per tensor.
    activations : bool
        Fake-quantise the input of every converted layer to int8.
    fold_bn : bool
        Fold ``Conv2d -> BatchNorm2d`` pairs first, as on the device.

    Notes
    -----
    In :meth:`Recipe.prepare` this part is applied right after the
    trainable part's own changes and *before* the trainable rule is
    evaluated, on the converted model: with BatchNorm folded, BiasOnly
    trains the convolution biases (the old BatchNorm shifts). The bias stays
    fp32 (the paper: int32 in units of ``s_w * s_x``), so its gradient needs
    no scaling. Memory reports measure the fake-quantised PyTorch graph
    (``accounting="pytorch"``: the fp32 stand-ins of int8 tensors, masks
    included) or what the paper's engine would keep (``"engine"``). With
    :class:`Checkpointing`, the recomputed forward moves the activation
    statistics a second time (by the 0.01 moving-average step).

    Examples
    --------
    >>> Int8().name, Int8(qas=False).name, Int8(per_channel=False, activations=False).name
    ('int8', 'int8(no-qas)', 'int8(per-tensor,weights-only)')
    """

    kind: ClassVar[str] = "precision"
    qas: bool = True
    per_channel: bool = True
    activations: bool = True
    fold_bn: bool = True

    def __post_init__(self) -> None:
        for arg in ("qas", "per_channel", "activations", "fold_bn"):
            _check_bool(arg, getattr(self, arg))

    @property
    def device_dtype(self) -> str:
        return "int8"

    @property
    def name(self) -> str:
        notes = [
            label
            for off, label in (
                (not self.qas, "no-qas"),
                (not self.per_channel, "per-tensor"),
                (not self.activations, "weights-only"),
                (not self.fold_bn, "bn-kept"),
            )
            if off
        ]
        return f"int8({','.join(notes)})" if notes else "int8"

    def apply(self, model: nn.Module) -> None:
        convert_to_int8(
            model, qas=self.qas, per_channel=self.per_channel, activations=self.activations,
            fold_bn=self.fold_bn,
        )  # fmt: skip


def dequantized_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The fp32 state dict equivalent to an int8 ``model``: real weights, no int8 buffers.

    Each int8 layer's ``weight`` becomes ``round(clamp(W̄)) * s``, what its
    forward computes with; the scale and activation-statistics buffers are
    left out. It loads into the BatchNorm-folded fp32 model
    (``fold_batchnorm(fp32_copy).load_state_dict(dequantized_state(q))``).
    """
    layers = quantized_layers(model)
    state = {}
    for key, value in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if prefix in layers and leaf in _QUANT_BUFFERS:
            continue
        state[key] = value.detach().clone()
    with torch.no_grad():
        for name, layer in layers.items():
            state[f"{name}.weight" if name else "weight"] = layer.dequantized_weight().clone()
    return state


def qas_gradient_scale_report(
    model: nn.Module,
    batch: tuple[Any, torch.Tensor],
    loss_fn: LossFn | None = None,
    *,
    per_channel: bool = True,
    activations: bool = True,
) -> QASReport:
    """Compare ``||W|| / ||G||`` of fp32, int8 and int8+QAS copies of ``model`` on ``batch``.

    The fp32 reference is ``model`` with BatchNorm folded (the same graph
    the int8 copies train); ``model`` itself is not changed. See
    :func:`weight_gradient_ratios` for how each ratio is measured.

    Examples
    --------
    >>> from odtlab import data, models
    >>> images = data.train_test("target-new-classes", 16, 1, seed=0)[0]
    >>> report = qas_gradient_scale_report(models.pretrained("mbv2-shapes"), data.as_tensors(images))
    >>> report.median_without_qas > 1e4, 0.5 < report.median_with_qas < 2
    (True, True)
    >>> print(report)                                           # doctest: +ELLIPSIS
    layer                                    fp32       int8   int8+QAS
    features.0.conv ...
    """
    fp32 = fold_batchnorm(copy.deepcopy(model))
    kw = {"per_channel": per_channel, "activations": activations, "fold_bn": False}
    raw = convert_to_int8(copy.deepcopy(fp32), qas=False, **kw)
    qas = convert_to_int8(copy.deepcopy(fp32), qas=True, **kw)
    r_fp, r_raw, r_qas = (weight_gradient_ratios(m, batch, loss_fn) for m in (fp32, raw, qas))
    layers = tuple(n for n in r_fp if n in r_raw and n in r_qas)
    return QASReport(
        layers,
        tuple(r_fp[n] for n in layers),
        tuple(r_raw[n] for n in layers),
        tuple(r_qas[n] for n in layers),
    )
