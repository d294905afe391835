"""Secure aggregation: Shamir sharing, exact sums with and without dropouts, failure beyond the
threshold keeps the model, masked vectors look uniform, and what it costs."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import Subset

from odtlab import data, models
from odtlab.fl import (
    Client,
    EncodingOverflow,
    FedAvg,
    NotEnoughShares,
    TooManyDropouts,
    run_federation,
    trust,
)
from odtlab.fl.trust import (
    MODULUS,
    SecureFedAvg,
    advertise_keys,
    combine_shares,
    encode,
    pairwise_seed,
    secagg_cost,
    secure_sum,
    split_secret,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("module", [trust.shamir, trust.secagg, trust.secure_fedavg])
def test_the_doctests_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0


def test_any_t_shares_recover_the_secret_and_fewer_do_not():
    rng = np.random.default_rng(1)
    secret = int.from_bytes(rng.bytes(32), "big")  # a 256-bit key
    shares = split_secret(secret, n=7, threshold=4, rng=rng)
    for pick in ([0, 1, 2, 3], [6, 2, 5, 0], [1, 3, 4, 5, 6]):
        assert combine_shares([shares[i] for i in pick], threshold=4) == secret
    assert combine_shares(shares[:3]) != secret  # t - 1 shares interpolate to something else
    with pytest.raises(NotEnoughShares, match="at least t parties"):
        combine_shares(shares[:3], threshold=4)
    with pytest.raises(ValueError, match="threshold"):
        split_secret(secret, n=3, threshold=4, rng=rng)


def _inputs(n: int, length: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, MODULUS, size=length, dtype=np.uint32) for _ in range(n)]


def _plain_sum(inputs, members) -> np.ndarray:
    return (sum(inputs[u].astype(np.uint64) for u in members) % MODULUS).astype(np.uint32)


def test_the_pairwise_seed_is_the_same_on_both_sides():
    u, v = advertise_keys(2, np.random.default_rng(0))
    assert pairwise_seed(u.secret_key, v.public_key) == pairwise_seed(v.secret_key, u.public_key)
    assert len(pairwise_seed(u.secret_key, v.public_key)) == 32


@pytest.mark.parametrize("dropped", [(), (1,), (0, 4), (2, 3, 5)])
def test_the_server_learns_exactly_the_plain_sum_of_the_survivors(dropped):
    inputs = _inputs(8, 500, seed=len(dropped))
    out = secure_sum(inputs, threshold=5, dropped=dropped, seed=7)
    survivors = [u for u in range(8) if u not in dropped]
    assert out.survivors == tuple(survivors)
    assert np.array_equal(out.total, _plain_sum(inputs, survivors))  # exact, to the bit
    # the masks are there: no masked vector equals its input
    assert all(not np.array_equal(out.masked[u], inputs[u]) for u in survivors)


def test_fixed_point_sums_decode_to_the_float_sum_within_the_resolution():
    gen = torch.Generator().manual_seed(0)
    values = [torch.randn(300, generator=gen) for _ in range(5)]
    out = secure_sum([encode(v) for v in values], threshold=3, dropped=[2], seed=0)
    expected = sum(values[u].double() for u in (0, 1, 3, 4))
    assert torch.allclose(trust.decode(out.total), expected, atol=4 * 0.5 / 2**16)


def test_more_than_n_minus_t_dropouts_fail_with_a_clear_error():
    inputs = _inputs(6, 10, seed=0)
    with pytest.raises(TooManyDropouts, match="lower the threshold") as err:
        secure_sum(inputs, threshold=4, dropped=[0, 1, 2], seed=0)
    assert (err.value.survivors, err.value.threshold, err.value.clients) == (3, 4, 6)
    # exactly n - t dropouts still work
    assert np.array_equal(secure_sum(inputs, threshold=4, dropped=[0, 1], seed=0).total, _plain_sum(inputs, [2, 3, 4, 5]))


def test_a_masked_vector_is_indistinguishable_from_uniform_and_the_plain_one_is_not():
    update = torch.linspace(-0.1, 0.1, 20_000)  # a smooth, small update: very far from uniform bytes
    plain = encode(update)
    out = secure_sum([plain, encode(-update), encode(update * 0)], threshold=2, seed=3)
    masked = out.masked[0]

    def byte_p_value(v):
        counts = np.bincount(v.view(np.uint8), minlength=256)
        return stats.chisquare(counts).pvalue

    assert byte_p_value(masked) > 1e-3
    assert stats.kstest(masked / MODULUS, "uniform").pvalue > 1e-3
    assert byte_p_value(plain) < 1e-12


def test_secure_fedavg_equals_fedavg_in_a_federation_to_the_fixed_point_resolution():
    train = data.digits("train")
    parts = data.partition(train, 5, seed=0)
    clients = [Client(f"c{k}", Subset(train, p[:60])) for k, p in enumerate(parts)]
    plain = run_federation(models.mlp(seed=0), clients, FedAvg(), rounds=2, progress=False, engine="vectorized")
    secure = SecureFedAvg(seed=0)
    masked = run_federation(models.mlp(seed=0), clients, secure, rounds=2, progress=False, engine="vectorized")
    for k, v in plain.params.items():
        assert torch.allclose(masked.params[k], v, atol=1e-4), k
    assert secure.failures == [] and len(secure.masked_seen) == 5


def test_secure_fedavg_with_dropouts_is_fedavg_over_the_survivors():
    gen = torch.Generator().manual_seed(0)
    g = {"w": torch.zeros(3, 2)}
    results = [({"w": torch.randn(3, 2, generator=gen)}, n) for n in (10, 20, 30, 40, 50, 60)]
    s = SecureFedAvg(threshold=0.5, dropout=0.3, seed=4)
    new = s.aggregate(g, results)
    assert 3 <= len(s.survivors) < 6
    expected = FedAvg().aggregate(g, [results[u] for u in s.survivors])
    assert torch.allclose(new["w"], expected["w"], atol=1e-4)


def test_a_round_beyond_the_threshold_keeps_the_previous_model_and_the_federation_goes_on():
    train = data.digits("train")
    clients = [Client(f"c{k}", Subset(train, range(20 * k, 20 * k + 20))) for k in range(4)]
    net = models.mlp(seed=0)
    s = SecureFedAvg(threshold=0.75, dropout=0.9, seed=0)  # t = 3 of 4, and nearly everyone leaves
    run = run_federation(net, clients, s, rounds=3, progress=False)
    assert [r for r, _ in s.failures] == [1, 2, 3]
    assert "more than n - t = 1 dropped out" in s.failures[0][1] and "previous model kept" in s.failures[0][1]
    assert all(torch.equal(run.params[k], v) for k, v in net.state_dict().items())
    # the same strategy without dropouts moves the model
    moved = run_federation(net, clients, SecureFedAvg(threshold=0.75, seed=0), rounds=1, progress=False)
    assert not torch.equal(moved.params["classifier.weight"], net.state_dict()["classifier.weight"])


def test_updates_too_large_for_the_encoding_are_refused_with_the_fix():
    with pytest.raises(EncodingOverflow, match="lower the scale"):
        encode(torch.tensor([1e6]))
    g = {"w": torch.zeros(2)}
    with pytest.raises(EncodingOverflow, match="clip the updates"):
        SecureFedAvg().aggregate(g, [({"w": torch.tensor([500.0, 0.0])}, 100)])


def test_cost_grows_with_the_number_of_clients_as_counted_by_hand():
    costs = secagg_cost([3, 6, 12], vector_length=10, seed=0)
    # n = 3, m = 10: 32 (key) + 2*2 shares of 68 bytes + 40 (masked) + 2 shares = 480 bytes up
    assert costs[0].bytes_up == 32 + 4 * 68 + 40 + 2 * 68 == 480
    assert costs[0].plain_bytes_up == 40
    ups = [c.bytes_up for c in costs]
    assert ups[1] - ups[0] == 3 * 3 * 68 and ups[2] - ups[1] == 6 * 3 * 68  # linear in n
    assert all(c.client_seconds > 0 and c.server_seconds > 0 for c in costs)
