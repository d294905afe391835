"""Record one forward pass (and the loss) as a list of steps.

A **step** is one call of a known leaf layer (``nn.Conv2d``, ``nn.ReLU``...)
or one torch operation written directly in a module's ``forward`` (the
residual ``x + f(x)``, the ``q @ k.T`` of attention) or in the loss. For each
step we keep the storages it reads and writes, so the memory timeline can
tell when a tensor is born and when it dies, and, when asked, every tensor
that autograd *saves for backward* while the step runs (through
:func:`torch.autograd.graph.saved_tensors_hooks`).

How it works:

* forward pre/post hooks on every module keep a stack of the modules that
  are running; a module whose type the analytic model knows (see
  :data:`odtlab.memory.registry.LAYER_FORMULAS`) is recorded as one step;
* a :class:`torch.overrides.TorchFunctionMode` sees every torch call made
  *outside* such a layer and records it as one step;
* tensors are identified by their storage (:func:`storage_key`), so views
  share an identity and in-place results keep their input's;
* under mixed precision on ``meta`` (where ``torch.autocast`` does nothing)
  the mode also casts each call's arguments as autocast would
  (:mod:`odtlab.memory.autocast`) and notes the casts on the step's call;
* when a module's ``forward`` returns, the tensors still bound to its local
  variables are noted (:attr:`Trace.held_until`): Python frees them only
  then, which matters for the memory timeline (attention's ``q``, ``k``,
  ``v``, ``scores``, ``weights`` all live until ``Attention.forward`` ends).

The tracer keeps every tensor it saw alive until :meth:`Trace.release`, so
storage identities cannot be recycled in the middle of a measurement (on the
CPU the measurement therefore holds the forward's intermediates a little
longer than training itself would).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from odtlab.memory._setup import storage_key
from odtlab.memory.autocast import AutocastEmulator
from odtlab.memory.records import LOSS, ROOT, SavedTensor, Step, TensorRef, Trace, function_kind

__all__ = ["trace_training_forward"]


@dataclass
class _Running:
    """A module whose ``forward`` is running."""

    name: str
    opaque: bool
    type_name: str
    module: nn.Module
    frame: Any = None  # the Python frame of its forward, found at its first torch op


def _forward_frame(module: nn.Module) -> Any:
    """The Python frame of ``module.forward`` (the one running now), or ``None``.

    Helpers called from ``forward`` (``self._split_heads(x)``) have ``self``
    too, so we look for the frame of the method called ``forward`` and stop at
    ``Module.__call__``.
    """
    frame = sys._getframe(2)
    for _ in range(60):
        if frame is None:
            return None
        code = frame.f_code
        if "self" in code.co_varnames and frame.f_locals.get("self") is module:
            if code.co_name == "forward":
                return frame
            if code.co_name in ("_call_impl", "_wrapped_call_impl"):
                return None
        frame = frame.f_back
    return None


@dataclass
class _Call:
    target: Any  # nn.Module or a torch function
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Any = None
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    device_type: str = "cpu"  # the device whose behaviour the formulas predict
    training: bool = True  # the module's train flag while it ran (restored afterwards)
    # id(original) -> its autocast copy, for calls whose tensors an emulated autocast cast
    casts: dict[int, torch.Tensor] = field(default_factory=dict)


def _tensors(obj: Any) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(obj)
    return [x for x in leaves if isinstance(x, torch.Tensor)]


class _Tracer(TorchFunctionMode):
    def __init__(
        self,
        opaque: Callable[[nn.Module], bool],
        param_names: Mapping[int, str],
        buffer_names: Mapping[int, str],
        batch_keys: set[int],
        keep_calls: bool,
        device_type: str = "cpu",
        emulator: AutocastEmulator | None = None,
    ) -> None:
        super().__init__()
        self.emulator = emulator
        self.opaque = opaque
        self.param_names = param_names
        self.buffer_names = buffer_names
        self.batch_keys = batch_keys
        self.keep_calls = keep_calls
        self.device_type = device_type
        self.stack: list[_Running] = []
        self.held_until: dict[int, int] = {}
        self.steps: list[Step] = []
        self.saved: dict[int, SavedTensor] = {}
        self.users: dict[int, set[int]] = {}
        self.keepalive: list[Any] = []
        self.current: Step | None = None
        self.phase = "forward"
        self.busy = False

    # ---- tensor bookkeeping -------------------------------------------------
    def ref(self, t: torch.Tensor) -> TensorRef:
        key = storage_key(t)
        self.keepalive.append(t)
        if key in self.param_names:
            role, name = "param", self.param_names[key]
        elif key in self.buffer_names:
            role, name = "buffer", self.buffer_names[key]
        elif key in self.batch_keys:
            role, name = "batch", ""
        else:
            role, name = "activation", ""
        return TensorRef(
            key=key,
            storage_bytes=int(t.untyped_storage().nbytes()),
            nbytes=t.numel() * t.element_size(),
            shape=tuple(t.shape),
            dtype=t.dtype,
            requires_grad=bool(t.requires_grad),
            role=role,
            name=name,
        )

    def owner(self) -> tuple[str, str]:
        if self.stack:
            return self.stack[-1].name, self.stack[-1].type_name
        return (LOSS, "loss") if self.phase == "loss" else (ROOT, "")

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key in self.param_names or key in self.buffer_names:
            return t
        step = self.current
        user = step.index if step is not None else len(self.steps) - 1
        self.users.setdefault(key, set()).add(user)
        if key in self.saved:
            return t
        self.keepalive.append(t)
        grad_fn = type(t.grad_fn).__name__ if t.grad_fn is not None else ""
        self.saved[key] = SavedTensor(
            key=key,
            nbytes=int(t.untyped_storage().nbytes()),
            shape=tuple(t.shape),
            dtype=t.dtype,
            module=step.module if step is not None else self.owner()[0],
            step=user,
            label=f"made by {grad_fn}" if grad_fn else "tensor without grad_fn",
        )
        return t

    # ---- module hooks ----------------------------------------------------------
    def pre_hook(self, name: str, module: nn.Module, args: Any, kwargs: Any) -> None:
        if self.busy:
            return
        opaque = self.current is None and self.opaque(module)
        type_name = type(module).__name__
        self.stack.append(_Running(name, opaque, type_name, module))
        if opaque:
            self.busy = True
            params = dict(module.named_parameters(recurse=False))
            buffers = dict(module.named_buffers(recurse=False))
            inputs = [self.ref(t) for t in _tensors((args, kwargs))]
            inputs += [self.ref(p) for p in params.values()]
            inputs += [self.ref(b) for b in buffers.values() if isinstance(b, torch.Tensor)]
            self.busy = False
            self.current = Step(
                len(self.steps), name, type_name, self.phase, inputs, module_type=type_name
            )
            if self.keep_calls:
                self.current.call = _Call(
                    module, tuple(args), dict(kwargs), None, params, buffers, self.device_type,
                    training=module.training,
                )  # fmt: skip

    def post_hook(self, name: str, module: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
        if self.busy or not self.stack or self.stack[-1].name != name:
            return
        running = self.stack.pop()
        opaque = running.opaque
        if running.frame is not None:  # its local variables lived until it returned
            self.busy = True
            for value in list(running.frame.f_locals.values()):
                if isinstance(value, torch.Tensor):
                    key = storage_key(value)
                    self.held_until[key] = max(self.held_until.get(key, -1), len(self.steps) - 1)
            self.busy = False
            running.frame = None
        if opaque and self.current is not None:
            self.busy = True
            self.current.outputs = [self.ref(t) for t in _tensors(out)]
            self.busy = False
            if self.current.call is not None:
                self.current.call.output = out
            self.steps.append(self.current)
            self.current = None

    # ---- functions outside known layers -------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if self.busy:
            return func(*args, **kwargs)
        if self.current is not None:  # inside a known layer: only autocast's casts to replay
            args, kwargs = self.autocast(func, args, kwargs, self.current)
            return func(*args, **kwargs)
        self.busy = True
        if self.stack and self.stack[-1].frame is None:
            self.stack[-1].frame = _forward_frame(self.stack[-1].module)
        inputs = [self.ref(t) for t in _tensors((args, kwargs))]
        self.busy = False
        owner, owner_type = self.owner()
        step = Step(
            len(self.steps), owner, function_kind(func), self.phase, inputs, module_type=owner_type
        )
        self.current = step
        if self.keep_calls:
            step.call = _Call(func, tuple(args), dict(kwargs), device_type=self.device_type)
        cast_args, cast_kwargs = self.autocast(func, args, kwargs, step)
        try:
            out = func(*cast_args, **cast_kwargs)
        finally:
            self.current = None
        outs = _tensors(out)
        if outs:
            self.busy = True
            step.outputs = [self.ref(t) for t in outs]
            self.busy = False
            if step.call is not None:
                step.call.output = out
            self.steps.append(step)
        else:
            step.call = None
        return out

    def autocast(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], step: Step
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments as an emulated autocast casts them; the casts are noted on ``step``."""
        if self.emulator is None:
            return args, kwargs
        new_args, new_kwargs, casts = self.emulator.cast(function_kind(func), args, kwargs)
        if casts:
            self.keepalive.extend([*_tensors((args, kwargs)), *casts.values()])
            if step.call is not None:
                step.call.casts.update(casts)
        return new_args, new_kwargs


def trace_training_forward(
    model: nn.Module,
    tensors: Mapping[str, torch.Tensor],
    inputs: Any,
    targets: torch.Tensor,
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
    *,
    param_names: Mapping[int, str],
    buffer_names: Mapping[int, str],
    opaque: Callable[[nn.Module], bool],
    record_saved: bool,
    keep_calls: bool,
    device_type: str = "cpu",
    autocast: torch.dtype | None = None,
    emulate_autocast: bool = False,
) -> Trace:
    """Run ``loss_fn(model(inputs), targets)`` once, recording every step.

    ``tensors`` replaces the model's parameters and buffers (see
    :func:`odtlab.memory._setup.substitutes`). With ``record_saved=True``
    every storage saved for backward that is not a parameter or buffer is
    recorded, once, with the step that saved it first. ``device_type`` is the
    device whose behaviour the formulas should predict (``"cpu"`` for a
    ``meta`` trace of a CPU or ``meta`` model).

    With ``autocast`` (``torch.bfloat16`` or ``torch.float16``) the forward
    and the loss run under ``torch.autocast(device_type, autocast)``, or,
    with ``emulate_autocast=True`` (tensors on ``meta``, which autocast
    ignores), under :class:`~odtlab.memory.autocast.AutocastEmulator`, which
    notes the casts it makes on each step's call.
    """
    batch_keys = {storage_key(t) for t in _tensors((inputs, targets))}
    emulator = AutocastEmulator(autocast, device_type) if autocast and emulate_autocast else None
    tracer = _Tracer(
        opaque, param_names, buffer_names, batch_keys, keep_calls, device_type, emulator
    )
    mixed = (
        torch.autocast(device_type, dtype=autocast)
        if autocast is not None and emulator is None
        else nullcontext()
    )
    handles = []
    for name, module in model.named_modules():
        label = name or ROOT
        handles.append(
            module.register_forward_pre_hook(
                lambda m, a, k, _n=label: tracer.pre_hook(_n, m, a, k), with_kwargs=True
            )
        )
        handles.append(
            module.register_forward_hook(
                lambda m, a, k, o, _n=label: tracer.post_hook(_n, m, a, k, o),
                with_kwargs=True,
                always_call=True,
            )
        )
    hooks = (
        torch.autograd.graph.saved_tensors_hooks(tracer.pack, lambda t: t)
        if record_saved
        else nullcontext()
    )
    try:
        with hooks, mixed, tracer:
            outputs = torch.func.functional_call(model, dict(tensors), (inputs,), strict=False)
            tracer.stack.clear()
            tracer.phase = "loss"
            loss = loss_fn(outputs, targets)
    finally:
        for h in handles:
            h.remove()
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(
            "loss_fn must return a scalar tensor (one element); got "
            + (
                f"shape {tuple(loss.shape)}"
                if isinstance(loss, torch.Tensor)
                else type(loss).__name__
            )
        )
    tracer.keepalive.extend([outputs, loss])
    return Trace(
        steps=tracer.steps,
        saved=list(tracer.saved.values()),
        saved_users=tracer.users,
        param_names=dict(param_names),
        buffer_names=dict(buffer_names),
        batch_keys=batch_keys,
        output_keys={storage_key(t) for t in _tensors(outputs)},
        loss_key=storage_key(loss),
        held_until=tracer.held_until,
        device_type=device_type,
        autocast=autocast,
        keepalive=tracer.keepalive,
    )
