"""Everyday helpers: labels, class counts, whole data sets as tensors, seeded loaders.

They accept any map-style ``Dataset`` whose items are ``(x, y)``, and take a
fast path for odtlab's own datasets (and ``Subset``s of them), which keep
everything in two tensors.

Examples
--------
>>> from odtlab.data import digits
>>> train = digits("train")
>>> X, y = as_tensors(train)
>>> X.shape
torch.Size([1347, 1, 8, 8])
>>> class_counts(train)["0"]
134
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from odtlab.data._checks import check_int
from odtlab.data.base import ArrayDataset

__all__ = ["labels_of", "class_names", "class_counts", "as_tensors", "loader"]


def labels_of(data: Dataset | Tensor | np.ndarray | Sequence[int]) -> Tensor:
    """All labels of a dataset as an int64 tensor of shape ``(N,)``.

    ``data`` may also be the labels themselves (a tensor, array or list).

    Examples
    --------
    >>> labels_of([2, 0, 1]).tolist()
    [2, 0, 1]
    """
    if isinstance(data, ArrayDataset):
        return data.y
    if isinstance(data, Subset):
        return labels_of(data.dataset)[torch.as_tensor(list(data.indices), dtype=torch.int64)]
    if isinstance(data, TensorDataset):
        return data.tensors[1].to(torch.int64).reshape(-1)
    if isinstance(data, (Tensor, np.ndarray, list, tuple)):
        return torch.as_tensor(np.asarray(data), dtype=torch.int64).reshape(-1)
    targets = getattr(data, "targets", None)
    if targets is not None:
        return torch.as_tensor(np.asarray(targets), dtype=torch.int64).reshape(-1)
    return torch.tensor([int(data[i][1]) for i in range(len(data))], dtype=torch.int64)  # type: ignore[arg-type]


def class_names(data: Dataset, num_classes: int | None = None) -> list[str]:
    """The ``classes`` of a dataset (looking through ``Subset``), or ``"0"``, ``"1"``... if it has none."""
    while isinstance(data, Subset):
        data = data.dataset
    names = getattr(data, "classes", None)
    if names is not None:
        return [str(c) for c in names]
    if num_classes is None:
        labels = labels_of(data)
        num_classes = int(labels.max()) + 1 if labels.numel() else 0
    return [str(k) for k in range(num_classes)]


def class_counts(data: Dataset) -> dict[str, int]:
    """How many items each class has, keyed by class name in label order.

    Classes with no items are listed with 0, so the dict always has
    ``num_classes`` entries when the dataset names its classes.

    Examples
    --------
    >>> from odtlab.data import SyntheticShapes
    >>> class_counts(SyntheticShapes(12, classes=["circle", "ring", "star"]))
    {'circle': 4, 'ring': 4, 'star': 4}
    """
    labels = labels_of(data)
    names = class_names(data)
    counts = torch.bincount(labels, minlength=len(names)).tolist()
    names += [str(k) for k in range(len(names), len(counts))]
    return dict(zip(names, counts, strict=True))


def as_tensors(data: Dataset) -> tuple[Tensor, Tensor]:
    """The whole dataset as ``(X, y)``: inputs stacked along dim 0, labels int64 ``(N,)``.

    For odtlab datasets this returns the stored tensors themselves (no
    copy, so do not modify them in place); other datasets are read item by
    item, so keep them small.

    Examples
    --------
    >>> from odtlab.data import SensorActivity
    >>> X, y = as_tensors(SensorActivity(10))
    >>> X.shape, y.dtype
    (torch.Size([10, 3, 64]), torch.int64)
    """
    if isinstance(data, ArrayDataset):
        return data.x, data.y
    if isinstance(data, Subset):
        index = torch.as_tensor(list(data.indices), dtype=torch.int64)
        if isinstance(data.dataset, (ArrayDataset, Subset, TensorDataset)):
            X, y = as_tensors(data.dataset)
            return X[index], y[index]
    if isinstance(data, TensorDataset):
        return data.tensors[0], data.tensors[1].to(torch.int64)
    n = len(data)  # type: ignore[arg-type]
    if n == 0:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    items = [data[i] for i in range(n)]
    X = torch.stack([torch.as_tensor(x) for x, _ in items])
    y = torch.tensor([int(t) for _, t in items], dtype=torch.int64)
    return X, y


def loader(
    data: Dataset,
    batch_size: int = 64,
    *,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A ``DataLoader`` whose shuffling is fixed by ``seed``.

    The loader owns a ``torch.Generator`` seeded with ``seed``: two loaders
    built with the same seed give the same batches in the same order, epoch
    after epoch (each epoch is a different but reproducible shuffle), and
    the global random state is neither used nor changed.

    Parameters
    ----------
    data : Dataset
    batch_size : int
        Items per batch (>= 1).
    shuffle : bool
        Draw a new order every epoch (True) or keep the dataset order.
    seed : int
        Seed of the shuffling generator.
    drop_last : bool
        Drop a last, smaller batch.
    num_workers : int
        Worker processes (0: load in the main process, best for small data).

    Examples
    --------
    >>> from odtlab.data import digits
    >>> xb, yb = next(iter(loader(digits("test"), 32, seed=1)))
    >>> xb.shape
    torch.Size([32, 1, 8, 8])
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    num_workers = check_int("num_workers", num_workers, minimum=0)
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
