"""Optimizer state, measured from a real optimizer after one step (never from a table).

We build the optimizer on *stand-ins* of the trainable parameters: empty
tensors on the ``meta`` device with a zero ``.grad``, so the model's weights
are never touched and no memory is used. One ``step()`` creates the state
exactly as it would on the real parameters; we add up the bytes of every
tensor in ``optimizer.state`` (each storage once). torch 2.13 steps fine on
``meta`` (we pass ``foreach=False``, the CPU default anyway); an optimizer
that cannot is stepped on zero-filled CPU copies instead.

What you will find, per trainable parameter tensor ``p`` (fp32):

=============  =======================================================
``"sgd"``      nothing
``"momentum"`` one ``momentum_buffer`` like ``p``: ``p.nbytes``
``"adam"``     ``exp_avg`` and ``exp_avg_sq`` (``2 * p.nbytes``) plus a
               ``step`` counter, a float32 scalar tensor: **4 bytes per
               parameter tensor** (it lives on the CPU even for a GPU
               model unless ``capturable``/``fused``); counted honestly
``"adamw"``    the same as Adam
=============  =======================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from odtlab.memory._setup import (
    OPTIMIZER_NAMES,
    TrainableSpec,
    select_trainable,
    storage_key,
)
from odtlab.memory.errors import MemoryArgumentError

__all__ = ["OptimizerState", "OptimizerSpec", "make_optimizer", "measure_optimizer_state"]

OptimizerSpec = str | Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer]


@dataclass
class OptimizerState:
    """Bytes of optimizer state after the first step.

    Attributes
    ----------
    total_bytes : int
        Every state tensor, each storage once.
    by_parameter : dict
        ``{parameter name: bytes}`` of the state attached to it.
    step_bytes : int
        Part of ``total_bytes`` held by scalar ``step`` counters.
    optimizer : str
        Class name, e.g. ``"Adam"``.
    state_names : dict
        ``{state key: bytes}``, e.g. ``{"exp_avg": ..., "exp_avg_sq": ..., "step": ...}``.
    """

    total_bytes: int
    by_parameter: dict[str, int]
    step_bytes: int
    optimizer: str
    state_names: dict[str, int] = field(default_factory=dict)


def make_optimizer(
    optimizer: OptimizerSpec, params: Iterable[torch.Tensor]
) -> torch.optim.Optimizer:
    """Build the optimizer named by ``optimizer`` (or call the factory) on ``params``.

    ``"sgd"``: plain SGD; ``"momentum"``: SGD with momentum 0.9; ``"adam"``,
    ``"adamw"``: default hyper-parameters. All with ``foreach=False``, the
    single-tensor implementation PyTorch uses on the CPU.
    """
    params = list(params)
    if isinstance(optimizer, str):
        if optimizer == "sgd":
            return torch.optim.SGD(params, lr=0.01, foreach=False)
        if optimizer == "momentum":
            return torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=False)
        if optimizer == "adam":
            return torch.optim.Adam(params, foreach=False)
        if optimizer == "adamw":
            return torch.optim.AdamW(params, foreach=False)
        raise MemoryArgumentError(
            f"optimizer must be one of {', '.join(repr(n) for n in OPTIMIZER_NAMES)} or a callable "
            f"params -> torch.optim.Optimizer; got {optimizer!r}"
        )
    if not callable(optimizer):
        raise MemoryArgumentError(
            f"optimizer must be one of {', '.join(repr(n) for n in OPTIMIZER_NAMES)} or a callable "
            f"params -> torch.optim.Optimizer; got {type(optimizer).__name__}"
        )
    built = optimizer(params)
    if not isinstance(built, torch.optim.Optimizer):
        raise MemoryArgumentError(
            "the optimizer callable must return a torch.optim.Optimizer; got "
            f"{type(built).__name__}"
        )
    return built


def _stand_ins(
    model: nn.Module, chosen: Mapping[str, bool], device: str
) -> dict[str, torch.Tensor]:
    out = {}
    for name, p in model.named_parameters():
        if chosen[name]:
            if device == "meta":
                t = torch.empty_like(p, device="meta")
            else:
                t = torch.zeros(p.shape, dtype=p.dtype, device="cpu")
            t.requires_grad_(True)
            t.grad = torch.zeros_like(t)
            out[name] = t
    return out


def measure_optimizer_state(
    model: nn.Module,
    optimizer: OptimizerSpec = "sgd",
    trainable: TrainableSpec = None,
    *,
    chosen: Mapping[str, bool] | None = None,
) -> OptimizerState:
    """Measure the optimizer state of training ``model`` after one step.

    Parameters
    ----------
    model : nn.Module
        Only parameter shapes and dtypes are read.
    optimizer : str or callable
        ``"sgd"``, ``"momentum"``, ``"adam"``, ``"adamw"``, or
        ``params -> torch.optim.Optimizer``.
    trainable : None, names/prefixes, or callable
        Which parameters are trained (see :func:`odtlab.memory.profile_training`).
    chosen : mapping, optional
        An already resolved ``{name: trainable}`` map (overrides ``trainable``).

    Returns
    -------
    OptimizerState

    Examples
    --------
    >>> net = nn.Linear(10, 10)                      # 110 parameters, 440 bytes
    >>> measure_optimizer_state(net, "adam").total_bytes   # 2 x 440 + 2 step counters x 4
    888
    """
    if isinstance(optimizer, str) and optimizer not in OPTIMIZER_NAMES:
        make_optimizer(optimizer, [])  # raises the helpful error
    chosen = dict(chosen) if chosen is not None else select_trainable(model, trainable)
    try:
        params = _stand_ins(model, chosen, "meta")
        opt = make_optimizer(optimizer, params.values())
        opt.step()
    except MemoryArgumentError:
        raise
    except Exception:  # an optimizer that cannot step on meta: use zero-filled CPU copies
        params = _stand_ins(model, chosen, "cpu")
        opt = make_optimizer(optimizer, params.values())
        opt.step()
    names = {id(t): name for name, t in params.items()}
    seen: set[int] = set()
    total = step_bytes = 0
    by_parameter: dict[str, int] = {}
    state_names: dict[str, int] = {}
    for param, state in opt.state.items():
        for key, value in state.items():
            if not isinstance(value, torch.Tensor) or storage_key(value) in seen:
                continue
            seen.add(storage_key(value))
            nbytes = int(value.untyped_storage().nbytes())
            total += nbytes
            if key == "step":
                step_bytes += nbytes
            name = names.get(id(param), "?")
            by_parameter[name] = by_parameter.get(name, 0) + nbytes
            state_names[key] = state_names.get(key, 0) + nbytes
    return OptimizerState(total, by_parameter, step_bytes, type(opt).__name__, state_names)
