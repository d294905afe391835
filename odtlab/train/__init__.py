"""odtlab.train: run a recipe on a device and get a report.

One question, one shape: ``(model, data or batch, recipe, device,
accounting=...)`` with the same defaults everywhere.

* :func:`profile` measures one step's memory (and FLOPs) without training,
  and with a device says whether it fits (chapters 1-4).
* :class:`Trainer` measures a recipe's memory, refuses early when it does not
  fit the simulated device, trains for real, evaluates, and charges the
  device (time, energy, battery, temperature) in a :class:`TrainingReport`.
* :func:`compare` runs several recipes on one task and draws the
  accuracy/memory/energy Pareto front.
* :class:`Protocol` fixes the task, optimizer, steps and seeds of a comparison
  once, and reports each recipe's mean accuracy with its seed-to-seed spread.
* :func:`save_checkpoint`, :func:`restore_checkpoint`, :func:`restore_latest`:
  power-cut-proof *saved training state* (atomic write, SHA-256, previous
  copy). Not to be confused with *activation checkpointing*
  (:class:`odtlab.recipes.Checkpointing`), which recomputes activations.
* :func:`simulate_power_loss` kills a run mid-way and checks that resuming
  gives bit-identical weights; :func:`train_in_windows` trains in short
  windows (as a scheduling policy allows) and resumes in each.

Examples
--------
>>> from odtlab import data, models, train
>>> report = train.Trainer(models.mlp(), device="stm32f746", steps=10,
...                        progress=False).fit(data.digits("train"), data.digits("test"))
>>> report.steps, report.fits
(10, True)
"""

from __future__ import annotations

from odtlab.train.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    read_checkpoint,
    restore_checkpoint,
    restore_latest,
    save_checkpoint,
)
from odtlab.train.compare import Comparison, compare
from odtlab.train.errors import PowerLoss, TrainingDiverged
from odtlab.train.evaluate import accuracy
from odtlab.train.powerloss import PowerLossResult, same_weights, simulate_power_loss
from odtlab.train.profile import RecipeMemoryReport, default_recipe, profile, profiled_recipe_peak
from odtlab.train.protocol import Protocol, ProtocolResult, cache_dir
from odtlab.train.report import TrainingReport
from odtlab.train.steptime import (
    ROOFLINE_CASES,
    OpCost,
    fit_efficiency,
    measure_op_overhead,
    measure_step_time,
    predict_step_time,
    predicted_vs_measured,
    step_costs,
)
from odtlab.train.trainer import Trainer
from odtlab.train.windows import WindowedRun, train_in_windows

__all__ = [
    "OpCost",
    "step_costs",
    "predict_step_time",
    "measure_step_time",
    "measure_op_overhead",
    "fit_efficiency",
    "predicted_vs_measured",
    "ROOFLINE_CASES",
    # recipe + device -> report: the three verbs
    "profile",
    "Trainer",
    "compare",
    "RecipeMemoryReport",
    "TrainingReport",
    "Comparison",
    # one protocol for every recipe comparison (same task, optimizer, steps, seeds)
    "Protocol",
    "ProtocolResult",
    "cache_dir",
    "default_recipe",
    "profiled_recipe_peak",
    "accuracy",
    # saved training state (not to be confused with activation checkpointing)
    "save_checkpoint",
    "restore_checkpoint",
    "restore_latest",
    "read_checkpoint",
    "latest_checkpoint",
    "Checkpoint",
    "simulate_power_loss",
    "PowerLossResult",
    "same_weights",
    "train_in_windows",
    "WindowedRun",
    # errors
    "TrainingDiverged",
    "PowerLoss",
]
