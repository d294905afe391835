"""odtlab.fl core: strategies against hand computations, FedAvg = SGD on the union, bad updates."""

from __future__ import annotations

import copy
import dataclasses
import doctest

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from odtlab import InvalidRecipe, data, models
from odtlab import recipes as R
from odtlab.fl import (
    Client,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    Int8Updates,
    TopK,
    UnknownStrategy,
    aggregate,
    client,
    compress_update,
    compression,
    get_strategy,
    run_federation,
    simulation,
    strategies,
    weighted_mean,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("module", [aggregate, client, compression, simulation, strategies])
def test_the_doctests_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def test_fedavg_weighs_by_examples_and_keeps_what_clients_do_not_train():
    g = {"w": t(0.0, 0.0), "frozen": t(7.0), "count": torch.tensor(3)}
    results = [({"w": t(1.0, 2.0), "count": torch.tensor(4)}, 10),
               ({"w": t(4.0, 8.0), "count": torch.tensor(6)}, 30)]  # fmt: skip
    new = FedAvg().aggregate(g, results)
    # by hand: (10 * [1, 2] + 30 * [4, 8]) / 40 = [3.25, 6.5]; counts (40 + 180) / 40 = 5.5 -> 6
    assert torch.equal(new["w"], t(3.25, 6.5))
    assert torch.equal(new["frozen"], t(7.0)) and new["count"].item() == 6
    assert new["count"].dtype == torch.int64
    assert torch.equal(g["w"], t(0.0, 0.0))  # the input is not changed


def test_weighted_mean_refuses_mismatched_results():
    with pytest.raises(ValueError, match="different parameters"):
        weighted_mean([({"a": t(1.0)}, 1), ({"b": t(1.0)}, 1)])
    with pytest.raises(ValueError, match="0 examples"):
        weighted_mean([({"a": t(1.0)}, 0)])
    with pytest.raises(ValueError, match="at least one"):
        weighted_mean([])


def test_fedavgm_keeps_server_momentum_across_rounds():
    s = FedAvgM(server_lr=0.5, momentum=0.9)
    g = {"w": t(1.0)}
    # round 1: mean 0.0, d = 1 - 0 = 1, v = 1, w = 1 - 0.5 * 1 = 0.5
    g = s.aggregate(g, [({"w": t(0.0)}, 1)])
    assert torch.allclose(g["w"], t(0.5))
    # round 2: mean 0.25, d = 0.5 - 0.25 = 0.25, v = 0.9 * 1 + 0.25 = 1.15, w = 0.5 - 0.575
    g = s.aggregate(g, [({"w": t(0.25)}, 1)])
    assert torch.allclose(g["w"], t(0.5 - 0.5 * 1.15))


def test_fedavgm_without_momentum_is_fedavg():
    g = {"w": t(1.0, -2.0)}
    results = [({"w": t(3.0, 1.0)}, 2), ({"w": t(0.0, 0.0)}, 1)]
    assert torch.allclose(FedAvgM(server_lr=1.0, momentum=0.0).aggregate(g, results)["w"],
                          FedAvg().aggregate(g, results)["w"])  # fmt: skip


def test_fedadam_takes_the_papers_step():
    s = FedAdam(eta=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    g = {"w": t(0.0, 1.0)}
    new = s.aggregate(g, [({"w": t(2.0, 1.0)}, 1)])
    # delta = [2, 0]; m = 0.1 * delta = [0.2, 0]; v = 0.01 * delta^2 = [0.04, 0]
    # w = w + 0.1 * m / (sqrt(v) + tau) = [0.1 * 0.2 / 0.201, 1 + 0]
    assert torch.allclose(new["w"], t(0.1 * 0.2 / (0.2 + 1e-3), 1.0))


def test_fedprox_sends_mu_and_pulls_clients_towards_the_global_model():
    assert FedProx(mu=0.5).configure(3) == {"proximal_mu": 0.5}
    train = data.digits("train")
    c = Client("a", Subset(train, range(128)), R.Recipe(R.SGD(lr=0.2)))
    net = models.mlp(seed=0)
    g = {k: v.clone() for k, v in net.state_dict().items()}

    def drift(config):
        result = c.fit(net, g, config, epochs=3, batch_size=16, seed=1)
        return sum(float((result.params[k] - g[k]).norm() ** 2) for k in result.params) ** 0.5

    assert drift({"proximal_mu": 5.0}) < 0.8 * drift({})


def test_one_full_batch_sgd_step_per_client_is_sgd_on_all_their_data():
    torch.manual_seed(0)
    x, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    sizes = [5, 10, 15]
    parts, start = [], 0
    for n in sizes:
        parts.append(TensorDataset(x[start:start + n], y[start:start + n]))
        start += n
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    recipe = R.Recipe(R.SGD(lr=0.3))
    clients = [Client(f"c{k}", p, recipe) for k, p in enumerate(parts)]
    run = run_federation(net, clients, FedAvg(), rounds=1, batch_size=15, progress=False)
    # the same step on the union: the full-batch gradient of the mean loss
    central = copy.deepcopy(net)
    loss = torch.nn.functional.cross_entropy(central(x), y)
    loss.backward()
    with torch.no_grad():
        for p in central.parameters():
            p -= 0.3 * p.grad
    for k, v in central.state_dict().items():
        assert torch.allclose(run.params[k], v, atol=1e-6), k


def test_clients_training_the_last_layer_change_only_it():
    train = data.digits("train")
    parts = data.partition(train, 2, seed=0)
    clients = [Client(f"c{k}", Subset(train, p), R.Recipe(R.LastLayer())) for k, p in enumerate(parts)]
    net = models.mlp(seed=0)
    run = run_federation(net, clients, FedAvg(), rounds=1, progress=False)
    before = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], run.params[k])}
    assert changed == {"classifier.weight", "classifier.bias"}


@dataclasses.dataclass
class BrokenClient(Client):
    """A client whose update is poisoned after honest training (NaN, or a foreign key)."""

    defect: str = "nan"

    def fit(self, *args, **kwargs):
        result = super().fit(*args, **kwargs)
        params = dict(result.params)
        key = next(iter(params))
        if self.defect == "nan":
            params[key] = params[key] * float("nan")
        elif self.defect == "shape":
            params[key] = params[key][:1]
        else:
            params["backdoor.weight"] = params.pop(key)
        return dataclasses.replace(result, params=params)


@pytest.mark.parametrize("defect, message", [("nan", "NaN"), ("shape", "shape"), ("key", "not a parameter")])
def test_a_bad_update_is_rejected_with_the_clients_id(defect, message):
    train, test = data.digits("train"), data.digits("test")
    parts = data.partition(train, 3, seed=0)
    clients = [Client("good-0", Subset(train, parts[0])), Client("good-1", Subset(train, parts[1])),
               BrokenClient("bad", Subset(train, parts[2]), defect=defect)]  # fmt: skip
    run = run_federation(models.mlp(seed=0), clients, FedAvg(), rounds=1, test_data=test, progress=False)
    record = run.rounds[0]
    assert record.trained == ("good-0", "good-1")
    assert [c for c, _ in record.rejected] == ["bad"] and message in record.rejected[0][1]
    assert all(torch.isfinite(v).all() for v in run.params.values() if v.is_floating_point())


def test_a_round_with_no_accepted_update_keeps_the_model():
    train = data.digits("train")
    net = models.mlp(seed=0)
    run = run_federation(net, [BrokenClient("bad", Subset(train, range(64)))], FedAvg(), rounds=1,
                         progress=False)  # fmt: skip
    assert run.rounds[0].model_kept and "model kept" in str(run)
    assert all(torch.equal(v, run.params[k]) for k, v in net.state_dict().items())


def test_devices_drop_clients_that_do_not_fit_or_miss_the_deadline():
    train = data.digits("train")
    net = models.mlp(seed=0)
    phone = Client("phone", Subset(train, range(256)), R.Recipe(R.Adam()), "phone-mid")
    mcu = Client("mcu", Subset(train, range(256)), R.Recipe(R.Adam()), "stm32f746")
    slow = Client("pi", Subset(train, range(256)), R.Recipe(R.SGD()), "rpi4")
    first = run_federation(net, [phone, mcu, slow], FedAvg(), rounds=1, progress=False)
    record = first.rounds[0]
    assert [c for c, _ in record.dropped] == ["mcu"] and "does not fit" in record.dropped[0][1]
    assert set(record.trained) == {"phone", "pi"}
    # a deadline between the two clients' simulated times drops the slower one as a straggler
    results = {c.id: c.fit(net, net.state_dict(), {}) for c in (phone, slow)}
    fast, slower = sorted(results.values(), key=lambda r: r.seconds)
    assert 0 < fast.seconds < slower.seconds and fast.upload_bytes > 0
    cut = run_federation(net, [phone, slow], FedAvg(), rounds=1, deadline_s=(fast.seconds + slower.seconds) / 2,
                         progress=False)  # fmt: skip
    assert cut.rounds[0].trained == (fast.client,)
    assert "straggler" in cut.rounds[0].dropped[0][1]


def test_sampling_is_seeded_and_bad_arguments_are_named():
    train = data.digits("train")
    clients = [Client(f"c{k}", Subset(train, range(k * 40, k * 40 + 40))) for k in range(5)]
    net = models.mlp(seed=0)
    a = run_federation(net, clients, FedAvg(), rounds=2, clients_per_round=2, seed=3, progress=False)
    b = run_federation(net, clients, FedAvg(), rounds=2, clients_per_round=2, seed=3, progress=False)
    assert [r.trained for r in a.rounds] == [r.trained for r in b.rounds]
    assert all(len(r.trained) == 2 for r in a.rounds)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    with pytest.raises(ValueError, match="clients_per_round"):
        run_federation(net, clients, FedAvg(), rounds=1, clients_per_round=9, progress=False)
    with pytest.raises(ValueError, match="unique"):
        run_federation(net, clients + clients[:1], FedAvg(), rounds=1, progress=False)
    with pytest.raises(UnknownStrategy, match="fedavg"):
        get_strategy("fedavgg")
    with pytest.raises(ValueError, match="mu"):
        FedProx(mu=-1.0)


def test_a_recipe_that_renames_parameters_is_refused():
    train = data.digits("train")
    c = Client("lora", Subset(train, range(64)), R.Recipe(R.LoRA(rank=2)))
    net = models.mlp(seed=0)
    with pytest.raises(InvalidRecipe, match="changes the model"):
        c.fit(net, net.state_dict(), {})


@pytest.mark.parametrize("strategy", [FedAvg(), FedProx(mu=0.1)], ids=["fedavg", "fedprox"])
def test_the_vectorized_engine_gives_the_loops_result(strategy):
    train, test = data.digits("train"), data.digits("test")
    parts = data.partition(train, 6, scheme="dirichlet", alpha=0.5, seed=1)
    recipe = R.Recipe(R.SGD(lr=0.1, weight_decay=1e-4))
    clients = [Client(f"c{k}", Subset(train, p), recipe) for k, p in enumerate(parts)]
    assert len({len(p) for p in parts}) > 1  # unequal clients: padding and masking are exercised
    runs = {engine: run_federation(models.mlp(seed=0), clients, copy.deepcopy(strategy), rounds=3,
                                   clients_per_round=4, local_epochs=2, batch_size=16, test_data=test,
                                   seed=2, engine=engine, progress=False)
            for engine in ("loop", "vectorized")}  # fmt: skip
    loop, vec = runs["loop"], runs["vectorized"]
    assert [r.trained for r in loop.rounds] == [r.trained for r in vec.rounds]
    for key in loop.params:
        assert torch.allclose(loop.params[key], vec.params[key], atol=1e-5), key
    for a, b in zip(loop.rounds, vec.rounds, strict=True):
        assert a.loss == pytest.approx(b.loss, abs=1e-5) and a.accuracy == b.accuracy
        assert a.bytes_up == b.bytes_up


def test_the_vectorized_engine_names_what_it_cannot_do():
    train = data.digits("train")
    subset = Subset(train, range(64))
    mlp = models.mlp(seed=0)
    for recipe, message in [(R.Recipe(R.Adam()), "plain SGD"), (R.Recipe(R.Momentum()), "plain SGD"),
                            (R.Recipe(R.MicroBatch(2)), "trainable-set and SGD parts")]:  # fmt: skip
        with pytest.raises(InvalidRecipe, match=message):
            run_federation(mlp, [Client("a", subset, recipe)], FedAvg(), rounds=1, engine="vectorized",
                           progress=False)  # fmt: skip
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 10))  # fmt: skip
    with pytest.raises(InvalidRecipe, match="GroupNorm"):
        run_federation(cnn, [Client("a", subset)], FedAvg(), rounds=1, engine="vectorized", progress=False)
    with pytest.raises(ValueError, match="engine="):
        run_federation(mlp, [Client("a", subset)], FedAvg(), rounds=1, engine="ray", progress=False)


def test_only_eligible_clients_are_sampled_and_dropouts_are_reported():
    train = data.digits("train")
    never = Client("never-charging", Subset(train, range(0, 40)), availability=0.0)
    half = Client("sometimes", Subset(train, range(40, 80)), availability=0.5)
    leaves = Client("leaves", Subset(train, range(80, 120)), dropout=1.0)
    steady = Client("steady", Subset(train, range(120, 160)))
    run = run_federation(models.mlp(seed=0), [never, half, leaves, steady], FedAvg(), rounds=40,
                         seed=0, engine="vectorized", progress=False)  # fmt: skip
    trained = [set(r.trained) for r in run.rounds]
    assert not any("never-charging" in t or "leaves" in t for t in trained)
    assert all("steady" in t for t in trained)
    share = sum("sometimes" in t for t in trained) / len(trained)
    assert 0.3 < share < 0.7  # eligible about half of the rounds (40 seeded draws)
    assert all(("leaves", "left during the round (dropout)") in r.dropped for r in run.rounds)
    with pytest.raises(ValueError, match="availability"):
        Client("x", Subset(train, range(4)), availability=1.5)


def test_int8_and_topk_compress_updates_by_hand():
    delta = {"w": t(1.27, -0.635, 0.0, 0.2)}
    sent, nbytes = Int8Updates().compress(delta)
    # scale = 1.27 / 127 = 0.01: every value within half a step, 4 values + one 4-byte scale
    assert nbytes == 4 + 4 and (sent["w"] - delta["w"]).abs().max() <= 0.005 + 1e-7
    sent, nbytes = TopK(fraction=0.5).compress(delta)
    assert torch.equal(sent["w"], t(1.27, -0.635, 0.0, 0.0)) and nbytes == 2 * 8
    # error feedback: what was not sent comes back in the next round
    g = {"w": t(0.0, 0.0, 0.0, 0.0)}
    residual: dict = {}
    first, _ = compress_update(TopK(fraction=0.25), {"w": t(3.0, 1.0, 0.0, 0.0)}, g, residual)
    assert torch.equal(first["w"], t(3.0, 0.0, 0.0, 0.0)) and torch.equal(residual["w"], t(0.0, 1.0, 0.0, 0.0))
    second, _ = compress_update(TopK(fraction=0.25), {"w": t(0.0, 0.5, 0.0, 0.0)}, g, residual)
    assert torch.equal(second["w"], t(0.0, 1.5, 0.0, 0.0))  # the held-back 1.0 plus the new 0.5
    with pytest.raises(ValueError, match="fraction"):
        TopK(fraction=0.0)


def test_compressed_clients_send_fewer_bytes_and_still_learn():
    train, test = data.digits("train"), data.digits("test")
    parts = data.partition(train, 4, seed=0)
    runs = {}
    for label, comp in [("fp32", None), ("int8", Int8Updates()), ("top-10%", TopK(0.1))]:
        clients = [Client(f"c{k}", Subset(train, p), R.Recipe(R.SGD(lr=0.1)), compression=comp)
                   for k, p in enumerate(parts)]  # fmt: skip
        runs[label] = run_federation(models.mlp(seed=0), clients, FedAvg(), rounds=8, test_data=test,
                                     engine="vectorized", progress=False)  # fmt: skip
    up = {k: r.rounds[0].bytes_up for k, r in runs.items()}
    assert up["int8"] < 0.3 * up["fp32"] and up["top-10%"] < 0.25 * up["fp32"]
    assert runs["int8"].final_accuracy > runs["fp32"].final_accuracy - 0.05
    assert runs["top-10%"].final_accuracy > 0.5
