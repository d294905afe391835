"""The memory of one inference: a forward pass under ``torch.no_grad()``.

Nothing is kept for backward, so each layer's output lives only until its
last reader has run (or until the ``forward`` whose local variable holds it
returns). For a plain chain of layers the peak is the weights plus the
largest input + output pair; a residual block also holds its input meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

from odtlab.memory.records import Step, TensorRef, Trace
from odtlab.memory.timeline import LiveMemory, Timeline, death_steps, tensor_versions

__all__ = ["simulate_inference"]


def simulate_inference(
    trace: Trace,
    *,
    weights: int,
    forward_scratch: Callable[[Step], int] = lambda s: 0,
    tensor_bytes: Callable[[TensorRef], int] = lambda r: r.storage_bytes,
) -> Timeline:
    """Replay the forward pass under ``torch.no_grad()``: nothing is saved.

    Each output lives until its last reader has run; the loss steps are left
    out. Dropout is the identity in eval mode: its output is its input. For a
    plain chain of layers the peak is the weights plus the largest input +
    output pair; a residual block also holds its input meanwhile.
    """
    forward = [s for s in trace.steps if s.phase == "forward"]
    sub = Trace(
        forward, [], {}, trace.param_names, trace.buffer_names, trace.batch_keys, trace.output_keys,
        None, held_until=trace.held_until,
    )  # fmt: skip
    batch = {r.key: tensor_bytes(r) for s in forward for r in s.inputs if r.role == "batch"}
    timeline = Timeline()
    mem = LiveMemory(timeline, {"weights": weights, "batch": sum(batch.values())})
    mem.record("start", "weights and batch")
    _, last_read = tensor_versions(sub)
    aliases = set()
    for step in reversed(forward):  # eval-mode dropout passes its input through
        if step.kind in ("Dropout", "dropout") and step.inputs and step.outputs:
            source, out = step.inputs[0].key, step.outputs[0].key
            aliases.add(out)
            last_read[source] = max(last_read.get(source, -1), last_read.get(out, -1))
    dies_after = death_steps(last_read, trace.output_keys)
    for step in forward:
        for ref in step.outputs:
            if ref.role == "activation" and ref.key not in aliases:
                mem.add(ref.key, tensor_bytes(ref), "transient")
        mem.add("scratch", forward_scratch(step), "transient")
        mem.record("forward", f"{step.module} {step.kind}".strip())
        mem.free("scratch")
        for name in dies_after.get(step.index, []):
            mem.free(name)
    return timeline
