"""Train in short windows, as a phone does between uses, and resume exactly where it stopped.

A scheduling policy (:mod:`odtlab.devices.scheduling`) lets a phone train
only in windows: while it charges, while the screen is off. When a window
closes, the app saves the training state with an atomic checkpoint
(:mod:`odtlab.train.checkpoint`: model, optimizer, data position, random
states and the mixed-precision loss scaler) and may be killed; when the next
window opens, a *fresh* process builds the model again and resumes.

:func:`train_in_windows` plays that out with :meth:`Trainer.fit`
(``resume=True, until=...``): one fresh trainer per window. The final
weights equal an uninterrupted run's bit for bit, because nothing the next
step depends on is left out of the checkpoint.

Examples
--------
>>> import tempfile
>>> from odtlab import data, models
>>> def make(folder):
...     return Trainer(models.mlp(seed=0), device=None, steps=9, batch_size=32,
...                    checkpoint_dir=folder, progress=False)
>>> run = train_in_windows(make, data.digits("train"), [4, 2, 3], folder=tempfile.mkdtemp())
>>> run.window_ends, run.identical
([4, 6, 9], True)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from odtlab.train.powerloss import same_weights
from odtlab.train.trainer import Trainer

__all__ = ["WindowedRun", "train_in_windows"]


@dataclass
class WindowedRun:
    """What :func:`train_in_windows` did.

    Attributes
    ----------
    window_ends : list of int
        Step reached at the end of each window (a checkpoint was saved there).
    trainer : Trainer
        The last window's trainer (its model holds the final weights).
    final_state : dict of str to Tensor
        The final ``state_dict`` (CPU copies).
    identical : bool or None
        Whether every tensor equals the uninterrupted run's (``None``: not compared).
    mismatched : list of str
        Names of the tensors that differ.
    reference : Trainer or None
        The uninterrupted run's trainer, when compared.
    """

    window_ends: list[int]
    trainer: Trainer = field(repr=False)
    final_state: dict[str, torch.Tensor] = field(repr=False)
    identical: bool | None = None
    mismatched: list[str] = field(default_factory=list)
    reference: Trainer | None = field(default=None, repr=False)


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}


def train_in_windows(
    make_trainer: Callable[[Path], Trainer],
    train_data: Dataset,
    windows: Sequence[int],
    *,
    folder: str | Path | None = None,
    compare: bool = True,
) -> WindowedRun:
    """Train in windows of ``windows[i]`` steps, a fresh trainer each, resuming from checkpoints.

    Parameters
    ----------
    make_trainer : callable
        ``make_trainer(folder) -> Trainer``: a fresh model and a trainer with
        ``checkpoint_dir=folder`` and the same settings every call.
    train_data : Dataset
    windows : sequence of int
        Steps in each window (each >= 1); they should add up to the run's
        length (the last window stops at the run's end anyway).
    folder : str or Path, optional
        An empty (or missing) folder for the checkpoints; a temporary one by default.
    compare : bool, default True
        Also train without interruption and compare the final weights.

    Raises
    ------
    ValueError
        For an empty list, a window under one step, or a non-empty folder.
    """
    if not windows or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in windows):
        raise ValueError(f"train_in_windows: windows must be ints >= 1, got {list(windows)!r}")
    root = Path(folder) if folder is not None else Path(tempfile.mkdtemp())
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"train_in_windows: folder {root} is not empty; its checkpoint would be "
                         "resumed. Pass an empty folder or leave folder out.")  # fmt: skip
    ends, done, trainer = [], 0, None
    for width in windows:
        trainer = make_trainer(root / "windows")  # the app starts afresh in every window
        trainer.fit(train_data, resume=True, until=done + width)
        done = trainer.step
        ends.append(done)
    assert trainer is not None
    run = WindowedRun(window_ends=ends, trainer=trainer, final_state=_state(trainer))
    if compare:
        run.reference = make_trainer(root / "reference")
        run.reference.fit(train_data)
        run.identical, run.mismatched = same_weights(run.final_state, _state(run.reference))
    return run
