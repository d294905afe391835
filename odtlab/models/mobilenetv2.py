"""MobileNetV2 (Sandler et al., 2018), the backbone of TinyTL and MCUNet.

Reference: M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen,
*MobileNetV2: Inverted Residuals and Linear Bottlenecks*, CVPR 2018, Table 2.
With ``width_mult=1.0`` and 1000 classes the model has 3,504,872
parameters, the same count as ``torchvision.models.mobilenet_v2``.
"""

from __future__ import annotations

import torch
from torch import nn

from odtlab.models._checks import check_int, check_positive_float, check_probability
from odtlab.models.blocks import ConvBNAct, InvertedResidual, make_divisible
from odtlab.models.initialization import build_on_device

__all__ = ["MOBILENETV2_BLOCKS", "MobileNetV2", "mobilenetv2"]

#: Table 2 of the paper: expansion t, output channels c, repeats n, first stride s.
MOBILENETV2_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    """MobileNetV2 as a module with named parts; build it with :func:`mobilenetv2`.

    Attributes
    ----------
    features : nn.Sequential
        ``features[0]`` is the stem (:class:`ConvBNAct`, 3x3, stride 2),
        ``features[1:18]`` the 17 :class:`InvertedResidual` blocks and
        ``features[18]`` the last 1x1 :class:`ConvBNAct` to ``last_channels``.
    pool : nn.AdaptiveAvgPool2d
        Global average pool, so any input resolution works.
    flatten : nn.Flatten
    dropout : nn.Dropout or nn.Identity
    classifier : nn.Linear
        ``last_channels -> num_classes``; the "last layer" of transfer learning.
    """

    def __init__(
        self,
        num_classes: int,
        width_mult: float,
        in_channels: int,
        dropout: float,
    ) -> None:
        super().__init__()
        stem_channels = make_divisible(32 * width_mult)
        self.last_channels = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNAct(in_channels, stem_channels, 3, stride=2)]
        channels = stem_channels
        for t, c, n, s in MOBILENETV2_BLOCKS:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        layers.append(ConvBNAct(channels, self.last_channels, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(self.last_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(B, in_channels, H, W)`` to logits ``(B, num_classes)``."""
        x = self.features(x)
        x = self.flatten(self.pool(x))
        return self.classifier(self.dropout(x))


def mobilenetv2(
    num_classes: int = 1000,
    width_mult: float = 1.0,
    in_channels: int = 3,
    *,
    dropout: float = 0.2,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> MobileNetV2:
    """Build MobileNetV2 (Sandler et al., 2018).

    Stem conv 3x3 stride 2 with ``32 * width_mult`` channels, the 17
    inverted residual blocks of :data:`MOBILENETV2_BLOCKS`, a 1x1 conv to
    1280 channels (scaled only when ``width_mult > 1``), global average
    pool, dropout and a Linear classifier. Channel counts are rounded to
    multiples of 8 with :func:`make_divisible`; activations are
    ``ReLU6(inplace=True)`` as in torchvision. Convolutions use Kaiming-normal
    initialisation and the classifier normal(0, 0.01), as in the reference.

    Parameters
    ----------
    num_classes : int
        Number of output logits (1000 for ImageNet).
    width_mult : float
        Width multiplier ``> 0``; the paper uses 0.35 to 1.4.
    in_channels : int
        Channels of the input images.
    dropout : float
        Dropout probability before the classifier.
    device : torch.device, str or None
        Where to build the weights; ``"meta"`` allocates nothing, so the
        full model can be measured analytically for free.
    seed : int or None
        Seed of the weight initialisation (``None``: torch's global RNG).

    Returns
    -------
    MobileNetV2
        Maps ``(B, in_channels, H, W)`` to ``(B, num_classes)`` for any
        ``H, W`` (224 for ImageNet, 128 or 32 for on-device work).

    Examples
    --------
    >>> model = mobilenetv2(device="meta")
    >>> sum(p.numel() for p in model.parameters())
    3504872
    >>> model(torch.empty(2, 3, 224, 224, device="meta")).shape
    torch.Size([2, 1000])
    """
    num_classes = check_int("num_classes", num_classes)
    width_mult = check_positive_float("width_mult", width_mult)
    in_channels = check_int("in_channels", in_channels)
    dropout = check_probability("dropout", dropout)
    return build_on_device(
        lambda: MobileNetV2(num_classes, width_mult, in_channels, dropout),
        device=device,
        seed=seed,
        linear_std=0.01,
    )
