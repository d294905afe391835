"""Argument checks and the safe set-up shared by every memory measurement.

Nothing here changes the user's model for good:

* which parameters are trainable is expressed by *substitute* tensors passed
  to :func:`torch.func.functional_call` (``p.detach().requires_grad_(flag)``
  shares ``p``'s storage, so no byte is copied and ``p.requires_grad`` is
  never touched);
* buffers (BatchNorm running statistics) are replaced by clones, so a
  training-mode forward does not move the model's statistics;
* train mode is switched on for the measurement and every module's
  ``training`` flag is restored afterwards;
* torch's global random state (dropout draws from it) is forked and restored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from odtlab.errors import check_choice as check_one_of
from odtlab.memory.errors import MemoryArgumentError

__all__ = [
    "OPTIMIZER_NAMES",
    "ACCOUNTINGS",
    "METHODS",
    "TrainableSpec",
    "LossFn",
    "check_batch",
    "check_choice",
    "default_loss",
    "resolve_loss",
    "select_trainable",
    "substitutes",
    "train_mode",
    "forked_rng",
    "storage_key",
    "model_device",
]

OPTIMIZER_NAMES = ("sgd", "momentum", "adam", "adamw")
ACCOUNTINGS = ("pytorch", "engine")
METHODS = ("measured", "analytic")

TrainableSpec = None | str | Iterable[str] | Callable[[str, nn.Parameter], bool]
LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


def storage_key(t: torch.Tensor) -> int:
    """Identity of the storage behind ``t``, valid on every device.

    ``data_ptr()`` is 0 for every tensor on the ``meta`` device, so we use
    the address of the C++ storage object instead: views of one tensor share
    it, distinct allocations never do (while both are alive).
    """
    return int(t.untyped_storage()._cdata)


def check_choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a message listing them."""
    return check_one_of(name, value, tuple(allowed), MemoryArgumentError)


def check_batch(example_batch: object) -> tuple[Any, torch.Tensor]:
    """Check that ``example_batch`` is an ``(inputs, targets)`` pair of tensors."""
    if not isinstance(example_batch, (tuple, list)) or len(example_batch) != 2:
        raise MemoryArgumentError(
            "example_batch must be a pair (inputs, targets), e.g. "
            "odtlab.models.example_batch('cnn'); got "
            f"{type(example_batch).__name__}"
            + (
                f" of length {len(example_batch)}"
                if isinstance(example_batch, (tuple, list))
                else ""
            )
        )
    inputs, targets = example_batch
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise MemoryArgumentError(
            "example_batch must hold two tensors (inputs, targets); got "
            f"({type(inputs).__name__}, {type(targets).__name__})"
        )
    return inputs, targets


def default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, the loss used when ``loss_fn=None``.

    ``outputs`` are logits ``(B, C)`` and ``targets`` class indices ``(B,)``.
    Sequence outputs ``(B, T, C)`` with targets ``(B, T)`` are flattened to
    ``(B*T, C)`` and ``(B*T,)`` first (a view: no extra memory).
    """
    if outputs.dim() > 2 and targets.dim() == outputs.dim() - 1:
        outputs = outputs.flatten(0, -2)
        targets = targets.flatten()
    return F.cross_entropy(outputs, targets)


def resolve_loss(loss_fn: LossFn | None) -> LossFn:
    """``loss_fn`` itself, or :func:`default_loss` for ``None``."""
    if loss_fn is None:
        return default_loss
    if not callable(loss_fn):
        raise MemoryArgumentError(
            "loss_fn must be None (cross-entropy) or a callable (outputs, targets) -> "
            f"scalar loss, e.g. torch.nn.functional.mse_loss; got {type(loss_fn).__name__}"
        )
    return loss_fn


def _matches(name: str, pattern: str) -> bool:
    pattern = pattern.rstrip(".")
    return pattern == "" or name == pattern or name.startswith(pattern + ".")


def select_trainable(model: nn.Module, trainable: TrainableSpec) -> dict[str, bool]:
    """Decide, for every parameter of ``model``, whether it is trained.

    Parameters
    ----------
    model : nn.Module
    trainable : None, str, iterable of str, or callable
        ``None``: the parameters that currently have ``requires_grad=True``.
        A string or strings: parameter names or dotted prefixes of them
        (``"classifier"`` selects ``classifier.weight`` and
        ``classifier.bias``; ``"features.1"`` does *not* select
        ``features.10``). A callable ``(name, param) -> bool``.

    Returns
    -------
    dict
        ``{parameter name: trainable}``, shared parameters listed once.

    Raises
    ------
    MemoryArgumentError
        If a name matches no parameter, or nothing at all is trainable.
    """
    named = list(model.named_parameters())
    if not named:
        raise MemoryArgumentError("model has no parameters, so there is nothing to train")
    if trainable is None:
        chosen = {name: bool(p.requires_grad) for name, p in named}
        how = "trainable=None (the parameters with requires_grad=True)"
    elif callable(trainable) and not isinstance(trainable, str):
        chosen = {name: bool(trainable(name, p)) for name, p in named}
        how = "the trainable callable"
    else:
        patterns = [trainable] if isinstance(trainable, str) else list(trainable)  # type: ignore[arg-type]
        if not all(isinstance(pat, str) for pat in patterns):
            raise MemoryArgumentError(
                "trainable must be None, a parameter name or prefix, an iterable of them, or a "
                f"callable (name, param) -> bool; got {trainable!r}"
            )
        tops = sorted({name.split(".")[0] for name, _ in named})
        for pat in patterns:
            if not any(_matches(name, pat) for name, _ in named):
                raise MemoryArgumentError(
                    f"trainable={pat!r} matches no parameter of the model; use a parameter name or "
                    f"a dotted prefix such as {', '.join(repr(t) for t in tops[:6])}"
                )
        chosen = {name: any(_matches(name, pat) for pat in patterns) for name, _ in named}
        how = f"trainable={patterns!r}"
    if not any(chosen.values()):
        raise MemoryArgumentError(
            f"{how} selects no parameter, so there is nothing to train and no backward pass; "
            "pass trainable=None with some requires_grad=True, parameter name prefixes such as "
            "['classifier'], or a callable"
        )
    return chosen


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def substitutes(
    model: nn.Module, chosen: Mapping[str, bool], *, meta: bool
) -> tuple[dict[str, torch.Tensor], dict[int, str], dict[int, str]]:
    """Tensors that stand in for the model's parameters and buffers.

    Returns ``(tensors, param_keys, buffer_keys)``: the name -> tensor map for
    :func:`torch.func.functional_call`, and the storage keys of the stand-in
    parameters and buffers mapped to their names (a tensor saved for backward
    whose storage is one of these is *not* an activation).

    With ``meta=True`` every stand-in is an empty tensor on the ``meta``
    device (no memory); otherwise parameters share storage with the model's
    (``detach``) and buffers are clones.
    """
    tensors: dict[str, torch.Tensor] = {}
    param_keys: dict[int, str] = {}
    buffer_keys: dict[int, str] = {}
    for name, p in model.named_parameters():
        sub = torch.empty_like(p, device="meta") if meta else p.detach()
        sub.requires_grad_(chosen[name])
        tensors[name] = sub
        param_keys.setdefault(storage_key(sub), name)
    for name, b in model.named_buffers():
        sub = torch.empty_like(b, device="meta") if meta else b.detach().clone()
        tensors[name] = sub
        buffer_keys.setdefault(storage_key(sub), name)
    return tensors, param_keys, buffer_keys


@contextlib.contextmanager
def train_mode(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Put ``model`` in train mode (if ``enabled``), restoring every module's flag afterwards."""
    flags = {m: m.training for m in model.modules()}
    try:
        if enabled:
            model.train()
        yield
    finally:
        for m, flag in flags.items():
            m.training = flag


@contextlib.contextmanager
def forked_rng(device: torch.device) -> Iterator[None]:
    """Leave torch's global random state as it was (dropout draws from it)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield
