"""Errors raised by :mod:`odtlab.data`.

Each one subclasses :class:`odtlab.errors.OdtlabError`, so ``except
odt.OdtlabError`` catches them, and also the matching built-in error
(``FileNotFoundError``, ``ValueError``, ``KeyError``), so code written for
plain Python keeps working.

Examples
--------
>>> from odtlab.data import DatasetNotFound
>>> issubclass(DatasetNotFound, FileNotFoundError)
True
"""

from __future__ import annotations

from odtlab.errors import OdtlabError

__all__ = ["DatasetNotFound", "InvalidDataArgument", "UnknownDomain", "InvalidDataFile"]


class DatasetNotFound(OdtlabError, FileNotFoundError):
    """The files of a local dataset (MNIST, CIFAR-10) are not where we looked.

    The message lists the files that were expected, the folders searched,
    where to get the files, and reminds that odtlab never downloads.
    """

    def __str__(self) -> str:  # FileNotFoundError would format (errno, msg)
        return str(self.args[0]) if self.args else ""


class InvalidDataArgument(OdtlabError, ValueError):
    """An argument to a dataset or data utility that is out of range.

    The message names the argument, the value given and what is allowed.
    """


class UnknownDomain(InvalidDataArgument, KeyError):
    """A domain (or class, or activity) name that is not known; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class InvalidDataFile(OdtlabError, ValueError):
    """A data file that exists but is not in the expected format (or is unsafe to load)."""
