"""Run several recipes on one task and compare accuracy, memory and energy.

:func:`compare` trains a fresh copy of the model with each recipe (same
data, same seed, same number of steps) on the same simulated device, and
returns a :class:`Comparison`: a table and a Pareto figure. A recipe that
does not fit the device is not an error here: its row says *does not fit*
and shows its measured memory; with ``train_unfit=True`` it is trained
anyway so its accuracy can be shown next to the ones that fit.

Examples
--------
>>> from odtlab import data, models, recipes, train
>>> train_set, test_set = data.digits("train"), data.digits("test")
>>> result = train.compare([recipes.Recipe(), recipes.Recipe(recipes.LastLayer())],
...                        models.mlp(), train_set, test_set, "stm32f746", steps=20)
>>> len(result.rows)
2
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from odtlab import devices
from odtlab.errors import DoesNotFit
from odtlab.parallel import map_in_processes
from odtlab.train import cost
from odtlab.train.report import TrainingReport
from odtlab.train.trainer import Trainer
from odtlab.viz import pareto_front, plot_comparison

__all__ = ["Comparison", "compare", "pareto_front"]


@dataclass
class Comparison:
    """Recipes side by side on one task and one device (see :func:`compare`).

    Attributes
    ----------
    rows : list of dict
        One per recipe, in the order given: ``recipe``, ``final_accuracy``
        (None if not trained), ``peak_bytes``, ``activations_bytes``,
        ``weights_bytes``, ``gradients_bytes``, ``optimizer_bytes``,
        ``sim_time_s``, ``sim_energy_j`` (simulated for the run's steps, also
        for recipes that do not fit), ``fits`` (None without a device),
        ``trained``.
    reports : dict
        Recipe name to its :class:`TrainingReport` (None when not trained).
    device : str or None
    budget_bytes : int or None
        The device's training memory budget.
    """

    rows: list[dict[str, Any]]
    reports: dict[str, TrainingReport | None] = field(repr=False)
    device: str | None = None
    budget_bytes: int | None = None

    def _values(self, key: str) -> list[float]:
        out = []
        for r in self.rows:
            v = r.get(key)
            out.append(math.nan if v is None else float(v))
        return out

    def pareto(self, cost_key: str = "peak_bytes") -> list[str]:
        """Names of the recipes on the accuracy-versus-``cost_key`` Pareto front."""
        idx = pareto_front(self._values(cost_key), self._values("final_accuracy"))
        return [self.rows[i]["recipe"] for i in idx]

    def table(self) -> str:
        """The rows as an aligned text table (KiB/MiB, s, J)."""
        width = max([len("recipe"), *(len(r["recipe"]) for r in self.rows)])
        head = (f"{'recipe':<{width}} {'accuracy':>9} {'peak':>10} {'activations':>12} "
                f"{'time':>10} {'energy':>10}  fits?")  # fmt: skip
        lines = [head, "-" * len(head)]
        for r in self.rows:
            acc = "-" if r["final_accuracy"] is None else f"{r['final_accuracy']:.1%}"
            fits = {True: "yes", False: "DOES NOT FIT", None: "(no device)"}[r["fits"]]
            if r["fits"] is False and r["trained"]:
                fits += " (trained anyway)"
            lines.append(
                f"{r['recipe']:<{width}} {acc:>9} {devices.format_bytes(r['peak_bytes']):>10} "
                f"{devices.format_bytes(r['activations_bytes']):>12} "
                f"{_fmt(r['sim_time_s'], devices.format_seconds):>10} "
                f"{_fmt(r['sim_energy_j'], devices.format_joules):>10}  {fits}"
            )
        if self.budget_bytes is not None:
            lines.append(f"budget on {self.device}: {devices.format_bytes(self.budget_bytes)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dataframe(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (pandas is imported here)."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def plot(self, axes: Any = None) -> Any:
        """Two panels: accuracy vs peak memory, accuracy vs energy; Pareto fronts highlighted.

        Recipes that fit are filled circles, those that do not are red;
        untrained ones sit at 0 % as crosses. The memory panel has the
        device's budget as a dashed line. Returns the figure
        (:func:`odtlab.viz.plot_comparison`).
        """
        return plot_comparison(self, axes)


def _fmt(value: float | None, fmt: Callable[[float], str]) -> str:
    return "-" if value is None or math.isnan(value) else fmt(value)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


def compare(
    recipes: Sequence[Any],
    model: nn.Module | Callable[[], nn.Module],
    train_data: Dataset,
    test_data: Dataset | None = None,
    device: str | devices.DeviceProfile | None = None,
    *,
    steps: int = 100,
    batch_size: int = 32,
    seed: int = 0,
    loss_fn: Callable[..., Any] | None = None,
    train_unfit: bool = False,
    dtype: str | None = None,
    host_device: str | None = None,
    workers: int = 1,
    progress: bool = False,
) -> Comparison:
    """Train ``model`` with each recipe on the same data and device, and compare.

    Parameters
    ----------
    recipes : sequence of Recipe
        The recipes to compare (names are made unique with ``#2``, ``#3``).
    model : nn.Module or callable
        A model (each recipe gets a ``copy.deepcopy``) or a builder
        ``model() -> nn.Module`` called once per recipe.
    train_data, test_data : Dataset
    device : str, DeviceProfile or None
        The simulated device, as for :class:`Trainer` and
        :func:`~odtlab.train.profile` (``None``: no device, nothing charged).
    steps, batch_size, seed :
        The same for every recipe.
    dtype : str or None, default None
        ``None`` charges each recipe in its own number format
        (:attr:`Recipe.device_dtype`: ``Int8()`` runs in int8); a value is
        passed to every :class:`Trainer`, which refuses a recipe that disagrees.
    train_unfit : bool, default False
        Train the recipes that do not fit the device anyway (on the host),
        to show their accuracy; they stay marked ``fits=False``.
    workers : int, default 1
        Processes that train recipes at the same time
        (:func:`odtlab.parallel.map_in_processes`; Linux). Every run is
        seeded, so the rows are the same as with one; ``2`` on a two-core
        machine takes about half the time. A ``model`` builder runs in the
        worker.

    Returns
    -------
    Comparison
    """
    if not recipes:
        raise ValueError("compare needs at least one recipe.")
    profile = None if device is None else devices.get(device)
    names = _unique([str(getattr(r, "name", type(r).__name__)) for r in recipes])
    rows, reports = [], {}

    def run(i: int) -> tuple[TrainingReport | None, Any, str, float | None]:
        recipe = recipes[i]
        fresh = copy.deepcopy(model) if isinstance(model, nn.Module) else model()
        trainer = Trainer(fresh, recipe, profile, loss_fn=loss_fn, batch_size=batch_size,
                          steps=steps, seed=seed, host_device=host_device,
                          progress=progress and workers == 1,  # a worker's bar cannot show here
                          dtype=dtype, check_memory=not train_unfit)  # fmt: skip
        try:
            report = trainer.fit(train_data, test_data)
        except DoesNotFit:
            report = None
        return report, trainer.memory_report, trainer.dtype, trainer.flops_per_step

    runs = map_in_processes(run, len(recipes), workers=workers)
    for name, (report, memory_report, run_dtype, flops) in zip(names, runs, strict=True):
        mem = memory_report.totals
        if report is not None:
            time_s, energy_j, fits = report.sim_time_s, report.sim_energy_j, report.fits
        else:  # what it would cost, had it fitted
            job = cost.workload_from_report(memory_report, steps=steps, dtype=run_dtype, flops=flops)
            sim = devices.simulate(job, profile, check_memory=False)  # type: ignore[arg-type]
            time_s, energy_j, fits = sim.total_time_s, sim.total_energy_j, False
        reports[name] = report
        rows.append({
            "recipe": name,
            "final_accuracy": None if report is None else report.final_accuracy,
            "peak_bytes": int(mem["peak"]),
            "activations_bytes": int(mem["activations"]),
            "weights_bytes": int(mem["weights"]),
            "gradients_bytes": int(mem["gradients"]),
            "optimizer_bytes": int(mem["optimizer"]),
            "sim_time_s": time_s,
            "sim_energy_j": energy_j,
            "fits": fits,
            "trained": report is not None,
        })  # fmt: skip
    return Comparison(
        rows=rows,
        reports=reports,
        device=None if profile is None else profile.name,
        budget_bytes=None if profile is None else profile.training_memory_bytes,
    )
