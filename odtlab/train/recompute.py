"""The memory of a checkpointed training step, recompute included.

Non-reentrant checkpointing hides what it recomputes from the saved-tensor
hooks that the memory measurement uses, so the report of a checkpointed
recipe is assembled from two honest measurements:

1. :func:`odtlab.memory.profile_training` on the checkpointed model. Its
   hooks see exactly what stays alive between forward and backward: what
   the layers outside the checkpointed segments save, plus the input of
   each segment (the checkpoint keeps it, and PyTorch stores it through
   the same hooks). Its forward timeline is right too: inside a segment,
   outputs die after their last reader. With the copy of the random-number
   state each checkpoint keeps (5,056 bytes on the CPU, so that dropout
   repeats its masks), that is ``totals["activations"]``.
2. :func:`probe_segments`: one plain forward with the hooks, recording for
   each segment the bytes its modules save for backward (the segment's
   input excepted). These are the bytes the recompute brings back when the
   backward reaches that segment.

:func:`with_recompute` then charges the backward events of segment ``k``
with its recomputed tensors still alive: everything the segment saves
appears when the backward reaches it, and a tensor saved inside module
``m`` is released after the last backward event of ``m``; the segment's
kept input goes as soon as its backward is done. The peak is the largest
event. The FLOPs gain a ``"recompute"`` entry: the forward FLOPs of the
checkpointed segments, paid again.

Checked against ``torch.profiler``'s real peak of a checkpointed training
step (torch 2.13, CPU, 2 threads, every zoo model, 1 to 4 segments, with
and without micro-batches): within 16 bytes for the MLP, the CNN and the
transformer, 0.5 % for MobileNetV2 and 1.4 % for MCUNet (the memory
timeline's own error there); ``tests/test_recipes_memory.py`` holds it to
3 %.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from odtlab.memory import Timeline, TimelineEvent, TrainingMemoryReport
from odtlab.recipes.activations.checkpointing import CheckpointedSequential, probing
from odtlab.recipes.activations.microbatch import LossFn

__all__ = ["SegmentMemory", "probe_segments", "with_recompute"]


@dataclass(frozen=True)
class SegmentMemory:
    """Memory of one checkpointed segment, in bytes.

    Attributes
    ----------
    index : int
    layers : tuple of str
        Module names of the trunk children in the segment.
    kept_input_bytes : int
        The segment's input, kept by the checkpoint from forward to backward
        (0 when nothing in the segment needs a gradient).
    recompute_bytes : int
        Saved for backward by the segment's layers, brought back by the recompute.
    recompute_by_module : tuple of (str, int)
        The same, per module that saved it (the innermost one running), in
        forward order.
    recompute_flops : int
        Forward FLOPs of the segment, paid again by the recompute.
    rng_state_bytes : int
        The copy of the random-number generator state the checkpoint keeps
        (so that dropout draws the same masks in the recompute): 5,056 bytes
        for the CPU generator in torch 2.13, plus each CUDA generator's.
    """

    index: int
    layers: tuple[str, ...]
    kept_input_bytes: int
    recompute_bytes: int
    recompute_by_module: tuple[tuple[str, int], ...]
    recompute_flops: int
    rng_state_bytes: int = 0


def _key(t: torch.Tensor) -> int:
    """Storage identity (works on ``meta`` too, where ``data_ptr()`` is 0)."""
    return int(t.untyped_storage()._cdata)


def _rng_devices(model: nn.Module) -> list[torch.device]:
    return sorted({p.device for p in model.parameters() if p.device.type == "cuda"}, key=str)


def _rng_state_bytes(model: nn.Module) -> int:
    """Bytes of the generator states a checkpoint stashes (CPU, and the model's CUDA devices)."""
    total = torch.get_rng_state().numel()
    for device in _rng_devices(model):
        total += torch.cuda.get_rng_state(device).numel()
    return int(total)


def probe_segments(
    net: nn.Module,
    trunk_name: str,
    trunk: CheckpointedSequential,
    batch: tuple[Any, torch.Tensor],
    loss_fn: LossFn,
) -> list[SegmentMemory]:
    """Run one plain forward and record what each segment's layers save (see the module doc)."""
    skip = {_key(t) for t in (*net.parameters(), *net.buffers())}
    names = {id(m): n for n, m in net.named_modules()}
    first: dict[int, tuple[int, str] | None] = {}
    sizes: dict[int, int] = {}
    running: list[str] = []  # the modules whose forward is running, innermost last
    segment: list[int | None] = [None]
    packs: dict[int, int] = defaultdict(int)
    inputs_of: dict[int, tuple[int, int]] = {}
    flops: dict[int, int] = {}
    alive: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        k = segment[0]
        if k is not None:
            packs[k] += 1
        key = _key(t)
        if key not in skip and key not in first:
            first[key] = None if k is None else (k, running[-1] if running else "")
            sizes[key] = int(t.untyped_storage().nbytes())
            alive.append(t)  # keep storages alive so that their identities stay unique
        return t

    def probe(k: int, layers: list[nn.Module], x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            inputs_of[k] = (_key(x), int(x.untyped_storage().nbytes()))
        segment[0] = k
        with FlopCounterMode(display=False) as counter:
            x = _run_layers(layers, x)
        segment[0] = None
        flops[k] = int(counter.get_total_flops())
        return x

    def enter(module: nn.Module, args: Any) -> None:
        running.append(names[id(module)])

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        running.pop()

    handles = []
    for m in trunk.modules():
        if m is not trunk:
            handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    inputs, targets = batch
    net.train()
    try:
        with torch.random.fork_rng(devices=_rng_devices(net)), probing(trunk, probe):
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss_fn(net(inputs), targets)
    finally:
        for h in handles:
            h.remove()
    children = list(trunk._modules)
    prefix = f"{trunk_name}." if trunk_name else ""
    segments = []
    for k, (start, stop) in enumerate(trunk.segment_bounds):
        input_key = inputs_of.get(k, (None, 0))[0]
        by_module: dict[str, int] = {}
        for key, place in first.items():
            if place is not None and place[0] == k and key != input_key:
                by_module[place[1]] = by_module.get(place[1], 0) + sizes[key]
        segments.append(
            SegmentMemory(
                index=k,
                layers=tuple(prefix + n for n in children[start:stop]),
                kept_input_bytes=inputs_of.get(k, (0, 0))[1] if packs[k] else 0,
                recompute_bytes=sum(by_module.values()),
                recompute_by_module=tuple(by_module.items()),
                recompute_flops=flops.get(k, 0),
                rng_state_bytes=_rng_state_bytes(net) if packs[k] else 0,
            )
        )
    return segments


def _run_layers(layers: list[nn.Module], x: Any) -> Any:
    for layer in layers:
        x = layer(x)
    return x


def _module(event: TimelineEvent) -> str:
    return event.label.split(" ", 1)[0]


def _inside(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _kept_input_overhang(
    events: list[TimelineEvent],
    where: dict[int, int],
    segments: list[SegmentMemory],
    report: TrainingMemoryReport,
    trunk_label: str,
    input_shape: tuple[int, ...] | None,
) -> list[int]:
    """Bytes of kept segment inputs that the measured timeline holds too long, per event.

    The measured timeline releases a segment's kept input after the backward
    of the layer that *made* it (the step before the segment), or at the end
    of backward when that layer has none. In fact the checkpoint lets it go
    as soon as the segment's own backward is done.
    """
    minus = [0] * len(events)
    kept = iter(t for t in report.saved.tensors if t.module == trunk_label)
    pairs = []  # (segment, its kept input as measured); an input another layer saved first is
    t = next(kept, None)  # listed under that layer, so pair by size and skip what does not match
    for seg in segments:
        if seg.kept_input_bytes and t is not None and t.nbytes == seg.kept_input_bytes:
            pairs.append((seg, t))
            t = next(kept, None)
    for seg, t in pairs:
        made_by = min(report.saved.users.get(t.key, {t.step}))
        is_batch = made_by < 0 or (t.label == "tensor without grad_fn" and t.shape == input_shape)
        positions = [p for p, k in where.items() if k == seg.index]
        if is_batch or not positions or 1 + made_by >= len(events):
            continue  # the batch is in the "batch" category, not an activation
        after = max(positions) + 1
        maker = events[1 + made_by].label
        if after < len(events) and events[after].phase == "backward":
            if events[after].label == maker:
                minus[after] += t.nbytes
                continue
        for p in range(after, len(events)):
            if events[p].phase == "backward" and events[p].live["activations"] >= t.nbytes:
                minus[p] += t.nbytes
    return minus


def with_recompute(
    timeline: Timeline,
    segments: list[SegmentMemory],
    report: TrainingMemoryReport,
    trunk_label: str,
    input_shape: tuple[int, ...] | None,
) -> Timeline:
    """Charge the backward events of each segment with its recomputed tensors still alive.

    The recompute brings back everything the segment saves when the backward
    reaches the segment; a tensor saved inside module ``m`` is then released
    after the last backward event of ``m`` (or of a module inside ``m``).
    The segment's kept input goes once its backward is done.
    """
    events = timeline.events
    where: dict[int, int] = {}  # backward event position -> segment
    last: dict[str, int] = {}  # module label -> position of its last backward event
    starts: dict[int, int] = {}  # segment -> position of its first forward event
    for pos, e in enumerate(events):
        for s in segments:
            if any(_inside(_module(e), layer) for layer in s.layers):
                if e.phase == "backward":
                    where[pos] = s.index
                    last[_module(e)] = pos
                else:
                    starts.setdefault(s.index, pos)
    rng = [0] * len(events)  # the checkpoint's copy of the generator state, while it lives
    for s in segments:
        ends = [p for p, k in where.items() if k == s.index]
        if s.rng_state_bytes and s.index in starts and ends:
            for p in range(starts[s.index], max(ends) + 1):
                rng[p] += s.rng_state_bytes

    def release(module: str, k: int) -> int:
        """Position after which a tensor saved inside ``module`` is gone."""
        while True:
            found = [p for label, p in last.items() if _inside(label, module)]
            if found:
                return max(found)
            if "." not in module:  # not seen at all: keep it to the end of the segment
                return max((p for p, seg in where.items() if seg == k), default=-1)
            module = module.rsplit(".", 1)[0]

    releases = [[(release(m, s.index), b) for m, b in s.recompute_by_module] for s in segments]
    minus = _kept_input_overhang(events, where, segments, report, trunk_label, input_shape)
    firsts = {
        min(p for p, k in where.items() if k == s.index): s
        for s in segments
        if s.index in where.values()
    }
    out: list[TimelineEvent] = []
    for pos, e in enumerate(events):
        k = where.get(pos)
        extra = 0 if k is None else sum(b for end, b in releases[k] if end >= pos)
        if extra or minus[pos] or rng[pos]:
            live = dict(e.live)
            live["activations"] += extra - minus[pos] + rng[pos]
            label = e.label if k is None else f"{e.label} [recomputed segment {k}]"
            e = TimelineEvent(e.index, e.phase, label, live)
        seg = firsts.get(pos)
        if seg is not None and seg.recompute_bytes:
            # the recompute itself, just before: every saved tensor of the segment is back,
            # the gradients are those of the event before, and torch.random.fork_rng holds
            # one more copy of the generator state while the segment's forward runs again
            live = dict(e.live)
            live["gradients"] = out[-1].live["gradients"] if out else 0
            live["transient"] += seg.rng_state_bytes
            out.append(TimelineEvent(0, "backward", f"recompute segment {seg.index}", live))
        out.append(e)
    return Timeline([TimelineEvent(i, e.phase, e.label, e.live) for i, e in enumerate(out)])
