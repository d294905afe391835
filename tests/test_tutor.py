"""The capstone tutor: metrics against scikit-learn, personalization against the population model,
every reported fit against odtlab's own measurement, and the next-topic policy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import odtlab as odt
from odtlab import recipes as R
from odtlab.tutor import InvalidCohort, auc, calibration_error, reliability


@pytest.fixture(scope="module")
def cohort() -> odt.tutor.Cohort:
    return odt.tutor.make_cohort(14, days=28, test_days=7, seed=1)


@pytest.fixture(scope="module")
def population() -> torch.nn.Module:
    return odt.models.pretrained("kt-mlp")


def test_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    p = np.round(rng.random(300), 1)  # many ties
    y = (rng.random(300) < p).astype(int)
    assert auc(p, y) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert np.isnan(auc([0.2, 0.7], [1, 1]))
    with pytest.raises(ValueError, match="apply a softmax"):
        auc([1.5, 0.2], [1, 0])
    with pytest.raises(ValueError, match="differ in length"):
        auc([0.5], [1, 0])


def test_calibration_error_is_small_for_calibrated_predictions_and_large_otherwise():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)
    assert calibration_error(p, y) < 0.02
    assert calibration_error(np.clip(p + 0.3, 0, 1), y) > 0.2
    mean_p, share, count = reliability(p, y, bins=4)
    assert count.sum() == 20000 and np.allclose(mean_p, share, atol=0.03)


def test_shipped_population_models_reproduce_their_metadata(population):
    log = odt.data.simulate_students(100, days=28, seed=1)
    for name, rows in (("kt-mlp", odt.data.tracing_features(log)),
                       ("kt-gru", odt.data.tracing_sequences(log, length=16))):  # fmt: skip
        info = odt.models.pretrained_info(name)
        model = population if name == "kt-mlp" else odt.models.pretrained(name)
        measured = auc(odt.tutor.predict_right(model, rows.x), rows.y)
        assert measured == pytest.approx(info["held_out_auc"], abs=1e-3), name
        assert info["data"]["columns"] == list(rows.names)
        assert info["file_bytes"] < 100_000  # phone-sized, shipped with the package


def test_personalization_raises_mean_auc_on_held_out_days(cohort, population):
    recipe = R.Recipe(R.BiasOnly(), R.Adam(lr=1e-2))
    report = odt.tutor.personalize(population, cohort, recipe, "phone-mid", epochs=3)
    assert [r["student"] for r in report.rows] == cohort.students
    assert report.gain > 0.02, str(report)  # measured: 0.575 -> 0.621
    assert sum(r["auc_after"] > r["auc_before"] for r in report.rows) > len(report.rows) / 2
    assert report.mean("ece_after") < report.mean("ece_before")
    # the population model is untouched
    again = odt.tutor.personalize(
        population, cohort, recipe, None, epochs=1, students=[cohort.students[0]]
    )
    assert again.rows[0]["auc_before"] == report.rows[0]["auc_before"]


@pytest.mark.parametrize("device", ["phone-mid", "stm32f746", "tiny"])
def test_every_reported_fit_is_odtlabs_measurement(cohort, population, device):
    profile = odt.devices.get("stm32f746")
    if device == "tiny":  # a microcontroller with 64 KB of SRAM: full fine-tuning cannot fit
        profile = dataclasses.replace(
            profile, name="tiny-mcu", sram_bytes=64 * 1024, training_memory_bytes=52 * 1024
        )
    else:
        profile = odt.devices.get(device)
    student = cohort.students[0]
    for part in (R.BiasOnly(), R.Full()):
        recipe = R.Recipe(part, R.Adam(lr=1e-2))
        report = odt.tutor.personalize(
            population, cohort, recipe, profile, epochs=1, students=[student]
        )
        rows = cohort.data.dataset(cohort.data.mask(students=[student], days=cohort.train_days))
        x, y = rows.x[:32], rows.y[:32]  # one step: 16 new answers and 16 replayed
        net = odt.models.pretrained("kt-mlp").train()
        recipe.prepare(net)
        measured = odt.train.profile(net, (x, y), recipe)
        assert report.peak_bytes == measured.totals["peak"]
        assert report.fits == odt.devices.fits(measured, profile)
    if device == "tiny":
        assert report.fits is False and report.peak_bytes > report.budget_bytes


def test_answers_wait_for_a_training_window():
    done_at = [23.0, float("nan"), 2.0, float("nan"), float("nan"), 20.0, 9.0]
    answered = {d: d + 0.4 + 0.05 * (d % 4) for d in range(13)}  # sessions between 09:36 and 14:24
    plan = odt.tutor.training_days(done_at, answered, until=13)
    trained = [d for days in plan.values() for d in days]
    assert trained == sorted(set(trained))  # each day's answers are trained at most once
    for day, data_days in plan.items():
        ready = day + done_at[day % 7] / 24
        assert all(answered[d] <= ready for d in data_days)  # never before the answers exist
        for d in data_days:  # and at the first window after them
            assert all(math.isnan(done_at[w % 7]) or w + done_at[w % 7] / 24 < answered[d]
                       for w in range(int(answered[d]), day))  # fmt: skip
    assert 13 not in trained  # day 13 (a Sunday) finds no window before the end


def test_scheduled_training_waits_for_windows(cohort, population):
    recipe = R.Recipe(R.LastLayer(), R.Adam(lr=1e-2))
    free = odt.tutor.personalize(population, cohort, recipe, "phone-mid", epochs=1)
    windowed = odt.tutor.personalize(
        population, cohort, recipe, "phone-mid", epochs=1, user_type="student"
    )
    pairs = list(zip(windowed.rows, free.rows, strict=True))
    assert all(w["answers_trained"] <= f["answers_trained"] for w, f in pairs)
    assert any(w["answers_trained"] < f["answers_trained"] for w, f in pairs)  # the last day waits


def test_bad_cohorts_and_windows_get_clear_errors(cohort, population):
    with pytest.raises(InvalidCohort, match="test_days must be between 1 and days - 1"):
        odt.tutor.make_cohort(3, days=5, test_days=5)
    with pytest.raises(InvalidCohort, match="features must be one of"):
        odt.tutor.make_cohort(3, days=5, test_days=2, features="images")
    with pytest.raises(InvalidCohort, match="needs a device"):
        odt.tutor.personalize(population, cohort, R.Recipe(R.BiasOnly()), None, user_type="student")


def test_recall_policy_practises_the_topic_it_predicts_weakest(population):
    policy = odt.tutor.RecallPolicy(population)
    log = odt.data.simulate_students(1, days=4, seed=5)
    history = dataclasses.replace(log, today=4)
    chosen = policy(history, np.random.default_rng(0))
    recall = policy.predicted_recall(history, float(log.time[-1]))
    assert chosen == int(np.argmin(recall))
    before = {k: v.clone() for k, v in population.state_dict().items()}
    tuned = odt.tutor.RecallPolicy(population, R.Recipe(R.BiasOnly(), R.Adam(lr=1e-2)))
    tuned(history, np.random.default_rng(0))  # asked mid-history: it trains its own copy
    assert all(torch.equal(before[k], v) for k, v in population.state_dict().items())
    result = odt.tutor.time_to_mastery(tuned, 2, days=6, seed=2, name="tuned")
    assert result.days.shape == (2,) and result.policy == "tuned"
    assert all(torch.equal(before[k], v) for k, v in population.state_dict().items())
    assert odt.tutor.time_to_mastery("curriculum", 2, days=6, seed=2).mastered == 0.0
