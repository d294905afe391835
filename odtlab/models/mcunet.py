"""An MCUNet-like network: inverted residual blocks from a block list.

MCUNet (J. Lin, W.-M. Chen, Y. Lin, J. Cohn, C. Gan, S. Han, *MCUNet: Tiny
Deep Learning on IoT Devices*, NeurIPS 2020) *searches* a MobileNetV2-like
network whose blocks mix kernel sizes 3/5/7 and expansion ratios 3/4/6 so
that it fits a microcontroller's SRAM and flash. This module does **not**
ship the searched MCUNet models; it builds "MCUNet-like" networks of the same
family from a list of :class:`BlockSpec`, with a small hand-picked default
that suits a 320 KB SRAM MCU at 64x64 or 32x32 input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from odtlab.models._checks import check_int, check_positive_float
from odtlab.models.blocks import ConvBNAct, InvertedResidual
from odtlab.models.initialization import build_on_device

__all__ = ["BlockSpec", "DEFAULT_MCUNET_BLOCKS", "MCUNetLike", "mcunet"]


@dataclass(frozen=True)
class BlockSpec:
    """One inverted residual block of an MCUNet-like network.

    Parameters
    ----------
    expand_ratio : float
        Expansion ``t >= 1`` of the block's 1x1 expand convolution
        (1 means no expand convolution).
    out_channels : int
        Channels the block outputs.
    kernel_size : int
        Odd depthwise kernel size (MCUNet uses 3, 5 or 7).
    stride : int
        1 or 2; 2 halves the resolution.

    Examples
    --------
    >>> BlockSpec(expand_ratio=6, out_channels=24, kernel_size=5, stride=2)
    BlockSpec(expand_ratio=6, out_channels=24, kernel_size=5, stride=2)
    """

    expand_ratio: float
    out_channels: int
    kernel_size: int = 3
    stride: int = 1

    def __post_init__(self) -> None:
        if check_positive_float("expand_ratio", self.expand_ratio) < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {self.expand_ratio!r}")
        check_int("out_channels", self.out_channels)
        if check_int("kernel_size", self.kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 1, got {self.kernel_size!r}")
        if self.stride not in (1, 2) or isinstance(self.stride, bool):
            raise ValueError(f"stride must be 1 or 2, got {self.stride!r}")


#: The default block list: four stride-2 stages after the stride-2 stem, so a
#: 64x64 input ends at 2x2 and a 32x32 input at 1x1.
DEFAULT_MCUNET_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(1, 8, 3, 1),
    BlockSpec(4, 16, 7, 2),
    BlockSpec(3, 16, 3, 1),
    BlockSpec(6, 24, 5, 2),
    BlockSpec(3, 24, 3, 1),
    BlockSpec(6, 40, 7, 2),
    BlockSpec(4, 40, 5, 1),
    BlockSpec(6, 48, 3, 1),
    BlockSpec(6, 96, 5, 2),
    BlockSpec(3, 96, 3, 1),
)


class MCUNetLike(nn.Module):
    """An MCUNet-like network; build it with :func:`mcunet`.

    Attributes
    ----------
    features : nn.Sequential
        ``features[0]`` is the stem (:class:`ConvBNAct`, 3x3, stride 2),
        then one :class:`InvertedResidual` per :class:`BlockSpec`.
    pool : nn.AdaptiveAvgPool2d
    flatten : nn.Flatten
    classifier : nn.Linear
        ``blocks[-1].out_channels -> num_classes``.
    blocks : tuple of BlockSpec
        The block list the network was built from.
    """

    def __init__(
        self,
        blocks: Sequence[BlockSpec],
        num_classes: int,
        in_channels: int,
        stem_channels: int,
    ) -> None:
        super().__init__()
        self.blocks = tuple(blocks)
        layers: list[nn.Module] = [ConvBNAct(in_channels, stem_channels, 3, stride=2)]
        channels = stem_channels
        for spec in self.blocks:
            layers.append(
                InvertedResidual(
                    channels, spec.out_channels, spec.stride, spec.expand_ratio, spec.kernel_size
                )
            )
            channels = spec.out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(B, in_channels, H, W)`` to logits ``(B, num_classes)``."""
        return self.classifier(self.flatten(self.pool(self.features(x))))


def mcunet(
    blocks: Sequence[BlockSpec] | None = None,
    num_classes: int = 10,
    in_channels: int = 3,
    stem_channels: int = 16,
    *,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> MCUNetLike:
    """Build an MCUNet-like network (Lin et al., 2020) from a list of blocks.

    "MCUNet-like": the same family as MCUNet (stem conv, inverted residual
    blocks with mixed kernel sizes and expansion ratios, global pool,
    Linear), not the architecture found by MCUNet's search. The default
    :data:`DEFAULT_MCUNET_BLOCKS` is small enough for a 320 KB SRAM
    microcontroller at 64x64 or 32x32 input.

    Parameters
    ----------
    blocks : sequence of BlockSpec or None
        The blocks after the stem, in order; ``None`` uses
        :data:`DEFAULT_MCUNET_BLOCKS`. Plain 4-tuples
        ``(expand_ratio, out_channels, kernel_size, stride)`` are accepted too.
    num_classes : int
        Number of output logits.
    in_channels : int
        Channels of the input images.
    stem_channels : int
        Channels of the 3x3 stride-2 stem convolution.
    device : torch.device, str or None
        Where to build the weights; ``"meta"`` allocates nothing.
    seed : int or None
        Seed of the weight initialisation (``None``: torch's global RNG).

    Returns
    -------
    MCUNetLike
        Maps ``(B, in_channels, H, W)`` to ``(B, num_classes)``.

    Examples
    --------
    >>> model = mcunet([BlockSpec(1, 8), BlockSpec(4, 16, kernel_size=5, stride=2)])
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    if blocks is None:
        specs = DEFAULT_MCUNET_BLOCKS
    else:
        specs = tuple(b if isinstance(b, BlockSpec) else BlockSpec(*b) for b in blocks)
        if not specs:
            raise ValueError(
                f"blocks must hold at least one BlockSpec, got an empty sequence {blocks!r}; "
                "pass blocks=None for the default block list"
            )
    num_classes = check_int("num_classes", num_classes)
    in_channels = check_int("in_channels", in_channels)
    stem_channels = check_int("stem_channels", stem_channels)
    return build_on_device(
        lambda: MCUNetLike(specs, num_classes, in_channels, stem_channels),
        device=device,
        seed=seed,
    )
