"""Plots of federated learning: who holds which labels, and accuracy over rounds or fleet time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from odtlab.viz.style import WIDE, new_axes

__all__ = ["plot_label_mix", "plot_personalization", "plot_rounds"]


def plot_label_mix(counts: Sequence[Sequence[int]], ax: Any = None, title: str | None = None) -> Any:
    """One stacked bar per client: how many examples of each class it holds.

    ``counts[k][c]`` is client ``k``'s number of class-``c`` examples (see
    ``torch.bincount`` of the client's labels). Returns the axes.
    """
    import matplotlib.pyplot as plt

    ax = new_axes(ax, WIDE)
    classes = max(len(row) for row in counts)
    colors = plt.get_cmap("tab10" if classes <= 10 else "tab20")
    bottoms = [0] * len(counts)
    for c in range(classes):
        heights = [row[c] if c < len(row) else 0 for row in counts]
        ax.bar(range(len(counts)), heights, bottom=bottoms, color=colors(c % colors.N), width=0.8,
               label=str(c))  # fmt: skip
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xlabel("client")
    ax.set_ylabel("examples")
    if title:
        ax.set_title(title)
    ax.legend(title="class", fontsize=7, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
    return ax


def plot_rounds(runs: Mapping[str, Any], ax: Any = None, x: str = "round") -> Any:
    """Test accuracy of federated runs, by round (``x="round"``) or by simulated fleet time
    (``x="time"``); ``runs`` maps a label to a :class:`~odtlab.fl.FederatedRun`."""
    if x not in ("round", "time"):
        raise ValueError(f"plot_rounds(x={x!r}): give 'round' or 'time'")
    ax = new_axes(ax, WIDE)
    for label, run in runs.items():
        acc = [100 * r.accuracy if r.accuracy is not None else float("nan") for r in run.rounds]
        xs = [r.round for r in run.rounds] if x == "round" else [t / 60 for t in run.fleet_seconds]
        ax.plot(xs, acc, marker="o", ms=3, lw=1.2, label=label)
    ax.set_xlabel("round" if x == "round" else "simulated fleet time (min)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    return ax


def plot_personalization(report: Any, ax: Any = None) -> Any:
    """Per client, the global model's and the personalised model's held-out accuracy, side by side.

    ``report`` is a :class:`~odtlab.fl.PersonalizationReport`. Returns the axes.
    """
    ax = new_axes(ax, WIDE)
    rows = report.rows
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [100 * r["global_accuracy"] for r in rows], width=0.4, label="global model")
    ax.bar([x + 0.2 for x in xs], [100 * r["personal_accuracy"] for r in rows], width=0.4,
           label=f"personalised ({report.recipe})")  # fmt: skip
    ax.set_xticks(list(xs), [str(r["client"]) for r in rows], rotation=45 if len(rows) > 12 else 0, fontsize=8)
    ax.set_xlabel("client")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    return ax
