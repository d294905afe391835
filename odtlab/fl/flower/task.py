"""What a federated experiment is, written as a Flower run config, and its odtlab pieces.

Flower starts the ServerApp and every ClientApp in processes of their own,
so no Python object travels from the launcher to them: each side rebuilds
the model, the data partition, the recipe, the clients and the strategy from
a flat *run config* (strings and numbers, the ``[tool.flwr.app.config]``
table of the app) and, on a SuperNode, from its *node config*
(``partition-id``, ``num-partitions``). :class:`FlowerTask` is that run
config as a dataclass; its methods build the pieces with explicit seeds, so
the server, every client and odtlab's own :func:`~odtlab.fl.run_federation`
all see the same objects.

Examples
--------
>>> task = FlowerTask(hidden=(16,), rounds=2)
>>> task.to_run_config()["hidden"], task.to_run_config()["num-rounds"]
('16', 2)
>>> FlowerTask.from_run_config(task.to_run_config()) == task
True
>>> [c.id for c in task.clients()], len(task.client(1, 2).data)
(['client-0', 'client-1'], 300)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from torch import nn
from torch.utils.data import Dataset, Subset

from odtlab import data, models
from odtlab import recipes as R
from odtlab.fl.client import Client
from odtlab.fl.errors import InvalidDeployment
from odtlab.fl.simulation import FederatedRun, run_federation
from odtlab.fl.strategies import STRATEGIES, Strategy, get_strategy

__all__ = ["FlowerTask", "DATASETS"]

DATASETS = ("sensors", "digits")
_SHAPES = {"sensors": (18, 5), "digits": (64, 10)}  # (input features, classes)

# dataclass field -> run-config key (Flower's configs use kebab-case)
_KEYS = {
    "dataset": "dataset", "hidden": "hidden", "partition": "partition", "alpha": "alpha",
    "lr": "lr", "batch_size": "batch-size", "local_epochs": "local-epochs", "rounds": "num-rounds",
    "seed": "seed", "num_clients": "num-clients", "strategy": "strategy", "strategy_settings": "strategy-settings",
}  # fmt: skip


@lru_cache(maxsize=4)
def _split(name: str, split: str, seed: int) -> Dataset:
    if name == "digits":
        return data.digits(split)
    n, draw = (600, seed) if split == "train" else (300, seed + 1)  # a test set from another draw
    return data.SensorFeatures(data.SensorActivity(n, seed=draw))


def _settings_text(settings: Mapping[str, float]) -> str:
    return ",".join(f"{k}={v!r}" for k, v in sorted(settings.items()))


def _parse_settings(text: str) -> dict[str, float]:
    out = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidDeployment(
                f"strategy-settings item {item!r} is not 'name=number'; write e.g. 'mu=0.01,'"
                " or 'server_lr=1.0,momentum=0.9'"
            )
        out[key.strip()] = float(value)
    return out


@dataclass(frozen=True)
class FlowerTask:
    """One federated experiment as plain settings: model, data, recipe, strategy, seeds.

    Parameters
    ----------
    dataset : {"sensors", "digits"}
        ``"sensors"``: odtlab's generated accelerometer activities as 18 summary
        features (:class:`odtlab.data.SensorFeatures`, 600 training and 300 test
        windows, 5 classes; quick to build, which matters because Flower starts
        a fresh process for every client message). ``"digits"``: scikit-learn's
        8x8 digits (shipped, no download; importing scikit-learn costs seconds).
        The training set is partitioned among the clients, the test set is the
        server's.
    hidden : tuple of int
        Hidden widths of the MLP (:func:`odtlab.models.mlp`), e.g. ``(32,)``.
    partition : {"iid", "dirichlet", "shards"}
        How :func:`odtlab.data.partition` splits the training data.
    alpha : float
        Dirichlet concentration for ``partition="dirichlet"``.
    lr : float
        Learning rate of every client's plain SGD (``Recipe(SGD(lr))``).
    batch_size, local_epochs : int
        Each client's local work per round.
    rounds : int
        Federated rounds (``num-rounds`` in the run config).
    num_clients : int
        Clients, one per SuperNode (``num-clients``); a SuperNode's node
        config says which one it is (``partition-id``, ``num-partitions``).
    seed : int
        Seeds the model's initial weights, the partition and, through
        :func:`~odtlab.fl.client_seed`, every client's local batches.
    strategy : str
        A name of :data:`odtlab.fl.STRATEGIES` (``"fedavg"``, ``"fedprox"``,
        ``"fedavgm"``, ``"fedadam"``).
    strategy_settings : dict of str to float
        Keyword arguments of the strategy, e.g. ``{"mu": 0.01}`` for FedProx.
    """

    dataset: str = "sensors"
    hidden: tuple[int, ...] = (32,)
    partition: str = "iid"
    alpha: float = 0.5
    lr: float = 0.05
    batch_size: int = 32
    local_epochs: int = 1
    rounds: int = 2
    seed: int = 0
    num_clients: int = 2
    strategy: str = "fedavg"
    strategy_settings: dict[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise InvalidDeployment(f"FlowerTask(dataset={self.dataset!r}): give one of {DATASETS}")
        if self.strategy not in STRATEGIES:
            raise InvalidDeployment(
                f"FlowerTask(strategy={self.strategy!r}): give one of {', '.join(STRATEGIES)}"
            )
        for name in ("batch_size", "local_epochs", "rounds", "num_clients"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidDeployment(f"FlowerTask({name}={value!r}): give an int >= 1")

    # --- the run config, both ways -------------------------------------------------------
    def to_run_config(self) -> dict[str, bool | int | float | str]:
        """The settings as a Flower run config: kebab-case keys, scalar values."""
        out: dict[str, bool | int | float | str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "hidden":
                value = ",".join(str(w) for w in value)
            elif f.name == "strategy_settings":
                value = _settings_text(value)
            out[_KEYS[f.name]] = value
        return out

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> FlowerTask:
        """The task a run config describes; keys it lacks keep their defaults, others are ignored."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            key = _KEYS[f.name]
            if key not in config:
                continue
            value = config[key]
            if f.name == "hidden":
                value = tuple(int(w) for w in str(value).split(",") if w.strip())
            elif f.name == "strategy_settings":
                value = _parse_settings(value)
            elif f.name in ("alpha", "lr"):
                value = float(value)
            elif f.name in ("batch_size", "local_epochs", "rounds", "seed", "num_clients"):
                value = int(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    # --- the pieces ----------------------------------------------------------------------
    def model(self) -> nn.Module:
        """The starting global model, seeded with ``seed``."""
        features, classes = _SHAPES[self.dataset]
        return models.mlp(features, hidden=self.hidden, num_classes=classes, seed=self.seed)

    def train_data(self) -> Dataset:
        """The whole training split that the clients share out."""
        return _split(self.dataset, "train", self.seed)

    def test_data(self) -> Dataset:
        """The held-out split the server evaluates the global model on."""
        return _split(self.dataset, "test", self.seed)

    def recipe(self) -> R.Recipe:
        """Every client's recipe: full training with plain SGD at ``lr``."""
        return R.Recipe(R.SGD(lr=self.lr))

    def client(self, partition_id: int, num_partitions: int) -> Client:
        """Client ``partition_id`` of ``num_partitions``: its part of the data and the recipe."""
        if not 0 <= int(partition_id) < int(num_partitions):
            raise InvalidDeployment(
                f"partition-id {partition_id!r} is outside 0..{int(num_partitions) - 1}; give each "
                "SuperNode --node-config 'partition-id=<k> num-partitions=<n>' with 0 <= k < n"
            )
        train = self.train_data()
        parts = data.partition(train, int(num_partitions), scheme=self.partition, alpha=self.alpha,
                               seed=self.seed)  # fmt: skip
        k = int(partition_id)
        return Client(f"client-{k}", Subset(train, parts[k]), self.recipe())

    def clients(self) -> list[Client]:
        """All ``num_clients`` clients, in partition order (the order :func:`run_federation` uses)."""
        return [self.client(k, self.num_clients) for k in range(self.num_clients)]

    def make_strategy(self) -> Strategy:
        """A fresh odtlab strategy object (server state such as momentum starts empty)."""
        return get_strategy(self.strategy, **self.strategy_settings)

    def run_in_process(self, *, test: bool = True) -> FederatedRun:
        """The same federation with odtlab's own engine: every client, every round, same seeds.

        This is the reference the Flower run must equal. Set ``torch.set_num_threads(1)``
        around it as the Flower clients do: the thread count alone moves results by ~1e-8.
        """
        return run_federation(self.model(), self.clients(), self.make_strategy(),
                              rounds=self.rounds, local_epochs=self.local_epochs,
                              batch_size=self.batch_size, seed=self.seed,
                              test_data=self.test_data() if test else None, progress=False)  # fmt: skip
