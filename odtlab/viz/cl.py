"""Plots of continual learning: the accuracy matrix, and stability against plasticity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from odtlab.viz.style import SQUARE, new_axes

__all__ = ["plot_accuracy_matrix", "plot_stability_plasticity"]


def plot_accuracy_matrix(
    R: Any, names: Sequence[str] | None = None, ax: Any = None, title: str | None = None
) -> Any:
    """Heat-map of the accuracy matrix: row ``i`` after training through experience ``i``,
    column ``j`` tested on experience ``j``, each cell labelled in percent. Returns the axes.

    Forgetting shows as the cells below the diagonal fading; a good
    continual learner keeps the lower triangle as bright as the diagonal.
    """
    import numpy as np

    m = np.asarray(R, dtype=float)
    ax = new_axes(ax, SQUARE)
    image = ax.imshow(100 * m, cmap="viridis", vmin=0, vmax=100)
    T = m.shape[0]
    labels = list(names) if names is not None else [str(i) for i in range(T)]
    ax.set_xticks(range(T), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(T), labels, fontsize=8)
    for i in range(T):
        for j in range(T):
            ax.text(j, i, f"{100 * m[i, j]:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if m[i, j] < 0.6 else "black")  # fmt: skip
    ax.set_xlabel("tested on experience")
    ax.set_ylabel("after training on")
    ax.figure.colorbar(image, ax=ax, label="accuracy (%)")
    if title:
        ax.set_title(title)
    return ax


def plot_stability_plasticity(results: Mapping[str, Mapping[str, float]], ax: Any = None) -> Any:
    """One point per strategy: plasticity (mean of ``R[j, j]``, how well each new experience is
    learned) against stability (``1 - forgetting``), in percent.

    ``results`` maps a strategy's name to a dict with ``"plasticity"`` and
    ``"forgetting"`` (e.g. ``{"naive": {"plasticity": 0.99, "forgetting": 0.9}}``).
    The ideal learner sits top right. Returns the axes.
    """
    ax = new_axes(ax, SQUARE)
    for name, r in results.items():
        x, y = 100 * r["plasticity"], 100 * (1 - r["forgetting"])
        ax.scatter([x], [y], s=30)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("plasticity: accuracy on each new experience (%)")
    ax.set_ylabel("stability: 100 - forgetting (%)")
    return ax
