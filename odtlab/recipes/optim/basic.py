"""Optimizer parts: :class:`SGD`, :class:`Momentum`, :class:`Adam`, :class:`AdamW`, :class:`Adafactor`.

A recipe has at most one; without one it trains with ``SGD(lr=0.05)``.
The optimizer matters for memory because of its *state*, kept for every
trainable parameter ``p`` from the first ``step()`` on (fp32):

==================  =========================================================
``SGD()``           nothing
``Momentum()``      one momentum buffer: ``p.nbytes``
``Adam()``          ``exp_avg`` and ``exp_avg_sq``: ``2 * p.nbytes``, plus a
                    4-byte ``step`` counter per parameter *tensor*
``AdamW()``         the same as Adam
``Adafactor()``     a *factored* second moment: for a tensor of shape
                    ``(..., m, n)`` one row (``... x m``) and one column
                    (``... x n``) statistic instead of ``m x n`` values; no
                    first moment. 1-D tensors keep a full second moment.
==================  =========================================================

:meth:`Recipe.memory_report` measures the state by building this very
optimizer (see :func:`odtlab.memory.measure_optimizer_state`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from odtlab.errors import InvalidRecipe
from odtlab.recipes.base import RecipePart, check_positive_float, register_kind

__all__ = ["OptimizerPart", "SGD", "Momentum", "Adam", "AdamW", "Adafactor"]


class OptimizerPart(RecipePart, ABC):
    """Base of the optimizer parts: :meth:`build` makes the ``torch.optim`` optimizer."""

    kind: ClassVar[str] = "optimizer"

    @abstractmethod
    def build(self, params: Iterable[Any], *, foreach: bool | None = None) -> torch.optim.Optimizer:
        """Build the optimizer on ``params`` (tensors or param-group dicts).

        ``foreach=False`` asks for the single-tensor implementation, the one
        the memory timeline models (and PyTorch's CPU default).
        """


def check_betas(part: str, betas: tuple[float, float]) -> None:
    ok = (
        isinstance(betas, tuple)
        and len(betas) == 2
        and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
    )
    if not ok:
        raise InvalidRecipe(f"{part}(betas={betas!r}): betas must be two numbers in [0, 1)")


@dataclass(frozen=True)
class SGD(OptimizerPart):
    """Stochastic gradient descent: ``p -= lr * (grad + weight_decay * p)``.

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    momentum : float
        0 for plain SGD (no state); e.g. 0.9 keeps one buffer per parameter.
    weight_decay : float
        L2 penalty (>= 0); adds no state.

    Examples
    --------
    >>> SGD().name, SGD(momentum=0.9).name
    ('sgd', 'sgd(m=0.9)')
    """

    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        check_positive_float(type(self).__name__, "lr", self.lr)
        check_positive_float(type(self).__name__, "momentum", self.momentum, zero=True)
        check_positive_float(type(self).__name__, "weight_decay", self.weight_decay, zero=True)

    @property
    def name(self) -> str:
        return "sgd" if self.momentum == 0 else f"sgd(m={self.momentum:g})"

    def build(self, params: Iterable[Any], *, foreach: bool | None = None) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
            foreach=foreach,
        )  # fmt: skip


@dataclass(frozen=True)
class Momentum(SGD):
    """SGD with momentum 0.9 by default: one extra buffer per trainable parameter.

    Examples
    --------
    >>> Momentum().name, Momentum().momentum
    ('momentum', 0.9)
    """

    momentum: float = 0.9

    @property
    def name(self) -> str:
        return "momentum" if self.momentum == 0.9 else f"momentum({self.momentum:g})"


@dataclass(frozen=True)
class Adam(OptimizerPart):
    """Adam (Kingma and Ba, 2015): two moment buffers per trainable parameter.

    Parameters
    ----------
    lr : float
        Learning rate, 1e-3 by default.
    betas : (float, float)
        Decay rates of the first and second moment.
    eps : float
        Added to the denominator.
    weight_decay : float
        L2 penalty added to the gradient (for decoupled decay use :class:`AdamW`).

    Examples
    --------
    >>> Adam().name
    'adam'
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_positive_float(name, "lr", self.lr)
        check_positive_float(name, "eps", self.eps)
        check_positive_float(name, "weight_decay", self.weight_decay, zero=True)
        check_betas(name, self.betas)

    @property
    def name(self) -> str:
        return "adam"

    def build(self, params: Iterable[Any], *, foreach: bool | None = None) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
            foreach=foreach,
        )  # fmt: skip


@dataclass(frozen=True)
class AdamW(Adam):
    """AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay (0.01).

    Examples
    --------
    >>> AdamW().name, AdamW().weight_decay
    ('adamw', 0.01)
    """

    weight_decay: float = 0.01

    @property
    def name(self) -> str:
        return "adamw"

    def build(self, params: Iterable[Any], *, foreach: bool | None = None) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
            foreach=foreach,
        )  # fmt: skip


@dataclass(frozen=True)
class Adafactor(OptimizerPart):
    """Adafactor (Shazeer and Stern, ICML 2018): Adam's scaling with a factored second moment.

    A weight matrix of ``m x n`` numbers keeps ``m + n`` second-moment
    statistics instead of ``m x n``, and no first moment: for a transformer's
    linear layers the optimizer state almost disappears. PyTorch's
    ``torch.optim.Adafactor`` factors the *last two* dimensions of every
    tensor, so a 1x1 convolution weight ``(out, in, 1, 1)`` keeps two full
    ``out x in`` statistics, more than Adam's two moments of the same size
    would suggest; measure before you choose (chapter "Phones").

    Parameters
    ----------
    lr : float
        Learning rate, 1e-2 by default (PyTorch's); Adafactor scales each
        step by the parameter's size, so it is larger than Adam's.
    beta2_decay : float
        Decay exponent of the second-moment average (PyTorch's ``-0.8``).
    weight_decay : float
        Decoupled weight decay.

    Examples
    --------
    >>> Adafactor().name
    'adafactor'
    """

    lr: float = 1e-2
    beta2_decay: float = -0.8
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        check_positive_float("Adafactor", "lr", self.lr)
        check_positive_float("Adafactor", "weight_decay", self.weight_decay, zero=True)
        if not isinstance(self.beta2_decay, (int, float)) or not self.beta2_decay < 0:
            raise InvalidRecipe(
                f"Adafactor(beta2_decay={self.beta2_decay!r}): give a negative number such as "
                "-0.8 (the second-moment decay is 1 - step ** beta2_decay)"
            )

    @property
    def name(self) -> str:
        return "adafactor"

    def build(self, params: Iterable[Any], *, foreach: bool | None = None) -> torch.optim.Optimizer:
        return torch.optim.Adafactor(
            params, lr=self.lr, beta2_decay=self.beta2_decay, weight_decay=self.weight_decay,
            foreach=foreach,
        )  # fmt: skip


register_kind("optimizer", stage=70, default=SGD)
