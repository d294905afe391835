"""Test accuracy of a classifier, leaving the model exactly as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from odtlab.data import ArrayDataset

__all__ = ["accuracy", "eval_mode"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module in eval mode, then give each back its own previous mode.

    ``model.train()`` afterwards would wrongly switch on modules that a recipe
    keeps in eval mode on purpose (a frozen backbone's BatchNorm), so the
    modes are restored one module at a time.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def accuracy(
    model: nn.Module,
    data: Dataset,
    *,
    batch_size: int = 256,
    host_device: torch.device | str | None = None,
) -> float:
    """Share of ``data`` that ``model`` classifies correctly, in [0, 1].

    The model runs in eval mode (BatchNorm uses its running statistics,
    dropout is off) under ``torch.no_grad()``; its modes are restored after.
    The data is read in order, so no random state is used.

    Parameters
    ----------
    model : nn.Module
        Maps a batch of inputs to logits ``(B, num_classes)``.
    data : Dataset
        ``(x, y)`` pairs.
    batch_size : int
        Examples per forward pass (memory, not the result, depends on it).
    host_device : torch.device or str, optional
        Where to run; by default where the model's first parameter lives.

    Examples
    --------
    >>> from odtlab import data, models
    >>> acc = accuracy(models.mlp(), data.digits("test"))
    >>> 0.0 <= acc <= 1.0
    True
    """
    if len(data) == 0:  # type: ignore[arg-type]
        raise ValueError("accuracy: the test data is empty; pass a dataset with examples.")
    if host_device is None:
        first = next(model.parameters(), None)
        host_device = first.device if first is not None else torch.device("cpu")
    correct, total = 0, 0
    batches: Any
    if isinstance(data, ArrayDataset) and type(data).__getitem__ is ArrayDataset.__getitem__:
        # tensors already in memory: slice them (a DataLoader would stack one example at a time)
        batches = ((data.x[i : i + batch_size], data.y[i : i + batch_size])
                   for i in range(0, len(data), batch_size))  # fmt: skip
    else:
        # a private generator, or the DataLoader draws a seed from torch's global RNG
        batches = DataLoader(
            data, batch_size=batch_size, shuffle=False, generator=torch.Generator()
        )
    with eval_mode(model), torch.no_grad():
        for x, y in batches:
            logits = model(x.to(host_device))
            correct += int((logits.argmax(dim=-1).cpu() == y).sum())
            total += int(y.numel())
    return correct / total
