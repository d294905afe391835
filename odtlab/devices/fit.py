"""Does a training job fit in a device's memory? And if not, what to try.

:func:`check_fit` compares the peak memory of a job with the device's
``training_memory_bytes``. On a microcontroller (``kind="mcu"``) the frozen
weights of a memory report (``report.frozen_weight_bytes``) are read from
flash, so they count against ``flash_bytes`` and not against the SRAM budget. It accepts three kinds of input:

* a memory report: any object with a ``.totals`` mapping that holds
  ``"peak"`` and, ideally, ``"weights"``, ``"gradients"``, ``"optimizer"``
  and ``"activations"`` (the report of ``odtlab.memory.profile_training``);
* a :class:`~odtlab.devices.workload.Workload`;
* a plain ``int``: peak bytes.

When the job does not fit it raises :class:`~odtlab.errors.DoesNotFit`
naming the excess in bytes, the largest category and a recipe that shrinks
it. The exception carries the verdict as ``err.verdict``.

Examples
--------
>>> from odtlab import devices
>>> v = devices.check_fit(200 * 1024, "stm32f746")
>>> v.headroom_bytes                       # 256 KiB budget - 200 KiB
57344
>>> devices.fits(300 * 1024, "mcu")
False
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from odtlab.devices.profile import DeviceProfile
from odtlab.devices.registry import get
from odtlab.devices.workload import Workload, breakdown_from_totals
from odtlab.errors import DoesNotFit
from odtlab.units import format_bytes

__all__ = ["FitVerdict", "check_fit", "fits", "RECIPE_HINTS"]

RECIPE_HINTS: dict[str, str] = {
    "activations": (
        "shrink the saved activations: a smaller batch, micro-batching with gradient "
        "accumulation, activation checkpointing, or a recipe that saves fewer of them "
        "(bias-only, TinyTL lite residual learning)"
    ),
    "optimizer": (
        "shrink the optimizer state: plain SGD (no state) or SGD with momentum "
        "(one copy) instead of Adam (two copies of every trainable weight)"
    ),
    "weights": (
        "shrink the weights: train fewer of them (bias-only, a sparse update: frozen int8 "
        "weights stay in flash on a microcontroller), a smaller model, or int8 weights "
        "instead of fp32 (4x less)"
    ),
    "gradients": (
        "shrink the gradients: freeze layers (last-layer or bias-only training), or "
        "a sparse update that trains only a few layers or channels"
    ),
}
"""What to try when a category of memory is the largest."""

_GENERIC_HINT = (
    "pass a memory report (odtlab.memory.profile_training) or a Workload with a breakdown "
    "to see which category to cut; common cures are a smaller batch, freezing layers, "
    "SGD instead of Adam and int8 weights"
)


@dataclass(frozen=True)
class FitVerdict:
    """The answer of :func:`check_fit`.

    Attributes
    ----------
    fits : bool
        ``peak_bytes <= budget_bytes``.
    peak_bytes : int
        Peak memory of the job, in bytes.
    budget_bytes : int
        The device's ``training_memory_bytes``.
    headroom_bytes : int
        ``budget_bytes - peak_bytes``; negative when the job is over.
    utilisation : float
        ``peak_bytes / budget_bytes`` (1.0 = exactly full).
    largest_category : str or None
        The largest entry of the breakdown, when one was given.
    largest_bytes : int or None
        Its size in bytes.
    device_name : str
        Name of the device checked.
    breakdown : dict[str, int]
        Memory by category, in bytes (empty when unknown).
    flash_bytes : int
        Frozen weights read from flash instead of SRAM (microcontrollers
        only; 0 elsewhere). They are *not* in ``peak_bytes``.
    """

    fits: bool
    peak_bytes: int
    budget_bytes: int
    headroom_bytes: int
    utilisation: float
    largest_category: str | None
    largest_bytes: int | None
    device_name: str
    breakdown: dict[str, int] = field(default_factory=dict, compare=False)
    flash_bytes: int = 0

    @property
    def over_by_bytes(self) -> int:
        """Bytes above the budget (0 when it fits)."""
        return max(0, -self.headroom_bytes)

    def hint(self) -> str:
        """What to try to shrink the largest category."""
        if self.largest_category is None:
            return _GENERIC_HINT
        return RECIPE_HINTS.get(self.largest_category, _GENERIC_HINT)

    def __str__(self) -> str:
        where = "SRAM" if self.flash_bytes else "RAM"
        head = (
            f"{'Fits' if self.fits else 'Does NOT fit'} on {self.device_name}: {where} "
            f"{format_bytes(self.peak_bytes)} of {format_bytes(self.budget_bytes)} "
            f"({self.utilisation:.0%} used)"
        )
        if self.flash_bytes:
            head += (
                f"; the frozen weights ({format_bytes(self.flash_bytes)}) stay in flash, "
                "outside this budget"
            )
        if self.fits:
            head += f", {format_bytes(self.headroom_bytes)} to spare"
        else:
            head += f", over by {self.over_by_bytes} bytes ({format_bytes(self.over_by_bytes)})"
        if self.breakdown:
            parts = ", ".join(
                f"{k} {format_bytes(v)}"
                for k, v in sorted(self.breakdown.items(), key=lambda kv: -kv[1])
            )
            head += f"\n  by category: {parts}"
        return head


def _peak_and_breakdown(job: Any) -> tuple[int, dict[str, int]]:
    """Peak bytes and breakdown from a report, a Workload, a mapping or an int."""
    if isinstance(job, Workload):
        return job.peak_bytes, dict(job.breakdown or {})
    if isinstance(job, bool):
        raise TypeError("check_fit got a bool; pass peak bytes as an int.")
    if isinstance(job, float) and job.is_integer():
        job = int(job)
    if isinstance(job, int) or (hasattr(job, "__index__") and not isinstance(job, Mapping)):
        peak = int(job)
        if peak < 0:
            raise ValueError(f"Peak memory must be >= 0 bytes, got {peak}.")
        return peak, {}
    totals = getattr(job, "totals", job)
    if isinstance(totals, Mapping) and "peak" in totals:
        return int(totals["peak"]), breakdown_from_totals(totals)
    raise TypeError(
        f"check_fit cannot read a peak from {type(job).__name__}. Pass a memory report "
        "(an object whose .totals mapping has a 'peak' entry, e.g. from "
        "odtlab.memory.profile_training), a Workload, or the peak in bytes as an int."
    )


def verdict(job: Any, device: DeviceProfile | str) -> FitVerdict:
    """The :class:`FitVerdict` for ``job`` on ``device``, without raising."""
    profile = get(device)
    peak, breakdown = _peak_and_breakdown(job)
    flash = 0
    if profile.kind == "mcu" and profile.flash_bytes:
        # A microcontroller executes from flash: frozen (read-only) weights stay there
        # and only what training writes needs SRAM (the 256 KB paper's memory model).
        flash = min(int(getattr(job, "frozen_weight_bytes", 0) or 0), peak)
        if flash:
            peak -= flash
            if "weights" in breakdown:
                breakdown["weights"] = max(0, breakdown["weights"] - flash)
    budget = profile.training_memory_bytes
    largest: tuple[str, int] | None = None
    if breakdown:
        largest = max(breakdown.items(), key=lambda kv: kv[1])
    return FitVerdict(
        fits=peak <= budget,
        peak_bytes=peak,
        budget_bytes=budget,
        headroom_bytes=budget - peak,
        utilisation=peak / budget,
        largest_category=largest[0] if largest else None,
        largest_bytes=largest[1] if largest else None,
        device_name=profile.name,
        breakdown=breakdown,
        flash_bytes=flash,
    )


def check_fit(job: Any, device: DeviceProfile | str) -> FitVerdict:
    """Check that a training job fits in the device's training memory budget.

    Parameters
    ----------
    job : memory report, Workload or int
        Anything with a ``.totals`` mapping holding ``"peak"`` (bytes), a
        :class:`Workload`, or the peak in bytes.
    device : DeviceProfile or str
        A profile or a registered name (``"mcu"``, ``"rpi4"``, ...).

    Returns
    -------
    FitVerdict
        When the peak is within ``device.training_memory_bytes``.

    Raises
    ------
    DoesNotFit
        When the peak is over the budget. The message gives the excess in
        bytes and KiB/MiB, the budget, the largest category and what to try;
        ``err.verdict`` holds the :class:`FitVerdict`.
    """
    v = verdict(job, device)
    flash_capacity = get(device).flash_bytes
    if v.flash_bytes > flash_capacity:
        err = DoesNotFit(
            f"The frozen weights need {format_bytes(v.flash_bytes)} ({v.flash_bytes} bytes) of "
            f"flash, but {v.device_name} has {format_bytes(flash_capacity)}: over by "
            f"{v.flash_bytes - flash_capacity} bytes. What to try: a smaller model, or int8 "
            "weights (the engine accounting) instead of fp32."
        )
        err.verdict = v  # type: ignore[attr-defined]
        raise err
    if v.fits:
        return v
    lines = [
        f"Training needs {format_bytes(v.peak_bytes)} ({v.peak_bytes} bytes) at its peak, but "
        f"{v.device_name} allows {format_bytes(v.budget_bytes)} ({v.budget_bytes} bytes) for "
        f"training: over by {v.over_by_bytes} bytes ({format_bytes(v.over_by_bytes)}, "
        f"{v.utilisation:.0%} of the budget)."
    ]
    if v.largest_category is not None and v.largest_bytes is not None:
        share = v.largest_bytes / v.peak_bytes if v.peak_bytes else 0.0
        lines.append(
            f"Largest category: {v.largest_category}, {format_bytes(v.largest_bytes)} "
            f"({v.largest_bytes} bytes, {share:.0%} of the peak)."
        )
    rest = v.peak_bytes - sum(v.breakdown.values())
    if v.breakdown and v.largest_bytes is not None and rest > v.largest_bytes:
        lines.append(
            f"Most of the peak, {format_bytes(rest)} ({rest / v.peak_bytes:.0%}), is in no "
            "category: the batch and the short-lived tensors alive at the peak moment (a "
            "layer's output, the gradients flowing back); a smaller batch or input "
            "resolution shrinks them."
        )
        lines.append(
            "What to try: a smaller batch (or MicroBatch(n) to keep the batch and split the "
            f"step), a smaller input resolution; then {v.hint()}."
        )
    else:
        lines.append(f"What to try: {v.hint()}.")
    err = DoesNotFit("\n".join(lines))
    err.verdict = v  # type: ignore[attr-defined]
    raise err


def fits(job: Any, device: DeviceProfile | str) -> bool:
    """``True`` when ``job`` fits in the device's training memory; never raises ``DoesNotFit``."""
    return verdict(job, device).fits
