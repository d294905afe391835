"""Knowledge-tracing models: predict whether a student's next answer will be right.

Two phone-sized models for the capstone tutor, both ending in a two-logit
``classifier`` (wrong, right), so every recipe of the course (last layer,
bias-only, LoRA, full) and every report work on them unchanged:

* :func:`tracing_mlp`: a multilayer perceptron, two hidden layers of 64 units,
  on the flat features of :func:`odtlab.data.tracing_features`
  (about 5,200 parameters, 21 KB in fp32);
* :func:`tracing_gru`: a one-layer GRU over the last interactions of
  :func:`odtlab.data.tracing_sequences`, read out at the query row.

Examples
--------
>>> import torch
>>> tracing_mlp(12)(torch.zeros(3, 12)).shape
torch.Size([3, 2])
>>> tracing_gru(9)(torch.zeros(3, 17, 9)).shape
torch.Size([3, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from odtlab.models._checks import check_int
from odtlab.models.initialization import resolve_device
from odtlab.models.mlp import mlp

__all__ = ["tracing_mlp", "tracing_gru", "TracingGRU"]


def tracing_mlp(
    in_features: int,
    hidden: Sequence[int] = (64, 64),
    *,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> nn.Sequential:
    """A knowledge-tracing MLP: ``in_features`` -> 64 -> 64 -> 2 logits (wrong, right).

    It is :func:`odtlab.models.mlp` with two classes; see there for the layout.
    """
    return mlp(in_features, hidden, 2, device=device, seed=seed)


class TracingGRU(nn.Module):
    """A GRU over ``(B, L, F)`` interaction rows; the last row's hidden state feeds ``classifier``.

    Attributes
    ----------
    encoder : nn.GRU
        One layer, ``batch_first``.
    classifier : nn.Linear
        Hidden state to 2 logits.
    """

    def __init__(self, step_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = nn.GRU(step_features, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.encoder(x)
        return self.classifier(out[:, -1])


def tracing_gru(
    step_features: int,
    hidden: int = 64,
    *,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> TracingGRU:
    """A knowledge-tracing GRU with ``hidden`` units over rows of ``step_features`` values.

    The weights take PyTorch's default initialisation (uniform in
    ``+-1/sqrt(hidden)``), drawn under ``seed`` without touching torch's global RNG.
    """
    step_features = check_int("step_features", step_features)
    hidden = check_int("hidden", hidden)
    if resolve_device(device).type == "meta":
        with torch.device("meta"):
            return TracingGRU(step_features, hidden)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return TracingGRU(step_features, hidden).to(resolve_device(device))
