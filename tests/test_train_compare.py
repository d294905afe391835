"""compare(): one row per recipe, honest fit flags, misfits reported rather than crashed."""

from __future__ import annotations

import math

import matplotlib
import pytest
from test_train_helpers import make_recipe

from odtlab import data, devices, models
from odtlab.train import Comparison, compare
from odtlab.viz import pareto_front

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def digits():
    return data.digits("train"), data.digits("test")


@pytest.fixture(scope="module")
def result(digits) -> Comparison:
    # the default MLP: weights 67 KiB; SGD+momentum fits in 256 KiB, Adam's 2 moments do not
    recipes = [make_recipe("full", "sgd", lr=0.05, momentum=0.9),
               make_recipe("full", "adam", lr=1e-3),
               make_recipe("last", "sgd", lr=0.05)]  # fmt: skip
    return compare(recipes, models.mlp(), *digits, "stm32f746", steps=30, batch_size=32)


def test_one_row_per_recipe_with_the_right_fit_flags(result):
    assert [r["fits"] for r in result.rows] == [True, False, True]
    assert [r["trained"] for r in result.rows] == [True, False, True]
    assert len(result.rows) == 3 and len(result.reports) == 3
    budget = devices.get("stm32f746").training_memory_bytes
    assert result.budget_bytes == budget
    for row in result.rows:
        assert (row["peak_bytes"] <= budget) == row["fits"]
        assert row["sim_energy_j"] > 0 and row["activations_bytes"] > 0


def test_the_misfit_shows_its_memory_but_no_accuracy(result):
    adam = result.rows[1]
    assert adam["final_accuracy"] is None and result.reports[adam["recipe"]] is None
    assert adam["optimizer_bytes"] >= 2 * adam["gradients_bytes"]  # two moments per weight
    assert "DOES NOT FIT" in result.table()


def test_trained_rows_match_their_reports(result):
    for row in result.rows:
        report = result.reports[row["recipe"]]
        if report is None:
            continue
        assert row["final_accuracy"] == report.final_accuracy
        assert row["peak_bytes"] == report.peak_bytes
        assert row["sim_energy_j"] == report.sim_energy_j
    full, last = result.rows[0], result.rows[2]
    assert full["final_accuracy"] > 0.75  # measured: 0.84 after 30 steps
    assert last["gradients_bytes"] < full["gradients_bytes"]


def test_train_unfit_trains_the_misfit_anyway(digits):
    recipes = [make_recipe("full", "sgd", lr=0.05), make_recipe("full", "adam", lr=1e-3)]
    result = compare(recipes, lambda: models.mlp(seed=1), *digits, "stm32f746", steps=10,
                     train_unfit=True)  # fmt: skip
    assert [r["fits"] for r in result.rows] == [True, False]
    assert all(r["trained"] and r["final_accuracy"] is not None for r in result.rows)
    assert "trained anyway" in result.table()


def test_duplicate_names_are_made_unique(digits):
    same = [make_recipe("last"), make_recipe("last")]
    result = compare(same, models.mlp(), digits[0], None, None, steps=2)
    names = [r["recipe"] for r in result.rows]
    assert len(set(names)) == 2 and names[1].endswith("#2")
    assert all(r["fits"] is None for r in result.rows)


def test_pareto_front_and_plot(result):
    assert pareto_front([1, 2, 3, 4], [0.5, 0.4, 0.9, 0.9]) == [0, 2]
    assert pareto_front([1, 2], [math.nan, 0.3]) == [1]
    front = result.pareto("peak_bytes")
    assert result.rows[2]["recipe"] in front  # the smallest peak with an accuracy
    fig = result.plot()
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel() == "peak memory (KiB)"
    df = result.to_dataframe()
    assert list(df["recipe"]) == [r["recipe"] for r in result.rows]
