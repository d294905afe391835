"""``recipe.describe(model)``: which parameters a recipe trains, layer by layer, in counts and bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import nn

from odtlab.memory import format_bytes

if TYPE_CHECKING:
    from odtlab.recipes.recipe import Recipe

__all__ = ["LayerParameters", "TrainableSummary", "summarize"]


@dataclass(frozen=True)
class LayerParameters:
    """Parameters of one layer (its own, not its children's).

    Attributes
    ----------
    name, type : str
        Module path and class name.
    total, trainable : int
        Number of parameters (elements), all and trained.
    trainable_bytes : int
        Bytes of the trained ones (their gradients take as much again).
    """

    name: str
    type: str
    total: int
    trainable: int
    trainable_bytes: int


@dataclass(frozen=True)
class TrainableSummary:
    """What a recipe trains in a model: totals and one row per layer with parameters.

    Attributes
    ----------
    recipe : str
    total_params, trainable_params : int
        Parameter counts (elements), each shared parameter once.
    trainable_bytes : int
        Bytes of the trainable parameters.
    trainable_tensors : int
        Number of trainable parameter tensors (Adam keeps a 4-byte step per tensor).
    layers : list of LayerParameters
    """

    recipe: str
    total_params: int
    trainable_params: int
    trainable_bytes: int
    trainable_tensors: int
    layers: list[LayerParameters] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Share of the parameters that are trained, 0 to 1."""
        return self.trainable_params / self.total_params if self.total_params else 0.0

    def __str__(self) -> str:
        width = max([len(r.name) for r in self.layers] + [5])
        lines = [
            f"recipe {self.recipe}: trains {self.trainable_params:,} of {self.total_params:,} "
            f"parameters ({100 * self.fraction:.1f} %), {format_bytes(self.trainable_bytes)} "
            f"in {self.trainable_tensors} tensors",
            "",
            f"{'layer':<{width}}  {'type':<16} {'trainable':>10} {'of':>10} {'bytes':>10}",
        ]
        for r in self.layers:
            lines.append(
                f"{r.name:<{width}}  {r.type[:16]:<16} {r.trainable:>10,} {r.total:>10,} "
                f"{format_bytes(r.trainable_bytes):>10}"
            )
        return "\n".join(lines)


def summarize(recipe: Recipe, model: nn.Module) -> TrainableSummary:
    """Apply ``recipe``'s trainable rule to ``model`` (without changing it) and count.

    Examples
    --------
    >>> from odtlab import models
    >>> from odtlab.recipes import Recipe, LastLayer
    >>> s = summarize(Recipe(LastLayer()), models.build("mlp"))
    >>> s.trainable_params, s.total_params        # classifier: 64 x 10 weights + 10 biases
    (650, 17226)
    """
    rule = recipe.trainable_part.rule(model)
    seen: set[int] = set()
    rows = []
    totals = [0, 0, 0, 0]
    for name, module in model.named_modules():
        total = trainable = nbytes = tensors = 0
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{name}.{pname}" if name else pname
            total += p.numel()
            if rule(full, p):
                trainable += p.numel()
                nbytes += p.numel() * p.element_size()
                tensors += 1
        if total:
            rows.append(
                LayerParameters(name or "(model)", type(module).__name__, total, trainable, nbytes)
            )
        for i, v in enumerate((total, trainable, nbytes, tensors)):
            totals[i] += v
    return TrainableSummary(recipe.name, totals[0], totals[1], totals[2], totals[3], rows)
