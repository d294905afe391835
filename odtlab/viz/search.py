"""Figures of recipe searches: what each sparse-update candidate adds in accuracy and memory."""

from __future__ import annotations

from typing import Any

from odtlab.viz.style import new_axes

__all__ = ["plot_contributions"]


def plot_contributions(table: Any, ax: Any = None) -> Any:
    """Accuracy gain (points) against extra peak memory (KiB), one marker per candidate."""
    ax = new_axes(ax)
    for kind, marker in (("bias", "s"), ("weight", "o")):
        rows = [c for c in table.contributions if c.kind == kind]
        ax.scatter([c.extra_bytes / 1024 for c in rows], [100 * c.gain for c in rows],
                   marker=marker, label=kind)  # fmt: skip
        for c in rows:
            ax.annotate(c.name, (c.extra_bytes / 1024, 100 * c.gain), fontsize=7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("extra peak memory over the reference (KiB)")
    ax.set_ylabel("accuracy gain (points)")
    ax.legend()
    return ax
