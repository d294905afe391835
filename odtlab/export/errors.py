"""The errors of :mod:`odtlab.export`; each says what to change."""

from __future__ import annotations

from odtlab.errors import OdtlabError

__all__ = ["ExecuTorchMissing", "CannotExport", "WrongBatch"]


class ExecuTorchMissing(OdtlabError, ImportError):
    """ExecuTorch is not installed; the message gives the install line.

    ExecuTorch (about 200 MB) is an optional extra of odtlab:
    ``pip install -e ".[export]"`` from a checkout, or
    ``pip install "executorch==1.5.1"`` next to torch 2.13.
    """


class CannotExport(OdtlabError, RuntimeError):
    """A model, loss or recipe that cannot become an ExecuTorch training program.

    The message names the cause (data-dependent control flow, BatchNorm in
    train mode, a recipe part the runtime has no equivalent for...) and
    what to change.
    """


class WrongBatch(OdtlabError, ValueError):
    """A batch that does not match the one the program was exported with.

    An exported program has fixed shapes and dtypes: every batch must look
    like the example batch (same shape, same dtype).
    """
