"""odtlab.train.Protocol: one set of rules for every recipe comparison, its spread and its cache."""

from __future__ import annotations

import math

import pytest
import torch

import odtlab as odt
from odtlab import recipes as R
from odtlab.errors import OdtlabError
from odtlab.train import protocol as protocol_module

TINY = dict(n_train=48, n_test=40, steps=2, batch_size=16, seeds=(0, 1))


def test_each_seed_draws_its_own_training_set_and_all_share_one_test_set():
    p = odt.train.Protocol(**TINY)
    (tr0, te0), (tr1, te1) = p.data(0), p.data(1)
    x0, _ = odt.data.as_tensors(tr0)
    x1, _ = odt.data.as_tensors(tr1)
    assert not torch.equal(x0, x1)
    assert torch.equal(odt.data.as_tensors(te0)[0], odt.data.as_tensors(te1)[0])
    assert len(tr0) == 48 and len(te0) == 40


def test_one_optimizer_for_every_recipe():
    p = odt.train.Protocol(**TINY)
    assert p.recipe(R.BiasOnly(), name="b").optimizer_part == p.optimizer
    with pytest.raises(OdtlabError, match="protocol sets the optimizer"):
        p.recipe(R.BiasOnly(), R.SGD(lr=0.1))
    with pytest.raises(OdtlabError, match="build it with Protocol.recipe"):
        p.run([R.Recipe(R.LastLayer(), R.SGD(lr=0.1), name="last")])
    with pytest.raises(OdtlabError, match="at least one recipe"):
        p.run([])
    with pytest.raises(OdtlabError, match="unique"):
        p.run([p.recipe(name="a"), p.recipe(R.LastLayer(), name="a")])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"domain": "mars"}, "unknown domain"), ({"steps": 0}, "positive integer"),
     ({"seeds": (1, 1)}, "distinct seeds"), ({"optimizer": "adam"}, "optimizer part")],
)  # fmt: skip
def test_bad_protocols_say_what_to_change(kwargs, match):
    with pytest.raises(OdtlabError, match=match):
        odt.train.Protocol(**kwargs)


def test_run_trains_every_recipe_per_seed_and_the_cache_gives_the_same_rows(tmp_path, monkeypatch):
    p = odt.train.Protocol(**TINY)
    recipes = [p.recipe(R.LastLayer(), name="last"), p.recipe(R.BiasOnly(), name="bias")]
    first = p.run(recipes, "rpi4", cache=tmp_path)
    assert first.names == ["last", "bias"]
    for name in first.names:
        accs = first.accuracies(name)
        assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
    # the same runs again come from the cache: compare is never called
    monkeypatch.setattr(protocol_module, "compare", lambda *a, **k: pytest.fail("recomputed"))
    again = p.run(recipes, "rpi4", cache=tmp_path)
    assert again.rows == first.rows
    # a changed rule is another run (here it would call the failing compare)
    with pytest.raises(pytest.fail.Exception, match="recomputed"):
        odt.train.Protocol(**{**TINY, "steps": 3}).run(recipes, "rpi4", cache=tmp_path)


def test_cached_rows_equal_an_uncached_run(tmp_path):
    p = odt.train.Protocol(**{**TINY, "seeds": (3,)})
    recipes = [p.recipe(R.LastLayer(), name="last")]
    p.run(recipes, cache=tmp_path)
    cached, fresh = p.run(recipes, cache=tmp_path).rows[3][0], p.run(recipes).rows[3][0]
    assert cached.keys() == fresh.keys()
    for key, value in fresh.items():  # without a device the simulated time is NaN, and NaN != NaN
        same = value == cached[key] or (isinstance(value, float) and math.isnan(value) and math.isnan(cached[key]))
        assert same, (key, value, cached[key])


def _result(accs: dict[str, list[float]]) -> odt.train.ProtocolResult:
    seeds = tuple(range(len(next(iter(accs.values())))))
    p = odt.train.Protocol(seeds=seeds)
    rows = {s: [{"recipe": n, "final_accuracy": a[s], "peak_bytes": 1024} for n, a in accs.items()]
            for s in seeds}  # fmt: skip
    return odt.train.ProtocolResult(protocol=p, names=list(accs), rows=rows)


def test_mean_spread_and_separation_by_hand():
    r = _result({"full": [0.90, 0.92, 0.94], "last": [0.80, 0.86, 0.83], "bias": [0.91, 0.93, 0.90]})
    assert r.mean("full") == pytest.approx(0.92)
    assert r.spread("full") == pytest.approx(0.02)  # sample std of 0.90, 0.92, 0.94
    assert r.spread("last") == pytest.approx(0.03)
    assert r.separated("full", "last")  # gap 0.09 > 0.03
    assert not r.separated("full", "bias")  # gap 0.0067 < spread 0.0153
    assert not r.separated("last", "full")
    assert "full" in r.table() and "3 seeds" in r.table()
    with pytest.raises(OdtlabError, match="no recipe 'lora'"):
        r.mean("lora")


def test_one_seed_has_no_spread():
    r = _result({"a": [0.5]})
    assert r.spread("a") == 0.0 and not math.isnan(r.mean("a"))


def test_source_fingerprint_is_stable():
    assert protocol_module.source_fingerprint() == protocol_module.source_fingerprint()
    assert len(protocol_module.source_fingerprint()) == 16
