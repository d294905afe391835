"""The memory a recipe needs on a device, measured: :func:`profile`.

``profile(model, batch, recipe, device, accounting=...)`` asks the same
question as :class:`~odtlab.train.Trainer` and :func:`~odtlab.train.compare`,
with the same arguments and defaults, but runs no training: one step is
measured and, with a device, checked against its memory.

Method. A deep copy of the model is prepared with the recipe (``model``
itself is never changed) and measured by
:func:`odtlab.memory.profile_training` with the recipe's trainable set and
its very optimizer, on the **first micro-batch** of the example batch (the
largest chunk, ``ceil(B / n)`` examples). Two things need more than one
call of ``profile_training``:

**Micro-batches.** The timeline of the report is that of the *last*
micro-batch, the most expensive one: the gradients of every trainable
parameter, accumulated by the earlier micro-batches, are alive from its
start, and in its backward each newly computed parameter gradient is a
short-lived buffer before it is added into ``.grad``. The whole batch stays
in memory (``train_step`` slices it), so the ``batch`` category holds the
whole batch. ``totals["activations"]`` is one micro-batch's.

**Update in backward.** With :class:`~odtlab.recipes.UpdateInBackward`
the timeline is built with ``fused_update=True``: each tensor's gradient
lives from its backward step to its update right after it, and
``totals["gradients"]`` is the most gradient bytes alive at once.

**Checkpointing.** Non-reentrant checkpointing hides what it recomputes
from the saved-tensor hooks the memory measurement uses; the report is
assembled from two honest measurements, see :mod:`odtlab.train.recompute`.

**Precision.** The step is measured under the precision part's
``autocast`` (:class:`~odtlab.recipes.MixedPrecision`: autograd then saves
16-bit tensors, and the measurement counts their real bytes), and its
16-bit dtype is handed to :func:`~odtlab.memory.profile_training`
(``autocast=``). For a model on ``meta``, where ``torch.autocast`` does
nothing, the memory model (and the probe of checkpointed segments) replays
PyTorch's CPU autocast policy (:mod:`odtlab.memory.autocast`), so a
mixed-precision recipe can be sized for a 224x224 MobileNetV2 without
allocating it, to the byte of the CPU measurement.
:class:`~odtlab.recipes.Int8` layers are registered with the memory model
(:mod:`odtlab.recipes.layers.quant`), so both paths know them.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from odtlab.devices import DeviceProfile, FitVerdict, verdict
from odtlab.errors import InvalidRecipe, OdtlabError
from odtlab.memory import (
    LayerMemory,
    Timeline,
    TimelineEvent,
    TrainingMemoryReport,
    format_bytes,
    profile_training,
    training_flops,
)
from odtlab.memory.autocast import EmulatedAutocast
from odtlab.memory.paper_rules import PAPER_RULES, paper_report
from odtlab.memory.torch_profiler import allocation_deltas, quiet_stderr
from odtlab.recipes import Recipe
from odtlab.recipes.activations.checkpointing import checkpointed_trunk, checkpointing_disabled
from odtlab.recipes.activations.microbatch import (
    LossFn,
    default_loss,
    explain_tiny_batch,
    split_batch,
)
from odtlab.train.recompute import SegmentMemory, probe_segments, with_recompute

__all__ = ["RecipeMemoryReport", "profile", "profiled_recipe_peak", "default_recipe", "ACCOUNTINGS",
           "STEP_ACCOUNTINGS"]

#: How memory is counted: what PyTorch keeps, what a memory-optimised engine keeps, or what
#: a paper counts under its own rules (TinyTL's profiler, the 256 KB paper's sparse update).
STEP_ACCOUNTINGS = ("pytorch", "engine")  # those that model a whole step (Trainer's choices)
ACCOUNTINGS = (*STEP_ACCOUNTINGS, *PAPER_RULES)


def default_recipe() -> Recipe:
    """``Recipe()``: full training with the recipes' default optimizer, ``SGD(lr=0.05)``.

    The default of :func:`profile`, :class:`~odtlab.train.Trainer` and
    :func:`~odtlab.train.compare` alike.
    """
    return Recipe()


@dataclass
class RecipeMemoryReport(TrainingMemoryReport):
    """A :class:`~odtlab.memory.TrainingMemoryReport` for a recipe, with its details.

    Attributes (besides the report's)
    ---------------------------------
    recipe : str
        The recipe's name.
    micro_batches : int
        Number of micro-batches the batch is cut into (``min(n, B)``).
    micro_batch_size : int
        Examples in the largest micro-batch, the one measured.
    segments : tuple of SegmentMemory
        The checkpointed segments (empty without checkpointing).
    """

    recipe: str = ""
    micro_batches: int = 1
    micro_batch_size: int = 0
    segments: tuple[SegmentMemory, ...] = ()
    verdict: FitVerdict | None = None

    @property
    def fits(self) -> bool | None:
        """Whether the step fits the device it was profiled for (``None`` without a device)."""
        return None if self.verdict is None else self.verdict.fits

    def __str__(self) -> str:
        lines = [super().__str__(), "", f"recipe {self.recipe}"]
        if self.verdict is not None:
            lines.append(str(self.verdict))
        if self.micro_batches > 1:
            lines.append(
                f"micro-batches: {self.micro_batches} of at most {self.micro_batch_size} "
                "examples; the timeline is the last one, with every accumulated gradient alive"
            )
        for s in self.segments:
            lines.append(
                f"segment {s.index} ({s.layers[0]} .. {s.layers[-1]}): keeps its input "
                f"{format_bytes(s.kept_input_bytes)}, recomputes "
                f"{format_bytes(s.recompute_bytes)} ({s.recompute_flops:.3e} FLOPs)"
            )
        return "\n".join(lines)


def _map_events(timeline: Timeline, change: Callable[[TimelineEvent], TimelineEvent]) -> Timeline:
    return Timeline([change(e) for e in timeline.events])


def _accumulated(timeline: Timeline, gradients: int, extra_batch: int, chunks: int) -> Timeline:
    """The last micro-batch: every gradient alive, new parameter gradients briefly extra."""
    previous = [0]

    def change(e: TimelineEvent) -> TimelineEvent:
        live = dict(e.live)
        live["batch"] += extra_batch
        if chunks > 1 and e.phase != "optimizer":
            grown = max(0, e.live["gradients"] - previous[0])
            previous[0] = e.live["gradients"]
            if e.phase == "backward":
                live["transient"] += grown  # computed, then added into .grad and freed
            live["gradients"] = gradients
        return TimelineEvent(e.index, e.phase, e.label, live)

    return _map_events(timeline, change)


def _nbytes(x: Any, accounting: str = "pytorch") -> int:
    """Bytes of a batch as the accounting stores it (the engine: 1 byte per float element)."""
    if isinstance(x, torch.Tensor):
        if accounting == "engine" and x.dtype.is_floating_point:
            return x.numel()
        return x.numel() * x.element_size()
    return sum(_nbytes(t, accounting) for t in x)


def _own(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.clone()
    return type(x)(_own(t) for t in x)


def profile(
    model: nn.Module,
    example_batch: tuple[Any, torch.Tensor],
    recipe: Recipe | None = None,
    device: DeviceProfile | str | None = None,
    *,
    accounting: str = "pytorch",
    loss_fn: LossFn | None = None,
    flops: bool = True,
) -> RecipeMemoryReport:
    """Measure the memory of one training step of ``recipe`` on ``device`` (chapters 1-4).

    Parameters
    ----------
    model : nn.Module
        Not changed: a deep copy is prepared and measured. A model on the
        ``meta`` device is analysed without allocating anything.
    example_batch : (inputs, targets)
        The *whole* batch; the recipe's micro-batches are cut from it.
    recipe : Recipe or None
        ``None`` is :func:`~odtlab.train.default_recipe` (full training, SGD),
        as in :class:`~odtlab.train.Trainer`.
    device : DeviceProfile, str or None
        With a device, ``report.verdict`` says whether the step fits its
        memory and by how much (printed with the report).
    accounting : {"pytorch", "engine", "tinytl", "256kb"}
        ``"pytorch"``: what PyTorch really keeps; ``"engine"``: what a
        memory-optimised training engine keeps (8-bit activations, frozen
        weights int8; see :mod:`odtlab.memory.engine`); it cannot be
        combined with checkpointing. ``"tinytl"`` and ``"256kb"``: what
        the paper counts, by its reference code's rules
        (:mod:`odtlab.memory.paper_rules`; TinyTL's Table 2 in MB = 10^6
        bytes, the 256 KB paper's sparse update in KB = 1024 bytes); no
        timeline, layers or FLOPs, and no micro-batches or checkpointing.
    loss_fn : callable or None
        Mean loss ``loss_fn(outputs, targets)``; ``None`` is cross-entropy.
    flops : bool, default True
        Also count the step's FLOPs (``report.flops``; PyTorch's
        ``FlopCounterMode``), which time and energy need. ``False`` skips
        the count when only memory is asked (it takes most of the time).

    Returns
    -------
    RecipeMemoryReport
        ``totals`` in bytes: ``"activations"`` of one micro-batch (with
        checkpointing: what stays alive between forward and backward),
        ``"peak"`` over forward, recompute, backward and optimizer step.

    Examples
    --------
    >>> from odtlab import models
    >>> from odtlab.recipes import Recipe, LastLayer, Full
    >>> batch = models.example_batch("cnn", 8, resolution=16)
    >>> full = profile(models.build("cnn"), batch, Recipe(Full()))
    >>> head = profile(models.build("cnn"), batch, Recipe(LastLayer()), "stm32f746")
    >>> head.totals["activations"] < full.totals["activations"] / 10
    True
    >>> head.verdict.device_name
    'stm32f746'
    """
    recipe = default_recipe() if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        raise InvalidRecipe(
            f"profile(recipe={recipe!r}): give a Recipe, e.g. Recipe(BiasOnly()) or "
            "odtlab.recipes.named('bias-only')"
        )
    if accounting not in ACCOUNTINGS:
        raise InvalidRecipe(
            f"profile(accounting={accounting!r}): accounting must be one of "
            f"{', '.join(map(repr, ACCOUNTINGS))}"
        )
    if accounting in PAPER_RULES:
        report = _paper_memory_report(recipe, model, example_batch, accounting)
    else:
        report = _recipe_memory_report(
            recipe, model, example_batch, loss_fn, accounting=accounting, flops=flops
        )
    if device is not None:
        report.verdict = verdict(report, device)
    return report


def _paper_memory_report(
    recipe: Recipe, model: nn.Module, example_batch: Any, accounting: str
) -> RecipeMemoryReport:
    """The prepared copy counted under a paper's rules (one plain step, whole batch)."""
    if recipe.micro_batches > 1 or recipe.checkpointing is not None:
        raise InvalidRecipe(
            f"accounting={accounting!r} counts a plain step, as the paper does; measure recipe "
            f"{recipe.name!r} (micro-batches or checkpointing) with accounting='pytorch'"
        )
    inputs = example_batch[0] if isinstance(example_batch, (tuple, list)) else example_batch
    net = recipe.prepare(copy.deepcopy(model))
    base = paper_report(net, inputs, accounting, label=f"{type(model).__name__} with {recipe.name}")
    values = {f.name: getattr(base, f.name) for f in fields(TrainingMemoryReport)}
    return RecipeMemoryReport(**values, recipe=recipe.name, micro_batch_size=int(inputs.shape[0]))


def _recipe_memory_report(
    recipe: Recipe,
    model: nn.Module,
    example_batch: tuple[Any, torch.Tensor],
    loss_fn: LossFn | None,
    *,
    accounting: str,
    flops: bool = True,
) -> RecipeMemoryReport:
    if not isinstance(example_batch, (tuple, list)) or len(example_batch) != 2:
        raise InvalidRecipe(
            "example_batch must be a pair (inputs, targets), e.g. "
            "odtlab.models.example_batch('cnn', 8)"
        )
    inputs, targets = example_batch
    chunks = split_batch(inputs, targets, recipe.micro_batches)
    first_x, first_y, _ = chunks[0]
    chunk = (_own(first_x), first_y.clone())
    net = recipe.prepare(copy.deepcopy(model))
    precision = recipe.precision_part
    try:
        with contextlib.nullcontext() if precision is None else precision.autocast(net):
            return _measure(
                recipe, model, net, inputs, targets, chunk, len(chunks), loss_fn, accounting,
                flops,
            )
    except OdtlabError as err:
        better = explain_tiny_batch(err, int(first_y.shape[0]))
        if better is None:
            raise
        raise better from err


def _measure(
    recipe: Recipe,
    model: nn.Module,
    net: nn.Module,
    inputs: Any,
    targets: torch.Tensor,
    chunk: tuple[Any, torch.Tensor],
    chunks: int,
    loss_fn: LossFn | None,
    accounting: str,
    count_flops: bool = True,
) -> RecipeMemoryReport:
    """Measure the prepared copy ``net`` on its first micro-batch ``chunk``."""

    def optimizer(params: Any) -> torch.optim.Optimizer:
        return recipe.optimizer_part.build(params, foreach=False)

    precision = recipe.precision_part
    autocast = None if precision is None else precision.autocast_dtype
    fused = recipe.update_in_backward
    found = checkpointed_trunk(net)
    segments: list[SegmentMemory] = []
    if found is None:
        report = profile_training(
            net, chunk, loss_fn, optimizer, None, accounting=accounting, autocast=autocast,
            fused_update=fused, flops=count_flops,
        )  # fmt: skip
        timeline, layers, flops = report.timeline, report.layers, report.flops
    else:
        if accounting != "pytorch":
            raise InvalidRecipe(
                f"accounting={accounting!r} does not model checkpointing; measure recipe "
                f"{recipe.name!r} with accounting='pytorch'"
            )
        trunk_name, trunk = found
        report = profile_training(
            net, chunk, loss_fn, optimizer, None, flops=False, autocast=autocast,
            fused_update=fused,
        )  # fmt: skip
        on_meta = any(p.is_meta for p in net.parameters())
        with EmulatedAutocast(autocast) if autocast and on_meta else contextlib.nullcontext():
            segments = probe_segments(net, trunk_name, trunk, chunk, loss_fn or default_loss)
        label = trunk_name or "(model)"
        shape = tuple(chunk[0].shape) if isinstance(chunk[0], torch.Tensor) else None
        timeline = with_recompute(report.timeline, segments, report, label, shape)
        kept = report.saved.by_module().get(label, 0) + sum(s.rng_state_bytes for s in segments)
        trunk_record = LayerMemory(label, "CheckpointedSequential", 0, 0, 0, kept, False)
        layers = [*report.layers, trunk_record]
        flops = None
        if count_flops:
            with checkpointing_disabled(net):
                flops = training_flops(net, chunk, loss_fn, None)
            recompute = sum(s.recompute_flops for s in segments)
            flops = {**flops, "recompute": recompute, "total": flops["total"] + recompute}
    full_batch = _nbytes(inputs, accounting) + _nbytes(targets, accounting)
    timeline = _accumulated(
        timeline, report.totals["gradients"], full_batch - report.batch_bytes, chunks
    )
    values = {f.name: getattr(report, f.name) for f in fields(TrainingMemoryReport)}
    rng = sum(s.rng_state_bytes for s in segments)
    values.update(
        totals={
            **report.totals,
            "activations": report.totals["activations"] + rng,
            "peak": int(timeline.peak),
        },
        timeline=timeline,
        layers=layers,
        flops=flops,
        batch_bytes=full_batch,
        label=f"{type(model).__name__} with {recipe.name}",
    )
    return RecipeMemoryReport(
        **values,
        recipe=recipe.name,
        micro_batches=chunks,
        micro_batch_size=int(chunk[1].shape[0]),
        segments=tuple(segments),
    )


def profiled_recipe_peak(recipe: Recipe, model: nn.Module, batch: tuple[Any, Any]) -> int:
    """Real peak bytes of a recipe's steady-state ``train_step``, from ``torch.profiler`` (CPU).

    The check that :func:`profile` is held against: on a deep
    copy of ``model``, one unprofiled ``train_step`` creates the optimizer
    state, the gradients are set to ``None``, and the second step runs under
    ``torch.profiler`` with ``profile_memory=True``. The result is what was
    resident (weights, buffers, batch, optimizer state, each storage once)
    plus the largest running sum of allocations during the step.
    """
    from torch.profiler import ProfilerActivity, profile


    net = recipe.prepare(copy.deepcopy(model)).train()
    opt = recipe.make_optimizer(net.parameters())
    recipe.train_step(net, *batch, None, opt)
    opt.zero_grad(set_to_none=True)
    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    resident = {}
    for t in (*net.parameters(), *net.buffers(), *batch, *state):
        resident[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        recipe.train_step(net, *batch, None, opt)
    running = peak = 0
    for _, delta in allocation_deltas(prof):
        running += delta
        peak = max(peak, running)
    return sum(resident.values()) + peak
