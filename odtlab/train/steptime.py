"""Predict a training step's time operator by operator, and check it against a stopwatch.

The roofline of :func:`odtlab.devices.simulate` treats a whole step as one
job: all its FLOPs at the device's peak, all its bytes at its bandwidth,
the larger wins. Here the step is split into the PyTorch operators it runs
(``aten.addmm``, ``aten.convolution_backward``, ``aten.relu``, the
optimizer's ``aten.add_``, ...), recorded with a ``TorchDispatchMode``, and
each operator gets its own roofline:

``time(op) = max(flops / (2 * macs_per_second), bytes / bandwidth) + overhead``

* ``flops`` by PyTorch's own formulas (``torch.utils.flop_counter``; 0 for
  element-wise operators such as ``relu`` or ``add_``);
* ``bytes``: every tensor the operator reads (its tensor arguments) and
  writes (its outputs), once each, with no reuse from caches; views (``t``,
  ``view``, ``expand``) move nothing;
* ``overhead``: a fixed time per operator (Python, the dispatcher, autograd's
  bookkeeping, allocation), measured by :func:`measure_op_overhead` as the
  time of a training step of a tiny network (a few 4-wide layers, where the
  arithmetic is negligible) over its number of operators. It is why a tiny
  layer takes microseconds however few FLOPs it has.

The roofline assumes every kernel reaches the machine's peak; real kernels
on small tensors do not. An **efficiency** (the fraction of the roofline's
speed the kernels reach, between 0 and 1) divides the roofline time; it is
*fitted* on one model with :func:`fit_efficiency` and then *predicts* the
others, as one calibrates a simulator against one measured run.

:func:`predicted_vs_measured` prints, for zoo models on this machine, the
whole-step roofline, the per-operator roofline, the per-operator roofline
with overhead and fitted efficiency, the measured step time (the fastest of
repeated eager steps: forward, loss, backward, SGD) and the errors in %;
chapter 5 ("Time, energy and heat") prints and discusses it.

Examples
--------
>>> import torch
>>> layer = torch.nn.Linear(256, 128)
>>> costs = step_costs(layer, (torch.randn(32, 256), torch.randn(32, 128)), loss="mse")
>>> [(c.op, c.flops) for c in costs if c.flops][:1]      # the forward product
[('addmm', 2097152.0)]
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from odtlab.devices import DeviceProfile, fastest_call_seconds, get, measure_host
from odtlab.models import build, example_batch

__all__ = ["OpCost", "step_costs", "predict_step_time", "measure_step_time", "measure_op_overhead",
           "fit_efficiency", "predicted_vs_measured", "ROOFLINE_CASES"]  # fmt: skip

ROOFLINE_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("mlp", {}),
    ("transformer", {}),
    ("cnn", {"resolution": 32}),
    ("mcunet", {"resolution": 48}),
    ("mobilenetv2", {"resolution": 48, "width_mult": 0.35}),
)
"""The zoo models :func:`predicted_vs_measured` times by default, with their batch settings."""


@dataclass(frozen=True)
class OpCost:
    """One operator of a training step: its name, FLOPs and bytes read plus written."""

    op: str
    flops: float
    bytes: float


def _bytes(values: Any) -> int:
    leaves, _ = tree_flatten(values)
    seen, total = set(), 0
    for t in leaves:
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


class _Tally(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.costs: list[OpCost] = []
        self.formulas = FlopCounterMode(display=False).flop_registry

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        formula = self.formulas.get(packet)
        flops = float(formula(*args, **kwargs, out_val=out)) if formula else 0.0
        moved = 0 if func.is_view else _bytes((args, kwargs)) + _bytes(out)
        self.costs.append(OpCost(packet.__name__, flops, float(moved)))
        return out


def _loss_fn(loss: str) -> Any:
    losses = {"cross_entropy": nn.functional.cross_entropy, "mse": nn.functional.mse_loss}
    if loss not in losses:
        raise ValueError(f"loss must be one of {sorted(losses)}, got {loss!r}")
    return losses[loss]


def _sgd_step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], loss: str,
              lr: float) -> tuple[Any, Any]:  # fmt: skip
    """A fresh copy of ``model``, its SGD and one step's closure (zero_grad, forward, backward, update)."""
    net = copy.deepcopy(model)
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr,
                                foreach=False)  # fmt: skip
    fn, (x, y) = _loss_fn(loss), batch

    def step() -> None:
        optimizer.zero_grad(set_to_none=False)
        fn(net(x), y).backward()
        optimizer.step()

    return net, step


def step_costs(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], *,
               loss: str = "cross_entropy", lr: float = 0.01) -> list[OpCost]:  # fmt: skip
    """Every operator of one SGD training step of a copy of ``model``, in the order they run.

    The step is ``zero_grad``, forward, ``loss``, backward and a plain SGD
    update (no foreach kernels) of the parameters that require grad; one
    step runs first, untallied, so that the gradients exist.
    """
    _, step = _sgd_step(model, batch, loss, lr)
    step()
    tally = _Tally()
    with tally:
        step()
    return tally.costs


def predict_step_time(costs: Sequence[OpCost], device: DeviceProfile | str, *,
                      overhead_s: float = 0.0, efficiency: float = 1.0,
                      per_op: bool = True) -> float:  # fmt: skip
    """Predicted seconds of a step on ``device`` (fp32), from :func:`step_costs`.

    Parameters
    ----------
    costs : sequence of OpCost
    device : DeviceProfile or str
    overhead_s : float
        Seconds added per operator (see the module notes).
    efficiency : float
        Fraction of the roofline's speed the kernels reach, in (0, 1]: the
        roofline time is divided by it (see :func:`fit_efficiency`).
    per_op : bool
        ``True``: the sum of every operator's roofline; ``False``: one
        roofline for the whole step (all FLOPs, all bytes), as
        :func:`odtlab.devices.simulate` does, plus the overheads.
    """
    profile = get(device)
    flop_rate = 2 * profile.macs_per_second["fp32"]
    bandwidth = profile.memory_bandwidth_bytes_per_s
    if overhead_s < 0:
        raise ValueError(f"overhead_s must be >= 0, got {overhead_s!r}")
    if not 0 < efficiency <= 1:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency!r}")
    if per_op:
        roof = sum(max(c.flops / flop_rate, c.bytes / bandwidth) for c in costs)
    else:
        roof = max(sum(c.flops for c in costs) / flop_rate, sum(c.bytes for c in costs) / bandwidth)
    return roof / efficiency + overhead_s * len(costs)


def fit_efficiency(costs: Sequence[OpCost], measured_s: float, device: DeviceProfile | str, *,
                   overhead_s: float = 0.0) -> float:  # fmt: skip
    """The efficiency that makes :func:`predict_step_time` equal ``measured_s`` on this step.

    ``roofline / (measured - overhead * ops)``, clipped to (0, 1].

    Raises
    ------
    ValueError
        If the overheads alone exceed the measured time (nothing is left to fit).
    """
    roof = predict_step_time(costs, device)
    left = measured_s - overhead_s * len(costs)
    if left <= 0:
        raise ValueError(f"the overheads ({overhead_s * len(costs):.3g} s) already exceed the measured "
                         f"{measured_s:.3g} s; fit the efficiency on a model with more arithmetic")  # fmt: skip
    return min(1.0, roof / left)


def measure_step_time(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], *,
                      seconds: float = 0.3, loss: str = "cross_entropy", lr: float = 0.01,
                      at_least: int = 3) -> float:  # fmt: skip
    """The fastest of repeated SGD steps of a copy of ``model`` on ``batch``, in seconds (after a warm-up)."""
    _, step = _sgd_step(model, batch, loss, lr)
    return fastest_call_seconds(step, seconds, at_least=at_least)


def measure_op_overhead(seconds: float = 0.2) -> float:
    """Seconds per operator of a training step that does almost no arithmetic.

    A 4-wide, three-layer MLP on one example: the fastest of repeated steps
    (:func:`measure_step_time`) divided by its number of operators
    (:func:`step_costs`).
    """
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    batch = (torch.ones(1, 4), torch.zeros(1, dtype=torch.long))
    return measure_step_time(net, batch, seconds=seconds) / len(step_costs(net, batch))


def predicted_vs_measured(
    cases: Sequence[tuple[str, dict[str, Any]]] = ROOFLINE_CASES,
    *,
    device: DeviceProfile | None = None,
    overhead_s: float | None = None,
    calibrate_on: str = "cnn",
    batch_size: int = 8,
    seconds: float = 0.15,
) -> list[dict[str, Any]]:
    """Predicted and measured step times of zoo models on this machine, one row each.

    Parameters
    ----------
    cases : sequence of (name, settings)
        Zoo names with ``resolution`` and model keyword arguments (default
        :data:`ROOFLINE_CASES`).
    device : DeviceProfile, optional
        This machine's profile; :func:`odtlab.devices.measure_host` by default.
    overhead_s : float, optional
        Seconds per operator; :func:`measure_op_overhead` by default.
    calibrate_on : str
        The case whose measured time fits the efficiency (:func:`fit_efficiency`);
        its own error is 0 by construction, the others are predictions.
    batch_size : int
    seconds : float
        Time to spend timing each model.

    Returns
    -------
    list of dict
        ``model``, ``MFLOP`` and ``MB`` moved per step, ``ops``, then in ms
        ``whole-step roofline``, ``per-op roofline``, ``calibrated`` (per-op
        roofline / efficiency + overhead) and ``measured``; ``roofline error %``
        (of the per-op roofline) and ``error %`` (of the calibrated one), each
        ``100 * (predicted - measured) / measured``; ``efficiency``.
    """
    names = [name for name, _ in cases]
    if calibrate_on not in names:
        raise ValueError(f"calibrate_on must be one of the cases {names}, got {calibrate_on!r}")
    host = measure_host(1.0) if device is None else device
    overhead = measure_op_overhead() if overhead_s is None else float(overhead_s)
    timed = []
    for name, settings in cases:
        kwargs = dict(settings)
        resolution = kwargs.pop("resolution", None)
        model = build(name, seed=0, **kwargs)
        batch = example_batch(name, batch_size, resolution=resolution, **kwargs)
        timed.append(
            (
                name,
                step_costs(model, batch),
                measure_step_time(model, batch, seconds=seconds, at_least=4),
            )
        )
    costs_of = {name: (costs, measured) for name, costs, measured in timed}
    efficiency = fit_efficiency(*costs_of[calibrate_on], host, overhead_s=overhead)
    rows = []
    for name, costs, measured in timed:
        roof = predict_step_time(costs, host)
        calibrated = predict_step_time(costs, host, overhead_s=overhead, efficiency=efficiency)
        rows.append({
            "model": name, "MFLOP": sum(c.flops for c in costs) / 1e6,
            "MB": sum(c.bytes for c in costs) / 1e6, "ops": len(costs),
            "whole-step roofline": 1e3 * predict_step_time(costs, host, per_op=False),
            "per-op roofline": 1e3 * roof, "calibrated": 1e3 * calibrated, "measured": 1e3 * measured,
            "roofline error %": 100 * (roof - measured) / measured,
            "error %": 100 * (calibrated - measured) / measured, "efficiency": efficiency,
        })  # fmt: skip
    return rows
