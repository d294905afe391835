"""The base class of every recipe part, and the checks shared by the parts.

A **recipe part** is one decision about *how* we train: which parameters
learn (:class:`~odtlab.recipes.BiasOnly`), what is kept for backward
(:class:`~odtlab.recipes.Checkpointing`), how a batch is split
(:class:`~odtlab.recipes.MicroBatch`), in which number format
(:class:`~odtlab.recipes.Int8`, :class:`~odtlab.recipes.MixedPrecision`),
which optimizer runs (:class:`~odtlab.recipes.Adam`)... A :class:`~odtlab.recipes.Recipe` is a
handful of parts, at most one of each *kind*.

A part is a small frozen dataclass: its arguments are its whole state, it
prints as ``BiasOnly(include_classifier=True)``, and two parts with the same
arguments are equal. A part that changes the model does so in
:meth:`RecipePart.apply`, which must be safe to call twice.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from odtlab.errors import InvalidRecipe

__all__ = ["RecipePart", "KINDS", "check_positive_int", "check_positive_float", "check_choice"]

#: The slots of a recipe. :meth:`Recipe.prepare` applies the trainable and precision
#: parts' changes first, then BatchNorm, activations and checkpointing, and sets the
#: trainable flags last. ``"update"`` says *when* the optimizer steps (in backward, see
#: :class:`~odtlab.recipes.fused_update.UpdateInBackward`).
KINDS = (
    "batchnorm", "activations", "checkpointing", "micro-batch", "trainable", "precision",
    "optimizer", "update",
)  # fmt: skip


class RecipePart:
    """One composable decision of a training recipe.

    Subclasses set the class attribute :attr:`kind` (a recipe holds at most
    one part of each kind) and the property :attr:`name`, a short label for
    tables such as ``"bias-only"``, ``"ckpt(4)"``, ``"mb(4)"`` or ``"adam"``.

    Examples
    --------
    >>> from odtlab.recipes import BiasOnly, MicroBatch
    >>> BiasOnly().name, BiasOnly().kind, MicroBatch(4).name
    ('bias-only', 'trainable', 'mb(4)')
    """

    #: Which slot of the recipe this part fills (one of :data:`KINDS`).
    kind: ClassVar[str] = "part"

    @property
    def name(self) -> str:
        """Short label used in tables and in the recipe's name."""
        return type(self).__name__.lower()

    def apply(self, model: nn.Module) -> None:
        """Change ``model`` in place as this part needs (default: nothing).

        Called by :meth:`Recipe.prepare`; calling it twice must be safe.
        """
        return None

    def __str__(self) -> str:
        return self.name


def check_positive_int(part: str, arg: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1, else raise :class:`InvalidRecipe` saying so."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRecipe(f"{part}({arg}={value!r}): {arg} must be a whole number >= 1, e.g. 4")
    return value


def check_positive_float(part: str, arg: str, value: object, *, zero: bool = False) -> float:
    """Return ``value`` as a float if it is > 0 (or >= 0 with ``zero=True``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not zero) or value != value:  # NaN check
        bound = ">= 0" if zero else "> 0"
        raise InvalidRecipe(f"{part}({arg}={value!r}): {arg} must be a number {bound}")
    return float(value)  # type: ignore[arg-type]


def check_choice(part: str, arg: str, value: object, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``, else list the allowed values."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRecipe(
            f"{part}({arg}={value!r}): {arg} must be one of {', '.join(repr(a) for a in allowed)}"
        )
    return value
