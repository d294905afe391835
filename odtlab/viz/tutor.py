"""Plots of the capstone tutor: simulated students learning, and what personalization buys each one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from odtlab.viz.style import SQUARE, WIDE, new_axes

__all__ = ["plot_students", "plot_personal_auc", "plot_reliability"]


def plot_students(log: Any, students: Sequence[int] = (0, 1, 2), ax: Any = None,
                  window: int = 15) -> Any:  # fmt: skip
    """Share of right answers over the last ``window`` answers, one line per student, against days.

    ``log`` is an :class:`odtlab.data.StudentLog`. Learning shows as lines
    rising; a student who forgets between sessions dips after long gaps.
    """
    import numpy as np

    ax = new_axes(ax, WIDE)
    for s in students:
        mine = log.student == s
        if not mine.any():
            continue
        right = log.correct[mine].astype(float)
        kernel = np.ones(min(window, len(right))) / min(window, len(right))
        ax.plot(log.time[mine][len(kernel) - 1:], np.convolve(right, kernel, mode="valid"),
                label=f"student {s}")  # fmt: skip
    ax.set_xlabel("day")
    ax.set_ylabel(f"share right (last {window} answers)")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_personal_auc(before: Sequence[float], after: Sequence[float], ax: Any = None,
                      title: str | None = None) -> Any:  # fmt: skip
    """One dot per student: AUC of the population model (x) against the personalized one (y).

    Dots above the diagonal are students the phone's training helped.
    """
    ax = new_axes(ax, SQUARE)
    ax.scatter(before, after, s=18, alpha=0.8)
    low = min(min(before), min(after), 0.5)
    ax.plot([low, 1], [low, 1], color="grey", lw=1, ls="--")
    ax.set_xlabel("AUC, population model")
    ax.set_ylabel("AUC, personalized on the phone")
    if title:
        ax.set_title(title)
    return ax


def plot_reliability(curves: dict[str, tuple[Any, Any]], ax: Any = None) -> Any:
    """Reliability diagram: per model, mean prediction (x) against the share right (y) per bin.

    ``curves`` maps a name to ``(mean_prediction, share_right)`` arrays, as
    :func:`odtlab.tutor.reliability` returns them. A calibrated model lies on the diagonal.
    """
    ax = new_axes(ax, SQUARE)
    for name, (mean_p, share) in curves.items():
        ax.plot(mean_p, share, marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set_xlabel("predicted probability of a right answer")
    ax.set_ylabel("share of right answers")
    ax.legend(fontsize=8)
    return ax
