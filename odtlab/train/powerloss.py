"""Pull the plug mid-training, resume, and check nothing was lost.

:func:`simulate_power_loss` runs one training job three times:

1. **interrupted**: with checkpoints, and a simulated power cut
   (:class:`~odtlab.train.errors.PowerLoss`) right after step
   ``kill_at_step`` or, with ``during_save=True``, in the middle of writing
   that step's checkpoint (the temporary file is cut after a fraction of its
   bytes, as a dying battery would leave it);
2. **resumed**: a *fresh* trainer (new model, new optimizer, as after a
   reboot) restores the newest good checkpoint and finishes the job;
3. **reference** (optional): the same job without interruption.

The resumed weights must equal the reference weights *bit for bit*: same
model and optimizer state, same data order (the loader's generator state is
in the checkpoint), same dropout masks (the trainer's random state is in
the checkpoint). Steps done after the last checkpoint are simply done again.

Examples
--------
>>> from odtlab import data, models, train
>>> def make(folder):
...     return train.Trainer(models.mlp(seed=0), device=None, steps=12, batch_size=32,
...                          checkpoint_dir=folder, checkpoint_every=5, progress=False)
>>> result = train.simulate_power_loss(make, data.digits("train"), kill_at_step=7)
>>> result.resumed_from, result.identical
(5, True)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from odtlab.train.errors import PowerLoss
from odtlab.train.report import TrainingReport
from odtlab.train.trainer import Trainer

__all__ = ["PowerLossResult", "simulate_power_loss", "same_weights"]


@dataclass
class PowerLossResult:
    """What :func:`simulate_power_loss` found.

    Attributes
    ----------
    kill_at_step : int
        The step the power was cut at (after it, or during its save).
    during_save : bool
        Whether the cut came in the middle of writing a checkpoint.
    resumed_from : int
        Step of the checkpoint the fresh trainer resumed from (0: from scratch).
    redone_steps : int
        Steps done twice: ``kill_at_step - resumed_from``.
    final_state : dict
        The resumed run's final ``state_dict`` (CPU copies).
    report : TrainingReport
        The resumed run's report (its curves cover the whole job).
    identical : bool or None
        Whether every tensor equals the uninterrupted run's (``None`` if not compared).
    mismatched : list of str
        Names of the tensors that differ.
    """

    kill_at_step: int
    during_save: bool
    resumed_from: int
    redone_steps: int
    final_state: dict[str, torch.Tensor] = field(repr=False)
    report: TrainingReport = field(repr=False)
    identical: bool | None = None
    mismatched: list[str] = field(default_factory=list)
    reference_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def __str__(self) -> str:
        how = "while saving the checkpoint of" if self.during_save else "right after"
        verdict = {
            True: "identical to the uninterrupted run, bit for bit",
            False: f"DIFFERENT from the uninterrupted run in {len(self.mismatched)} tensors "
            f"({', '.join(self.mismatched[:3])}...)",
            None: "not compared with an uninterrupted run",
        }[self.identical]
        return (
            f"Power cut {how} step {self.kill_at_step}; a fresh trainer resumed from the "
            f"checkpoint of step {self.resumed_from} ({self.redone_steps} steps redone) and "
            f"finished all {self.report.steps} steps. Final weights: {verdict}."
        )


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[bool, list[str]]:
    """``(True, [])`` when both state dicts hold the same names and bit-equal tensors."""
    names = sorted(set(a) | set(b))
    bad = [n for n in names if n not in a or n not in b or not torch.equal(a[n], b[n])]
    return not bad, bad


def _cpu_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}


def simulate_power_loss(
    make_trainer: Callable[[Path], Trainer],
    train_data: Dataset,
    test_data: Dataset | None = None,
    *,
    kill_at_step: int,
    during_save: bool = False,
    checkpoint_dir: str | Path | None = None,
    compare: bool = True,
) -> PowerLossResult:
    """Cut the power at ``kill_at_step``, resume from the last checkpoint, compare.

    Parameters
    ----------
    make_trainer : callable
        ``make_trainer(folder) -> Trainer``: builds a *fresh* model and a
        :class:`Trainer` with ``checkpoint_dir=folder`` and identical settings
        every time it is called (it is called two or three times).
    train_data, test_data : Dataset
        Passed to :meth:`Trainer.fit`.
    kill_at_step : int
        The step (1 to the run's length) at which the power goes.
    during_save : bool, default False
        Cut the power while the checkpoint of ``kill_at_step`` (which must
        then be a checkpoint step) is being written, instead of right after
        the step. The write is atomic (temporary file, fsync, rename), so a
        cut at any byte of it leaves the checkpoint before it in place: the
        run is cut in :attr:`Trainer.before_save`, before the rename. (That
        any partial write is invisible is tested byte by byte in the test
        suite, which cuts the file write itself.)
    checkpoint_dir : str or Path, optional
        An empty (or missing) folder for the runs' checkpoints; a new
        temporary folder by default.
    compare : bool, default True
        Also run the job uninterrupted and compare the final weights.

    Returns
    -------
    PowerLossResult

    Raises
    ------
    ValueError
        If the run ends before ``kill_at_step``, ``kill_at_step`` is not a
        checkpoint step with ``during_save``, or ``checkpoint_dir`` is not empty.
    """
    if isinstance(kill_at_step, bool) or not isinstance(kill_at_step, int) or kill_at_step < 1:
        raise ValueError(f"kill_at_step must be an int >= 1, got {kill_at_step!r}.")
    root = Path(checkpoint_dir) if checkpoint_dir is not None else Path(tempfile.mkdtemp())
    if root.exists() and any(root.iterdir()):
        raise ValueError(
            f"checkpoint_dir {root} is not empty; an old checkpoint there would be resumed. "
            "Pass an empty folder or leave checkpoint_dir out."
        )
    run_dir = root / "interrupted"

    def cut(step: int, loss: float) -> None:
        if step == kill_at_step:
            raise PowerLoss(f"power cut after step {step}")

    first = make_trainer(run_dir)
    if first.checkpoint_dir is None or Path(first.checkpoint_dir) != run_dir:
        raise ValueError("make_trainer(folder) must build a Trainer with checkpoint_dir=folder.")
    total = first.total_steps(train_data)
    if kill_at_step > total:
        raise ValueError(f"kill_at_step={kill_at_step} is after the run's last step ({total}).")
    if during_save:
        if not first._checkpoint_due(kill_at_step, total):
            every = first.checkpoint_every or max(1, total // 10)
            raise ValueError(
                f"kill_at_step={kill_at_step} saves no checkpoint (every {every} steps and at "
                f"the end); pick a checkpoint step for during_save=True."
            )
        def cut_save(step: int) -> None:
            if step == kill_at_step:
                raise PowerLoss(f"power cut while saving the checkpoint of step {step}")

        first.before_save = cut_save
    else:
        first.on_step = cut
    try:
        first.fit(train_data, test_data)
    except PowerLoss:
        pass
    else:  # pragma: no cover - guarded by the checks above
        raise ValueError(f"The run finished without reaching kill_at_step={kill_at_step}.")

    resumed = make_trainer(run_dir)
    report = resumed.fit(train_data, test_data, resume=True)
    final = _cpu_state(resumed)
    result = PowerLossResult(
        kill_at_step=kill_at_step,
        during_save=during_save,
        resumed_from=report.resumed_from or 0,
        redone_steps=kill_at_step - (report.resumed_from or 0),
        final_state=final,
        report=report,
    )
    if compare:
        reference = make_trainer(root / "reference")
        reference.fit(train_data, test_data)
        result.reference_state = _cpu_state(reference)
        result.identical, result.mismatched = same_weights(final, result.reference_state)
    return result
