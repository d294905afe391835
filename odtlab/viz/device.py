"""Figures of device simulations: the roofline, and temperature over a training session."""

from __future__ import annotations

from typing import Any

import numpy as np

from odtlab.viz.style import WIDE, new_axes

__all__ = ["plot_temperature", "plot_roofline"]


def plot_temperature(result: Any, ax: Any = None) -> Any:
    """Temperature over time with the throttle threshold (a :class:`~odtlab.devices.SimulationResult`).

    Raises
    ------
    ValueError
        If the simulation ran without ``thermal=True`` (there is no trace to plot).
    """
    if not result.thermal:
        raise ValueError("No temperature trace: run simulate(..., thermal=True) to plot one.")
    ax = new_axes(ax, WIDE)
    d = result.device
    t = np.concatenate([[0.0], result.end_times_s])
    temp = np.concatenate([[result.initial_temp_c], result.temperature_c])
    ax.plot(t, temp, color="tab:blue", label="temperature")
    ax.axhline(
        d.throttle_temp_c, color="tab:red", ls="--", label=f"throttle at {d.throttle_temp_c:g} °C"
    )
    if d.throttle_hysteresis_k > 0:
        ax.axhline(d.throttle_temp_c - d.throttle_hysteresis_k, color="tab:red", ls=":", alpha=0.6,
                   label="full speed again below")  # fmt: skip
    if result.throttled_steps:
        ax.fill_between(t[1:], 0, 1, where=result.throttled, step="pre", color="tab:red",
                        alpha=0.12, transform=ax.get_xaxis_transform(), label="throttled")  # fmt: skip
    ax.set_xlabel("time (s)")
    ax.set_ylabel("temperature (°C)")
    ax.set_title(f"{d.name}: {result.steps:,} {result.workload.dtype} steps")
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_roofline(devices: Any, points: Any = (), ax: Any = None) -> Any:
    """The roofline of each device, attainable MAC/s against MACs per byte, with workloads on it.

    Parameters
    ----------
    devices : sequence of DeviceProfile
        Each draws ``min(peak MAC/s, intensity x bandwidth)`` (fp32), its
        ridge point (where compute and memory take equally long) marked.
    points : mapping of str to (float, float), optional
        ``label: (MACs per byte, MAC/s reached)`` of workloads to mark.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax, WIDE)
    intensity = np.logspace(-2, 3, 200)
    for d in devices:
        peak, bw = d.macs_per_second["fp32"], d.memory_bandwidth_bytes_per_s
        line = ax.loglog(intensity, np.minimum(peak, intensity * bw), label=d.name)[0]
        ax.plot([peak / bw], [peak], "o", color=line.get_color(), ms=4)
    for label, (x, y) in dict(points).items():
        ax.plot([x], [y], "k^", ms=6)
        ax.annotate(label, (x, y), xytext=(4, -10), textcoords="offset points", fontsize="small")
    ax.set_xlabel("arithmetic intensity (MACs per byte moved)")
    ax.set_ylabel("attainable MAC/s (fp32)")
    ax.legend(loc="lower right", fontsize="small")
    return ax
