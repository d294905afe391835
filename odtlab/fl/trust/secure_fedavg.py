"""FedAvg through secure aggregation: the server only ever sees masked updates and their sum.

:class:`SecureFedAvg` is a strategy with the usual ``aggregate(global_params,
results)`` contract. Each client's contribution is its example-weighted
update ``n_k (w_k - w_global)`` followed by its count ``n_k``, encoded in
fixed point modulo ``2**32`` (:func:`~odtlab.fl.trust.secagg.encode`); the
protocol (:func:`~odtlab.fl.trust.secagg.secure_sum`) gives the sum of the
survivors' vectors, and the new model is ``w_global + sum / sum n_k``:
FedAvg over the survivors, up to the fixed-point resolution.

Clients that drop out after sharing their keys are simulated with
``dropout`` (each leaves with that probability, seeded). When more than
``n - t`` leave, the round fails with
:class:`~odtlab.fl.errors.TooManyDropouts`: the strategy keeps the previous
model, and records the error in :attr:`SecureFedAvg.failures`, so a
federation goes on to the next round.

Examples
--------
>>> g = {"w": torch.zeros(2)}
>>> results = [({"w": torch.tensor([1.0, 2.0])}, 1), ({"w": torch.tensor([4.0, 8.0])}, 3)]
>>> SecureFedAvg(threshold=1.0, seed=0).aggregate(g, results)["w"]
tensor([3.2500, 6.5000])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from odtlab.fl.aggregate import Params, Result
from odtlab.fl.errors import EncodingOverflow, TooManyDropouts
from odtlab.fl.strategies import Strategy
from odtlab.fl.trust.secagg import MODULUS, SCALE, decode, encode, secure_sum

__all__ = ["SecureFedAvg"]


@dataclass
class SecureFedAvg(Strategy):
    """FedAvg whose sum is computed by secure aggregation (Bonawitz et al., CCS 2017).

    Parameters
    ----------
    threshold : float, default 2/3
        ``t`` as a share of the round's clients, rounded up: ``t = ceil(threshold * n)``.
        A coalition of ``t`` parties could unmask; more than ``n - t`` dropouts abort.
    dropout : float, default 0.0
        Probability that a client leaves after sharing its keys (simulated).
    scale : int, default 2**16
        Fixed-point scale; the weighted sum must stay within ``+-2**31 / scale``.
    seed : int
        Seeds the keys, the shares and the simulated dropouts.

    Attributes
    ----------
    failures : list of (int, str)
        ``(round, message)`` of every round that was abandoned.
    masked_seen : list of uint32 arrays
        The masked vectors the server received in the last round (for a look
        at what it learns: uniform noise).
    survivors : tuple of int
        Positions in ``results`` of the clients aggregated in the last round.
    """

    threshold: float = 2 / 3
    dropout: float = 0.0
    scale: int = SCALE
    seed: int = 0
    name: str = field(default="securefedavg", init=False)
    failures: list[tuple[int, str]] = field(default_factory=list, init=False, repr=False)
    masked_seen: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    survivors: tuple[int, ...] = field(default=(), init=False, repr=False)
    _round: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or not 0 < self.threshold <= 1:
            raise ValueError(f"SecureFedAvg(threshold={self.threshold!r}): give the share of clients needed, in (0, 1]")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"SecureFedAvg(dropout={self.dropout!r}): give a probability in [0, 1)")

    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        self._round += 1
        if not results:
            raise ValueError("SecureFedAvg needs at least one (params, num_examples) result")
        keys = list(results[0][0])
        rows = []
        for params, n in results:
            update = torch.cat([(params[k].double() - global_params[k].double()).flatten() for k in keys])
            rows.append(torch.cat([update * int(n), torch.tensor([float(n)], dtype=torch.float64)]))
        bound = float(torch.stack(rows).abs().sum(0).max()) * self.scale
        if bound >= 2**31:
            raise EncodingOverflow(
                f"the weighted updates could sum to {bound / self.scale:.4g}, beyond the fixed-point "
                f"limit {2**31 / self.scale:.4g} of scale {self.scale}: lower the scale, or clip the "
                "updates (ClippedUpdates) before secure aggregation"
            )
        inputs = [encode(r, self.scale) for r in rows]
        n = len(inputs)
        draws = np.random.default_rng([self.seed, self._round]).random(n)
        dropped = [k for k in range(n) if draws[k] < self.dropout]
        t = max(1, math.ceil(self.threshold * n))
        try:
            run = secure_sum(inputs, threshold=t, dropped=dropped, seed=self.seed * MODULUS + self._round)
        except TooManyDropouts as err:
            self.failures.append((self._round, str(err)))
            self.masked_seen, self.survivors = [], ()
            return {k: v.detach().clone() for k, v in global_params.items()}
        self.masked_seen, self.survivors = list(run.masked.values()), run.survivors
        total = decode(run.total, self.scale)
        count = float(total[-1])
        new = {k: v.detach().clone() for k, v in global_params.items()}
        start = 0
        for k in keys:
            size = global_params[k].numel()
            mean = (total[start : start + size] / count).view(global_params[k].shape)
            value = global_params[k].double() + mean
            new[k] = (value if global_params[k].is_floating_point() else value.round()).to(global_params[k].dtype)
            start += size
        return new

    def summary(self) -> str:
        return f"SecureFedAvg(t={self.threshold:.2g}n, dropout={self.dropout:g})"
