"""Errors of :mod:`odtlab.train`: a diverged run, and the simulated power cut."""

from __future__ import annotations

import math

from odtlab.errors import OdtlabError

__all__ = ["TrainingDiverged", "PowerLoss"]


class TrainingDiverged(OdtlabError):
    """The training loss became NaN or infinite, so the run was stopped.

    Attributes
    ----------
    step : int
        The step (1-based count of optimizer steps) whose loss was not finite.
    loss : float
        That loss value (``nan``, ``inf`` or ``-inf``).
    recipe : str
        Name of the recipe that was training.
    checkpoint : str or None
        The last good checkpoint on disk, left untouched, or ``None`` when the
        trainer had no ``checkpoint_dir``.
    """

    def __init__(self, step: int, loss: float, recipe: str, checkpoint: str | None = None) -> None:
        self.step = int(step)
        self.loss = float(loss)
        self.recipe = str(recipe)
        self.checkpoint = checkpoint
        kind = "NaN" if math.isnan(self.loss) else "infinite"
        where = (
            f" The last good checkpoint is kept at {checkpoint}; restore it with "
            "odtlab.train.restore_latest(...)."
            if checkpoint
            else " Pass checkpoint_dir=... to the Trainer to keep a good state to go back to."
        )
        super().__init__(
            f"Training diverged at step {self.step}: the loss is {kind} ({self.loss}) with recipe "
            f"{self.recipe!r}. Try a smaller learning rate (e.g. 10x lower) and inputs scaled "
            f"to about [0, 1].{where}"
        )


class PowerLoss(BaseException):
    """A simulated power cut, raised by :mod:`odtlab.train.powerloss`.

    It subclasses ``BaseException`` (like ``KeyboardInterrupt``), so an
    ``except Exception`` in user code does not swallow it: the run stops as
    abruptly as a board whose battery died.
    """
