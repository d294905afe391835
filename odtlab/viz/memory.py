"""Figures of memory reports: category bars side by side and the timeline of one step.

:meth:`odtlab.memory.TrainingMemoryReport.plot` and ``.plot_timeline()`` call
these; any object with the same attributes (``totals``, ``timeline``) works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from odtlab.units import MEMORY_CATEGORIES, MiB, format_bytes
from odtlab.viz.style import CATEGORY_COLORS, new_axes

__all__ = ["plot_breakdown", "plot_timeline", "plot_budget"]


def plot_breakdown(reports: Sequence[Any], ax: Any = None, labels: Sequence[str] | None = None) -> Any:
    """Side-by-side stacked bars: weights, gradients, optimizer state and activations (MiB).

    Each bar is one report; a marker shows its peak, which can exceed the sum
    of the categories (short-lived tensors) or fall below it (activations
    are freed while gradients appear). Returns the matplotlib axes.
    """
    ax = new_axes(ax)
    names = list(labels) if labels is not None else [
        r.label or f"{r.accounting} #{i}" for i, r in enumerate(reports)
    ]  # fmt: skip
    bottoms = [0.0] * len(reports)
    for key in MEMORY_CATEGORIES:
        values = [r.totals[key] / MiB for r in reports]
        ax.bar(names, values, bottom=bottoms, label=key, color=CATEGORY_COLORS[key])
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.scatter(names, [r.totals["peak"] / MiB for r in reports], marker="_", s=600, color="black",
               zorder=3, label="peak")  # fmt: skip
    ax.set_ylabel("memory (MiB)")
    ax.set_title("Training memory by category")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_timeline(report: Any, ax: Any = None) -> Any:
    """Stacked area of live bytes by category over forward, backward and optimizer step."""
    ax = new_axes(ax)
    events = report.timeline.events
    present = {c for e in events for c in e.live}
    categories = [c for c in CATEGORY_COLORS if c in present]
    xs = [e.index for e in events]
    series = [[e.live.get(c, 0) / MiB for e in events] for c in categories]
    ax.stackplot(xs, series, labels=categories, colors=[CATEGORY_COLORS[c] for c in categories],
                 alpha=0.85, step="post")  # fmt: skip
    for phase in ("forward", "backward", "optimizer"):
        idx = [e.index for e in events if e.phase == phase]
        if idx:
            ax.axvline(idx[0], color="grey", lw=0.8, ls=":")
            ax.text(idx[0], 0, f" {phase}", rotation=90, va="bottom", fontsize="x-small")
    peak = report.timeline.peak_event
    ax.plot([peak.index], [peak.total / MiB], "k*", ms=10)
    ax.annotate(f"peak {format_bytes(peak.total)}\n{peak.label}", (peak.index, peak.total / MiB),
                textcoords="offset points", xytext=(6, -24), fontsize="small")  # fmt: skip
    ax.set_xlabel("step of forward / backward / optimizer")
    ax.set_ylabel("live memory (MiB)")
    ax.set_title(f"Memory over one training step ({report.accounting})")
    ax.legend(loc="upper left", fontsize="x-small")
    return ax


def plot_budget(
    totals: dict[str, int], budget_bytes: int, device: str, *, title: str = "", ax: Any = None
) -> Any:
    """One horizontal stacked bar of the four categories against a device's budget (dashed)."""
    ax = new_axes(ax, (6.0, 2.6))
    left = 0.0
    for name in MEMORY_CATEGORIES:
        value = totals[name] / MiB
        ax.barh([0], [value], left=left, color=CATEGORY_COLORS[name], label=name)
        left += value
    ax.axvline(budget_bytes / MiB, color="black", ls="--", label=f"{device} budget")
    ax.set_yticks([])
    ax.set_xlabel("MiB")
    ax.set_xlim(0, max(left, budget_bytes / MiB) * 1.1)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return ax
