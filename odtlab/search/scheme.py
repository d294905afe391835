"""Search the sparse-update scheme that fits a memory budget: :func:`search_scheme`.

The 256 KB paper (Lin et al., NeurIPS 2022, ``lin2022ondevice``,
Section 3.3) picks *what to train* on a microcontroller in two steps:

1. **Contribution analysis** (:func:`contribution_analysis`): fine-tune each
   candidate alone and measure its accuracy gain: ``dAcc_b[k]`` for the
   biases of the last ``k`` convolutions, ``dAcc_W[i, r]`` for the weight of
   conv ``i`` on a fraction ``r`` of its input channels.
2. **Search**: choose one ``k`` and at most one ratio per weight layer to

   ``maximise dAcc_b[k] + sum_i dAcc_W[i, r_i]  subject to  peak(k, {i: r_i}) <= budget``.

The gains are *assumed to add up* (the paper's assumption; it is what
makes the search cheap). The memory is **not** added up: the peak of a
combined scheme is measured (engine accounting, the same as
:func:`odtlab.train.profile` ``(accounting="engine")``), because a peak is a
maximum over a timeline, not a sum.

How we search (the paper uses an evolutionary search; at the course's scale
an exact one is affordable): every combination is listed (weight options
with a gain <= 0 are left out, as they only cost memory) and visited in
order of predicted gain, ties broken by the smaller *estimated* peak
(``peak(k) + sum of the weight rows' extra bytes``). Each visited scheme is
measured (cached) and the first that fits is the answer. Two facts keep the
measurements few: a scheme that trains *at least as much* as one known not
to fit cannot fit either (more trained parameters never lower the peak), so
it is skipped unmeasured; and each single option is measured once first, so
no combination containing a too-big option is ever visited. Under that
monotonicity the answer is the optimum of the problem above. After
``max_measurements`` measurements the search stops being exact and visits
only schemes whose estimate fits (``result.exact`` says which happened).

Examples
--------
A hand-made table and an additive memory model (bytes):

>>> table = ContributionTable.by_hand({0: 0.0, 4: 0.05}, {(10, 0.5): 0.04, (11, 1.0): 0.03})
>>> cost = {"base": 100, "k4": 40, 10: 50, 11: 30}
>>> def memory(k, weights):
...     return cost["base"] + (cost["k4"] if k else 0) + sum(cost[i] for i in weights)
>>> result = search_scheme(table, budget_bytes=180, memory_fn=memory, progress=False)
>>> result.bias_layers, result.weights, round(result.predicted_gain, 2), result.peak_bytes
(4, {11: 1.0}, 0.08, 170)
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from odtlab import devices
from odtlab.devices import DeviceProfile, format_bytes
from odtlab.errors import DoesNotFit, InvalidRecipe
from odtlab.recipes import OptimizerPart, SparseUpdate
from odtlab.search.table import (
    Contribution,
    ContributionTable,
    MemoryMeter,
    SchemeKey,
    check_table,
    scheme_key,
)

__all__ = ["SchemeSearchResult", "search_scheme"]

#: ``memory_fn(bias_layers, weights) -> peak bytes`` of ``SparseUpdate(bias_layers, weights)``.
MemoryFn = Callable[[int, Mapping[int, float]], int]

_MAX_COMBINATIONS = 500_000


@dataclass(frozen=True)
class SchemeSearchResult:
    """The scheme :func:`search_scheme` chose, its measured memory and the search's record.

    Attributes
    ----------
    scheme : SparseUpdate
        The chosen trainable part; use it as ``Recipe(result.scheme, ...)``.
    bias_layers : int
    weights : dict of int to float
        Conv index to update ratio.
    peak_bytes : int
        Measured peak of one training step with ``scheme``, bytes, as it
        counts against the budget: with ``device`` a microcontroller, the
        frozen int8 weights it reads from flash are left out (see
        :func:`odtlab.devices.check_fit`).
    budget_bytes : int
    predicted_gain : float
        Sum of the chosen rows' gains over the classifier-only baseline (0.05: 5 points).
    predicted_accuracy : float or None
        ``baseline_accuracy + predicted_gain`` when the table has accuracies.
    chosen : tuple of Contribution
        The bias row and the weight rows whose gains were added up.
    considered : int
        Combinations listed.
    measured : tuple of (str, int)
        Every scheme measured by the search (name, peak bytes), in order.
    exact : bool
        ``False`` when ``max_measurements`` ran out and the estimate guided the rest.
    full_peak_bytes : int or None
        Peak of full update of the same model and batch, for comparison.
    device : str or None
    seconds : float
    """

    scheme: SparseUpdate
    bias_layers: int
    weights: dict[int, float]
    peak_bytes: int
    budget_bytes: int
    predicted_gain: float
    predicted_accuracy: float | None
    chosen: tuple[Contribution, ...]
    considered: int
    measured: tuple[tuple[str, int], ...]
    exact: bool = True
    full_peak_bytes: int | None = None
    device: str | None = None
    seconds: float = 0.0

    @property
    def fits(self) -> bool:
        """Whether the measured peak is within the budget (always, for a returned result)."""
        return self.peak_bytes <= self.budget_bytes

    @property
    def headroom_bytes(self) -> int:
        """Budget minus peak, bytes."""
        return self.budget_bytes - self.peak_bytes

    def __str__(self) -> str:
        on = f" on {self.device}" if self.device else ""
        weights = ", ".join(f"conv {i} at {100 * r:g}%" for i, r in self.weights.items()) or "none"
        lines = [
            f"sparse update for a budget of {format_bytes(self.budget_bytes)}{on}",
            f"  biases of the last {self.bias_layers} convs; weights: {weights}; classifier",
            f"  measured peak {format_bytes(self.peak_bytes)} "
            f"(headroom {format_bytes(self.headroom_bytes)})",
            f"  predicted gain {100 * self.predicted_gain:+.1f} points over classifier only",
        ]
        if self.predicted_accuracy is not None:
            lines[-1] += f" (accuracy about {self.predicted_accuracy:.1%})"
        if self.full_peak_bytes is not None:
            lines.append(f"  full update would peak at {format_bytes(self.full_peak_bytes)}")
        lines.append(
            f"  {self.considered} combinations, {len(self.measured)} measured, "
            f"{'exact' if self.exact else 'estimate-guided'}, {self.seconds:.1f} s"
        )
        return "\n".join(lines)


def _budget(budget_bytes: int | None, device: DeviceProfile | str | None) -> tuple[int, str | None]:
    if (budget_bytes is None) == (device is None):
        raise InvalidRecipe(
            "give exactly one of budget_bytes (e.g. 256 * 1024) and device (e.g. 'stm32f746')"
        )
    if device is not None:
        profile = devices.get(device)  # UnknownDevice lists the known names
        return int(profile.training_memory_bytes), profile.name
    ok = isinstance(budget_bytes, (int, float)) and not isinstance(budget_bytes, bool)
    if not ok or not budget_bytes >= 1:  # type: ignore[operator]
        raise InvalidRecipe(f"budget_bytes={budget_bytes!r}: give a number of bytes >= 1")
    return int(budget_bytes), None  # type: ignore[arg-type]


def _memory(
    table: ContributionTable,
    memory_fn: MemoryFn | None,
    model: nn.Module | None,
    example_batch: Any,
    optimizer: OptimizerPart | None,
) -> tuple[MemoryFn, MemoryMeter | None]:
    if memory_fn is not None:
        return memory_fn, None
    if model is not None:
        if example_batch is None:
            raise InvalidRecipe(
                "search_scheme(model=...) also needs example_batch=(inputs, targets)"
            )
        fold_bn = table.meter.fold_bn if table.meter is not None else True
        meter = MemoryMeter(model, example_batch, optimizer, fold_bn=fold_bn)
        return meter.peak, meter
    if table.meter is not None:
        return table.meter.peak, table.meter
    raise InvalidRecipe(
        "nothing to measure memory with: this table has no model (made by hand?); pass "
        "model= and example_batch=, or memory_fn=lambda bias_layers, weights: peak_bytes"
    )


def _too_small(budget: int, cheapest: int, meter: MemoryMeter | None) -> str:
    where = ""
    totals = meter.totals.get(scheme_key(0, {}), {}) if meter is not None else {}
    parts = {
        k: v for k, v in totals.items() if k in ("weights", "gradients", "optimizer", "activations")
    }
    if parts:
        largest = max(parts, key=lambda k: parts[k])
        where = f" (its largest part: {largest}, {format_bytes(parts[largest])})"
    return (
        f"the budget of {format_bytes(budget)} ({budget} bytes) is smaller than the cheapest "
        f"scheme, training the classifier only, which peaks at {format_bytes(cheapest)} "
        f"({cheapest} bytes, {cheapest - budget} bytes over){where}; no sparse update fits. "
        "Try a smaller batch or input resolution, a smaller model, or a device with more memory"
    )


def _describe(key: SchemeKey) -> str:
    """``"bias of last 4 + conv 48 at 25%"``: a scheme in words."""
    parts = ["classifier only" if key[0] == 0 else f"bias of last {key[0]}"]
    parts += [f"conv {i} at {100 * r:g}%" for i, r in key[1]]
    return " + ".join(parts)


def _dominates(big: SchemeKey, small: SchemeKey) -> bool:
    """``big`` trains at least everything ``small`` trains."""
    ratios = dict(big[1])
    return big[0] >= small[0] and all(ratios.get(i, 0.0) >= r for i, r in small[1])


def search_scheme(
    contributions: ContributionTable,
    *,
    budget_bytes: int | None = None,
    device: DeviceProfile | str | None = None,
    model: nn.Module | None = None,
    example_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    optimizer: OptimizerPart | None = None,
    memory_fn: MemoryFn | None = None,
    max_measurements: int = 60,
    compare_full: bool = True,
    progress: bool = True,
) -> SchemeSearchResult:
    """Choose the sparse update with the largest predicted gain whose measured peak fits.

    Parameters
    ----------
    contributions : ContributionTable
        From :func:`contribution_analysis` (or ``ContributionTable.by_hand``).
    budget_bytes : int, optional
        The memory budget in bytes. Give this or ``device``.
    device : DeviceProfile or str, optional
        A device whose ``training_memory_bytes`` is the budget, e.g. ``"stm32f746"``.
    model, example_batch, optimizer : optional
        Measure on this model, batch and optimizer instead of the table's
        own (by default the analysis's, see :class:`MemoryMeter`).
    memory_fn : callable, optional
        ``memory_fn(bias_layers, weights) -> bytes`` instead of measuring,
        for exercises with a memory model of your own.
    max_measurements : int
        Measurements of the exact search before it falls back to the estimate.
    compare_full : bool
        Also measure full update, to show what the sparse update saves.
    progress : bool
        Show a ``tqdm`` bar of the measurements.

    Returns
    -------
    SchemeSearchResult

    Raises
    ------
    DoesNotFit
        If even the cheapest scheme (classifier only) is over the budget;
        the message says by how much.
    odtlab.UnknownDevice
        For an unknown device name (the message lists the known ones).
    InvalidRecipe
        For a bad budget, both or neither of ``budget_bytes`` and ``device``,
        or nothing to measure memory with.
    """
    start = time.perf_counter()
    table = check_table(contributions)
    budget, device_name = _budget(budget_bytes, device)
    measure, meter = _memory(table, memory_fn, model, example_batch, optimizer)
    if device is not None and meter is not None:  # on an MCU, frozen weights stay in flash
        target = devices.get(device)
        measure = functools.partial(meter.need, device=target)
    log: list[tuple[str, int]] = []
    peaks: dict[SchemeKey, int] = {}

    def peak(key: SchemeKey) -> int:
        if key not in peaks:
            peaks[key] = int(measure(key[0], dict(key[1])))
            log.append((_describe(key), peaks[key]))
            bar.update(1)
        return peaks[key]

    bar = tqdm(desc="scheme search", unit="scheme", disable=not progress)
    cheapest = peak(scheme_key(0, {}))
    if cheapest > budget:
        bar.close()
        raise DoesNotFit(_too_small(budget, cheapest, meter))
    base = {c.bias_layers: c.peak_bytes for c in table.bias}
    bias_rows = list(table.bias)
    layers: dict[int, list[Contribution | None]] = {}
    for c in table.weight:
        if c.gain > 0 and c.layer is not None:
            layers.setdefault(c.layer, [None]).append(c)
    count = len(bias_rows) * math.prod(len(v) for v in layers.values())
    if count > _MAX_COMBINATIONS:
        raise InvalidRecipe(
            f"{count} combinations to search (more than {_MAX_COMBINATIONS}); use fewer "
            "weight_candidates or ratios in contribution_analysis"
        )
    # Lower bounds: each option alone. A combination holding a too-big option is never visited.
    singles = [scheme_key(c.bias_layers, {}) for c in bias_rows]
    singles += [scheme_key(0, {c.layer: c.ratio}) for opts in layers.values() for c in opts if c]
    too_big = [key for key in singles if peak(key) > budget]
    combos = []
    for b, *ws in itertools.product(bias_rows, *layers.values()):
        chosen = [w for w in ws if w is not None]
        gain = b.gain + sum(w.gain for w in chosen)
        estimate = base.get(b.bias_layers, 0) + sum(w.extra_bytes for w in chosen)
        key = scheme_key(b.bias_layers, {w.layer: w.ratio for w in chosen})  # type: ignore[misc]
        combos.append((-round(gain, 12), estimate, key, (b, *chosen)))
    combos.sort(key=lambda t: (t[0], t[1], t[2]))
    exact, answer = True, None
    for neg_gain, estimate, key, chosen in combos:
        if any(_dominates(key, bad) for bad in too_big):
            continue
        if len(peaks) >= max_measurements + len(singles) + 1:
            exact = False
            if estimate > budget:
                continue
        if peak(key) <= budget:
            answer = (key, chosen, -neg_gain)
            break
        too_big.append(key)
    if answer is None:  # pragma: no cover - classifier only fits and is among the combinations
        raise RuntimeError("search_scheme found no scheme although classifier only fits")
    key, chosen, gain = answer
    full = meter.full_peak() if (compare_full and meter is not None) else None
    bar.close()
    accuracy = table.baseline_accuracy + gain if table.measured else None
    return SchemeSearchResult(
        scheme=SparseUpdate(
            bias_layers=key[0], weights=dict(key[1]), fold_bn=meter.fold_bn if meter else True
        ),
        bias_layers=key[0],
        weights=dict(key[1]),
        peak_bytes=peaks[key],
        budget_bytes=budget,
        predicted_gain=gain,
        predicted_accuracy=accuracy,
        chosen=tuple(chosen),
        considered=len(combos),
        measured=tuple(log),
        exact=exact,
        full_peak_bytes=full,
        device=device_name,
        seconds=time.perf_counter() - start,
    )
