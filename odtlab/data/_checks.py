"""Small argument checks and seed mixing shared by the data modules (private)."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

from odtlab.data.errors import InvalidDataArgument, UnknownDomain
from odtlab.errors import check_choice as check_one_of

_MASK64 = (1 << 64) - 1


def check_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise naming ``name`` when it is not an int >= minimum."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidDataArgument(
            f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})."
        ) from None
    if number < minimum:
        raise InvalidDataArgument(f"{name} must be an integer >= {minimum}, got {number}.")
    return number


def check_float(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float inside the given bounds, or raise naming ``name``."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidDataArgument(f"{name} must be a number, got {value!r}.") from None
    bad = x != x  # NaN
    if low is not None:
        bad = bad or (x <= low if low_open else x < low)
    if high is not None:
        bad = bad or (x >= high if high_open else x > high)
    if bad:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise InvalidDataArgument(f"{name} must lie in {interval}, got {value!r}.")
    return x


def check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    """Return ``value`` when it is one of ``allowed``; otherwise raise listing them."""
    return check_one_of(name, value, tuple(allowed), InvalidDataArgument)


def check_names(
    name: str, values: Iterable[str], known: Sequence[str], what: str
) -> tuple[str, ...]:
    """Return ``values`` as a tuple after checking each is in ``known`` and none repeats."""
    if isinstance(values, str):
        raise InvalidDataArgument(
            f"{name} must be a sequence of names such as ({known[0]!r}, {known[1]!r}), "
            f"not the single string {values!r}."
        )
    out = tuple(values)
    if not out:
        raise InvalidDataArgument(f"{name} must name at least one {what}; got an empty sequence.")
    for v in out:
        if v not in known:
            raise UnknownDomain(f"Unknown {what} {v!r} in {name}. Known: {', '.join(known)}.")
    if len(set(out)) != len(out):
        raise InvalidDataArgument(f"{name} repeats a name: {out!r}. Give each {what} once.")
    return out


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*parts: int) -> int:
    """Mix integers (seed, stream, index...) into one 63-bit seed, well scrambled.

    Nearby inputs (index 0, 1, 2...) give unrelated outputs, so every sample
    can own its random generator: ``torch.Generator().manual_seed(mix_seed(seed, i))``.
    """
    h = 0x243F6A8885A308D3
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1
