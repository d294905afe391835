"""Client-level differential privacy for federations: DP-FedAvg with Opacus's accountant.

Keeping data on the device is not privacy: an update is a function of the
data, and a model can memorise a user. DP-FedAvg (McMahan et al., "Learning
Differentially Private Recurrent Language Models", ICLR 2018) makes the
*whole contribution of one client* hard to detect:

1. each client's update ``d_k = w_k - w_global`` is clipped to L2 norm ``C``
   (:func:`~odtlab.fl.robust.clip_update`), so no client moves the sum by
   more than ``C``;
2. the server adds Gaussian noise of standard deviation ``z * C`` to the sum
   of the clipped updates (``z`` is the *noise multiplier*);
3. and divides by the *expected* number of clients per round ``m`` (not the
   number that came: that would leak who came), then steps
   ``w_global += server_lr * mean``.

Each round is a subsampled Gaussian mechanism with sample rate
``q = m / N`` (``N`` clients in all). Rounds compose; the Rényi DP
accountant (Mironov, CSF 2017) of Opacus (``opacus.accountants.RDPAccountant``)
turns the schedule into ``(epsilon, delta)``: :meth:`DPFedAvg.epsilon`,
:func:`epsilon_after`; :func:`noise_for_epsilon` inverts it with Opacus's
``get_noise_multiplier``. The accountant assumes Poisson sampling (each
client joins independently with probability ``q``, as in the paper's
Algorithm 1); :func:`~odtlab.fl.run_federation` samples exactly ``m``
clients, a common approximation whose difference is small for large ``N``;
it is stated here rather than hidden.

Adaptive clipping (Andrew et al., "Differentially Private Learning with
Adaptive Clipping", NeurIPS 2021): ``C`` follows the ``gamma``-quantile of
the update norms. Each client reports ``b_k = 1[||d_k|| <= C]``; the server
adds noise of std ``sigma_b`` to their sum, takes ``b = noisy sum / m`` and
steps ``C <- C * exp(-eta_C (b - gamma))``. To spend the same privacy the
update's noise multiplier becomes ``z_d = (z^-2 - (2 sigma_b)^-2)^-1/2``
(their Theorem 1), so the accountant is stepped with ``z``.

Examples
--------
>>> import torch
>>> s = DPFedAvg(noise_multiplier=1.0, clip_norm=1.0, num_clients=100, clients_per_round=10)
>>> new = s.aggregate({"w": torch.zeros(3)}, [({"w": torch.tensor([3.0, 4.0, 0.0])}, 1)])
>>> round(s.epsilon(1e-5), 2)           # one round at q = 0.1
2.13
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from odtlab.fl.aggregate import Params, Result, weighted_mean
from odtlab.fl.robust import clip_update, update_norm
from odtlab.fl.strategies import Strategy

__all__ = ["DPFedAvg", "epsilon_after", "noise_for_epsilon"]


def _probability(owner: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{owner}({name}={value!r}): give a probability in (0, 1]")


def epsilon_after(noise_multiplier: float, *, sample_rate: float, rounds: int, delta: float) -> float:
    """``epsilon`` of ``rounds`` subsampled Gaussian rounds, from Opacus's RDP accountant.

    Parameters
    ----------
    noise_multiplier : float
        ``z``: noise std divided by the clipping norm.
    sample_rate : float
        ``q``: the chance that a given client takes part in a round (clients per round / clients).
    rounds : int
    delta : float
        The ``delta`` of ``(epsilon, delta)``-DP; take it below ``1 / N``.

    Examples
    --------
    >>> round(epsilon_after(1.0, sample_rate=0.01, rounds=1000, delta=1e-5), 2)
    2.1
    """
    _probability("epsilon_after", "sample_rate", sample_rate)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"epsilon_after(rounds={rounds!r}): give an int >= 1")
    accountant = RDPAccountant()
    for _ in range(rounds):  # Opacus merges equal steps into one history entry
        accountant.step(noise_multiplier=float(noise_multiplier), sample_rate=float(sample_rate))
    return float(accountant.get_epsilon(delta))


def noise_for_epsilon(target_epsilon: float, *, delta: float, rounds: int, sample_rate: float) -> float:
    """The smallest noise multiplier ``z`` whose ``rounds`` rounds stay within ``target_epsilon``.

    Opacus's ``get_noise_multiplier`` (RDP accountant) searches ``z`` to a
    tolerance of 0.01 in epsilon.

    Examples
    --------
    >>> round(noise_for_epsilon(8.0, delta=1e-5, rounds=100, sample_rate=0.1), 2)
    0.99
    """
    _probability("noise_for_epsilon", "sample_rate", sample_rate)
    if not target_epsilon > 0:
        raise ValueError(f"noise_for_epsilon(target_epsilon={target_epsilon!r}): give a positive epsilon")
    with warnings.catch_warnings():  # the search tries tiny z, where Opacus warns its alphas are too few
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                          sample_rate=sample_rate, steps=rounds, accountant="rdp"))  # fmt: skip


@dataclass
class DPFedAvg(Strategy):
    """DP-FedAvg: clip every update to ``clip_norm``, add ``N(0, (z C)^2)`` to the sum, divide by ``m``.

    Parameters
    ----------
    noise_multiplier : float
        ``z`` (>= 0; 0 is clipping without privacy).
    clip_norm : float
        ``C``, the L2 bound of each client's update (the starting value with ``adaptive``).
    num_clients : int
        ``N``, all the clients of the federation: the sample rate is ``m / N``.
    clients_per_round : int
        ``m``, the expected number of clients per round; the sum is divided by it.
    server_lr : float, default 1.0
    adaptive : bool, default False
        Andrew et al.'s quantile-based clipping (module notes).
    target_quantile, clip_lr : float, default 0.5, 0.2
        ``gamma`` and ``eta_C`` of adaptive clipping.
    count_noise_std : float or None
        ``sigma_b``; ``None``: ``m / 20``, the paper's choice.
    seed : int
        Seeds the server's noise (a private ``torch.Generator``).

    Attributes
    ----------
    accountant : opacus.accountants.RDPAccountant
        Stepped once per aggregated round.
    clip_history : list of float
        ``C`` used in each round.
    """

    noise_multiplier: float = 1.0
    clip_norm: float = 1.0
    num_clients: int = 100
    clients_per_round: int = 10
    server_lr: float = 1.0
    adaptive: bool = False
    target_quantile: float = 0.5
    clip_lr: float = 0.2
    count_noise_std: float | None = None
    seed: int = 0
    name: str = field(default="dpfedavg", init=False)
    accountant: RDPAccountant = field(default_factory=RDPAccountant, init=False, repr=False)
    clip_history: list[float] = field(default_factory=list, init=False, repr=False)
    _gen: torch.Generator = field(default_factory=torch.Generator, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.noise_multiplier, (int, float)) or self.noise_multiplier < 0:
            raise ValueError(f"DPFedAvg(noise_multiplier={self.noise_multiplier!r}): give a number >= 0")
        if not isinstance(self.clip_norm, (int, float)) or not self.clip_norm > 0:
            raise ValueError(f"DPFedAvg(clip_norm={self.clip_norm!r}): give a positive L2 norm")
        for name in ("num_clients", "clients_per_round"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DPFedAvg({name}={value!r}): give an int >= 1")
        if self.clients_per_round > self.num_clients:
            raise ValueError(
                f"DPFedAvg(clients_per_round={self.clients_per_round}) exceeds num_clients="
                f"{self.num_clients}: the sample rate m / N must be at most 1"
            )
        _probability("DPFedAvg", "target_quantile", self.target_quantile)
        if self.adaptive and self.noise_multiplier > 0 and 2 * self.sigma_b * self.noise_multiplier <= 1:
            raise ValueError(
                f"DPFedAvg(adaptive=True): count_noise_std={self.sigma_b:g} is too small for "
                f"noise_multiplier={self.noise_multiplier:g}; it needs 2 * sigma_b * z > 1 "
                "(raise count_noise_std, or the noise multiplier)"
            )
        self._gen.manual_seed(self.seed)

    @property
    def sample_rate(self) -> float:
        """``q = m / N``, the chance that a given client takes part in a round."""
        return self.clients_per_round / self.num_clients

    @property
    def sigma_b(self) -> float:
        """Standard deviation of the noise on the clipped-count of adaptive clipping."""
        return self.clients_per_round / 20 if self.count_noise_std is None else float(self.count_noise_std)

    @property
    def update_noise_multiplier(self) -> float:
        """The noise multiplier on the updates: ``z``, or ``z_d`` with adaptive clipping."""
        z = float(self.noise_multiplier)
        if not self.adaptive or z == 0:
            return z
        return (z**-2 - (2 * self.sigma_b) ** -2) ** -0.5

    def epsilon(self, delta: float) -> float:
        """``epsilon`` spent so far at ``delta``: 0 before the first round, ``inf`` after a round without noise."""
        if not self.clip_history:
            return 0.0
        if self.noise_multiplier == 0:
            return math.inf  # clipping alone bounds the influence but hides nothing
        return float(self.accountant.get_epsilon(delta))

    def _noise(self, like: torch.Tensor, std: float) -> torch.Tensor:
        return torch.randn(like.shape, generator=self._gen, dtype=torch.float64) * std

    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        if not results:
            raise ValueError("DPFedAvg needs at least one (params, num_examples) result")
        clip = float(self.clip_norm)
        self.clip_history.append(clip)
        m = self.clients_per_round
        floats = [k for k, v in results[0][0].items() if v.is_floating_point()]
        total = {k: torch.zeros(global_params[k].shape, dtype=torch.float64) for k in floats}
        below = 0
        for params, _ in results:
            below += update_norm(global_params, params) <= clip
            clipped = clip_update(global_params, params, clip)
            for k in floats:
                total[k] += clipped[k].double() - global_params[k].double()
        std = self.update_noise_multiplier * clip
        new = {k: v.detach().clone() for k, v in global_params.items()}
        for k in sorted(floats):  # a fixed order: the same seed gives the same noise
            mean = (total[k] + self._noise(total[k], std)) / m
            new[k] = (global_params[k].double() + self.server_lr * mean).to(global_params[k].dtype)
        others = [k for k in results[0][0] if k not in floats]
        if others:  # integer buffers (counters): plain mean, they carry no gradient
            new.update(weighted_mean([({k: p[k] for k in others}, n) for p, n in results]))
        if self.adaptive:
            noisy_fraction = (below + float(self._noise(torch.zeros(()), self.sigma_b))) / m
            self.clip_norm = clip * math.exp(-self.clip_lr * (noisy_fraction - self.target_quantile))
        if self.noise_multiplier > 0:
            self.accountant.step(noise_multiplier=float(self.noise_multiplier), sample_rate=self.sample_rate)
        return new

    def summary(self) -> str:
        kind = "adaptive " if self.adaptive else ""
        return f"DPFedAvg(z={self.noise_multiplier:g}, {kind}C={self.clip_norm:.3g}, q={self.sample_rate:g})"
