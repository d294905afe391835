"""An MCUNet-like network: inverted residual blocks from a block list.

MCUNet (J. Lin, W.-M. Chen, Y. Lin, J. Cohn, C. Gan, S. Han, *MCUNet: Tiny
Deep Learning on IoT Devices*, NeurIPS 2020) *searches* a MobileNetV2-like
network whose blocks mix kernel sizes 3/5/7 and expansion ratios 3/4/6 so
that it fits a microcontroller's SRAM and flash. This module builds
"MCUNet-like" networks of the same family from a list of :class:`BlockSpec`,
with a small hand-picked default that suits a 320 KB SRAM MCU at 64x64 or
32x32 input. One searched architecture is transcribed too, without its
trained weights: :data:`MCUNET_5FPS_BLOCKS` (``mcunet(blocks="mcunet-5fps")``),
the model of the 256 KB on-device training paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from odtlab.models._checks import check_int, check_positive_float
from odtlab.models.blocks import ConvBNAct, InvertedResidual
from odtlab.models.initialization import build_on_device

__all__ = [
    "BlockSpec",
    "DEFAULT_MCUNET_BLOCKS",
    "MCUNET_5FPS_BLOCKS",
    "MCUNET_PRESETS",
    "MCUNetLike",
    "mcunet",
]


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

#: The blocks of MCUNet's "5 FPS" ImageNet model (``mcunet-5fps``, ``mcunet-in1`` in
#: ``mit-han-lab/mcunet``'s model zoo, ``assets/configs/mcunet-5fps_imagenet.json``): the
#: model the 256 KB paper (Lin et al., NeurIPS 2022) trains on the microcontroller and
#: whose convolutions its sparse-update schemes number. Transcribed from a public copy of
#: that config (stem 16 channels, stride 2; then ``[t, c, k, s]`` per block), not from
#: the JSON itself, which we could not read here. With the stem that makes 42
#: convolutions; the reference's 100 KB scheme (biases of the last 22, weights of convs
#: 21, 24, 27, 30, 36, 39) then updates the 1x1 expand convolutions of blocks 8, 9, 10,
#: 11, 13 and 14, as its ``pw1`` comments say. Differences: our blocks use ReLU6 and
#: BatchNorm like the zoo's (the paper's graph is int8 with folded BatchNorm), hidden
#: widths are ``round(in * t)``, and the weights are random, not ImageNet-trained. Check:
#: with 1000 classes it has 636,232 parameters and 12.79 M multiply-adds at 96x96, where
#: the MCUNet README lists mcunet-5fps at 0.64 M parameters and 12.8 M MACs.
MCUNET_5FPS_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(1, 8, 3, 1),
    BlockSpec(4, 16, 3, 2),
    BlockSpec(3, 16, 3, 1),
    BlockSpec(3, 24, 7, 2),
    BlockSpec(5, 24, 3, 1),
    BlockSpec(5, 40, 3, 2),
    BlockSpec(4, 40, 7, 1),
    BlockSpec(4, 48, 5, 1),
    BlockSpec(3, 48, 3, 1),
    BlockSpec(4, 48, 3, 1),
    BlockSpec(5, 96, 7, 2),
    BlockSpec(4, 96, 5, 1),
    BlockSpec(4, 96, 5, 1),
    BlockSpec(6, 160, 3, 1),
)

#: Block lists by name, for ``mcunet(blocks="mcunet-5fps")``.
MCUNET_PRESETS: dict[str, tuple[BlockSpec, ...]] = {
    "default": DEFAULT_MCUNET_BLOCKS,
    "mcunet-5fps": MCUNET_5FPS_BLOCKS,
}


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
    blocks: Sequence[BlockSpec] | str | None = None,
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
    blocks : sequence of BlockSpec, str or None
        The blocks after the stem, in order; ``None`` uses
        :data:`DEFAULT_MCUNET_BLOCKS`. Plain 4-tuples
        ``(expand_ratio, out_channels, kernel_size, stride)`` are accepted too,
        and so is a preset name from :data:`MCUNET_PRESETS`: ``"mcunet-5fps"``
        is :data:`MCUNET_5FPS_BLOCKS`, the 256 KB paper's model (42
        convolutions; the paper uses it at 128x128).
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
    elif isinstance(blocks, str):
        if blocks not in MCUNET_PRESETS:
            raise ValueError(
                f"blocks={blocks!r} is not a preset; the presets are "
                f"{', '.join(repr(k) for k in MCUNET_PRESETS)}, or pass a list of BlockSpec"
            )
        specs = MCUNET_PRESETS[blocks]
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
