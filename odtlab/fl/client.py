"""A federated client: one device with its own data, training with a recipe.

A :class:`Client` is what one phone or microcontroller brings to a
federation: its local data set, the :class:`~odtlab.recipes.Recipe` it can
afford, and the simulated device it runs on. Each round it receives the
global parameters and a configuration, trains locally with the library's
own training step (``recipe.train_step``: the recipe's trainable set,
optimizer and precision), and sends back a :class:`ClientResult` with the
parameters it trained and what the round cost the device.

Costs come from the same code as everywhere in the course: the memory of
one local step from :func:`odtlab.train.profile` (measured once per client),
the time and energy of the local steps from the device simulator, the upload
time from the update's bytes over ``device.uplink_bytes_per_s``.

Examples
--------
>>> from odtlab import data, models, recipes
>>> digits = data.digits("train")
>>> client = Client("phone-0", torch.utils.data.Subset(digits, range(64)),
...                 recipes.Recipe(recipes.LastLayer()), "phone-mid")
>>> net = models.mlp(seed=0)
>>> result = client.fit(net, net.state_dict(), {}, batch_size=32)
>>> sorted(result.params), result.num_examples
(['classifier.bias', 'classifier.weight'], 64)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from odtlab import devices
from odtlab.data import as_tensors
from odtlab.errors import InvalidRecipe
from odtlab.fl.compression import Compressor, compress_update
from odtlab.recipes import Recipe
from odtlab.train import cost, default_recipe, profile

__all__ = ["Client", "ClientResult", "epoch_orders", "local_batches"]


@dataclass(frozen=True)
class ClientResult:
    """What a client sends back after a round, and what the round cost it.

    Attributes
    ----------
    client : str
    params : dict of str to Tensor
        The parameters the client trained (and its float buffers, such as
        BatchNorm running statistics), by the global model's names.
    num_examples : int
        Examples it trained on (its data set size times the local epochs).
    loss : float
        Mean training loss of its last local epoch.
    steps : int
        Local optimizer steps.
    compute_s, energy_j : float
        Simulated time and energy of the local steps on its device (0 without one).
    upload_bytes : int
        Bytes of ``params``.
    upload_s : float
        ``upload_bytes / uplink_bytes_per_s`` of its device (0 without one).
    """

    client: str
    params: dict[str, torch.Tensor]
    num_examples: int
    loss: float
    steps: int
    compute_s: float = 0.0
    energy_j: float = 0.0
    upload_bytes: int = 0
    upload_s: float = 0.0

    @property
    def seconds(self) -> float:
        """Simulated time of the round on this client: local training plus upload."""
        return self.compute_s + self.upload_s


def epoch_orders(n: int, epochs: int, seed: int) -> list[torch.Tensor]:
    """A client's example order in each local epoch: a fresh seeded permutation of ``range(n)``."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=g) for _ in range(epochs)]


def local_batches(n: int, batch_size: int, epochs: int, seed: int) -> list[list[torch.Tensor]]:
    """The example indices of every local step: ``out[epoch][step]``, cut from :func:`epoch_orders`.

    Every engine (the loop here, the vectorized one) trains on exactly these batches,
    so they give the same result.
    """
    return [list(order.split(batch_size)) for order in epoch_orders(n, epochs, seed)]


def _proximal(loss_fn: Any, net: nn.Module, anchors: Mapping[str, torch.Tensor], mu: float) -> Any:
    """FedProx's loss: the task loss plus ``mu / 2 * ||w - w_global||^2`` over trained weights."""
    params = [(p, anchors[n]) for n, p in net.named_parameters() if p.requires_grad]

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        task = loss_fn(outputs, targets)
        return task + 0.5 * mu * sum(((p - a) ** 2).sum() for p, a in params)

    return loss


@dataclass
class Client:
    """One device of a federation.

    Parameters
    ----------
    id : str
        A name for reports and errors.
    data : Dataset
        The client's own ``(x, y)`` examples; they never leave it.
    recipe : Recipe
        How it trains (default: full training with ``SGD(lr=0.05)``). The
        recipe must keep the model's parameter names (trainable-set,
        optimizer and precision parts do; parts that restructure the model,
        such as LoRA or sparse update, are not supported by federations yet).
    device : str, DeviceProfile or None
        Its simulated device, for the fit check and the costs.
    availability : float or UsageTrace, default 1.0
        Probability that the device is *eligible* in a round: charging, idle
        and on an unmetered network, the rule production systems use before
        they let a phone train (Bonawitz et al., MLSys 2019). The server only
        samples eligible clients. A :class:`~odtlab.devices.UsageTrace`
        instead decides it from the owner's week: round ``r`` (from 1) starts
        ``(r - 1) * round_minutes`` minutes after Monday 00:00 (wrapping round
        the trace), and the client is eligible when the trace's
        :meth:`~odtlab.devices.UsageTrace.eligible` holds at that minute.
    round_minutes : float, default 60.0
        Minutes of simulated time between two rounds, used with a trace.
    dropout : float, default 0.0
        Probability that an eligible client that started the round leaves
        before uploading (the user unplugs, the network drops).
    compression : Compressor or None
        How it shrinks its update before upload (:mod:`odtlab.fl.compression`:
        ``Int8Updates()``, ``TopK(0.1)``); ``None`` sends fp32.
    error_feedback : bool, default True
        Keep what compression left out and add it to the next update.
    """

    id: str
    data: Dataset
    recipe: Recipe = field(default_factory=default_recipe)
    device: str | devices.DeviceProfile | None = None
    availability: float | devices.UsageTrace = 1.0
    dropout: float = 0.0
    compression: Compressor | None = None
    error_feedback: bool = True
    round_minutes: float = 60.0
    # state the client keeps between rounds: what compression held back, and its measured step cost
    _residual: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _costs: dict[tuple[Any, ...], tuple[float, float]] = field(default_factory=dict, init=False, repr=False)
    _eligible: Any = field(default=None, init=False, repr=False)  # a trace's mask, computed once

    def __post_init__(self) -> None:
        if len(self.data) == 0:  # type: ignore[arg-type]
            raise ValueError(f"client {self.id!r} has no data; give every client at least one example")
        if self.device is not None:
            self.device = devices.get(self.device)
        for name in ("availability", "dropout"):
            value = getattr(self, name)
            if name == "availability" and isinstance(value, devices.UsageTrace):
                self._eligible = value.eligible()
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"client {self.id!r}: {name}={value!r} must be a probability in [0, 1]")

    def eligible_in_round(self, server_round: int, draw: float) -> bool:
        """Whether the client may train in round ``server_round`` (from 1).

        With a float ``availability``: ``draw < availability`` (``draw`` is the
        server's uniform random number in [0, 1) for this client and round).
        With a :class:`~odtlab.devices.UsageTrace`: the trace's eligibility at
        minute ``(server_round - 1) * round_minutes`` of the week; ``draw`` is unused.

        Examples
        --------
        >>> trace = devices.UsageTrace.from_events(180, charging=[(60, 120)], wifi=[(0, 180)])
        >>> c = Client("c", torch.utils.data.TensorDataset(torch.zeros(1, 2), torch.zeros(1)),
        ...            availability=trace)
        >>> [c.eligible_in_round(r, 0.5) for r in (1, 2, 3)]
        [False, True, False]
        """
        if isinstance(self.availability, devices.UsageTrace):
            minute = (server_round - 1) * self.round_minutes
            return bool(self._eligible[self.availability.sample_at(minute)])
        return draw < self.availability

    def fit(
        self,
        model: nn.Module,
        global_params: Mapping[str, torch.Tensor],
        config: Mapping[str, Any],
        *,
        epochs: int = 1,
        batch_size: int = 32,
        seed: int = 0,
    ) -> ClientResult:
        """Train a copy of ``model`` loaded with ``global_params`` for ``epochs`` local epochs.

        ``config`` is the strategy's ``configure(round)``; ``proximal_mu``
        adds FedProx's term. ``model`` itself is not changed.

        Raises
        ------
        DoesNotFit
            When one local step does not fit the client's device (checked
            before any training).
        InvalidRecipe
            When the recipe renames the model's parameters.
        """
        x, y = as_tensors(self.data)
        step_s, step_j = self.step_cost(model, batch_size)
        net = copy.deepcopy(model)
        net.load_state_dict(dict(global_params))
        names = {n for n, _ in net.named_parameters()}
        net = self.recipe.prepare(net)
        if {n for n, _ in net.named_parameters()} != names:
            raise InvalidRecipe(
                f"client {self.id!r}: recipe {self.recipe.name!r} changes the model's parameters, "
                "so its update would not match the global model; federate with trainable-set "
                "parts (Full, LastLayer, BiasOnly, Freeze), optimizers and precision parts"
            )
        mu = float(config.get("proximal_mu", 0.0))
        loss_fn: Any = torch.nn.functional.cross_entropy
        if mu > 0:
            anchors = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
            loss_fn = _proximal(loss_fn, net, anchors, mu)
        opt = self.recipe.make_optimizer(net.parameters())
        net.train()
        steps, losses = 0, []
        with torch.random.fork_rng(devices=[]):  # dropout draws from a seeded, private state
            torch.manual_seed(seed)
            for epoch in local_batches(len(y), batch_size, epochs, seed):
                losses = []
                for index in epoch:
                    losses.append(self.recipe.train_step(net, x[index], y[index], loss_fn, opt))
                    steps += 1
        trained = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
        trained.update(
            {n: b.detach().clone() for n, b in net.named_buffers() if b.is_floating_point()}
        )
        upload = sum(t.numel() * t.element_size() for t in trained.values())
        uplink = self.device.uplink_bytes_per_s if isinstance(self.device, devices.DeviceProfile) else 0
        return ClientResult(
            client=self.id,
            params=trained,
            num_examples=len(self.data) * epochs,  # type: ignore[arg-type]
            loss=sum(losses) / max(len(losses), 1),
            steps=steps,
            compute_s=step_s * steps,
            energy_j=step_j * steps,
            upload_bytes=int(upload),
            upload_s=float(upload / uplink) if uplink else 0.0,
        )

    def compress(self, result: ClientResult, global_params: Mapping[str, torch.Tensor]) -> ClientResult:
        """``result`` as the server receives it through the client's compression (as is without one).

        The update (trained minus global parameters) goes through
        :func:`~odtlab.fl.compression.compress_update`; the upload bytes and
        time are those of the compressed update.
        """
        if self.compression is None:
            return result
        residual = self._residual if self.error_feedback else None
        params, nbytes = compress_update(self.compression, result.params, global_params, residual)
        uplink = self.device.uplink_bytes_per_s if isinstance(self.device, devices.DeviceProfile) else 0
        return dataclasses.replace(result, params=params, upload_bytes=int(nbytes),
                                   upload_s=float(nbytes / uplink) if uplink else 0.0)  # fmt: skip

    def step_cost(self, model: nn.Module, batch_size: int) -> tuple[float, float]:
        """Simulated seconds and joules of one local step on the client's device (0 without one).

        Measured once per model and batch size (every round trains the same
        model on batches of the same size), with :func:`odtlab.train.profile`
        on the client's first ``batch_size`` examples and the device simulator.

        Raises
        ------
        DoesNotFit
            When the step does not fit the device's training memory.
        """
        if not isinstance(self.device, devices.DeviceProfile):
            return 0.0, 0.0
        key = (type(model).__name__, sum(p.numel() for p in model.parameters()), batch_size)
        if key not in self._costs:
            x, y = as_tensors(self.data)
            report = profile(model, (x[:batch_size], y[:batch_size]), self.recipe, self.device)
            devices.check_fit(report, self.device)
            job = cost.workload_from_report(report, steps=1, dtype=self.recipe.device_dtype)
            sim = devices.simulate(job, self.device, check_memory=False)
            self._costs[key] = (float(sim.total_time_s), float(sim.total_energy_j))
        return self._costs[key]
