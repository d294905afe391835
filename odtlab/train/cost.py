"""Charge a device for a training run: from a memory report to a Workload and a simulation.

One training step of a recipe costs the device

* ``flops_per_step``: the report's counted FLOPs (forward + backward, from
  ``torch.utils.flop_counter``; recomputation by checkpointing included
  when the recipe's report counts it). A recipe with micro-batches measures
  one micro-batch of ``b`` examples; FLOPs grow linearly with the batch, so
  a step of ``B`` examples costs ``B / b`` times that;
* ``bytes_moved_per_step``: :func:`odtlab.devices.estimate_bytes_moved` of the
  measured weights, activations, gradients (= trainable weights), optimizer
  state and input batch. With ``n`` micro-batches the weights, the saved
  activations and the gradient accumulation cross the memory bus ``n``
  times (``(n - 1) * (2 weights + 2 activations + 2 gradients)`` more
  bytes): the traffic price of micro-batching. With checkpointing, the
  activations a segment drops are still written once in the forward; the
  recompute reads the segment's weights again and writes them a second
  time, and the backward reads them: ``3 * recomputed + weights * recompute
  / forward`` more bytes, the traffic price of checkpointing (its FLOP price
  is in ``flops_per_step``);
* ``peak_bytes``: the measured peak.

Every step of a run has the same shapes, hence the same cost, so the whole
run is simulated **once, after training**, as a Workload of ``steps`` steps;
``devices.simulate`` still walks step by step through the thermal model, so
time, energy and temperature per step are in the result's arrays.

Examples
--------
>>> from odtlab import memory, models
>>> model = models.mlp()
>>> report = memory.profile_training(model, models.example_batch("mlp", 32))
>>> job = workload_from_report(report, steps=100)
>>> job.steps, job.peak_bytes == report.totals["peak"]
(100, True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from odtlab.devices import Workload, estimate_bytes_moved
from odtlab.memory import training_flops

__all__ = ["flops_per_step", "bytes_moved_per_step", "recompute_bytes_moved", "workload_from_report"]


def flops_per_step(
    report: Any,
    model: nn.Module | None = None,
    batch: tuple[Any, torch.Tensor] | None = None,
    loss_fn: Any = None,
    *,
    batch_size: int | None = None,
) -> float:
    """FLOPs of one step of ``batch_size`` examples.

    ``report.flops["total"]`` (counted now from ``model`` and ``batch`` when
    the report has none), scaled by ``batch_size / report.micro_batch_size``
    when the report measured one micro-batch.
    """
    flops = getattr(report, "flops", None)
    if isinstance(flops, dict) and flops.get("total"):
        total = float(flops["total"])
    elif model is None or batch is None:
        raise ValueError(
            "The memory report has no FLOP count; pass the model and a batch so they can be "
            "counted, or build the report with flops=True."
        )
    else:
        total = float(training_flops(model, batch, loss_fn, lambda n, p: p.requires_grad)["total"])
    measured = getattr(report, "micro_batch_size", None)
    if batch_size is not None and measured:
        total *= batch_size / int(measured)
    return total


def bytes_moved_per_step(report: Any) -> float:
    """Bytes one step moves through memory, from a report's totals (see the module notes)."""
    t = report.totals
    weights, activations, grads = int(t["weights"]), int(t["activations"]), int(t["gradients"])
    single = estimate_bytes_moved(
        weights,
        activations,
        trainable_param_bytes=grads,
        optimizer_state_bytes=int(t["optimizer"]),
        input_bytes=int(getattr(report, "batch_bytes", 0) or 0),
    )
    n = int(getattr(report, "micro_batches", 1) or 1)
    return float(single + recompute_bytes_moved(report) + (n - 1) * (2 * weights + 2 * activations + 2 * grads))


def recompute_bytes_moved(report: Any) -> float:
    """Extra bytes one micro-batch moves because checkpointing recomputes (0 without it).

    Each recomputed tensor is written in the forward (then dropped), written
    again by the recompute and read by the backward: 3 times its bytes. The
    recompute also reads the weights of the recomputed segments again, the
    fraction ``recompute / forward`` of the FLOPs of all weights.
    """
    segments = getattr(report, "segments", None) or ()
    recomputed = sum(int(s.recompute_bytes) for s in segments)
    if not recomputed:
        return 0.0
    flops = getattr(report, "flops", None) or {}
    share = 1.0
    if flops.get("forward") and flops.get("recompute") is not None:
        share = float(flops["recompute"]) / float(flops["forward"])
    return float(3 * recomputed + share * int(report.totals["weights"]))


def workload_from_report(
    report: Any,
    *,
    steps: int,
    dtype: str = "fp32",
    flops: float | None = None,
) -> Workload:
    """The :class:`~odtlab.devices.Workload` of ``steps`` training steps measured by ``report``.

    Parameters
    ----------
    report : memory report
        ``.totals`` with ``weights``, ``gradients``, ``optimizer``,
        ``activations``, ``peak`` (bytes), ``.flops`` and ``.batch_bytes``.
    steps : int
        Number of optimizer steps (>= 1).
    dtype : str
        The arithmetic the device runs in: ``"fp32"``, ``"fp16"`` or ``"int8"``.
    flops : float, optional
        FLOPs per step, when the report has no count (see :func:`flops_per_step`).
    """
    return Workload.from_report(
        report,
        flops_per_step=flops_per_step(report) if flops is None else float(flops),
        bytes_moved_per_step=bytes_moved_per_step(report),
        steps=steps,
        dtype=dtype,
    )
