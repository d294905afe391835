"""The plain federated engine: rounds of sampled clients, one after the other, in one process.

:func:`run_federation` is the loop every federated system runs:

1. the server samples clients for the round and sends them the global
   parameters and the strategy's ``configure(round)``;
2. each sampled client trains locally (:meth:`Client.fit`); a client whose
   step does not fit its device, or who misses the round's deadline, drops
   out; an update that fails :func:`~odtlab.fl.aggregate.check_update`
   (NaN, wrong shape or key) is rejected with the client's id;
3. the strategy aggregates the accepted results into new global parameters;
   a round with no accepted result keeps the model and says so;
4. the new model is evaluated on the test data.

Time is the fleet's simulated time: a round lasts as long as its slowest
accepted client (local steps plus upload). Bytes are counted both ways.

Examples
--------
>>> from torch.utils.data import Subset
>>> from odtlab import data, models
>>> from odtlab.fl import FedAvg
>>> train, test = data.digits("train"), data.digits("test")
>>> parts = data.partition(train, 4, scheme="iid", seed=0)
>>> clients = [Client(f"c{k}", Subset(train, p)) for k, p in enumerate(parts)]
>>> run = run_federation(models.mlp(seed=0), clients, FedAvg(), rounds=3, test_data=test,
...                      progress=False)
>>> [r.round for r in run.rounds], run.final_accuracy > run.rounds[0].accuracy
([1, 2, 3], True)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from odtlab.errors import DoesNotFit
from odtlab.fl.aggregate import Params, check_updates
from odtlab.fl.client import Client, ClientResult
from odtlab.fl.strategies import Strategy
from odtlab.fl.vectorized import train_clients
from odtlab.train import accuracy
from odtlab.units import format_bytes
from odtlab.viz import plot_rounds

__all__ = ["RoundRecord", "FederatedRun", "run_federation", "client_seed", "ENGINES"]

ENGINES = ("loop", "vectorized")


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one round.

    Attributes
    ----------
    round : int
        1-based.
    trained : tuple of str
        Clients whose update was aggregated.
    dropped : tuple of (str, str)
        Clients that did not deliver, with the reason (does not fit, deadline).
    rejected : tuple of (str, str)
        Clients whose update was refused, with the reason.
    model_kept : bool
        True when no update was accepted and the global model stayed as it was.
    loss : float or None
        Example-weighted mean local training loss of the accepted clients.
    accuracy : float or None
        Test accuracy of the new global model (``None`` without test data).
    bytes_down, bytes_up : int
        Global parameters sent to the sampled clients; updates received.
    seconds : float
        Simulated duration: the slowest accepted client's local time plus upload.
    energy_j : float
        Simulated energy the clients spent training this round.
    """

    round: int
    trained: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]
    rejected: tuple[tuple[str, str], ...]
    model_kept: bool
    loss: float | None
    accuracy: float | None
    bytes_down: int
    bytes_up: int
    seconds: float
    energy_j: float


@dataclass
class FederatedRun:
    """The report of :func:`run_federation`: one :class:`RoundRecord` per round, and the model."""

    strategy: str
    rounds: list[RoundRecord]
    params: Params = field(repr=False)

    @property
    def final_accuracy(self) -> float | None:
        """Test accuracy after the last round (``None`` without test data)."""
        return self.rounds[-1].accuracy if self.rounds else None

    @property
    def fleet_seconds(self) -> list[float]:
        """Simulated time at the end of each round, from the start."""
        out, t = [], 0.0
        for r in self.rounds:
            t += r.seconds
            out.append(t)
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per round (for ``pandas.DataFrame``)."""
        return [
            {
                "round": r.round, "clients": len(r.trained), "dropped": len(r.dropped),
                "rejected": len(r.rejected), "loss": r.loss, "accuracy": r.accuracy,
                "MB up": r.bytes_up / 1e6, "MB down": r.bytes_down / 1e6, "seconds": r.seconds,
                "fleet seconds": t, "energy J": r.energy_j, "model kept": r.model_kept,
            }
            for r, t in zip(self.rounds, self.fleet_seconds, strict=True)
        ]  # fmt: skip

    def plot(self, ax: Any = None, x: str = "round") -> Any:
        """Test accuracy by round (``x="round"``) or simulated fleet time (``x="time"``)."""
        return plot_rounds({self.strategy: self}, ax, x=x)

    def __str__(self) -> str:
        lines = [f"{self.strategy}: {len(self.rounds)} rounds"]
        for r in self.rounds:
            acc = "   -  " if r.accuracy is None else f"{100 * r.accuracy:5.1f}%"
            note = " model kept (no update accepted)" if r.model_kept else ""
            lines.append(
                f"  round {r.round:3d}: {len(r.trained):3d} clients, accuracy {acc}, up "
                f"{format_bytes(r.bytes_up)}, {r.seconds:.2f} s{note}"
            )
        return "\n".join(lines)


def client_seed(seed: int, server_round: int, client_index: int) -> int:
    """The seed of one client's local training in one round, as :func:`run_federation` draws it.

    Every engine (the loop, the vectorized one, the Flower bridge) gives client
    ``client_index`` (its position in the list of clients, from 0) this seed in
    round ``server_round`` (from 1), so that the same run trains on the same
    batches whichever engine carries it.

    Examples
    --------
    >>> client_seed(0, 1, 0), client_seed(0, 1, 1), client_seed(1, 2, 0)
    (1009, 1010, 1002021)
    """
    return seed * 1_000_003 + server_round * 1_009 + client_index


def _bytes(params: Params) -> int:
    return sum(t.numel() * t.element_size() for t in params.values())


def run_federation(
    model: nn.Module,
    clients: Sequence[Client],
    strategy: Strategy,
    *,
    rounds: int,
    clients_per_round: int | None = None,
    local_epochs: int = 1,
    batch_size: int = 32,
    deadline_s: float | None = None,
    test_data: Dataset | None = None,
    seed: int = 0,
    engine: str = "loop",
    progress: bool = True,
) -> FederatedRun:
    """Federate ``model`` over ``clients`` for ``rounds`` rounds under ``strategy``.

    Parameters
    ----------
    model : nn.Module
        The starting global model (not changed; the result holds the final parameters).
    clients : sequence of Client
    strategy : Strategy
        ``FedAvg()``, ``FedProx(mu)``, ... (:mod:`odtlab.fl.strategies`).
    rounds : int
    clients_per_round : int or None
        Clients sampled each round, uniformly without replacement (seeded)
        among the eligible ones (each client is eligible with probability
        ``client.availability``, or when its usage trace says so:
        :meth:`Client.eligible_in_round`); ``None``: all eligible clients.
    local_epochs, batch_size : int
        Each client's local work per round.
    deadline_s : float or None
        Simulated seconds a client may take (training plus upload); slower
        clients are dropped as stragglers. Needs clients with devices.
    test_data : Dataset or None
        Evaluated after every round.
    seed : int
        Seeds the sampling and every client's local run.
    engine : {"loop", "vectorized"}
        ``"loop"`` trains the clients one after the other with
        :meth:`Client.fit`; ``"vectorized"`` trains all of a round's clients
        at once (:mod:`odtlab.fl.vectorized`: plain SGD, one recipe, no
        BatchNorm in training mode), with the same result.

    Returns
    -------
    FederatedRun
    """
    for name, value in (("rounds", rounds), ("local_epochs", local_epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"run_federation({name}={value!r}): give an int >= 1")
    if not clients:
        raise ValueError("run_federation needs at least one client")
    ids = [c.id for c in clients]
    if len(set(ids)) != len(ids):
        raise ValueError(f"client ids must be unique; repeated: {sorted({i for i in ids if ids.count(i) > 1})}")
    per_round = len(clients) if clients_per_round is None else clients_per_round
    if isinstance(per_round, bool) or not isinstance(per_round, int) or not 1 <= per_round <= len(clients):
        raise ValueError(f"clients_per_round={clients_per_round!r}: give an int in 1..{len(clients)} or None")
    if engine not in ENGINES:
        raise ValueError(f"run_federation(engine={engine!r}): give one of {', '.join(map(repr, ENGINES))}")
    sampler = torch.Generator().manual_seed(seed)
    global_params: Params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    evaluator = copy.deepcopy(model)
    records = []
    for rnd in tqdm(range(1, rounds + 1), desc=strategy.summary(), disable=not progress):
        draws = torch.rand(len(clients), 2, generator=sampler).tolist()  # eligibility, then mid-round dropout
        eligible = [k for k, c in enumerate(clients) if c.eligible_in_round(rnd, draws[k][0])]
        picks = torch.randperm(len(eligible), generator=sampler)[:per_round].tolist()
        order = [eligible[i] for i in picks]
        config = strategy.configure(rnd)
        accepted: list[ClientResult] = []
        dropped, rejected, ready = [], [], []
        for k in sorted(order):
            try:
                clients[k].step_cost(model, batch_size)  # the fit check, before any training
                ready.append(k)
            except DoesNotFit as err:
                dropped.append((clients[k].id, f"does not fit its device: {str(err).splitlines()[0]}"))
        seeds = [client_seed(seed, rnd, k) for k in ready]
        if engine == "vectorized" and ready:
            results = train_clients(model, [clients[k] for k in ready], global_params, config,
                                    epochs=local_epochs, batch_size=batch_size, seeds=seeds)  # fmt: skip
        else:
            results = [clients[k].fit(model, global_params, config, epochs=local_epochs,
                                      batch_size=batch_size, seed=s)
                       for k, s in zip(ready, seeds, strict=True)]  # fmt: skip
        on_time = []
        for k, result in zip(ready, results, strict=True):
            result = clients[k].compress(result, global_params)
            if draws[k][1] < clients[k].dropout:
                dropped.append((result.client, "left during the round (dropout)"))
            elif deadline_s is not None and result.seconds > deadline_s:
                dropped.append((result.client, f"straggler: {result.seconds:.1f} s > deadline {deadline_s:g} s"))
            else:
                on_time.append(result)
        problems = check_updates(global_params, [(r.params, r.num_examples, r.client) for r in on_time])
        for result, problem in zip(on_time, problems, strict=True):
            if problem is None:
                accepted.append(result)
            else:
                rejected.append((result.client, problem))
        if accepted:
            global_params = strategy.aggregate(global_params, [(r.params, r.num_examples) for r in accepted])
        n = sum(r.num_examples for r in accepted)
        acc = None
        if test_data is not None:
            evaluator.load_state_dict(global_params)
            acc = accuracy(evaluator, test_data)
        records.append(RoundRecord(
            round=rnd,
            trained=tuple(r.client for r in accepted),
            dropped=tuple(dropped),
            rejected=tuple(rejected),
            model_kept=not accepted,
            loss=sum(r.loss * r.num_examples for r in accepted) / n if accepted else None,
            accuracy=acc,
            bytes_down=_bytes(global_params) * len(order),
            bytes_up=sum(r.upload_bytes for r in accepted),
            seconds=max((r.seconds for r in accepted), default=0.0),
            energy_j=sum(r.energy_j for r in accepted),
        ))  # fmt: skip
    return FederatedRun(strategy=strategy.summary(), rounds=records, params=global_params)
