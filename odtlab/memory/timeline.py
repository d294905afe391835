"""A memory timeline of one training step: forward, backward, optimizer step.

The timeline is a *model* that replays a recorded forward pass
(:mod:`odtlab.memory.trace`) and says how many bytes are alive after each
step, split in categories:

``weights``      parameters and buffers, resident all the time;
``batch``        the inputs and targets, held by the training loop;
``activations``  storages saved for backward: they pile up during the
                 forward pass, in execution order, and each is freed once
                 the backward of the earliest layer that kept it has run;
``gradients``    parameter gradients, appearing layer by layer in reverse
                 order during backward (autograd hands the buffer it computed
                 to ``.grad``, no copy);
``optimizer``    optimizer state: resident from the start in the *steady state*
                 (every step after the first, the default), created by
                 ``step()`` in the very first step;
``transient``    everything else that is briefly alive: a layer's output
                 until its last reader has run (if nobody saved it), the
                 gradient flowing backwards between layers (it is freed once
                 the layer that produced the tensor has run its backward),
                 the temporaries of an Adam step (two parameter-sized
                 tensors: ``exp_avg_sq.sqrt()`` and its quotient).

Rules of the replay:

* forward: a step's output is born when the step runs; it dies after its
  last reader, unless autograd keeps it, or a local variable of a
  ``forward`` that is still running holds it (Python frees a local only when
  its function returns: attention's ``q``, ``k``, ``v``, ``scores``...);
* CPU kernels add scratch while they run (:mod:`odtlab.memory.workspace`):
  oneDNN convolutions copy their operands into a blocked layout, ``matmul``
  copies split heads;
* backward: a pure view (``view``, ``flatten``, ``transpose``,
  ``Identity``...) passes the gradient on without a new buffer, and so does
  a residual ``add`` of same-shaped tensors (both inputs get the very same
  gradient tensor); every other layer allocates a gradient for each input
  that requires grad; a second gradient for the same tensor (a residual
  branch) is summed in place;
* optimizer: in the steady state the state is alive for the whole step (a
  device trains for many steps, and the state persists between them, while
  ``zero_grad(set_to_none=True)`` frees the gradients before the next
  forward); for the first step it appears at ``step()``. Adam and AdamW (the
  single-tensor CPU implementation) also make two parameter-sized
  temporaries for the largest parameter (``exp_avg_sq.sqrt()`` and its
  quotient).
* update in backward (``fused_update=True``, the 256 KB paper's in-place
  update, :class:`~odtlab.recipes.UpdateInBackward`): right after the
  backward step that last uses a trainable tensor (the earliest use in the
  forward), autograd writes its ``.grad``, the per-tensor optimizer steps
  (its temporaries, e.g. Adam's two, alive with the gradient) and the
  gradient is freed. The gradient of a layer therefore lives for one step,
  with the incoming gradient already released; no gradient is left for
  ``optimizer.step()``, which does nothing.

**Measured error.** Against ``torch.profiler`` (CPU, ``profile_memory=True``,
one real steady-state training step, see :mod:`odtlab.memory.torch_profiler`),
torch 2.13 on 2 CPU threads, every zoo model at small sizes (batch 2, as
printed by ``benchmarks/memory_fidelity.py``), SGD and Adam, full and
head-only training: the predicted training peak is within 0.5 % for the
MLP, the CNN and MobileNetV2, within 1.5 % for the transformer (small
``matmul`` internals), and 5 % to 7.5 % low for MCUNet (oneDNN's backward of
its 7x7 depthwise convolutions allocates per-thread scratch that is not
modelled); the inference peak is within 2.5 %. The tests hold every case
within 10 %. Thread count, oneDNN version and the channel padding of its
blocked layouts move the kernel scratch, so expect a few percent more
elsewhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from odtlab.memory.records import Step, TensorRef, Trace

__all__ = [
    "CATEGORIES",
    "TimelineEvent",
    "Timeline",
    "simulate_training_step",
    "VIEW_KINDS",
]

CATEGORIES = ("weights", "batch", "gradients", "optimizer", "activations", "transient")

#: Steps whose output is a view of their input: their backward makes no new gradient buffer.
VIEW_KINDS = frozenset(
    "view reshape flatten unflatten transpose permute unsqueeze squeeze expand getitem select "
    "narrow t mT view_as reshape_as contiguous detach Identity Flatten Unflatten".split()
)


@dataclass(frozen=True)
class TimelineEvent:
    """Live bytes by category right after one step of the training step."""

    index: int
    phase: str
    label: str
    live: Mapping[str, int]

    @property
    def total(self) -> int:
        """Bytes alive in all categories together."""
        return sum(self.live.values())


@dataclass
class Timeline:
    """The events of one training step (or one inference), in order.

    ``peak`` is the largest total over the events, in bytes.
    """

    events: list[TimelineEvent] = field(default_factory=list)

    @property
    def peak(self) -> int:
        """Largest number of bytes alive at once."""
        return max((e.total for e in self.events), default=0)

    @property
    def peak_event(self) -> TimelineEvent:
        """The first event where the peak is reached."""
        return max(self.events, key=lambda e: e.total)

    def to_records(self) -> list[dict[str, object]]:
        """One dict per event: index, phase, label, one column per category, total."""
        return [
            {"index": e.index, "phase": e.phase, "label": e.label, **dict(e.live), "total": e.total}
            for e in self.events
        ]


class LiveMemory:
    """Live allocations, each with a size and a category; gradients are refcounted."""

    def __init__(self, timeline: Timeline, constant: Mapping[str, int]) -> None:
        self.timeline = timeline
        self.constant = dict(constant)
        self.blocks: dict[object, tuple[int, str]] = {}

    def add(self, name: object, nbytes: int, category: str) -> None:
        if name not in self.blocks:
            self.blocks[name] = (nbytes, category)

    def move(self, name: object, category: str) -> None:
        if name in self.blocks:
            self.blocks[name] = (self.blocks[name][0], category)

    def free(self, name: object) -> None:
        self.blocks.pop(name, None)

    def record(self, phase: str, label: str) -> None:
        live = {c: self.constant.get(c, 0) for c in CATEGORIES}
        for nbytes, category in self.blocks.values():
            live[category] += nbytes
        self.timeline.events.append(TimelineEvent(len(self.timeline.events), phase, label, live))


def _is_view(step: Step) -> bool:
    return step.kind in VIEW_KINDS and all(
        o.key in {i.key for i in step.inputs} for o in step.outputs
    )


def tensor_versions(trace: Trace) -> tuple[dict[tuple[int, int], int], dict[int, int]]:
    """For each (step, input position) the step that produced that tensor (-1: none), and last reads."""
    producer: dict[int, int] = {}
    version: dict[tuple[int, int], int] = {}
    last_read: dict[int, int] = {}
    for step in trace.steps:
        for pos, ref in enumerate(step.inputs):
            version[(step.index, pos)] = producer.get(ref.key, -1)
            last_read[ref.key] = step.index
        for ref in step.outputs:
            producer[ref.key] = step.index
    for key, index in trace.held_until.items():  # bound to a local of a running forward
        if key in last_read:
            last_read[key] = max(last_read[key], index)
    return version, last_read


def death_steps(last_read: Mapping[int, int], keep: set[int]) -> dict[int, list[int]]:
    """``{step index: storages that nobody needs after that step}`` (``keep`` never dies)."""
    out: dict[int, list[int]] = {}
    for key, index in last_read.items():
        if key not in keep:
            out.setdefault(index, []).append(key)
    return out


def simulate_training_step(
    trace: Trace,
    saved: Iterable[tuple[int, int, set[int]]],
    *,
    weights: int,
    param_grads: Mapping[str, int],
    optimizer_state: int,
    optimizer_workspace: int = 0,
    tensor_bytes: Callable[[TensorRef], int] = lambda r: r.storage_bytes,
    grad_bytes: Callable[[TensorRef], int] = lambda r: r.nbytes,
    forward_scratch: Callable[[Step], int] = lambda s: 0,
    backward_scratch: Callable[[Step], int] = lambda s: 0,
    batch_bytes: int | None = None,
    steady_state: bool = True,
    fused_update: bool = False,
    update_workspace: Callable[[str], int] = lambda name: 0,
) -> Timeline:
    """Replay forward, backward and one optimizer step; return the timeline.

    Parameters
    ----------
    trace : Trace
        The recorded forward pass and loss.
    saved : iterable of (key, nbytes, users)
        Every storage kept for backward, its bytes and the indices of *all*
        the steps that keep it (it is freed after the backward of the
        earliest of them).
    weights : int
        Bytes of parameters and buffers.
    param_grads : mapping
        ``{parameter name: gradient bytes}`` of the trainable parameters.
    optimizer_state, optimizer_workspace : int
        Bytes of state created by the first step, and of temporaries during it.
    tensor_bytes, grad_bytes : callable
        Size of a forward tensor and of a gradient of it (the engine
        accounting passes 1 byte per element).
    forward_scratch, backward_scratch : callable
        Bytes of kernel scratch alive while a step runs (see
        :mod:`odtlab.memory.workspace`); none by default.
    batch_bytes : int, optional
        Bytes of the batch; by default the storages of inputs and targets.
    steady_state : bool
        Replay a step after the first one (default): the optimizer state is
        already resident when the forward pass starts. With ``False``, the
        very first step, whose state is created by ``optimizer.step()``.
    fused_update : bool
        Update each trainable tensor in backward and free its gradient at
        once (see the module docstring); ``optimizer_workspace`` is then
        unused and the optimizer state of a first step (``steady_state=False``)
        appears at the first update.
    update_workspace : callable
        ``parameter name -> bytes`` of temporaries while that tensor's update
        runs in backward (``fused_update=True`` only); none by default.
    """
    saved = list(saved)
    saved_bytes = {key: nbytes for key, nbytes, _ in saved}
    first_saver = {key: min(users) for key, _, users in saved}
    freed_at: dict[int, list[int]] = {}
    for key, step_index in first_saver.items():
        freed_at.setdefault(step_index, []).append(key)
    saved_by_step: dict[int, list[int]] = {}
    for key, _, users in saved:
        saved_by_step.setdefault(min(users), []).append(key)

    batch = {}
    for step in trace.steps:
        for ref in step.inputs:
            if ref.role == "batch":
                batch[ref.key] = tensor_bytes(ref)
    if batch_bytes is None:
        batch_bytes = sum(batch.values())
    timeline = Timeline()
    resident = {"weights": weights, "batch": batch_bytes}
    if steady_state:
        resident["optimizer"] = optimizer_state
    mem = LiveMemory(timeline, resident)
    mem.record("start", "weights, batch" + (" and optimizer state" if steady_state else ""))
    version, last_read = tensor_versions(trace)
    dies_after = death_steps(last_read, trace.output_keys - {trace.loss_key})
    fresh = itertools.count()

    # ---- forward: outputs are born, saved storages stay, the rest dies after its last reader
    for step in trace.steps:
        for ref in step.outputs:
            if ref.role == "activation":
                mem.add(ref.key, tensor_bytes(ref), "transient")
        for key in saved_by_step.get(step.index, []):
            if key in batch:
                continue
            if key in mem.blocks:
                mem.move(key, "activations")
            else:
                mem.add(key, saved_bytes[key], "activations")
        mem.add("scratch", forward_scratch(step), "transient")
        mem.record(step.phase, f"{step.module} {step.kind}".strip())
        mem.free("scratch")
        for name in dies_after.get(step.index, []):
            if name in mem.blocks and mem.blocks[name][1] == "transient":
                mem.free(name)
    for name in [n for n, (_, c) in mem.blocks.items() if c == "transient"]:
        if name != trace.loss_key:
            mem.free(name)

    # ---- backward: reverse order; gradients flow, saved storages are released
    grad_of: dict[tuple[int, int], object] = {}  # (producer step, storage key) -> block name
    holders: dict[object, int] = {}
    done_params: set[str] = set()

    def hold(v: tuple[int, int], block: object) -> None:
        if v in grad_of:  # a second gradient for the same tensor: summed in place
            release(block)
            return
        grad_of[v] = block
        holders[block] = holders.get(block, 0) + 1

    def release(block: object) -> None:
        holders[block] = holders.get(block, 1) - 1
        if holders[block] <= 0:
            mem.free(block)

    loss_step = trace.steps[-1].index if trace.steps else -1
    updated_at: dict[int, list[str]] = {}  # fused: backward step after which a tensor updates
    if fused_update:
        last_use: dict[str, int] = {}
        for step in trace.steps:
            for ref in step.inputs:
                if ref.role == "param" and ref.requires_grad and step.needs_backward:
                    last_use.setdefault(ref.name, step.index)
        for name, index in last_use.items():
            updated_at.setdefault(index, []).append(name)
    for step in reversed(trace.steps):
        if not step.needs_backward:
            continue
        outs = [(step.index, o.key) for o in step.outputs if o.requires_grad]
        for v in outs:
            if v not in grad_of:  # the loss (backward starts from ones) or an unused output
                block = ("grad", next(fresh))
                mem.add(block, 4 if step.index == loss_step else 0, "transient")
                grad_of[v] = block
                holders[block] = 1
        incoming = [grad_of[v] for v in outs]
        passthrough = _is_view(step) or (
            step.kind in ("add", "sub") and len({i.shape for i in step.inputs}) == 1
        )
        for pos, ref in enumerate(step.inputs):
            if ref.role == "param":
                if ref.requires_grad and ref.name not in done_params:
                    done_params.add(ref.name)
                    mem.add(("param grad", ref.name), param_grads.get(ref.name, 0), "gradients")
                continue
            if not ref.requires_grad or ref.role != "activation":
                continue
            v = (version[(step.index, pos)], ref.key)
            if passthrough and incoming:
                block = incoming[0]
            else:
                block = ("grad", next(fresh))
                mem.add(block, grad_bytes(ref), "transient")
            hold(v, block)
        mem.add("scratch", backward_scratch(step), "transient")
        mem.record("backward", f"{step.module} {step.kind}".strip())
        mem.free("scratch")
        for v in outs:
            release(grad_of.pop(v))
        for key in freed_at.get(step.index, []):
            mem.free(key)
        names = updated_at.get(step.index, [])
        if names:  # fused: .grad written, the tensor's optimizer steps, the gradient is freed
            if not steady_state:
                mem.add("optimizer state", optimizer_state, "optimizer")
            mem.add("update temporaries", max(update_workspace(n) for n in names), "transient")
            mem.record("backward", f"{step.module} update in backward".strip())
            mem.free("update temporaries")
            for name in names:
                mem.free(("param grad", name))
    for name in [n for n, (_, c) in mem.blocks.items() if c not in ("gradients", "optimizer")]:
        mem.free(name)
    mem.record("backward", "end of backward")

    # ---- optimizer step: state appears at the first step, plus short-lived temporaries
    if not steady_state:
        mem.add("optimizer state", optimizer_state, "optimizer")
    mem.add("optimizer temporaries", 0 if fused_update else optimizer_workspace, "transient")
    mem.record("optimizer", "optimizer.step()" + (" (done in backward)" if fused_update else ""))
    mem.free("optimizer temporaries")
    mem.record("optimizer", "after step")
    return timeline
