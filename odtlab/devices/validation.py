"""Checks and coercions behind :class:`~odtlab.devices.profile.DeviceProfile`.

Numbers read from YAML may arrive as text (PyYAML reads ``1.5e9`` as a
string), so every field is coerced here, and every failure names the field,
the bad value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from odtlab.errors import OdtlabError

__all__ = [
    "LEVELS",
    "MemoryLevelError",
    "per_level",
    "DTYPES",
    "KINDS",
    "TRAINING_BUDGET_FRACTION",
    "training_budget_rule",
    "as_float",
    "as_int",
    "per_dtype",
    "gmacs",
]

DTYPES: tuple[str, ...] = ("fp32", "fp16", "int8")
"""Data types every profile gives a throughput and an energy for."""

LEVELS: tuple[str, ...] = ("sram", "dram", "flash")
"""Memory levels a byte can come from: on-chip SRAM, off-chip DRAM, flash or storage."""


class MemoryLevelError(OdtlabError, ValueError):
    """A memory level, or a figure given for one, that cannot be used.

    Raised for a level name that is not one of :data:`LEVELS`, a negative,
    infinite or NaN number of bytes or joules, a level the device does not
    have (an MCU has no DRAM), or a split of bytes larger than the bytes a
    step moves. The message names the allowed levels.
    """


def per_level(who: str, name: str, value: Any, *, positive: bool) -> dict[str, float]:
    """Check a ``{level: number}`` mapping whose keys are some of :data:`LEVELS`.

    ``positive`` demands every number > 0 (energies); otherwise >= 0 (bytes).
    Returns the mapping as plain floats, in the order of :data:`LEVELS`.

    >>> per_level("me", "bytes", {"flash": 2, "sram": 1}, positive=False)
    {'sram': 1.0, 'flash': 2.0}
    """
    allowed = ", ".join(repr(level) for level in LEVELS)
    if not isinstance(value, Mapping):
        raise MemoryLevelError(
            f"{who}: {name} must map memory levels ({allowed}) to numbers, got {value!r}."
        )
    unknown = [k for k in value if k not in LEVELS]
    if unknown:
        raise MemoryLevelError(
            f"{who}: {name} has unknown memory level(s) {unknown}; the levels are {allowed}. "
            "Rename the key to one of them."
        )
    out: dict[str, float] = {}
    for level in LEVELS:
        if level not in value:
            continue
        x = value[level]
        try:  # YAML reads 5e-12 (no dot) as text
            number = math.nan if isinstance(x, bool) else float(x)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            need = "> 0" if positive else ">= 0"
            raise MemoryLevelError(
                f"{who}: {name}[{level!r}] must be a finite number {need}, got {x!r} "
                f"(levels: {allowed})."
            )
        out[level] = number
    return out


KINDS: tuple[str, ...] = ("mcu", "sbc", "phone", "edge-gpu")
"""Kinds of device: microcontroller, single-board computer, phone, edge GPU board."""

TRAINING_BUDGET_FRACTION: dict[str, float] = {
    "mcu": 0.80,
    "sbc": 0.75,
    "phone": 0.25,
    "edge-gpu": 0.75,
}
"""Share of SRAM (``mcu``) or DRAM (others) a training job may use by default."""


def training_budget_rule(kind: str, sram_bytes: int, dram_bytes: int) -> int:
    """Default training memory budget, in bytes, for a kind of device.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    sram_bytes, dram_bytes : int
        On-chip SRAM and off-chip DRAM, in bytes.

    Returns
    -------
    int
        ``floor(fraction * SRAM)`` for an MCU, ``floor(fraction * DRAM)``
        otherwise, with the fraction from :data:`TRAINING_BUDGET_FRACTION`.

    Examples
    --------
    >>> training_budget_rule("mcu", 320 * 1024, 0)   # 256 KiB
    262144
    """
    if kind not in TRAINING_BUDGET_FRACTION:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}.")
    pool = sram_bytes if kind == "mcu" else dram_bytes
    return int(math.floor(TRAINING_BUDGET_FRACTION[kind] * pool))


def gmacs(macs_per_second: float) -> str:
    """MAC/s as GMAC/s with three significant digits, never in e-notation."""
    g = macs_per_second / 1e9
    return f"{g:,.0f}" if g >= 100 else f"{g:.3g}"


def as_float(who: str, name: str, value: Any, *, positive: bool, signed: bool = False) -> float:
    """Coerce to a finite float (YAML may hand us ``"1.5e9"`` as text).

    ``positive`` demands > 0; otherwise >= 0 unless ``signed`` (temperatures).
    """
    if isinstance(value, bool):
        raise ValueError(f"{who}: {name} must be a number, got {value!r}.")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: {name} must be a number, got {value!r}.") from None
    if not math.isfinite(x):
        raise ValueError(f"{who}: {name} must be finite, got {value!r}.")
    if positive and x <= 0:
        raise ValueError(f"{who}: {name} must be > 0, got {value!r}.")
    if not positive and not signed and x < 0:
        raise ValueError(f"{who}: {name} must be >= 0, got {value!r}.")
    return x


def as_int(who: str, name: str, value: Any, *, minimum: int) -> int:
    """Coerce to a whole number of bytes no smaller than ``minimum``."""
    x = as_float(who, name, value, positive=False) if not isinstance(value, int) else value
    if isinstance(value, bool) or x != int(x):
        raise ValueError(f"{who}: {name} must be a whole number of bytes, got {value!r}.")
    if int(x) < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum} bytes, got {value!r}.")
    return int(x)


def per_dtype(who: str, name: str, value: Any) -> dict[str, float]:
    """Check a ``{dtype: positive number}`` mapping with exactly :data:`DTYPES` as keys."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{who}: {name} must map each of {list(DTYPES)} to a number, got {value!r}."
        )
    missing = [d for d in DTYPES if d not in value]
    unknown = [k for k in value if k not in DTYPES]
    if missing or unknown:
        raise ValueError(
            f"{who}: {name} needs exactly the keys {list(DTYPES)}; missing {missing}, "
            f"unknown {unknown}. A type without hardware support still needs its emulated rate."
        )
    return {d: as_float(who, f"{name}[{d!r}]", value[d], positive=True) for d in DTYPES}
