"""The model zoo registry: build any model by name and get a batch that fits it."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from odtlab.errors import UnknownModel
from odtlab.models._checks import check_int
from odtlab.models.cnn import small_cnn
from odtlab.models.initialization import resolve_device
from odtlab.models.mcunet import mcunet
from odtlab.models.mlp import mlp
from odtlab.models.mobilenetv2 import mobilenetv2
from odtlab.models.proxyless import proxylessnas_mobile
from odtlab.models.transformer import tiny_transformer

__all__ = ["ZOO", "available", "build", "example_batch", "count_parameters"]

#: Read-only mapping from zoo name to builder function.
ZOO: Mapping[str, Callable[..., nn.Module]] = MappingProxyType(
    {
        "mlp": mlp,
        "cnn": small_cnn,
        "mobilenetv2": mobilenetv2,
        "mcunet": mcunet,
        "proxylessnas-mobile": proxylessnas_mobile,
        "transformer": tiny_transformer,
    }
)

#: Default square input resolution of each image model in :func:`example_batch`.
_DEFAULT_RESOLUTION = {"cnn": 32, "mobilenetv2": 224, "mcunet": 64, "proxylessnas-mobile": 224}


def available() -> list[str]:
    """Return the names of the zoo models, in the order of :data:`ZOO`.

    Examples
    --------
    >>> available()
    ['mlp', 'cnn', 'mobilenetv2', 'mcunet', 'proxylessnas-mobile', 'transformer']
    """
    return list(ZOO)


def _builder(name: str) -> Callable[..., nn.Module]:
    """Look ``name`` up in the zoo or raise :class:`UnknownModel` with a suggestion."""
    if isinstance(name, str) and name in ZOO:
        return ZOO[name]
    message = f"unknown model {name!r}; the zoo has {', '.join(repr(n) for n in ZOO)}"
    close = difflib.get_close_matches(str(name).lower(), list(ZOO), n=1, cutoff=0.5)
    if close:
        message += f". Did you mean {close[0]!r}?"
    raise UnknownModel(message)


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build the zoo model called ``name``; ``kwargs`` go to its builder.

    Parameters
    ----------
    name : str
        One of :func:`available`.
    **kwargs
        Arguments of that builder, e.g. ``num_classes``, ``device``, ``seed``.

    Returns
    -------
    nn.Module
        The freshly initialised model.

    Raises
    ------
    odtlab.UnknownModel
        If ``name`` is not in the zoo; the message lists the names and
        suggests the closest one.

    Examples
    --------
    >>> model = build("mobilenetv2", width_mult=0.35, num_classes=10, device="meta")
    >>> count_parameters(model)
    408938
    """
    return _builder(name)(**kwargs)


def _model_arguments(name: str, model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The builder's default arguments, updated by ``model_kwargs`` (checked against its signature)."""
    parameters = inspect.signature(_builder(name)).parameters
    unknown = sorted(set(model_kwargs) - set(parameters))
    if unknown:
        raise TypeError(
            f"{unknown[0]!r} is not an argument of the {name!r} builder; "
            f"its arguments are {', '.join(parameters)}"
        )
    arguments = {key: p.default for key, p in parameters.items()}
    arguments.update(model_kwargs)
    return arguments


def example_batch(
    name: str,
    batch_size: int = 2,
    *,
    resolution: int | None = None,
    device: torch.device | str | None = None,
    seed: int | None = 0,
    **model_kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``(inputs, targets)`` batch with the shapes the zoo model ``name`` expects.

    Pass the same keyword arguments you gave :func:`build` (``num_classes``,
    ``in_channels``, ``seq_len``...) and the batch fits that model.

    Input shapes (``B = batch_size``, ``r = resolution``):

    * ``"mlp"``: ``(B, 1, r, r)`` when ``in_features == r * r`` (default
      ``(B, 1, 8, 8)``, the scikit-learn digits), else ``(B, in_features)``;
    * ``"cnn"``: ``(B, in_channels, r, r)``, default ``r = 32``;
    * ``"mobilenetv2"``: ``(B, in_channels, r, r)``, default ``r = 224``;
    * ``"mcunet"``: ``(B, in_channels, r, r)``, default ``r = 64``;
    * ``"proxylessnas-mobile"``: ``(B, in_channels, r, r)``, default ``r = 224``;
    * ``"transformer"``: token ids, a LongTensor ``(B, seq_len)`` with values
      in ``[0, vocab_size)``; ``resolution`` does not apply.

    Inputs are standard normal floats (token ids for the transformer);
    targets are a LongTensor ``(B,)`` of class indices in ``[0, num_classes)``.

    Parameters
    ----------
    name : str
        A zoo name, see :func:`available`.
    batch_size : int
        ``B``, the number of examples.
    resolution : int or None
        Height and width of image inputs; ``None`` uses the default above.
    device : torch.device, str or None
        Where the tensors live; on ``"meta"`` they have shapes but no data.
    seed : int or None
        Seed of a private generator (``None``: torch's global RNG).
    **model_kwargs
        The model's builder arguments that shape the batch.

    Returns
    -------
    tuple of Tensor
        ``(inputs, targets)``.

    Examples
    --------
    >>> x, y = example_batch("cnn", batch_size=4)
    >>> x.shape, y.shape
    (torch.Size([4, 1, 32, 32]), torch.Size([4]))
    """
    args = _model_arguments(name, model_kwargs)
    batch_size = check_int("batch_size", batch_size)
    num_classes = check_int("num_classes", args["num_classes"])
    if resolution is not None:
        resolution = check_int("resolution", resolution)

    integer_inputs = name == "transformer"
    high = 0  # exclusive upper bound of token ids, used for the transformer only
    if name == "transformer":
        if resolution is not None:
            raise ValueError(
                f"resolution does not apply to 'transformer', got resolution={resolution!r}; "
                "pass seq_len=... to change the sequence length"
            )
        shape: tuple[int, ...] = (batch_size, check_int("seq_len", args["seq_len"]))
        high = check_int("vocab_size", args["vocab_size"])
    elif name == "mlp":
        in_features = check_int("in_features", args["in_features"])
        side = math.isqrt(in_features)
        if resolution is not None and resolution * resolution != in_features:
            raise ValueError(
                f"resolution={resolution!r} does not fit mlp with in_features={in_features}; "
                f"allowed: resolution * resolution == in_features, or resolution=None"
            )
        square = side * side == in_features
        shape = (batch_size, 1, side, side) if square else (batch_size, in_features)
    else:
        side = _DEFAULT_RESOLUTION[name] if resolution is None else resolution
        shape = (batch_size, check_int("in_channels", args["in_channels"]), side, side)

    target = resolve_device(device)
    if target.type == "meta":
        inputs_dtype = torch.long if integer_inputs else torch.float32
        return (
            torch.empty(shape, dtype=inputs_dtype, device=target),
            torch.empty(batch_size, dtype=torch.long, device=target),
        )
    gen = None if seed is None else torch.Generator().manual_seed(int(seed))
    if integer_inputs:
        inputs = torch.randint(0, high, shape, generator=gen)
    else:
        inputs = torch.randn(shape, generator=gen)
    targets = torch.randint(0, num_classes, (batch_size,), generator=gen)
    return inputs.to(target), targets.to(target)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Count the scalar parameters of ``model`` (shared parameters once).

    Works on the ``meta`` device too, so big models can be counted for free.

    Parameters
    ----------
    model : nn.Module
    trainable_only : bool
        Count only parameters with ``requires_grad=True``.

    Returns
    -------
    int
        The number of scalars (multiply by 4 for fp32 bytes).

    Examples
    --------
    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
