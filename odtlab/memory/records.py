"""Plain records of one traced forward pass: tensors, steps, saved storages.

They are produced by :mod:`odtlab.memory.trace` and read by the analytic
model, the engine accounting, the timeline and the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["TensorRef", "SavedTensor", "Step", "Trace", "ROOT", "LOSS", "function_kind"]

ROOT = "(model)"
LOSS = "loss"


@dataclass(frozen=True)
class TensorRef:
    """What a step knows about one tensor it reads or writes.

    Attributes
    ----------
    key : int
        Storage identity (views share it).
    storage_bytes : int
        Bytes of the whole storage behind the tensor.
    nbytes : int
        ``numel * element_size`` of this (possibly smaller) view; a gradient
        of this tensor has this many bytes.
    shape : tuple of int
    dtype : torch.dtype
    requires_grad : bool
    role : str
        ``"activation"``, ``"param"``, ``"buffer"`` or ``"batch"``.
    name : str
        Parameter or buffer name for those roles, else ``""``.
    """

    key: int
    storage_bytes: int
    nbytes: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    requires_grad: bool
    role: str
    name: str = ""


@dataclass(frozen=True)
class SavedTensor:
    """One storage kept for backward, counted once.

    Attributes
    ----------
    key : int
        Storage identity.
    nbytes : int
        Bytes of the storage.
    shape : tuple of int
        Shape of the first tensor seen on that storage.
    dtype : torch.dtype
    module : str
        The layer that first saved it (``"(model)"`` for ops in the root's
        ``forward``, ``"loss"`` for the loss).
    step : int
        Index of that step in :attr:`Trace.steps`.
    label : str
        What it is: the backward node that saved it (measured) or the
        formula's name for it (analytic), e.g. ``"input"``, ``"mask"``.
    """

    key: int
    nbytes: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    module: str
    step: int
    label: str


@dataclass
class Step:
    """One layer call or one torch operation of the forward pass or the loss."""

    index: int
    module: str
    kind: str
    phase: str
    inputs: list[TensorRef]
    outputs: list[TensorRef] = field(default_factory=list)
    module_type: str = ""
    # The live call (module or function, args, kwargs, output) for the analytic formulas;
    # dropped by Trace.release().
    call: Any = field(default=None, repr=False, compare=False)

    @property
    def params(self) -> list[TensorRef]:
        """The parameters this step reads."""
        return [t for t in self.inputs if t.role == "param"]

    @property
    def activations_in(self) -> list[TensorRef]:
        """The non-parameter, non-buffer tensors this step reads."""
        return [t for t in self.inputs if t.role in ("activation", "batch")]

    @property
    def needs_backward(self) -> bool:
        """Whether autograd will run a backward for this step."""
        return any(t.requires_grad for t in self.inputs)


@dataclass
class Trace:
    """The steps of one forward + loss, the batch, and (if measured) the saved tensors.

    Attributes
    ----------
    steps : list of Step
        In execution order.
    saved : list of SavedTensor
        Measured storages kept for backward (empty for an analytic trace).
    saved_users : dict
        ``{storage key: indices of every step that keeps it}`` (measured).
    param_names, buffer_names : dict
        ``{storage key: name}`` of the parameters and buffers.
    batch_keys : set
        Storages of the inputs and targets.
    output_keys : set
        Storages of the model's outputs.
    loss_key : int or None
        Storage of the loss.
    held_until : dict
        ``{storage key: step index}`` for tensors bound to a local variable
        of a ``forward``: they live at least until that forward returns,
        which is after step ``held_until[key]``.
    keepalive : list
        References that keep every traced tensor alive (see ``release``).
    device_type : str
        The device the numbers describe: the model's (``"cpu"`` for a model
        on ``meta``, whose analysis predicts the CPU).
    autocast : torch.dtype or None
        The 16-bit dtype of the autocast the forward ran under (real or
        emulated on ``meta``, see :mod:`odtlab.memory.autocast`), or ``None``.
    """

    steps: list[Step]
    saved: list[SavedTensor]
    saved_users: dict[int, set[int]]
    param_names: dict[int, str]
    buffer_names: dict[int, str]
    batch_keys: set[int]
    output_keys: set[int]
    loss_key: int | None
    held_until: dict[int, int] = field(default_factory=dict)
    device_type: str = "cpu"
    autocast: torch.dtype | None = None
    keepalive: list[Any] = field(default_factory=list, repr=False)

    def release(self) -> None:
        """Drop every tensor reference the trace holds (call it when done)."""
        self.keepalive.clear()
        for step in self.steps:
            step.call = None


_METHOD_ALIASES = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add_", "__sub__": "sub",
    "__rsub__": "sub", "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul_",
    "__truediv__": "div", "__rtruediv__": "div", "__matmul__": "matmul",
    "__rmatmul__": "matmul", "__neg__": "neg", "__getitem__": "getitem", "__pow__": "pow",
    "__itruediv__": "div_", "__isub__": "sub_",
}  # fmt: skip


def function_kind(func: Callable[..., Any]) -> str:
    """A readable operation name for a torch function: ``Tensor.__matmul__`` -> ``"matmul"``."""
    name = getattr(func, "__name__", type(func).__name__)
    return _METHOD_ALIASES.get(name, name)
