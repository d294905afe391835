"""Where labels come from on a device: a few user corrections, and the model's own guesses.

Nobody labels the photos on a phone. A device that keeps learning gets a
handful of true labels (the user corrects a wrong prediction, or names a
few examples: few-shot adaptation) and many unlabelled examples. Self-
training labels the unlabelled ones with the model's own confident
predictions (pseudo-labels) and trains on them too. The risk is
*confirmation bias*: a wrong but confident guess is learned, which makes
the next wrong guess more confident still. A high confidence threshold
keeps fewer, cleaner pseudo-labels; ``threshold=0`` trusts every guess.

:class:`PseudoLabels` wraps any strategy that trains the whole model (naive,
replay, EWC...): it only changes the data of each experience, and logs how
many pseudo-labels it made and how many were right (checked against the
hidden true labels, which the learner never sees), so chapter 8 can show
the bias at work.

Examples
--------
>>> from odtlab import cl, models
>>> stream = cl.online(cl.domain_incremental("rotation", steps=(0, 30)))
>>> labeller = cl.PseudoLabels(cl.Naive(), labelled_per_class=3, threshold=0.9)
>>> res = cl.run_stream(models.mlp(), stream, labeller, seed=0)
>>> [row["labelled"] for row in labeller.log]       # experience 0 arrives fully labelled
[1347, 30]
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import Dataset

from odtlab import data
from odtlab.cl.errors import InvalidStrategy, UnsupportedModel
from odtlab.cl.strategies.base import Naive, Strategy
from odtlab.cl.streams import Experience, Stream

if TYPE_CHECKING:
    from odtlab.recipes import Recipe

__all__ = ["PseudoLabels"]


class PseudoLabels(Strategy):
    """Train on a few true labels per class plus the model's confident pseudo-labels.

    Parameters
    ----------
    base : Strategy or None
        The strategy that does the rest (default :class:`Naive`); it must
        train the whole model (not :class:`LatentReplay`).
    labelled_per_class : int, default 5
        True labels the user gives per class and experience (the first
        ones of each class in the experience's order).
    threshold : float, default 0.9
        Softmax confidence a prediction needs to become a pseudo-label;
        above 1 none does (few-shot only), 0 takes every prediction.
    first_labelled : bool, default True
        The first experience arrives fully labelled (the factory's data).

    Attributes
    ----------
    log : list of dict
        Per experience: ``labelled``, ``pseudo`` (counts) and
        ``pseudo_accuracy`` (share of pseudo-labels that were right; NaN
        when there were none).
    """

    def __init__(self, base: Strategy | None = None, *, labelled_per_class: int = 5,
                 threshold: float = 0.9, first_labelled: bool = True) -> None:  # fmt: skip
        if labelled_per_class < 0 or not 0 <= threshold:
            raise InvalidStrategy(
                f"labelled_per_class={labelled_per_class} must be >= 0 and threshold={threshold} >= 0"
            )
        self.base = Naive() if base is None else base
        self.name = f"{self.base.name}+pseudo-labels"
        self.labelled_per_class, self.threshold = labelled_per_class, float(threshold)
        self.first_labelled = first_labelled
        self.log: list[dict[str, float]] = []
        self._model: nn.Module | None = None

    def setup(self, model: nn.Module, recipe: Recipe, stream: Stream) -> None:
        if type(self.base).trained_module is not Strategy.trained_module:
            raise UnsupportedModel(
                f"PseudoLabels labels with the whole model, but {type(self.base).__name__} trains "
                "only part of it; wrap a strategy that trains the whole model (Naive, Replay, EWC)"
            )
        self.base.setup(model, recipe, stream)

    def _label(self, experience: Experience) -> Dataset:
        x, y = data.as_tensors(experience.train)
        if self.first_labelled and not self.log:
            self.log.append({"labelled": len(y), "pseudo": 0, "pseudo_accuracy": float("nan")})
            return experience.train
        given = torch.zeros(len(y), dtype=torch.bool)
        for c in y.unique():
            given[torch.nonzero(y == c).flatten()[: self.labelled_per_class]] = True
        assert self._model is not None
        modes = [(m, m.training) for m in self._model.modules()]
        self._model.eval()
        with torch.no_grad():
            confidence, guess = self._model(x[~given]).softmax(dim=1).max(dim=1)
        for m, mode in modes:
            m.training = mode
        sure = confidence >= self.threshold
        right = (guess[sure] == y[~given][sure]).float()
        self.log.append({"labelled": int(given.sum()), "pseudo": int(sure.sum()),
                         "pseudo_accuracy": float(right.mean()) if len(right) else float("nan")})  # fmt: skip
        xs = torch.cat([x[given], x[~given][sure]])
        ys = torch.cat([y[given], guess[sure]])
        return data.ArrayDataset(xs, ys, classes=[str(c) for c in range(max(int(ys.max()) + 1, 1))])

    # ---- everything else is the base strategy's --------------------------------------------
    def before_experience(self, model: nn.Module, experience: Experience) -> None:
        self._model = model
        self.base.before_experience(model, experience)

    def training_data(self, experience: Experience) -> Dataset:
        labelled = dataclasses.replace(experience, train=self._label(experience))
        return self.base.training_data(labelled)

    def planned_bytes(self, model: nn.Module, stream: Stream) -> int:
        return self.base.planned_bytes(model, stream)

    def replay_size(self, batch_size: int) -> int:
        return self.base.replay_size(batch_size)

    def replay(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.base.replay(n, generator)

    def before_backward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        logits: torch.Tensor) -> torch.Tensor | None:  # fmt: skip
        return self.base.before_backward(model, x, y, logits)

    def before_step(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        return self.base.before_step(model)

    def after_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.base.after_step(model, x, y)

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        self.base.after_experience(model, experience)

    def memory(self) -> dict[str, int]:
        return self.base.memory()
