"""Byte units: pretty-printing and the size of one element of a dtype.

Every number in :mod:`odtlab.memory` is a count of **bytes** (a Python
``int``). ``format_bytes`` (shared with :mod:`odtlab.devices`) turns them
into text a student can read.
"""

from __future__ import annotations

import math

import torch

from odtlab.units import MEMORY_CATEGORIES, format_bytes  # one formatter for the whole library

__all__ = ["format_bytes", "element_bytes", "bits_to_bytes", "KIB", "MIB", "GIB", "BREAKDOWN_KEYS"]

KIB = 1024
MIB = 1024**2
GIB = 1024**3


def element_bytes(dtype: torch.dtype) -> int:
    """Bytes of one element of ``dtype`` (4 for ``torch.float32``, 1 for ``torch.bool``)."""
    return torch.empty((), dtype=dtype, device="meta").element_size()


def bits_to_bytes(bits: int) -> int:
    """Bytes needed to store ``bits`` bits, rounded up: ``ceil(bits / 8)``."""
    return math.ceil(bits / 8)

#: The categories a memory breakdown shows, in stacking order (one definition, in odtlab.units).
BREAKDOWN_KEYS = MEMORY_CATEGORIES
