"""Shape masks drawn with tensor arithmetic (private helper of :mod:`odtlab.data.shapes`).

Each shape is a *signed distance*: a function of local coordinates
``(u, v)`` (the shape's own frame, radius about 1, ``v`` pointing up) that
is negative inside the shape and positive outside, roughly in the same
units as ``u`` and ``v``. :func:`fill` turns a distance into coverage in
[0, 1] with a one-pixel soft edge, which anti-aliases the outline.

Every function takes batches: ``u`` and ``v`` of shape ``(B, H, W)`` and
``aa`` (the width of one pixel in local units) of shape ``(B, 1, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["fill", "SHAPES"]


def fill(distance: Tensor, aa: Tensor) -> Tensor:
    """Coverage of a pixel: 1 well inside (distance < 0), 0 well outside, linear over one pixel."""
    return (0.5 - distance / aa).clamp_(0.0, 1.0)


def _box(u: Tensor, v: Tensor, half_w: float, half_h: float) -> Tensor:
    return torch.maximum(u.abs() - half_w, v.abs() - half_h)


def _polygon(u: Tensor, v: Tensor, sides: int, inradius: float, start: float) -> Tensor:
    """Regular convex polygon: the largest distance past any of its edges."""
    d = None
    for k in range(sides):
        angle = start + 2 * math.pi * k / sides
        edge = u * math.cos(angle) + v * math.sin(angle) - inradius
        d = edge if d is None else torch.maximum(d, edge)
    assert d is not None
    return d


def circle(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    return fill(torch.sqrt(u * u + v * v) - 0.9, aa)


def square(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    return fill(_box(u, v, 0.72, 0.72), aa)


def triangle(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    # Equilateral, pointing up, circumradius 0.95: edges face down, up-right, up-left.
    return fill(_polygon(u, v, 3, 0.475, -math.pi / 2), aa)


def cross(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    return fill(torch.minimum(_box(u, v, 0.9, 0.28), _box(u, v, 0.28, 0.9)), aa)


def ring(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    return fill((torch.sqrt(u * u + v * v) - 0.65).abs() - 0.22, aa)


def stripes(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    period = 0.5
    band = ((torch.remainder(u / period, 1.0) - 0.5).abs() - 0.25) * period
    return fill(_box(u, v, 0.75, 0.75), aa) * fill(-band, aa)


def star(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    # Five points: fold every point into half of one tip's sector, then one straight edge.
    outer, inner, half = 0.95, 0.4, math.pi / 5
    r = torch.sqrt(u * u + v * v)
    a = torch.remainder(torch.atan2(v, u) - math.pi / 2 + half, 2 * half) - half
    qx, qy = r * torch.cos(a), r * torch.sin(a).abs()
    px, py = inner * math.cos(half), inner * math.sin(half)
    ex, ey = px - outer, py
    norm = math.hypot(ex, ey)
    nx, ny = ey / norm, -ex / norm  # points away from the origin
    return fill((qx - outer) * nx + qy * ny, aa)


def crescent(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    disc = torch.sqrt(u * u + v * v) - 0.9
    bite = torch.sqrt((u - 0.45) ** 2 + v * v) - 0.72
    return fill(torch.maximum(disc, -bite), aa)


def checker(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    cell = 0.5
    wave = torch.sin(math.pi * u / cell) * torch.sin(math.pi * v / cell)
    return fill(_box(u, v, 0.75, 0.75), aa) * fill(-wave * cell / math.pi, aa)


def semicircle(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    w = v + 0.4  # flat edge below the centre keeps the shape balanced
    return fill(torch.maximum(torch.sqrt(u * u + w * w) - 0.95, -w), aa)


def ellipse(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    return fill((torch.sqrt((u / 0.95) ** 2 + (v / 0.45) ** 2) - 1.0) * 0.45, aa)


def arrow(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    shaft = _box(u + 0.35, v, 0.55, 0.18)
    tip_x, base_x, half_h = 0.9, 0.15, 0.6
    nx, ny = half_h, tip_x - base_x
    norm = math.hypot(nx, ny)
    head = torch.maximum(base_x - u, ((u - tip_x) * nx + v.abs() * ny) / norm)
    return fill(torch.minimum(shaft, head), aa)


def hourglass(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    height, half_w = 0.85, 0.75
    slant = ((u.abs() - 0.08) * height - half_w * v.abs()) / math.hypot(height, half_w)
    return fill(torch.maximum(v.abs() - height, slant), aa)


def dots(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    step = 0.6
    du = u - step * torch.round(u / step).clamp(-1, 1)
    dv = v - step * torch.round(v / step).clamp(-1, 1)
    return fill(torch.sqrt(du * du + dv * dv) - 0.22, aa)


def frame(u: Tensor, v: Tensor, aa: Tensor) -> Tensor:
    return fill((_box(u, v, 0.0, 0.0) - 0.68).abs() - 0.16, aa)


SHAPES: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "circle": circle,
    "square": square,
    "triangle": triangle,
    "cross": cross,
    "ring": ring,
    "stripes": stripes,
    "star": star,
    "crescent": crescent,
    "checker": checker,
    "semicircle": semicircle,
    "ellipse": ellipse,
    "arrow": arrow,
    "hourglass": hourglass,
    "dots": dots,
    "frame": frame,
}
