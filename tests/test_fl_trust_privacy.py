"""Differential privacy: DP-FedAvg's clipping and noise, epsilon as Opacus computes it, DP-SGD's memory."""

from __future__ import annotations

import doctest

import pytest
import torch
from opacus.accountants import RDPAccountant
from torch.utils.data import Subset

from odtlab import data, models
from odtlab.fl import Client, run_federation, trust, update_norm
from odtlab.fl.trust import DPFedAvg, dp_sgd_memory, dp_sgd_train, epsilon_after, noise_for_epsilon

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("module", [trust, trust.privacy, trust.dpsgd])
def test_the_doctests_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0


def test_without_noise_the_server_adds_clipped_updates_and_divides_by_the_expected_count():
    g = {"w": torch.zeros(2)}
    results = [({"w": torch.tensor([3.0, 4.0])}, 5), ({"w": torch.tensor([0.3, 0.0])}, 50)]
    s = DPFedAvg(noise_multiplier=0.0, clip_norm=1.0, num_clients=20, clients_per_round=4)
    new = s.aggregate(g, results)["w"]
    # [3, 4] has norm 5 -> [0.6, 0.8]; [0.3, 0] stays; the sum / m=4 (not / 2 that came; weights ignored)
    assert torch.allclose(new, torch.tensor([0.9 / 4, 0.8 / 4]))
    assert s.epsilon(1e-5) == float("inf")  # no noise, no privacy


def test_one_client_moves_the_noiseless_aggregate_by_at_most_c_over_m():
    g = {"w": torch.zeros(50), "b": torch.zeros(5)}
    gen = torch.Generator().manual_seed(0)
    others = [({"w": torch.randn(50, generator=gen), "b": torch.randn(5, generator=gen)}, 1) for _ in range(4)]
    s = DPFedAvg(noise_multiplier=0.0, clip_norm=0.5, num_clients=100, clients_per_round=5)
    base = s.aggregate(g, others)
    for scale in (1.0, 1e3, 1e6):  # however large the new client's update, its sensitivity is C / m
        extra = ({"w": scale * torch.randn(50, generator=gen), "b": scale * torch.randn(5, generator=gen)}, 1)
        assert update_norm(base, s.aggregate(g, [*others, extra])) <= 0.5 / 5 + 1e-6


def test_the_noise_has_standard_deviation_z_c_over_m_and_repeats_with_the_seed():
    g = {"w": torch.zeros(200_000)}
    results = [({"w": torch.zeros(200_000)}, 1)]  # updates of zero: what remains is the noise
    a = DPFedAvg(noise_multiplier=1.5, clip_norm=2.0, num_clients=100, clients_per_round=10, seed=3)
    noise = a.aggregate(g, results)["w"]
    assert float(noise.std()) == pytest.approx(1.5 * 2.0 / 10, rel=0.01)
    assert abs(float(noise.mean())) < 0.002
    b = DPFedAvg(noise_multiplier=1.5, clip_norm=2.0, num_clients=100, clients_per_round=10, seed=3)
    assert torch.equal(b.aggregate(g, results)["w"], noise)


def test_epsilon_after_a_federation_equals_opacus_accountant_for_the_same_schedule():
    train = data.digits("train")
    parts = data.partition(train, 10, seed=0)
    clients = [Client(f"c{k}", Subset(train, p[:30])) for k, p in enumerate(parts)]
    s = DPFedAvg(noise_multiplier=1.1, clip_norm=0.5, num_clients=10, clients_per_round=4, seed=0)
    run_federation(models.mlp(seed=0), clients, s, rounds=3, clients_per_round=4, progress=False)
    reference = RDPAccountant()
    for _ in range(3):
        reference.step(noise_multiplier=1.1, sample_rate=0.4)
    assert s.epsilon(1e-5) == reference.get_epsilon(1e-5)
    assert epsilon_after(1.1, sample_rate=0.4, rounds=3, delta=1e-5) == reference.get_epsilon(1e-5)
    assert s.clip_history == [0.5, 0.5, 0.5]


def test_noise_for_epsilon_reaches_the_target_within_opacus_tolerance():
    z = noise_for_epsilon(8.0, delta=1e-5, rounds=100, sample_rate=0.1)
    eps = epsilon_after(z, sample_rate=0.1, rounds=100, delta=1e-5)
    assert 8.0 - 0.01 <= eps <= 8.0
    assert epsilon_after(z * 0.95, sample_rate=0.1, rounds=100, delta=1e-5) > 8.0  # less noise would overspend


def test_adaptive_clipping_follows_the_median_update_norm():
    g = {"w": torch.zeros(1)}
    results = [({"w": torch.tensor([float(norm)])}, 1) for norm in range(1, 11)]  # norms 1..10
    s = DPFedAvg(noise_multiplier=0.0, clip_norm=0.1, num_clients=10, clients_per_round=10,
                 adaptive=True, count_noise_std=0.0)  # fmt: skip
    for _ in range(200):
        s.aggregate(g, results)
    # gamma = 0.5: C settles where half the norms are below it, between 5 and 6 (geometric steps overshoot a little)
    assert 4.5 < s.clip_norm < 6.5
    assert s.clip_history[0] == 0.1 and s.clip_history[1] == pytest.approx(0.1 * 2.718281828 ** 0.1)


def test_adaptive_clipping_spends_the_same_privacy_with_less_update_noise():
    s = DPFedAvg(noise_multiplier=1.0, num_clients=1000, clients_per_round=100, adaptive=True, count_noise_std=5.0)
    assert s.update_noise_multiplier == pytest.approx((1 - 0.1**2) ** -0.5)
    with pytest.raises(ValueError, match="raise count_noise_std"):
        DPFedAvg(noise_multiplier=1.0, num_clients=100, clients_per_round=10, adaptive=True)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"noise_multiplier": -1.0}, ">= 0"),
        ({"clip_norm": 0.0}, "positive L2 norm"),
        ({"num_clients": 5, "clients_per_round": 10}, "sample rate m / N must be at most 1"),
    ],
)
def test_bad_dp_settings_say_what_to_give(settings, message):
    with pytest.raises(ValueError, match=message):
        DPFedAvg(**settings)


def test_per_sample_gradients_cost_batch_times_gradient_bytes_as_opacus_stores_them():
    net = models.mlp(seed=0)
    x, y = data.as_tensors(data.digits("train"))
    for frozen in (False, True):
        if frozen:  # last-layer training: only the head's per-sample gradients
            for p in net.features.parameters():
                p.requires_grad_(False)
        batch = (x[:16].clone(), y[:16].clone())
        cost = dp_sgd_memory(net, batch, "phone-mid")
        assert cost.per_sample_bytes == trust.per_sample_gradient_bytes(net, batch)
        heads = (64 * 10 + 10) * 4
        expected = 16 * heads if frozen else 16 * 4 * sum(p.numel() for p in net.parameters())
        assert cost.per_sample_bytes == expected


def test_dp_sgd_fits_the_microcontroller_at_batch_1_not_32_and_the_phone_at_both():
    net = models.mlp(seed=0)
    x, y = data.as_tensors(data.digits("train"))
    one, many = (x[:1].clone(), y[:1].clone()), (x[:32].clone(), y[:32].clone())  # own storage: a slice's is all of x
    assert dp_sgd_memory(net, one, "stm32f746").fits
    mcu = dp_sgd_memory(net, many, "stm32f746")
    assert mcu.fits_without_dp and not mcu.fits and "does NOT fit" in str(mcu)
    assert dp_sgd_memory(net, many, "phone-mid").fits


def test_dp_sgd_training_reports_opacus_epsilon_and_repeats_with_its_seed():
    train = Subset(data.digits("train"), range(256))
    net = models.mlp(hidden=(32,), seed=0)
    a = dp_sgd_train(net, train, noise_multiplier=1.0, max_grad_norm=1.0, batch_size=32, epochs=1, seed=1)
    reference = RDPAccountant()
    for _ in range(a.steps):
        reference.step(noise_multiplier=1.0, sample_rate=32 / 256)
    assert a.steps == 8 and a.epsilon == pytest.approx(reference.get_epsilon(1e-5))
    b = dp_sgd_train(net, train, noise_multiplier=1.0, max_grad_norm=1.0, batch_size=32, epochs=1, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.model.parameters(), net.parameters(), strict=True))
    with pytest.raises(ValueError, match="positive L2 norm"):
        dp_sgd_train(net, train, noise_multiplier=1.0, max_grad_norm=0.0)
