"""Seeded weight initialisation and building a model on a chosen device.

Every builder in :mod:`odtlab.models` goes through :func:`build_on_device`:

1. the modules are created on the ``meta`` device, which records shapes and
   dtypes but allocates no memory and draws no random numbers;
2. if the caller asked for ``device="meta"`` we stop here, so an
   ImageNet-size MobileNetV2 costs nothing to build;
3. otherwise :meth:`torch.nn.Module.to_empty` allocates the parameters
   directly on the target device and :func:`init_weights` fills them.

:func:`init_weights` draws every random number from a private CPU
:class:`torch.Generator` seeded with ``seed``, so

* the same seed gives bit-identical weights on every device (CPU, CUDA, MPS),
* and torch's global random state is never touched (no hidden global state).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["init_weights", "build_on_device", "resolve_device"]

M = TypeVar("M", bound=nn.Module)


def resolve_device(device: torch.device | str | None) -> torch.device:
    """Turn ``device`` into a :class:`torch.device`; ``None`` means torch's default device."""
    if device is None:
        return torch.get_default_device()
    return torch.device(device)


def _fill_(
    param: torch.Tensor, init_fn: Callable[..., object], *args: object, **kwargs: object
) -> None:
    """Run ``init_fn(scratch, *args, **kwargs)`` on a CPU float32 scratch tensor, copy into ``param``.

    Drawing on the CPU is what makes the weights identical on every device.
    """
    scratch = torch.empty(param.shape, dtype=torch.float32, device="cpu")
    init_fn(scratch, *args, **kwargs)
    with torch.no_grad():
        param.copy_(scratch)


def init_weights(
    model: nn.Module,
    seed: int | None = 0,
    *,
    linear_std: float | None = None,
) -> nn.Module:
    """Initialise every parameter and buffer of ``model`` in place, reproducibly.

    The rules, per layer type:

    * ``Conv2d``: Kaiming-normal with ``mode="fan_out"`` (as in the
      MobileNetV2 reference), bias zero;
    * ``Linear``: PyTorch's default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
      for weight and bias, or normal(0, ``linear_std``) with zero bias when
      ``linear_std`` is given;
    * ``BatchNorm``/``LayerNorm``/``GroupNorm``: weight one, bias zero, running statistics
      reset;
    * ``Embedding``: normal(0, 0.02), as in GPT-2.

    Parameters
    ----------
    model : nn.Module
        Built from the layer types above (any device except ``meta``).
    seed : int or None
        Seed of the private CPU generator. ``None`` draws from torch's global
        CPU generator instead (not reproducible, and it advances that state).
    linear_std : float or None
        Standard deviation for ``Linear`` weights; ``None`` keeps PyTorch's
        default uniform initialisation.

    Returns
    -------
    nn.Module
        The same ``model``, for chaining.

    Raises
    ------
    TypeError
        If a parameter belongs to a layer type that has no rule above.

    Examples
    --------
    >>> layer = init_weights(nn.Linear(4, 2), seed=1)
    >>> torch.equal(layer.weight, init_weights(nn.Linear(4, 2), seed=1).weight)
    True
    """
    gen = None if seed is None else torch.Generator().manual_seed(int(seed))
    covered: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            _fill_(
                module.weight,
                nn.init.kaiming_normal_,
                mode="fan_out",
                nonlinearity="relu",
                generator=gen,
            )
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            if linear_std is None:
                bound = 1.0 / math.sqrt(module.in_features) if module.in_features > 0 else 0.0
                _fill_(module.weight, nn.init.uniform_, -bound, bound, generator=gen)
                if module.bias is not None:
                    _fill_(module.bias, nn.init.uniform_, -bound, bound, generator=gen)
            else:
                _fill_(module.weight, nn.init.normal_, 0.0, linear_std, generator=gen)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        elif isinstance(module, (_BatchNorm, nn.LayerNorm, nn.GroupNorm)):
            module.reset_parameters()  # ones, zeros, running stats; no randomness
        elif isinstance(module, nn.Embedding):
            _fill_(module.weight, nn.init.normal_, 0.0, 0.02, generator=gen)
        else:
            continue
        covered.update(id(p) for p in module.parameters(recurse=False))
    for name, param in model.named_parameters():
        if id(param) not in covered:
            raise TypeError(
                f"init_weights has no rule for parameter {name!r}; it knows Conv2d, Linear, "
                "BatchNorm, LayerNorm, GroupNorm and Embedding. Initialise that layer yourself."
            )
    return model


def build_on_device(
    factory: Callable[[], M],
    *,
    device: torch.device | str | None,
    seed: int | None,
    linear_std: float | None = None,
) -> M:
    """Create ``factory()`` on ``device`` without a CPU detour, then seed its weights.

    On ``device="meta"`` nothing is allocated and ``seed`` is irrelevant.
    See the module docstring for the three steps.
    """
    target = resolve_device(device)
    with torch.device("meta"):
        model = factory()
    if target.type == "meta":
        return model
    model.to_empty(device=target)
    init_weights(model, seed=seed, linear_std=linear_std)
    return model
