"""A multilayer perceptron: the smallest model of the zoo."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from odtlab.models._checks import check_int, check_probability
from odtlab.models.initialization import build_on_device

__all__ = ["mlp"]


def mlp(
    in_features: int = 64,
    hidden: Sequence[int] = (128, 64),
    num_classes: int = 10,
    *,
    dropout: float = 0.0,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> nn.Sequential:
    """Build a multilayer perceptron: Flatten, then Linear-ReLU layers, then a Linear head.

    The first layer flattens its input, so it accepts images directly: the
    default ``in_features=64`` fits the 8x8 grey digits of scikit-learn,
    shape ``(B, 1, 8, 8)``.

    The model is an ``nn.Sequential`` with two children: ``features``
    (``flatten``, then ``fc1``, ``relu1``, [``drop1``], ``fc2``, ... ) and
    ``classifier`` (the last ``nn.Linear``).

    Parameters
    ----------
    in_features : int
        Number of input values per example (``C * H * W`` for images).
    hidden : sequence of int
        Width of each hidden layer; ``()`` gives logistic regression.
    num_classes : int
        Number of output logits.
    dropout : float
        Dropout probability after each hidden ReLU; 0 adds no dropout layer.
    device : torch.device, str or None
        Where to build the weights; ``"meta"`` allocates nothing.
    seed : int or None
        Seed of the weight initialisation (``None``: torch's global RNG).

    Returns
    -------
    nn.Sequential
        Maps ``(B, *)`` with ``in_features`` values per example to logits
        ``(B, num_classes)``.

    Examples
    --------
    >>> model = mlp()
    >>> model(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    in_features = check_int("in_features", in_features)
    num_classes = check_int("num_classes", num_classes)
    widths = [check_int(f"hidden[{i}]", h) for i, h in enumerate(hidden)]
    dropout = check_probability("dropout", dropout)

    def factory() -> nn.Sequential:
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        previous = in_features
        for i, width in enumerate(widths, start=1):
            layers[f"fc{i}"] = nn.Linear(previous, width)
            layers[f"relu{i}"] = nn.ReLU()
            if dropout > 0:
                layers[f"drop{i}"] = nn.Dropout(dropout)
            previous = width
        return nn.Sequential(
            OrderedDict(
                features=nn.Sequential(layers),
                classifier=nn.Linear(previous, num_classes),
            )
        )

    return build_on_device(factory, device=device, seed=seed)
