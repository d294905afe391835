"""The simulated students: their answers follow the parameters that made them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import odtlab as odt
from odtlab.data import InvalidDataArgument, Student, p_correct, simulate_students


def _student(**changes: float) -> Student:
    base = dict(student_id=0, prior=(0.0,) * 5, learn_rate=0.2, half_life_days=2.0, discrimination=1.0,
                spacing_gain=0.0, guess=0.2, slip=0.05, speed_s=10.0, sessions_per_week=7.0)  # fmt: skip
    return Student(**(base | changes))  # type: ignore[arg-type]


def _theta(log: odt.data.StudentLog, st: Student) -> np.ndarray:
    """Invert p_correct: the skill (logits) behind each logged chance."""
    know = (log.chance - st.guess) / (1 - st.guess - st.slip)
    return np.log(know / (1 - know)) / st.discrimination + log.difficulty


def test_same_seed_same_log_and_another_seed_another():
    a, b, c = (simulate_students(4, days=6, seed=s) for s in (0, 0, 1))
    for col in ("student", "topic", "correct", "time", "difficulty"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
    assert len(a) != len(c) or not np.array_equal(a.correct, c.correct)


def test_a_student_who_knows_nothing_only_guesses():
    st = _student(prior=(-50.0,) * 5, learn_rate=0.0, guess=0.25)
    log = simulate_students([st], days=40, questions_per_session=20, seed=3)
    n = len(log)
    share = log.correct.mean()
    assert n == 800  # a session every day at 7 sessions a week
    assert abs(share - 0.25) < 3 * math.sqrt(0.25 * 0.75 / n), share


def test_answers_are_drawn_at_the_logged_chance():
    log = simulate_students(30, days=14, seed=2)
    n = len(log)
    assert abs(log.correct.mean() - log.chance.mean()) < 3 * math.sqrt(0.25 / n)
    # and higher chances give more right answers
    high = log.chance > np.median(log.chance)
    assert log.correct[high].mean() > log.correct[~high].mean() + 0.1


def test_each_practised_question_adds_the_learning_rate_within_a_session():
    st = _student(prior=(-2.0,) * 5, learn_rate=0.3, half_life_days=1e6)  # no forgetting
    log = simulate_students([st], days=1, questions_per_session=12, policy=lambda h, rng: 0, seed=0)
    steps = np.diff(_theta(log, st))
    assert len(steps) == 11
    assert np.allclose(steps, 0.3, atol=1e-6), steps


def test_forgetting_follows_the_half_life_between_sessions():
    st = _student(learn_rate=0.5, half_life_days=1.5, spacing_gain=0.0)
    log = simulate_students([st], days=12, policy=lambda h, rng: 0, seed=1)
    theta = _theta(log, st)
    first = np.flatnonzero(np.diff(log.day) > 0) + 1  # first question of each later session
    assert len(first) >= 8
    for i in first:
        gain_before = (
            theta[i - 1] - st.prior[0] + st.learn_rate
        )  # what was learned by the last answer
        expected = st.prior[0] + gain_before * 2.0 ** (-log.gap[i] / st.half_life_days)
        assert theta[i] == pytest.approx(expected, abs=1e-6)
    assert (theta[first] < theta[first - 1]).all()  # every night forgets something


def test_spaced_practice_lasts_longer_than_massed_practice():
    spaced = _student(prior=(-2.0,) * 5, learn_rate=0.05, spacing_gain=1.5)
    massed = _student(prior=(-2.0,) * 5, learn_rate=0.05, spacing_gain=0.0)
    a = simulate_students([spaced], days=20, policy=lambda h, rng: 0, seed=4)
    b = simulate_students([massed], days=20, policy=lambda h, rng: 0, seed=4)
    first_a = np.flatnonzero(np.diff(a.day) > 0) + 1
    first_b = np.flatnonzero(np.diff(b.day) > 0) + 1
    assert _theta(a, spaced)[first_a][-3:].mean() > _theta(b, massed)[first_b][-3:].mean()


def test_p_correct_is_bounded_by_guess_and_slip():
    assert p_correct(-100.0, 0.0, 0.2, 0.1) == pytest.approx(0.2)
    assert p_correct(100.0, 0.0, 0.2, 0.1) == pytest.approx(0.9)
    assert p_correct(0.0, 0.0, 0.2, 0.1, discrimination=3.0) == pytest.approx(0.55)


def test_a_curriculum_practises_one_topic_per_block_of_days():
    log = simulate_students(2, days=9, policy="curriculum", seed=0)
    assert np.array_equal(log.topic, (log.day // 3) % 5)


def test_features_use_only_the_past():
    log = simulate_students(3, days=6, seed=0)
    rows = odt.data.tracing_features(log, history=True)
    mine = np.flatnonzero(log.student == 1)
    one = log.for_student(1)
    for k, i in enumerate(mine):
        before = one.select(np.arange(len(one)) < k)
        row = odt.data.next_question_features(before, int(log.topic[i]), time=float(log.time[i]),
                                              difficulty=float(log.difficulty[i]), history_features=True)  # fmt: skip
        assert torch.allclose(row, rows.x[i])
    assert torch.equal(rows.y, torch.as_tensor(log.correct, dtype=torch.int64))
    seq = odt.data.tracing_sequences(log, length=4)
    first = int(mine[0])
    assert torch.count_nonzero(seq.x[first, :4]) == 0  # a student's first question has no past
    assert seq.x[first, 4, len(log.topics)] == 0  # the answer asked about is hidden


def test_bad_arguments_say_what_to_do():
    with pytest.raises(InvalidDataArgument, match="unknown policy 'spaced'"):
        simulate_students(2, days=3, policy="spaced")
    with pytest.raises(InvalidDataArgument, match="topics are 0..4"):
        simulate_students(1, days=3, policy=lambda h, rng: 7)
    with pytest.raises(InvalidDataArgument, match="no interaction"):
        odt.data.tracing_features(simulate_students(1, days=3, seed=0)).dataset(np.zeros(3, bool))
