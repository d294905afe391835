""":class:`Recipe`: a few parts that together say how we train.

>>> from odtlab.recipes import Recipe, BiasOnly, MicroBatch, SGD
>>> recipe = Recipe(BiasOnly(), MicroBatch(4), SGD())
>>> recipe.name, recipe.micro_batches
('bias-only+mb(4)+sgd', 4)

The verbs, in the order a training loop uses them::

    model = recipe.prepare(model)                      # flags, checkpointing, BatchNorm
    optimizer = recipe.make_optimizer(model.parameters())
    loss = recipe.train_step(model, x, y, loss_fn, optimizer)
    report = recipe.memory_report(model, (x, y))       # measured, this recipe's memory
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.activations import InPlaceActivations
from odtlab.recipes.base import KINDS, RecipePart
from odtlab.recipes.checkpointing import Checkpointing, plan_segments, remove_checkpointing
from odtlab.recipes.fused_update import FusedBackwardOptimizer, check_update_in_backward
from odtlab.recipes.microbatch import LossFn, MicroBatch, accumulate_step
from odtlab.recipes.norm import BatchNormPolicy, set_batchnorm_mode
from odtlab.recipes.optimizers import SGD, OptimizerPart
from odtlab.recipes.precision import PrecisionPart
from odtlab.recipes.trainable import Full, Rule, TrainablePart

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
        hint = "; use the part objects, e.g. Recipe(BiasOnly()), or recipes.presets()[name]"
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
        by_kind: dict[str, RecipePart] = {}
        for part in checked:
            if part.kind in by_kind:
                other = by_kind[part.kind]
                raise InvalidRecipe(
                    f"a recipe takes one {part.kind} part, got {other!r} and {part!r}; "
                    f"keep one of them"
                )
            by_kind[part.kind] = part
        mb, bnp = by_kind.get("micro-batch"), by_kind.get("batchnorm")
        if isinstance(mb, MicroBatch) and isinstance(bnp, BatchNormPolicy) and mb.bn != "keep":
            if mb.bn != bnp.mode:
                raise InvalidRecipe(
                    f"{mb!r} and {bnp!r} ask for different BatchNorm modes; set it in one place"
                )
        check_update_in_backward(by_kind)
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidRecipe(f"Recipe(name={name!r}): name must be a non-empty string")
        self.parts: tuple[RecipePart, ...] = tuple(checked)
        self._by_kind = by_kind
        self.trainable_part: TrainablePart = by_kind.get("trainable", Full())  # type: ignore[assignment]
        self.optimizer_part: OptimizerPart = by_kind.get("optimizer", SGD())  # type: ignore[assignment]
        self.micro_batches: int = mb.n if isinstance(mb, MicroBatch) else 1
        self.update_in_backward: bool = "update" in by_kind
        precision = by_kind.get("precision")
        self.precision_part: PrecisionPart | None = (
            precision if isinstance(precision, PrecisionPart) else None
        )
        others = [p.name for p in checked if p.kind != "trainable"]
        self.name: str = name or "+".join([self.trainable_part.name, *others])
        self._rule: Rule = self.trainable_part.rule(None)

    # ---- what the recipe holds ------------------------------------------------------------
    def part(self, kind: str) -> RecipePart | None:
        """The part of ``kind`` (see :data:`odtlab.recipes.base.KINDS`), or ``None``."""
        if kind not in KINDS:
            raise InvalidRecipe(f"unknown part kind {kind!r}; kinds are {', '.join(KINDS)}")
        if kind == "trainable":
            return self.trainable_part
        if kind == "optimizer":
            return self.optimizer_part
        return self._by_kind.get(kind)

    @property
    def checkpointing(self) -> Checkpointing | None:
        """The :class:`Checkpointing` part, or ``None``."""
        part = self._by_kind.get("checkpointing")
        return part if isinstance(part, Checkpointing) else None

    @property
    def bn_mode(self) -> str:
        """``"keep"``, ``"frozen"`` or ``"group"``: what this recipe does to BatchNorm."""
        mb, bnp = self._by_kind.get("micro-batch"), self._by_kind.get("batchnorm")
        if isinstance(mb, MicroBatch) and mb.bn != "keep":
            return mb.bn
        return bnp.mode if isinstance(bnp, BatchNormPolicy) else "keep"

    @property
    def _bn_groups(self) -> int:
        mb, bnp = self._by_kind.get("micro-batch"), self._by_kind.get("batchnorm")
        if isinstance(mb, MicroBatch) and mb.bn != "keep":
            return mb.groups
        return bnp.groups if isinstance(bnp, BatchNormPolicy) else 8

    # ---- the verbs ---------------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> nn.Module:
        """Make ``model`` ready to train with this recipe, in place; return the same object.

        In order: the trainable part's changes (TinyTL's lite residuals),
        the precision part's (:class:`Int8` folds BatchNorm, swaps in int8
        layers under the same names), BatchNorm mode (``"keep"`` also undoes
        an earlier freeze; ``"group"`` swaps modules for good), in-place
        activations, checkpointing (installed, or removed when the recipe
        has none), and ``requires_grad`` of every parameter by the trainable
        rule, evaluated on the converted model (after :class:`Int8`,
        ``BiasOnly`` trains the conv biases, the old BatchNorm shifts).
        Calling it twice is safe. Only flags and module classes change;
        weights are not touched, except that ``bn="group"`` copies gamma and
        beta into the new GroupNorm and :class:`Int8` folds and rescales.

        Raises
        ------
        InvalidRecipe
            If the recipe does not fit the model (unknown ``Freeze`` names,
            no trunk to checkpoint, too many segments) or leaves no
            parameter trainable.
        """
        if not isinstance(model, nn.Module):
            raise InvalidRecipe(f"prepare() needs a torch.nn.Module; got {type(model).__name__}")
        # A trainable part may add modules first (TinyTL's lite residuals); it raises
        # before changing anything when the model does not qualify.
        self.trainable_part.apply(model)
        rule = self.trainable_part.rule(model)  # check the rest before changing anything
        flags = {name: bool(rule(name, p)) for name, p in model.named_parameters()}
        self._check_some_trainable(model, flags)
        if self.precision_part is not None:  # new layers, same names: ask the rule again
            self.precision_part.apply(model)
            rule = self.trainable_part.rule(model)
            flags = {name: bool(rule(name, p)) for name, p in model.named_parameters()}
            self._check_some_trainable(model, flags)
        act = self._by_kind.get("activations")
        ckpt = self.checkpointing
        if ckpt is not None:
            inplace = act.enabled if isinstance(act, InPlaceActivations) else None
            plan_segments(model, ckpt.segments, ckpt.trunk, inplace=inplace)
        set_batchnorm_mode(model, self.bn_mode, self._bn_groups)
        if isinstance(act, InPlaceActivations):
            act.apply(model)
        if ckpt is None:
            remove_checkpointing(model)
        else:
            ckpt.apply(model)
        for name, p in model.named_parameters():  # names survive the BatchNorm changes
            p.requires_grad_(bool(rule(name, p)))
        self._rule = rule
        return model

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
        if self.update_in_backward:
            return FusedBackwardOptimizer(chosen, self.optimizer_part.build)
        return self.optimizer_part.build(chosen)

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
        see :mod:`odtlab.recipes.microbatch`). ``loss_fn=None`` is
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

    def memory_report(
        self,
        model: nn.Module,
        example_batch: tuple[Any, torch.Tensor],
        loss_fn: LossFn | None = None,
        *,
        accounting: str = "pytorch",
    ) -> Any:
        """The memory this recipe needs on ``example_batch``, measured.

        See :func:`odtlab.recipes.memory.recipe_memory_report` for the method
        (a prepared copy of ``model`` is measured; ``model`` is not changed).

        Returns
        -------
        RecipeMemoryReport
            A :class:`odtlab.memory.TrainingMemoryReport` with the recipe's
            details; ``report.totals`` in bytes.
        """
        from odtlab.recipes.memory import recipe_memory_report

        return recipe_memory_report(self, model, example_batch, loss_fn, accounting=accounting)

    def describe(self, model: nn.Module) -> Any:
        """Trainable parameters per layer, count and bytes (model not changed).

        Returns a :class:`~odtlab.recipes.summary.TrainableSummary`; print it.
        """
        import copy

        from odtlab.recipes.summary import summarize

        net = copy.deepcopy(model)
        self.trainable_part.apply(net)  # count what prepare() would add, on a copy
        if self.precision_part is not None:
            self.precision_part.apply(net)
        return summarize(self, net)

    # ---- printing ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = ", ".join(repr(p) for p in self.parts)
        return f"Recipe({parts}{', ' if parts else ''}name={self.name!r})"

    def __str__(self) -> str:
        lines = [f"recipe {self.name}"]
        for part in (self.trainable_part, *[p for p in self.parts if p.kind != "trainable"]):
            lines.append(f"  {part.kind:<14} {part!r}")
        if "optimizer" not in self._by_kind:
            lines.append(f"  {'optimizer':<14} {self.optimizer_part!r} (default)")
        return "\n".join(lines)
