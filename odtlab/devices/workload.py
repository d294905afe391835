"""`Workload`: what one training job asks of a device, per step.

A workload is four numbers and a data type: FLOPs per step, bytes moved per
step, peak memory, number of steps. The memory module measures the peak,
``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs, and
:func:`estimate_bytes_moved` gives a first-order count of memory traffic.

FLOPs and MACs
--------------
One multiply-accumulate (MAC) is two floating-point operations (FLOPs), a
multiply and an add. PyTorch's ``FlopCounterMode`` follows this convention,
so ``macs = flops / 2``. Device throughput is quoted in MAC/s.

Examples
--------
>>> w = Workload(flops_per_step=2e6, bytes_moved_per_step=1e5,
...              peak_bytes=200_000, steps=100, dtype="int8")
>>> w.macs_per_step
1000000.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from odtlab.devices.profile import DTYPES
from odtlab.devices.validation import MemoryLevelError, per_level
from odtlab.units import MEMORY_CATEGORIES

__all__ = ["Workload", "estimate_bytes_moved"]


@dataclass(frozen=True)
class Workload:
    """The cost of one training job, per optimizer step.

    Attributes
    ----------
    flops_per_step : float
        Floating-point operations of one step (forward + backward + update);
        2 FLOPs = 1 MAC.
    bytes_moved_per_step : float
        Bytes read from and written to memory in one step (see
        :func:`estimate_bytes_moved`).
    peak_bytes : int
        The most memory the job holds at once, in bytes.
    steps : int, default 1
        Number of optimizer steps.
    dtype : str, default "fp32"
        Data type the MACs run in: ``"fp32"``, ``"fp16"`` or ``"int8"``.
    breakdown : Mapping[str, int] or None
        Memory at the peak by category (``weights``, ``gradients``,
        ``optimizer``, ``activations``), in bytes; used to explain a misfit.
    bytes_by_level : Mapping[str, float] or None
        Where the bytes of one step come from: bytes per memory level
        (``"sram"``, ``"dram"``, ``"flash"``; see
        :func:`~odtlab.devices.energy.bytes_by_level`). Their sum may not
        exceed ``bytes_moved_per_step``; bytes not placed are charged the
        device's ``energy_per_byte_j``. ``None`` (the default): no split,
        every byte costs ``energy_per_byte_j``, as before levels existed.
        The split changes energy only, never time.
    """

    flops_per_step: float
    bytes_moved_per_step: float
    peak_bytes: int
    steps: int = 1
    dtype: str = "fp32"
    breakdown: Mapping[str, int] | None = field(default=None, compare=False)
    bytes_by_level: Mapping[str, float] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        for name in ("flops_per_step", "bytes_moved_per_step"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(f"Workload: {name} must be a finite number, got {value!r}.")
            if value < 0:
                raise ValueError(f"Workload: {name} must be >= 0, got {value!r}.")
            object.__setattr__(self, name, float(value))
        if self.flops_per_step == 0 and self.bytes_moved_per_step == 0:
            raise ValueError(
                "Workload: flops_per_step and bytes_moved_per_step are both 0, so a step takes "
                "no time; give at least one of them."
            )
        peak = self.peak_bytes
        if (
            isinstance(peak, bool)
            or not isinstance(peak, (int, float))
            or peak < 0
            or peak != int(peak)
        ):
            raise ValueError(f"Workload: peak_bytes must be a whole number >= 0, got {peak!r}.")
        object.__setattr__(self, "peak_bytes", int(peak))
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"Workload: steps must be an int >= 1, got {steps!r}.")
        if self.dtype not in DTYPES:
            raise ValueError(f"Workload: dtype must be one of {list(DTYPES)}, got {self.dtype!r}.")
        if self.breakdown is not None:
            object.__setattr__(
                self, "breakdown", {str(k): int(v) for k, v in self.breakdown.items()}
            )
        if self.bytes_by_level is not None:
            split = per_level("Workload", "bytes_by_level", self.bytes_by_level, positive=False)
            placed = sum(split.values())
            if placed > self.bytes_moved_per_step * (1 + 1e-9):
                raise MemoryLevelError(
                    f"Workload: bytes_by_level places {placed:.6g} bytes, more than "
                    f"bytes_moved_per_step ({self.bytes_moved_per_step:.6g}). The levels split "
                    "the bytes a step moves; set bytes_moved_per_step=sum(bytes_by_level.values())."
                )
            object.__setattr__(self, "bytes_by_level", split)

    @property
    def macs_per_step(self) -> float:
        """Multiply-accumulates per step: ``flops_per_step / 2``."""
        return self.flops_per_step / 2

    @property
    def total_flops(self) -> float:
        """FLOPs of the whole job: ``flops_per_step * steps``."""
        return self.flops_per_step * self.steps

    @property
    def arithmetic_intensity(self) -> float:
        """MACs per byte moved; compare with a device's MAC/s over bytes/s (the ridge point)."""
        if self.bytes_moved_per_step == 0:
            return math.inf
        return self.macs_per_step / self.bytes_moved_per_step

    @classmethod
    def from_report(
        cls,
        report: Any,
        *,
        flops_per_step: float,
        bytes_moved_per_step: float,
        steps: int = 1,
        dtype: str = "fp32",
        bytes_by_level: Mapping[str, float] | None = None,
    ) -> Workload:
        """Build a workload from a memory report (anything with a ``.totals`` mapping).

        The peak is ``report.totals["peak"]``; the categories ``weights``,
        ``gradients``, ``optimizer`` and ``activations`` become the breakdown.
        """
        totals = getattr(report, "totals", None)
        if not isinstance(totals, Mapping) or "peak" not in totals:
            raise TypeError(
                "Workload.from_report needs an object with a .totals mapping that has a 'peak' "
                "entry, such as the report of odtlab.memory.profile_training."
            )
        return cls(
            flops_per_step=flops_per_step,
            bytes_moved_per_step=bytes_moved_per_step,
            peak_bytes=int(totals["peak"]),
            steps=steps,
            dtype=dtype,
            breakdown=breakdown_from_totals(totals),
            bytes_by_level=bytes_by_level,
        )


def breakdown_from_totals(totals: Mapping[str, Any]) -> dict[str, int]:
    """The category entries of a report's totals, in bytes.

    Only :data:`MEMORY_CATEGORIES` are kept when any of them is present;
    otherwise every entry except ``peak`` and ``total`` is kept.
    """
    keys = [k for k in MEMORY_CATEGORIES if k in totals]
    if not keys:
        keys = [k for k in totals if str(k) not in ("peak", "total")]
    out: dict[str, int] = {}
    for k in keys:
        try:
            out[str(k)] = int(totals[k])
        except (TypeError, ValueError):
            continue
    return out


def estimate_bytes_moved(
    param_bytes: int,
    activation_bytes: int,
    *,
    trainable_param_bytes: int | None = None,
    optimizer_state_bytes: int = 0,
    input_bytes: int = 0,
) -> int:
    """First-order count of the bytes one training step moves through memory.

    Each tensor is assumed to cross the memory bus once per use, with no
    reuse from caches (caches can only lower the count; recomputation, as in
    checkpointing, raises it):

    * weights are read twice: in the forward and in the backward pass;
    * saved activations are written in the forward and read in the backward;
    * gradients of trainable weights are written in the backward and read by
      the optimizer;
    * trainable weights are read and written by the update;
    * optimizer state (momentum, Adam moments) is read and written once;
    * the input batch is read once.

    Parameters
    ----------
    param_bytes : int
        Bytes of all weights.
    activation_bytes : int
        Bytes of activations saved for the backward pass.
    trainable_param_bytes : int, optional
        Bytes of the weights being updated; defaults to ``param_bytes``
        (full fine-tuning). Bias-only or last-layer recipes make it small.
    optimizer_state_bytes : int, default 0
        Bytes of optimizer state (0 for plain SGD, 2x trainable for Adam).
    input_bytes : int, default 0
        Bytes of the input batch.

    Returns
    -------
    int
        ``2*param + 2*activation + 4*trainable + 2*optimizer + input`` bytes.

    Examples
    --------
    >>> estimate_bytes_moved(1000, 500)          # full fine-tuning, SGD
    7000
    >>> estimate_bytes_moved(1000, 500, trainable_param_bytes=10)
    3040
    """
    trainable = param_bytes if trainable_param_bytes is None else trainable_param_bytes
    parts = {
        "param_bytes": param_bytes,
        "activation_bytes": activation_bytes,
        "trainable_param_bytes": trainable,
        "optimizer_state_bytes": optimizer_state_bytes,
        "input_bytes": input_bytes,
    }
    for name, value in parts.items():
        if value < 0:
            raise ValueError(f"estimate_bytes_moved: {name} must be >= 0, got {value}.")
    gradients = 2 * trainable  # written in backward, read by the optimizer
    update = 2 * trainable  # weights read and written by the update
    return int(
        2 * param_bytes
        + 2 * activation_bytes
        + gradients
        + update
        + 2 * optimizer_state_bytes
        + input_bytes
    )
