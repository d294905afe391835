"""Figures of training runs: the loss and accuracy curve of one run, and recipes side by side."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from odtlab.viz.style import FIT_COLORS, WIDE, new_axes

__all__ = ["plot_training", "plot_comparison", "pareto_front"]


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats: lower or equal cost *and* higher or equal score.

    NaN scores are never on the front. Returned in order of increasing cost.

    Examples
    --------
    >>> pareto_front([1, 2, 3, 4], [0.5, 0.4, 0.9, 0.9])
    [0, 2]
    """
    points = [(c, s, i) for i, (c, s) in enumerate(zip(costs, scores, strict=True))
              if not math.isnan(s)]  # fmt: skip
    front = []
    for c, s, i in points:
        dominated = any((c2 <= c and s2 >= s) and (c2 < c or s2 > s) for c2, s2, _ in points)
        if not dominated:
            front.append((c, i))
    return [i for _, i in sorted(front)]


def plot_training(report: Any, ax: Any = None) -> Any:
    """The loss curve and, on a second y axis, the test accuracy; returns the loss axes."""
    ax = new_axes(ax, WIDE)
    steps = range(1, len(report.loss_curve) + 1)
    ax.plot(steps, report.loss_curve, color="tab:blue", lw=1, label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss", color="tab:blue")
    ax.set_title(f"{report.recipe} on {report.device or 'host'}")
    if report.accuracy_curve:
        acc_ax = ax.twinx()
        s, a = zip(*report.accuracy_curve, strict=True)
        acc_ax.plot(s, [100 * v for v in a], "o-", color="tab:orange", label="test accuracy")
        acc_ax.set_ylabel("test accuracy (%)", color="tab:orange")
        acc_ax.set_ylim(0, 100)
    return ax


def plot_comparison(comparison: Any, axes: Any = None) -> Any:
    """Accuracy against peak memory and against energy, one point per recipe; returns the figure.

    Recipes that fit are blue, those that do not are red; untrained ones sit
    at 0 % as crosses. Pareto fronts are green; the memory panel has the
    device's budget as a dashed line.
    """
    if axes is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    else:
        fig = axes[0].figure
    rows = comparison.rows
    acc = [100 * _number(r.get("final_accuracy")) for r in rows]
    panels = (("peak_bytes", 1 / 1024, "peak memory (KiB)"),
              ("sim_energy_j", 1.0, "simulated energy (J)"))  # fmt: skip
    for ax, (key, scale, label) in zip(axes, panels, strict=True):
        xs = [_number(r.get(key)) * scale for r in rows]
        for r, x, a in zip(rows, xs, acc, strict=True):
            color = FIT_COLORS["does not fit"] if r["fits"] is False else FIT_COLORS["fits"]
            y = 0.0 if math.isnan(a) else a
            ax.scatter([x], [y], marker="x" if math.isnan(a) else "o", color=color, zorder=3)
            ax.annotate(r["recipe"], (x, y), textcoords="offset points", xytext=(4, 4))
        front = pareto_front(xs, acc)
        if front:
            ax.step([xs[i] for i in front], [acc[i] for i in front], where="post",
                    color=FIT_COLORS["front"], lw=2, alpha=0.6, label="Pareto front")  # fmt: skip
        if key == "peak_bytes" and comparison.budget_bytes is not None:
            ax.axvline(comparison.budget_bytes * scale, color="tab:red", ls="--",
                       label=f"{comparison.device} budget")  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(loc="lower right")
    return fig


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def plot_protocol(result: Any, ax: Any = None) -> Any:
    """Mean test accuracy per recipe with the seed-to-seed spread as error bars; returns the axes.

    ``result`` is a :class:`odtlab.train.ProtocolResult`; each seed's accuracy
    is drawn as a dot over its bar, so a reader sees the spread, not only its size.
    """
    ax = new_axes(ax, figsize=(7, 3.5))
    names = list(result.names)
    for i, name in enumerate(names):
        accs = [100 * a for a in result.accuracies(name)]
        ax.bar(i, 100 * result.mean(name), yerr=100 * result.spread(name), capsize=4,
               color=FIT_COLORS["fits"], alpha=0.6)  # fmt: skip
        ax.scatter([i] * len(accs), accs, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{len(result.protocol.seeds)} seeds, {result.protocol.steps} steps of "
                 f"{type(result.protocol.optimizer).__name__}")  # fmt: skip
    return ax
