""":class:`Recipe`: a few parts that together say how we train.

>>> from odtlab.recipes import Recipe, BiasOnly, MicroBatch, SGD
>>> recipe = Recipe(BiasOnly(), MicroBatch(4), SGD())
>>> recipe.name, recipe.micro_batches
('bias-only+mb(4)+sgd', 4)

The verbs, in the order a training loop uses them::

    model = recipe.prepare(model)                      # flags, checkpointing, BatchNorm
    optimizer = recipe.make_optimizer(model.parameters())
    loss = recipe.train_step(model, x, y, loss_fn, optimizer)

What a recipe costs on a device is asked of :func:`odtlab.train.profile`
(memory only) and :class:`odtlab.train.Trainer` (a real run), with the same
arguments. :class:`Recipe` knows no part by name: it loops over the parts by
the stage of their kind (:func:`~odtlab.recipes.base.register_kind`), so a
new technique is a new part in a new module.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.activations.microbatch import LossFn, accumulate_step
from odtlab.recipes.base import KINDS, STRUCTURE_DONE, PartKind, RecipePart, kinds_in_order
from odtlab.recipes.precision.mixed import PrecisionPart
from odtlab.recipes.trainable.basic import Rule, TrainablePart
from odtlab.recipes.trainable.summary import TrainableSummary, summarize

__all__ = ["Recipe"]


def _check_part(part: object) -> RecipePart:
    if isinstance(part, RecipePart):
        return part
    if isinstance(part, type) and issubclass(part, RecipePart):
        raise InvalidRecipe(
            f"Recipe got the class {part.__name__}, not a part; did you mean {part.__name__}()?"
        )
    hint = ""
    if isinstance(part, (list, tuple)):
        hint = "; pass parts one by one: Recipe(*parts)"
    elif isinstance(part, str):
        hint = "; use the part objects, e.g. Recipe(BiasOnly()), or a named recipe: recipes.named(name)"
    raise InvalidRecipe(
        f"Recipe parts must be RecipePart objects such as Full(), BiasOnly(), MicroBatch(4), "
        f"Checkpointing(4) or Adam(); got {part!r} ({type(part).__name__}){hint}"
    )


class Recipe:
    """How we train: a trainable set, and optionally checkpointing, micro-batches, an optimizer...

    Parameters
    ----------
    *parts : RecipePart
        At most one part of each kind: a trainable set (:class:`Full`,
        :class:`LastLayer`, :class:`BiasOnly`, :class:`Freeze`; default
        ``Full()``), :class:`Checkpointing`, :class:`MicroBatch`, an
        optimizer (:class:`SGD`, :class:`Momentum`, :class:`Adam`,
        :class:`AdamW`; default ``SGD(lr=0.05)``), :class:`BatchNormPolicy`,
        :class:`InPlaceActivations`, a precision (:class:`Int8`,
        :class:`MixedPrecision`; default fp32), :class:`UpdateInBackward`
        (each tensor stepped in backward, its gradient freed at once).
    name : str or None
        A label for tables; by default the part names joined by ``+``,
        starting with the trainable set, e.g. ``"bias-only+mb(4)+sgd"``.

    Attributes
    ----------
    name : str
    parts : tuple of RecipePart
        The parts as given (defaults not included).
    trainable_part, optimizer_part : RecipePart
        The parts in use, defaults included.
    precision_part : PrecisionPart or None
        The precision part, ``None`` for plain fp32.
    micro_batches : int
        1 unless a :class:`MicroBatch` part is present.
    update_in_backward : bool
        Whether an :class:`UpdateInBackward` part is present.

    Raises
    ------
    InvalidRecipe
        For two parts of one kind, a class instead of a part,
        ``MicroBatch(bn=...)`` disagreeing with a :class:`BatchNormPolicy`, or
        :class:`UpdateInBackward` with ``MicroBatch(n > 1)`` or fp16.
    """

    def __init__(self, *parts: RecipePart, name: str | None = None) -> None:
        checked = [_check_part(p) for p in parts]
        given: dict[str, RecipePart] = {}
        for part in checked:
            if part.kind not in KINDS:
                raise InvalidRecipe(
                    f"{part!r} has kind {part.kind!r}, which is not registered; register it "
                    f"with odtlab.recipes.register_kind (kinds: {', '.join(KINDS)})"
                )
            if part.kind in given:
                raise InvalidRecipe(
                    f"a recipe takes one {part.kind} part, got {given[part.kind]!r} and {part!r}; "
                    f"keep one of them"
                )
            given[part.kind] = part
        by_kind = dict(given)
        for part in checked:  # shorthands: MicroBatch(bn="frozen") stands for a BatchNormPolicy
            for implied in part.implied_parts():
                other = by_kind.get(implied.kind)
                if other is not None and other != implied:
                    raise InvalidRecipe(
                        f"{part!r} implies {implied!r}, but the recipe also has {other!r}; they "
                        f"ask for different {implied.kind} settings: set it in one place"
                    )
                by_kind[implied.kind] = implied
        for kind in KINDS.values():  # the defaults: Full(), SGD(), BatchNormPolicy("keep")
            if kind.name not in by_kind and kind.default is not None:
                by_kind[kind.name] = kind.default()
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidRecipe(f"Recipe(name={name!r}): name must be a non-empty string")
        self.parts: tuple[RecipePart, ...] = tuple(checked)
        self._given = given
        self._by_kind = by_kind
        for part in by_kind.values():
            part.check(self)
        others = [p.name for p in checked if p.kind != "trainable"]
        self.name: str = name or "+".join([self.trainable_part.name, *others])
        self._rule: Rule = self.trainable_part.rule(None)

    # ---- what the recipe holds ------------------------------------------------------------
    def part(self, kind: str) -> RecipePart | None:
        """The part in use for ``kind`` (defaults and implied parts included), or ``None``.

        Kinds are those registered (:data:`odtlab.recipes.base.KINDS`):
        ``"trainable"``, ``"precision"``, ``"batchnorm"``, ``"activations"``,
        ``"checkpointing"``, ``"micro-batch"``, ``"optimizer"``, ``"update"``...
        """
        if kind not in KINDS:
            raise InvalidRecipe(f"unknown part kind {kind!r}; kinds are {', '.join(KINDS)}")
        return self._by_kind.get(kind)

    @property
    def trainable_part(self) -> TrainablePart:
        """The trainable set in use (``Full()`` by default)."""
        return self._by_kind["trainable"]  # type: ignore[return-value]

    @property
    def optimizer_part(self) -> Any:
        """The optimizer part in use (``SGD(lr=0.05)`` by default)."""
        return self._by_kind["optimizer"]

    @property
    def precision_part(self) -> PrecisionPart | None:
        """The precision part, ``None`` for plain fp32."""
        part = self._by_kind.get("precision")
        return part if isinstance(part, PrecisionPart) else None

    @property
    def device_dtype(self) -> str:
        """The arithmetic a device runs for this recipe: its precision part's, else ``"fp32"``."""
        part = self.precision_part
        return "fp32" if part is None else part.device_dtype

    @property
    def micro_batches(self) -> int:
        """How many micro-batches a step splits its batch into (1 without a MicroBatch part)."""
        return int(getattr(self._by_kind.get("micro-batch"), "n", 1))

    @property
    def update_in_backward(self) -> bool:
        """Whether each trained tensor is stepped inside backward (an ``"update"`` part)."""
        return "update" in self._by_kind

    @property
    def checkpointing(self) -> Any:
        """The :class:`Checkpointing` part, or ``None``."""
        return self._by_kind.get("checkpointing")

    @property
    def bn_mode(self) -> str:
        """``"keep"``, ``"frozen"`` or ``"group"``: what this recipe does to BatchNorm."""
        return str(getattr(self._by_kind.get("batchnorm"), "mode", "keep"))

    # ---- the verbs ---------------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> nn.Module:
        """Make ``model`` ready to train with this recipe, in place; return the same object.

        The parts run in the stage order of their kinds: first those that
        change modules (the trainable part, e.g. TinyTL's lite residuals;
        the precision part, e.g. :class:`Int8` folds BatchNorm and swaps in
        int8 layers under the same names); then every part validates the
        model (checkpointing: is there a trunk to cut?) and the trainable
        rule must select some parameter; then the parts that set modes
        (BatchNorm, in-place activations, checkpointing; a kind without a
        part undoes what an earlier recipe installed). Last,
        ``requires_grad`` of every parameter follows the trainable rule,
        evaluated on the converted model. Calling it twice is safe. Only
        flags and module classes change; weights are not touched, except
        that ``bn="group"`` copies gamma and beta into the new GroupNorm and
        :class:`Int8` folds and rescales.

        Raises
        ------
        InvalidRecipe
            If the recipe does not fit the model (unknown ``Freeze`` names,
            no trunk to checkpoint, too many segments) or leaves no
            parameter trainable.
        """
        if not isinstance(model, nn.Module):
            raise InvalidRecipe(f"prepare() needs a torch.nn.Module; got {type(model).__name__}")
        rule = self._apply_structure(model)
        for part in self._by_kind.values():  # before any mode is set
            part.validate(model, self)
        for kind in kinds_in_order():
            if kind.stage >= STRUCTURE_DONE:
                self._apply_kind(kind, model)
        for name, p in model.named_parameters():  # names survive the BatchNorm changes
            p.requires_grad_(bool(rule(name, p)))
        self._rule = rule
        return model

    def _apply_kind(self, kind: PartKind, model: nn.Module) -> None:
        part = self._by_kind.get(kind.name)
        if part is not None:
            part.apply(model)
        elif kind.when_absent is not None:
            kind.when_absent(model)

    def _apply_structure(self, model: nn.Module, *, check: bool = True) -> Rule:
        """Apply the kinds that change modules; from the trainable part on, after each, the
        trainable rule must select some (kinds before it, such as TinyTL's branches, come
        before the trainable part has chosen anything)."""
        rule = self._rule
        trainable_stage = KINDS["trainable"].stage
        for kind in kinds_in_order():
            if kind.stage >= STRUCTURE_DONE:
                break
            self._apply_kind(kind, model)
            if check and kind.stage >= trainable_stage:
                rule = self._check_rule(model)
        return rule

    def _check_rule(self, model: nn.Module) -> Rule:
        rule = self.trainable_part.rule(model)
        flags = {name: bool(rule(name, p)) for name, p in model.named_parameters()}
        self._check_some_trainable(model, flags)
        return rule

    def _check_some_trainable(self, model: nn.Module, flags: dict[str, bool]) -> None:
        if not any(flags.values()):
            raise InvalidRecipe(
                f"recipe {self.name!r} leaves no parameter of {type(model).__name__} trainable "
                f"({len(flags)} parameter tensors, none selected), so there is nothing to learn; "
                "choose another trainable part, e.g. BiasOnly(include_classifier=True) or Full()"
            )

    def is_trainable(self, name: str, param: nn.Parameter) -> bool:
        """Whether the parameter called ``name`` is trained by this recipe.

        Decided for the model of the latest :meth:`prepare` (before any,
        with the zoo's naming: the head is ``classifier``).
        """
        return bool(self._rule(name, param))

    def make_optimizer(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """Build the recipe's optimizer (default ``SGD(lr=0.05)``) on the trainable ``params``.

        Tensors with ``requires_grad=False`` are left out, so
        ``make_optimizer(model.parameters())`` after :meth:`prepare` is right.
        Param-group dicts are passed through as they are. With
        :class:`UpdateInBackward`, a :class:`FusedBackwardOptimizer` (one
        optimizer per tensor, stepped in backward; its ``step()`` does nothing).
        """
        items = list(params)
        chosen = [p for p in items if isinstance(p, dict) or p.requires_grad]
        if not chosen:
            raise InvalidRecipe(
                "make_optimizer got no trainable parameter; call recipe.prepare(model) first, "
                "then recipe.make_optimizer(model.parameters())"
            )
        build = self.optimizer_part.build
        for part in self._by_kind.values():  # UpdateInBackward: one optimizer per tensor
            if part is not self.optimizer_part:
                build = part.wrap_optimizer(build)
        return build(chosen)  # type: ignore[no-any-return]

    def train_step(
        self,
        model: nn.Module,
        inputs: Any,
        targets: torch.Tensor,
        loss_fn: LossFn | None,
        optimizer: torch.optim.Optimizer,
    ) -> float:
        """One optimizer step: zero grads, forward/backward per micro-batch, step.

        The loss of each of the :attr:`micro_batches` chunks is scaled by its
        share of the batch, so the accumulated gradient equals the gradient
        of the full batch's mean loss (exactly, without batch statistics;
        see :mod:`odtlab.recipes.activations.microbatch`). ``loss_fn=None`` is
        cross-entropy. With a precision part, the forward pass and the loss
        run under its :meth:`~PrecisionPart.autocast` and backward and step
        go through it (fp16 loss scaling). The model's train/eval mode is
        left to the caller.

        Returns
        -------
        float
            The full batch's mean loss.
        """
        return accumulate_step(
            model, inputs, targets, loss_fn, optimizer, self.micro_batches,
            precision=self.precision_part,
        )  # fmt: skip

    def describe(self, model: nn.Module) -> TrainableSummary:
        """Trainable parameters per layer, count and bytes (model not changed).

        Returns a :class:`~odtlab.recipes.TrainableSummary`; print it.
        """
        net = copy.deepcopy(model)
        self._apply_structure(net, check=False)  # count what prepare() would add, on a copy
        return summarize(self, net)

    # ---- printing ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = ", ".join(repr(p) for p in self.parts)
        return f"Recipe({parts}{', ' if parts else ''}name={self.name!r})"

    def __str__(self) -> str:
        lines = [f"recipe {self.name}"]
        for part in (self.trainable_part, *[p for p in self.parts if p.kind != "trainable"]):
            lines.append(f"  {part.kind:<14} {part!r}")
        if "optimizer" not in self._given:
            lines.append(f"  {'optimizer':<14} {self.optimizer_part!r} (default)")
        return "\n".join(lines)
