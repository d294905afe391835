"""How good is a prediction of right and wrong answers? AUC and calibration, as pure functions.

* **AUC** (area under the ROC curve): the chance that a randomly chosen
  right answer got a higher predicted probability than a randomly chosen
  wrong one (ties count a half). 0.5 is guessing, 1 is perfect. It only
  looks at the *order* of the predictions, so it says whether the tutor
  can tell which questions a student will miss.
* **Expected calibration error** (ECE): sort predictions into equal-width
  bins, and average over bins, weighted by their size, the gap between the
  mean prediction and the share of right answers. A tutor that says "80 %"
  should be right 80 % of the time; AUC cannot see that, ECE can.

Examples
--------
>>> import numpy as np
>>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
0.75
>>> round(calibration_error(np.array([0.9, 0.9, 0.1, 0.1]), np.array([1, 1, 0, 0])), 3)
0.1
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

__all__ = ["auc", "calibration_error", "reliability", "predict_right"]


def _arrays(p: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(p, dtype=float).ravel(), np.asarray(y).ravel()
    if p.shape != y.shape:
        raise ValueError(f"predictions ({p.shape[0]}) and answers ({y.shape[0]}) differ in length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("answers must be 0 (wrong) or 1 (right)")
    if ((p < 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError("predictions must be probabilities in [0, 1]; apply a softmax first")
    return p, y.astype(int)


def auc(p: Any, y: Any) -> float:
    """Area under the ROC curve of predictions ``p`` for answers ``y`` (0/1).

    Computed from ranks (the Mann-Whitney U statistic): ``(sum of the ranks
    of the right answers - n1 (n1 + 1) / 2) / (n1 n0)``, ties averaged.
    Returns ``nan`` when ``y`` holds only one kind of answer (AUC is then
    undefined: a student who got everything right cannot be ranked).
    """
    p, y = _arrays(p, y)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def reliability(p: Any, y: Any, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin of predicted probability: mean prediction, share right, number of answers.

    Bins are ``[0, 1/bins), ..., [1 - 1/bins, 1]``; empty bins give ``nan``.
    """
    p, y = _arrays(p, y)
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    which = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=bins) / count
        share = np.bincount(which, weights=y, minlength=bins) / count
    return mean_p, share, count


def calibration_error(p: Any, y: Any, bins: int = 10) -> float:
    """Expected calibration error: the size-weighted mean of ``|mean prediction - share right|`` over bins."""
    mean_p, share, count = reliability(p, y, bins)
    keep = count > 0
    return float(np.sum(count[keep] * np.abs(mean_p[keep] - share[keep])) / count.sum())


def predict_right(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The model's probability of a right answer for each row of ``x`` (eval mode, no gradients)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x).softmax(-1)[:, 1].double().numpy()
    finally:
        model.train(was)
