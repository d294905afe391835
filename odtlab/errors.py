"""Errors raised by odtlab.

Every public error subclasses :class:`OdtlabError`, so a notebook can catch
them all with one ``except odt.OdtlabError``. Each message says what went
wrong *and* how to fix it.
"""

from __future__ import annotations

__all__ = [
    "OdtlabError",
    "UnknownDevice",
    "UnknownModel",
    "DoesNotFit",
    "InvalidRecipe",
    "CorruptCheckpoint",
    "GradingError",
    "check_choice",
]


class OdtlabError(Exception):
    """Base class of every error that odtlab raises on purpose."""


class UnknownDevice(OdtlabError, KeyError):
    """A device name that is not in the registry.

    The message lists the known names, so a typo is easy to spot.
    """

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class UnknownModel(OdtlabError, KeyError):
    """A model name that is not in the zoo; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DoesNotFit(OdtlabError):
    """A training workload needs more memory than the device has.

    The message says by how many bytes, which category is largest and what to
    try instead.
    """


class InvalidRecipe(OdtlabError, ValueError):
    """A recipe, or a combination of recipe parts, that cannot work."""


class CorruptCheckpoint(OdtlabError):
    """A checkpoint file that is truncated, tampered with or not ours."""


class GradingError(OdtlabError):
    """A lab or submission that the grading tools cannot process."""


def check_choice(
    what: str, value: object, allowed: tuple[str, ...] | list[str], error: type[Exception]
) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ``error`` listing the allowed values.

    The one copy of this check; each package passes its own error class.

    >>> check_choice("mode", "keep", ("keep", "frozen"), ValueError)
    'keep'
    """
    if not isinstance(value, str) or value not in allowed:
        raise error(f"{what} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
    return value
