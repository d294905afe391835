"""The one place that checks for Flower: importing :mod:`odtlab.fl.flower` without ``flwr`` fails here.

The package ``__init__`` imports this module first, so every module of the
bridge can import ``flwr`` at its top and a missing install still ends in
one clear :class:`~odtlab.fl.FlowerNotInstalled` naming the fix
(``pip install -e ".[fl]"``), not in a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

from odtlab.fl.errors import FlowerNotInstalled

__all__ = ["FLWR_VERSION", "SUPPORTED"]

SUPPORTED = "1.42"  # the bridge is written against Flower 1.42's message API

try:
    import flwr
except ImportError as err:  # pragma: no cover - exercised where flwr is absent
    raise FlowerNotInstalled(str(err)) from err

FLWR_VERSION: str = getattr(flwr, "__version__", "unknown")
