"""Both accountings side by side: what PyTorch stores vs what an optimised engine stores."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from odtlab.memory._setup import ACCOUNTINGS, LossFn, TrainableSpec
from odtlab.memory.optimizer_state import OptimizerSpec
from odtlab.memory.report import TrainingMemoryReport
from odtlab.memory.training import profile_training
from odtlab.memory.units import format_bytes

__all__ = ["AccountingComparison", "compare_accountings"]


@dataclass
class AccountingComparison:
    """The same training step under both accountings, side by side."""

    pytorch: TrainingMemoryReport
    engine: TrainingMemoryReport

    def savings(self) -> dict[str, float]:
        """``pytorch / engine`` per category (how many times less the engine needs)."""
        out = {}
        for k, mine in self.pytorch.totals.items():
            theirs = self.engine.totals[k]
            out[k] = mine / theirs if theirs else (1.0 if mine == 0 else math.inf)
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One row per category: pytorch bytes, engine bytes, ratio."""
        ratio = self.savings()
        return [
            {"category": k, "pytorch": self.pytorch.totals[k], "engine": self.engine.totals[k],
             "pytorch/engine": ratio[k]}
            for k in self.pytorch.totals
        ]  # fmt: skip

    def __str__(self) -> str:
        lines = [f"{'category':<12} {'pytorch':>12} {'engine':>12} {'pytorch/engine':>15}"]
        for row in self.to_records():
            lines.append(
                f"{row['category']:<12} {format_bytes(row['pytorch']):>12} "
                f"{format_bytes(row['engine']):>12} {row['pytorch/engine']:>14.1f}x"
            )
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        """Stacked bars of both accountings."""
        return self.pytorch.plot_breakdown(ax, compare=[self.engine], labels=["pytorch", "engine"])


def compare_accountings(
    model: nn.Module,
    example_batch: tuple[Any, torch.Tensor],
    loss_fn: LossFn | None = None,
    optimizer: OptimizerSpec = "sgd",
    trainable: TrainableSpec | Iterable[str] = None,
    *,
    method: str = "measured",
) -> AccountingComparison:
    """Profile one training step under ``"pytorch"`` and ``"engine"`` accounting.

    Examples
    --------
    >>> from odtlab import models
    >>> model = models.build("mobilenetv2", width_mult=0.35, num_classes=10, device="meta")
    >>> batch = models.example_batch("mobilenetv2", 8, resolution=96, device="meta")
    >>> cmp = compare_accountings(model, batch, trainable=["classifier"], method="analytic")
    >>> cmp.engine.totals["activations"] < cmp.pytorch.totals["activations"]
    True
    """
    reports = {
        acc: profile_training(
            model,
            example_batch,
            loss_fn,
            optimizer,
            trainable,
            accounting=acc,
            method=method,
            flops=False,
        )  # fmt: skip
        for acc in ACCOUNTINGS
    }
    return AccountingComparison(reports["pytorch"], reports["engine"])
