"""Figures of phone-usage traces and training schedules: a week at a glance."""

from __future__ import annotations

from typing import Any

import numpy as np

from odtlab.viz.style import WIDE, new_axes

__all__ = ["plot_usage"]

_ROWS = (("screen on", "screen_on", "tab:orange"), ("charging", "charging", "tab:green"),
         ("Wi-Fi", "unmetered", "tab:blue"))  # fmt: skip


def plot_usage(trace: Any, ax: Any = None, *, training: Any = None) -> Any:
    """A week of a :class:`~odtlab.devices.traces.UsageTrace`: one band per condition, battery on top.

    Parameters
    ----------
    trace : UsageTrace
        Anything with ``hours``, ``screen_on``, ``charging``, ``unmetered``,
        ``battery_percent`` and ``user_type``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new wide figure when omitted.
    training : array of bool, optional
        Samples in which a schedule trained: drawn as a fourth band.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax, WIDE)
    hours = np.asarray(trace.hours)
    rows = list(_ROWS) + ([("training", None, "tab:red")] if training is not None else [])
    for i, (label, attr, color) in enumerate(rows):
        mask = np.asarray(training if attr is None else getattr(trace, attr), dtype=bool)
        ax.fill_between(hours, i, i + 0.8, where=mask, step="post", color=color, lw=0, label=label)
    ax.set_yticks([i + 0.4 for i in range(len(rows))], [r[0] for r in rows])
    top = len(rows) + 0.2
    ax.plot(hours, top + 2 * np.asarray(trace.battery_percent) / 100, color="black", lw=0.8,
            label="battery (0-100 %)")  # fmt: skip
    ax.set_ylim(-0.2, top + 2.2)
    ax.set_xticks(np.arange(0, hours[-1] + 1, 24))
    ax.set_xlabel("hours from Monday 00:00")
    ax.set_title(f"a week of a {trace.user_type} user")
    ax.legend(loc="upper right", fontsize="x-small", ncol=5)
    return ax
