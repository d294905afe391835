"""Building blocks shared by MobileNetV2 and the MCUNet-like network.

The star is :class:`InvertedResidual`, the "MBConv" block of Sandler et al.
(2018), *MobileNetV2: Inverted Residuals and Linear Bottlenecks*, CVPR.
Later chapters attach extra branches to every block (TinyTL's lite
residual) or update only some of its layers (sparse update), so its
structure is kept flat, named and documented.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from odtlab.models._checks import check_int, check_positive_float

__all__ = ["make_divisible", "ConvBNAct", "InvertedResidual"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never going down by >10%.

    Hardware (and the reference MobileNetV2 code) likes channel counts that are
    multiples of 8, so ``width_mult`` scaled counts are rounded this way.

    Parameters
    ----------
    value : float
        The wanted channel count, e.g. ``32 * 0.35 = 11.2``.
    divisor : int
        The multiple to round to.
    min_value : int or None
        Smallest result allowed; defaults to ``divisor``.

    Returns
    -------
    int
        The rounded channel count.

    Examples
    --------
    >>> make_divisible(32 * 0.35), make_divisible(1280), make_divisible(19)
    (16, 1280, 24)
    """
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # rounding down lost more than 10%: go one step up
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """``Conv2d`` (no bias) then ``BatchNorm2d`` then, optionally, ``ReLU6``.

    The children are named ``conv``, ``bn`` and ``act`` (``act`` is absent when
    ``activation=False``), so ``layer.conv`` is always the convolution.
    Padding is ``kernel_size // 2``, so stride 1 keeps the spatial size and
    stride 2 halves it (rounding up).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input ``(B, in_channels, H, W)`` and output.
    kernel_size : int
        Odd kernel size, e.g. 1, 3, 5 or 7.
    stride : int
        1 or 2.
    groups : int
        ``groups=in_channels`` makes it a depthwise convolution.
    activation : bool
        Append ``ReLU6(inplace=True)``.

    Examples
    --------
    >>> ConvBNAct(3, 8, kernel_size=3, stride=2)(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 8, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: bool = True,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        )
        layers["bn"] = nn.BatchNorm2d(out_channels)
        if activation:
            layers["act"] = nn.ReLU6(inplace=True)
        super().__init__(layers)


class InvertedResidual(nn.Module):
    """The MobileNetV2 inverted residual block ("MBConv").

    A narrow input is *expanded* by a 1x1 convolution to
    ``hidden = round(in_ch * expand_ratio)`` channels, filtered by a cheap
    depthwise ``kernel_size x kernel_size`` convolution, then *projected*
    back to a narrow output by a 1x1 convolution with no activation (the
    "linear bottleneck")::

        x --> [expand 1x1: conv-BN-ReLU6] --> [depthwise kxk: conv-BN-ReLU6]
          --> [project 1x1: conv-BN] --> (+ x when use_residual) --> out

    Attributes
    ----------
    conv : nn.Sequential
        The main branch, children named ``expand`` (absent when
        ``expand_ratio == 1``), ``depthwise`` and ``project``; each is a
        :class:`ConvBNAct`. For example ``block.conv.depthwise.conv`` is the
        depthwise ``nn.Conv2d``.
    use_residual : bool
        True exactly when ``stride == 1`` and ``in_ch == out_ch``: only then
        do input and output have the same shape, so they can be added.
    in_channels, out_channels, hidden_channels, stride, expand_ratio, kernel_size
        The arguments, kept for memory and FLOP accounting.

    Parameters
    ----------
    in_ch, out_ch : int
        Input and output channels.
    stride : int
        1 or 2 (2 halves height and width, in the depthwise convolution).
    expand_ratio : float
        Expansion factor ``t >= 1`` of the paper.
    kernel_size : int
        Odd depthwise kernel size (3, 5, 7 in MCUNet).

    Examples
    --------
    >>> block = InvertedResidual(16, 16, stride=1, expand_ratio=6)
    >>> block.use_residual, block(torch.zeros(2, 16, 8, 8)).shape
    (True, torch.Size([2, 16, 8, 8]))
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int,
        expand_ratio: float,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        check_int("in_ch", in_ch)
        check_int("out_ch", out_ch)
        if stride not in (1, 2) or isinstance(stride, bool):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if check_positive_float("expand_ratio", expand_ratio) < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio!r}")
        if check_int("kernel_size", kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")
        self.in_channels = in_ch
        self.out_channels = out_ch
        self.stride = stride
        self.expand_ratio = expand_ratio
        self.kernel_size = kernel_size
        self.hidden_channels = int(round(in_ch * expand_ratio))
        self.use_residual: bool = stride == 1 and in_ch == out_ch

        hidden = self.hidden_channels
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if expand_ratio != 1:
            layers["expand"] = ConvBNAct(in_ch, hidden, kernel_size=1)
        layers["depthwise"] = ConvBNAct(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        layers["project"] = ConvBNAct(hidden, out_ch, kernel_size=1, activation=False)
        self.conv = nn.Sequential(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_ch, H, W)`` to ``(B, out_ch, H / stride, W / stride)``."""
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, hidden={self.hidden_channels}, "
            f"k={self.kernel_size}, stride={self.stride}, residual={self.use_residual}"
        )
