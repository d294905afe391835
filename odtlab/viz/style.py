"""One style for every figure of the course: category colours, figure sizes, a fresh axes.

Every ``.plot()`` of a report delegates to a function of :mod:`odtlab.viz`,
so a learner sees the same colours for the same things from chapter 1 to 9.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CATEGORY_COLORS", "FIT_COLORS", "WIDE", "SQUARE", "new_axes"]

#: Memory categories, in stacking order, and their colours (bars, areas, legends).
CATEGORY_COLORS = {
    "weights": "#4C72B0",
    "batch": "#8C8C8C",
    "gradients": "#DD8452",
    "optimizer": "#937860",
    "activations": "#55A868",
    "transient": "#C44E52",
}

#: Recipes that fit the device, that do not, and Pareto fronts.
FIT_COLORS = {"fits": "tab:blue", "does not fit": "tab:red", "front": "tab:green"}

#: Figure sizes in inches: a wide single panel and a square one.
WIDE = (7.0, 3.5)
SQUARE = (6.0, 4.0)


def new_axes(ax: Any = None, figsize: tuple[float, float] = SQUARE) -> Any:
    """``ax`` itself, or the axes of a new figure of ``figsize`` (matplotlib imported here)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax
