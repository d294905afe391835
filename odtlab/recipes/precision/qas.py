"""Measure the gradient-scale mismatch that QAS fixes: ``||W|| / ||G||`` per layer.

The 256 KB paper (Lin et al., NeurIPS 2022, Section 2.1) diagnoses int8
training by the ratio of each weight's norm to its gradient's norm: SGD moves
a weight by ``lr * ||G||``, so ``||W|| / ||G||`` says how many steps it takes
to change the weight by its own size. The int8 graph's ratio is ``s**-2``
times the fp32 graph's (``s`` the weight scale, see
:mod:`odtlab.recipes.precision.int8`); with QAS it is the fp32 ratio again.
:func:`weight_gradient_ratios` measures one model;
:func:`~odtlab.recipes.precision.int8.qas_gradient_scale_report` compares fp32,
int8 and int8+QAS copies of one model in a :class:`QASReport`.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from odtlab.recipes.activations.microbatch import LossFn, default_loss

__all__ = ["weight_gradient_ratios", "QASReport"]


def weight_gradient_ratios(
    model: nn.Module, batch: tuple[Any, torch.Tensor], loss_fn: LossFn | None = None
) -> dict[str, float]:
    """``||W|| / ||G||`` of every conv and linear weight after one backward pass on ``batch``.

    On a deep copy of ``model`` in eval mode (dropout off, BatchNorm on
    running statistics, int8 activation statistics frozen, or gathered from
    this batch if there are none yet), with every weight trainable. For an
    int8 layer ``W`` is the trained ``W̄`` (integer units) and ``G`` its
    ``.grad`` as the optimizer would see it, after QAS when QAS is on. Both
    norms are Frobenius norms over the whole tensor; the ratio has no unit.

    Returns
    -------
    dict
        Layer name -> ratio, in the model's module order (layers that got
        no gradient are left out).
    """
    net = copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    inputs, targets = batch
    loss = (loss_fn or default_loss)(net(inputs), targets)
    loss.backward()
    ratios = {}
    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None:
            grad = float(m.weight.grad.norm())
            ratios[name] = float(m.weight.detach().norm()) / grad if grad > 0 else float("inf")
    return ratios


@dataclass(frozen=True)
class QASReport:
    """``||W|| / ||G||`` per layer: fp32 (BatchNorm folded), int8 without and with QAS.

    ``without_qas`` and ``with_qas`` are divided by ``fp32`` layer by layer
    in :meth:`relative`; the paper's claim is that the first is far from 1
    (by ``s**-2``) and the second close to 1.
    """

    layers: tuple[str, ...]
    fp32: tuple[float, ...]
    without_qas: tuple[float, ...]
    with_qas: tuple[float, ...]

    def relative(self, which: str) -> list[float]:
        """Per-layer ratio ``int8 / fp32`` for ``which`` in ``{"without_qas", "with_qas"}``."""
        values = getattr(self, which)
        return [q / f for q, f in zip(values, self.fp32, strict=True)]

    @property
    def median_without_qas(self) -> float:
        """Median over layers of (int8 ratio without QAS) / (fp32 ratio): about ``s**-2``."""
        return statistics.median(self.relative("without_qas"))

    @property
    def median_with_qas(self) -> float:
        """Median over layers of (int8 ratio with QAS) / (fp32 ratio): about 1."""
        return statistics.median(self.relative("with_qas"))

    @property
    def worst_with_qas(self) -> float:
        """The largest factor (>= 1, either direction) between a QAS ratio and its fp32 ratio."""
        return max(max(r, 1 / r) for r in self.relative("with_qas"))

    def __str__(self) -> str:
        lines = [f"{'layer':<34} {'fp32':>10} {'int8':>10} {'int8+QAS':>10}"]
        for row in zip(self.layers, self.fp32, self.without_qas, self.with_qas, strict=True):
            lines.append(f"{row[0]:<34} {row[1]:>10.3g} {row[2]:>10.3g} {row[3]:>10.3g}")
        lines.append(
            f"median int8/fp32: {self.median_without_qas:.3g}x without QAS, "
            f"{self.median_with_qas:.3g}x with QAS (worst layer {self.worst_with_qas:.2f}x)"
        )
        return "\n".join(lines)
