"""`SimulationResult`: the per-step trace and totals that :func:`simulate` returns.

See :mod:`odtlab.devices.simulator` for the model behind the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from odtlab.devices.fit import FitVerdict
from odtlab.devices.profile import DeviceProfile
from odtlab.devices.workload import Workload
from odtlab.units import format_joules, format_seconds
from odtlab.viz import plot_temperature

__all__ = ["SimulationResult"]


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What :func:`simulate` predicts, step by step and in total.

    Attributes
    ----------
    device : DeviceProfile
        The device simulated.
    workload : Workload
        The job simulated.
    step_time_s : numpy.ndarray
        Seconds each step takes (longer while throttled).
    step_energy_j : numpy.ndarray
        Joules each step uses.
    temperature_c : numpy.ndarray
        Temperature at the end of each step, °C (NaN when ``thermal=False``).
    throttled : numpy.ndarray
        ``True`` for steps that ran (at least partly) throttled.
    compute_time_s, memory_time_s : float
        Compute and memory time of one step at full speed.
    ambient_c, initial_temp_c : float
        Ambient and starting temperature, °C.
    thermal : bool
        Whether the thermal model ran.
    fit : FitVerdict or None
        The memory check, when it ran.
    """

    device: DeviceProfile
    workload: Workload
    step_time_s: np.ndarray
    step_energy_j: np.ndarray
    temperature_c: np.ndarray
    throttled: np.ndarray
    compute_time_s: float
    memory_time_s: float
    ambient_c: float
    initial_temp_c: float
    thermal: bool
    fit: FitVerdict | None = None

    @property
    def bound(self) -> str:
        """``"compute"`` or ``"memory"``: which roof limits a step."""
        return "compute" if self.compute_time_s >= self.memory_time_s else "memory"

    @property
    def steps(self) -> int:
        """Number of steps simulated."""
        return int(self.step_time_s.size)

    @property
    def end_times_s(self) -> np.ndarray:
        """Time at the end of each step, in seconds from the start."""
        return np.cumsum(self.step_time_s)

    @property
    def total_time_s(self) -> float:
        """Seconds for the whole job."""
        return float(self.step_time_s.sum())

    @property
    def total_energy_j(self) -> float:
        """Joules for the whole job."""
        return float(self.step_energy_j.sum())

    @property
    def energy_wh(self) -> float:
        """Energy of the whole job in watt-hours (1 Wh = 3600 J)."""
        return self.total_energy_j / 3600.0

    @property
    def average_power_w(self) -> float:
        """Mean power over the job, in watts."""
        return self.total_energy_j / self.total_time_s

    @property
    def battery_percent(self) -> float | None:
        """Share of a full battery the job uses, in percent; ``None`` without a battery."""
        if self.device.battery_wh is None:
            return None
        return 100.0 * self.energy_wh / self.device.battery_wh

    @property
    def throttled_steps(self) -> int:
        """Number of steps that ran throttled."""
        return int(np.count_nonzero(self.throttled))

    @property
    def throttled_fraction(self) -> float:
        """Share of steps that ran throttled."""
        return self.throttled_steps / self.steps

    @property
    def peak_temperature_c(self) -> float:
        """Highest temperature reached, °C (NaN without the thermal model)."""
        if not self.thermal:
            return math.nan
        return float(max(self.initial_temp_c, float(self.temperature_c.max())))

    def __str__(self) -> str:
        d, w = self.device, self.workload
        base = max(self.compute_time_s, self.memory_time_s)
        lines = [
            f"Simulated {self.steps:,} {w.dtype} training steps on {d.name} (a model, not a measurement)",
            f"  per step     {format_seconds(self.compute_time_s)} compute, "
            f"{format_seconds(self.memory_time_s)} memory -> {self.bound}-bound, "
            f"{format_seconds(base)} at full speed",
            f"  total time   {format_seconds(self.total_time_s)}"
            + (
                f" ({self.throttled_fraction:.0%} of steps throttled to x{d.throttle_factor:g} speed)"
                if self.throttled_steps
                else ""
            ),
            f"  energy       {format_joules(self.total_energy_j)} ({_wh(self.energy_wh)}), "
            f"average power {self.average_power_w:.3g} W",
        ]
        if self.battery_percent is not None:
            lines.append(f"  battery      {self.battery_percent:.3g} % of {d.battery_wh:g} Wh")
        if self.thermal:
            lines.append(
                f"  temperature  {self.initial_temp_c:.1f} °C -> {float(self.temperature_c[-1]):.1f} °C "
                f"(peak {self.peak_temperature_c:.1f} °C; throttles at {d.throttle_temp_c:g} °C, "
                f"ambient {self.ambient_c:g} °C)"
            )
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        """Plot the temperature over time with the throttle threshold (:func:`odtlab.viz.plot_temperature`).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; a new figure is made when omitted.

        Returns
        -------
        matplotlib.axes.Axes
        """
        return plot_temperature(self, ax)


def _wh(wh: float) -> str:
    """Watt-hours, as mWh below one Wh."""
    return f"{wh:.3g} Wh" if wh >= 1 else f"{wh * 1e3:.3g} mWh"
