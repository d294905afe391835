"""Conversions between odtlab's parameters (``dict[str, Tensor]``) and Flower's records.

Flower carries a model as an :class:`flwr.app.ArrayRecord` (named arrays,
serialised as NumPy bytes) and settings as a :class:`flwr.app.ConfigRecord`
(named scalars). The conversion is exact: float32 in, the same float32
bits out, so an engine that moves parameters through Flower aggregates the
same numbers as one that keeps them in memory.

Examples
--------
>>> import torch
>>> params = {"w": torch.tensor([[1.0, 2.0]]), "b": torch.tensor([0.5])}
>>> back = from_array_record(to_array_record(params))
>>> all(torch.equal(params[k], back[k]) for k in params), list(back)
(True, ['w', 'b'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord

__all__ = ["to_array_record", "from_array_record", "to_config_record"]


def to_array_record(params: Mapping[str, torch.Tensor]) -> ArrayRecord:
    """Flower's record of the tensors ``params``, by name and in order (copied, detached, on CPU).

    Parameters
    ----------
    params : mapping of str to Tensor
        A ``state_dict`` or the parameters a client trained.

    Returns
    -------
    ArrayRecord
    """
    return ArrayRecord({name: t.detach().cpu().contiguous() for name, t in params.items()})


def from_array_record(record: ArrayRecord) -> dict[str, torch.Tensor]:
    """The tensors in ``record``, by name and in order: the inverse of :func:`to_array_record`."""
    return {name: t.clone() for name, t in record.to_torch_state_dict().items()}


def to_config_record(config: Mapping[str, Any]) -> ConfigRecord:
    """Flower's record of a strategy's ``configure(round)`` dict (scalars: bool, int, float, str).

    Raises
    ------
    TypeError
        For a value Flower cannot carry (a tensor, a dict); the message names the key.
    """
    for key, value in config.items():
        if not isinstance(value, (bool, int, float, str, bytes)):
            raise TypeError(
                f"configure() returned {key!r}={value!r} ({type(value).__name__}); Flower "
                "carries only bool, int, float, str and bytes in a ConfigRecord"
            )
    return ConfigRecord(dict(config))
