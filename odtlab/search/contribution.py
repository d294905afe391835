"""Contribution analysis of the 256 KB paper: :func:`contribution_analysis`.

Lin et al. (NeurIPS 2022, ``lin2022ondevice``, Section 3.3) choose what a
sparse update trains by *measuring* how much each choice adds to accuracy.
Every candidate is fine-tuned from the same pretrained model, on the same
batches, for the same number of steps, and scored on held-out data:

* **biases**: train the biases of the last ``k`` convolutions (and the
  classifier) for each ``k`` of ``bias_candidates``. Its gain
  ``dAcc_b[k]`` is its accuracy minus that of ``k = 0`` (classifier only).
* **weights**: on top of a *reference* bias setting ``k_ref``, also train the
  weight of conv ``i`` on a fraction ``r`` of its input channels. Its gain
  ``dAcc_W[i, r]`` is its accuracy minus that of ``k_ref`` alone.

Each candidate's memory is measured too: the engine-accounting peak of one
training step (:func:`odtlab.train.profile` with ``accounting="engine"``)
of that scheme alone, cached so that :func:`~odtlab.search.scheme.search_scheme`
can reuse it. The gains are noisy (a few dozen steps on a few hundred
images); read differences under about ``1 / len(val_data)`` as ties.

Examples
--------
>>> from odtlab import data, models
>>> train, val = data.train_test("target-rotated", n_train=64, n_test=64, seed=0)
>>> table = contribution_analysis(models.pretrained("mbv2-shapes"), train, val,
...     bias_candidates=(0, 4), weight_candidates=[48], ratios=(0.25,), steps=2,
...     progress=False)
>>> [c.name for c in table.contributions]
['classifier only', 'bias of last 4', 'conv 48 at 25%']
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from odtlab.data import as_tensors
from odtlab.errors import InvalidRecipe
from odtlab.parallel import map_in_processes
from odtlab.recipes import SGD, OptimizerPart, Recipe, SparseUpdate, fold_batchnorm, sparse_layers
from odtlab.search.table import (
    Contribution,
    ContributionTable,
    MemoryMeter,
    SchemeKey,
    scheme_key,
)

__all__ = ["contribution_analysis", "default_weight_candidates"]


def default_weight_candidates(model: nn.Module, count: int = 4) -> list[int]:
    """Indices of the last ``count`` pointwise convolutions (1x1, not grouped) of ``model``.

    The paper finds the pointwise convolutions of the later blocks the most
    rewarding weights to update; depthwise weights are few and add little.
    """
    pointwise = [
        i for i, _, m in sparse_layers(model) if tuple(m.kernel_size) == (1, 1) and m.groups == 1
    ]
    return pointwise[-count:]


def _check_candidates(
    model: nn.Module, bias: Sequence[int], weight: Sequence[int], ratios: Sequence[float]
) -> int:
    layers = sparse_layers(model)
    n = len(layers)
    if n == 0:
        raise InvalidRecipe(
            f"{type(model).__name__} has no nn.Conv2d layer, so there is no sparse update to "
            "search; contribution analysis needs a convolutional model such as "
            "odtlab.models.pretrained('mbv2-shapes')"
        )
    if not bias and not weight:
        raise InvalidRecipe(
            "no candidates: give bias_candidates (e.g. (0, 2, 4, 8)) and/or weight_candidates "
            "(conv indices from odtlab.recipes.sparse_layers(model))"
        )
    for k in bias:
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
            raise InvalidRecipe(f"bias_candidates: {k!r} is not a number of layers in 0..{n}")
    for i in weight:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise InvalidRecipe(
                f"weight_candidates: {i!r} is not a conv index in 0..{n - 1}; list them with "
                "odtlab.recipes.sparse_layers(model)"
            )
    if weight and not ratios:
        raise InvalidRecipe("ratios is empty; give update ratios in (0, 1], e.g. (0.25, 1.0)")
    for r in ratios:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1:
            raise InvalidRecipe(f"ratios: {r!r} is not an update ratio in (0, 1]")
    return n


def _batches(
    x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` batches drawn epoch by epoch from a seeded permutation: the same for every run."""
    g = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.int64)
    out = []
    for _ in range(steps):
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(len(y), generator=g)])
        pick, order = order[:batch_size], order[batch_size:]
        out.append((x[pick], y[pick]))
    return out


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        correct = sum(
            int((net(xb).argmax(1) == yb).sum())
            for xb, yb in zip(x.split(256), y.split(256), strict=True)
        )
    return correct / len(y)


def _zero_shot(model: nn.Module, val: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, int]:
    """Accuracy of ``model`` before fine-tuning, and its number of outputs (on a copy)."""
    net = copy.deepcopy(model)
    with torch.no_grad():
        outputs = int(net.eval()(val[0][:1]).shape[-1])
    return _accuracy(net, *val), outputs


def _fine_tune(
    model: nn.Module,
    part: SparseUpdate,
    optimizer: OptimizerPart,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    val: tuple[torch.Tensor, ...],
    seed: int,
) -> float:
    """Validation accuracy in [0, 1] after training a copy of ``model`` on ``batches``."""
    recipe = Recipe(part, optimizer)
    net = recipe.prepare(copy.deepcopy(model)).train()
    opt = recipe.make_optimizer(net.parameters())
    with torch.random.fork_rng(devices=[]):  # dropout draws from a seeded, private state
        torch.manual_seed(seed)
        for xb, yb in batches:
            loss = recipe.train_step(net, xb, yb, None, opt)
            if loss != loss:
                raise InvalidRecipe(
                    f"the loss became NaN while training {part!r}; lower lr (now "
                    f"{getattr(optimizer, 'lr', '?')})"
                )
    return _accuracy(net, *val)


def contribution_analysis(
    model: nn.Module,
    train_data: Dataset,
    val_data: Dataset,
    *,
    bias_candidates: Sequence[int] = (0, 2, 4, 8, 16),
    weight_candidates: Sequence[int] | None = None,
    ratios: Sequence[float] = (0.125, 0.25, 0.5, 1.0),
    reference_bias_layers: int | None = None,
    steps: int = 30,
    batch_size: int = 32,
    lr: float = 0.05,
    optimizer: OptimizerPart | None = None,
    example_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    memory_device: str | torch.device = "cpu",
    fold_bn: bool = True,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> ContributionTable:
    """Measure the accuracy gain and the memory of each sparse-update candidate.

    Parameters
    ----------
    model : nn.Module
        A *pretrained* model whose classifier already has one output per
        class of ``train_data`` (on a random network the gains mean nothing).
        Not changed: every candidate trains its own copy.
    train_data, val_data : Dataset
        ``(x, y)`` pairs; a few hundred examples are enough.
    bias_candidates : sequence of int
        Numbers ``k`` of last convolutions whose biases to train; ``0`` is
        the classifier alone, the baseline, and is always measured.
    weight_candidates : sequence of int or None
        Conv indices (from :func:`~odtlab.recipes.sparse_layers`) whose
        weights to try; ``None``: :func:`default_weight_candidates`. A
        depthwise or grouped conv is tried at ratio 1 only.
    ratios : sequence of float
        Update ratios ``r`` in (0, 1] tried for each weight candidate.
    reference_bias_layers : int or None
        ``k_ref``, the bias setting the weight candidates are trained on top
        of; ``None``: the most accurate bias candidate (the smaller ``k`` on a tie).
    steps, batch_size : int
        Optimizer steps per candidate, and examples per step.
    lr : float
        Learning rate of the default optimizer ``SGD(lr)``.
    optimizer : OptimizerPart or None
        Another optimizer part (it also sets the optimizer-state memory).
    example_batch : (inputs, targets) or None
        The batch whose training step is measured; ``None``: the first
        training example (batch 1, the paper's microcontroller setting).
    memory_device : str or torch.device
        Where memory is measured: ``"cpu"`` is quickest for small models,
        ``"meta"`` allocates nothing (for big ones); the bytes are the same.
    fold_bn : bool
        Passed to :class:`~odtlab.recipes.SparseUpdate`.
    seed : int
        Seeds the batch order and dropout; the same seed gives the same table.
    workers : int, default 1
        Processes that fine-tune candidates at the same time
        (:func:`odtlab.parallel.map_in_processes`); ``2`` on a two-core
        machine halves the time and gives the same table.
    progress : bool
        Show a ``tqdm`` bar, one tick per candidate.

    Returns
    -------
    ContributionTable
        One :class:`Contribution` per candidate; print it or call
        ``.to_dataframe()`` / ``.plot()``.

    Raises
    ------
    InvalidRecipe
        For no candidates, an unknown conv index, a ratio outside (0, 1] or
        a classifier whose outputs do not match the labels.
    """
    start = time.perf_counter()
    weight = list(
        default_weight_candidates(model) if weight_candidates is None else weight_candidates
    )
    _check_candidates(model, list(bias_candidates), weight, ratios)
    bias = sorted(set(bias_candidates) | {0})
    for arg, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRecipe(f"contribution_analysis({arg}={value!r}): give an int >= 1")
    x, y = as_tensors(train_data)
    val = as_tensors(val_data)
    if len(y) == 0 or len(val[1]) == 0:
        raise InvalidRecipe("train_data and val_data must hold examples; both need a few hundred")
    zero_shot, outputs = _zero_shot(model, val)
    classes = int(max(int(y.max()), int(val[1].max()))) + 1
    if classes > outputs:
        raise InvalidRecipe(
            f"the labels go up to {classes - 1} but the model has {outputs} outputs; give it a "
            f"new head first: model.classifier = torch.nn.Linear(in_features, {classes})"
        )
    opt_part = optimizer if optimizer is not None else SGD(lr=lr)
    batch = example_batch if example_batch is not None else (x[:1], y[:1])
    # Every candidate folds BatchNorm the same way: fold once, not once per candidate.
    start_model = fold_batchnorm(copy.deepcopy(model)) if fold_bn else model
    meter = MemoryMeter(start_model, batch, opt_part, fold_bn=fold_bn, device=memory_device)
    batches = _batches(x, y, steps, batch_size, seed)
    convs = {i: (name, conv) for i, name, conv in sparse_layers(model)}
    tries = {i: sorted(ratios) if convs[i][1].groups == 1 else [1.0] for i in weight}
    bar = tqdm(
        total=len(bias) + sum(len(r) for r in tries.values()),
        desc="contribution analysis",
        disable=not progress,
    )

    def run_all(schemes: list[tuple[int, dict[int, float]]]) -> list[tuple[float, int]]:
        def job(i: int) -> tuple[float, SchemeKey, dict[str, int], int]:
            k, weights = schemes[i]
            part = SparseUpdate(bias_layers=k, weights=weights, fold_bn=fold_bn)
            accuracy = _fine_tune(start_model, part, opt_part, batches, val, seed)
            key = scheme_key(k, weights)
            meter.peak(k, weights)  # in the worker too: it returns what it measured
            return accuracy, key, meter.totals[key], meter.frozen[key]

        results = map_in_processes(
            job, len(schemes), workers=workers, on_done=lambda _: bar.update(1)
        )
        for _, key, totals, frozen in results:
            meter.record(key, totals, frozen)
        return [(accuracy, meter.cache[key]) for accuracy, key, _, _ in results]

    bias_runs = dict(zip(bias, run_all([(k, {}) for k in bias]), strict=True))
    k_ref = reference_bias_layers
    if k_ref is None:
        k_ref = max(bias, key=lambda k: (bias_runs[k][0], -k))
    elif k_ref not in bias_runs:
        _check_candidates(model, [k_ref], [], ratios)
        bias_runs[k_ref] = run_all([(k_ref, {})])[0]
    base_acc, base_peak = bias_runs[0]
    ref_acc, ref_peak = bias_runs[k_ref]
    rows = [
        Contribution("bias", k, None, 0.0, acc, acc - base_acc, peak, peak - base_peak)
        for k, (acc, peak) in sorted(bias_runs.items())
    ]
    candidates = [(i, float(r)) for i, layer_ratios in tries.items() for r in layer_ratios]
    weight_runs = run_all([(k_ref, {i: r}) for i, r in candidates])
    for (i, r), (acc, peak) in zip(candidates, weight_runs, strict=True):
        gain, extra = acc - ref_acc, peak - ref_peak
        rows.append(Contribution("weight", k_ref, i, r, acc, gain, peak, extra, convs[i][0]))
    bar.close()
    return ContributionTable(
        contributions=tuple(rows),
        baseline_accuracy=base_acc,
        zero_shot_accuracy=zero_shot,
        reference_bias_layers=k_ref,
        steps=steps,
        seed=seed,
        seconds=time.perf_counter() - start,
        meter=meter,
    )
