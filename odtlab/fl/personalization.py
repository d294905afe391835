"""Personalization: after the federation, each device fine-tunes the global model on its own data.

A global model is an average over clients whose data differ (non-IID). A
client can take it home and adapt it with a *cheap* recipe (last layer or
bias-only: little memory, few joules), on its own examples, which again
never leave it. :func:`personalize` does that for every client and reports,
per client, the global model's accuracy and the personalised model's
accuracy on the same held-out examples of that client.

Each client's data is split (seeded) into a part it fine-tunes on and a
held-out part nobody trains on; give ``test_data`` to use held-out sets of
your own instead. Fine-tuning is the client's ordinary local training
(:meth:`odtlab.fl.Client.fit`, so the device's fit check and costs apply)
with the personalization recipe in place of the client's federated one.

Examples
--------
>>> from torch.utils.data import Subset
>>> from odtlab import data, models, recipes as R
>>> from odtlab.fl import Client, FedAvg, run_federation
>>> train = data.digits("train")
>>> parts = data.partition(train, 4, scheme="shards", shards_per_client=2, seed=0)
>>> clients = [Client(f"c{k}", Subset(train, p)) for k, p in enumerate(parts)]
>>> model = models.mlp(seed=0)
>>> run = run_federation(model, clients, FedAvg(), rounds=3, progress=False)
>>> model.load_state_dict(run.params)
<All keys matched successfully>
>>> report = personalize(model, clients, R.Recipe(R.LastLayer(), R.SGD(lr=0.1)), epochs=3)
>>> report.mean_personal > report.mean_global
True
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from odtlab.fl.client import Client
from odtlab.recipes import Recipe
from odtlab.train import accuracy
from odtlab.viz import plot_personalization

__all__ = ["PersonalizationReport", "personalize"]


@dataclass(frozen=True)
class PersonalizationReport:
    """Per client: accuracy of the global and of the personalised model on its held-out data.

    ``rows`` holds one dict per client with ``client``, ``examples_tuned``,
    ``examples_held_out``, ``global_accuracy`` and ``personal_accuracy``
    (fractions in [0, 1]), ``compute_s`` and ``energy_j`` (simulated cost of
    the fine-tuning on the client's device; 0 without a device).
    """

    recipe: str
    rows: tuple[dict[str, Any], ...]

    @property
    def mean_global(self) -> float:
        """Mean over clients of the global model's accuracy (each client counts once)."""
        return sum(r["global_accuracy"] for r in self.rows) / len(self.rows)

    @property
    def mean_personal(self) -> float:
        """Mean over clients of the personalised models' accuracy."""
        return sum(r["personal_accuracy"] for r in self.rows) / len(self.rows)

    @property
    def improved(self) -> int:
        """How many clients gained accuracy from personalization."""
        return sum(r["personal_accuracy"] > r["global_accuracy"] for r in self.rows)

    def to_records(self) -> list[dict[str, Any]]:
        """The rows, as a list of dicts (for ``pandas.DataFrame``)."""
        return [dict(r) for r in self.rows]

    def plot(self, ax: Any = None) -> Any:
        """Global against personalised accuracy, one pair of bars per client."""
        return plot_personalization(self, ax=ax)

    def __str__(self) -> str:
        lines = [f"personalization with {self.recipe}: {self.improved} of {len(self.rows)} clients improve",
                 f"{'client':>10} {'global':>8} {'personal':>9}"]  # fmt: skip
        for r in self.rows:
            lines.append(f"{r['client']:>10} {100 * r['global_accuracy']:7.1f}% {100 * r['personal_accuracy']:8.1f}%")
        lines.append(f"{'mean':>10} {100 * self.mean_global:7.1f}% {100 * self.mean_personal:8.1f}%")
        return "\n".join(lines)


def _split(n: int, held_out: float, seed: int) -> tuple[list[int], list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = max(1, min(n - 1, round(n * held_out)))
    return sorted(order[cut:]), sorted(order[:cut])


def personalize(
    model: nn.Module,
    clients: Sequence[Client],
    recipe: Recipe,
    *,
    test_data: Mapping[str, Dataset] | None = None,
    held_out: float = 0.25,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 0,
) -> PersonalizationReport:
    """Fine-tune ``model`` on each client's own data with ``recipe``; compare with ``model`` itself.

    Parameters
    ----------
    model : nn.Module
        The global model (for example loaded with ``run_federation(...).params``);
        it is not changed.
    clients : sequence of Client
        The devices; each keeps its device profile for the fit check and costs.
    recipe : Recipe
        The cheap recipe each device personalises with, e.g.
        ``R.Recipe(R.LastLayer(), R.SGD(lr=0.1))`` or ``R.Recipe(R.BiasOnly(), ...)``.
    test_data : mapping from client id to Dataset, optional
        Each client's held-out examples. Without it, a seeded ``held_out``
        fraction of each client's data is set aside and never trained on.
    held_out : float, default 0.25
        Fraction of a client's examples held out when ``test_data`` is not given.
    epochs, batch_size, seed
        Local fine-tuning: epochs over the client's tuning examples, batch
        size, and the seed of the split and of the example order.

    Returns
    -------
    PersonalizationReport
        Per client, global and personalised accuracy on the same held-out data.
    """
    if not clients:
        raise ValueError("personalize needs at least one client")
    if not 0 < held_out < 1:
        raise ValueError(f"personalize(held_out={held_out!r}): give a fraction strictly between 0 and 1")
    if test_data is not None:
        missing = [c.id for c in clients if c.id not in test_data]
        if missing:
            raise ValueError(f"test_data has no held-out set for clients {missing[:5]}; give one per client id")
    global_params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    evaluator = copy.deepcopy(model)
    rows = []
    for k, client in enumerate(clients):
        if test_data is None:
            if len(client.data) < 2:  # type: ignore[arg-type]
                raise ValueError(f"client {client.id!r} has one example: nothing to hold out; give test_data")
            tune_idx, test_idx = _split(len(client.data), held_out, seed + k)  # type: ignore[arg-type]
            tune, test = Subset(client.data, tune_idx), Subset(client.data, test_idx)
        else:
            tune, test = client.data, test_data[client.id]
        local = Client(client.id, tune, recipe=recipe, device=client.device)
        result = local.fit(model, global_params, {}, epochs=epochs, batch_size=batch_size, seed=seed + k)
        evaluator.load_state_dict(global_params)
        before = accuracy(evaluator, test)
        evaluator.load_state_dict({**global_params, **result.params})
        after = accuracy(evaluator, test)
        rows.append({
            "client": client.id, "examples_tuned": len(tune), "examples_held_out": len(test),  # type: ignore[arg-type]
            "global_accuracy": before, "personal_accuracy": after,
            "compute_s": result.compute_s, "energy_j": result.energy_j,
        })  # fmt: skip
    return PersonalizationReport(recipe=recipe.name, rows=tuple(rows))
