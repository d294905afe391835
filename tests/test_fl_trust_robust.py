"""Robust aggregation: each aggregator equals Flower's function on the same inputs; clipping bounds hold."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from flwr.server.strategy import aggregate as flower

from odtlab.fl import (
    ClippedUpdates,
    FedAvg,
    FedMedian,
    FedTrimmedAvg,
    Krum,
    clip_update,
    robust,
    update_norm,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_doctests_run():
    result = doctest.testmod(robust, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 8 and result.failed == 0


def _results(n: int, seed: int, outliers: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n):
        w = torch.randn(3, 4, generator=g)
        b = torch.randn(4, generator=g)
        if k < outliers:  # a few far-away clients, as attackers would be
            w, b = w * 50 + 20, b - 30
        out.append(({"fc.weight": w, "fc.bias": b}, int(torch.randint(1, 50, (1,), generator=g))))
    return out


def _numpy(results):
    return [([p["fc.weight"].numpy(), p["fc.bias"].numpy()], n) for p, n in results]


def _same(ours: dict, theirs: list, atol: float = 1e-6) -> None:
    assert np.allclose(ours["fc.weight"].numpy(), theirs[0], atol=atol)
    assert np.allclose(ours["fc.bias"].numpy(), theirs[1], atol=atol)


GLOBAL = {"fc.weight": torch.zeros(3, 4), "fc.bias": torch.zeros(4), "other": torch.ones(2)}


@pytest.mark.parametrize("n", [1, 4, 7])
def test_fedmedian_equals_flowers_aggregate_median(n):
    results = _results(n, seed=n, outliers=1)
    new = FedMedian().aggregate(GLOBAL, results)
    _same(new, flower.aggregate_median(_numpy(results)))
    assert torch.equal(new["other"], GLOBAL["other"])  # what clients do not train stays


@pytest.mark.parametrize("n, beta", [(5, 0.2), (7, 0.3), (10, 0.1), (6, 0.0)])
def test_fedtrimmedavg_equals_flowers_aggregate_trimmed_avg(n, beta):
    results = _results(n, seed=10 + n, outliers=1)
    _same(FedTrimmedAvg(beta).aggregate(GLOBAL, results), flower.aggregate_trimmed_avg(_numpy(results), beta))


@pytest.mark.parametrize("n, f, keep", [(7, 2, 0), (7, 2, 3), (10, 3, 0), (10, 1, 6), (3, 0, 0)])
def test_krum_equals_flowers_aggregate_krum(n, f, keep):
    results = _results(n, seed=20 + n, outliers=f)
    strategy = Krum(num_malicious=f, to_keep=keep)
    new = strategy.aggregate(GLOBAL, results)
    _same(new, flower.aggregate_krum(_numpy(results), f, keep), atol=1e-5)
    assert all(i >= f for i in strategy.chosen[0])  # the outliers (indices < f) are never chosen


def test_krum_scores_by_hand():
    # three points on a line at 0, 1, 10: n - f - 2 = 1 neighbour each (f = 0 -> max(1, 1))
    results = [({"w": torch.tensor([v])}, 1) for v in (0.0, 1.0, 10.0)]
    scores = robust.krum_scores({"w": torch.zeros(1)}, results, num_malicious=0)
    assert scores == [1.0, 1.0, 81.0]
    assert Krum().aggregate({"w": torch.zeros(1)}, results)["w"].item() == 0.0  # first of the tie


def test_clipping_bounds_every_update_and_keeps_short_ones():
    g = {"w": torch.ones(10), "b": torch.zeros(3)}
    gen = torch.Generator().manual_seed(0)
    for scale in (0.01, 1.0, 100.0):
        p = {"w": g["w"] + scale * torch.randn(10, generator=gen), "b": scale * torch.randn(3, generator=gen)}
        before = update_norm(g, p)
        clipped = clip_update(g, p, 1.0)
        after = update_norm(g, clipped)
        assert after <= 1.0 + 1e-6
        if before <= 1.0:
            assert all(torch.equal(clipped[k], p[k]) for k in p)
        else:
            assert after == pytest.approx(1.0, rel=1e-6)
            # same direction: the clipped update is a positive multiple of the original
            d0 = torch.cat([(p[k] - g[k]).flatten() for k in p])
            d1 = torch.cat([(clipped[k] - g[k]).flatten() for k in p])
            assert torch.allclose(d1, d0 / before, atol=1e-6)


def test_clipped_fedavg_limits_a_scaled_update():
    g = {"w": torch.zeros(4)}
    honest = [({"w": torch.full((4,), 0.1)}, 10) for _ in range(9)]
    attacker = ({"w": torch.full((4,), 1000.0)}, 10)
    plain = FedAvg().aggregate(g, honest + [attacker])["w"]
    clipped = ClippedUpdates(max_norm=0.2).aggregate(g, honest + [attacker])["w"]
    # the attacker's update is clipped to norm 0.2, i.e. 0.1 per coordinate, like the honest ones
    assert plain[0].item() == pytest.approx(100.09, rel=1e-5)
    assert torch.allclose(clipped, torch.full((4,), 0.1))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: FedTrimmedAvg(beta=0.5), r"\[0, 0.5\)"),
        (lambda: Krum(num_malicious=-1), "int >= 0"),
        (lambda: ClippedUpdates(max_norm=0), "positive L2 norm"),
    ],
)
def test_bad_settings_say_what_to_give(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_krum_refuses_to_keep_more_than_it_has():
    with pytest.raises(ValueError, match="lower to_keep or sample more clients"):
        Krum(num_malicious=1, to_keep=5).aggregate(GLOBAL, _results(3, seed=0))
    with pytest.raises(ValueError, match="different parameters"):
        FedMedian().aggregate(GLOBAL, [({"fc.bias": torch.zeros(4)}, 1), ({"fc.weight": torch.zeros(3, 4)}, 1)])
