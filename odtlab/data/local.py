"""MNIST and CIFAR-10 read from files you already have; odtlab never downloads.

Point :func:`mnist` or :func:`cifar10` at a folder holding the standard
files. When they are missing, :class:`~odtlab.data.errors.DatasetNotFound`
says which files were expected where and where to get them.

MNIST files (from Yann LeCun's MNIST page, or any mirror of it), plain or
gzipped (``.gz``)::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

CIFAR-10 (the "CIFAR-10 python version" from Alex Krizhevsky's CIFAR page),
the unpacked folder ``cifar-10-batches-py/`` with ``data_batch_1`` ...
``data_batch_5`` and ``test_batch``.

The CIFAR-10 batches are Python pickles, and unpickling can run code. Load
only files from a source you trust. As a second line of defence the reader
refuses any pickle that refers to something other than NumPy arrays and
plain Python values.

Examples
--------
>>> train = mnist("~/data/mnist", "train")  # doctest: +SKIP
>>> train[0][0].shape                       # doctest: +SKIP
torch.Size([1, 28, 28])
"""

from __future__ import annotations

import codecs
import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from odtlab.data._checks import check_choice
from odtlab.data.base import ArrayDataset
from odtlab.data.errors import DatasetNotFound, InvalidDataFile

__all__ = [
    "mnist",
    "cifar10",
    "LocalImages",
    "read_idx",
    "MNIST_FILES",
    "CIFAR10_FILES",
    "CIFAR10_CLASSES",
]

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{k}" for k in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


class LocalImages(ArrayDataset):
    """Images read from local files (MNIST or CIFAR-10); records the split and the files read."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        classes: list[str],
        name: str,
        *,
        split: str,
        files: list[Path],
    ) -> None:
        super().__init__(x, y, classes, name)
        self.split = split
        self.files = files

    def _describe(self) -> str:
        return f"split={self.split!r}, n={len(self)}, folder={str(self.files[0].parent)!r}"


_NEVER = "odtlab never downloads data; fetch the files once yourself and point root at them."


def _idx_dtype(code: int) -> np.dtype:
    table = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if code not in table:
        raise InvalidDataFile(f"Unknown IDX element type code 0x{code:02x}.")
    return np.dtype(table[code])


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzipped, into a NumPy array.

    The format: two zero bytes, a type code (0x08 for unsigned bytes), the
    number of dimensions, then each dimension as a big-endian 32-bit int,
    then the values.

    Examples
    --------
    >>> read_idx("train-images-idx3-ubyte").shape  # doctest: +SKIP
    (60000, 28, 28)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InvalidDataFile(f"{path} is not an IDX file: it must start with two zero bytes.")
    dtype, ndim = _idx_dtype(raw[2]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InvalidDataFile(f"{path} is truncated: its header promises {ndim} dimensions.")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise InvalidDataFile(
            f"{path} holds {len(raw) - header} bytes of data but its header {shape} needs "
            f"{count * dtype.itemsize}; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(
    root: Path, subdirs: tuple[str, ...], names: tuple[str, ...], gz: bool
) -> list[Path] | None:
    """The files ``names`` in ``root`` or one of its ``subdirs`` (all in the same folder)."""
    for folder in (root, *(root / s for s in subdirs)):
        found = []
        for name in names:
            candidates = [folder / name] + ([folder / f"{name}.gz"] if gz else [])
            hit = next((c for c in candidates if c.is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    return None


def _missing(
    dataset: str, root: Path, subdirs: tuple[str, ...], names: tuple[str, ...], where: str
) -> DatasetNotFound:
    folders = ", ".join(str(f) for f in (root, *(root / s for s in subdirs)))
    state = "does not exist" if not root.exists() else "does not hold them"
    return DatasetNotFound(
        f"{dataset} files not found. Expected {', '.join(names)} in one of: {folders} "
        f"(root {state}). Get them from {where}. {_NEVER}"
    )


def mnist(root: str | Path, split: str = "train", *, normalize: bool = False) -> LocalImages:
    """MNIST handwritten digits from local IDX files: 28x28 grey images, 10 classes.

    Parameters
    ----------
    root : str or Path
        Folder holding the four IDX files (or ``root/MNIST/raw`` or
        ``root/mnist``, the layouts torchvision and others use). ``~`` is expanded.
    split : {"train", "test"}
        60,000 training or 10,000 test images in the real files.
    normalize : bool
        Pixels are scaled to [0, 1]; with True they are then standardised
        with the usual MNIST training statistics (mean 0.1307, std 0.3081).

    Returns
    -------
    LocalImages
        Items ``(x, y)``, ``x`` of shape ``(1, 28, 28)``.

    Raises
    ------
    DatasetNotFound
        When the files are not there; the message lists what was expected.
    InvalidDataFile
        When a file is not a valid IDX file or images and labels disagree.
    """
    split = check_choice("split", split, ("train", "test"))
    root = Path(root).expanduser()
    names = MNIST_FILES[split]
    subdirs = ("MNIST/raw", "mnist")
    files = _find(root, subdirs, names, gz=True)
    if files is None:
        raise _missing(
            "MNIST", root, subdirs, names, "Yann LeCun's MNIST database page (or a mirror)"
        )
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise InvalidDataFile(
            f"MNIST images {files[0]} have shape {images.shape} and labels {files[1]} shape "
            f"{labels.shape}; expected (N, rows, cols) and (N,)."
        )
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    if normalize:
        x = (x - 0.1307) / 0.3081
    y = torch.from_numpy(labels.astype(np.int64))
    return LocalImages(x, y, [str(d) for d in range(10)], "MNIST", split=split, files=files)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and plain values, and nothing else."""

    def find_class(self, module: str, name: str):  # type: ignore[override]
        core = getattr(np, "_core", None) or np.core
        allowed = {
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("numpy.core.multiarray", "_reconstruct"): core.multiarray._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): core.multiarray._reconstruct,
            ("numpy.core.multiarray", "scalar"): core.multiarray.scalar,
            ("numpy._core.multiarray", "scalar"): core.multiarray.scalar,
            ("numpy.core.numeric", "_frombuffer"): core.numeric._frombuffer,
            ("numpy._core.numeric", "_frombuffer"): core.numeric._frombuffer,
            ("_codecs", "encode"): codecs.encode,
        }
        if (module, name) not in allowed:
            raise InvalidDataFile(
                f"Refusing to unpickle {module}.{name}: a CIFAR-10 batch holds only NumPy arrays "
                "and lists. This file is not a genuine CIFAR-10 batch; do not load it."
            )
        return allowed[(module, name)]


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except InvalidDataFile:
        raise
    except Exception as err:  # a broken pickle can raise many kinds of errors
        raise InvalidDataFile(f"{path} is not a readable CIFAR-10 batch: {err}") from None
    if not isinstance(batch, dict):
        raise InvalidDataFile(
            f"{path} should hold a dict with data and labels, got {type(batch).__name__}."
        )
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise InvalidDataFile(f"{path} lacks the 'data' or 'labels' entry of a CIFAR-10 batch.")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise InvalidDataFile(
            f"{path}: data has shape {data.shape} and labels {labels.shape}; expected (N, 3072) and (N,)."
        )
    return data, labels


def cifar10(root: str | Path, split: str = "train", *, normalize: bool = False) -> LocalImages:
    """CIFAR-10 from the local python-version batches: 32x32 colour images, 10 classes.

    Only load files from a source you trust: they are pickles. The reader
    refuses pickles that ask for anything but NumPy arrays, which blocks the
    usual code-running tricks, but is not a full security guarantee.

    Parameters
    ----------
    root : str or Path
        The ``cifar-10-batches-py`` folder itself or a folder containing it.
    split : {"train", "test"}
        50,000 training images (five batches) or 10,000 test images.
    normalize : bool
        Pixels are scaled to [0, 1]; with True each channel is then
        standardised with the usual CIFAR-10 training statistics.

    Returns
    -------
    LocalImages
        Items ``(x, y)``, ``x`` of shape ``(3, 32, 32)``; ``classes`` are
        ``airplane`` ... ``truck``.

    Raises
    ------
    DatasetNotFound, InvalidDataFile
    """
    split = check_choice("split", split, ("train", "test"))
    root = Path(root).expanduser()
    names = CIFAR10_FILES[split]
    subdirs = ("cifar-10-batches-py",)
    files = _find(root, subdirs, names, gz=False)
    if files is None:
        raise _missing(
            "CIFAR-10", root, subdirs, names,
            "Alex Krizhevsky's CIFAR page ('CIFAR-10 python version', then unpack the .tar.gz)",
        )  # fmt: skip
    parts = [_load_batch(p) for p in files]
    data = np.concatenate([d for d, _ in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([lab for _, lab in parts])
    x = torch.from_numpy(data.astype(np.float32) / 255.0)
    if normalize:
        mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
        std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
        x = (x - mean) / std
    y = torch.from_numpy(labels)
    return LocalImages(x, y, list(CIFAR10_CLASSES), "CIFAR10", split=split, files=files)
