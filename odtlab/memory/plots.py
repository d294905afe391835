"""Figures of memory reports: category breakdown bars and the timeline of one step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from odtlab.memory.timeline import CATEGORIES
from odtlab.memory.units import BREAKDOWN_KEYS, MIB, format_bytes

if TYPE_CHECKING:  # pragma: no cover
    from odtlab.memory.report import TrainingMemoryReport

__all__ = ["plot_breakdown", "plot_timeline", "CATEGORY_COLORS"]

CATEGORY_COLORS = {
    "weights": "#4C72B0",
    "batch": "#8C8C8C",
    "gradients": "#DD8452",
    "optimizer": "#937860",
    "activations": "#55A868",
    "transient": "#C44E52",
}


def _axes(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def plot_breakdown(
    reports: Sequence[TrainingMemoryReport], ax: Any = None, labels: Sequence[str] | None = None
) -> Any:
    """Side-by-side stacked bars: weights, gradients, optimizer state and activations (MiB).

    Each bar is one report; a marker shows its peak, which can exceed the sum
    of the categories (short-lived tensors) or fall below it (activations
    are freed while gradients appear).
    """

    ax = _axes(ax)
    names = list(labels) if labels is not None else [
        r.label or f"{r.accounting} #{i}" for i, r in enumerate(reports)
    ]  # fmt: skip
    bottoms = [0.0] * len(reports)
    for key in BREAKDOWN_KEYS:
        values = [r.totals[key] / MIB for r in reports]
        ax.bar(names, values, bottom=bottoms, label=key, color=CATEGORY_COLORS[key])
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.scatter(names, [r.totals["peak"] / MIB for r in reports], marker="_", s=600, color="black",
               zorder=3, label="peak")  # fmt: skip
    ax.set_ylabel("memory (MiB)")
    ax.set_title("Training memory by category")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_timeline(report: TrainingMemoryReport, ax: Any = None) -> Any:
    """Stacked area of live bytes by category over forward, backward and optimizer step."""
    ax = _axes(ax)
    events = report.timeline.events
    xs = [e.index for e in events]
    series = [[e.live.get(c, 0) / MIB for e in events] for c in CATEGORIES]
    ax.stackplot(xs, series, labels=list(CATEGORIES), colors=[CATEGORY_COLORS[c] for c in CATEGORIES],
                 alpha=0.85, step="post")  # fmt: skip
    for phase in ("forward", "backward", "optimizer"):
        idx = [e.index for e in events if e.phase == phase]
        if idx:
            ax.axvline(idx[0], color="grey", lw=0.8, ls=":")
            ax.text(idx[0], 0, f" {phase}", rotation=90, va="bottom", fontsize="x-small")
    peak = report.timeline.peak_event
    ax.plot([peak.index], [peak.total / MIB], "k*", ms=10)
    ax.annotate(f"peak {format_bytes(peak.total)}\n{peak.label}", (peak.index, peak.total / MIB),
                textcoords="offset points", xytext=(6, -24), fontsize="small")  # fmt: skip
    ax.set_xlabel("step of forward / backward / optimizer")
    ax.set_ylabel("live memory (MiB)")
    ax.set_title(f"Memory over one training step ({report.accounting})")
    ax.legend(loc="upper left", fontsize="x-small")
    return ax
