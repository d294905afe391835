"""What the app does with its model: choose the next topic, and measure the time to mastery.

A tutor that can predict a student's next answer can choose what to
practise: the topic whose predicted recall is lowest, which is what spaced
repetition schedules by hand (practise just before you forget).
:class:`RecallPolicy` does that with a knowledge-tracing model; with a
``recipe`` it also fine-tunes its copy of the model at the start of each day
on the previous day's answers, as the phone would overnight.

:func:`time_to_mastery` lets a cohort of simulated students practise under a
policy and reports when each one masters every topic (the simulator's own
definition: :class:`odtlab.data.StudentLog`), so policies can be compared in
days of a student's life.

Examples
--------
>>> import odtlab as odt
>>> policy = RecallPolicy(odt.models.pretrained("kt-mlp"))
>>> log = odt.data.simulate_students(2, days=3, policy=policy, seed=1)
>>> len(log) > 0
True
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from odtlab import data
from odtlab.recipes import Recipe
from odtlab.tutor.metrics import predict_right

__all__ = ["RecallPolicy", "time_to_mastery", "MasteryResult"]


class RecallPolicy:
    """Practise the topic whose predicted chance of a right answer is lowest.

    Parameters
    ----------
    model : nn.Module
        A knowledge-tracing model on :func:`odtlab.data.tracing_features`
        rows (not changed: each student gets a copy).
    recipe : Recipe, optional
        When given, at the first question of each day the student's copy is
        fine-tuned on the previous day's answers (``epochs`` passes, batches
        of ``batch_size``): personalization on the phone. ``None`` keeps the
        population model.
    history_features : bool
        Whether ``model`` reads the student's record too (``history=True``).
    """

    def __init__(self, model: nn.Module, recipe: Recipe | None = None, *, epochs: int = 3,
                 batch_size: int = 16, history_features: bool = False) -> None:  # fmt: skip
        self.model, self.recipe = model, recipe
        self.epochs, self.batch_size, self.history_features = epochs, batch_size, history_features
        self._student: int | None = None  # None: a new student whose first answer is pending
        self._day = -1
        self._net: nn.Module = model
        self._optimizer: Any = None
        self._start(None)

    def __repr__(self) -> str:
        how = "population model" if self.recipe is None else f"personalized with {self.recipe.name}"
        return f"RecallPolicy({how})"

    def _start(self, student: int | None) -> None:
        """A new student: a fresh copy of the model (and of its optimizer)."""
        self._student, self._day = student, -1
        self._net = self.model
        if self.recipe is not None:
            self._net = self.recipe.prepare(copy.deepcopy(self.model))
            params = [p for p in self._net.parameters() if p.requires_grad]
            self._optimizer = self.recipe.make_optimizer(params)

    def _learn_yesterday(self, history: data.StudentLog) -> None:
        if self.recipe is None or not len(history):
            return
        yesterday = np.flatnonzero(history.day == history.day.max())
        before = np.arange(len(history))
        x = torch.stack([data.next_question_features(
            history.select(before < i), int(history.topic[i]), time=float(history.time[i]),
            difficulty=float(history.difficulty[i]), history_features=self.history_features)
            for i in yesterday])  # fmt: skip
        y = torch.as_tensor(history.correct[yesterday], dtype=torch.int64)
        gen = torch.Generator().manual_seed(int(history.today))
        self._net.train()
        for _ in range(self.epochs):
            for index in torch.randperm(len(y), generator=gen).split(self.batch_size):
                self.recipe.train_step(self._net, x[index], y[index], nn.functional.cross_entropy,
                                       self._optimizer)  # fmt: skip

    def predicted_recall(self, history: data.StudentLog, time: float) -> np.ndarray:
        """The model's chance of a right answer on an average question of each topic, at ``time``."""
        rows = data.next_question_features(history, range(len(history.topics)), time=time,
                                           history_features=self.history_features)  # fmt: skip
        return predict_right(self._net, rows)

    def __call__(self, history: data.StudentLog, rng: np.random.Generator) -> int:
        if not len(history):  # a student's first question
            self._start(None)
        elif self._student is None:  # ... has been answered: now we know who it is
            self._student = int(history.student[0])
        elif int(history.student[0]) != self._student:  # another student's history
            self._start(int(history.student[0]))
        if history.today != self._day:
            self._day = history.today
            self._learn_yesterday(history)
        now = float(history.time[-1]) if len(history) else float(history.today)
        return int(np.argmin(self.predicted_recall(history, now)))


@dataclass(frozen=True)
class MasteryResult:
    """Days to mastery of every topic under one policy (``nan``: not within the simulated days)."""

    policy: str
    days: np.ndarray
    horizon: int

    @property
    def mastered(self) -> float:
        """Share of students who mastered every topic within the horizon."""
        return float(np.mean(~np.isnan(self.days)))

    @property
    def median_days(self) -> float:
        """Median days to mastery, counting students who never got there as the horizon."""
        return float(np.median(np.where(np.isnan(self.days), self.horizon, self.days + 1)))

    def __str__(self) -> str:
        return (f"{self.policy}: {self.mastered:.0%} mastered within {self.horizon} days, median "
                f"{self.median_days:.1f} days")  # fmt: skip


def time_to_mastery(policy: Any, n_students: int = 20, *, days: int = 60, seed: int = 1,
                    name: str | None = None, **simulate: Any) -> MasteryResult:  # fmt: skip
    """Simulate ``n_students`` practising under ``policy`` for ``days`` days; when did each master all topics?

    ``policy`` is a name of :data:`odtlab.data.students.POLICIES` or a
    callable such as :class:`RecallPolicy`. The same ``seed`` gives the same
    students under every policy, so policies are compared on equal terms.
    """
    log = data.simulate_students(n_students, days=days, policy=policy, seed=seed, **simulate)
    label = name or (policy if isinstance(policy, str) else repr(policy))
    return MasteryResult(label, log.mastered_day.copy(), days)
