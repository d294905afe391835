"""The continual strategy contract: hooks around one training loop, and the two baselines.

The loop (:func:`odtlab.cl.run_stream`) is written once. A strategy
changes what it does only through hooks that *return* values; none reaches
into the loop's variables (the design of Avalanche's templates and
plugins, Lomonaco et al., CVPR Workshops 2021):

======================  ======================================================
hook                    called when, and what it returns
======================  ======================================================
``setup``               once, before training; raises when the strategy
                        cannot handle the model or the recipe
``trained_module``      the module the loop trains (default: the model)
``encode``              what that module sees of an input (default: itself)
``before_experience``   at the start of each experience
``training_data``       the data of an experience (joint: all seen so far)
``replay``              stored examples to add to the batch, or None
``before_backward``     a penalty added to the loss (EWC, SI, LwF), or None
``before_step``         replacement gradients by name (A-GEM), or None
``after_step``          after each optimizer step, with the batch's new
                        examples (SI's path integral, a buffer's update)
``after_experience``    at the end of each experience (EWC's Fisher)
``memory``              bytes the strategy keeps, by category
======================  ======================================================

:class:`Naive` (fine-tuning, every hook a no-op) is the lower bound that
forgets; :class:`Joint` trains on everything seen so far, the upper bound.

Examples
--------
>>> Naive().memory()
{}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Dataset

from odtlab import data
from odtlab.cl.buffers import state_bytes
from odtlab.cl.errors import InvalidStrategy
from odtlab.cl.streams import Experience, Stream

if TYPE_CHECKING:
    from odtlab.recipes import Recipe

__all__ = ["Strategy", "Naive", "Joint", "trainable_bytes", "trained_parameters", "check_nonnegative"]


def trained_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train, by name (the ones a regulariser anchors)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def check_nonnegative(name: str, value: float) -> float:
    """``value`` as a float, or a clear error when it is not a number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidStrategy(f"{name}={value!r} must be a number >= 0")
    return float(value)


def trainable_bytes(model: nn.Module) -> int:
    """Bytes of the parameters a recipe trains (``requires_grad``); one copy of them.

    Examples
    --------
    >>> trainable_bytes(nn.Linear(3, 2))   # 6 weights + 2 biases, float32
    32
    """
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


class Strategy:
    """Base of every continual strategy: all hooks do nothing (naive fine-tuning).

    Subclasses override only the hooks they need (module docstring) and
    report what they keep with :meth:`memory`, so that every strategy's
    price is counted the same way (:func:`~odtlab.cl.buffers.state_bytes`).
    """

    name = "naive"

    def setup(self, model: nn.Module, recipe: Recipe, stream: Stream) -> None:
        """Check once that this strategy can run ``model`` with ``recipe`` on ``stream``."""

    def trained_module(self, model: nn.Module) -> nn.Module:
        """The part of ``model`` the loop trains and evaluates through (default: all of it)."""
        return model

    def encode(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """What the trained module sees of the inputs ``x`` (default: ``x`` itself)."""
        return x

    def planned_bytes(self, model: nn.Module, stream: Stream) -> int:
        """Bytes the strategy will keep at most on ``stream``, known before training (for the
        device check; ``model`` is the whole model, recipe applied)."""
        return 0

    def replay_size(self, batch_size: int) -> int:
        """How many stored examples each step adds to a batch of ``batch_size`` (0: none)."""
        return 0

    def before_experience(self, model: nn.Module, experience: Experience) -> None:
        """Called before training on ``experience``."""

    def training_data(self, experience: Experience) -> Dataset:
        """The examples to train on during ``experience`` (default: its own train set)."""
        return experience.train

    def replay(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``n`` stored examples (already in the trained module's input space), or None."""
        return None

    def before_backward(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor | None:
        """A penalty to add to the loss of the batch ``(x, y)`` with outputs ``logits``, or None."""
        return None

    def before_step(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """Replacement gradients by parameter name, applied before the optimizer step, or None."""
        return None

    def after_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called after each optimizer step with the new examples of the batch (no replay)."""

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        """Called after training on ``experience``."""

    def memory(self) -> dict[str, int]:
        """Bytes the strategy keeps now, by category (empty: nothing beyond the model)."""
        return {}

    @property
    def memory_bytes(self) -> int:
        """Sum of :meth:`memory`."""
        return sum(self.memory().values())

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_") and _simple(v)}
        inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{type(self).__name__}({inner})"


def _simple(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


class Naive(Strategy):
    """Fine-tune on each experience in turn and nothing else: the baseline that forgets."""

    name = "naive"


class Joint(Strategy):
    """Train on every experience seen so far at once: the upper bound (keeps all data).

    At experience ``i`` the loop trains on the union of experiences
    ``0..i`` (continuing from the current weights), so ``R`` has the same
    shape as for the other strategies. Its memory is all of that data, the
    price no small device can pay.
    """

    name = "joint"

    def __init__(self) -> None:
        self._x: list[torch.Tensor] = []
        self._y: list[torch.Tensor] = []

    def training_data(self, experience: Experience) -> Dataset:
        x, y = data.as_tensors(experience.train)
        self._x.append(x)
        self._y.append(y)
        return data.ArrayDataset(torch.cat(self._x), torch.cat(self._y),
                                 classes=[str(c) for c in range(int(torch.cat(self._y).max()) + 1)])  # fmt: skip

    def memory(self) -> dict[str, int]:
        return {"stored data": state_bytes(self._x + self._y)} if self._x else {}
