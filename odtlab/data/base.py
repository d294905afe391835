"""`ArrayDataset`: a dataset held as two tensors, the base of every odtlab dataset.

All odtlab datasets are small enough to live in memory, so each one is an
``ArrayDataset``: a float tensor ``x`` of shape ``(N, ...)`` and an int64
tensor ``y`` of shape ``(N,)``, plus the class names. Indexing gives one
``(x, y)`` pair, exactly like any ``torch.utils.data.Dataset``, and the whole
data set is one attribute away (``ds.x``, ``ds.y``) when a chapter wants to
look at it all at once.

Examples
--------
>>> import torch
>>> ds = ArrayDataset(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]), classes=["off", "on"])
>>> x, y = ds[1]
>>> x.shape, y.item(), ds.num_classes
(torch.Size([2]), 1, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from odtlab.data.errors import InvalidDataArgument

__all__ = ["ArrayDataset"]


class ArrayDataset(Dataset):
    """A labelled dataset stored as tensors ``x`` (features) and ``y`` (labels).

    Parameters
    ----------
    x : torch.Tensor
        Inputs, shape ``(N, ...)``; converted to float32.
    y : torch.Tensor
        Class indices, shape ``(N,)``; converted to int64, each in
        ``[0, len(classes))``.
    classes : sequence of str
        Class names; ``classes[k]`` is the name of label ``k``.
    name : str, optional
        A short name shown by ``repr``.

    Attributes
    ----------
    x, y : torch.Tensor
        The whole data set. Treat them as read-only: items share their memory.
    classes : list of str
    num_classes : int
    sample_shape : torch.Size
        Shape of one input, e.g. ``(1, 8, 8)``.

    Examples
    --------
    >>> ds = ArrayDataset(torch.rand(3, 1, 2, 2), torch.tensor([2, 0, 1]), classes=list("abc"))
    >>> len(ds), ds.sample_shape, ds[0][1].dtype
    (3, torch.Size([1, 2, 2]), torch.int64)
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, classes: Sequence[str], name: str = "ArrayDataset"
    ) -> None:
        x = torch.as_tensor(x)
        y = torch.as_tensor(y)
        if y.dim() != 1 or x.dim() < 1 or x.shape[0] != y.shape[0]:
            raise InvalidDataArgument(
                f"x must have shape (N, ...) and y shape (N,) with the same N; got x "
                f"{tuple(x.shape)} and y {tuple(y.shape)}."
            )
        classes = [str(c) for c in classes]
        if not classes:
            raise InvalidDataArgument("classes must name at least one class; got none.")
        y = y.to(torch.int64)
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise InvalidDataArgument(
                f"labels must lie in [0, {len(classes) - 1}] for {len(classes)} classes; "
                f"got labels from {int(y.min())} to {int(y.max())}."
            )
        self.x = x.to(torch.float32)
        self.y = y
        self.classes = classes
        self.name = name

    @property
    def num_classes(self) -> int:
        """Number of classes (the length of ``classes``)."""
        return len(self.classes)

    @property
    def sample_shape(self) -> torch.Size:
        """Shape of one input ``x``, without the batch dimension."""
        return self.x.shape[1:]

    @property
    def targets(self) -> torch.Tensor:
        """All labels, shape ``(N,)`` (the name torchvision uses)."""
        return self.y

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def _describe(self) -> str:
        """Keyword arguments shown in ``repr``; subclasses override."""
        return f"n={len(self)}, classes={self.num_classes}"

    def __repr__(self) -> str:
        lo, hi = (float(self.x.min()), float(self.x.max())) if self.x.numel() else (0.0, 0.0)
        return (
            f"{self.name}({self._describe()}) "
            f"x: {tuple(self.sample_shape)} float32 in [{lo:.3g}, {hi:.3g}], "
            f"y: int64 in [0, {self.num_classes - 1}]"
        )
