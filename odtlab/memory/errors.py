"""Errors raised by :mod:`odtlab.memory`.

Both subclass :class:`odtlab.OdtlabError`, so ``except odt.OdtlabError``
catches them, and a standard exception type too, so ``except ValueError``
keeps working in code that does not know odtlab.
"""

from __future__ import annotations

from odtlab.errors import OdtlabError

__all__ = ["MemoryArgumentError", "AnalyticUnsupported"]


class MemoryArgumentError(OdtlabError, ValueError):
    """A bad argument to a memory function; the message names it and lists what is allowed."""


class AnalyticUnsupported(OdtlabError, NotImplementedError):
    """The analytic model has no formula for a layer type or operation.

    The message names the layer type (or operation) and the module it sits
    in. The *measured* path (``method="measured"``, the default of
    :func:`odtlab.memory.profile_training`) works for every model, because
    it asks PyTorch what it saves instead of predicting it.
    """
