"""Simulated students for the capstone tutor: they learn when they practise and forget with time.

No real student data is used anywhere: :func:`simulate_students` generates a
cohort whose answers follow three classic models of learning, so a learner
can check every number against the parameters that made it.

* **Item response theory** (Rasch's one-parameter model): a student with
  skill ``theta`` on a topic answers a question of difficulty ``b`` with
  probability ``sigmoid(theta - b)`` of *knowing* the answer.
* **Guess and slip**, as in Bayesian knowledge tracing (Corbett and
  Anderson, 1995): a student who does not know guesses right with
  probability ``guess``; one who knows slips with probability ``slip``. So
  ``P(correct) = guess + (1 - guess - slip) * sigmoid(theta - b)``.
* **An exponential forgetting curve** (Ebbinghaus; half-life form as in
  Settles and Meeder's half-life regression, 2016): what a student *learned*
  on a topic (``gain``, on the logit scale, above the ``prior`` they came
  with) decays as ``2 ** (-gap_days / half_life)``, so
  ``theta = prior + gain * 2 ** (-gap / half_life)``.

Practising a topic consolidates what is left (``gain <- gain * retention``),
adds ``learn_rate`` to it, and makes the memory last longer the more it had
faded (the spacing effect): ``half_life <- half_life * (1 + spacing_gain *
(1 - retention))``. Every student has their own priors, learning rate,
half-life, spacing gain, guess and slip, drawn from a seeded population.

Which topic comes next is up to a *policy*: a callable given the student's
history so far (a :class:`StudentLog` of that student alone) and a
``numpy.random.Generator``, returning a topic index. ``"random"``,
``"curriculum"`` (each topic for a block of days, in order, then around again)
and ``"least-recent"`` are built in; the capstone's tutor adds one that asks
its knowledge-tracing model.

Examples
--------
>>> log = simulate_students(3, days=5, seed=0)
>>> log.topics
('addition', 'subtraction', 'multiplication', 'division', 'fractions')
>>> len(log) == len(simulate_students(3, days=5, seed=0))
True
>>> bool(0.0 < log.correct.mean() < 1.0)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from odtlab.data._checks import check_float, check_int
from odtlab.data.errors import InvalidDataArgument

__all__ = [
    "TOPICS", "Student", "StudentLog", "make_students", "simulate_students",
    "p_correct", "POLICIES",
]  # fmt: skip

#: The default topics: arithmetic a primary-school tutor drills.
TOPICS = ("addition", "subtraction", "multiplication", "division", "fractions")
_COLUMNS = (
    "student",
    "day",
    "time",
    "topic",
    "difficulty",
    "correct",
    "response_s",
    "gap",
    "chance",
)
_INTEGER = ("student", "day", "topic")


def p_correct(theta: Any, difficulty: Any, guess: Any, slip: Any, discrimination: Any = 1.0) -> Any:
    """Probability of a right answer: ``guess + (1 - guess - slip) * sigmoid(a * (theta - difficulty))``.

    ``a`` is the ``discrimination`` (1 in Rasch's model; the two-parameter
    model lets it differ, here by student: how sharply their chance of
    knowing falls as questions get harder).

    Examples
    --------
    >>> round(float(p_correct(0.0, 0.0, 0.2, 0.1)), 3)
    0.55
    >>> round(float(p_correct(-50.0, 0.0, 0.2, 0.1)), 3)  # knows nothing: only guesses
    0.2
    """
    know = 1.0 / (1.0 + np.exp(-discrimination * (np.asarray(theta, float) - difficulty)))
    return guess + (1.0 - guess - slip) * know


@dataclass(frozen=True)
class Student:
    """One simulated student's parameters (all per topic where a tuple).

    Attributes
    ----------
    student_id : int
    prior : tuple of float
        Skill per topic before any practice (logits; 0 means a question of
        average difficulty is known half the time).
    learn_rate : float
        Logits gained per question practised.
    half_life_days : float
        Days after which half of a first practice's gain is forgotten.
    discrimination : float
        The slope ``a`` of :func:`p_correct`: how much question difficulty matters to them.
    spacing_gain : float
        How much a practice after a long gap lengthens the half-life.
    guess, slip : float
        Probabilities of a lucky right answer and of a careless wrong one.
    speed_s : float
        Median seconds to answer.
    sessions_per_week : float
        How many days of seven, on average, the student opens the app.
    """

    student_id: int
    prior: tuple[float, ...]
    learn_rate: float
    half_life_days: float
    discrimination: float
    spacing_gain: float
    guess: float
    slip: float
    speed_s: float
    sessions_per_week: float

    def recall(self, topic: int, gain: float, half_life: float, gap_days: float,
               difficulty: float = 0.0) -> float:  # fmt: skip
        """P(correct) on ``topic`` after ``gap_days`` without practice, from a ``gain`` and ``half_life``."""
        theta = self.prior[topic] + gain * 2.0 ** (-gap_days / half_life)
        return float(p_correct(theta, difficulty, self.guess, self.slip, self.discrimination))


def make_students(n: int, *, n_topics: int = len(TOPICS), seed: int = 0) -> tuple[Student, ...]:
    """Draw ``n`` students from the population (seeded; student ``k`` is the same for any ``n > k``).

    Abilities differ by student (a shared offset) and by topic; learning
    rates, half-lives and speeds are log-normal; guess is in [0.1, 0.3],
    slip in [0.03, 0.12].

    Examples
    --------
    >>> a, b = make_students(2, seed=0), make_students(3, seed=0)
    >>> a == b[:2]
    True
    """
    n = check_int("n", n)
    n_topics = check_int("n_topics", n_topics)
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, k, 7919])
        ability = rng.normal(-1.0, 0.8)
        out.append(Student(
            student_id=k,
            prior=tuple(float(v) for v in ability + rng.normal(0.0, 2.0, n_topics)),
            learn_rate=float(np.exp(rng.normal(math.log(0.2), 0.4))),
            half_life_days=float(np.exp(rng.normal(math.log(2.0), 0.9))),
            discrimination=float(np.exp(rng.normal(0.0, 0.5))),
            spacing_gain=float(rng.uniform(0.5, 2.0)),
            guess=float(rng.uniform(0.05, 0.25)),
            slip=float(rng.uniform(0.02, 0.1)),
            speed_s=float(np.exp(rng.normal(math.log(12.0), 0.3))),
            sessions_per_week=float(rng.uniform(2.0, 6.0)),
        ))  # fmt: skip
    return tuple(out)


@dataclass(frozen=True, eq=False)
class StudentLog:
    """Interactions of a cohort, one row per answered question, in time order per student.

    Columns (numpy arrays of equal length): ``student`` (id), ``day`` (0, 1,
    ...), ``time`` (days since the start, float), ``topic`` (index into
    ``topics``), ``difficulty`` (the question's, logits), ``correct`` (0/1),
    ``response_s`` (seconds), ``gap`` (days since this student last practised
    this topic; ``inf`` the first time), ``chance`` (the true probability of
    a right answer the simulator drew it from: no model can know it, but
    tests and the book compare with it).

    ``today`` is the day a policy is asked on (``-1`` for a finished log).
    ``mastered_day[k]`` is the first day at whose end student ``k`` would
    answer an average question of every topic right with probability
    ``>= mastery`` after ``retention_days`` without practice (``nan``: never).
    """

    students: tuple[Student, ...]
    topics: tuple[str, ...]
    columns: dict[str, np.ndarray] = field(repr=False)
    mastered_day: np.ndarray = field(repr=False)
    days: int = 0
    today: int = -1

    def __len__(self) -> int:
        return len(self.columns["student"])

    def __getattr__(self, name: str) -> np.ndarray:
        if name in _COLUMNS:
            return self.columns[name]
        raise AttributeError(name)

    def select(self, mask: np.ndarray) -> StudentLog:
        """The rows where ``mask`` is true (same students and topics)."""
        return replace(self, columns={k: v[mask] for k, v in self.columns.items()})

    def for_student(self, student_id: int) -> StudentLog:
        """The rows of one student."""
        return self.select(self.student == student_id)

    def to_dataframe(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (topic names instead of indices)."""
        import pandas as pd

        frame = pd.DataFrame(self.columns)
        frame["topic"] = [self.topics[t] for t in frame["topic"]]
        return frame


Policy = Callable[[StudentLog, np.random.Generator], int]


def _random(history: StudentLog, rng: np.random.Generator) -> int:
    return int(rng.integers(len(history.topics)))


def _least_recent(history: StudentLog, rng: np.random.Generator) -> int:
    last = np.full(len(history.topics), -np.inf)
    np.maximum.at(last, history.topic, history.time)
    return int(np.argmin(last))


def _curriculum(block_days: int = 3) -> Policy:
    def policy(history: StudentLog, rng: np.random.Generator) -> int:
        return (max(history.today, 0) // block_days) % len(history.topics)

    return policy


#: Built-in next-topic policies by name.
POLICIES: dict[str, Policy] = {
    "random": _random, "curriculum": _curriculum(), "least-recent": _least_recent,
}  # fmt: skip


def simulate_students(
    students: int | Sequence[Student],
    *,
    days: int = 28,
    questions_per_session: int = 15,
    policy: str | Policy = "random",
    topics: Sequence[str] = TOPICS,
    mastery: float = 0.8,
    retention_days: float = 7.0,
    seed: int = 0,
) -> StudentLog:
    """Let a cohort practise for ``days`` days and log every answer.

    Parameters
    ----------
    students : int or sequence of Student
        A number draws that many from :func:`make_students` (same ``seed``).
    days : int
        Days simulated; on each, a student opens the app with probability
        ``sessions_per_week / 7`` and answers ``questions_per_session``
        questions, 30 s to a minute apart, at a random hour.
    policy : str or callable
        A name in :data:`POLICIES` or ``policy(history, rng) -> topic``.
    mastery, retention_days : float
        Define ``mastered_day`` (see :class:`StudentLog`).
    seed : int
        Seeds everything; the same arguments give the same log.

    Raises
    ------
    odtlab.data.InvalidDataArgument
        For an unknown policy name or out-of-range arguments.
    """
    days = check_int("days", days)
    per_session = check_int("questions_per_session", questions_per_session)
    mastery = check_float("mastery", mastery, low=0.0, high=1.0)
    retention = check_float("retention_days", retention_days, low=0.0)
    if isinstance(policy, str):
        if policy not in POLICIES:
            raise InvalidDataArgument(
                f"simulate_students: unknown policy {policy!r}; use one of {sorted(POLICIES)} "
                "or a callable policy(history, rng) -> topic index."
            )
        policy = POLICIES[policy]
    topics = tuple(topics)
    cohort = (make_students(students, n_topics=len(topics), seed=seed)
              if isinstance(students, int) else tuple(students))  # fmt: skip
    if any(len(s.prior) != len(topics) for s in cohort):
        raise InvalidDataArgument("simulate_students: every student needs one prior per topic.")
    mastered = np.full(len(cohort), np.nan)
    base = np.linspace(-0.5, 0.5, len(topics))  # later topics are a little harder
    size = days * per_session
    parts = []
    for i, st in enumerate(cohort):
        rng = np.random.default_rng([seed, st.student_id, 104729])
        gain = np.zeros(len(topics))
        half = np.full(len(topics), st.half_life_days)
        last = np.full(len(topics), -np.inf)
        mine = {
            c: np.zeros(size, dtype=np.int64 if c in _INTEGER else np.float64) for c in _COLUMNS
        }
        n = 0
        for day in range(days):
            if rng.random() < st.sessions_per_week / 7.0:
                now = day + rng.uniform(8.0, 20.0) / 24.0
                for _ in range(per_session):
                    seen = {c: v[:n] for c, v in mine.items()}
                    t = int(policy(StudentLog(cohort, topics, seen, mastered, days, day), rng))
                    if not 0 <= t < len(topics):
                        raise InvalidDataArgument(
                            f"simulate_students: the policy returned topic {t}; topics are "
                            f"0..{len(topics) - 1}."
                        )
                    gap = now - last[t]
                    kept = 2.0 ** (-gap / half[t]) if np.isfinite(gap) else 1.0
                    b = base[t] + rng.normal(0.0, 1.0)
                    chance = p_correct(
                        st.prior[t] + gain[t] * kept, b, st.guess, st.slip, st.discrimination
                    )
                    ok = rng.random() < chance
                    seconds = st.speed_s * np.exp(rng.normal(0.0, 0.3)) * (1.0 if ok else 1.4)
                    values = (st.student_id, day, now, t, b, ok, seconds, gap, chance)
                    for c, v in zip(_COLUMNS, values, strict=True):
                        mine[c][n] = v
                    n += 1
                    if np.isfinite(gap):
                        half[t] *= 1.0 + st.spacing_gain * (1.0 - kept)
                    gain[t] = gain[t] * kept + st.learn_rate
                    last[t] = now
                    now += rng.uniform(0.5, 1.0) / 1440.0
            left = gain * np.where(np.isfinite(last), 2.0 ** (-(day + 1.0 - last) / half), 0.0)
            durable = [
                st.recall(t, left[t], half[t], retention, base[t]) for t in range(len(topics))
            ]
            if np.isnan(mastered[i]) and min(durable) >= mastery:
                mastered[i] = day
        parts.append({c: v[:n] for c, v in mine.items()})
    cols = {c: np.concatenate([p[c] for p in parts]) for c in _COLUMNS}
    return StudentLog(cohort, topics, cols, mastered, days)
