"""Real peak memory of one training step (or one inference) on the CPU, from ``torch.profiler``.

Method:

1. copy the model (so the real optimizer step cannot change the user's
   weights) and mark the trainable parameters;
2. run one step, ``loss_fn(model(x), y).backward(); optimizer.step()``,
   inside ``torch.profiler.profile(activities=[ProfilerActivity.CPU],
   profile_memory=True)``; by default this is the *second* step (the
   steady state of training: the optimizer state made by a first, unprofiled
   step is resident, and ``zero_grad(set_to_none=True)`` freed the gradients);
3. every allocation and free of PyTorch's CPU allocator is an event with a
   signed size; sorted by time, their running sum is the memory allocated
   *since the profiler started*, and its maximum is the extra peak;
4. add what was already resident when the profiler started: the weights,
   the buffers, the batch and, in the steady state, the optimizer state
   (each storage once).

The profiler's C++ side prints start/stop lines on the process's standard
error; they are silenced while it runs (file descriptor 2 is redirected).

So ``peak = resident at start + max over time of the cumulative sum of
allocation deltas``. This sees every tensor PyTorch allocates, kernel
scratch buffers included; it does not see memory that libraries allocate
behind PyTorch's back.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from odtlab.memory._setup import (
    LossFn,
    TrainableSpec,
    check_batch,
    forked_rng,
    resolve_loss,
    select_trainable,
    storage_key,
)
from odtlab.memory.errors import MemoryArgumentError
from odtlab.memory.optimizer_state import OptimizerSpec, make_optimizer

__all__ = ["profiled_training_peak", "profiled_inference_peak", "allocation_deltas"]


def allocation_deltas(prof: profile) -> list[tuple[int, int]]:
    """``(time in ns, signed bytes)`` of every CPU allocation (+) and free (-), in time order."""
    from torch._C._profiler import _EventType

    events: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        ev = stack.pop()
        if ev.tag == _EventType.Allocation and ev.extra_fields.device.type == "cpu":
            events.append((ev.start_time_ns, int(ev.extra_fields.alloc_size)))
        stack.extend(ev.children)
    events.sort(key=lambda e: e[0])
    return events


def _peak_of(prof: profile) -> int:
    running = peak = 0
    for _, delta in allocation_deltas(prof):
        running += delta
        peak = max(peak, running)
    return peak


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ start/stop lines) while inside."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _resident(tensors: Iterable[torch.Tensor]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        seen[storage_key(t)] = int(t.untyped_storage().nbytes())
    return sum(seen.values())


def _cpu_copy(model: nn.Module) -> nn.Module:
    if any(t.device.type != "cpu" for t in (*model.parameters(), *model.buffers())):
        raise MemoryArgumentError(
            "the profiler check runs on the CPU: pass a model whose parameters and buffers are "
            "on 'cpu' (build it with device='cpu')"
        )
    return copy.deepcopy(model)


def profiled_training_peak(
    model: nn.Module,
    example_batch: tuple[Any, torch.Tensor],
    loss_fn: LossFn | None = None,
    optimizer: OptimizerSpec = "sgd",
    trainable: TrainableSpec = None,
    *,
    steady_state: bool = True,
) -> int:
    """Peak bytes of one real CPU training step, measured with ``torch.profiler``.

    The step runs on a deep copy of ``model``, in train mode. With
    ``steady_state=True`` (default) a first step runs unprofiled, the
    gradients are set to ``None``, and the second step is measured, its
    optimizer state already resident; with ``False`` the measured step is the
    first one, whose state is created inside ``optimizer.step()``.

    Returns
    -------
    int
        Weights + buffers + batch + the largest amount allocated on top of
        them at any moment of forward, backward and ``optimizer.step()``.
    """
    inputs, targets = check_batch(example_batch)
    loss = resolve_loss(loss_fn)
    chosen = select_trainable(model, trainable)
    net = _cpu_copy(model).train()
    for name, p in net.named_parameters():
        p.requires_grad_(chosen[name])
        p.grad = None
    opt = make_optimizer(optimizer, [p for n, p in net.named_parameters() if chosen[n]])
    with forked_rng(torch.device("cpu")):
        if steady_state:
            loss(net(inputs), targets).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
        start = _resident([*net.parameters(), *net.buffers(), inputs, targets, *state])
        with quiet_stderr(), profile(
            activities=[ProfilerActivity.CPU], profile_memory=True
        ) as prof:
            loss(net(inputs), targets).backward()
            opt.step()
    return start + _peak_of(prof)


def profiled_inference_peak(model: nn.Module, inputs: Any) -> int:
    """Peak bytes of one forward pass under ``torch.no_grad()`` (eval mode), from the profiler.

    Returns weights + buffers + inputs + the largest amount allocated on top.
    """
    net = _cpu_copy(model).eval()
    start = _resident([*net.parameters(), *net.buffers(), inputs])
    with quiet_stderr(), torch.no_grad(), profile(
        activities=[ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        net(inputs)
    return start + _peak_of(prof)
