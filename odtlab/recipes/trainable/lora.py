"""LoRA (Hu et al., ICLR 2022): train a low-rank update ``B @ A`` beside each frozen layer.

A frozen layer computes ``y = W x``. LoRA adds a trainable detour of rank
``r``: ``y = W x + (alpha / r) * B (A x)``, with ``A`` (``r x in``, the
*down* projection) and ``B`` (``out x r``, the *up* projection). Only ``A``
and ``B`` learn: ``r * (in + out)`` numbers instead of ``in * out``, and
since ``B`` starts at **zero** the network computes exactly what it
computed before. After training, :func:`merge_lora` folds the update into
``W`` and the adapters cost nothing at inference.

Convolutions follow peft's ``Conv2d`` layer: ``A`` is a ``kxk`` conv from
``in`` to ``r`` channels with the frozen conv's kernel, stride, padding and
dilation (peft leaves dilation out), ``B`` a ``1x1`` conv from ``r`` to
``out``. Grouped and depthwise convolutions (``groups > 1``) are left out:
each of their filters sees only its own few channels, and a rank-``r``
update across all channels would not fold back into their weight.

The adapters are plain ``nn.Linear`` and ``nn.Conv2d`` children (``base``,
``lora_A``, ``lora_B``), so :mod:`odtlab.memory` measures and predicts their
activations with the formulas it already has. The state-dict keys of a
wrapped layer move under ``base`` (``q_proj.weight`` becomes
``q_proj.base.weight``): load pretrained weights before adding adapters.

Examples
--------
>>> from odtlab import models
>>> from odtlab.recipes import Recipe, Adam
>>> recipe = Recipe(LoRA(rank=4, alpha=8), Adam())
>>> net = recipe.prepare(models.build("transformer"))
>>> sum(p.numel() for p in net.parameters() if p.requires_grad)  # 2 x 3584 + head 650
7818
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.base import check_positive_float, check_positive_int
from odtlab.recipes.layers.lora import LORA_WRAPPERS, LoRAConv2d, LoRALayer, LoRALinear
from odtlab.recipes.trainable.basic import Rule, TrainablePart, find_head

__all__ = [
    "LoRA",
    "LoRALinear",
    "LoRAConv2d",
    "add_lora",
    "merge_lora",
    "remove_lora",
    "lora_layers",
]

Target = str | type


def lora_layers(model: nn.Module) -> dict[str, LoRALinear | LoRAConv2d]:
    """The LoRA layers of ``model`` by module name, in module order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALayer)}  # type: ignore[misc]


def _matches(name: str, module: nn.Module, target: Target) -> bool:
    """``target`` is a type, or a name: exact, a suffix (``"q_proj"``), a parent, or a glob."""
    if isinstance(target, type):
        return isinstance(module, target)
    return (
        name == target
        or name.endswith("." + target)
        or name.startswith(target + ".")
        or fnmatch.fnmatchcase(name, target)
    )


def _head_or_none(model: nn.Module) -> str | None:
    try:
        head = find_head(model)
    except InvalidRecipe:
        return None
    for name in lora_layers(model):  # a head wrapped by LoRA: the whole wrapper
        if head.startswith(name + "."):
            return name
    return head


def _select(model: nn.Module, targets: tuple[Target, ...] | None) -> list[tuple[str, nn.Module]]:
    """The layers to wrap; raise :class:`InvalidRecipe` when there are none, saying what exists."""
    existing = lora_layers(model)
    inside = tuple(name + "." for name in existing)
    head = _head_or_none(model) if targets is None else None
    chosen, skipped, layers = [], [], []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)) or name.startswith(inside):
            continue
        layers.append(name)
        if targets is not None and not any(_matches(name, module, t) for t in targets):
            continue
        if name == "":
            raise InvalidRecipe(
                "add_lora wraps the layers inside a model; to adapt a single layer use "
                "LoRALinear(layer) or LoRAConv2d(layer)"
            )
        if isinstance(module, nn.Conv2d) and module.groups > 1 and targets is None:
            skipped.append(f"{name} (groups={module.groups})")
        elif targets is None and name == head:
            skipped.append(f"{name} (the head)")
        else:
            chosen.append((name, module))
    if not chosen and not existing:
        kinds = sorted({type(m).__name__ for n, m in model.named_modules() if n})
        wanted = "any nn.Linear or nn.Conv2d" if targets is None else f"targets={list(targets)!r}"
        raise InvalidRecipe(
            f"add_lora found no layer of {type(model).__name__} matching {wanted}; its "
            f"nn.Linear/nn.Conv2d layers are {layers[:12] or 'none'}"
            + (f" (the first 12 of {len(layers)})" if len(layers) > 12 else "")
            + (f", of which {', '.join(skipped)} are skipped" if skipped else "")
            + f"; its module types are {', '.join(kinds)}. Name layers with targets=['q_proj', "
            "'v_proj'] (suffixes, parents or globs) or types, e.g. targets=[nn.Conv2d]"
        )
    return chosen


def add_lora(
    model: nn.Module,
    rank: int = 4,
    alpha: float = 8.0,
    targets: Iterable[Target] | None = None,
    *,
    dropout: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Wrap layers of ``model`` in :class:`LoRALinear` / :class:`LoRAConv2d`, in place.

    Parameters
    ----------
    model : nn.Module
    rank, alpha, dropout :
        As in :class:`LoRALinear`.
    targets : iterable of str or type, or None
        Which layers to adapt. ``None``: every ``nn.Linear`` and ``nn.Conv2d``
        except the head (:func:`~odtlab.recipes.trainable.basic.find_head`) and
        grouped/depthwise convolutions. A string matches a module name
        exactly, as a suffix (``"q_proj"`` matches ``blocks.0.attn.q_proj``),
        as a parent (``"blocks.0"``) or as a glob (``"blocks.*.mlp.fc1"``);
        a type matches its instances (``nn.Conv2d``).
    seed : int
        Seed of one ``torch.Generator`` that draws every ``A`` in module order.

    Returns
    -------
    list of str
        The names of the layers wrapped by this call; layers that already
        have adapters are left alone, so calling it twice is safe.

    Raises
    ------
    InvalidRecipe
        When nothing matches (the message lists the layers there are), for a
        bad rank (e.g. larger than a layer allows), or when the model already
        has adapters of another rank or alpha.

    Examples
    --------
    >>> from odtlab import models
    >>> net = models.build("cnn")
    >>> add_lora(net, rank=2), add_lora(net, rank=2)
    (['features.block1.conv', 'features.block2.conv', 'features.block3.conv'], [])
    """
    check_positive_int("add_lora", "rank", rank)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidRecipe(f"add_lora(seed={seed!r}): seed must be an int >= 0")
    wanted = None if targets is None else tuple(_check_targets(targets))
    for name, layer in lora_layers(model).items():
        if (layer.rank, layer.alpha) != (rank, float(alpha)):
            raise InvalidRecipe(
                f"{name!r} already has a LoRA adapter with rank={layer.rank}, alpha="
                f"{layer.alpha:g}; call remove_lora(model) or merge_lora(model) first"
            )
    generator = torch.Generator().manual_seed(seed)
    chosen = _select(model, wanted)
    flags = [(p, p.requires_grad) for _, m in chosen for p in m.parameters()]
    wrapped = []  # build every wrapper before changing the model, so a bad rank changes nothing
    for name, module in chosen:
        cls = LORA_WRAPPERS[nn.Conv2d if isinstance(module, nn.Conv2d) else nn.Linear]
        try:
            wrapped.append((name, cls(module, rank, alpha, dropout=dropout, generator=generator)))
        except InvalidRecipe as err:
            for p, flag in flags:  # the wrappers built so far froze their layers
                p.requires_grad_(flag)
            raise InvalidRecipe(f"layer {name!r}: {err}") from None
    for name, layer in wrapped:
        _replace(model, name, layer)
    return [name for name, _ in wrapped]


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def _check_targets(targets: Iterable[Target]) -> list[Target]:
    items = [targets] if isinstance(targets, (str, type)) else list(targets)
    for t in items:
        ok = (isinstance(t, str) and t) or (
            isinstance(t, type) and issubclass(t, (nn.Linear, nn.Conv2d))
        )
        if not ok:
            raise InvalidRecipe(
                f"LoRA targets must be module names (e.g. 'q_proj') or the types nn.Linear and "
                f"nn.Conv2d; got {t!r}"
            )
    if not items:
        raise InvalidRecipe("LoRA targets is empty; pass None for every Linear/Conv2d")
    return items


def remove_lora(model: nn.Module) -> list[str]:
    """Put back the original frozen layer of every LoRA layer (the update is thrown away).

    The restored layers keep ``requires_grad=False``; returns the names.
    """
    names = list(lora_layers(model))
    for name in names:
        _replace(model, name, model.get_submodule(name).base)
    return names


def merge_lora(model: nn.Module) -> list[str]:
    """Replace every LoRA layer by a plain layer with the update folded in; return the names.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> add_lora(net, rank=2), merge_lora(net), type(net[0]).__name__
    (['0'], ['0'], 'Linear')
    """
    names = list(lora_layers(model))
    for name in names:
        _replace(model, name, model.get_submodule(name).merge())
    return names


@dataclass(frozen=True)
class LoRA(TrainablePart):
    """Train low-rank adapters (and the head); freeze every original weight.

    :meth:`apply` adds the adapters (see :func:`add_lora`); the rule trains
    the ``lora_A`` and ``lora_B`` weights, plus the head when
    ``include_classifier`` (a new task needs a new head). Per adapted
    ``in -> out`` linear layer that is ``rank * (in + out)`` parameters; per
    ``kxk`` convolution ``rank * (in * k * k + out)``.

    Parameters
    ----------
    rank : int
        Rank ``r`` of every adapter.
    alpha : float
        The update is scaled by ``alpha / rank``.
    targets : tuple of str or type, or None
        Which layers to adapt, as in :func:`add_lora` (``None``: all but the head).
    include_classifier : bool
        Also train the head (all of it, when it is not adapted).
    dropout : float
        Dropout on the LoRA path.
    seed : int
        Seed of the adapters' initial ``A`` weights.

    Examples
    --------
    >>> rule = LoRA().rule(None)
    >>> rule("blocks.0.attn.q_proj.lora_A.weight", None), rule("blocks.0.attn.q_proj.base.weight", None)
    (True, False)
    """

    rank: int = 4
    alpha: float = 8.0
    targets: tuple[Target, ...] | None = None
    include_classifier: bool = True
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_int("LoRA", "rank", self.rank)
        check_positive_float("LoRA", "alpha", self.alpha)
        if not 0 <= self.dropout < 1:
            raise InvalidRecipe(f"LoRA(dropout={self.dropout!r}): dropout must be in [0, 1)")
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(_check_targets(self.targets)))

    @property
    def name(self) -> str:
        return f"lora(r={self.rank})" + ("" if self.include_classifier else "(no-head)")

    def apply(self, model: nn.Module) -> None:
        add_lora(model, self.rank, self.alpha, self.targets, dropout=self.dropout, seed=self.seed)

    def rule(self, model: nn.Module | None) -> Rule:
        adapted = None if model is None else set(lora_layers(model))
        head = None
        if self.include_classifier:
            head = "classifier" if model is None else _head_or_none(model)

        def is_lora(name: str, param: nn.Parameter) -> bool:
            owner, _, leaf = name.rpartition(".")
            layer, _, child = owner.rpartition(".")
            if leaf == "weight" and child in ("lora_A", "lora_B"):
                if adapted is None or layer in adapted:
                    return True
            return head is not None and (name == head or name.startswith(head + "."))

        return is_lora
