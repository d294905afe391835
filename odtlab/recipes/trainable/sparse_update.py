"""Sparse update (Lin et al., NeurIPS 2022, ``lin2022ondevice``) as a trainable part: :class:`SparseUpdate`.

The 256 KB paper trains a network on a microcontroller by updating only
what matters most per byte: the **biases of the last few layers** (a bias
gradient needs no saved activation) and the **weights of a few chosen
layers**, some of them on only a fraction of their input channels ("sparse
tensor update"). Everything before the first updated layer needs no
backward at all.

Layers are numbered as in the paper and its code (``mit-han-lab/tiny-training``,
``get_all_conv_ops`` in ``algorithm/core/utils/partial_backward.py``): every
``nn.Conv2d`` of the model, in ``named_modules()`` order, from 0; the
classifier is not counted. :func:`sparse_layers` lists them. The paper trains
the graph with each BatchNorm folded into its convolution
(:func:`odtlab.recipes.layers.fold.fold_batchnorm`), so "the bias of conv ``i``" is
the folded BatchNorm shift.

In PyTorch the savings are real, not just on paper: :meth:`SparseUpdate.apply`
turns every convolution on the gradient path whose weight is frozen or
channel-sparse into a :class:`~odtlab.recipes.layers.sparse_conv.SparseConv2d`,
which saves only the input channels its weight gradient needs (nothing when
the weight is frozen), and trains only that weight slice.

Examples
--------
>>> from odtlab import models
>>> from odtlab.recipes import Recipe
>>> part = SparseUpdate(bias_layers=4, weights={26: 1.0, 29: 0.25})
>>> net = Recipe(part).prepare(models.mcunet())
>>> part.name, net.features[10].conv.project.conv.weight_train.shape[1]   # 72 of 288
('sparse(b4,w2)', 72)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.layers.fold import fold_batchnorm
from odtlab.recipes.layers.sparse_conv import SparseConv2d, channels_to_update
from odtlab.recipes.trainable.basic import Rule, TrainablePart, find_head, under_prefix

__all__ = [
    "SparseUpdate",
    "LayerPlan",
    "sparse_layers",
    "describe_scheme",
]


def sparse_layers(model: nn.Module) -> list[tuple[int, str, nn.Conv2d]]:
    """The convolutions a sparse-update scheme numbers: ``(index, name, module)``, from 0.

    Every ``nn.Conv2d`` (a :class:`SparseConv2d` too) in ``named_modules()``
    order, the classifier excluded, as in the paper's code.

    Examples
    --------
    >>> from odtlab import models
    >>> layers = sparse_layers(models.mcunet())
    >>> len(layers), layers[0][1], layers[-1][1]
    (30, 'features.0.conv', 'features.10.conv.project.conv')
    """
    head = find_head(model) if any(isinstance(m, nn.Linear) for m in model.modules()) else None
    convs = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and not (head is not None and under_prefix(name, head))
    ]
    return [(i, name, m) for i, (name, m) in enumerate(convs)]


def _kind(conv: nn.Conv2d) -> str:
    if conv.groups > 1:
        return "depthwise" if conv.groups == conv.in_channels else f"grouped({conv.groups})"
    return (
        "pointwise" if tuple(conv.kernel_size) == (1, 1) else "x".join(map(str, conv.kernel_size))
    )


@dataclass(frozen=True)
class LayerPlan:
    """What a scheme does to one convolution (a row of :func:`describe_scheme`).

    Attributes
    ----------
    index, name, kind : int, str, str
        The layer's number, module name and ``"pointwise"``/``"depthwise"``/``"3x3"``...
    in_channels, out_channels : int
    bias : bool
        Its bias trains.
    ratio : float
        Fraction of input channels whose weights train (0: frozen weight).
    channels : int
        ``k``, the input channels trained (per group).
    on_path : bool
        The gradient reaches it (it is at or after the first updated layer).
    """

    index: int
    name: str
    kind: str
    in_channels: int
    out_channels: int
    bias: bool
    ratio: float
    channels: int
    on_path: bool

    def updated(self) -> str:
        """``"bias + weight 6/48"``, ``"bias"``, ``"-"``..."""
        parts = ["bias"] if self.bias else []
        if self.ratio >= 1:
            parts.append("weight")
        elif self.ratio > 0:
            parts.append(f"weight {self.channels}/{self.in_channels} in-channels")
        return " + ".join(parts) or ("- (gradient passes)" if self.on_path else "-")


@dataclass(frozen=True)
class SparseUpdate(TrainablePart):
    """Train the biases of the last ``bias_layers`` convs and chosen conv weights (some sparsely).

    Parameters
    ----------
    bias_layers : int
        Train the biases of the last ``bias_layers`` convolutions (after BatchNorm
        folding, the folded BatchNorm shifts). 0: none.
    weights : mapping or tuple of (index, ratio)
        ``{21: 1.0, 36: 0.125}`` trains the whole weight of conv 21 and the
        weights of the first ``ceil(0.125 * C)`` input channels of conv 36.
        Ratios in ``(0, 1]``; depthwise convolutions take 1 only. Stored as a
        sorted tuple of pairs, so the part is hashable.
    include_classifier : bool
        Also train the classifier (weight and bias), as the paper does.
    fold_bn : bool
        Fold each BatchNorm into its convolution first (the paper's graph).
        With ``False`` a conv without a bias uses the shift of the BatchNorm
        right after it (in its ``nn.Sequential``) as its bias; a conv with
        neither has no bias to train.

    Raises
    ------
    InvalidRecipe
        For a negative ``bias_layers``, a ratio outside ``(0, 1]`` or a
        non-integer index; when applied, for an index past the last conv
        (the message lists the layers) or a fractional ratio on a depthwise conv.

    Examples
    --------
    >>> SparseUpdate(bias_layers=22, weights={36: 0.125, 21: 1}).weights
    ((21, 1.0), (36, 0.125))
    """

    bias_layers: int = 0
    weights: Mapping[int, float] | tuple[tuple[int, float], ...] = ()
    include_classifier: bool = True
    fold_bn: bool = True

    def __post_init__(self) -> None:
        b = self.bias_layers
        if isinstance(b, bool) or not isinstance(b, int) or b < 0:
            raise InvalidRecipe(
                f"SparseUpdate(bias_layers={b!r}): give a whole number >= 0, how many of the "
                "last convolutions train their bias, e.g. 22"
            )
        items = self.weights.items() if isinstance(self.weights, Mapping) else self.weights
        pairs: dict[int, float] = {}
        for item in items:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise InvalidRecipe(
                    f"SparseUpdate(weights={self.weights!r}): give a dict {{layer index: ratio}}, "
                    "e.g. {21: 1.0, 36: 0.125}, or a tuple of (index, ratio) pairs"
                )
            index, ratio = item
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise InvalidRecipe(
                    f"SparseUpdate: layer index {index!r} must be a whole number >= 0 "
                    "(convs are numbered from 0 at the first one; see sparse_layers(model))"
                )
            ok = isinstance(ratio, (int, float)) and not isinstance(ratio, bool)
            if not ok or not 0 < ratio <= 1:
                raise InvalidRecipe(
                    f"SparseUpdate: the update ratio of layer {index} is {ratio!r}; it must be in "
                    "(0, 1], the fraction of its input channels whose weights train (1 = all); "
                    "leave the layer out of weights to freeze its weight"
                )
            pairs[index] = float(ratio)
        object.__setattr__(self, "weights", tuple(sorted(pairs.items())))
        object.__setattr__(self, "include_classifier", bool(self.include_classifier))
        object.__setattr__(self, "fold_bn", bool(self.fold_bn))

    @property
    def name(self) -> str:
        head = "" if self.include_classifier else ",no-head"
        return f"sparse(b{self.bias_layers},w{len(self.weights)}{head})"

    # ---- the plan ------------------------------------------------------------------------------
    def plan(self, model: nn.Module) -> list[LayerPlan]:
        """One :class:`LayerPlan` per convolution of ``model`` (checks the scheme against it)."""
        layers = sparse_layers(model)
        n = len(layers)
        ratios = dict(self.weights)

        def listing() -> str:
            shown = [f"{i}: {name}" for i, name, _ in layers]
            if len(shown) > 12:
                shown = [*shown[:6], "...", *shown[-6:]]
            return "; ".join(shown)

        if self.bias_layers > n or any(i >= n for i in ratios):
            bad = [i for i in ratios if i >= n]
            what = f"layer index {bad[0]}" if bad else f"bias_layers={self.bias_layers}"
            raise InvalidRecipe(
                f"SparseUpdate: {what} does not exist: {type(model).__name__} has {n} "
                f"convolutions, indices 0..{n - 1} (bias_layers at most {n}): {listing()}"
            )
        first = min([n - self.bias_layers if self.bias_layers else n, *ratios])
        plans = []
        for i, name, conv in layers:
            ratio = ratios.get(i, 0.0)
            per_group = conv.in_channels // conv.groups
            try:
                k = channels_to_update(per_group, ratio, conv.groups)
            except InvalidRecipe as err:
                raise InvalidRecipe(f"SparseUpdate: layer {i} ({name}): {err}") from None
            row = LayerPlan(
                index=i, name=name, kind=_kind(conv), in_channels=conv.in_channels,
                out_channels=conv.out_channels, bias=i >= n - self.bias_layers, ratio=ratio,
                channels=k, on_path=i >= first,
            )  # fmt: skip
            plans.append(row)
        return plans

    # ---- the two verbs of a trainable part ------------------------------------------------------
    def apply(self, model: nn.Module) -> None:
        """Fold BatchNorm (if ``fold_bn``) and swap convs on the gradient path into SparseConv2d.

        A conv at or after the first updated layer becomes a
        :class:`SparseConv2d` unless its whole weight trains (then it stays an
        ``nn.Conv2d``: it needs its whole input anyway). Convs before the first
        updated layer need no backward and are left alone. Safe to call twice,
        and with another scheme after this one.
        """
        plans = self.plan(model)  # raises before anything changes
        if self.fold_bn:
            fold_batchnorm(model)
        modules = dict(model.named_modules())
        for p in plans:
            conv = modules[p.name]
            wanted: nn.Module = conv
            if p.on_path and p.ratio < 1:
                if not (isinstance(conv, SparseConv2d) and conv.update_ratio == p.ratio):
                    wanted = SparseConv2d.from_conv(conv, p.ratio)
            elif isinstance(conv, SparseConv2d):
                wanted = conv.to_conv2d()
            if wanted is not conv:
                parent_name, _, child = p.name.rpartition(".")
                setattr(modules[parent_name] if parent_name else model, child, wanted)

    def rule(self, model: nn.Module | None) -> Rule:
        """Train the selected biases and weight slices, and the classifier.

        With ``model=None`` (no model known yet) only the classifier, the
        zoo's ``classifier``, is selected: the layer numbers need a model.
        """
        head = find_head(model) if self.include_classifier else None
        if model is None:
            return lambda name, param: head is not None and under_prefix(name, head)
        chosen: set[str] = set()
        modules = dict(model.named_modules())
        for p in self.plan(model):
            conv = modules[p.name]
            if p.bias:
                owner = _bias_name(model, p.name, conv)
                if owner is not None:
                    chosen.add(owner)
            if p.ratio > 0:
                sparse = isinstance(conv, SparseConv2d)
                chosen.add(f"{p.name}.weight_train" if sparse else f"{p.name}.weight")
        return lambda name, param: name in chosen or (head is not None and under_prefix(name, head))

    def __str__(self) -> str:
        weights = ", ".join(f"{i}: {r:g}" for i, r in self.weights)
        return f"{self.name}: biases of the last {self.bias_layers} convs, weights {{{weights}}}"


def _bias_name(model: nn.Module, name: str, conv: nn.Conv2d) -> str | None:
    """The parameter that is "the bias of" conv ``name``: its own, else the next BatchNorm's shift."""
    if conv.bias is not None:
        return f"{name}.bias"
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if isinstance(parent, nn.Sequential):
        names = list(parent._modules)
        position = names.index(child)
        if position + 1 < len(names):
            after = parent._modules[names[position + 1]]
            if isinstance(after, nn.modules.batchnorm._BatchNorm) and after.bias is not None:
                return f"{parent_name + '.' if parent_name else ''}{names[position + 1]}.bias"
    return None


def describe_scheme(model: nn.Module, part: SparseUpdate) -> str:
    """A table of what ``part`` updates in each convolution of ``model`` (model not changed).

    Examples
    --------
    >>> from odtlab import models
    >>> print(describe_scheme(models.mcunet(), SparseUpdate(2, {29: 0.5})).splitlines()[-1])
     29  features.10.conv.project.conv    pointwise  288->96  bias + weight 144/288 in-channels
    """
    plans = part.plan(model)
    width = max(len(p.name) for p in plans)
    lines = [str(part)]
    for p in plans:
        shape = f"{p.in_channels}->{p.out_channels}"
        lines.append(f"{p.index:>3}  {p.name:<{width}}  {p.kind:<9}  {shape:<8} {p.updated()}")
    head = "classifier" if part.include_classifier else "classifier frozen"
    lines.insert(1, f"  (+ {head}; layers before {_first_on_path(plans)} need no backward)")
    return "\n".join(lines)


def _first_on_path(plans: list[LayerPlan]) -> Any:
    return next((p.index for p in plans if p.on_path), len(plans))
