"""Replay buffers: a few old examples kept on the device, and what they cost in bytes.

A buffer has room for ``capacity`` examples, reserved up front (a device
cannot grow its memory later), stored as float32 or as 8 bits per value.

* :class:`ReservoirBuffer` keeps a uniform random sample of *everything*
  seen so far, without knowing how long the stream is (reservoir sampling,
  Vitter's "algorithm R", ACM TOMS 1985): example number ``n`` (from 1)
  replaces a random slot with probability ``capacity / n``.
* :class:`ClassBalancedBuffer` gives every class seen so far an equal
  share of the slots, with a reservoir inside each class, so a class that
  arrived late or rarely is not crowded out.

``x`` may also be *latent* activations (latent replay stores those instead
of the raw input). Every byte of the reserved storage is counted by
:func:`state_bytes`; :meth:`ReplayBuffer.bytes_for` says the same number
before anything is stored, for the device check.

Examples
--------
>>> buf = ReservoirBuffer(4, seed=0)
>>> buf.add(torch.zeros(10, 3), torch.arange(10))
>>> len(buf), buf.nbytes == 4 * (3 * 4 + 2)
(4, True)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable

import torch

from odtlab.cl.errors import InvalidStrategy

__all__ = ["state_bytes", "ReplayBuffer", "ReservoirBuffer", "ClassBalancedBuffer", "STORAGES"]

STORAGES = ("float32", "uint8")
LABEL_DTYPE = torch.int16  # labels below 32768 in 2 bytes; 8 would be waste on a device


def state_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the storages behind ``tensors``, each storage counted once (views are free).

    Examples
    --------
    >>> w = torch.zeros(10)
    >>> state_bytes([w, w[:5], torch.zeros(3, dtype=torch.uint8)])
    43
    """
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


class ReplayBuffer(ABC):
    """Fixed storage for ``capacity`` examples; subclasses decide which examples stay.

    Parameters
    ----------
    capacity : int
        Examples it can hold (>= 1).
    storage : {"float32", "uint8"}
        ``"uint8"`` stores each example as 8-bit codes plus its own minimum
        and step (two float32), 4x smaller for large examples, with a
        rounding error of at most half a step.
    seed : int
        Seeds the choice of which examples stay.
    """

    def __init__(self, capacity: int, *, storage: str = "float32", seed: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise InvalidStrategy(
                f"capacity={capacity!r}; a buffer needs room for at least 1 example"
            )
        if storage not in STORAGES:
            raise InvalidStrategy(f"storage={storage!r}; choose one of {STORAGES}")
        self.capacity = capacity
        self.storage = storage
        self.generator = torch.Generator().manual_seed(seed)
        self.seen = 0
        self._x: torch.Tensor | None = None
        self._lo = torch.empty(0)
        self._step = torch.empty(0)
        self._y = torch.empty(0, dtype=LABEL_DTYPE)
        self._filled: list[int] = []  # slots in use

    @staticmethod
    def bytes_for(capacity: int, sample_shape: Iterable[int], storage: str = "float32") -> int:
        """Bytes a buffer of ``capacity`` examples of ``sample_shape`` reserves (labels included).

        Examples
        --------
        >>> ReplayBuffer.bytes_for(100, (1, 8, 8)), ReplayBuffer.bytes_for(100, (1, 8, 8), "uint8")
        (25800, 7400)
        """
        numel = math.prod(sample_shape)
        per = numel * 4 if storage == "float32" else numel + 2 * 4
        return capacity * (per + LABEL_DTYPE.itemsize)

    def _allocate(self, x: torch.Tensor) -> None:
        shape = (self.capacity, *x.shape[1:])
        self._x = torch.zeros(
            shape, dtype=torch.float32 if self.storage == "float32" else torch.uint8
        )
        self._y = torch.zeros(self.capacity, dtype=LABEL_DTYPE)
        if self.storage == "uint8":
            self._lo = torch.zeros(self.capacity)
            self._step = torch.zeros(self.capacity)

    def _write(self, slot: int, x: torch.Tensor, y: torch.Tensor) -> None:
        assert self._x is not None
        x = x.detach().float()
        if self.storage == "float32":
            self._x[slot] = x
        else:
            lo, hi = float(x.min()), float(x.max())
            step = (hi - lo) / 255 if hi > lo else 1.0
            self._x[slot] = torch.round((x - lo) / step).clamp(0, 255).to(torch.uint8)
            self._lo[slot], self._step[slot] = lo, step
        self._y[slot] = int(y)

    def _read(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self._x is not None
        x = self._x[slots]
        if self.storage == "uint8":
            shape = (-1,) + (1,) * (x.ndim - 1)
            x = x.float() * self._step[slots].view(shape) + self._lo[slots].view(shape)
        return x, self._y[slots].long()

    @abstractmethod
    def _keep(self, y: int) -> int | None:
        """The slot the next example (label ``y``) goes to, or None to drop it (each buffer's policy)."""

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Offer a batch ``x`` of shape ``(B, ...)`` with labels ``y`` ``(B,)``, one example at a time."""
        if len(x) != len(y):
            raise InvalidStrategy(
                f"add got {len(x)} inputs and {len(y)} labels; give one label each"
            )
        if self._x is None:
            self._allocate(x)
        elif tuple(x.shape[1:]) != tuple(self._x.shape[1:]):
            raise InvalidStrategy(
                f"examples of shape {tuple(x.shape[1:])} offered to a buffer of shape "
                f"{tuple(self._x.shape[1:])}; one buffer holds one kind of example"
            )
        for xi, yi in zip(x, y, strict=True):
            self.seen += 1
            slot = self._keep(int(yi))
            if slot is not None:
                self._write(slot, xi, yi)

    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``n`` stored examples drawn uniformly with replacement (``None`` while empty)."""
        if not self._filled or n < 1:
            return None
        gen = self.generator if generator is None else generator
        pick = torch.randint(len(self._filled), (n,), generator=gen)
        return self._read(torch.tensor(self._filled)[pick])

    def all(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every stored example, in slot order."""
        if not self._filled:
            raise InvalidStrategy("the buffer is empty; add examples first")
        return self._read(torch.tensor(sorted(self._filled)))

    def labels(self) -> torch.Tensor:
        """Labels of the stored examples (int64), in slot order."""
        return self._y[torch.tensor(sorted(self._filled), dtype=torch.long)].long()

    @property
    def tensors(self) -> list[torch.Tensor]:
        """The reserved storage: codes or floats, labels, and the 8-bit scales."""
        if self._x is None:
            return []
        return [self._x, self._y] + ([self._lo, self._step] if self.storage == "uint8" else [])

    @property
    def nbytes(self) -> int:
        """Bytes reserved, measured on the storage (0 before the first example)."""
        return state_bytes(self.tensors)

    def __len__(self) -> int:
        return len(self._filled)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self.capacity}, storage={self.storage!r}, holds={len(self)})"


class ReservoirBuffer(ReplayBuffer):
    """A uniform random sample of every example offered so far (reservoir sampling).

    After ``n`` examples each one is in the buffer with probability
    ``capacity / n``, whatever the order; the tests check it with a
    chi-square test over many seeded runs.

    Examples
    --------
    >>> buf = ReservoirBuffer(3, seed=1)
    >>> buf.add(torch.zeros(100, 1), torch.arange(100))
    >>> len(buf), buf.seen
    (3, 100)
    """

    def _keep(self, y: int) -> int | None:
        if len(self._filled) < self.capacity:
            self._filled.append(len(self._filled))
            return self._filled[-1]
        j = int(torch.randint(self.seen, (1,), generator=self.generator))
        return j if j < self.capacity else None


class ClassBalancedBuffer(ReplayBuffer):
    """Equal slots for every class seen so far, a reservoir inside each class.

    When a new class appears, each old class gives up random slots until
    all classes hold at most ``capacity // classes_seen``.

    Examples
    --------
    >>> buf = ClassBalancedBuffer(6, seed=0)
    >>> buf.add(torch.zeros(40, 2), torch.tensor([0] * 30 + [1] * 8 + [2] * 2))
    >>> torch.bincount(buf.labels()).tolist()
    [2, 2, 2]
    """

    def __init__(self, capacity: int, *, storage: str = "float32", seed: int = 0) -> None:
        super().__init__(capacity, storage=storage, seed=seed)
        self._slots: dict[int, list[int]] = {}
        self._seen_class: dict[int, int] = {}
        self._free: list[int] = list(range(capacity - 1, -1, -1))

    def _keep(self, y: int) -> int | None:
        if y not in self._slots:
            self._slots[y], self._seen_class[y] = [], 0
            quota = max(self.capacity // len(self._slots), 1)
            for cls, slots in self._slots.items():
                while len(slots) > quota and cls != y:
                    out = slots.pop(int(torch.randint(len(slots), (1,), generator=self.generator)))
                    self._filled.remove(out)
                    self._free.append(out)
        self._seen_class[y] += 1
        quota = max(self.capacity // len(self._slots), 1)
        mine = self._slots[y]
        if len(mine) < quota and self._free:
            slot = self._free.pop()
            mine.append(slot)
            self._filled.append(slot)
            return slot
        j = int(torch.randint(self._seen_class[y], (1,), generator=self.generator))
        return mine[j] if j < len(mine) else None
