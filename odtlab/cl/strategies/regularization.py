"""Strategies that keep no examples, only numbers about the old weights or outputs.

* :class:`EWC` (Kirkpatrick et al., PNAS 2017) pulls each weight back to
  its value after an old experience, in proportion to how much that
  experience's loss cared about it (the diagonal of the Fisher
  information). Plain EWC keeps one Fisher and one anchor per experience;
  :class:`OnlineEWC` (Schwarz et al., "Progress & Compress", ICML 2018)
  keeps one of each, the Fisher a decaying running sum.
* :class:`SI` (Zenke, Poole and Ganguli, ICML 2017) measures the same
  importance *during* training: how much each weight's movement lowered
  the loss (a path integral of gradient times step).
* :class:`~odtlab.cl.strategies.distillation.LwF`, which keeps the old
  model's outputs instead, lives in :mod:`~odtlab.cl.strategies.distillation`.

All penalties are added to the loss by the ``before_backward`` hook. Their
state is charged to the device: for a model of ``P`` trained parameters
(float32), EWC keeps ``2 P T`` floats after ``T`` experiences (a Fisher and
an anchor each), online EWC
``2 P``, SI ``4 P`` (importance, running path integral, anchor, previous
weights).

Examples
--------
>>> net = nn.Linear(2, 2)
>>> ewc = EWC(lam=1.0)
>>> ewc.penalty(net) is None    # no experience consolidated yet
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from odtlab import data
from odtlab.cl.buffers import state_bytes
from odtlab.cl.errors import UnsupportedModel
from odtlab.cl.strategies.base import (
    Strategy,
    check_nonnegative,
    trainable_bytes,
    trained_parameters,
)
from odtlab.cl.streams import Experience, Stream

if TYPE_CHECKING:
    from odtlab.recipes import Recipe

__all__ = ["EWC", "OnlineEWC", "SI", "diagonal_fisher"]



def diagonal_fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The empirical Fisher's diagonal: mean over examples of the squared gradient of the loss.

    One backward pass per example (``x[i], y[i]``, the true labels), in
    eval mode so dropout is off; only trained parameters. Returns a dict by
    parameter name, same shapes as the parameters.
    """
    params = trained_parameters(model)
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    for i in range(len(x)):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), grads, strict=True):
            if g is not None:
                fisher[n] += g.detach() ** 2
    for m, mode in modes:
        m.training = mode
    return {n: f / len(x) for n, f in fisher.items()}


class EWC(Strategy):
    """Elastic weight consolidation: ``lam / 2 * sum_t sum_i F_t,i (w_i - w*_t,i)^2``.

    Parameters
    ----------
    lam : float, default 3.0
        Strength of the pull back to the anchors. With SGD at learning rate
        ``lr`` the explicit penalty step overshoots its anchor, and training
        diverges (:class:`~odtlab.cl.StrategyDiverged`), once ``lr * lam * F_i > 2``
        for some weight; the largest Fisher entries of the zoo MLP on the
        rotated digits reach a few units, so ``lam = 10`` diverges there at
        ``lr = 0.05`` and 3 does not.
    fisher_samples : int, default 200
        Training examples of each experience used for its Fisher.
    seed : int
        Which examples.
    """

    name = "ewc"
    online = False

    def __init__(self, lam: float = 3.0, *, fisher_samples: int = 200, seed: int = 0) -> None:
        self.lam = check_nonnegative("lam", lam)
        self.fisher_samples = fisher_samples
        self.seed = seed
        self._fishers: list[dict[str, torch.Tensor]] = []
        self._anchors: list[dict[str, torch.Tensor]] = []

    def planned_bytes(self, model: nn.Module, stream: Stream) -> int:
        return 2 * trainable_bytes(model) * (1 if self.online else len(stream))

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        x, y = data.as_tensors(experience.train)
        pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.seed))
        pick = pick[: self.fisher_samples]
        fisher = diagonal_fisher(model, x[pick], y[pick])
        anchor = {n: p.detach().clone() for n, p in trained_parameters(model).items()}
        self._consolidate(fisher, anchor)

    def _consolidate(
        self, fisher: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor]
    ) -> None:
        self._fishers.append(fisher)
        self._anchors.append(anchor)

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """The EWC penalty of the model's current weights (None before the first anchor)."""
        if not self._fishers:
            return None
        params = trained_parameters(model)
        total = sum(
            (f[n] * (p - a[n]) ** 2).sum()
            for f, a in zip(self._fishers, self._anchors, strict=True)
            for n, p in params.items() if n in f
        )  # fmt: skip
        return 0.5 * self.lam * total  # type: ignore[return-value]

    def penalty_gradient(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The penalty's gradient in closed form, ``lam * sum_t F_t (w - w*_t)``, by name."""
        params = trained_parameters(model)
        out = {n: torch.zeros_like(p) for n, p in params.items()}
        for f, a in zip(self._fishers, self._anchors, strict=True):
            for n, p in params.items():
                out[n] += self.lam * f[n] * (p.detach() - a[n])
        return out

    def before_backward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        logits: torch.Tensor) -> torch.Tensor | None:  # fmt: skip
        return self.penalty(model)

    def memory(self) -> dict[str, int]:
        if not self._fishers:
            return {}
        return {"Fisher diagonal": state_bytes(t for f in self._fishers for t in f.values()),
                "anchor weights": state_bytes(t for a in self._anchors for t in a.values())}  # fmt: skip


class OnlineEWC(EWC):
    """Online EWC: one anchor (the latest weights) and one Fisher, ``F <- gamma F + F_new``.

    Parameters
    ----------
    lam : float, default 3.0
    gamma : float, default 1.0
        How much of the old Fisher each experience keeps (1: all of it).
    fisher_samples, seed : as for :class:`EWC`
    """

    name = "online-ewc"
    online = True

    def __init__(self, lam: float = 3.0, *, gamma: float = 1.0, fisher_samples: int = 200,
                 seed: int = 0) -> None:  # fmt: skip
        super().__init__(lam, fisher_samples=fisher_samples, seed=seed)
        self.gamma = check_nonnegative("gamma", gamma)

    def _consolidate(
        self, fisher: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor]
    ) -> None:
        if self._fishers:
            old = self._fishers[0]
            fisher = {n: self.gamma * old[n] + f for n, f in fisher.items()}
        self._fishers, self._anchors = [fisher], [anchor]


class SI(Strategy):
    """Synaptic intelligence: ``c * sum_i Omega_i (w_i - w*_i)^2``, importance from the path.

    During an experience, ``omega_i += -g_i * dw_i`` at every step (the loss
    decrease credited to weight ``i``); at its end ``Omega_i += omega_i /
    (Dw_i^2 + xi)`` with ``Dw_i`` the weight's total move in the experience.

    Parameters
    ----------
    c : float, default 1.0
        Strength of the penalty.
    xi : float, default 0.1
        Damping of the division, in squared weight units.
    """

    name = "si"

    def __init__(self, c: float = 1.0, *, xi: float = 0.1) -> None:
        self.c = check_nonnegative("c", c)
        self.xi = check_nonnegative("xi", xi)
        self._omega: dict[str, torch.Tensor] = {}
        self._importance: dict[str, torch.Tensor] = {}
        self._anchor: dict[str, torch.Tensor] = {}
        self._previous: dict[str, torch.Tensor] = {}
        self._consolidated = False

    def setup(self, model: nn.Module, recipe: Recipe, stream: Stream) -> None:
        if recipe.update_in_backward:
            raise UnsupportedModel(
                "SI reads each weight's gradient after the step, but this recipe steps inside "
                "backward and frees it (UpdateInBackward); drop that part or use EWC"
            )

    def planned_bytes(self, model: nn.Module, stream: Stream) -> int:
        return 4 * trainable_bytes(model)

    def before_experience(self, model: nn.Module, experience: Experience) -> None:
        params = trained_parameters(model)
        if not self._anchor:
            self._anchor = {n: p.detach().clone() for n, p in params.items()}
            self._importance = {n: torch.zeros_like(p) for n, p in params.items()}
        self._omega = {n: torch.zeros_like(p) for n, p in params.items()}
        self._previous = {n: p.detach().clone() for n, p in params.items()}

    def after_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        for n, p in trained_parameters(model).items():
            if p.grad is not None:
                self._omega[n] -= p.grad.detach() * (p.detach() - self._previous[n])
            self._previous[n].copy_(p.detach())

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        for n, p in trained_parameters(model).items():
            moved = p.detach() - self._anchor[n]
            self._importance[n] += self._omega[n] / (moved**2 + self.xi)
            self._anchor[n].copy_(p.detach())
        self._consolidated = True

    def before_backward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        logits: torch.Tensor) -> torch.Tensor | None:  # fmt: skip
        if not self._consolidated:  # no importance before the first experience ends
            return None
        total = sum((self._importance[n] * (p - self._anchor[n]) ** 2).sum()
                    for n, p in trained_parameters(model).items())  # fmt: skip
        return self.c * total  # type: ignore[return-value]

    def memory(self) -> dict[str, int]:
        if not self._anchor:
            return {}
        return {"importance": state_bytes(self._importance.values()),
                "path integral": state_bytes(self._omega.values()),
                "anchor weights": state_bytes(self._anchor.values()),
                "previous weights": state_bytes(self._previous.values())}  # fmt: skip
