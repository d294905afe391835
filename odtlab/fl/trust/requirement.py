"""The one place that checks for the trust extra: importing :mod:`odtlab.fl.trust` without it fails here.

The package ``__init__`` imports this module first, so every module can
import ``opacus`` and ``cryptography`` at its top and a missing install still
ends in one clear :class:`~odtlab.fl.TrustNotInstalled` naming the fix
(``pip install -e ".[trust]"``), not in a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

from odtlab.fl.errors import TrustNotInstalled

__all__ = ["OPACUS_VERSION", "CRYPTOGRAPHY_VERSION"]

try:
    import cryptography
    import opacus
except ImportError as err:  # pragma: no cover - exercised where the extra is absent
    raise TrustNotInstalled(str(err)) from err

OPACUS_VERSION: str = getattr(opacus, "__version__", "unknown")
CRYPTOGRAPHY_VERSION: str = getattr(cryptography, "__version__", "unknown")
