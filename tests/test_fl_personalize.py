"""Personalization after a federation: per-client fine-tuning with a cheap recipe, measured honestly."""

from __future__ import annotations

import copy
import doctest

import pytest
import torch
from torch.utils.data import Subset

from odtlab import data, models
from odtlab import recipes as R
from odtlab.fl import Client, FedAvg, personalize, run_federation
from odtlab.fl import personalization as personalize_module
from odtlab.train import accuracy

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def federation():
    train = data.digits("train")
    parts = data.partition(train, 6, scheme="dirichlet", alpha=0.1, seed=0)
    clients = [Client(f"c{k}", Subset(train, p)) for k, p in enumerate(parts)]
    model = models.mlp(seed=0)
    run = run_federation(model, clients, FedAvg(), rounds=6, progress=False, engine="vectorized")
    model.load_state_dict(run.params)
    return model, clients


def test_the_doctest_runs():
    result = doctest.testmod(personalize_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_skewed_clients_gain_from_a_last_layer_fine_tune_and_the_global_model_is_untouched(federation):
    model, clients = federation
    before = copy.deepcopy(model.state_dict())
    report = personalize(model, clients, R.Recipe(R.LastLayer(), R.SGD(lr=0.1)), epochs=3, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(report.rows) == len(clients)
    # Dirichlet(0.1) leaves each client with few classes: the average model serves them
    # badly and a local last layer recovers a lot (measured: about +25 points on the mean).
    assert report.mean_personal > report.mean_global + 0.10
    assert report.improved >= len(clients) - 1
    assert "clients improve" in str(report) and report.plot() is not None


def test_the_global_accuracy_is_the_global_model_on_exactly_the_held_out_examples(federation):
    model, clients = federation
    held = {c.id: Subset(c.data, list(range(0, len(c.data), 3))) for c in clients}
    report = personalize(model, clients, R.Recipe(R.BiasOnly(), R.SGD(lr=0.1)), test_data=held, epochs=1)
    for row, c in zip(report.rows, clients, strict=True):
        assert row["global_accuracy"] == accuracy(model, held[c.id])
        assert row["examples_held_out"] == len(held[c.id]) and row["examples_tuned"] == len(c.data)


def test_a_held_out_split_is_seeded_and_disjoint_from_the_tuning_examples(federation):
    model, clients = federation
    recipe = R.Recipe(R.LastLayer(), R.SGD(lr=0.1))
    a = personalize(model, clients[:2], recipe, seed=3)
    b = personalize(model, clients[:2], recipe, seed=3)
    assert a.rows == b.rows
    for row, c in zip(a.rows, clients[:2], strict=True):
        assert row["examples_tuned"] + row["examples_held_out"] == len(c.data)
        assert row["examples_held_out"] == round(0.25 * len(c.data))


def test_bad_arguments_say_what_to_give(federation):
    model, clients = federation
    recipe = R.Recipe(R.LastLayer())
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        personalize(model, clients, recipe, held_out=1.0)
    with pytest.raises(ValueError, match=r"no held-out set for clients \['c1'"):
        personalize(model, clients[:2], recipe, test_data={"c0": clients[0].data})
    with pytest.raises(ValueError, match="at least one client"):
        personalize(model, [], recipe)
