"""Point labels that do not overlap: a small greedy placement for scatter plots.

Labels written next to their points overlap as soon as points cluster (the
sparse-update candidates of chapter 4 crowd the first hundred KiB). Each
label here tries positions around its point, nearest first, and takes the
first one that overlaps no label placed before and no data point, stays
inside the axes and is nearer its own point than any other; a label moved away from its point gets a thin leader line.
Only where the text goes changes, never a plotted value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["label_points"]

# Directions tried around a point, right first (where a reader looks for a label).
_DIRECTIONS = [(1, 0), (1, 1), (1, -1), (0, 1), (0, -1), (-1, 0), (-1, 1), (-1, -1)]
_RADII = (4, 10, 17, 25, 34, 44)  # points


def _overlap(a: Any, b: Any) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0.0) * max(height, 0.0)


def _distance(box: Any, x: float, y: float) -> float:
    """Display distance from the point ``(x, y)`` to the nearest edge of ``box`` (0 inside)."""
    return math.hypot(max(box.x0 - x, 0.0, x - box.x1), max(box.y0 - y, 0.0, y - box.y1))


def label_points(
    ax: Any, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], fontsize: float = 7
) -> list[Any]:
    """Write ``labels[i]`` near ``(xs[i], ys[i])`` without overlaps where room allows.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes whose data limits are already final (call after plotting the points).
    xs, ys : sequence of float
        Data coordinates of the points.
    labels : sequence of str
        One label per point.
    fontsize : float
        Font size in points.

    Returns
    -------
    list of matplotlib.text.Annotation
        The labels, in the order given.
    """
    from matplotlib.transforms import Bbox

    fig = ax.figure
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling: the limits must be final
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72
    points = ax.transData.transform(list(zip(xs, ys, strict=True))) if len(xs) else []
    taken = [Bbox.from_extents(x - 4 * px_per_pt, y - 4 * px_per_pt, x + 4 * px_per_pt,
                               y + 4 * px_per_pt) for x, y in points]  # fmt: skip
    frame = ax.get_window_extent(renderer)
    placed = []
    for (x, y), label, xd, yd in zip(points, labels, xs, ys, strict=True):
        best = None
        for radius in _RADII:
            for dx, dy in _DIRECTIONS:
                norm = math.hypot(dx, dy)
                offset = (radius * dx / norm, radius * dy / norm)
                ha = {1: "left", 0: "center", -1: "right"}[dx]
                va = {1: "bottom", 0: "center", -1: "top"}[dy]
                text = ax.annotate(label, (xd, yd), xytext=offset, textcoords="offset points",
                                   ha=ha, va=va, fontsize=fontsize)  # fmt: skip
                box = text.get_window_extent(renderer)
                text.remove()
                # overlap with labels and points, plus anything outside the axes
                cost = sum(_overlap(box, other) for other in taken)
                inside = Bbox.intersection(box, frame)
                outside = box.width * box.height - (inside.width * inside.height if inside else 0)
                cost += 10 * outside
                # a label nearer another point than its own would name the wrong point
                own = _distance(box, x, y)
                cost += sum(100.0 for ox, oy in points if _distance(box, ox, oy) + 1 < own)
                if best is None or cost < best[0]:
                    best = (cost, offset, ha, va, radius, box)
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, offset, ha, va, radius, box = best
        arrow = {"arrowstyle": "-", "lw": 0.6, "color": "0.35"} if radius > _RADII[0] else None
        placed.append(ax.annotate(label, (xd, yd), xytext=offset, textcoords="offset points",
                                  ha=ha, va=va, fontsize=fontsize, arrowprops=arrow))  # fmt: skip
        taken.append(box)
    return placed
