"""ProxylessNAS-Mobile: the backbone of TinyTL's Table 2, built from its published architecture.

ProxylessNAS (H. Cai, L. Zhu, S. Han, *ProxylessNAS: Direct Neural
Architecture Search on Target Task and Hardware*, ICLR 2019,
``cai2019proxylessnas``) searched a MobileNetV2-like network for mobile
phones: the same inverted residual ("MB") blocks, but each with its own
kernel size (3, 5 or 7) and expansion ratio (3 or 6), and some blocks
searched away ("zero" blocks, which leave their input unchanged). TinyTL
(Cai et al., NeurIPS 2020, ``cai2020tinytl``) fine-tunes it, with GroupNorm
(8 channels a group) and weight standardisation in place of BatchNorm, in
every row of its Table 2.

:data:`PROXYLESS_MOBILE_BLOCKS` transcribes the ``proxyless_mobile``
configuration of the MCUNet/TinyTL code (``ofa.model_zoo.proxylessnas_mobile``):
a 3x3 stride-2 stem with 32 channels; 21 blocks ``(in, out, kernel, stride,
expand)``; a 1x1 convolution to 1280 channels; global average pooling,
dropout and the classifier. The two zero blocks of the third stage are left
out: they hold no parameter and compute nothing (``x -> x``). Check: with a
102-class head (the Flowers-102 task of Table 2) the network has 2,930,174
parameters; with 1000 classes, 4,080,512 (ProxylessNAS reports 4.1 M).

Examples
--------
>>> net = proxylessnas_mobile(num_classes=102, device="meta")
>>> sum(p.numel() for p in net.parameters())
2930174
>>> net(torch.empty(1, 3, 224, 224, device="meta")).shape
torch.Size([1, 102])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from odtlab.models._checks import check_int, check_probability
from odtlab.models.blocks import ConvBNAct, InvertedResidual
from odtlab.models.initialization import build_on_device

__all__ = [
    "PROXYLESS_MOBILE_BLOCKS",
    "PROXYLESS_NORMS",
    "ProxylessNASMobile",
    "WSConv2d",
    "proxylessnas_mobile",
]

#: ``(in_channels, out_channels, kernel_size, stride, expand_ratio)`` of each block, in
#: order (the ``proxyless_mobile`` net config; its two zero blocks, after the third
#: block, are identities and left out).
PROXYLESS_MOBILE_BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (32, 16, 3, 1, 1),
    (16, 32, 5, 2, 3),
    (32, 32, 3, 1, 3),
    (32, 40, 7, 2, 3),
    (40, 40, 3, 1, 3),
    (40, 40, 5, 1, 3),
    (40, 40, 5, 1, 3),
    (40, 80, 7, 2, 6),
    (80, 80, 5, 1, 3),
    (80, 80, 5, 1, 3),
    (80, 80, 5, 1, 3),
    (80, 96, 5, 1, 6),
    (96, 96, 5, 1, 3),
    (96, 96, 5, 1, 3),
    (96, 96, 5, 1, 3),
    (96, 192, 7, 2, 6),
    (192, 192, 7, 1, 6),
    (192, 192, 7, 1, 3),
    (192, 192, 7, 1, 3),
    (192, 320, 7, 1, 6),
)

#: Normalisations :func:`proxylessnas_mobile` offers.
PROXYLESS_NORMS = ("batch", "group")
CHANNELS_PER_GROUP = 8  # TinyTL, Section 4.1: "the number of channels per group to 8"


class WSConv2d(nn.Conv2d):
    """A ``Conv2d`` with weight standardisation (Qiao et al., 2019, ``qiao2019weight``), as in TinyTL.

    Each output channel's weight is standardised (mean 0, standard deviation
    1 over its ``in / groups x k x k`` entries, ``eps`` added to the standard
    deviation) before the convolution; TinyTL pairs it with GroupNorm (its
    ``ws_eps`` is 1e-5). The parameters are those of ``nn.Conv2d``.

    Memory: the accountings of :mod:`odtlab.memory` treat it as a plain
    convolution; the standardised weight (weight-sized, not
    activation-sized) is not counted.

    Examples
    --------
    >>> conv = WSConv2d(4, 8, 3, padding=1)
    >>> conv(torch.randn(1, 4, 5, 5)).shape
    torch.Size([1, 8, 5, 5])
    """

    eps: float = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution of ``x`` with the standardised weight."""
        w = self.weight
        flat = w.reshape(w.shape[0], -1)
        mean = flat.mean(dim=1).view(-1, 1, 1, 1)
        std = flat.std(dim=1).view(-1, 1, 1, 1) + self.eps
        return F.conv2d(
            x, (w - mean) / std, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class ProxylessNASMobile(nn.Module):
    """ProxylessNAS-Mobile; build it with :func:`proxylessnas_mobile`.

    Attributes
    ----------
    features : nn.Sequential
        ``features[0]`` the stem (:class:`~odtlab.models.ConvBNAct`, 3x3,
        stride 2, 32 channels), ``features[1..20]`` the
        :class:`~odtlab.models.InvertedResidual` blocks of
        :data:`PROXYLESS_MOBILE_BLOCKS`, ``features[21]`` the 1x1
        convolution to 1280 channels.
    pool, flatten, dropout : nn.Module
        Global average pooling, flatten, dropout before the classifier.
    classifier : nn.Linear
        ``1280 -> num_classes``.
    """

    def __init__(self, num_classes: int, in_channels: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(in_channels, 32, 3, stride=2)]
        for cin, cout, k, s, e in PROXYLESS_MOBILE_BLOCKS:
            layers.append(InvertedResidual(cin, cout, s, e, k))
        layers.append(ConvBNAct(320, 1280, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(B, in_channels, H, W)`` to logits ``(B, num_classes)``."""
        return self.classifier(self.dropout(self.flatten(self.pool(self.features(x)))))


def _to_group_norm(model: nn.Module) -> None:
    """Swap every ``BatchNorm2d`` for a GroupNorm with 8 channels a group (same child name)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                channels = child.num_features
                groups = max(1, channels // CHANNELS_PER_GROUP)
                parent.add_module(name, nn.GroupNorm(groups, channels))


def _to_weight_standardised(model: nn.Module) -> None:
    """Make every ``Conv2d`` a :class:`WSConv2d` (same object and parameters)."""
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = WSConv2d


def proxylessnas_mobile(
    num_classes: int = 1000,
    in_channels: int = 3,
    *,
    norm: str = "batch",
    weight_standardization: bool = False,
    dropout: float = 0.2,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> ProxylessNASMobile:
    """Build ProxylessNAS-Mobile (Cai, Zhu, Han, ICLR 2019), TinyTL's Table 2 backbone.

    Parameters
    ----------
    num_classes : int
        Number of output logits (102 for Flowers-102, TinyTL's Table 2).
    in_channels : int
        Channels of the input images.
    norm : {"batch", "group"}
        ``"batch"``: BatchNorm, like the zoo's other networks; ``"group"``:
        GroupNorm with 8 channels a group, as TinyTL trains it (Section 4.1).
        The norm layers keep the child name ``bn`` either way.
    weight_standardization : bool
        Standardise every convolution's weight (:class:`WSConv2d`), as
        TinyTL does with GroupNorm.
    dropout : float
        Dropout probability before the classifier (0.2, as TinyTL).
    device : torch.device, str or None
        Where to build the weights; ``"meta"`` allocates nothing.
    seed : int or None
        Seed of the weight initialisation (no pretrained weights are shipped:
        memory depends on shapes only).

    Returns
    -------
    ProxylessNASMobile
        Maps ``(B, in_channels, H, W)`` to ``(B, num_classes)``.

    Raises
    ------
    ValueError
        For an unknown ``norm`` (the message lists the choices).

    Examples
    --------
    >>> net = proxylessnas_mobile(102, norm="group", device="meta")
    >>> type(net.features[1].conv.depthwise.bn).__name__, net.features[1].conv.depthwise.bn.num_groups
    ('GroupNorm', 4)
    """
    num_classes = check_int("num_classes", num_classes)
    in_channels = check_int("in_channels", in_channels)
    dropout = check_probability("dropout", dropout)
    if norm not in PROXYLESS_NORMS:
        raise ValueError(f"norm must be one of {PROXYLESS_NORMS}, got {norm!r}")

    def factory() -> ProxylessNASMobile:
        net = ProxylessNASMobile(num_classes, in_channels, dropout)
        if norm == "group":
            _to_group_norm(net)
        if weight_standardization:
            _to_weight_standardised(net)
        return net

    return build_on_device(factory, device=device, seed=seed, linear_std=0.01)
