"""How fast does a training step run in ExecuTorch's runtime, against eager PyTorch?

For the zoo's MLP (the digits, 8x8; full and bias-only recipes) and small
CNN (32x32, BatchNorm frozen, as the runtime cannot train batch
statistics; last layer only, since the backward of its max-pools is wrong
in the executorch 1.5.1 runtime: the full recipe is refused, and the
benchmark prints why) it exports the training program with
:func:`odtlab.export.export_training` and prints

* ``ours``: the fastest of ``--steps`` runtime steps (forward, backward and
  the runtime's SGD, called from Python), in ms;
* ``baseline``: the fastest of as many eager PyTorch steps of the same
  recipe (``zero_grad``, forward, ``backward``, ``torch.optim.SGD``), in ms;
* ``ratio``: ours / baseline (below 1: the runtime is faster);
* the largest difference between the runtime's and eager's losses over
  the same steps (they should agree to about 1e-5);
* the size of the ``.pte`` file (graph and every weight) and the export time.

Both run on one CPU thread (ExecuTorch's portable kernels are
single-threaded; one thread in torch makes the comparison fair), after one
warm-up step; the minimum is the time least disturbed by other work on the
machine. The runtime here is ExecuTorch's Python binding with its
*portable* kernels (plain C++ reference loops, no XNNPACK delegation for
training graphs): close to eager for the MLP's matrix products, far slower
for convolutions. ExecuTorch must be installed: ``pip install -e ".[export]"``.

Run: ``python benchmarks/export.py [--steps 20] [--batch 32]``
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from odtlab import export, models
from odtlab.memory import format_bytes
from odtlab.recipes import BatchNormPolicy, BiasOnly, Full, LastLayer, Recipe


def cases(batch: int) -> list[tuple[str, nn.Module, tuple[torch.Tensor, torch.Tensor], Recipe]]:
    mlp_batch = models.example_batch("mlp", batch)
    cnn_batch = models.example_batch("cnn", batch, resolution=32)
    frozen = BatchNormPolicy("frozen")
    return [
        ("mlp", models.mlp(), mlp_batch, Recipe(Full())),
        ("mlp", models.mlp(), mlp_batch, Recipe(BiasOnly())),
        ("cnn", models.small_cnn(), cnn_batch, Recipe(LastLayer(), frozen)),
        ("cnn", models.small_cnn(), cnn_batch, Recipe(Full(), frozen)),  # refused: max-pool backward
    ]


def eager_ms(model: nn.Module, batch, recipe: Recipe, steps: int) -> tuple[float, list[float]]:
    """Fastest eager step in ms, and the losses of every step (warm-up included)."""
    net = recipe.prepare(copy.deepcopy(model))
    optimizer = recipe.make_optimizer(net.parameters())
    x, y = batch
    times, losses = [], []
    for _ in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    return 1e3 * min(times[1:]), losses


def runtime_ms(program: export.ExportedTraining, batch, steps: int) -> tuple[float, list[float]]:
    """Fastest runtime step in ms, and the losses of every step (warm-up included)."""
    x, y = batch
    times, losses = [], []
    for _ in range(steps + 1):
        start = time.perf_counter()
        losses.append(program.step(x, y))
        times.append(time.perf_counter() - start)
    return 1e3 * min(times[1:]), losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="odtlab-bench-export-"))
    print(f"batch {args.batch}, fastest of {args.steps} steps, one CPU thread")
    for i, (name, model, batch, recipe) in enumerate(cases(args.batch)):
        label = f"{name}/{recipe.trainable_part.name}"
        start = time.perf_counter()
        try:
            program = export.export_training(model, batch, recipe, path=folder / f"{i}.pte")
        except export.CannotExport as error:
            print(f"export/step-time {label}: refused: {str(error)[:160]}...")
            continue
        seconds = time.perf_counter() - start
        ours, our_losses = runtime_ms(program, batch, args.steps)
        baseline, eager_losses = eager_ms(model, batch, recipe, args.steps)
        gap = max(abs(a - b) for a, b in zip(our_losses, eager_losses, strict=True))
        print(
            f"export/step-time {label} (ms): ours={ours:.3f} baseline={baseline:.3f} "
            f"ratio={ours / baseline:.2f}x  (largest loss difference runtime - eager: {gap:.1e})"
        )
        print(
            f"export/pte-size {label}: {format_bytes(program.pte_bytes)} "
            f"({program.pte_bytes} bytes, {len(program.trainable)} trainable tensors), "
            f"export took {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
