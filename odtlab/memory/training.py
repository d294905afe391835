"""``profile_training``: the one call that gives a :class:`TrainingMemoryReport`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from odtlab.memory._session import run_trace
from odtlab.memory._setup import (
    ACCOUNTINGS,
    METHODS,
    OPTIMIZER_NAMES,
    LossFn,
    TrainableSpec,
    check_choice,
    storage_key,
)
from odtlab.memory.analytic import predict_saved_tensors
from odtlab.memory.engine import engine_saved_tensors, engine_weight_bytes
from odtlab.memory.flops import training_flops
from odtlab.memory.inference import simulate_inference
from odtlab.memory.optimizer_state import OptimizerSpec, make_optimizer, measure_optimizer_state
from odtlab.memory.records import LOSS, ROOT, TensorRef, Trace
from odtlab.memory.report import LayerMemory, TrainingMemoryReport
from odtlab.memory.saved import SavedActivations
from odtlab.memory.timeline import simulate_training_step
from odtlab.memory.workspace import backward_workspace, forward_workspace

__all__ = ["profile_training", "analytic_report"]

_ADAM_FAMILY = ("Adam", "AdamW")


def _check_optimizer(optimizer: OptimizerSpec) -> None:
    if isinstance(optimizer, str) or not callable(optimizer):
        if optimizer not in OPTIMIZER_NAMES:
            make_optimizer(optimizer, [])  # raises the message listing the allowed values


def _no_scratch(step: object) -> int:
    return 0


def _engine_size(ref: TensorRef) -> int:
    """1 byte per element for floating tensors, integer tensors as they are."""
    return math.prod(ref.shape) if ref.dtype.is_floating_point else ref.nbytes


def _weights(model: nn.Module) -> int:
    seen = {}
    for t in (*model.parameters(), *model.buffers()):
        seen[storage_key(t)] = t.numel() * t.element_size()
    return sum(seen.values())


def _frozen_bytes(model: nn.Module, chosen: dict[str, bool], accounting: str) -> int:
    """Bytes of the frozen parameters: int8 in the engine, as stored in PyTorch."""
    seen = {}
    for name, p in model.named_parameters():
        if not chosen[name]:
            seen[storage_key(p)] = p.numel() * (1 if accounting == "engine" else p.element_size())
    return sum(seen.values())


def _layers(
    model: nn.Module,
    trace: Trace,
    saved: SavedActivations,
    chosen: dict[str, bool],
    optimizer_by_param: dict[str, int],
    accounting: str,
) -> list[LayerMemory]:
    modules = dict(model.named_modules())
    order: list[str] = []
    for step in trace.steps:
        if step.module not in order:
            order.append(step.module)
    for name, module in modules.items():  # layers with weights that the forward never ran
        label = name or ROOT
        if label not in order and any(True for _ in module.parameters(recurse=False)):
            order.append(label)
    activations = saved.by_module()
    records = []
    for label in order:
        module = modules.get("" if label == ROOT else label)
        params = dict(module.named_parameters(recurse=False)) if module is not None else {}
        buffers = list(module.buffers(recurse=False)) if module is not None else []
        prefix = "" if label == ROOT else label + "."
        trained = {n: chosen.get(prefix + n, False) for n in params}
        if accounting == "engine":
            weight = sum(p.numel() * (4 if trained[n] else 1) for n, p in params.items())
        else:
            weight = sum(p.numel() * p.element_size() for p in params.values())
        weight += sum(b.numel() * b.element_size() for b in buffers)
        grads = sum(p.numel() * p.element_size() for n, p in params.items() if trained[n])
        opt = sum(optimizer_by_param.get(prefix + n, 0) for n in params)
        type_name = (
            type(module).__name__ if module is not None else ("loss" if label == LOSS else "")
        )
        records.append(
            LayerMemory(label, type_name, int(weight), int(grads), int(opt),
                        int(activations.get(label, 0)), any(trained.values()))
        )  # fmt: skip
    return records


def profile_training(
    model: nn.Module,
    example_batch: tuple[Any, torch.Tensor],
    loss_fn: LossFn | None = None,
    optimizer: OptimizerSpec = "sgd",
    trainable: TrainableSpec | Iterable[str] = None,
    *,
    accounting: str = "pytorch",
    method: str = "measured",
    flops: bool = True,
    train: bool = True,
    autocast: Any = None,
    fused_update: bool = False,
) -> TrainingMemoryReport:
    """Measure the memory of one training step of ``model`` on ``example_batch``.

    Parameters
    ----------
    model : nn.Module
        Never changed: weights, buffers, ``requires_grad`` flags, train mode
        and torch's random state are as before. The optimizer steps on
        ``meta`` stand-ins of the trainable parameters, not on the model.
    example_batch : (inputs, targets)
        The loss is ``loss_fn(model(inputs), targets)``.
    loss_fn : callable or None
        ``None`` means cross-entropy (sequence logits are flattened).
    optimizer : str or callable
        ``"sgd"``, ``"momentum"`` (SGD, momentum 0.9), ``"adam"``,
        ``"adamw"``, or ``params -> torch.optim.Optimizer``.
    trainable : None, str, iterable of str, or callable
        ``None``: the parameters with ``requires_grad=True``; names or dotted
        prefixes (``["classifier"]`` trains the head only); or
        ``(name, param) -> bool``.
    accounting : {"pytorch", "engine"}
        What PyTorch stores, or what a memory-optimised engine stores
        (TinyTL / 256 KB conventions, :mod:`odtlab.memory.engine`).
    method : {"measured", "analytic"}
        ``"measured"`` runs the forward for real and asks autograd what it
        keeps; ``"analytic"`` runs on ``meta`` and applies per-layer
        formulas (no memory, fast; the two agree exactly on the zoo).
    flops : bool
        Also count forward and backward FLOPs (on ``meta``).
    train : bool
        ``True``: switch to train mode for the measurement (BatchNorm uses
        batch statistics, dropout is on), then restore every module's mode.
        ``False``: keep each module in the mode it is in (e.g. a frozen
        backbone in eval mode).
    autocast : torch.dtype, str or None
        Mixed precision: ``torch.bfloat16``/``"bf16"`` or
        ``torch.float16``/``"fp16"`` runs the forward and the loss under
        ``torch.autocast`` (emulated on ``meta``, see
        :mod:`odtlab.memory.autocast`); ``None`` follows the autocast already
        enabled around the call, if any (else fp32).
    fused_update : bool
        Each trainable tensor is updated in backward and its gradient freed
        at once (the 256 KB paper's in-place update,
        :class:`~odtlab.recipes.UpdateInBackward`); see
        :func:`~odtlab.memory.simulate_training_step`.

    Returns
    -------
    TrainingMemoryReport
        ``report.totals`` maps ``"weights"``, ``"gradients"``,
        ``"optimizer"``, ``"activations"`` and ``"peak"`` to bytes.
        ``"gradients"`` is the bytes of all trainable gradients, alive
        together at the end of backward; with ``fused_update=True`` it is
        the most gradient bytes alive at once (those of one layer's
        tensors, the largest such layer), since no whole gradient exists.

    Examples
    --------
    >>> from odtlab import models
    >>> model = models.build("cnn")
    >>> report = profile_training(model, models.example_batch("cnn"), optimizer="adam")
    >>> sorted(report.totals)
    ['activations', 'gradients', 'optimizer', 'peak', 'weights']
    """
    check_choice("accounting", accounting, ACCOUNTINGS)
    check_choice("method", method, METHODS)
    _check_optimizer(optimizer)
    analytic = method == "analytic"
    trace, chosen = run_trace(
        model, example_batch, loss_fn, trainable, meta=analytic, record_saved=not analytic,
        train=train, autocast=autocast,
    )  # fmt: skip
    try:
        if accounting == "engine":
            saved = engine_saved_tensors(trace)
        elif analytic:
            saved = predict_saved_tensors(trace)
        else:
            saved = SavedActivations(list(trace.saved), "measured", dict(trace.saved_users))
        state = measure_optimizer_state(model, optimizer, chosen=chosen)
        trained = {n: p for n, p in model.named_parameters() if chosen[n]}
        param_grads = {n: p.numel() * p.element_size() for n, p in trained.items()}
        if accounting == "engine":
            weights = engine_weight_bytes(model, chosen)
            timeline = simulate_training_step(
                trace, saved.lifetimes(), weights=weights, param_grads=param_grads,
                optimizer_state=state.total_bytes, tensor_bytes=_engine_size,
                grad_bytes=_engine_size, fused_update=fused_update,
            )  # fmt: skip
            inference = simulate_inference(trace, weights=weights, tensor_bytes=_engine_size)
        else:
            weights = _weights(model)
            adam = state.optimizer in _ADAM_FAMILY  # two temporaries per tensor update
            workspace = 2 * max(param_grads.values()) if adam else 0
            cpu = trace.device_type == "cpu"  # the kernel scratch rules are the CPU's
            timeline = simulate_training_step(
                trace, saved.lifetimes(), weights=weights, param_grads=param_grads,
                optimizer_state=state.total_bytes, optimizer_workspace=workspace,
                fused_update=fused_update,
                update_workspace=(lambda n: 2 * param_grads[n]) if adam else (lambda n: 0),
                forward_scratch=forward_workspace if cpu else _no_scratch,
                backward_scratch=backward_workspace if cpu else _no_scratch,
            )  # fmt: skip
            inference = simulate_inference(
                trace, weights=weights,
                forward_scratch=(lambda s: forward_workspace(s, grad=False)) if cpu else _no_scratch,
            )  # fmt: skip
        batch_bytes = timeline.events[0].live["batch"]
        layers = _layers(model, trace, saved, chosen, state.by_parameter, accounting)
    finally:
        trace.release()
    totals = {
        "weights": int(weights),
        "gradients": int(
            max(e.live["gradients"] for e in timeline.events)
            if fused_update
            else sum(param_grads.values())
        ),
        "optimizer": int(state.total_bytes),
        "activations": int(saved.total_bytes),
        "peak": int(timeline.peak),
    }
    return TrainingMemoryReport(
        totals=totals,
        layers=layers,
        accounting=accounting,
        method=method,
        optimizer=state.optimizer,
        inference_peak=int(inference.peak),
        timeline=timeline,
        flops=(
            training_flops(model, example_batch, loss_fn, lambda n, p: chosen[n]) if flops else None
        ),
        saved=saved,
        batch_bytes=int(batch_bytes),
        label=type(model).__name__,
        frozen_weight_bytes=_frozen_bytes(model, chosen, accounting),
    )


def analytic_report(
    model: nn.Module,
    example_batch: tuple[Any, torch.Tensor],
    loss_fn: LossFn | None = None,
    optimizer: OptimizerSpec = "sgd",
    trainable: TrainableSpec | Iterable[str] = None,
    *,
    accounting: str = "pytorch",
    flops: bool = True,
    autocast: Any = None,
    fused_update: bool = False,
) -> TrainingMemoryReport:
    """:func:`profile_training` on the ``meta`` device with the per-layer formulas.

    Nothing is allocated, so it suits big models and big batches (build the
    model and the batch with ``device="meta"``). The activation bytes equal
    the measured ones exactly on every zoo model, in fp32 and under
    ``autocast=torch.bfloat16`` or ``torch.float16`` (mixed precision).
    """
    return profile_training(
        model, example_batch, loss_fn, optimizer, trainable, accounting=accounting,
        method="analytic", flops=flops, autocast=autocast, fused_update=fused_update,
    )  # fmt: skip
