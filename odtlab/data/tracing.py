"""Turn a :class:`~odtlab.data.students.StudentLog` into examples a knowledge-tracing model learns from.

Each answered question becomes one example whose label is the answer (1
right, 0 wrong) and whose inputs use **only what happened before it**, so a
model that predicts it could run in the app just before the question is
shown. Two shapes:

* :func:`tracing_features` gives a flat vector per question for a small
  multilayer perceptron: the topic (one-hot), the number of attempts on it,
  the days since it was practised and the question's difficulty. These
  *context* features say nothing about how good this student is: a model
  on them learns the student in its **weights**, which is what on-device
  personalization trains. ``history=True`` adds the student's record (share
  right on the topic and overall, last answer), so that the model reads the
  student from its **inputs** instead.
* :func:`tracing_sequences` gives the last ``length`` interactions (topic,
  answer, gap, difficulty) plus a query row for the question asked, for a
  small recurrent model.

Both return a :class:`TracingData` that knows each example's student and day,
so a chapter can split by student (population against one student) or by day
(train on the past, test on the future).

Examples
--------
>>> from odtlab.data.students import simulate_students
>>> log = simulate_students(2, days=3, seed=0)
>>> flat = tracing_features(log)
>>> flat.x.shape[1] == len(flat.names) == len(log.topics) + 3
True
>>> tracing_features(log, history=True).x.shape[1] == len(log.topics) + 7
True
>>> seq = tracing_sequences(log, length=4)
>>> tuple(seq.x.shape[1:]) == (5, len(log.topics) + 4)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from odtlab.data._checks import check_int
from odtlab.data.base import ArrayDataset
from odtlab.data.errors import InvalidDataArgument
from odtlab.data.students import StudentLog

__all__ = [
    "TracingData", "tracing_features", "tracing_sequences", "next_question_features", "MAX_GAP_DAYS",
]  # fmt: skip

#: Gaps longer than this (and "never practised") are clipped to it, in days.
MAX_GAP_DAYS = 30.0
CLASSES = ("wrong", "right")


def _log_gap(gap: float) -> float:
    return math.log1p(min(gap, MAX_GAP_DAYS)) if math.isfinite(gap) else math.log1p(MAX_GAP_DAYS)


@dataclass(frozen=True, eq=False)
class TracingData:
    """Examples for knowledge tracing: inputs ``x``, answers ``y`` (0/1), and who and when.

    Attributes
    ----------
    x : torch.Tensor
        ``(N, F)`` features or ``(N, L + 1, F)`` sequences (float32).
    y : torch.Tensor
        ``(N,)`` 1 if the answer was right (int64).
    student, day : numpy.ndarray
        ``(N,)`` the student id and the day of each example.
    names : tuple of str
        What each of the ``F`` input columns means.
    """

    x: torch.Tensor
    y: torch.Tensor
    student: np.ndarray
    day: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    def mask(self, *, students: object = None, days: object = None) -> np.ndarray:
        """Rows of the given students (ids) and days (a ``range`` or sequence); ``None`` is all."""
        keep = np.ones(len(self), dtype=bool)
        if students is not None:
            keep &= np.isin(self.student, np.asarray(list(students)))  # type: ignore[call-overload]
        if days is not None:
            keep &= np.isin(self.day, np.asarray(list(days)))  # type: ignore[call-overload]
        return keep

    def dataset(self, mask: np.ndarray | None = None, *, name: str = "tracing") -> ArrayDataset:
        """An :class:`~odtlab.data.ArrayDataset` of the rows in ``mask`` (all rows by default).

        Raises
        ------
        odtlab.data.InvalidDataArgument
            When the mask selects no row.
        """
        index = torch.arange(len(self)) if mask is None else torch.from_numpy(np.flatnonzero(mask))
        if len(index) == 0:
            raise InvalidDataArgument(
                "TracingData.dataset: the selection has no interaction; check the students "
                "and days you asked for (a student may not have practised on those days)."
            )
        return ArrayDataset(self.x[index], self.y[index], classes=list(CLASSES), name=name)


_HISTORY = ("share right (topic)", "last right (topic)", "share right (all)", "log attempts (all)")
_NAMES = ("log attempts (topic)", _HISTORY[0], _HISTORY[1], "log days since (topic)", _HISTORY[2],
          _HISTORY[3], "difficulty")  # fmt: skip


def _walk(log: StudentLog) -> tuple[np.ndarray, list[str]]:
    """Flat features of every row, from each student's own earlier rows."""
    k = len(log.topics)
    names = [f"topic={t}" for t in log.topics] + list(_NAMES)
    out = np.zeros((len(log), len(names)), dtype=np.float32)
    state: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for i in range(len(log)):
        s, t = int(log.student[i]), int(log.topic[i])
        tries, right, last = state.setdefault(s, (np.zeros(k), np.zeros(k), np.full(k, 0.5)))
        n, c = tries.sum(), right.sum()
        out[i, t] = 1.0
        out[i, k:] = (math.log1p(tries[t]), (right[t] + 1) / (tries[t] + 2), last[t],
                      _log_gap(float(log.gap[i])), (c + 1) / (n + 2), math.log1p(n),
                      log.difficulty[i])  # fmt: skip
        tries[t] += 1
        right[t] += log.correct[i]
        last[t] = log.correct[i]
    return out, names


def tracing_features(log: StudentLog, *, history: bool = False) -> TracingData:
    """One flat feature vector per answered question (see the module docstring).

    Parameters
    ----------
    log : StudentLog
    history : bool, default False
        Add the student's record so far (share right on the topic and
        overall, last answer on the topic, attempts overall).
    """
    x, names = _walk(log)
    keep = [i for i, n in enumerate(names) if history or n not in _HISTORY]
    return TracingData(torch.from_numpy(x[:, keep].copy()),
                       torch.as_tensor(log.correct, dtype=torch.int64), log.student.copy(),
                       log.day.copy(), tuple(names[i] for i in keep))  # fmt: skip


def tracing_sequences(log: StudentLog, *, length: int = 16) -> TracingData:
    """The last ``length`` interactions of the student, then a query row, per answered question.

    Row features: topic one-hot, answer (0/1; 0 in the query row), log days
    since that topic was practised, difficulty, and 1 in the query row.
    Students with fewer earlier answers get zero rows in front.
    """
    length = check_int("length", length)
    k = len(log.topics)
    steps = np.zeros((len(log), k + 4), dtype=np.float32)
    steps[np.arange(len(log)), log.topic] = 1.0
    steps[:, k] = log.correct
    steps[:, k + 1] = [_log_gap(float(g)) for g in log.gap]
    steps[:, k + 2] = log.difficulty
    out = np.zeros((len(log), length + 1, k + 4), dtype=np.float32)
    start = 0
    for i in range(len(log)):
        if i > 0 and log.student[i] != log.student[i - 1]:
            start = i
        past = steps[max(start, i - length) : i]
        out[i, length - len(past) : length] = past
        out[i, length] = steps[i]
        out[i, length, k] = 0.0  # the answer is what we predict
        out[i, length, k + 3] = 1.0
    names = tuple(
        [f"topic={t}" for t in log.topics] + ["right", "log days since", "difficulty", "query"]
    )
    return TracingData(torch.from_numpy(out), torch.as_tensor(log.correct, dtype=torch.int64),
                       log.student.copy(), log.day.copy(), names)  # fmt: skip


def next_question_features(history: StudentLog, topic: int | Sequence[int], *, time: float,
                           difficulty: float = 0.0, history_features: bool = False) -> torch.Tensor:  # fmt: skip
    """The :func:`tracing_features` rows of questions on ``topic`` asked at ``time`` (days).

    ``history`` holds one student's earlier answers (as a policy receives
    them). A tutor asks its model about every topic this way, before choosing
    what to practise next. One topic gives one row ``(F,)``; a sequence of
    topics gives ``(len(topic), F)``.

    Examples
    --------
    >>> from odtlab.data.students import simulate_students
    >>> log = simulate_students(1, days=2, seed=0)
    >>> next_question_features(log, 0, time=2.5).shape == (len(log.topics) + 3,)
    True
    >>> tuple(next_question_features(log, range(5), time=2.5).shape)
    (5, 8)
    """
    k = len(history.topics)
    asked = np.atleast_1d(np.asarray(topic, dtype=np.int64))
    if asked.size == 0 or asked.min() < 0 or asked.max() >= k:
        raise InvalidDataArgument(
            f"next_question_features: topics must be in 0..{k - 1}, got {topic!r}"
        )
    tries = np.bincount(history.topic, minlength=k).astype(np.float64)
    right = np.bincount(history.topic, weights=history.correct, minlength=k)
    last_at = np.full(k, -1)
    np.maximum.at(last_at, history.topic, np.arange(len(history)))
    seen = last_at >= 0
    last = np.where(seen, history.correct[np.maximum(last_at, 0)] if len(history) else 0.5, 0.5)
    gap = np.where(
        seen, time - (history.time[np.maximum(last_at, 0)] if len(history) else 0.0), np.inf
    )
    n, c = float(len(history)), float(history.correct.sum())
    rows = np.zeros((len(asked), k + len(_NAMES)), dtype=np.float32)
    rows[np.arange(len(asked)), asked] = 1.0
    for j, t in enumerate(asked):
        rows[j, k:] = (math.log1p(tries[t]), (right[t] + 1) / (tries[t] + 2), last[t],
                       _log_gap(float(gap[t])), (c + 1) / (n + 2), math.log1p(n), difficulty)  # fmt: skip
    names = [f"topic={t}" for t in history.topics] + list(_NAMES)
    keep = [i for i, name in enumerate(names) if history_features or name not in _HISTORY]
    out = torch.from_numpy(rows[:, keep])
    return out[0] if np.ndim(topic) == 0 else out
