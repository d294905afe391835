"""What does each recipe cost? Measured peak, activations and time per step, against Full.

For one zoo model and batch (default MobileNetV2-0.35 at 64x64, batch 8,
CPU) it prints, per recipe:

* ``peak``: the training peak of ``recipe.memory_report`` (bytes alive at
  once over forward, recompute, backward and optimizer step);
* ``prof``: with ``--profile``, the real peak of the same step from
  ``torch.profiler`` (second step, so the optimizer state exists), and the
  ratio model / profiler;
* ``activations``: what is kept for backward (one micro-batch's);
* ``ms/step``: the fastest of ``--steps`` timed ``recipe.train_step`` calls
  (after one warm-up step), on this machine's CPU threads (the minimum is
  the least disturbed by other work on the machine);
* ratios of peak, activations and time to the ``full`` recipe.

Run: ``python benchmarks/recipes.py [--model cnn] [--batch 16] [--resolution 32] [--profile]``
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from odtlab import models
from odtlab.memory import format_bytes
from odtlab.recipes import (
    BiasOnly,
    Checkpointing,
    Full,
    InPlaceActivations,
    LastLayer,
    MicroBatch,
    Recipe,
    named,
    recipe_names,
)
from odtlab.train import profile, profiled_recipe_peak

MODEL_KWARGS = {
    "mobilenetv2": {"width_mult": 0.35, "num_classes": 10},
    "transformer": {"seq_len": 16},
}


def recipes() -> list[Recipe]:
    return [
        *(named(n) for n in recipe_names()[:6]),
        Recipe(Full(), Checkpointing(2)),
        Recipe(Full(), Checkpointing(None)),
        Recipe(Full(), MicroBatch(2)),
        Recipe(Full(), MicroBatch(4), Checkpointing(4)),
        Recipe(BiasOnly(), MicroBatch(4)),
        Recipe(LastLayer(), MicroBatch(4)),
        Recipe(Full(), MicroBatch(4, bn="group")),
        Recipe(Full(), InPlaceActivations(False)),
        Recipe(Full(), InPlaceActivations(True)),
    ]


def time_per_step(recipe: Recipe, model: torch.nn.Module, batch: tuple, steps: int) -> float:
    """Seconds of the fastest of ``steps`` timed ``train_step`` calls (after a warm-up step)."""
    net = recipe.prepare(copy.deepcopy(model)).train()
    opt = recipe.make_optimizer(net.parameters())
    recipe.train_step(net, *batch, None, opt)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        recipe.train_step(net, *batch, None, opt)
        times.append(time.perf_counter() - start)
    return min(times)


profiled_peak = profiled_recipe_peak  # the library's check, shared with the tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mobilenetv2", choices=models.available())
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also measure with torch.profiler")
    args = parser.parse_args()
    kwargs = MODEL_KWARGS.get(args.model, {})
    resolution = args.resolution or (64 if args.model == "mobilenetv2" else None)
    batch_kwargs = (
        {"resolution": resolution}
        if resolution and args.model not in ("mlp", "transformer")
        else {}
    )
    model = models.build(args.model, **kwargs)
    batch = models.example_batch(args.model, args.batch, **batch_kwargs, **kwargs)
    shape = "x".join(str(s) for s in batch[0].shape)
    print(f"{args.model} {kwargs or ''} batch {shape}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")  # fmt: skip
    print(f"{'':<60}ratios to full")
    head = f"{'recipe':<26} {'peak':>10} {'activations':>12} {'ms/step':>8} | {'peak':>6} {'act':>6} {'time':>6}"
    if args.profile:
        head += f" | {'profiler':>10} {'model/prof':>10}"
    print(head)
    base = None
    for recipe in recipes():
        report = profile(model, batch, recipe)
        seconds = time_per_step(recipe, model, batch, args.steps)
        peak, act = report.totals["peak"], report.totals["activations"]
        if base is None:
            base = (peak, act, seconds)
        line = (
            f"{recipe.name:<26} {format_bytes(peak):>10} {format_bytes(act):>12} {1000 * seconds:>8.1f} | "
            f"{peak / base[0]:>6.3f} {act / base[1]:>6.3f} {seconds / base[2]:>6.2f}"
        )
        if args.profile:
            real = profiled_peak(recipe, model, batch)
            line += f" | {format_bytes(real):>10} {peak / real:>10.3f}"
        print(line)


if __name__ == "__main__":
    main()
