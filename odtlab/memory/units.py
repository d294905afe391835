"""Byte units: pretty-printing and the size of one element of a dtype.

Every number in :mod:`odtlab.memory` is a count of **bytes** (a Python
``int``). These helpers only turn them into text a student can read.
"""

from __future__ import annotations

import math

import torch

__all__ = ["format_bytes", "element_bytes", "bits_to_bytes", "KIB", "MIB", "GIB"]

KIB = 1024
MIB = 1024**2
GIB = 1024**3


def format_bytes(n: int | float, precision: int = 1) -> str:
    """Format a byte count with binary prefixes: ``B``, ``KiB``, ``MiB``, ``GiB``.

    Parameters
    ----------
    n : int or float
        A number of bytes (may be negative, e.g. a saving).
    precision : int
        Digits after the decimal point for KiB and above.

    Returns
    -------
    str
        For example ``"512 B"``, ``"1.5 KiB"``, ``"13.4 MiB"``.

    Examples
    --------
    >>> format_bytes(512), format_bytes(1536), format_bytes(3 * 1024**2)
    ('512 B', '1.5 KiB', '3.0 MiB')
    """
    sign = "-" if n < 0 else ""
    value = abs(float(n))
    if value < KIB:
        return f"{sign}{int(value)} B"
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if value >= scale:
            return f"{sign}{value / scale:.{precision}f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def element_bytes(dtype: torch.dtype) -> int:
    """Bytes of one element of ``dtype`` (4 for ``torch.float32``, 1 for ``torch.bool``)."""
    return torch.empty((), dtype=dtype, device="meta").element_size()


def bits_to_bytes(bits: int) -> int:
    """Bytes needed to store ``bits`` bits, rounded up: ``ceil(bits / 8)``."""
    return math.ceil(bits / 8)
