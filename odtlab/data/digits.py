"""Handwritten digits: a small real data set that ships with scikit-learn.

The UCI "Optical Recognition of Handwritten Digits" set as packaged by
:func:`sklearn.datasets.load_digits`: 1797 grey images of 8x8 pixels, each
pixel an ink count from 0 to 16, ten classes ``"0"`` ... ``"9"``. It is
installed with scikit-learn, so nothing is downloaded, and it is small
enough to train on in seconds, even on a microcontroller-sized model.

Examples
--------
>>> train = digits("train")
>>> test = digits("test")
>>> len(train) + len(test)
1797
>>> x, y = train[0]
>>> x.shape
torch.Size([1, 8, 8])
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from odtlab.data._checks import check_choice, check_float, check_int
from odtlab.data.base import ArrayDataset

__all__ = ["Digits", "digits", "stratified_split"]

SPLITS = ("train", "test")


def stratified_split(
    labels: np.ndarray | torch.Tensor, test_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into train and test so that every class keeps its share.

    Each class's indices are shuffled with ``numpy.random.default_rng(seed)``
    and ``round(test_fraction * count)`` of them go to the test side, so both
    sides have (nearly) the class proportions of the whole.

    Parameters
    ----------
    labels : array of int, shape (N,)
    test_fraction : float
        Share of each class put in the test side, in (0, 1).
    seed : int
        Same seed, same split.

    Returns
    -------
    train_idx, test_idx : numpy arrays of int64
        Sorted, disjoint, and together every index in ``range(N)`` once.

    Examples
    --------
    >>> tr, te = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0)
    >>> len(tr), len(te)
    (4, 4)
    """
    test_fraction = check_float(
        "test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True
    )
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        test_parts.append(members[: int(round(test_fraction * len(members)))])
    test_idx = np.sort(np.concatenate(test_parts)).astype(np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask).astype(np.int64), test_idx


class Digits(ArrayDataset):
    """One split of the scikit-learn digits, as images of shape ``(1, r, r)``.

    Build it with :func:`digits`. Besides the :class:`ArrayDataset` attributes
    it records how it was made.

    Attributes
    ----------
    split : str
        ``"train"`` or ``"test"``.
    resolution : int
        Side of each image in pixels.
    mean, std : float
        The statistics that were subtracted and divided (those of the train
        split at this resolution, pixel values in [0, 1]); ``0.0`` and ``1.0``
        when ``normalize=False``. Undo with ``x * std + mean``.
    indices : torch.Tensor
        Positions of these images in ``sklearn.datasets.load_digits()``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        split: str,
        resolution: int,
        seed: int,
        test_fraction: float,
        mean: float,
        std: float,
        indices: torch.Tensor,
    ) -> None:
        super().__init__(x, y, classes=[str(d) for d in range(10)], name="Digits")
        self.split = split
        self.resolution = resolution
        self.seed = seed
        self.test_fraction = test_fraction
        self.mean = mean
        self.std = std
        self.indices = indices

    def _describe(self) -> str:
        norm = (
            f"mean={self.mean:.4f}, std={self.std:.4f}" if self.std != 1.0 or self.mean else "raw"
        )
        return (
            f"split={self.split!r}, n={len(self)}, resolution={self.resolution}, "
            f"seed={self.seed}, {norm}"
        )


def _resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize ``(N, 1, 8, 8)`` images to ``(N, 1, r, r)``: bilinear up, area-average down."""
    if resolution == images.shape[-1]:
        return images
    if resolution > images.shape[-1]:
        return F.interpolate(
            images, size=(resolution, resolution), mode="bilinear", align_corners=False
        )
    return F.interpolate(images, size=(resolution, resolution), mode="area")


def digits(
    split: str = "train",
    *,
    resolution: int = 8,
    test_fraction: float = 0.25,
    seed: int = 0,
    normalize: bool = True,
) -> Digits:
    """Load one split of the handwritten digits (real data, no download).

    Parameters
    ----------
    split : {"train", "test"}
        Which side of the split to return.
    resolution : int
        Image side in pixels. 8 is native; larger sides are upsampled
        bilinearly (e.g. 16 or 32 to feed a model built for bigger inputs),
        smaller ones averaged down.
    test_fraction : float
        Share of each class held out for testing, in (0, 1). With 0.25 the
        split is 1347 train / 450 test images.
    seed : int
        Fixes the split: the same seed always gives the same stratified,
        disjoint train and test sets.
    normalize : bool
        Pixels are first scaled from ink counts 0..16 to [0, 1]. When True
        (default) they are then standardised, ``(x - mean) / std``, with one
        mean and std computed over all pixels of the *train* split (also for
        the test split, so no test statistics leak into training). The
        train split then has mean 0 and std 1.

    Returns
    -------
    Digits
        Items are ``(x, y)`` with ``x`` float32 of shape ``(1, r, r)`` and
        ``y`` an int64 scalar, the digit.

    Examples
    --------
    >>> big = digits("test", resolution=32, seed=1)
    >>> big[0][0].shape, big.num_classes
    (torch.Size([1, 32, 32]), 10)
    """
    from sklearn.datasets import load_digits

    split = check_choice("split", split, SPLITS)
    resolution = check_int("resolution", resolution, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    bunch = load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)

    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0).unsqueeze(1)
    images = _resize(images, resolution)
    mean, std = 0.0, 1.0
    if normalize:
        train_images = images[torch.from_numpy(train_idx)]
        mean = float(train_images.mean())
        std = float(train_images.std())
        images = (images - mean) / std
    chosen = torch.from_numpy(train_idx if split == "train" else test_idx)
    return Digits(
        images[chosen].contiguous(),
        torch.from_numpy(labels)[chosen],
        split=split,
        resolution=resolution,
        seed=seed,
        test_fraction=float(test_fraction),
        mean=mean,
        std=std,
        indices=chosen,
    )
