"""Robust aggregation: server rules that a few poisoned updates cannot drag far.

FedAvg's mean moves as far as one client wants: a single update scaled by
1000 moves the mean by 1000 / n. The rules here bound what ``f`` malicious
clients out of ``n`` can do, each with the same ``aggregate(global_params,
results)`` contract as :class:`~odtlab.fl.FedAvg`, so they run in
:func:`~odtlab.fl.run_federation` and its vectorized engine unchanged.

=====================  =====================================================
``FedMedian``          coordinate-wise median (Yin et al., ICML 2018)
``FedTrimmedAvg(b)``   per coordinate, drop the ``int(b n)`` largest and
                       smallest values, average the rest (Yin et al., 2018)
``Krum(f, k)``         the update closest to its ``n - f - 2`` nearest
                       neighbours (Blanchard et al., NeurIPS 2017);
                       ``k > 0``: the example-weighted mean of the ``k`` best
                       (multi-Krum), Flower's meaning of ``to_keep``
``ClippedUpdates``     clip each update ``w_k - w_global`` to L2 norm ``C``,
                       then any strategy (norm bounding, Sun et al. 2019)
=====================  =====================================================

Median, trimmed mean and Krum ignore ``num_examples`` (except multi-Krum's
final mean), as Flower's ``aggregate_median``, ``aggregate_trimmed_avg``
and ``aggregate_krum`` do; the tests hold each equal to Flower's function.

Examples
--------
>>> import torch
>>> g = {"w": torch.zeros(2)}
>>> results = [({"w": torch.tensor([1.0, 1.0])}, 1), ({"w": torch.tensor([2.0, 2.0])}, 1),
...            ({"w": torch.tensor([100.0, -100.0])}, 1)]
>>> FedMedian().aggregate(g, results)["w"]
tensor([2., 1.])
>>> Krum(num_malicious=1).aggregate(g, results)["w"]
tensor([1., 1.])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from odtlab.fl.aggregate import Params, Result, apply_to_global, weighted_mean
from odtlab.fl.strategies import FedAvg, Strategy

__all__ = [
    "coordinate_median",
    "trimmed_mean",
    "krum_scores",
    "krum_select",
    "clip_update",
    "update_norm",
    "FedMedian",
    "FedTrimmedAvg",
    "Krum",
    "ClippedUpdates",
]


def _stack(results: Sequence[Result], key: str) -> torch.Tensor:
    return torch.stack([params[key] for params, _ in results]).detach().to("cpu", torch.float64)


def _check(results: Sequence[Result], owner: str) -> None:
    if not results:
        raise ValueError(f"{owner} needs at least one (params, num_examples) result")
    keys = set(results[0][0])
    for params, _ in results[1:]:
        if set(params) != keys:
            raise ValueError(f"{owner}: results hold different parameters; clients of one round must train the same ones")


def coordinate_median(results: Sequence[Result]) -> Params:
    """The coordinate-wise median of the clients' tensors (``num_examples`` is ignored).

    With an even number of clients the median of a coordinate is the mean of
    its two middle values (NumPy's rule, which Flower uses).

    Examples
    --------
    >>> r = [({"w": torch.tensor([0.0, 5.0])}, 1), ({"w": torch.tensor([1.0, 7.0])}, 9),
    ...      ({"w": torch.tensor([9.0, 6.0])}, 1), ({"w": torch.tensor([3.0, 0.0])}, 1)]
    >>> coordinate_median(r)["w"]
    tensor([2.0000, 5.5000])
    """
    _check(results, "coordinate_median")
    return trimmed_mean(results, beta=None)


def trimmed_mean(results: Sequence[Result], beta: float | None) -> Params:
    """Per coordinate, drop the ``int(beta * n)`` smallest and largest values and average the rest.

    ``beta=None`` gives the median (keep the middle one or two values).

    Examples
    --------
    >>> r = [({"w": torch.tensor([float(v)])}, 1) for v in (0, 1, 2, 3, 100)]
    >>> trimmed_mean(r, 0.2)["w"]   # drops 0 and 100
    tensor([2.])
    """
    _check(results, "trimmed_mean")
    n = len(results)
    if beta is None:
        low, high = (n - 1) // 2, n // 2 + 1
    else:
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 0.5:
            raise ValueError(f"trimmed_mean(beta={beta!r}): give the share cut at each end, in [0, 0.5)")
        low, high = int(beta * n), n - int(beta * n)
    out: Params = {}
    for key, first in results[0][0].items():
        kept = _stack(results, key).sort(dim=0).values[low:high].mean(dim=0)
        out[key] = (kept.round() if not first.is_floating_point() else kept).to(first.dtype)
    return out


def _flat_updates(global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> torch.Tensor:
    keys = list(results[0][0])
    return torch.stack([
        torch.cat([(p[k].detach().double() - global_params[k].detach().double()).flatten() for k in keys])
        for p, _ in results
    ])  # fmt: skip


def krum_scores(global_params: Mapping[str, torch.Tensor], results: Sequence[Result], num_malicious: int) -> list[float]:
    """Krum's score of each client: the sum of squared L2 distances to its ``n - f - 2`` nearest others.

    Distances between parameters equal distances between updates, so the
    score does not depend on ``global_params`` except for the keys compared.
    Flower keeps at least one neighbour (``max(1, n - f - 2)``); so do we.
    """
    flat = _flat_updates(global_params, results)
    distances = torch.cdist(flat, flat).pow(2)
    closest = max(1, len(results) - num_malicious - 2)
    # each row sorted: the first entry is the client itself (distance 0)
    return distances.sort(dim=1).values[:, 1 : closest + 1].sum(dim=1).tolist()


def krum_select(
    global_params: Mapping[str, torch.Tensor], results: Sequence[Result], num_malicious: int, to_keep: int = 0
) -> list[int]:
    """Indices of the clients Krum keeps: the single best (``to_keep=0``) or the ``to_keep`` best."""
    scores = torch.tensor(krum_scores(global_params, results, num_malicious), dtype=torch.float64)
    order = torch.argsort(scores, stable=True).tolist()
    return order[: max(1, to_keep)]


def update_norm(global_params: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor]) -> float:
    """L2 norm of the update ``params - global_params`` over all float tensors together."""
    total = sum(float((v.detach().double() - global_params[k].detach().double()).pow(2).sum())
                for k, v in params.items() if v.is_floating_point())  # fmt: skip
    return total**0.5


def clip_update(
    global_params: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor], max_norm: float
) -> dict[str, torch.Tensor]:
    """``params`` moved so that the update ``params - global`` has L2 norm at most ``max_norm``.

    The update is scaled by ``min(1, max_norm / ||update||)`` (all float
    tensors together, one norm); integer tensors pass unchanged.

    Examples
    --------
    >>> g = {"w": torch.zeros(2)}
    >>> clip_update(g, {"w": torch.tensor([3.0, 4.0])}, 1.0)["w"]
    tensor([0.6000, 0.8000])
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not max_norm > 0:
        raise ValueError(f"clip_update(max_norm={max_norm!r}): give a positive L2 norm")
    norm = update_norm(global_params, params)
    factor = min(1.0, max_norm / norm) if norm > 0 else 1.0
    out = {}
    for k, v in params.items():
        if v.is_floating_point():
            g = global_params[k].detach().to(v.dtype)
            out[k] = g + (v.detach() - g) * factor
        else:
            out[k] = v
    return out


@dataclass
class FedMedian(Strategy):
    """The coordinate-wise median of the clients' parameters (Yin et al., ICML 2018).

    Up to half the clients can be malicious before a coordinate's median is
    theirs; the price is statistical efficiency on honest, non-IID updates.
    """

    name: str = field(default="fedmedian", init=False)

    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        return apply_to_global(global_params, coordinate_median(results))

    def summary(self) -> str:
        return "FedMedian"


@dataclass
class FedTrimmedAvg(Strategy):
    """Coordinate-wise trimmed mean: cut the ``beta`` share at each end, average the rest.

    Parameters
    ----------
    beta : float, default 0.2
        Share of clients cut at each end, in [0, 0.5); withstands up to
        ``int(beta * n)`` malicious clients per coordinate. ``beta=0`` is the
        unweighted mean.
    """

    beta: float = 0.2
    name: str = field(default="fedtrimmedavg", init=False)

    def __post_init__(self) -> None:
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not 0 <= self.beta < 0.5:
            raise ValueError(f"FedTrimmedAvg(beta={self.beta!r}): give the share cut at each end, in [0, 0.5)")

    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        return apply_to_global(global_params, trimmed_mean(results, self.beta))

    def summary(self) -> str:
        return f"FedTrimmedAvg(beta={self.beta:g})"


@dataclass
class Krum(Strategy):
    """Krum and multi-Krum (Blanchard et al., NeurIPS 2017), with Flower's parameters.

    Each client is scored by the summed squared distances to its
    ``n - num_malicious - 2`` nearest neighbours; an outlier far from the
    crowd scores high.

    Parameters
    ----------
    num_malicious : int, default 0
        ``f``, the number of malicious clients to withstand; Krum's guarantee
        needs ``n > 2 f + 2``.
    to_keep : int, default 0
        ``0``: the new model is the single best client's (Krum);
        ``k > 0``: the example-weighted mean of the ``k`` best (multi-Krum).
    """

    num_malicious: int = 0
    to_keep: int = 0
    name: str = field(default="krum", init=False)
    chosen: list[list[int]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("num_malicious", "to_keep"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Krum({name}={value!r}): give an int >= 0")

    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        _check(results, "Krum")
        if self.to_keep > len(results):
            raise ValueError(
                f"Krum(to_keep={self.to_keep}) but only {len(results)} results this round: lower "
                "to_keep or sample more clients per round"
            )
        keep = krum_select(global_params, results, self.num_malicious, self.to_keep)
        self.chosen.append(keep)  # which clients the server trusted, round by round
        picked = [results[i] for i in keep]
        if self.to_keep == 0:
            return apply_to_global(global_params, dict(picked[0][0]))
        return apply_to_global(global_params, weighted_mean(picked))

    def summary(self) -> str:
        return f"Krum(num_malicious={self.num_malicious}, to_keep={self.to_keep})"


@dataclass
class ClippedUpdates(Strategy):
    """Clip every client's update to L2 norm ``max_norm``, then aggregate with ``strategy``.

    Bounds what one scaled (model-replacement) update can do to ``max_norm *
    n_k / n`` per round; honest updates shorter than ``max_norm`` pass as they are.

    Parameters
    ----------
    max_norm : float
        ``C``, the largest L2 norm of ``w_k - w_global`` (all trained float tensors together).
    strategy : Strategy, default FedAvg()
    """

    max_norm: float = 1.0
    strategy: Strategy = field(default_factory=FedAvg)
    name: str = field(default="clipped", init=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_norm, bool) or not isinstance(self.max_norm, (int, float)) or not self.max_norm > 0:
            raise ValueError(f"ClippedUpdates(max_norm={self.max_norm!r}): give a positive L2 norm")

    def configure(self, server_round: int) -> dict:
        return self.strategy.configure(server_round)

    def aggregate(self, global_params: Mapping[str, torch.Tensor], results: Sequence[Result]) -> Params:
        clipped = [(clip_update(global_params, p, self.max_norm), n) for p, n in results]
        return self.strategy.aggregate(global_params, clipped)

    def summary(self) -> str:
        return f"Clipped({self.strategy.summary()}, max_norm={self.max_norm:g})"
