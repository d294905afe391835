"""The LoRA layers: :class:`LoRALinear` and :class:`LoRAConv2d` (Hu et al., ICLR 2022).

Each wraps a frozen layer ``base`` and adds ``scaling * lora_B(lora_A(x))``
with ``scaling = alpha / rank``; see :mod:`odtlab.recipes.trainable.lora` for the
method, the functions that add adapters to a model and the recipe part.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.base import check_positive_float, check_positive_int

__all__ = ["LoRALinear", "LoRAConv2d"]


class LoRALayer(nn.Module, ABC):
    """Shared forward, scaling and merge of :class:`LoRALinear` and :class:`LoRAConv2d`."""

    base: nn.Module
    lora_A: nn.Module
    lora_B: nn.Module
    max_rank: ClassVar[str] = ""

    def _setup(self, base: nn.Module, rank: int, alpha: float, dropout: float, limit: int) -> None:
        kind = type(self).__name__
        self.rank = check_positive_int(kind, "rank", rank)
        self.alpha = check_positive_float(kind, "alpha", alpha)
        if not 0 <= dropout < 1:
            raise InvalidRecipe(
                f"{kind}(dropout={dropout!r}): dropout must be in [0, 1), e.g. 0.05"
            )
        if rank > limit:
            raise InvalidRecipe(
                f"{kind}(rank={rank}): rank is larger than {self.max_rank} = {limit} of "
                f"{base}; a rank-{rank} update cannot be stored in a matrix of rank {limit}; "
                f"choose rank <= {limit} or leave this layer out with targets=[...]"
            )
        self.scaling = self.alpha / self.rank
        self.base = base
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for p in base.parameters():
            p.requires_grad_(False)

    def _init(self, generator: torch.Generator | None) -> None:
        """``A`` as ``nn.Linear`` initialises its weight (Kaiming uniform), ``B`` at zero."""
        self.train(self.base.training)
        if self.lora_A.weight.device.type == "meta":
            return
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5), generator=gen)
            nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``base(x) + scaling * B(A(dropout(x)))``, as peft computes it."""
        return self.base(x) + self.lora_B(self.lora_A(self.dropout(x))) * self.scaling

    @abstractmethod
    def delta_weight(self) -> torch.Tensor:
        """The update ``scaling * B @ A`` in the shape of ``base.weight``."""

    def merge(self) -> nn.Module:
        """A plain copy of ``base`` with ``W + scaling * B @ A`` folded in (``self`` unchanged).

        Without dropout the merged layer computes what this layer computes,
        up to float rounding, with no extra cost at inference.
        """
        merged = copy.deepcopy(self.base)
        with torch.no_grad():
            merged.weight.add_(self.delta_weight().to(merged.weight.dtype))
        return merged

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, scaling={self.scaling:g}"


def _empty(cls: type[nn.Module], *args: object, like: torch.Tensor, **kwargs: object) -> nn.Module:
    """Build a layer without touching torch's global random state (weights set by ``_init``)."""
    return torch.nn.utils.skip_init(cls, *args, device=like.device, dtype=like.dtype, **kwargs)


class LoRALinear(LoRALayer):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update: ``W x + (alpha/r) B A x``.

    Parameters
    ----------
    base : nn.Linear
        The layer to adapt; its parameters are frozen (``requires_grad=False``).
    rank : int
        ``r``, at most ``min(in_features, out_features)``.
    alpha : float
        The update is scaled by ``alpha / rank``.
    dropout : float
        Dropout on the LoRA path's input (0: none, nothing kept for backward).
    generator : torch.Generator or None
        Draws ``A``'s initial weights (``None``: a generator seeded with 0).

    Attributes
    ----------
    base, lora_A, lora_B : nn.Linear
        ``in -> out`` (frozen), ``in -> r`` and ``r -> out`` (zero at first), no biases.
    scaling : float
        ``alpha / rank``.

    Examples
    --------
    >>> layer = LoRALinear(nn.Linear(16, 8), rank=2, alpha=4)
    >>> x = torch.randn(3, 16)
    >>> torch.equal(layer(x), layer.base(x)), layer.lora_A.weight.shape, layer.scaling
    (True, torch.Size([2, 16]), 2.0)
    """

    max_rank = "min(in_features, out_features)"

    def __init__(
        self,
        base: nn.Linear,
        rank: int = 4,
        alpha: float = 8.0,
        *,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise InvalidRecipe(f"LoRALinear wraps an nn.Linear; got {type(base).__name__}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self._setup(base, rank, alpha, dropout, min(base.in_features, base.out_features))
        w = base.weight
        self.lora_A = _empty(nn.Linear, base.in_features, rank, bias=False, like=w)
        self.lora_B = _empty(nn.Linear, rank, base.out_features, bias=False, like=w)
        self._init(generator)

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling


class LoRAConv2d(LoRALayer):
    """A frozen ``nn.Conv2d`` plus a rank-``r`` update: a ``kxk`` conv to ``r`` channels, then ``1x1``.

    Parameters
    ----------
    base : nn.Conv2d
        The convolution to adapt (``groups=1``); its parameters are frozen.
    rank : int
        ``r``, at most ``min(in_channels * kh * kw, out_channels)``, the rank
        of the weight seen as an ``out x (in * kh * kw)`` matrix.
    alpha, dropout, generator :
        As in :class:`LoRALinear`.

    Attributes
    ----------
    lora_A : nn.Conv2d
        ``in -> r`` with ``base``'s kernel, stride, padding and dilation.
    lora_B : nn.Conv2d
        ``1x1``, ``r -> out``, zero at first.

    Examples
    --------
    >>> conv = LoRAConv2d(nn.Conv2d(3, 8, 3, padding=1), rank=2)
    >>> conv(torch.randn(1, 3, 5, 5)).shape, conv.lora_B.weight.shape
    (torch.Size([1, 8, 5, 5]), torch.Size([8, 2, 1, 1]))
    """

    max_rank = "min(in_channels * kh * kw, out_channels)"

    def __init__(
        self,
        base: nn.Conv2d,
        rank: int = 4,
        alpha: float = 8.0,
        *,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Conv2d):
            raise InvalidRecipe(f"LoRAConv2d wraps an nn.Conv2d; got {type(base).__name__}")
        if base.groups != 1:
            raise InvalidRecipe(
                f"LoRAConv2d cannot adapt {base}: groups={base.groups} (grouped or depthwise), so "
                "each filter sees only its own channels and a low-rank update across channels "
                "would not fold into its weight; leave it out of targets (train its BatchNorm "
                "or bias instead)"
            )
        kh, kw = base.kernel_size
        self.in_channels, self.out_channels = base.in_channels, base.out_channels
        self._setup(base, rank, alpha, dropout, min(base.in_channels * kh * kw, base.out_channels))
        w = base.weight
        self.lora_A = _empty(
            nn.Conv2d, base.in_channels, rank, base.kernel_size, base.stride, base.padding,
            base.dilation, bias=False, padding_mode=base.padding_mode, like=w,
        )  # fmt: skip
        self.lora_B = _empty(nn.Conv2d, rank, base.out_channels, 1, bias=False, like=w)
        self._init(generator)

    def delta_weight(self) -> torch.Tensor:
        up = self.lora_B.weight[:, :, 0, 0]  # (out, r)
        return torch.einsum("or,rihw->oihw", up, self.lora_A.weight) * self.scaling


#: The wrapper class for each layer type LoRA adapts.
LORA_WRAPPERS: dict[type, type[LoRALayer]] = {nn.Linear: LoRALinear, nn.Conv2d: LoRAConv2d}
