"""ResNet-50 (He et al., 2016), the yardstick that TinyTL compares MobileNetV2 against.

It is not one of the zoo's on-device models (``odtlab.models.available()``):
it is here so that chapter 1 and ``benchmarks/papers.py`` can measure the
comparison of TinyTL's Figure 1 (ResNet-50 against MobileNetV2-1.4) on the
``meta`` device. With 1000 classes it has 25,557,032 parameters, the count of
``torchvision.models.resnet50``.
"""

from __future__ import annotations

import torch
from torch import nn

from odtlab.models._checks import check_int
from odtlab.models.initialization import build_on_device

__all__ = ["Bottleneck", "ResNet", "resnet50"]


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride), 1x1 expand by 4, each with BatchNorm; ReLU after the add."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.downsample(x))


class ResNet(nn.Module):
    """Stem (7x7 conv, max-pool), four stages of bottlenecks, pool, classifier."""

    def __init__(self, blocks: tuple[int, ...], num_classes: int, in_channels: int) -> None:
        super().__init__()
        stem = [
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        layers: list[nn.Module] = stem
        channels = 64
        for stage, repeats in enumerate(blocks):
            width = 64 * 2**stage
            for i in range(repeats):
                layers.append(Bottleneck(channels, width, 2 if (i == 0 and stage > 0) else 1))
                channels = width * Bottleneck.expansion
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def resnet50(
    num_classes: int = 1000,
    in_channels: int = 3,
    *,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> ResNet:
    """Build ResNet-50: bottleneck stages of 3, 4, 6 and 3 blocks.

    Parameters
    ----------
    num_classes, in_channels : int
        Output logits and input image channels.
    device : torch.device, str or None
        ``"meta"`` builds it without allocating its 100 MB of weights.
    seed : int or None
        Seed of the weight initialisation.

    Examples
    --------
    >>> sum(p.numel() for p in resnet50(device="meta").parameters())
    25557032
    """
    num_classes = check_int("num_classes", num_classes)
    in_channels = check_int("in_channels", in_channels)
    return build_on_device(
        lambda: ResNet((3, 4, 6, 3), num_classes, in_channels), device=device, seed=seed
    )
