"""What a run must remember, besides weights and optimizer, to resume bit-exactly.

Two sources of randomness shape a training run, and a checkpoint must hold
the state of both:

* **the data order**: the loader shuffles with a ``torch.Generator``. At the
  start of each epoch the loader draws that epoch's order from it, so the
  checkpoint keeps the generator's state *at the start of the current
  epoch* and how many batches of the epoch were used; resuming restores the
  state, starts the epoch again and skips those batches;
* **the model's own random draws** (dropout masks): :class:`PrivateRNG`
  keeps a copy of torch's random state for one trainer and swaps it in
  around each step, so the run never touches (or depends on) torch's
  global random state, and the copy goes into the checkpoint.

Examples
--------
>>> rng = PrivateRNG(seed=1)
>>> with rng.active():
...     a = torch.rand(2)
>>> rng2 = PrivateRNG(seed=1)
>>> with rng2.active():
...     b = torch.rand(2)
>>> torch.equal(a, b)
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader

__all__ = ["PrivateRNG", "RunState", "position_loader"]


class PrivateRNG:
    """A trainer's own copy of torch's random state (CPU, and CUDA when training there).

    Parameters
    ----------
    seed : int
        Seed of the copy.
    device : torch.device or str, default "cpu"
        The host device; on CUDA its generator is forked as well.
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=self._cuda):
            torch.manual_seed(seed)
            self._states = self._capture()

    def _capture(self) -> dict[str, torch.Tensor]:
        states = {"cpu": torch.get_rng_state()}
        if self._cuda:
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return states

    def state(self) -> dict[str, torch.Tensor]:
        """The states as uint8 tensors (what a checkpoint stores)."""
        return {k: v.clone() for k, v in self._states.items()}

    def set_state(self, states: dict[str, torch.Tensor]) -> None:
        """Continue from saved states."""
        self._states = {k: v.clone() for k, v in states.items()}

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Run the block with this copy as torch's random state; the global one is restored."""
        with torch.random.fork_rng(devices=self._cuda):
            torch.set_rng_state(self._states["cpu"])
            if "cuda" in self._states:
                torch.cuda.set_rng_state(self._states["cuda"], self.device)
            yield
            self._states = self._capture()


@dataclass
class RunState:
    """The loop's position, random states and curves, as stored in a checkpoint's ``extra``.

    Attributes
    ----------
    step : int
        Steps done.
    loader_state : Tensor
        The loader generator's state at the start of the current epoch.
    loader_pos : int
        Batches of that epoch already used (0: the next step starts an epoch).
    rng : dict of Tensor
        :meth:`PrivateRNG.state`.
    losses : list of float
        Loss of each step so far.
    accuracies : list of (int, float)
        ``(step, accuracy)`` of each evaluation so far.
    """

    step: int
    loader_state: torch.Tensor
    loader_pos: int
    rng: dict[str, torch.Tensor]
    losses: list[float] = field(default_factory=list)
    accuracies: list[tuple[int, float]] = field(default_factory=list)

    def to_extra(self, config: dict[str, Any]) -> dict[str, Any]:
        """Plain tensors and values for ``save_checkpoint(extra=...)``; ``config`` names the run."""
        return {
            "trainer": dict(config),
            "loader_state": self.loader_state,
            "loader_pos": self.loader_pos,
            "rng": dict(self.rng),
            "loss_curve": torch.tensor(self.losses, dtype=torch.float64),
            "accuracy_curve": torch.tensor(self.accuracies, dtype=torch.float64).reshape(-1, 2),
        }

    @classmethod
    def from_extra(cls, step: int, extra: dict[str, Any]) -> RunState:
        """Rebuild the state saved by :meth:`to_extra` at ``step``."""
        return cls(
            step=step,
            loader_state=extra["loader_state"],
            loader_pos=int(extra["loader_pos"]),
            rng={k: v.clone() for k, v in extra["rng"].items()},
            losses=[float(v) for v in extra["loss_curve"].tolist()],
            accuracies=[(int(s), float(a)) for s, a in extra["accuracy_curve"].tolist()],
        )


def position_loader(loader: DataLoader, state: RunState) -> tuple[Iterator[Any] | None, int]:
    """Put ``loader`` where ``state`` left it: ``(iterator or None, batches used this epoch)``.

    ``None`` means the next step starts a new epoch (from the restored
    generator state); otherwise the epoch is restarted and the used batches skipped.
    """
    gen = loader.generator
    assert gen is not None, "the trainer's loader always has a generator"
    gen.set_state(state.loader_state)
    if state.loader_pos == 0:
        return None, len(loader)
    it = iter(loader)
    for _ in range(state.loader_pos):
        next(it)
    return it, state.loader_pos
