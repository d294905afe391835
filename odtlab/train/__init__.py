"""odtlab.train: run a recipe on a device and get a report.

* :class:`Trainer` measures a recipe's memory, refuses early when it does not
  fit the simulated device, trains for real, evaluates, and charges the
  device (time, energy, battery, temperature) in a :class:`TrainingReport`.
* :func:`compare` runs several recipes on one task and draws the
  accuracy/memory/energy Pareto front.
* :func:`save_checkpoint`, :func:`restore_checkpoint`, :func:`restore_latest`:
  power-cut-proof checkpoints (atomic write, SHA-256, previous copy).
* :func:`simulate_power_loss` kills a run mid-way and checks that resuming
  gives bit-identical weights.

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
    previous_path,
    read_checkpoint,
    restore_checkpoint,
    restore_latest,
    save_checkpoint,
)
from odtlab.train.compare import Comparison, compare, pareto_front
from odtlab.train.cost import bytes_moved_per_step, flops_per_step, workload_from_report
from odtlab.train.errors import PowerLoss, TrainingDiverged
from odtlab.train.evaluate import accuracy, eval_mode
from odtlab.train.powerloss import PowerLossResult, same_weights, simulate_power_loss
from odtlab.train.profile import RecipeMemoryReport, default_recipe, profile, profiled_recipe_peak
from odtlab.train.report import TrainingReport, build_report
from odtlab.train.resume import PrivateRNG, RunState
from odtlab.train.trainer import CHECKPOINT_NAME, Trainer

__all__ = [
    "profile",
    "profiled_recipe_peak",
    "RecipeMemoryReport",
    "default_recipe",
    "Trainer",
    "TrainingReport",
    "compare",
    "Comparison",
    "pareto_front",
    "accuracy",
    "eval_mode",
    "save_checkpoint",
    "restore_checkpoint",
    "restore_latest",
    "read_checkpoint",
    "latest_checkpoint",
    "previous_path",
    "Checkpoint",
    "CHECKPOINT_NAME",
    "simulate_power_loss",
    "PowerLossResult",
    "same_weights",
    "PrivateRNG",
    "RunState",
    "build_report",
    "workload_from_report",
    "flops_per_step",
    "bytes_moved_per_step",
    "TrainingDiverged",
    "PowerLoss",
]
