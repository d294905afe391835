"""The training memory report: totals, per-layer records, timeline, FLOPs; tables and plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from odtlab.memory.saved import SavedActivations
from odtlab.memory.timeline import Timeline
from odtlab.memory.units import BREAKDOWN_KEYS, format_bytes
from odtlab.viz import plot_breakdown, plot_timeline

__all__ = ["LayerMemory", "TrainingMemoryReport", "TOTAL_KEYS", "BREAKDOWN_KEYS"]

#: The keys of :attr:`TrainingMemoryReport.totals`.
TOTAL_KEYS = ("weights", "gradients", "optimizer", "activations", "peak")
#: The categories that add up in a breakdown plot.


@dataclass(frozen=True)
class LayerMemory:
    """Memory of one layer (a module, ``"(model)"`` for ops in the root's forward, or ``"loss"``).

    All sizes are bytes.

    Attributes
    ----------
    name, type : str
        Module path and class name.
    param_bytes : int
        The layer's own parameters and buffers (its weights).
    grad_bytes : int
        Gradients of its trainable parameters.
    optimizer_bytes : int
        Optimizer state of its parameters.
    activation_bytes : int
        Storages it was the first to keep for backward.
    trainable : bool
        Whether any of its parameters is trained.
    """

    name: str
    type: str
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    activation_bytes: int
    trainable: bool

    @property
    def total_bytes(self) -> int:
        """Sum of the four sizes."""
        return self.param_bytes + self.grad_bytes + self.optimizer_bytes + self.activation_bytes


@dataclass
class TrainingMemoryReport:
    """Memory needed to train a model on one batch, by category, by layer and over time.

    Attributes
    ----------
    totals : dict
        ``"weights"``, ``"gradients"``, ``"optimizer"``, ``"activations"`` and
        ``"peak"``, in bytes (Python ints). ``"activations"`` counts every
        storage kept for backward once, the input batch included when a
        layer keeps it; ``"peak"`` is the largest amount alive at once over
        forward, backward and the first optimizer step (batch included).
    layers : list of LayerMemory
        In execution order.
    accounting : str
        ``"pytorch"`` (what PyTorch stores) or ``"engine"`` (what a
        memory-optimised engine would store, see :mod:`odtlab.memory.engine`).
    method : str
        ``"measured"`` (autograd's hooks) or ``"analytic"`` (formulas on ``meta``).
    optimizer : str
        The optimizer's class name.
    inference_peak : int
        Peak bytes of one forward pass under ``torch.no_grad()``.
    timeline : Timeline
        Live bytes by category after each step of the training step.
    flops : dict or None
        ``"forward"``, ``"backward"``, ``"total"`` FLOPs (see
        :func:`odtlab.memory.training_flops`).
    saved : SavedActivations
        Every kept storage, with its layer and label.
    batch_bytes : int
        Bytes of the inputs and targets.
    label : str
        A short name for tables and plots.
    frozen_weight_bytes : int
        The part of ``totals["weights"]`` held by *frozen* parameters, as
        the accounting stores them (the engine: int8, 1 byte per element).
        They are read-only: a microcontroller reads them from flash
        (execute in place), so :func:`odtlab.devices.check_fit` charges them
        to flash, not to SRAM, on ``kind="mcu"`` devices, as the 256 KB
        paper does (``lin2022ondevice``).
    """

    totals: dict[str, int]
    layers: list[LayerMemory]
    accounting: str
    method: str
    optimizer: str
    inference_peak: int
    timeline: Timeline
    flops: dict[str, Any] | None
    saved: SavedActivations
    batch_bytes: int = 0
    label: str = ""
    frozen_weight_bytes: int = 0

    @property
    def peak_bytes(self) -> int:
        """The step's peak (``totals["peak"]``): the one name of the peak in every report."""
        return int(self.totals["peak"])

    @property
    def ratio(self) -> float:
        """Training peak divided by inference peak: how much more memory training needs."""
        return self.totals["peak"] / self.inference_peak if self.inference_peak else float("nan")

    def layer(self, name: str) -> LayerMemory:
        """The record of the layer called ``name``."""
        for record in self.layers:
            if record.name == name:
                return record
        raise KeyError(
            f"no layer {name!r}; layers: {', '.join(r.name for r in self.layers[:8])}..."
        )

    # ---- tables ---------------------------------------------------------------------------
    def to_records(self) -> list[dict[str, Any]]:
        """One dict per layer: name, type, trainable and the four sizes in bytes."""
        return [
            {
                "name": r.name,
                "type": r.type,
                "trainable": r.trainable,
                "param_bytes": r.param_bytes,
                "grad_bytes": r.grad_bytes,
                "optimizer_bytes": r.optimizer_bytes,
                "activation_bytes": r.activation_bytes,
            }
            for r in self.layers
        ]

    def to_dataframe(self) -> Any:
        """The per-layer records as a ``pandas.DataFrame`` (pandas is imported here)."""
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - pandas is in the book/lab extras
            raise ImportError(
                "to_dataframe() needs pandas: pip install pandas (or odtlab[lab]); "
                "to_records() gives the same rows as plain dicts"
            ) from err
        return pd.DataFrame(self.to_records())

    def __str__(self) -> str:
        t = self.totals
        head = (
            f"Training memory of {self.label or 'the model'} "
            f"[{self.accounting} accounting, {self.method}, {self.optimizer}]"
        )
        rows = [r for r in self.layers if r.total_bytes]
        width = max([len(r.name) for r in rows] + [5])
        lines = [head, ""]
        lines.append(
            f"{'layer':<{width}}  {'type':<18} {'weights':>10} {'grads':>10} "
            f"{'optimizer':>10} {'activations':>12}"
        )
        lines.append("-" * (width + 66))
        for r in rows:
            lines.append(
                f"{r.name:<{width}}  {r.type[:18]:<18} {format_bytes(r.param_bytes):>10} "
                f"{format_bytes(r.grad_bytes):>10} {format_bytes(r.optimizer_bytes):>10} "
                f"{format_bytes(r.activation_bytes):>12}"
            )
        lines.append("-" * (width + 66))
        lines.append(
            f"{'total':<{width}}  {'':<18} {format_bytes(t['weights']):>10} "
            f"{format_bytes(t['gradients']):>10} {format_bytes(t['optimizer']):>10} "
            f"{format_bytes(t['activations']):>12}"
        )
        pe = self.timeline.peak_event if self.timeline.events else None
        where = f" ({pe.phase}: {pe.label})" if pe is not None else ""
        lines.append("")
        lines.append(f"peak during the training step : {format_bytes(t['peak'])}{where}")
        lines.append(f"peak of inference (no_grad)   : {format_bytes(self.inference_peak)}")
        lines.append(f"training / inference          : {self.ratio:.2f}x")
        if self.flops:
            lines.append(
                f"FLOPs forward / backward      : {self.flops['forward']:.3e} / "
                f"{self.flops['backward']:.3e}"
            )
        if self.accounting == "engine":
            lines.append(
                "engine accounting: trained weights fp32, frozen int8; activations 8-bit, "
                "ReLU/dropout masks 1-bit (rules: odtlab.memory.engine)"
            )
        return "\n".join(lines)

    # ---- plots -------------------------------------------------------------------------------
    def plot_breakdown(
        self, ax: Any = None, *, compare: Sequence[TrainingMemoryReport] = (), labels: Any = None
    ) -> Any:
        """Stacked bar of weights, gradients, optimizer and activations.

        ``compare`` adds more reports as bars beside this one (e.g. the
        engine accounting, or another recipe). Returns the matplotlib axes.
        """
        return plot_breakdown([self, *compare], ax=ax, labels=labels)

    def plot_timeline(self, ax: Any = None) -> Any:
        """Stacked area of live bytes by category over the training step, peak marked."""
        return plot_timeline(self, ax=ax)
