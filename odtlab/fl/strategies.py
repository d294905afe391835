"""Federated strategies: what the server does with the clients' results.

A strategy is *policy only*, as in Flower: the engine (a loop over clients,
the vectorized engine, or Flower itself) runs the rounds, and asks the
strategy two things:

``configure(server_round) -> dict``
    What every client receives with the global model this round (FedProx
    sends its ``proximal_mu``).
``aggregate(global_params, results) -> dict``
    The new global parameters from the current ones and the clients'
    ``(params, num_examples)`` results. Only keys that clients train change.
    ``global_params`` is passed in every round, never cached; server-side
    state (momentum, Adam moments) lives in the strategy.

==============  ==============================================================
``FedAvg``      example-weighted mean (McMahan et al., AISTATS 2017)
``FedProx``     FedAvg; clients add ``mu/2 ||w - w_global||^2`` to their loss
                (Li et al., MLSys 2020)
``FedAvgM``     server momentum on the pseudo-gradient ``w_global - mean``
                (Hsu, Qi and Brown, 2019)
``FedAdam``     server Adam on the pseudo-gradient (Reddi et al., ICLR 2021,
                Algorithm 2, without bias correction as in the paper)
==============  ==============================================================

Examples
--------
>>> import torch
>>> g = {"w": torch.zeros(2)}
>>> results = [({"w": torch.tensor([1.0, 1.0])}, 1), ({"w": torch.tensor([4.0, 4.0])}, 2)]
>>> FedAvg().aggregate(g, results)["w"]
tensor([3., 3.])
>>> get_strategy("fedprox", mu=0.1).configure(1)
{'proximal_mu': 0.1}
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from odtlab.fl.aggregate import Params, Result, apply_to_global, weighted_mean
from odtlab.fl.errors import UnknownStrategy

__all__ = ["Strategy", "FedAvg", "FedProx", "FedAvgM", "FedAdam", "STRATEGIES", "get_strategy"]


def _positive(owner: str, name: str, value: float, *, zero: bool = False, below_one: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value >= 0 if zero else value > 0) and (value < 1 if below_one else True)
    if not ok:
        need = "in [0, 1)" if below_one else (">= 0" if zero else "> 0")
        raise ValueError(f"{owner}({name}={value!r}): give a number {need}")


class Strategy(ABC):
    """Base of the strategies: no client configuration, and ``aggregate`` to implement."""

    name: str = "strategy"

    def configure(self, server_round: int) -> dict[str, Any]:
        """What clients receive with the model in round ``server_round`` (1-based)."""
        return {}

    @abstractmethod
    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        """The new global parameters; see the module notes."""

    def summary(self) -> str:
        """One line naming the strategy and its settings."""
        return self.name


@dataclass
class FedAvg(Strategy):
    """Federated averaging: the new model is the example-weighted mean of the clients'.

    With one local step of plain SGD on every client this equals one step of
    SGD on all their data together; with several local steps the clients
    drift apart on non-IID data, which FedProx and server momentum address.
    """

    name: str = field(default="fedavg", init=False)

    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        return apply_to_global(global_params, weighted_mean(results))

    def summary(self) -> str:
        return "FedAvg"

    def step_on_mean(
        self,
        global_params: Mapping[str, torch.Tensor],
        results: Sequence[Result],
        step: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> Params:
        """FedAvg's result, then ``step(key, current, mean)`` on every trained float tensor.

        What server optimizers share: FedAvgM and FedAdam replace the mean by
        a step along the pseudo-gradient ``current - mean``.
        """
        new = FedAvg.aggregate(self, global_params, results)
        for key in results[0][0]:
            current = global_params[key].detach()
            if current.is_floating_point():
                new[key] = step(key, current, new[key])
        return new


@dataclass
class FedProx(FedAvg):
    """FedAvg whose clients add ``mu / 2 * ||w - w_global||^2`` to their loss.

    The proximal term pulls each client's weights towards the global model,
    limiting the drift of many local steps on skewed data. The server side
    is FedAvg; ``configure`` sends ``proximal_mu`` to the clients.
    """

    mu: float = 0.01
    name: str = field(default="fedprox", init=False)

    def __post_init__(self) -> None:
        _positive("FedProx", "mu", self.mu, zero=True)

    def configure(self, server_round: int) -> dict[str, Any]:
        return {"proximal_mu": float(self.mu)}

    def summary(self) -> str:
        return f"FedProx(mu={self.mu:g})"


@dataclass
class FedAvgM(FedAvg):
    """FedAvg with server momentum.

    With ``d = w_global - mean(w_k)`` (a pseudo-gradient: the direction the
    clients moved, reversed), the server keeps ``v <- momentum * v + d`` and
    steps ``w_global <- w_global - server_lr * v``. With ``momentum=0`` and
    ``server_lr=1`` it is FedAvg.
    """

    server_lr: float = 1.0
    momentum: float = 0.9
    name: str = field(default="fedavgm", init=False)
    velocity: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        _positive("FedAvgM", "server_lr", self.server_lr)
        _positive("FedAvgM", "momentum", self.momentum, zero=True, below_one=True)

    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        return self.step_on_mean(global_params, results, self._momentum_step)

    def _momentum_step(self, key: str, current: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        d = current - mean
        v = self.momentum * self.velocity[key] + d if key in self.velocity else d
        self.velocity[key] = v
        return current - self.server_lr * v

    def summary(self) -> str:
        return f"FedAvgM(server_lr={self.server_lr:g}, momentum={self.momentum:g})"


@dataclass
class FedAdam(FedAvg):
    """Adam on the server (Reddi et al., "Adaptive Federated Optimization", ICLR 2021).

    With ``delta = mean(w_k) - w_global``: ``m <- beta1 m + (1 - beta1) delta``,
    ``v <- beta2 v + (1 - beta2) delta^2`` and
    ``w_global <- w_global + eta * m / (sqrt(v) + tau)``. ``tau`` bounds the
    step where ``v`` is tiny; the paper tunes it in ``[1e-5, 1e-1]``.
    """

    eta: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    name: str = field(default="fedadam", init=False)
    moments: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        _positive("FedAdam", "eta", self.eta)
        _positive("FedAdam", "beta1", self.beta1, zero=True, below_one=True)
        _positive("FedAdam", "beta2", self.beta2, zero=True, below_one=True)
        _positive("FedAdam", "tau", self.tau)

    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        return self.step_on_mean(global_params, results, self._adam_step)

    def _adam_step(self, key: str, current: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        delta = mean - current
        m, v = self.moments.get(key, (torch.zeros_like(current), torch.zeros_like(current)))
        m = self.beta1 * m + (1 - self.beta1) * delta
        v = self.beta2 * v + (1 - self.beta2) * delta * delta
        self.moments[key] = (m, v)
        return current + self.eta * m / (v.sqrt() + self.tau)

    def summary(self) -> str:
        return f"FedAdam(eta={self.eta:g}, beta1={self.beta1:g}, beta2={self.beta2:g}, tau={self.tau:g})"


STRATEGIES: dict[str, type[FedAvg]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedavgm": FedAvgM,
    "fedadam": FedAdam,
}


def get_strategy(name: str, **settings: Any) -> Strategy:
    """The strategy called ``name`` (``"fedavg"``, ``"fedprox"``, ...), built with ``settings``.

    Raises
    ------
    UnknownStrategy
        For an unknown name; the message lists the known ones.
    """
    key = str(name).lower()
    if key not in STRATEGIES:
        close = difflib.get_close_matches(key, list(STRATEGIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownStrategy(
            f"no federated strategy {name!r}; known: {', '.join(STRATEGIES)}.{hint}"
        )
    return STRATEGIES[key](**settings)
