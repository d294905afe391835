"""The bridge: odtlab's strategy and clients speaking Flower 1.42's messages.

Flower writes the round loop once (:meth:`flwr.serverapp.strategy.Strategy.start`:
configure, send, receive, aggregate) and leaves the policy to a strategy
object. :class:`OdtlabStrategy` is such an object whose policy is an odtlab
:class:`~odtlab.fl.Strategy`: every round it sends the global parameters
and the odtlab strategy's ``configure(round)`` to every client node, and it
aggregates their replies with the odtlab strategy's
``aggregate(global_params, results)``, after the same update checks as
:func:`~odtlab.fl.run_federation`. Flower only carries the messages.

On a client node, :func:`train_reply` answers one training message with an
odtlab :class:`~odtlab.fl.Client`: ``client.fit`` with the seed
:func:`~odtlab.fl.client_seed` gives it in that round, so a Flower run and
an in-process run train on the same batches.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from logging import INFO, WARNING

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy as FlowerStrategy
from flwr.supercore import log
from torch import nn

from odtlab.fl.aggregate import Params, check_updates
from odtlab.fl.client import Client
from odtlab.fl.flower.records import from_array_record, to_array_record, to_config_record
from odtlab.fl.simulation import client_seed
from odtlab.fl.strategies import Strategy

__all__ = ["OdtlabStrategy", "train_reply", "PARTITION_KEY"]

PARTITION_KEY = "partition-id"  # the metric in a reply that says which client trained


class OdtlabStrategy(FlowerStrategy):
    """A Flower strategy whose server policy is an odtlab strategy.

    Parameters
    ----------
    strategy : odtlab.fl.Strategy
        ``FedAvg()``, ``FedProx(mu)``, ``FedAvgM(...)``, ``FedAdam(...)``, or your own.
    num_clients : int
        Client nodes every round waits for and trains (all of them, as
        ``run_federation(clients_per_round=None)`` does).
    wait_s : float, default 120
        Seconds to wait for ``num_clients`` nodes to connect before giving up.

    Notes
    -----
    Replies are aggregated in the order of their ``partition-id`` (client 0
    first), not in their order of arrival, so the floating-point sums are
    those of the in-process engine. ``rejected`` lists, per round, the
    clients whose update failed :func:`~odtlab.fl.aggregate.check_updates`.
    """

    def __init__(self, strategy: Strategy, *, num_clients: int, wait_s: float = 120.0) -> None:
        if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
            raise ValueError(f"OdtlabStrategy(num_clients={num_clients!r}): give an int >= 1")
        self.strategy = strategy
        self.num_clients = num_clients
        self.wait_s = float(wait_s)
        self.global_params: Params = {}  # what this round's clients received (engine state)
        self.rejected: dict[int, list[tuple[str, str]]] = {}

    def _nodes(self, grid: Grid) -> list[int]:
        deadline = time.monotonic() + self.wait_s
        while len(nodes := sorted(grid.get_node_ids())) < self.num_clients:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {len(nodes)} of {self.num_clients} SuperNodes connected within "
                    f"{self.wait_s:g} s; start one SuperNode per client"
                )
            time.sleep(0.5)
        return nodes[: self.num_clients]

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One training message per client node: the global arrays and ``configure(round)``."""
        self.global_params = from_array_record(arrays)
        settings = {**dict(config), **self.strategy.configure(server_round), "server-round": server_round}
        content = RecordDict({"arrays": arrays, "config": to_config_record(settings)})
        return [Message(content=content, dst_node_id=node, message_type=MessageType.TRAIN)
                for node in self._nodes(grid)]  # fmt: skip

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The odtlab strategy's ``aggregate`` over the checked replies, in partition order."""
        received = []
        for reply in replies:
            if reply.has_error():
                log(WARNING, "round %s: a client failed: %s", server_round, reply.error.reason)
                continue
            metrics = reply.content["metrics"]
            received.append((int(metrics[PARTITION_KEY]), reply))
        received.sort(key=lambda pair: pair[0])
        updates = [(from_array_record(r.content["arrays"]), int(r.content["metrics"]["num-examples"]),
                    f"client-{k}") for k, r in received]  # fmt: skip
        problems = check_updates(self.global_params, updates)
        ok = [problem is None for problem in problems]
        accepted = [(p, n) for (p, n, _), good in zip(updates, ok, strict=True) if good]
        self.rejected[server_round] = [(who, problem) for (_, _, who), problem
                                       in zip(updates, problems, strict=True) if problem is not None]  # fmt: skip
        if not accepted:
            return None, None  # Flower keeps the global model, as run_federation does
        new = self.strategy.aggregate(self.global_params, accepted)
        n = sum(num for _, num in accepted)
        loss = sum(float(r.content["metrics"]["train-loss"]) * num
                   for (_, r), (_, num, _), good in zip(received, updates, ok, strict=True) if good)  # fmt: skip
        return to_array_record(new), MetricRecord({"train-loss": loss / n, "clients": len(accepted)})

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """No client-side evaluation: the server evaluates the global model itself."""
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Nothing to aggregate (see :meth:`configure_evaluate`)."""
        return None

    def summary(self) -> None:
        """Log the odtlab strategy's one-line summary."""
        log(INFO, "odtlab strategy %s over %d clients", self.strategy.summary(), self.num_clients)


def train_reply(
    msg: Message,
    client: Client,
    model: nn.Module,
    *,
    partition_id: int,
    batch_size: int,
    local_epochs: int,
    seed: int,
) -> Message:
    """Answer one Flower training message with ``client.fit``: the client side of the bridge.

    Parameters
    ----------
    msg : flwr.app.Message
        Carries ``"arrays"`` (the global parameters) and ``"config"`` (the
        strategy's ``configure(round)`` plus ``server-round``).
    client : odtlab.fl.Client
    model : nn.Module
        The architecture to train (its weights are replaced by the message's).
    partition_id : int
        The client's index, from the SuperNode's node config; with ``seed``
        and the round it gives the local seed (:func:`~odtlab.fl.client_seed`).
    batch_size, local_epochs, seed : int
        As in :func:`~odtlab.fl.run_federation`.

    Returns
    -------
    flwr.app.Message
        A reply with ``"arrays"`` (the trained parameters) and ``"metrics"``
        (``num-examples``, ``train-loss``, ``partition-id``).
    """
    config = dict(msg.content["config"])
    server_round = int(config.pop("server-round"))
    global_params = from_array_record(msg.content["arrays"])
    result = client.fit(model, global_params, config, epochs=local_epochs, batch_size=batch_size,
                        seed=client_seed(seed, server_round, partition_id))  # fmt: skip
    result = client.compress(result, global_params)  # a fresh client each message: no error feedback
    metrics = MetricRecord({"num-examples": result.num_examples, "train-loss": float(result.loss),
                            PARTITION_KEY: int(partition_id)})  # fmt: skip
    return Message(content=RecordDict({"arrays": to_array_record(result.params), "metrics": metrics}),
                   reply_to=msg)  # fmt: skip

