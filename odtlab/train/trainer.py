"""The Trainer: model + data + recipe, run on a device, gives a report.

:meth:`Trainer.fit` does four things, in this order:

1. **Measure, then refuse early.** The recipe prepares the model and
   measures one training step on the first batch
   (``recipe.memory_report``). With a simulated device, a peak over the
   device's training budget raises :class:`~odtlab.errors.DoesNotFit`
   *before any step runs* (the weights are untouched).
2. **Train for real** on the host: a seeded loader
   (:func:`odtlab.data.loader`), ``recipe.train_step`` per step, a
   ``tqdm`` bar showing the loss. A NaN or infinite loss stops the run with
   :class:`TrainingDiverged`; the last checkpoint on disk is kept.
3. **Evaluate** test accuracy every ``eval_every`` steps and at the end.
4. **Charge the device**: the whole run is simulated once, at the end, with
   :func:`odtlab.devices.simulate` (see :mod:`odtlab.train.cost`).

Randomness: the loader's shuffling comes from a ``torch.Generator`` seeded
with ``seed``; anything in the model that draws random numbers (dropout)
draws from the trainer's own copy of torch's random state, seeded with
``seed + 1``, swapped in around each step with ``torch.random.fork_rng``, so
torch's global random state is left as it was. Both states go into every
checkpoint, so a resumed run is bit-exact (see :mod:`odtlab.train.powerloss`).

Examples
--------
>>> from odtlab import data, models, recipes, train
>>> trainer = train.Trainer(models.mlp(), recipes.Recipe(), "stm32f746", steps=20,
...                         progress=False)
>>> report = trainer.fit(data.digits("train"), data.digits("test"))
>>> report.fits, report.steps
(True, 20)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from odtlab import data as odt_data
from odtlab import devices
from odtlab.recipes import Recipe
from odtlab.train import cost
from odtlab.train.checkpoint import latest_checkpoint, previous_path, save_checkpoint
from odtlab.train.errors import TrainingDiverged
from odtlab.train.evaluate import accuracy
from odtlab.train.profile import STEP_ACCOUNTINGS, default_recipe, profile
from odtlab.train.report import TrainingReport, build_report
from odtlab.train.resume import PrivateRNG, RunState, position_loader

__all__ = ["Trainer", "default_recipe", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "last.ckpt"
"""File name of the trainer's checkpoint inside ``checkpoint_dir`` (previous: ``last.ckpt.prev``)."""


def _positive(name: str, value: Any, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Trainer: {name} must be an int >= 1{' or None' if allow_none else ''}, "
                         f"got {value!r}.")  # fmt: skip
    return value


class Trainer:
    """Train ``model`` with ``recipe`` and charge a simulated ``device`` for it.

    Parameters
    ----------
    model : nn.Module
        Trained in place.
    recipe : Recipe, optional
        How to train (:class:`odtlab.recipes.Recipe`, or any object with its
        methods); ``None`` is ``Recipe()``: full training, ``SGD(lr=0.05)``.
    device : str, DeviceProfile or None, default "stm32f746"
        The simulated device: its memory budget is checked before training
        and its time/energy/temperature predicted after. ``None``: train on
        the host without any device.
    loss_fn : callable, optional
        ``loss_fn(logits, targets)``; ``None`` is cross-entropy.
    batch_size : int, default 32
        Examples per step.
    epochs, steps : int, optional
        Length of the run: ``steps`` optimizer steps, or ``epochs`` passes
        over the training data (``ceil(len(data) / batch_size)`` steps
        each). Give at most one; the default is 1 epoch.
    seed : int, default 0
        Seeds the loader's shuffling (``seed``) and dropout (``seed + 1``).
    eval_every : int, optional
        Evaluate test accuracy every this many steps (always at the end).
    checkpoint_dir : str or Path, optional
        Save ``last.ckpt`` (and ``last.ckpt.prev``) here.
    checkpoint_every : int, optional
        Steps between checkpoints; by default a tenth of the run. A
        checkpoint is also saved after the last step.
    host_device : str or torch.device, default "cpu"
        Where the real arithmetic runs (``"cuda"`` when asked).
    progress : bool, default True
        Show a ``tqdm`` progress bar with the loss.
    dtype : str or None, default None
        Arithmetic the simulated device runs in (``"fp32"``, ``"fp16"``,
        ``"int8"``). ``None`` takes it from the recipe's precision part
        (:attr:`Recipe.device_dtype`: ``Int8()`` runs in int8); a value that
        disagrees with the recipe is refused, so one part owns the number format.
    accounting : {"pytorch", "engine"}, default "pytorch"
        How the device is charged: what PyTorch keeps, or what a
        memory-optimised engine keeps (int8 frozen weights, 8-bit
        activations, 1-bit ReLU masks; see :mod:`odtlab.memory.engine`),
        the right model of a microcontroller's training runtime.
    check_memory : bool, default True
        Refuse with ``DoesNotFit`` when the peak is over the device budget.
        ``False`` trains anyway and reports ``fits=False`` (what-if studies).
    on_step : callable, optional
        ``on_step(step, loss)`` after each step (and its checkpoint, if any).
        The attribute ``before_save`` (``None`` by default) may hold a
        callable ``before_save(step)`` run just before each checkpoint is
        written (:func:`~odtlab.train.simulate_power_loss` cuts the power there).

    Attributes
    ----------
    memory_report
        The recipe's measured memory report (set by :meth:`fit`, also when
        it raises ``DoesNotFit``).
    optimizer, step, report
        The optimizer, steps done, and the last :class:`TrainingReport`.
    """

    def __init__(
        self,
        model: nn.Module,
        recipe: Recipe | None = None,
        device: str | devices.DeviceProfile | None = "stm32f746",
        *,
        loss_fn: Callable[..., torch.Tensor] | None = None,
        batch_size: int = 32,
        epochs: int | None = None,
        steps: int | None = None,
        seed: int = 0,
        eval_every: int | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        host_device: str | torch.device | None = None,
        progress: bool = True,
        dtype: str | None = None,
        accounting: str = "pytorch",
        check_memory: bool = True,
        on_step: Callable[[int, float], None] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"Trainer: model must be a torch.nn.Module, got {type(model).__name__}."
            )
        if epochs is not None and steps is not None:
            raise ValueError("Trainer: give epochs or steps, not both.")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"Trainer: seed must be an int >= 0, got {seed!r}.")
        self.model = model
        self.recipe = default_recipe() if recipe is None else recipe
        if dtype is not None and dtype not in devices.DTYPES:
            raise ValueError(
                f"Trainer: dtype must be one of {list(devices.DTYPES)} or None, got {dtype!r}."
            )
        wanted = self.recipe.device_dtype
        if dtype is not None and dtype != wanted:
            raise ValueError(
                f"Trainer: dtype={dtype!r} disagrees with recipe {self.recipe.name!r}, whose "
                f"precision runs in {wanted}; leave dtype out (the recipe's precision part owns "
                "the number format) or change the recipe's precision part"
            )
        dtype = wanted
        self.device = None if device is None else devices.get(device)
        self.loss_fn = loss_fn
        self.batch_size = int(_positive("batch_size", batch_size, allow_none=False))  # type: ignore[arg-type]
        self.epochs = _positive("epochs", epochs)
        self.steps = _positive("steps", steps)
        self.seed = seed
        self.eval_every = _positive("eval_every", eval_every)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.checkpoint_every = _positive("checkpoint_every", checkpoint_every)
        self.host_device = torch.device(host_device or "cpu")
        self.progress = progress
        self.dtype = dtype
        self.check_memory = check_memory
        if accounting not in STEP_ACCOUNTINGS:
            raise ValueError(
                f"Trainer: accounting must be 'pytorch' or 'engine', got {accounting!r}; use "
                "'engine' to charge a microcontroller what a memory-optimised engine keeps "
                "(the papers' own counts, 'tinytl' and '256kb', are for odtlab.train.profile)."
            )
        self.accounting = accounting
        self.on_step = on_step
        self.before_save: Callable[[int], None] | None = None
        self.memory_report: Any = None
        self.flops_per_step: float | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.step = 0
        self.report: TrainingReport | None = None

    # ---- helpers ----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """``checkpoint_dir / "last.ckpt"``, or ``None`` without a checkpoint folder."""
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    @property
    def recipe_name(self) -> str:
        return str(getattr(self.recipe, "name", type(self.recipe).__name__))

    def total_steps(self, train_data: Dataset) -> int:
        """Steps of the whole run for ``train_data``."""
        if self.steps is not None:
            return self.steps
        return (self.epochs or 1) * math.ceil(len(train_data) / self.batch_size)  # type: ignore[arg-type]

    def _first_batch(self, train_data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        # a private generator: a DataLoader without one draws a seed from torch's global RNG
        first = DataLoader(train_data, self.batch_size, shuffle=False, generator=torch.Generator())
        x, y = next(iter(first))
        where = next(self.model.parameters(), torch.empty(0)).device
        return x.to(where), y.to(where)

    # ---- the run ----------------------------------------------------------------------------
    def fit(
        self,
        train_data: Dataset,
        test_data: Dataset | None = None,
        *,
        resume: bool = False,
        until: int | None = None,
    ) -> TrainingReport:
        """Train on ``train_data``, evaluate on ``test_data``, and report.

        Parameters
        ----------
        train_data, test_data : Dataset
            ``(x, y)`` pairs; ``test_data`` is optional.
        resume : bool, default False
            Continue from the newest good checkpoint in ``checkpoint_dir``
            (``last.ckpt``, else ``last.ckpt.prev``) when there is one. The
            result is bit-identical to an uninterrupted run.
        until : int, optional
            Stop after this step (a training window closes) and save a
            checkpoint there, so that a later ``fit(resume=True)`` continues
            from it; the report covers the steps done so far.

        Raises
        ------
        DoesNotFit
            Before any step, when the measured peak is over the device's budget.
        TrainingDiverged
            When a step's loss is NaN or infinite.
        """
        started = time.perf_counter()
        if len(train_data) == 0:  # type: ignore[arg-type]
            raise ValueError("Trainer.fit: train_data is empty; pass a dataset with examples.")
        self.step, self.optimizer, self.report = 0, None, None
        model, recipe = self.model, self.recipe
        model.train()
        model = recipe.prepare(model) or model
        self.model = model
        batch = self._first_batch(train_data)
        self.memory_report = profile(
            model, batch, recipe, accounting=self.accounting, loss_fn=self.loss_fn
        )
        flops = cost.flops_per_step(self.memory_report, model, batch, self.loss_fn,
                                    batch_size=len(batch[1]))  # fmt: skip
        self.flops_per_step = flops
        fits = None
        if self.device is not None:
            if self.check_memory:
                devices.check_fit(self.memory_report, self.device)  # raises DoesNotFit
            fits = devices.fits(self.memory_report, self.device)

        model.to(self.host_device)
        self.optimizer = recipe.make_optimizer([p for p in model.parameters() if p.requires_grad])
        loader = odt_data.loader(train_data, self.batch_size, shuffle=True, seed=self.seed)
        gen, per_epoch, total = loader.generator, len(loader), self.total_steps(train_data)
        rng = PrivateRNG(self.seed + 1, self.host_device)
        run = RunState(0, gen.get_state(), 0, rng.state())  # type: ignore[union-attr]
        it: Any = None
        pos = per_epoch  # "the previous epoch is used up": the first step starts one
        if resume:
            run = self._resume(run, total)
            rng.set_state(run.rng)
            it, pos = position_loader(loader, run)
        epoch_state = run.loader_state
        resumed_from = run.step or None

        stop = total if until is None else min(total, int(_positive("until", until) or total))
        bar = tqdm(total=total, initial=run.step, desc=self.recipe_name, disable=not self.progress)
        try:
            while run.step < stop:
                if pos == per_epoch:  # a new epoch: remember where its order came from
                    epoch_state, it, pos = gen.get_state(), iter(loader), 0  # type: ignore[union-attr]
                x, y = next(it)
                pos, step = pos + 1, run.step + 1
                x, y = x.to(self.host_device), y.to(self.host_device)
                with rng.active():
                    loss = float(recipe.train_step(model, x, y, self._loss(), self.optimizer))
                if not math.isfinite(loss):
                    raise TrainingDiverged(step, loss, self.recipe_name, self._kept_checkpoint())
                run.step = self.step = step
                run.losses.append(loss)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                due = self.eval_every is not None and step % self.eval_every == 0
                if test_data is not None and (due or step == total):
                    run.accuracies.append(
                        (step, accuracy(model, test_data, host_device=self.host_device))
                    )
                if self._checkpoint_due(step, total) or (step == stop and self.checkpoint_path):
                    # at an epoch's end the generator already holds the next epoch's start
                    run.loader_state = epoch_state if pos < per_epoch else gen.get_state()  # type: ignore[union-attr]
                    run.loader_pos, run.rng = pos % per_epoch, rng.state()
                    self._save(run, total)
                if self.on_step is not None:
                    self.on_step(step, loss)
        finally:
            bar.close()
        if test_data is not None and not run.accuracies:  # resumed at the very end
            run.accuracies.append((run.step, accuracy(model, test_data, host_device=self.host_device)))
        self.report = build_report(
            recipe=self.recipe_name, device=self.device, steps=run.step,
            batch_size=self.batch_size, memory_report=self.memory_report, flops=flops,
            losses=run.losses, accuracies=run.accuracies, fits=fits, dtype=self.dtype,
            wall_time_s=time.perf_counter() - started, resumed_from=resumed_from,
        )  # fmt: skip
        return self.report

    def _loss(self) -> Callable[..., torch.Tensor]:
        return nn.functional.cross_entropy if self.loss_fn is None else self.loss_fn

    def _checkpoint_due(self, step: int, total: int) -> bool:
        if self.checkpoint_path is None:
            return False
        every = self.checkpoint_every or max(1, total // 10)
        return step % every == 0 or step == total

    def _kept_checkpoint(self) -> str | None:
        path = self.checkpoint_path
        if path is None:
            return None
        return next((str(p) for p in (path, previous_path(path)) if p.exists()), None)

    def _config(self, total: int) -> dict[str, Any]:
        return {"recipe": self.recipe_name, "seed": self.seed, "batch_size": self.batch_size,
                "total_steps": total}  # fmt: skip

    def _save(self, run: RunState, total: int) -> None:
        if self.before_save is not None:
            self.before_save(run.step)
        extra = run.to_extra(self._config(total))
        extra["precision"] = self._precision_state()
        save_checkpoint(self.checkpoint_path, model=self.model, optimizer=self.optimizer,  # type: ignore[arg-type]
                        step=run.step, extra=extra)  # fmt: skip

    def _precision_state(self, state: dict[str, Any] | None = None) -> dict[str, Any]:
        """The precision part's state (a loss scaler's) to save, or, given ``state``, load it."""
        part = getattr(self.recipe, "precision_part", None)
        if part is None or self.optimizer is None:
            return {}
        if state is not None:
            part.load_state_dict(self.optimizer, state)
        return part.state_dict(self.optimizer)

    def _resume(self, fresh: RunState, total: int) -> RunState:
        """Restore model and optimizer from the newest good checkpoint; return its RunState."""
        if self.checkpoint_path is None:
            raise ValueError("fit(resume=True) needs a Trainer with checkpoint_dir=...")
        try:
            ckpt = latest_checkpoint(self.checkpoint_path)
        except FileNotFoundError:
            return fresh  # nothing saved yet: start from scratch
        saved, ours = ckpt.extra.get("trainer", {}), self._config(total)
        if saved != ours:
            raise ValueError(
                f"Cannot resume from {ckpt.path}: it was written by a run with {saved}, this "
                f"trainer has {ours}. Use the same settings, or another checkpoint_dir."
            )
        self.step = ckpt.apply_to(self.model, self.optimizer)
        self._precision_state(ckpt.extra.get("precision", {}))
        return RunState.from_extra(ckpt.step, ckpt.extra)
