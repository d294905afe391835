"""`TrainingReport`: what one run of a recipe on a device gives back.

Three kinds of numbers sit side by side, and the report says which is which:

* **measured on the host**: the loss of every step, the test accuracy, the
  memory of one training step (by category, from the recipe's memory
  report) and the host's wall-clock time;
* **simulated on the device**: time, energy, battery and temperature from
  :func:`odtlab.devices.simulate` for the same number of steps (a model,
  not a measurement; see :mod:`odtlab.devices.simulator`);
* **the fit verdict**: whether the measured peak is within the device's
  training memory budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from odtlab.devices import (
    DeviceProfile,
    SimulationResult,
    Workload,
    format_bytes,
    format_joules,
    format_seconds,
    simulate,
)
from odtlab.devices import verdict as fit_verdict
from odtlab.train.cost import workload_from_report
from odtlab.viz import plot_training

__all__ = ["TrainingReport", "build_report"]


@dataclass
class TrainingReport:
    """The result of :meth:`odtlab.train.Trainer.fit`.

    Attributes
    ----------
    recipe : str
        Name of the recipe.
    device : str or None
        Name of the simulated device (``None``: host only, nothing simulated).
    steps : int
        Optimizer steps of the whole run (a resumed run counts from step 0).
    batch_size : int
        Examples per step.
    loss_curve : list of float
        Training loss of each step, step 1 first.
    accuracy_curve : list of (int, float)
        ``(step, test accuracy in [0, 1])`` at each evaluation.
    final_accuracy : float or None
        Test accuracy after the last step (``None`` without test data).
    memory : dict
        Bytes of one training step by category, ``"weights"``,
        ``"gradients"``, ``"optimizer"``, ``"activations"``, and ``"peak"``.
    flops_per_step, bytes_moved_per_step : float
        The workload charged to the device per step (FLOPs, bytes).
    fits : bool or None
        Peak within the device's training budget (``None`` without a device).
    budget_bytes : int or None
        The device's training memory budget in bytes.
    flash_bytes : int
        Frozen weights a microcontroller reads from flash: part of
        ``memory["peak"]`` that does not count against ``budget_bytes``.
    sim_time_s, sim_energy_j : float
        Simulated total time (s) and energy (J) on the device (NaN without one).
    battery_percent : float or None
        Share of the device's battery used, % (``None`` without a battery).
    peak_temperature_c : float
        Highest simulated temperature, °C (NaN without a device).
    throttled_steps : int
        Simulated steps that ran thermally throttled.
    host_wall_time_s : float
        Seconds the host spent in ``fit`` (measured; this run only).
    resumed_from : int or None
        Step of the checkpoint the run resumed from, if it did.
    workload, simulation
        The :class:`~odtlab.devices.Workload` and
        :class:`~odtlab.devices.SimulationResult` behind the device numbers
        (per-step arrays: ``simulation.step_energy_j``, ``.temperature_c``...).
    """

    recipe: str
    device: str | None
    steps: int
    batch_size: int
    loss_curve: list[float]
    accuracy_curve: list[tuple[int, float]]
    final_accuracy: float | None
    memory: dict[str, int]
    flops_per_step: float
    bytes_moved_per_step: float
    fits: bool | None
    budget_bytes: int | None
    sim_time_s: float
    sim_energy_j: float
    battery_percent: float | None
    peak_temperature_c: float
    throttled_steps: int
    host_wall_time_s: float
    resumed_from: int | None = None
    flash_bytes: int = 0
    workload: Workload | None = field(default=None, repr=False)
    simulation: SimulationResult | None = field(default=None, repr=False)

    @property
    def peak_bytes(self) -> int:
        """Peak bytes of one training step (``memory["peak"]``)."""
        return int(self.memory.get("peak", 0))

    @property
    def final_loss(self) -> float:
        """Loss of the last step (NaN if no step ran)."""
        return self.loss_curve[-1] if self.loss_curve else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (no workload or simulation objects)."""
        return {
            "recipe": self.recipe,
            "device": self.device,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "loss_curve": list(self.loss_curve),
            "accuracy_curve": [[int(s), float(a)] for s, a in self.accuracy_curve],
            "final_accuracy": self.final_accuracy,
            "memory": dict(self.memory),
            "peak_bytes": self.peak_bytes,
            "flops_per_step": self.flops_per_step,
            "bytes_moved_per_step": self.bytes_moved_per_step,
            "fits": self.fits,
            "budget_bytes": self.budget_bytes,
            "sim_time_s": self.sim_time_s,
            "sim_energy_j": self.sim_energy_j,
            "battery_percent": self.battery_percent,
            "peak_temperature_c": self.peak_temperature_c,
            "throttled_steps": self.throttled_steps,
            "host_wall_time_s": self.host_wall_time_s,
            "resumed_from": self.resumed_from,
        }

    def __str__(self) -> str:
        where = self.device or "the host only (no device simulated)"
        lines = [f"Training report: recipe {self.recipe!r} on {where}"]
        lines.append(
            f"  steps        {self.steps} x batch {self.batch_size}, final loss "
            f"{self.final_loss:.4g}"
            + (f" (resumed from step {self.resumed_from})" if self.resumed_from else "")
        )
        if self.final_accuracy is not None:
            lines.append(f"  accuracy     {self.final_accuracy:.2%} on the test data")
        m = self.memory
        parts = ", ".join(
            f"{k} {format_bytes(m[k])}"
            for k in ("weights", "gradients", "optimizer", "activations")
            if k in m
        )
        lines.append(f"  memory       step peak {format_bytes(self.peak_bytes)} ({parts})")
        if self.fits is not None and self.budget_bytes is not None:
            verdict = "fits" if self.fits else "does NOT fit"
            ram = self.peak_bytes - self.flash_bytes
            where = "SRAM" if self.flash_bytes else "RAM"
            lines.append(
                f"  {where:<12} {format_bytes(ram)} of {format_bytes(self.budget_bytes)} on "
                f"{self.device}: {verdict} ({ram / self.budget_bytes:.0%} used)"
            )
            if self.flash_bytes:
                lines.append(
                    f"  flash        {format_bytes(self.flash_bytes)} of frozen weights, read in "
                    "place (not in SRAM)"
                )
        if self.device is not None and not math.isnan(self.sim_time_s):
            lines.append(
                f"  device time  {format_seconds(self.sim_time_s)} simulated "
                f"({format_seconds(self.sim_time_s / max(self.steps, 1))} per step, "
                f"{self.flops_per_step:.3g} FLOPs/step)"
            )
            energy = f"  energy       {format_joules(self.sim_energy_j)}"
            if self.battery_percent is not None:
                energy += f", {self.battery_percent:.3g} % of the battery"
            lines.append(energy)
            if not math.isnan(self.peak_temperature_c):
                lines.append(
                    f"  temperature  peak {self.peak_temperature_c:.1f} °C, "
                    f"{self.throttled_steps} throttled steps"
                )
        lines.append(f"  host time    {format_seconds(self.host_wall_time_s)} (measured)")
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        """Plot the loss curve and, on a second y axis, the test accuracy.

        Returns the loss axes (the accuracy axes is its ``twinx``); see
        :func:`odtlab.viz.plot_training`.
        """
        return plot_training(self, ax)


def build_report(
    *,
    recipe: str,
    device: DeviceProfile | None,
    steps: int,
    batch_size: int,
    memory_report: Any,
    flops: float,
    losses: list[float],
    accuracies: list[tuple[int, float]],
    fits: bool | None,
    dtype: str = "fp32",
    wall_time_s: float = 0.0,
    resumed_from: int | None = None,
) -> TrainingReport:
    """Simulate ``steps`` steps of the measured workload on ``device`` and assemble the report."""
    workload = workload_from_report(memory_report, steps=max(steps, 1), dtype=dtype, flops=flops)
    sim = None if device is None else simulate(workload, device, check_memory=False)
    return TrainingReport(
        recipe=recipe,
        device=None if device is None else device.name,
        steps=steps,
        batch_size=batch_size,
        loss_curve=losses,
        accuracy_curve=accuracies,
        final_accuracy=accuracies[-1][1] if accuracies else None,
        memory={k: int(v) for k, v in memory_report.totals.items()},
        flops_per_step=workload.flops_per_step,
        bytes_moved_per_step=workload.bytes_moved_per_step,
        fits=fits,
        budget_bytes=None if device is None else device.training_memory_bytes,
        sim_time_s=math.nan if sim is None else sim.total_time_s,
        sim_energy_j=math.nan if sim is None else sim.total_energy_j,
        battery_percent=None if sim is None else sim.battery_percent,
        peak_temperature_c=math.nan if sim is None else sim.peak_temperature_c,
        throttled_steps=0 if sim is None else sim.throttled_steps,
        host_wall_time_s=wall_time_s,
        resumed_from=resumed_from,
        flash_bytes=0 if device is None else fit_verdict(memory_report, device).flash_bytes,
        workload=workload,
        simulation=sim,
    )
