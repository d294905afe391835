"""Continual-learning metrics: pure functions of the accuracy matrix ``R``.

One data structure, everything derived. ``R[i, j]`` is the test accuracy
on experience ``j`` after training through experience ``i`` (a ``T x T``
matrix, in [0, 1]); ``b[j]`` is the accuracy on experience ``j`` of the
model before any training (its random initialisation). The code that fills
``R`` (:func:`odtlab.cl.run_stream`) is kept apart from these functions,
so each can be checked on a matrix written by hand.

Definitions follow Lopez-Paz and Ranzato, "Gradient Episodic Memory for
Continual Learning", NeurIPS 2017 (ACC, BWT, FWT), and Chaudhry, Dokania,
Ajanthan and Torr, "Riemannian Walk for Incremental Learning", ECCV 2018
(forgetting). Chapter 8 derives them.

Which forgetting? Two versions are in use:

* **max-minus-last** (Chaudhry et al. 2018, and :func:`forgetting` here):
  how far each old experience fell from its *best* accuracy before the end;
* **first-minus-last** (Avalanche's ``forgetting`` metric): how far it fell
  from the accuracy measured *right after learning it*, ``R[j, j]``.

Only the second is exactly ``-bwt``. When an experience's accuracy keeps
rising after it was learned (positive backward transfer, common in
domain-incremental streams) the two differ.

Examples
--------
>>> R = [[0.9, 0.1, 0.2], [0.5, 0.8, 0.1], [0.4, 0.6, 0.7]]
>>> {k: round(v, 3) for k, v in metrics(R).items()}
{'acc': 0.567, 'bwt': -0.35, 'forgetting': 0.35}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from odtlab.cl.errors import InvalidStream

__all__ = [
    "metrics",
    "average_accuracy",
    "backward_transfer",
    "forward_transfer",
    "forgetting",
    "plasticity",
]

Matrix = torch.Tensor | Sequence[Sequence[float]]


def _matrix(R: Matrix) -> torch.Tensor:
    m = torch.as_tensor(R, dtype=torch.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise InvalidStream(
            f"R must be a square T x T accuracy matrix (row i: after experience i, column j: "
            f"tested on experience j); got shape {tuple(m.shape)}"
        )
    if torch.isnan(m).any():
        raise InvalidStream(
            "R holds NaN; fill every entry (evaluate on every experience after each)"
        )
    return m


def average_accuracy(R: Matrix) -> float:
    """ACC: mean accuracy over all experiences at the end, ``mean_j R[T-1, j]``.

    Examples
    --------
    >>> average_accuracy([[0.9, 0.1, 0.2], [0.5, 0.8, 0.1], [0.4, 0.6, 0.7]])
    0.5666666666666667
    """
    m = _matrix(R)
    return float(m[-1].mean())


def backward_transfer(R: Matrix) -> float:
    """BWT: how learning later experiences changed the old ones, ``mean_{j<T-1} R[T-1, j] - R[j, j]``.

    Negative means forgetting (Lopez-Paz and Ranzato 2017). It equals minus
    the *first-minus-last* forgetting (Avalanche's), not minus
    :func:`forgetting`. Zero for a single experience.

    Examples
    --------
    >>> round(backward_transfer([[0.9, 0.1, 0.2], [0.5, 0.8, 0.1], [0.4, 0.6, 0.7]]), 3)
    -0.35
    """
    m = _matrix(R)
    T = m.shape[0]
    if T == 1:
        return 0.0
    j = torch.arange(T - 1)
    return float((m[-1, j] - m[j, j]).mean())


def forward_transfer(R: Matrix, b: Sequence[float] | torch.Tensor) -> float:
    """FWT: how much earlier experiences helped a new one before it was learned.

    ``mean_{j>=1} R[j-1, j] - b[j]`` with ``b[j]`` the accuracy on
    experience ``j`` of the untrained model (Lopez-Paz and Ranzato 2017).
    In class-incremental streams it is usually about 0 or negative: a model
    never outputs classes it has not seen. Zero for a single experience.

    Examples
    --------
    >>> R = [[0.9, 0.1, 0.2], [0.5, 0.8, 0.1], [0.4, 0.6, 0.7]]
    >>> round(forward_transfer(R, b=[0.1, 0.1, 0.1]), 3)
    0.0
    """
    m = _matrix(R)
    bb = torch.as_tensor(b, dtype=torch.float64)
    if bb.shape != (m.shape[0],):
        raise InvalidStream(
            f"b must hold one accuracy per experience ({m.shape[0]}); got {tuple(bb.shape)}"
        )
    T = m.shape[0]
    if T == 1:
        return 0.0
    j = torch.arange(1, T)
    return float((m[j - 1, j] - bb[j]).mean())


def forgetting(R: Matrix) -> float:
    """Average forgetting, max-minus-last (Chaudhry et al., ECCV 2018).

    For each old experience ``j < T-1``: its best accuracy before the last
    experience, ``max_{l<T-1} R[l, j]``, minus its final accuracy
    ``R[T-1, j]``; averaged over ``j``. Zero or more when nothing improves
    at the end. The maximum runs over all earlier rows, including those
    before ``j`` was learned (where ``R[l, j]`` is usually at chance).

    Avalanche's forgetting subtracts from the *first* accuracy ``R[j, j]``
    instead of the maximum; only that version equals ``-bwt``.

    Examples
    --------
    >>> round(forgetting([[0.9, 0.1, 0.2], [0.5, 0.8, 0.1], [0.4, 0.6, 0.7]]), 3)
    0.35
    >>> round(forgetting([[0.5, 0.0], [0.7, 0.9]]), 3)     # improved: negative
    -0.2
    >>> R = [[0.6, 0.0, 0.0], [0.9, 0.8, 0.0], [0.5, 0.7, 0.9]]
    >>> round(forgetting(R), 3), round(-backward_transfer(R), 3)   # max vs first
    (0.25, 0.1)
    """
    m = _matrix(R)
    T = m.shape[0]
    if T == 1:
        return 0.0
    best = m[: T - 1, : T - 1].max(dim=0).values
    return float((best - m[-1, : T - 1]).mean())


def plasticity(R: Matrix) -> float:
    """Mean accuracy on each experience right after learning it, ``mean_j R[j, j]``.

    How well the learner still takes in new data (a stiff penalty lowers
    it); plotted against ``1 - forgetting`` by
    :func:`odtlab.viz.plot_stability_plasticity`.

    Examples
    --------
    >>> round(plasticity([[0.9, 0.1, 0.2], [0.5, 0.8, 0.1], [0.4, 0.6, 0.7]]), 3)
    0.8
    """
    m = _matrix(R)
    return float(torch.diagonal(m).mean())


def metrics(R: Matrix, b: Sequence[float] | torch.Tensor | None = None) -> dict[str, float]:
    """Every metric of the accuracy matrix: ``acc``, ``bwt``, ``forgetting`` and, with ``b``, ``fwt``.

    Parameters
    ----------
    R : (T, T) array-like
        ``R[i, j]``: accuracy on experience ``j`` after training through ``i``.
    b : (T,) array-like, optional
        Accuracy of the untrained model on each experience; needed for ``fwt``.

    Returns
    -------
    dict of str to float
        ``acc`` (:func:`average_accuracy`), ``bwt`` (:func:`backward_transfer`),
        ``forgetting`` (:func:`forgetting`, max-minus-last) and ``fwt``
        (:func:`forward_transfer`) when ``b`` is given.

    Examples
    --------
    >>> R = [[0.9, 0.1, 0.2], [0.5, 0.8, 0.1], [0.4, 0.6, 0.7]]
    >>> {k: round(v, 3) for k, v in metrics(R, b=[0.1, 0.1, 0.1]).items()}
    {'acc': 0.567, 'bwt': -0.35, 'forgetting': 0.35, 'fwt': 0.0}
    """
    out = {"acc": average_accuracy(R), "bwt": backward_transfer(R), "forgetting": forgetting(R)}
    if b is not None:
        out["fwt"] = forward_transfer(R, b)
    return out
