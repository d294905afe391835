"""The results of a contribution analysis: :class:`Contribution`, :class:`ContributionTable`.

Plain data to read, print and plot, plus :class:`MemoryMeter`, which measures
and caches the memory of sparse-update schemes for the analysis and the search.

Examples
--------
A table written by hand (the gains are accuracy points, here +4 and +3):

>>> table = ContributionTable.by_hand({0: 0.0, 4: 0.04}, {(10, 0.5): 0.03})
>>> [(c.name, round(c.gain, 2)) for c in table.contributions]
[('classifier only', 0.0), ('bias of last 4', 0.04), ('conv 10 at 50%', 0.03)]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from odtlab.devices import DeviceProfile, format_bytes, verdict
from odtlab.errors import InvalidRecipe
from odtlab.recipes import SGD, Full, OptimizerPart, Recipe, SparseUpdate, fold_batchnorm
from odtlab.train.profile import profile
from odtlab.viz import plot_contributions

__all__ = ["Contribution", "ContributionTable", "MemoryMeter", "SchemeKey", "scheme_key"]

#: A scheme as a hashable key: ``(bias_layers, ((conv index, ratio), ...))``, sorted.
SchemeKey = tuple[int, tuple[tuple[int, float], ...]]


def scheme_key(bias_layers: int, weights: Mapping[int, float]) -> SchemeKey:
    """The cache key of ``SparseUpdate(bias_layers, weights)``; ratios of 0 are dropped."""
    return bias_layers, tuple(sorted((int(i), float(r)) for i, r in weights.items() if r > 0))


@dataclass(frozen=True)
class Contribution:
    """One measured candidate of a contribution analysis.

    Attributes
    ----------
    kind : {"bias", "weight"}
    bias_layers : int
        ``k``: biases of the last ``k`` convolutions are trained (for a
        weight row: the reference setting it was trained on top of).
    layer : int or None
        Weight rows: the conv index ``i`` whose weight is trained.
    ratio : float
        Weight rows: the update ratio ``r``, a fraction of input channels; 0 for bias rows.
    accuracy : float
        Validation accuracy after fine-tuning, in [0, 1].
    gain : float
        Accuracy minus the reference's (bias rows: classifier only; weight
        rows: the reference bias setting), in [-1, 1]; 0.03 is 3 points.
    peak_bytes : int
        Measured engine-accounting peak of one training step of this scheme alone, bytes.
    extra_bytes : int
        ``peak_bytes`` minus the reference's peak, bytes.
    layer_name : str
        Weight rows: the conv's module name.
    """

    kind: str
    bias_layers: int
    layer: int | None
    ratio: float
    accuracy: float
    gain: float
    peak_bytes: int
    extra_bytes: int
    layer_name: str = ""

    @property
    def name(self) -> str:
        """``"classifier only"``, ``"bias of last 4"`` or ``"conv 48 at 25%"``."""
        if self.kind == "bias":
            return (
                "classifier only" if self.bias_layers == 0 else f"bias of last {self.bias_layers}"
            )
        return f"conv {self.layer} at {100 * self.ratio:g}%"

    def scheme(self, fold_bn: bool = True) -> SparseUpdate:
        """The :class:`~odtlab.recipes.SparseUpdate` this row trained."""
        weights = {} if self.layer is None else {self.layer: self.ratio}
        return SparseUpdate(bias_layers=self.bias_layers, weights=weights, fold_bn=fold_bn)


class MemoryMeter:
    """Measure the engine-accounting peak of sparse-update schemes, each once (cached).

    Parameters
    ----------
    model : nn.Module
        Copied to ``device``: ``"cpu"`` is quickest for the course's small
        models; ``"meta"`` (shapes only, nothing allocated) suits big ones.
    example_batch : (inputs, targets)
        The batch of the measured training step.
    optimizer : OptimizerPart
        The optimizer, whose state counts in the peak.
    fold_bn : bool
        Passed to :class:`~odtlab.recipes.SparseUpdate`.
    device : str or torch.device
    """

    def __init__(
        self,
        model: nn.Module,
        example_batch: tuple[torch.Tensor, torch.Tensor],
        optimizer: OptimizerPart | None = None,
        *,
        fold_bn: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        self.model = copy.deepcopy(model).eval()
        if fold_bn:  # every scheme folds the same way: once here, not once per scheme
            fold_batchnorm(self.model)
        self.model = self.model.to(device)
        self.example_batch = (example_batch[0].to(device), example_batch[1].to(device))
        self.optimizer = optimizer if optimizer is not None else SGD()
        self.fold_bn = fold_bn
        self.cache: dict[SchemeKey, int] = {}
        self.totals: dict[SchemeKey, dict[str, int]] = {}
        self.frozen: dict[SchemeKey, int] = {}

    def scheme(self, bias_layers: int, weights: Mapping[int, float]) -> SparseUpdate:
        """The :class:`~odtlab.recipes.SparseUpdate` for ``bias_layers`` and ``weights``."""
        _, items = scheme_key(bias_layers, weights)
        return SparseUpdate(bias_layers=bias_layers, weights=dict(items), fold_bn=self.fold_bn)

    def peak(self, bias_layers: int, weights: Mapping[int, float]) -> int:
        """Peak bytes of one training step with ``SparseUpdate(bias_layers, weights)``."""
        key = scheme_key(bias_layers, weights)
        if key not in self.cache:
            recipe = Recipe(self.scheme(bias_layers, weights), self.optimizer)
            report = profile(self.model, self.example_batch, recipe, accounting="engine", flops=False)
            self.record(key, {k: int(v) for k, v in report.totals.items()}, int(report.frozen_weight_bytes))
        return self.cache[key]

    def record(self, key: SchemeKey, totals: dict[str, int], frozen_bytes: int) -> None:
        """Store a measurement of scheme ``key`` (made here, or by a worker process)."""
        self.totals[key], self.frozen[key], self.cache[key] = totals, frozen_bytes, totals["peak"]

    def need(
        self, bias_layers: int, weights: Mapping[int, float], device: DeviceProfile | str
    ) -> int:
        """Bytes the scheme needs from ``device``'s training budget.

        The peak, less the frozen int8 weights when ``device`` is a
        microcontroller, which reads them from flash (see
        :func:`odtlab.devices.check_fit`).
        """
        self.peak(bias_layers, weights)
        key = scheme_key(bias_layers, weights)
        job = SimpleNamespace(totals=self.totals[key], frozen_weight_bytes=self.frozen[key])
        return int(verdict(job, device).peak_bytes)

    def full_peak(self) -> int:
        """Peak bytes of full update (every parameter) of the same graph, BN folded if ``fold_bn``."""
        net = fold_batchnorm(copy.deepcopy(self.model)) if self.fold_bn else self.model
        report = profile(
            net, self.example_batch, Recipe(Full(), self.optimizer), accounting="engine", flops=False
        )
        return int(report.totals["peak"])


@dataclass(frozen=True)
class ContributionTable:
    """The contributions of a :func:`~odtlab.recipes.contribution_analysis`, to read or search.

    Attributes
    ----------
    contributions : tuple of Contribution
        Bias rows (``k = 0`` first, the classifier-only baseline) then weight rows.
    baseline_accuracy : float
        Validation accuracy of classifier-only fine-tuning, in [0, 1].
    zero_shot_accuracy : float or None
        Validation accuracy of the model before any fine-tuning.
    reference_bias_layers : int
        ``k_ref``, the bias setting the weight rows were trained on top of.
    steps, seed : int
        Training steps per candidate and the seed.
    seconds : float
        Wall-clock time of the analysis, in seconds.
    meter : MemoryMeter or None
        What measured the peaks; the search measures combined schemes with it.
    """

    contributions: tuple[Contribution, ...]
    baseline_accuracy: float = 0.0
    zero_shot_accuracy: float | None = None
    reference_bias_layers: int = 0
    steps: int = 0
    seed: int = 0
    seconds: float = 0.0
    meter: MemoryMeter | None = field(default=None, repr=False, compare=False)

    @classmethod
    def by_hand(
        cls, bias_gains: Mapping[int, float], weight_gains: Mapping[tuple[int, float], float]
    ) -> ContributionTable:
        """A table from gains alone (no accuracy, no memory), for exercises and tests.

        ``bias_gains`` maps ``k`` to ``dAcc_b[k]``; ``weight_gains`` maps
        ``(conv index, ratio)`` to ``dAcc_W[i, r]``. Search it with a
        ``memory_fn``, as there is no model to measure.
        """
        if 0 not in bias_gains:
            bias_gains = {0: 0.0, **bias_gains}
        nan = float("nan")  # no accuracy measured
        rows = [
            Contribution("bias", k, None, 0.0, nan, g, 0, 0) for k, g in sorted(bias_gains.items())
        ]
        rows += [
            Contribution("weight", 0, i, float(r), nan, g, 0, 0)
            for (i, r), g in sorted(weight_gains.items())
        ]
        return cls(tuple(rows), baseline_accuracy=nan)

    @property
    def measured(self) -> bool:
        """Whether accuracies were measured (``False`` for a table made :meth:`by_hand`)."""
        return not math.isnan(self.baseline_accuracy)

    @property
    def bias(self) -> tuple[Contribution, ...]:
        """The bias rows, ``k`` ascending."""
        return tuple(c for c in self.contributions if c.kind == "bias")

    @property
    def weight(self) -> tuple[Contribution, ...]:
        """The weight rows, by layer then ratio."""
        return tuple(c for c in self.contributions if c.kind == "weight")

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per row: name, kind, bias_layers, layer, ratio, accuracy, gain, bytes."""
        return [
            {
                "name": c.name,
                "kind": c.kind,
                "bias_layers": c.bias_layers,
                "layer": c.layer,
                "layer_name": c.layer_name,
                "ratio": c.ratio,
                "accuracy": c.accuracy,
                "gain": c.gain,
                "peak_bytes": c.peak_bytes,
                "extra_bytes": c.extra_bytes,
            }
            for c in self.contributions
        ]

    def to_dataframe(self) -> Any:
        """The rows of :meth:`to_records` as a ``pandas.DataFrame``."""
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - pandas is in the lab extras
            raise ImportError(
                "to_dataframe() needs pandas: pip install pandas; "
                "to_records() gives the same rows as dicts"
            ) from err
        return pd.DataFrame(self.to_records())

    def table(self) -> str:
        """A text table: candidate, accuracy, gain in points, peak and extra memory."""
        lines = [f"{'candidate':<20} {'accuracy':>9} {'gain':>8} {'peak':>11} {'extra':>11}"]
        for c in self.contributions:
            accuracy = "-" if math.isnan(c.accuracy) else f"{c.accuracy:.1%}"
            peak, extra = (
                (format_bytes(c.peak_bytes), format_bytes(c.extra_bytes))
                if c.peak_bytes
                else ("-", "-")
            )
            lines.append(
                f"{c.name:<20} {accuracy:>9} {100 * c.gain:>+7.1f}p {peak:>11} {extra:>11}"
            )
        if not self.measured:
            return "gains given by hand (accuracy points)\n" + "\n".join(lines)
        head = []
        if self.zero_shot_accuracy is not None:
            head.append(f"zero-shot accuracy {self.zero_shot_accuracy:.1%}; ")
        head.append(
            f"classifier-only baseline {self.baseline_accuracy:.1%}; weight rows on top "
            f"of the bias of the last {self.reference_bias_layers} layers"
        )
        if self.steps:
            head.append(
                f"; {self.steps} steps per candidate, seed {self.seed}, {self.seconds:.1f} s"
            )
        return "".join(head) + "\n" + "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, ax: Any = None) -> Any:
        """Scatter of gain (accuracy points) against extra memory (KiB), one marker per row.

        See :func:`odtlab.viz.plot_contributions`.
        """
        return plot_contributions(self, ax)


def check_table(table: object) -> ContributionTable:
    """Return ``table`` if it is a non-empty :class:`ContributionTable`, else say what to pass."""
    if not isinstance(table, ContributionTable):
        raise InvalidRecipe(
            f"expected a ContributionTable from contribution_analysis(...) or "
            f"ContributionTable.by_hand(...); got {type(table).__name__}"
        )
    if not any(c.bias_layers == 0 for c in table.bias):
        raise InvalidRecipe(
            "the contribution table has no 'classifier only' row (a bias row with "
            "bias_layers=0), the baseline every gain is measured against; add one"
        )
    return table
