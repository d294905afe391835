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
:meth:`RecipePart.apply`, which must be safe to call twice. Kinds are
registered (:func:`register_kind`) beside their parts, so adding a technique
is one new module and :class:`~odtlab.recipes.Recipe` does not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.errors import check_choice as check_one_of

if TYPE_CHECKING:  # for type hints only: the recipe calls the parts, not the other way round
    from odtlab.recipes.recipe import Recipe

__all__ = [
    "RecipePart",
    "PartKind",
    "KINDS",
    "register_kind",
    "kinds_in_order",
    "check_positive_int",
    "check_positive_float",
    "check_choice",
]


@dataclass(frozen=True)
class PartKind:
    """One slot of a recipe: its name, when its part prepares the model, and its default.

    Attributes
    ----------
    name : str
        ``"trainable"``, ``"precision"``, ``"batchnorm"``, ...
    stage : int
        :meth:`Recipe.prepare` calls :meth:`RecipePart.apply` in increasing
        stage. Stages below :data:`STRUCTURE_DONE` may add or swap modules
        (TinyTL's branches, int8 layers); then every part validates the
        model; the later stages only set modes (BatchNorm, in-place,
        checkpointing).
    default : callable or None
        Builds the part a recipe uses when it has none of this kind (the
        trainable set defaults to ``Full()``, the optimizer to ``SGD()``).
    when_absent : callable or None
        Called with the model by :meth:`Recipe.prepare` when the recipe has
        no part of this kind and no default, to undo what an earlier recipe
        may have installed (checkpointing is removed).
    """

    name: str
    stage: int
    default: Callable[[], RecipePart] | None = None
    when_absent: Callable[[nn.Module], Any] | None = None


#: Stages below this one may change the model's modules; see :class:`PartKind`.
STRUCTURE_DONE = 20

#: The registered kinds by name, in registration order; see :func:`register_kind`.
KINDS: dict[str, PartKind] = {}


def register_kind(
    name: str,
    *,
    stage: int,
    default: Callable[[], RecipePart] | None = None,
    when_absent: Callable[[nn.Module], Any] | None = None,
) -> PartKind:
    """Add a kind of recipe part; a name that is taken is refused.

    A new technique of a new kind registers its kind once, beside its part
    class, and :class:`~odtlab.recipes.Recipe` handles it with no change.

    Raises
    ------
    InvalidRecipe
        If a kind called ``name`` exists already.
    """
    if name in KINDS:
        raise InvalidRecipe(
            f"a recipe part kind called {name!r} is already registered; kinds: {', '.join(KINDS)}"
        )
    kind = PartKind(name, stage, default, when_absent)
    KINDS[name] = kind
    return kind


def kinds_in_order() -> list[PartKind]:
    """The registered kinds, sorted by stage (the order :meth:`Recipe.prepare` uses)."""
    return sorted(KINDS.values(), key=lambda k: k.stage)


class RecipePart:
    """One composable decision of a training recipe.

    Subclasses set the class attribute :attr:`kind` (a registered
    :class:`PartKind` name; a recipe holds at most one part of each kind)
    and the property :attr:`name`, a short label for tables such as
    ``"bias-only"``, ``"ckpt(4)"``, ``"mb(4)"`` or ``"adam"``. Each part
    owns its rule: the hooks below do nothing by default, and a part
    overrides the ones it needs. :class:`~odtlab.recipes.Recipe` only calls
    them, in a fixed order:

    1. :meth:`implied_parts` and :meth:`check` when the recipe is built;
    2. :meth:`apply` (in stage order), then :meth:`validate`, in
       :meth:`Recipe.prepare`;
    3. :meth:`wrap_optimizer` in :meth:`Recipe.make_optimizer`.

    Examples
    --------
    >>> from odtlab.recipes import BiasOnly, MicroBatch
    >>> BiasOnly().name, BiasOnly().kind, MicroBatch(4).name
    ('bias-only', 'trainable', 'mb(4)')
    """

    #: Which slot of the recipe this part fills (a registered kind, see :data:`KINDS`).
    kind: ClassVar[str] = "part"

    @property
    def name(self) -> str:
        """Short label used in tables and in the recipe's name."""
        return type(self).__name__.lower()

    def implied_parts(self) -> tuple[RecipePart, ...]:
        """Parts of *other* kinds this part stands for (default: none).

        ``MicroBatch(4, bn="frozen")`` is shorthand for adding
        ``BatchNormPolicy("frozen")``: the BatchNorm mode has one owner.
        """
        return ()

    def check(self, recipe: Recipe) -> None:
        """Raise :class:`InvalidRecipe` if this part cannot work with the recipe's other parts."""
        return None

    def apply(self, model: nn.Module) -> None:
        """Change ``model`` in place as this part needs (default: nothing).

        Called by :meth:`Recipe.prepare` in stage order; calling it twice must be safe.
        """
        return None

    def validate(self, model: nn.Module, recipe: Recipe) -> None:
        """Raise :class:`InvalidRecipe` if this part cannot prepare ``model``.

        Called after the structure-changing parts applied and before any
        mode is set, so that a bad recipe changes no mode of the model.
        """
        return None

    def wrap_optimizer(self, build: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
        """Return a function that builds the optimizer (default: ``build`` itself)."""
        return build

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
    return check_one_of(f"{part}({arg}={value!r}): {arg}", value, allowed, InvalidRecipe)
