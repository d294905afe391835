"""Argument checks shared by the model builders.

Each check raises :class:`ValueError` whose message names the argument, the
value it received and what is allowed, in the style of scikit-learn.
"""

from __future__ import annotations

import numbers

__all__ = ["check_int", "check_probability", "check_positive_float"]


def check_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer ``>= minimum``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a real number ``> 0``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def check_probability(name: str, value: object) -> float:
    """Return ``value`` as a float if it lies in ``[0, 1)``, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)
