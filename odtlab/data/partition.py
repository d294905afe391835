"""Split a data set among clients, for federated learning.

Real devices do not hold a fair sample of the data: one phone sees mostly
cats, another mostly dogs. :func:`partition` simulates this on any labelled
data set, :func:`split_by_user` splits by the user who produced each item,
and :func:`label_skew` measures how uneven a partition is.

Schemes of :func:`partition`:

``"iid"``
    Shuffle, then deal out equal shares (sizes differ by at most one).
``"dirichlet"``
    Label skew after Hsu, Qi and Brown (2019), "Measuring the effects of
    non-identical data distribution for federated visual classification":
    for every class, the share each client gets is drawn from a symmetric
    Dirichlet distribution with concentration ``alpha``. Small ``alpha``
    (0.1) gives each client a few dominant classes; large ``alpha`` (100)
    is close to iid.
``"shards"``
    McMahan et al. (2017), "Communication-efficient learning of deep
    networks from decentralized data": sort by label, cut into
    ``n_clients * shards_per_client`` shards, give each client
    ``shards_per_client`` of them at random; so each client sees about that
    many classes.

Examples
--------
>>> from odtlab.data import SyntheticShapes
>>> ds = SyntheticShapes(100, resolution=8)
>>> parts = partition(ds, 4, scheme="dirichlet", alpha=0.5, seed=0)
>>> sorted(i for p in parts for i in p) == list(range(100))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from odtlab.data._checks import check_choice, check_float, check_int
from odtlab.data.errors import InvalidDataArgument
from odtlab.data.tools import labels_of

__all__ = ["partition", "split_by_user", "label_skew", "SCHEMES"]

SCHEMES = ("iid", "dirichlet", "shards")
_MAX_TRIES = 1000


def _dirichlet(
    labels: np.ndarray, n_clients: int, alpha: float, min_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    classes = np.unique(labels)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    for _ in range(_MAX_TRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for members in by_class:
            shares = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).round().astype(int)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].append(chunk)
        out = [np.concatenate(p) for p in parts]
        if min(len(p) for p in out) >= min_size:
            return out
    raise InvalidDataArgument(
        f"Could not give every one of {n_clients} clients at least min_size={min_size} items with "
        f"alpha={alpha} in {_MAX_TRIES} tries. Use a larger alpha, fewer clients or min_size=0."
    )


def partition(
    data: Dataset | Tensor | np.ndarray | Sequence[int],
    n_clients: int,
    *,
    scheme: str = "iid",
    alpha: float = 0.5,
    seed: int = 0,
    min_size: int = 1,
    shards_per_client: int = 2,
) -> list[list[int]]:
    """Split the indices of a data set among ``n_clients`` clients.

    Parameters
    ----------
    data : Dataset, or its labels (tensor, array or list of int)
        The items to split; labels are needed for ``"dirichlet"`` and ``"shards"``.
    n_clients : int
        Number of clients (>= 1, at most the number of items).
    scheme : {"iid", "dirichlet", "shards"}
        How to split; see the module notes.
    alpha : float
        Dirichlet concentration (> 0); smaller is more skewed.
    seed : int
        Same seed, same partition.
    min_size : int
        ``"dirichlet"`` redraws until every client has at least this many
        items (>= 0).
    shards_per_client : int
        Shards per client for ``"shards"`` (>= 1).

    Returns
    -------
    list of list of int
        ``parts[k]`` holds client ``k``'s indices, sorted. Every index
        appears in exactly one client. Use ``torch.utils.data.Subset(data,
        parts[k])`` to get client ``k``'s data set.

    Examples
    --------
    >>> [len(p) for p in partition(list(range(10)), 3)]
    [4, 3, 3]
    """
    n_clients = check_int("n_clients", n_clients, minimum=1)
    scheme = check_choice("scheme", scheme, SCHEMES)
    seed = check_int("seed", seed, minimum=0)
    alpha = check_float("alpha", alpha, low=0.0, low_open=True)
    min_size = check_int("min_size", min_size, minimum=0)
    shards_per_client = check_int("shards_per_client", shards_per_client, minimum=1)
    labels = labels_of(data).numpy()
    n = len(labels)
    if n_clients > n:
        raise InvalidDataArgument(
            f"n_clients={n_clients} exceeds the {n} items to share; use at most {n}."
        )
    if scheme == "dirichlet" and min_size * n_clients > n:
        raise InvalidDataArgument(
            f"min_size={min_size} for {n_clients} clients needs {min_size * n_clients} items, "
            f"but there are only {n}; lower min_size or n_clients."
        )
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        parts = np.array_split(rng.permutation(n), n_clients)
    elif scheme == "dirichlet":
        parts = _dirichlet(labels, n_clients, alpha, min_size, rng)
    else:
        n_shards = n_clients * shards_per_client
        if n_shards > n:
            raise InvalidDataArgument(
                f"{n_clients} clients x shards_per_client={shards_per_client} = {n_shards} shards "
                f"exceed the {n} items; lower shards_per_client."
            )
        order = np.argsort(labels, kind="stable")
        shards = np.array_split(order, n_shards)
        deal = rng.permutation(n_shards).reshape(n_clients, shards_per_client)
        parts = [np.concatenate([shards[s] for s in row]) for row in deal]
    return [sorted(int(i) for i in p) for p in parts]


def split_by_user(data: Dataset) -> dict[int, list[int]]:
    """Indices of each user's items, for data sets that record users (``SensorActivity``).

    Returns
    -------
    dict of int to list of int
        ``{user: sorted indices}``, users in increasing order.

    Examples
    --------
    >>> from odtlab.data import SensorActivity
    >>> ds = SensorActivity(6, user=[3, 5])
    >>> split_by_user(ds)
    {3: [0, 2, 4], 5: [1, 3, 5]}
    """
    base, index = data, None
    while isinstance(base, Subset):
        inner = torch.as_tensor(list(base.indices), dtype=torch.int64)
        index = inner if index is None else inner[index]
        base = base.dataset
    users = getattr(base, "users", None)
    if users is None:
        raise InvalidDataArgument(
            f"{type(base).__name__} does not record users. Build it with users, e.g. "
            "SensorActivity(n, user=[0, 1, 2]), or split it with partition(data, n_clients, ...)."
        )
    users = torch.as_tensor(users)
    if index is not None:
        users = users[index]
    return {int(u): torch.nonzero(users == u).flatten().tolist() for u in torch.unique(users)}


def label_skew(
    data: Dataset | Tensor | np.ndarray | Sequence[int], parts: Sequence[Sequence[int]]
) -> float:
    """How uneven a partition's labels are: 0 for identical class mixes, near 1 for one class each.

    The mean, over clients, of the total variation distance between the
    client's class distribution and that of the whole data set, weighted
    by client size: ``sum_k n_k/n * 0.5 * sum_c |p_k(c) - p(c)|``.

    Examples
    --------
    >>> label_skew([0, 0, 1, 1], [[0, 2], [1, 3]])
    0.0
    >>> label_skew([0, 0, 1, 1], [[0, 1], [2, 3]])
    0.5
    """
    labels = labels_of(data)
    k = int(labels.max()) + 1 if labels.numel() else 1
    overall = torch.bincount(labels, minlength=k).double()
    overall /= overall.sum()
    total = sum(len(p) for p in parts)
    skew = 0.0
    for p in parts:
        if len(p) == 0:
            continue
        counts = torch.bincount(
            labels[torch.as_tensor(list(p), dtype=torch.int64)], minlength=k
        ).double()
        skew += len(p) / total * 0.5 * float((counts / counts.sum() - overall).abs().sum())
    return skew
