"""Errors of :mod:`odtlab.cl`: a stream that cannot be learned, a strategy that cannot run.

Each message names what is wrong and how to fix it. A replay buffer or any
other strategy state that does not fit the simulated device raises the
library's :class:`~odtlab.errors.DoesNotFit`, like every other memory
overflow of the course.
"""

from __future__ import annotations

from odtlab.errors import OdtlabError

__all__ = ["InvalidStream", "UnsupportedModel", "InvalidStrategy"]


class InvalidStream(OdtlabError, ValueError):
    """A stream of experiences that is empty, overlapping or inconsistent."""


class InvalidStrategy(OdtlabError, ValueError):
    """A continual strategy built with arguments it cannot use (a negative buffer, ...)."""


class UnsupportedModel(OdtlabError, ValueError):
    """A strategy given a model (or recipe) it cannot handle, e.g. latent replay at a cut
    that is not a child of the model."""
