"""Bilinear resizing as two small matrix products, as TinyTL's lite residual upsamples.

Written as matrix products (``A_h @ x @ A_w.T``) rather than
``F.interpolate``, its memory cost is visible to both accountings of
:mod:`odtlab.memory`, which have no rule for ``F.interpolate``.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from odtlab.recipes.base import check_positive_int

__all__ = ["bilinear_matrix"]


def bilinear_matrix(
    out_size: int,
    in_size: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The ``(out_size, in_size)`` matrix of 1-D linear interpolation (``align_corners=False``).

    Row ``i`` holds the two weights with which output pixel ``i`` mixes its
    two nearest input pixels, the same rule as
    ``F.interpolate(mode="bilinear", align_corners=False)``: output pixel
    ``i`` sits at input coordinate ``(i + 0.5) * in_size / out_size - 0.5``,
    clamped to the image. Bilinear resizing of ``x`` (``(..., h, w)``) is then
    ``A_h @ x @ A_w.T``.

    Examples
    --------
    >>> bilinear_matrix(4, 2)
    tensor([[1.0000, 0.0000],
            [0.7500, 0.2500],
            [0.2500, 0.7500],
            [0.0000, 1.0000]])
    """
    check_positive_int("bilinear_matrix", "out_size", out_size)
    check_positive_int("bilinear_matrix", "in_size", in_size)
    return _matrix(out_size, in_size).to(device=device, dtype=dtype, copy=True)


@lru_cache(maxsize=256)
def _matrix(out_size: int, in_size: int) -> torch.Tensor:
    """The float64 CPU matrix, computed once per size pair (a pure function, memoised:
    every forward of a lite residual asks for the same few sizes, and on ``meta`` the dozen
    small operations that build it cost more than the branch). Never handed out itself:
    :func:`bilinear_matrix` returns a converted copy."""
    rows = torch.arange(out_size, dtype=torch.float64)
    src = ((rows + 0.5) * (in_size / out_size) - 0.5).clamp(min=0.0)
    low = src.floor().long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    frac = src - low
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    matrix.index_put_((rows.long(), low), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows.long(), high), frac, accumulate=True)
    return matrix
