"""A small convolutional network for 8x8 to 32x32 images."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from odtlab.models._checks import check_int
from odtlab.models.initialization import build_on_device

__all__ = ["small_cnn"]


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            bn=nn.BatchNorm2d(out_channels),
            relu=nn.ReLU(inplace=True),
        )
    )


def small_cnn(
    in_channels: int = 1,
    num_classes: int = 10,
    width: int = 16,
    *,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> nn.Sequential:
    """Build a small CNN: three Conv-BN-ReLU blocks, two max-pools, global pool, Linear.

    Layout, for an input ``(B, in_channels, H, W)``::

        block1: conv3x3 -> width       (H, W)
        pool1:  max-pool 2x2           (H/2, W/2)
        block2: conv3x3 -> 2*width
        pool2:  max-pool 2x2           (H/4, W/4)
        block3: conv3x3 -> 4*width
        pool:   global average pool    (1, 1)
        classifier: Linear(4*width, num_classes)

    The max-pools round up (``ceil_mode=True``), so any input of at least
    1x1 works; 8x8 digits and 32x32 CIFAR-size images are the intended sizes.
    Children of the returned ``nn.Sequential``: ``features``, ``pool``,
    ``flatten``, ``classifier``.

    Parameters
    ----------
    in_channels : int
        1 for grey images, 3 for colour.
    num_classes : int
        Number of output logits.
    width : int
        Channels of the first block; the next two have 2x and 4x as many.
    device : torch.device, str or None
        Where to build the weights; ``"meta"`` allocates nothing.
    seed : int or None
        Seed of the weight initialisation (``None``: torch's global RNG).

    Returns
    -------
    nn.Sequential
        Maps ``(B, in_channels, H, W)`` to logits ``(B, num_classes)``.

    Examples
    --------
    >>> small_cnn()(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 10])
    """
    in_channels = check_int("in_channels", in_channels)
    num_classes = check_int("num_classes", num_classes)
    width = check_int("width", width)

    def factory() -> nn.Sequential:
        features = nn.Sequential(
            OrderedDict(
                block1=_conv_bn_relu(in_channels, width),
                pool1=nn.MaxPool2d(2, ceil_mode=True),
                block2=_conv_bn_relu(width, 2 * width),
                pool2=nn.MaxPool2d(2, ceil_mode=True),
                block3=_conv_bn_relu(2 * width, 4 * width),
            )
        )
        return nn.Sequential(
            OrderedDict(
                features=features,
                pool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                classifier=nn.Linear(4 * width, num_classes),
            )
        )

    return build_on_device(factory, device=device, seed=seed)
