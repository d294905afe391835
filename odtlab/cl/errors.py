"""Errors of :mod:`odtlab.cl`: a stream that cannot be learned, a strategy that cannot run.

Each message names what is wrong and how to fix it. A replay buffer or any
other strategy state that does not fit the simulated device raises the
library's :class:`~odtlab.errors.DoesNotFit`, like every other memory
overflow of the course.
"""

from __future__ import annotations

from odtlab.errors import OdtlabError
from odtlab.train import TrainingDiverged

__all__ = ["InvalidStream", "UnsupportedModel", "InvalidStrategy", "StrategyDiverged"]


class InvalidStream(OdtlabError, ValueError):
    """A stream of experiences that is empty, overlapping or inconsistent."""


class InvalidStrategy(OdtlabError, ValueError):
    """A continual strategy built with arguments it cannot use (a negative buffer, ...)."""


class UnsupportedModel(OdtlabError, ValueError):
    """A strategy given a model (or recipe) it cannot handle, e.g. latent replay at a cut
    that is not a child of the model."""


class StrategyDiverged(TrainingDiverged):
    """The loss of a continual run became NaN or infinite (a :class:`~odtlab.train.TrainingDiverged`).

    Besides a learning rate that is too large, a penalty that is too stiff
    does it: with SGD, a quadratic pull of strength ``k`` (EWC's ``lam * F``,
    SI's ``2 c Omega``) overshoots its anchor when ``lr * k > 2``.
    """

    def __init__(self, step: int, loss: float, recipe: str, strategy: str) -> None:
        super().__init__(step, loss, recipe)
        self.strategy = strategy
        kind = "NaN" if loss != loss else "infinite"
        self.args = (
            f"Continual training diverged at step {step}: the loss is {kind} with recipe {recipe!r} "
            f"and strategy {strategy}. A penalty that is too stiff does this (SGD overshoots "
            "the anchor when lr x lam x Fisher > 2): lower lam (EWC) or c (SI), or the "
            "learning rate (e.g. 10x lower).",
        )
