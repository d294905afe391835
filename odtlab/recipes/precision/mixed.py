"""In which number format we train: :class:`PrecisionPart` and :class:`MixedPrecision`.

A recipe has at most one *precision* part. It may change the model once
(:meth:`PrecisionPart.apply`, e.g. :class:`~odtlab.recipes.Int8` swaps in
int8 layers) and it wraps every training step: the forward pass and the loss
run inside :meth:`PrecisionPart.autocast`, the backward pass goes through
:meth:`PrecisionPart.backward` and the update through
:meth:`PrecisionPart.step` (a loss scaler hooks in there).

**Mixed precision** (:class:`MixedPrecision`) keeps the weights in fp32 (the
*master weights*: the optimizer updates them in fp32, so small updates are
not lost) and runs the forward pass under :func:`torch.autocast`: matrix
products and convolutions cast their inputs and weights to a 16-bit format
and compute there; reductions and losses stay fp32. What the convolutions
and linear layers save for backward is then their 16-bit input: half the
bytes. Two 16-bit formats:

``"bf16"`` (bfloat16)
    8 exponent bits like fp32, 7 mantissa bits: same range as fp32, so
    gradients never overflow or underflow; no loss scaling needed. The
    default, and the one CPUs support well.
``"fp16"`` (IEEE half)
    5 exponent bits, 10 mantissa bits: more precise, but the largest value
    is 65,504 and values below about 6e-8 become 0, so small gradients
    vanish. A :class:`torch.amp.GradScaler` multiplies the loss by a large
    factor (2**16 at first) before backward and divides the gradients by it
    before the step, skipping the step (and halving the factor) when a
    gradient overflowed. It works on the CPU in PyTorch 2.13. The scaler's
    state is kept per optimizer (one scaler each) and travels with the
    training state: :meth:`PrecisionPart.state_dict` gives it to the
    Trainer's checkpoints and :meth:`PrecisionPart.load_state_dict` puts it
    back on resume, so the scale (and its count of steps since the last
    overflow) continues where it stopped instead of restarting at 2**16 and
    skipping steps again while it recalibrates.

Memory reports (:meth:`Recipe.memory_report`) run the step under the same
autocast (``autocast=`` :attr:`PrecisionPart.autocast_dtype` of
:func:`odtlab.memory.profile_training`). On the CPU they ask autograd what
it saves; for a model on the ``meta`` device, which ``torch.autocast`` does
not touch (it acts per device type), the memory model replays PyTorch's CPU
autocast policy (:mod:`odtlab.memory.autocast`) and agrees with the CPU
measurement to the byte on every zoo model, as the analytic formulas do
(``memory.analytic_saved_tensors(..., autocast=torch.bfloat16)``).
Note that autocast also caches a 16-bit copy of each trained weight and
autograd keeps it for backward: it shows up in the activations (it is not a
parameter), half the size of the weight. A *frozen* weight is cast anew at
every use and its copy is kept too, as soon as the layer's input needs a
gradient.
"""

from __future__ import annotations

import contextlib
import weakref
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.base import RecipePart, check_choice, register_kind

__all__ = ["PrecisionPart", "MixedPrecision", "DTYPES", "model_device_type"]

#: One loss scaler per optimizer (fp16); forgotten with the optimizer.
_SCALERS: weakref.WeakKeyDictionary[torch.optim.Optimizer, torch.amp.GradScaler] = (
    weakref.WeakKeyDictionary()
)

#: The 16-bit formats of :class:`MixedPrecision`, by name.
DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def model_device_type(model: nn.Module) -> str:
    """``"cpu"``, ``"cuda"``...: where ``model``'s first parameter lives (``"cpu"`` if none)."""
    for t in (*model.parameters(), *model.buffers()):
        return "cpu" if t.device.type == "meta" else t.device.type
    return "cpu"


class PrecisionPart(RecipePart):
    """Base of the parts that choose the number format of training.

    The defaults do nothing: plain fp32. A subclass overrides some of
    :meth:`apply`, :meth:`autocast`, :meth:`backward` and :meth:`step`.
    """

    kind: ClassVar[str] = "precision"

    def autocast(self, model: nn.Module) -> AbstractContextManager[Any]:
        """Context manager around the forward pass and the loss (default: nothing)."""
        return contextlib.nullcontext()

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The 16-bit dtype of :meth:`autocast`, for the memory model (default: ``None``)."""
        return None

    @property
    def device_dtype(self) -> str:
        """The arithmetic the simulated device runs (``"fp32"``, ``"fp16"``, ``"int8"``).

        The device's throughput for this format prices a step (chapter 5):
        16-bit formats run at the device's fp16 rate, the int8 graph at its int8 rate.
        """
        return "fp32"

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Run the backward pass of ``loss`` (default: ``loss.backward()``)."""
        loss.backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply the accumulated gradients (default: ``optimizer.step()``)."""
        optimizer.step()

    def state_dict(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """State this part keeps for ``optimizer`` between steps (default: none, ``{}``).

        Plain numbers only, so a checkpoint can hold it and
        ``torch.load(weights_only=True)`` can read it back.
        """
        return {}

    def load_state_dict(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` saved with a checkpoint (default: nothing to do)."""


@dataclass(frozen=True)
class MixedPrecision(PrecisionPart):
    """Train with a 16-bit forward pass and fp32 master weights (see the module docstring).

    Parameters
    ----------
    dtype : {"bf16", "fp16"}
        The 16-bit format of the forward pass; ``"fp16"`` adds a
        :class:`torch.amp.GradScaler`.
    loss_scaling : bool, default True
        ``False`` trains fp16 without the scaler, to see what it is for
        (gradients under about 6e-8 become 0). bf16 never scales.

    Examples
    --------
    >>> from odtlab import models
    >>> from odtlab.recipes import Recipe
    >>> recipe = Recipe(MixedPrecision("bf16"))
    >>> net = recipe.prepare(models.build("cnn"))
    >>> x, y = models.example_batch("cnn", 4, resolution=16)
    >>> with recipe.part("precision").autocast(net):
    ...     net(x).dtype
    torch.bfloat16
    >>> recipe.name
    'full+bf16'
    """

    dtype: str = "bf16"
    loss_scaling: bool = True

    def __post_init__(self) -> None:
        check_choice("MixedPrecision", "dtype", self.dtype, tuple(DTYPES))
        if not isinstance(self.loss_scaling, bool):
            raise InvalidRecipe(
                f"MixedPrecision(loss_scaling={self.loss_scaling!r}): give True or False"
            )

    @property
    def name(self) -> str:
        return self.dtype if self.loss_scaling or self.dtype != "fp16" else "fp16-unscaled"

    @property
    def torch_dtype(self) -> torch.dtype:
        """``torch.bfloat16`` or ``torch.float16``."""
        return DTYPES[self.dtype]

    @property
    def autocast_dtype(self) -> torch.dtype:
        return self.torch_dtype

    @property
    def device_dtype(self) -> str:
        return "fp16"  # bf16 and fp16 are both 16-bit multiply-accumulates on a device

    def autocast(self, model: nn.Module) -> AbstractContextManager[Any]:
        return torch.autocast(device_type=model_device_type(model), dtype=self.torch_dtype)

    def scaler(self, optimizer: torch.optim.Optimizer) -> torch.amp.GradScaler | None:
        """The loss scaler of ``optimizer`` (fp16 only; ``None`` for bf16)."""
        if self.dtype != "fp16" or not self.loss_scaling:
            return None
        if optimizer not in _SCALERS:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            device = params[0].device.type if params else "cpu"
            _SCALERS[optimizer] = torch.amp.GradScaler(device)
        return _SCALERS[optimizer]

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        scaler = self.scaler(optimizer)
        (loss if scaler is None else scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        scaler = self.scaler(optimizer)
        if scaler is None:
            optimizer.step()
            return
        scaler.step(optimizer)  # unscales, skips the step if a gradient is inf/NaN
        scaler.update()

    def state_dict(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The loss scaler's state (scale, growth tracker...); ``{}`` without a scaler."""
        scaler = self.scaler(optimizer)
        return {} if scaler is None else {"loss_scaler": dict(scaler.state_dict())}

    def load_state_dict(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Give ``optimizer``'s scaler the saved scale, so it continues rather than restarts."""
        scaler = self.scaler(optimizer)
        if scaler is not None and state.get("loss_scaler"):
            scaler.load_state_dict(state["loss_scaler"])


register_kind("precision", stage=10)
