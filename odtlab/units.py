"""Pretty-printing of bytes, seconds, energy and rates: the ground floor every package uses.

The library keeps every number in SI base units (bytes, seconds, joules,
watts) and only turns it into text at the very end, with the helpers here.
Memory sizes use *binary* prefixes (1 KiB = 1024 bytes), because that is how
SRAM and DRAM are sized; rates such as bandwidth use *decimal* prefixes
(1 GB/s = 10**9 bytes per second), because that is how data sheets quote
them.

Examples
--------
>>> format_bytes(327_680)
'320.0 KiB'
>>> format_bytes(1_572_864)
'1.50 MiB'
>>> format_seconds(0.0123)
'12.3 ms'
"""

from __future__ import annotations

import math

__all__ = [
    "MEMORY_CATEGORIES",
    "KiB",
    "MiB",
    "GiB",
    "format_bytes",
    "format_seconds",
    "format_joules",
    "format_rate",
]

MEMORY_CATEGORIES: tuple[str, ...] = ("weights", "gradients", "optimizer", "activations")
"""The four categories of training memory (chapter 1), in the order reports and plots stack them."""

KiB = 1024
"""Bytes in one kibibyte."""
MiB = 1024**2
"""Bytes in one mebibyte."""
GiB = 1024**3
"""Bytes in one gibibyte."""

_BINARY_UNITS = (("TiB", 1024**4, 2), ("GiB", GiB, 2), ("MiB", MiB, 2), ("KiB", KiB, 1))


def format_bytes(n: float) -> str:
    """Write a number of bytes with a binary prefix.

    Parameters
    ----------
    n : float
        A number of bytes; negative numbers (a deficit) keep their sign.

    Returns
    -------
    str
        ``"512 B"`` below one KiB, then ``"320.0 KiB"`` (one decimal),
        ``"1.50 MiB"``, ``"4.00 GiB"`` (two decimals).

    Examples
    --------
    >>> format_bytes(262_144)
    '256.0 KiB'
    >>> format_bytes(-2048)
    '-2.0 KiB'
    """
    sign = "-" if n < 0 else ""
    size = abs(float(n))
    for unit, scale, decimals in _BINARY_UNITS:
        if size >= scale:
            return f"{sign}{size / scale:.{decimals}f} {unit}"
    return f"{sign}{size:.0f} B"


def format_seconds(s: float) -> str:
    """Write a duration in seconds with a readable unit.

    Parameters
    ----------
    s : float
        A duration in seconds.

    Returns
    -------
    str
        ``"ns"`` below a microsecond, ``"µs"`` below a millisecond, ``"ms"``
        below a second, ``"s"`` below a minute, ``"min"`` below an hour,
        ``"h"`` above.

    Examples
    --------
    >>> format_seconds(2.5e-4)
    '250 µs'
    >>> format_seconds(1.5)
    '1.50 s'
    >>> format_seconds(150)
    '2.50 min'
    """
    if not math.isfinite(s):
        return f"{s} s"
    sign = "-" if s < 0 else ""
    t = abs(float(s))
    if t == 0:
        return "0 s"
    if t < 1e-6:
        return f"{sign}{t * 1e9:.3g} ns"
    if t < 1e-3:
        return f"{sign}{t * 1e6:.3g} µs"
    if t < 1:
        return f"{sign}{t * 1e3:.3g} ms"
    if t < 60:
        return f"{sign}{t:.2f} s"
    if t < 3600:
        return f"{sign}{t / 60:.2f} min"
    return f"{sign}{t / 3600:.2f} h"


def format_joules(j: float) -> str:
    """Write an energy in joules with a decimal prefix (pJ ... kJ).

    Examples
    --------
    >>> format_joules(4.5e-10)
    '450 pJ'
    >>> format_joules(36.0)
    '36.0 J'
    """
    return _format_decimal(j, "J")


def format_rate(x: float, unit: str) -> str:
    """Write a rate with a decimal prefix, e.g. ``format_rate(1.728e9, "B/s")``.

    Examples
    --------
    >>> format_rate(1.728e9, "B/s")
    '1.73 GB/s'
    >>> format_rate(4.32e8, "MAC/s")
    '432 MMAC/s'
    """
    return _format_decimal(x, unit)


_DECIMAL_PREFIXES = (
    (1e12, "T"),
    (1e9, "G"),
    (1e6, "M"),
    (1e3, "k"),
    (1.0, ""),
    (1e-3, "m"),
    (1e-6, "µ"),
    (1e-9, "n"),
    (1e-12, "p"),
    (1e-15, "f"),
)


def _format_decimal(x: float, unit: str) -> str:
    """Three significant digits with the largest decimal prefix that fits."""
    value = float(x)
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    size = abs(value)
    for scale, prefix in _DECIMAL_PREFIXES:
        if size >= scale * 0.9995:  # so 999.96 rounds up to "1.00 k", not "1e+03"
            return f"{_three_digits(value / scale)} {prefix}{unit}"
    scale, prefix = _DECIMAL_PREFIXES[-1]
    return f"{_three_digits(value / scale)} {prefix}{unit}"


def _three_digits(v: float) -> str:
    """Three significant digits without scientific notation (``'1.73'``, ``'432'``)."""
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"
