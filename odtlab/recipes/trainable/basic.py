"""Which parameters learn: :class:`Full`, :class:`LastLayer`, :class:`BiasOnly`, :class:`Freeze`.

A recipe has exactly one trainable-set part (``Full()`` when none is
given). Each part turns a model into a *rule*, a function
``(parameter name, parameter) -> bool``; :meth:`Recipe.prepare` sets every
parameter's ``requires_grad`` by it, and the memory report measures with
the same rule.

============================  ==========================================  ===========
part                          trains                                      MobileNetV2
                                                                          -0.35, 10
                                                                          classes
============================  ==========================================  ===========
``Full()``                    every parameter                             408,938
``LastLayer()``               the classifier's weight and bias            12,810
``BiasOnly()``                every parameter called ``bias``, plus the   19,850
                              classifier's weight
``Freeze(["features.0"])``    everything except the named modules         408,474
============================  ==========================================  ===========

What "bias" means here: a parameter whose own name (the last part of its
dotted name) is ``bias``. That is the bias of ``nn.Linear`` and ``nn.Conv2d``
(when they have one), the shift beta of ``nn.BatchNorm2d`` and of
``nn.LayerNorm``, and nothing else: BatchNorm's scale gamma is called
``weight`` and stays frozen. The zoo's convolutions have no bias (a
BatchNorm follows each), so in MobileNetV2 and MCUNet "bias-only" means
*the BatchNorm shifts*, as in TinyTL's bias-only update (Cai et al.,
NeurIPS 2020), plus the classifier.

The *head* (used by ``LastLayer`` and by ``BiasOnly(include_classifier=True)``)
is ``model.classifier`` when the model has one (every zoo model does), else
the last ``nn.Linear`` registered in the model.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.base import RecipePart, register_kind

__all__ = ["TrainablePart", "Full", "LastLayer", "BiasOnly", "Freeze", "find_head", "Rule"]

#: A trainable rule: ``(parameter name, parameter) -> bool``.
Rule = Callable[[str, nn.Parameter], bool]


def under_prefix(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or inside it (``"features.1"`` is not inside ``"features.10"``)."""
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def find_head(model: nn.Module | None) -> str:
    """Name of the model's head: ``"classifier"`` if it has one, else its last ``nn.Linear``.

    With ``model=None`` (no model known yet) the answer is ``"classifier"``,
    the zoo's convention.

    Raises
    ------
    InvalidRecipe
        If the model has neither a ``classifier`` nor any ``nn.Linear``.

    Examples
    --------
    >>> find_head(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    '2'
    """
    if model is None:
        return "classifier"
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Module) and any(True for _ in head.parameters()):
        return "classifier"
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InvalidRecipe(
            f"{type(model).__name__} has no 'classifier' attribute and no nn.Linear, so there is "
            "no last layer to train; name the layers to keep frozen with Freeze([...]) instead"
        )
    return linears[-1]


class TrainablePart(RecipePart, ABC):
    """Base of the parts that choose the trainable parameters."""

    kind: ClassVar[str] = "trainable"

    @abstractmethod
    def rule(self, model: nn.Module | None) -> Rule:
        """The rule ``(name, param) -> bool`` for ``model`` (``None``: zoo naming)."""


@dataclass(frozen=True)
class Full(TrainablePart):
    """Train every parameter: the baseline every other recipe is compared with.

    Examples
    --------
    >>> Full().rule(None)("features.0.conv.weight", None)
    True
    """

    @property
    def name(self) -> str:
        return "full"

    def rule(self, model: nn.Module | None) -> Rule:
        return lambda name, param: True


@dataclass(frozen=True)
class LastLayer(TrainablePart):
    """Train only the head: ``model.classifier`` (or the last ``nn.Linear``); freeze the rest.

    The cheapest transfer-learning recipe: no gradient flows into the
    backbone, so autograd keeps almost no activations (only the head's input).

    Examples
    --------
    >>> from odtlab import models
    >>> rule = LastLayer().rule(models.build("mlp"))
    >>> rule("classifier.weight", None), rule("features.fc1.weight", None)
    (True, False)
    """

    @property
    def name(self) -> str:
        return "last-layer"

    def rule(self, model: nn.Module | None) -> Rule:
        head = find_head(model)
        return lambda name, param: under_prefix(name, head)


@dataclass(frozen=True)
class BiasOnly(TrainablePart):
    """Train every parameter called ``bias`` (and, by default, the whole classifier).

    See the module docstring for exactly what counts as a bias: conv and
    linear biases, the BatchNorm and LayerNorm shifts (beta); not the
    BatchNorm scale (gamma).

    Parameters
    ----------
    include_classifier : bool
        Also train the classifier's weight (a new task needs a new head).

    Examples
    --------
    >>> rule = BiasOnly().rule(None)
    >>> rule("features.1.bn.bias", None), rule("features.1.bn.weight", None)
    (True, False)
    """

    include_classifier: bool = True

    @property
    def name(self) -> str:
        return "bias-only" if self.include_classifier else "bias-only(no-head)"

    def rule(self, model: nn.Module | None) -> Rule:
        head = find_head(model) if self.include_classifier else None

        def is_bias(name: str, param: nn.Parameter) -> bool:
            return name.rsplit(".", 1)[-1] == "bias" or (head is not None and under_prefix(name, head))

        return is_bias


@dataclass(frozen=True, init=False)
class Freeze(TrainablePart):
    """Freeze the named modules (or dotted prefixes, or parameter names); train the rest.

    Parameters
    ----------
    layers : str or iterable of str
        Module names as in ``model.named_modules()``, e.g. ``"features.0"``
        (freezes ``features.0.*``, not ``features.10``). Unknown names raise
        :class:`~odtlab.InvalidRecipe` listing the closest real names.

    Examples
    --------
    >>> from odtlab import models
    >>> rule = Freeze(["features.fc1"]).rule(models.build("mlp"))
    >>> rule("features.fc1.weight", None), rule("features.fc2.weight", None)
    (False, True)
    """

    layers: tuple[str, ...]

    def __init__(self, layers: str | Iterable[str]) -> None:
        names = (layers,) if isinstance(layers, str) else tuple(layers)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise InvalidRecipe(
                f"Freeze({layers!r}): give one or more module names, e.g. "
                "Freeze(['features.0', 'features.1']); to train everything use Full()"
            )
        object.__setattr__(self, "layers", names)

    @property
    def name(self) -> str:
        if len(self.layers) <= 2:
            return f"freeze({','.join(self.layers)})"
        return f"freeze({len(self.layers)} layers)"

    def rule(self, model: nn.Module | None) -> Rule:
        if model is not None:
            known = [n for n, _ in model.named_modules() if n] + [
                n for n, _ in model.named_parameters()
            ]
            for layer in self.layers:
                if not any(under_prefix(k, layer) for k in known):
                    close = difflib.get_close_matches(layer, known, n=3, cutoff=0.5)
                    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                    tops = ", ".join(repr(n) for n, _ in model.named_children())
                    raise InvalidRecipe(
                        f"Freeze: {layer!r} is not a module of {type(model).__name__}{hint} "
                        f"(its top-level modules are {tops}; list all with model.named_modules())"
                    )
        layers = self.layers
        return lambda name, param: not any(under_prefix(name, layer) for layer in layers)


register_kind("trainable", stage=0, default=Full)
