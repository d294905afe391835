"""Figures of recipe searches: what each sparse-update candidate adds in accuracy and memory."""

from __future__ import annotations

from typing import Any

from odtlab.viz.labels import label_points
from odtlab.viz.style import new_axes

__all__ = ["plot_contributions"]


def plot_contributions(table: Any, ax: Any = None) -> Any:
    """Accuracy gain (points) against extra peak memory (KiB), one marker per candidate.

    Each point is labelled with its candidate's name; labels are placed so that
    they do not overlap where there is room (:func:`odtlab.viz.labels.label_points`),
    with a thin line to their point when moved away from it.
    """
    ax = new_axes(ax)
    for kind, marker in (("bias", "s"), ("weight", "o")):
        rows = [c for c in table.contributions if c.kind == kind]
        ax.scatter([c.extra_bytes / 1024 for c in rows], [100 * c.gain for c in rows],
                   marker=marker, label=kind)  # fmt: skip
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("extra peak memory over the reference (KiB)")
    ax.set_ylabel("accuracy gain (points)")
    ax.legend(loc="best")
    # labels last, once the limits are final, so that they can avoid each other
    rows = list(table.contributions)
    ax.margins(x=0.12, y=0.12)
    label_points(ax, [c.extra_bytes / 1024 for c in rows], [100 * c.gain for c in rows],
                 [c.name for c in rows])  # fmt: skip
    return ax
