"""Personalize the tutor on each student's phone, day by day, and report what it buys and costs.

The phone arrives with the population model. Each day the student answers
some questions; when the phone may train (a window of chapter 5's
scheduler), it fine-tunes its copy of the model on the answers gathered
since the last training, with a recipe of chapters 2-4, and replays some
older answers against forgetting (chapter 8). In the vocabulary of the
course, each student is a **stream** whose experiences are training days,
run by :func:`odtlab.cl.run_stream` with a :class:`odtlab.cl.Replay`
strategy; its device price comes from :class:`odtlab.train.Trainer`'s
measured memory report and the device simulator.

:func:`personalize` measures, per student, on the days held out at the end
(nobody trains on them): AUC and calibration error of the population model
and of the personalized one, and per day: training steps, joules, battery
percent.

Examples
--------
>>> import odtlab as odt
>>> cohort = make_cohort(3, days=14, test_days=4, seed=1)
>>> cohort.students  # student 1 got every held-out answer right: no AUC to measure
[0, 2]
>>> model = odt.models.pretrained("kt-mlp")
>>> recipe = odt.recipes.Recipe(odt.recipes.BiasOnly(), odt.recipes.Adam(lr=1e-2))
>>> report = personalize(model, cohort, recipe, "phone-mid", epochs=2)
>>> [row["student"] for row in report.rows], report.fits
([0, 2], True)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from odtlab import cl, data, devices
from odtlab.errors import OdtlabError
from odtlab.recipes import Recipe
from odtlab.train import Trainer
from odtlab.tutor.metrics import auc, calibration_error, predict_right, reliability
from odtlab.viz import plot_personal_auc

__all__ = ["Cohort", "make_cohort", "personalize", "TutorReport", "training_days", "InvalidCohort"]


class InvalidCohort(OdtlabError, ValueError):
    """A cohort that cannot be split into training and held-out days."""


@dataclass(frozen=True, eq=False)
class Cohort:
    """Simulated students, their interactions as model inputs, and the train/held-out split by day.

    Attributes
    ----------
    log : odtlab.data.StudentLog
    data : odtlab.data.TracingData
        One example per answer (:func:`odtlab.data.tracing_features`, or
        sequences for a recurrent model).
    train_days, test_days : range
        Days the phones may train on, and the later days held out.
    """

    log: data.StudentLog
    data: data.TracingData = field(repr=False)
    train_days: range
    test_days: range

    @property
    def students(self) -> list[int]:
        """Ids of the students with answers on training days and both kinds of answer held out."""
        out = []
        for s in sorted(set(self.log.student.tolist())):
            test = self.data.mask(students=[s], days=self.test_days)
            if (
                self.data.mask(students=[s], days=self.train_days).any()
                and 0 < self.data.y[test].float().mean() < 1
            ):
                out.append(s)
        return out


def make_cohort(n_students: int, *, days: int = 28, test_days: int = 7, seed: int = 1,
                features: str = "context", **simulate: Any) -> Cohort:  # fmt: skip
    """Simulate ``n_students`` for ``days`` days; the last ``test_days`` are held out.

    ``seed=1`` draws students the shipped population models (seed 0) never
    saw. ``features`` is ``"context"`` (:func:`odtlab.data.tracing_features`,
    for ``kt-mlp``), ``"history"`` (the same with the student's record) or
    ``"sequence"`` (:func:`odtlab.data.tracing_sequences`, for ``kt-gru``).
    Other keywords go to :func:`odtlab.data.simulate_students`.
    """
    if not 0 < test_days < days:
        raise InvalidCohort(f"make_cohort: test_days must be between 1 and days - 1 = {days - 1}, "
                            f"got {test_days}")  # fmt: skip
    makers = {"context": data.tracing_features,
              "history": lambda log: data.tracing_features(log, history=True),
              "sequence": data.tracing_sequences}  # fmt: skip
    if features not in makers:
        raise InvalidCohort(
            f"make_cohort: features must be one of {sorted(makers)}, got {features!r}"
        )
    log = data.simulate_students(n_students, days=days, seed=seed, **simulate)
    return Cohort(
        log, makers[features](log), range(days - test_days), range(days - test_days, days)
    )


def training_days(done_at: Sequence[float], answered: Mapping[int, float],
                  until: int) -> dict[int, list[int]]:  # fmt: skip
    """When each day's answers get trained on: at the first completed training window after them.

    Parameters
    ----------
    done_at : sequence of float
        ``done_at[k]``: the hour (0-24) at which day ``k``'s training job
        completes in the phone's usage trace, ``nan`` when it does not; the
        trace repeats (``done_at[day % len(done_at)]``).
    answered : mapping of int to float
        ``{day: time of that day's last answer}``, times in days (12:00 on
        day 3 is 3.5).
    until : int
        The last day the phone may train; answers that find no window by
        then are never trained on.

    Returns
    -------
    dict
        ``{training day: [days of answers]}``.

    Examples
    --------
    A window at 22:00 on day 0, none on day 1, one at 03:00 on day 2, and
    sessions at noon: day 1's answers wait for the night of day 2, and day
    2's for the evening of day 3.

    >>> training_days([22.0, float("nan"), 3.0], {0: 0.5, 1: 1.5, 2: 2.5}, until=5)
    {0: [0], 2: [1], 3: [2]}
    """
    plan: dict[int, list[int]] = {}
    for day, last in sorted(answered.items()):
        for when in range(math.floor(last), until + 1):
            hour = done_at[when % len(done_at)]
            if not math.isnan(hour) and when + hour / 24 >= last:
                plan.setdefault(when, []).append(day)
                break
    return plan


@dataclass(frozen=True)
class TutorReport:
    """Per student: the population and the personalized model on held-out days, and the device's bill.

    ``rows``: one dict per student with ``student``, ``auc_before``,
    ``auc_after``, ``ece_before``, ``ece_after``, ``answers_trained``,
    ``training_days``, ``steps``. Device figures (for the whole recipe):
    ``peak_bytes``, ``budget_bytes``, ``fits`` (by the measured report),
    ``step_energy_j``, ``energy_per_day_j`` and ``battery_percent_per_day``
    (mean over the students' training days spread over all days).
    ``held_out`` keeps, per student, the population model's and the
    personalized model's predictions and the answers (for :meth:`reliability`).
    """

    recipe: str
    device: str | None
    rows: list[dict[str, float]]
    peak_bytes: int
    budget_bytes: int | None
    fits: bool | None
    step_energy_j: float
    energy_per_day_j: float
    battery_percent_per_day: float | None
    held_out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list, repr=False
    )

    def mean(self, key: str) -> float:
        """The mean of column ``key`` over students (``nan`` values skipped)."""
        return float(np.nanmean([r[key] for r in self.rows]))

    def reliability(self, bins: int = 8) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Reliability curves over all students' held-out answers, before and after personalization.

        ``{"population": (mean prediction, share right), "personalized": ...}``
        per bin, as :func:`odtlab.viz.plot_reliability` takes them.
        """
        before, after, y = (np.concatenate(parts) for parts in zip(*self.held_out, strict=True))
        curves = {}
        for name, p in (("population", before), (f"personalized ({self.recipe})", after)):
            mean_p, share, _ = reliability(p, y, bins)
            curves[name] = (mean_p, share)
        return curves

    @property
    def gain(self) -> float:
        """Mean AUC after minus mean AUC before."""
        return self.mean("auc_after") - self.mean("auc_before")

    def to_dataframe(self) -> Any:
        """The rows as a ``pandas.DataFrame``."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def plot(self, ax: Any = None) -> Any:
        """Each student's AUC before against after (:func:`odtlab.viz.plot_personal_auc`)."""
        return plot_personal_auc([r["auc_before"] for r in self.rows],
                                 [r["auc_after"] for r in self.rows], title=self.recipe, ax=ax)  # fmt: skip

    def __str__(self) -> str:
        fit = {None: "no device", True: "fits", False: "does NOT fit"}[self.fits]
        battery = ("" if self.battery_percent_per_day is None
                   else f", {self.battery_percent_per_day:.2g} % battery a day")  # fmt: skip
        return (f"{self.recipe} on {self.device}: AUC {self.mean('auc_before'):.3f} -> "
                f"{self.mean('auc_after'):.3f}, ECE {self.mean('ece_before'):.3f} -> "
                f"{self.mean('ece_after'):.3f} over {len(self.rows)} students; peak "
                f"{devices.format_bytes(self.peak_bytes)} ({fit}), "
                f"{devices.format_joules(self.energy_per_day_j)} a day{battery}")  # fmt: skip


def personalize(
    model: nn.Module,
    cohort: Cohort,
    recipe: Recipe,
    device: str | devices.DeviceProfile | None = None,
    *,
    strategy: Callable[[], cl.Strategy] | None = None,
    epochs: int = 3,
    batch_size: int = 16,
    user_type: str | None = None,
    policy: str = "charging_idle_unmetered",
    students: Sequence[int] | None = None,
    seed: int = 0,
) -> TutorReport:
    """Fine-tune a copy of ``model`` for every student of ``cohort``; measure it on held-out days.

    Parameters
    ----------
    model : nn.Module
        The population model (not changed).
    cohort : Cohort
    recipe : Recipe
        How a phone trains (the trainable set, the optimizer...).
    device : str, DeviceProfile or None
        Prices a step (memory, joules); ``None`` trains without a device.
    strategy : callable, optional
        Makes a fresh continual strategy per student; default
        ``cl.Replay(capacity=100)``.
    epochs, batch_size : int
        Passes over each training day's answers, and answers per step.
    user_type, policy : str, optional
        With a ``user_type`` of :func:`odtlab.devices.usage_trace` (student
        ``k`` gets trace seed ``k``), a day's answers are trained at the first
        completed training window after the session: the hour at which the
        scheduling ``policy`` completes the day's job (:func:`training_days`).
        ``None``: each day's answers are trained at the end of that day.
    students : sequence of int, optional
        Only these students (default :attr:`Cohort.students`).
    seed : int
        Seeds the batch order and replay draws.
    """
    make = strategy or (lambda: cl.Replay(capacity=100))
    who = cohort.students if students is None else list(students)
    if not who:
        raise InvalidCohort("personalize: no student has both training answers and a held-out "
                            "mix of right and wrong answers; simulate more students or days")  # fmt: skip
    price = _price(
        model, cohort, recipe, device, who[0], batch_size, make().replay_size(batch_size), epochs
    )
    rows, joules, battery, held = [], [], [], []
    for s in who:
        test = cohort.data.dataset(cohort.data.mask(students=[s], days=cohort.test_days))
        mine = (cohort.log.student == s) & np.isin(cohort.log.day, cohort.train_days)
        answered = {int(d): float(cohort.log.time[mine & (cohort.log.day == d)].max())
                    for d in np.unique(cohort.log.day[mine])}  # fmt: skip
        plan = training_days(_windows(s, user_type, policy, device, price), answered,
                             until=cohort.train_days[-1])  # fmt: skip
        experiences = []
        for k, (day, batch_days) in enumerate(plan.items()):
            train = cohort.data.dataset(cohort.data.mask(students=[s], days=batch_days))
            experiences.append(cl.Experience(k, train, test, (0, 1), name=f"day {day}"))
        before = predict_right(model, test.x)
        row = {
            "student": s,
            "auc_before": auc(before, test.y),
            "ece_before": calibration_error(before, test.y),
        }
        if experiences:
            stream = cl.Stream(tuple(experiences), num_classes=2, scenario="domain", epochs=epochs,
                               batch_size=batch_size, name=f"student {s}")  # fmt: skip
            tuned = cl.run_stream(model, stream, make(), recipe=recipe, seed=seed).model
            after = predict_right(tuned, test.x)
        else:
            after = before
        steps = sum(epochs * math.ceil(len(e.train) / batch_size) for e in experiences)
        row |= {"auc_after": auc(after, test.y), "ece_after": calibration_error(after, test.y),
                "answers_trained": sum(len(e.train) for e in experiences),
                "training_days": len(experiences), "steps": steps}  # fmt: skip
        rows.append(row)
        held.append((before, after, test.y.numpy()))
        joules.append(steps * price["step_energy_j"] / len(cohort.train_days))
        if price["battery_wh"]:
            battery.append(100 * joules[-1] / (price["battery_wh"] * 3600))
    return TutorReport(
        recipe=recipe.name, device=price["device"], rows=rows, peak_bytes=price["peak"],
        budget_bytes=price["budget"], fits=price["fits"], step_energy_j=price["step_energy_j"],
        energy_per_day_j=float(np.mean(joules)),
        battery_percent_per_day=float(np.mean(battery)) if battery else None, held_out=held,
    )  # fmt: skip


def _price(model: nn.Module, cohort: Cohort, recipe: Recipe, device: Any, student: int,
           batch_size: int, replayed: int, epochs: int) -> dict[str, Any]:  # fmt: skip
    """One measured step on the device: ``batch_size`` new answers plus ``replayed`` old ones."""
    mine = cohort.data.mask(students=[student], days=cohort.train_days)
    rows = cohort.data.dataset(mine)
    step = Trainer(copy.deepcopy(model), recipe, device, steps=1, batch_size=batch_size + replayed,
                   progress=False, check_memory=False).fit(rows)  # fmt: skip
    profile = None if device is None else devices.get(device)
    per_day = np.bincount(cohort.data.day[mine]).max()  # answers on the busiest day
    return {"device": None if profile is None else profile.name, "peak": step.peak_bytes,
            "budget": step.budget_bytes, "fits": step.fits,
            "step_energy_j": float(step.sim_energy_j) if profile is not None else float("nan"),
            "battery_wh": getattr(profile, "battery_wh", None), "workload": step.workload,
            "steps_per_day": epochs * math.ceil(int(per_day) / batch_size)}  # fmt: skip


def _windows(student: int, user_type: str | None, policy: str, device: Any,
             price: dict[str, Any]) -> list[float]:  # fmt: skip
    """The hour of each trace day at which the day's job completes (``nan``: it does not)."""
    if user_type is None:
        return [24.0]  # no trace: the phone trains at the end of each day with answers
    if device is None:
        raise InvalidCohort(
            "personalize: a user_type (training windows) needs a device to price the job"
        )
    trace = devices.usage_trace(user_type, seed=student)
    job = devices.DailyJob.from_workload(
        price["workload"], device, steps_per_day=price["steps_per_day"]
    )
    result = devices.simulate_schedule(trace, policy, device, job)
    hours = []
    for day in range(math.ceil(trace.days)):
        kept = np.cumsum(result.steps[trace.day(day)] - result.lost_steps[trace.day(day)])
        done = np.flatnonzero(kept >= job.steps_per_day - 1e-6)
        hours.append((done[0] + 1) * trace.minutes_per_sample / 60 if len(done) else math.nan)
    return hours
