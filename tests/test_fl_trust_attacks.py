"""Poisoning attacks: each one hurts a real (small) federation without a defence, so that the
defences are tested on something real; the attack tools do what they say."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from odtlab import data, models
from odtlab import recipes as R
from odtlab.fl import (
    Client,
    ClientResult,
    FedAvg,
    Krum,
    MaliciousClient,
    Trigger,
    attack_success_rate,
    attacks,
    backdoor_data,
    flip_labels,
    make_malicious,
    run_federation,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ROUNDS, FRACTION = 8, 0.3


def test_the_doctests_run():
    result = doctest.testmod(attacks, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0


@pytest.fixture(scope="module")
def federation():
    """10 clients on a non-IID (Dirichlet 0.5) split of the digits, and the clean run's scores."""
    train, test = data.digits("train"), data.digits("test")
    parts = data.partition(train, 10, scheme="dirichlet", alpha=0.5, seed=0)
    clients = [Client(f"c{k}", Subset(train, p), R.Recipe(R.SGD(lr=0.1))) for k, p in enumerate(parts)]
    clean = _run(FedAvg(), clients, test)
    assert clean[0] > 0.8  # the federation learns: attacks have something to spoil
    return clients, test, clean


def _run(strategy, clients, test):
    net = models.mlp(seed=0)
    run = run_federation(net, clients, strategy, rounds=ROUNDS, local_epochs=2, test_data=test,
                         progress=False, engine="vectorized")  # fmt: skip
    net.load_state_dict(run.params)
    return run.final_accuracy, attack_success_rate(net, test, Trigger())


@pytest.mark.parametrize("attack, accuracy_drop", [("label_flip", 0.1), ("sign_flip", 0.3), ("scale", 0.3)])
def test_each_attack_lowers_accuracy_without_a_defence(federation, attack, accuracy_drop):
    clients, test, (clean_accuracy, _) = federation
    poisoned, bad = make_malicious(clients, attack, fraction=FRACTION, seed=0)
    assert len(bad) == 3
    accuracy, _ = _run(FedAvg(), poisoned, test)
    assert accuracy < clean_accuracy - accuracy_drop


def test_the_backdoor_raises_attack_success_and_keeps_accuracy_without_a_defence(federation):
    clients, test, (clean_accuracy, clean_success) = federation
    poisoned, _ = make_malicious(clients, "backdoor", fraction=FRACTION, seed=0)
    accuracy, success = _run(FedAvg(), poisoned, test)
    assert clean_success < 0.05 and success > 0.8  # the trigger now works
    assert accuracy > clean_accuracy - 0.05  # and the main task hides it


@pytest.mark.parametrize("attack", ["scale", "backdoor"])
def test_multi_krum_stops_model_replacement(federation, attack):
    clients, test, (clean_accuracy, _) = federation
    poisoned, _ = make_malicious(clients, attack, fraction=FRACTION, seed=0)
    accuracy, success = _run(Krum(num_malicious=3, to_keep=7), poisoned, test)
    assert accuracy > clean_accuracy - 0.06 and success < 0.05


def test_update_attacks_act_the_same_in_both_engines():
    train = data.digits("train")
    clients = [Client(f"c{k}", Subset(train, range(40 * k, 40 * k + 40))) for k in range(3)]
    poisoned, _ = make_malicious(clients, "sign_flip", fraction=0.34, boost=3.0, seed=1)
    runs = [run_federation(models.mlp(seed=0), poisoned, FedAvg(), rounds=1, progress=False, engine=e)
            for e in ("loop", "vectorized")]  # fmt: skip
    for k, v in runs[0].params.items():
        assert torch.allclose(runs[1].params[k], v, atol=1e-5), k


def test_sign_flip_and_scaling_transform_the_update_by_hand():
    g = {"w": torch.tensor([1.0, 1.0]), "count": torch.tensor(3)}
    data_ = TensorDataset(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64))
    flip = MaliciousClient("m", data_, attack="sign_flip", boost=2.0)
    scale = MaliciousClient("s", data_, attack="scale", boost=10.0)
    honest = ClientResult("m", {"w": torch.tensor([1.5, 0.0]), "count": torch.tensor(4)}, 4, 0.0, 1)
    # update d = [0.5, -1]: sign flip sends g - 2 d, scaling g + 10 d; integer buffers pass
    assert torch.equal(flip.compress(honest, g).params["w"], torch.tensor([0.0, 3.0]))
    assert torch.equal(scale.compress(honest, g).params["w"], torch.tensor([6.0, -9.0]))
    assert scale.compress(honest, g).params["count"].item() == 4


def test_label_flipping_and_the_backdoor_poison_the_data_as_described():
    x = torch.zeros(6, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 7, 8, 9])
    assert flip_labels(TensorDataset(x, y)).tensors[1].tolist() == [9, 8, 7, 2, 1, 0]
    trigger = Trigger(target=3, size=2, value=2.0)
    poisoned = backdoor_data(TensorDataset(x, y), trigger, fraction=0.5, seed=0)
    px, py = poisoned.tensors
    assert len(py) == 9 and py[6:].tolist() == [3, 3, 3] and py[:6].tolist() == y.tolist()
    assert (px[6:, 0, 6:, 6:] == 2.0).all() and float(px[6:].sum()) == 3 * 4 * 2.0  # only the patch


def test_attack_success_rate_counts_the_non_target_examples_turned_to_the_target():
    class Detector(torch.nn.Module):  # says "target" exactly when the patch is there
        def forward(self, x):
            hit = (x[:, 0, -1, -1] == 2.0).float()
            return torch.stack([hit, 1 - hit, torch.zeros_like(hit)], dim=1)

    test = TensorDataset(torch.zeros(5, 1, 8, 8), torch.tensor([0, 1, 1, 2, 2]))
    assert attack_success_rate(Detector(), test, Trigger(target=0)) == 1.0
    assert attack_success_rate(Detector(), test, Trigger(target=0, value=5.0)) == 0.0
    with pytest.raises(ValueError, match="only the target class"):
        attack_success_rate(Detector(), TensorDataset(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64)),
                            Trigger(target=0))  # fmt: skip


def test_bad_attack_settings_name_the_allowed_values():
    clients = [Client("a", TensorDataset(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64)))]
    with pytest.raises(ValueError, match="label_flip, sign_flip, scale, backdoor"):
        make_malicious(clients, "poison", fraction=0.1)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        make_malicious(clients, "scale", fraction=1.5)
    with pytest.raises(ValueError, match="true class count"):
        flip_labels(TensorDataset(torch.zeros(1, 2), torch.tensor([12])), num_classes=10)
    assert make_malicious(clients, "scale", fraction=0.0)[1] == []
