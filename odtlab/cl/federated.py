"""Federated continual learning: a fleet whose data drift, FedAvg with or without local replay.

Each device of a federation also lives through a stream: a keyboard sees
new words, a watch a new season of activity. :func:`federated_stream` runs
the federated engine (:func:`odtlab.fl.run_federation`) phase by phase over
a stream: in phase ``p`` every client holds its share of experience ``p``
only (the clients drift together), the federation trains for ``rounds``
rounds from the current global model, and the global model is tested on
every experience, one row of the accuracy matrix ``R`` as in
:func:`odtlab.cl.run_stream`. With ``local_replay > 0`` every client also
keeps a reservoir buffer of that many of its own past examples
(:class:`~odtlab.cl.ReservoirBuffer`) and trains on them beside the new
ones; the buffer stays on the device, never uploaded, so the privacy of
federated learning is kept and each device pays its buffer's bytes
(``result.memory``, all clients together).

Chapter 8 compares the two on the class-incremental split digits.

Examples
--------
>>> from odtlab import cl, models
>>> stream = cl.class_incremental(classes_per_experience=5)
>>> res = federated_stream(models.mlp(seed=0), stream, clients=2, rounds=1, local_replay=10)
>>> res.R.shape, res.memory
(torch.Size([2, 2]), {'replay buffers (all clients)': 5160})
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from odtlab import data, fl
from odtlab.cl.buffers import ReservoirBuffer
from odtlab.cl.errors import InvalidStrategy
from odtlab.cl.run import StreamResult
from odtlab.cl.streams import Stream
from odtlab.train import accuracy

__all__ = ["federated_stream"]


def federated_stream(
    model: nn.Module,
    stream: Stream,
    *,
    clients: int = 4,
    rounds: int = 3,
    local_epochs: int = 2,
    local_replay: int = 0,
    strategy: fl.Strategy | None = None,
    engine: str = "loop",
    seed: int = 0,
) -> StreamResult:
    """FedAvg (or ``strategy``) over ``stream``, phase by phase, with optional local replay.

    Parameters
    ----------
    model : nn.Module
        The starting global model (not changed; ``result.model`` is the final one).
    stream : Stream
        Phase ``p`` shares experience ``p``'s training data among the
        clients (:func:`odtlab.data.partition`, IID, seeded by ``p``).
    clients : int, default 4
    rounds : int, default 3
        Rounds of the federation per phase.
    local_epochs : int, default 2
        Each client's epochs per round (batches of ``stream.batch_size``).
    local_replay : int, default 0
        Examples each client keeps in its own reservoir buffer (0: none).
    strategy : fl.Strategy or None
        The server's strategy, default :class:`odtlab.fl.FedAvg`.
    engine : {"loop", "vectorized"}
        The federated engine (:func:`odtlab.fl.run_federation`); both give
        the same model, the vectorized one trains all clients at once.
    seed : int
        Seeds each phase's federation (``seed + p``) and the buffers.

    Returns
    -------
    StreamResult
        ``R``, ``b``, the buffers' bytes in ``memory`` and the final model;
        its strategy name is ``"fedavg"`` or ``"fedavg+local-replay-<n>"``.
    """
    if clients < 1 or rounds < 1 or local_replay < 0:
        raise InvalidStrategy(
            f"clients={clients} and rounds={rounds} must be >= 1, local_replay={local_replay} >= 0"
        )
    net = copy.deepcopy(model)
    strategy = fl.FedAvg() if strategy is None else strategy
    buffers = [ReservoirBuffer(local_replay, seed=seed + k) for k in range(clients)] \
        if local_replay else []  # fmt: skip
    classes = [str(c) for c in range(stream.num_classes)]
    b = torch.tensor([accuracy(net, e.test) for e in stream])
    rows = []
    for phase, exp in enumerate(stream):
        x, y = data.as_tensors(exp.train)
        parts = data.partition(exp.train, clients, seed=seed + phase)
        fleet = []
        for k, part in enumerate(parts):
            xs, ys = x[part], y[part]
            if buffers and len(buffers[k]):
                old_x, old_y = buffers[k].all()
                xs, ys = torch.cat([xs, old_x]), torch.cat([ys, old_y])
            fleet.append(fl.Client(f"device-{k}", data.ArrayDataset(xs, ys, classes=classes)))
        run = fl.run_federation(net, fleet, strategy, rounds=rounds, local_epochs=local_epochs,
                                batch_size=stream.batch_size, seed=seed + phase, engine=engine,
                                progress=False)  # fmt: skip
        net.load_state_dict({**net.state_dict(), **run.params})
        for k, part in enumerate(parts):  # the new examples join each client's own buffer
            if buffers:
                buffers[k].add(x[part], y[part])
        rows.append(torch.tensor([accuracy(net, e.test) for e in stream]))
    memory = {"replay buffers (all clients)": sum(buf.nbytes for buf in buffers)} if buffers else {}
    name = f"{strategy.name}+local-replay-{local_replay}" if local_replay else strategy.name
    return StreamResult(stream.name, name, stream.scenario, torch.stack(rows), b, memory,
                        experiences=[e.name or str(e.index) for e in stream], model=net)  # fmt: skip
