"""ProxylessNAS-Mobile in the zoo: the published architecture, GroupNorm and weight standardisation."""

from __future__ import annotations

import torch
from torch import nn

from odtlab import models
from odtlab.models import InvertedResidual, WSConv2d, proxylessnas_mobile


def test_parameter_count_with_the_flowers_head():
    # TinyTL's Table 2 backbone with a 102-class head (Flowers-102): 2,930,174 parameters.
    net = proxylessnas_mobile(num_classes=102, device="meta")
    assert sum(p.numel() for p in net.parameters()) == 2_930_174


def test_parameter_count_by_hand_for_the_stem_and_head():
    net = proxylessnas_mobile(num_classes=102, device="meta")
    stem = 3 * 32 * 3 * 3 + 2 * 32  # conv + BatchNorm gamma, beta
    head = 320 * 1280 + 2 * 1280 + 1280 * 102 + 102  # 1x1 conv + BN, then the Linear
    count = sum(p.numel() for p in net.features[0].parameters())
    count += sum(p.numel() for p in net.features[-1].parameters())
    count += sum(p.numel() for p in net.classifier.parameters())
    assert count == stem + head


def test_the_blocks_follow_the_published_list():
    net = proxylessnas_mobile(device="meta")
    blocks = [m for m in net.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == 20  # 22 in the config, less its two zero blocks
    got = [(b.in_channels, b.out_channels, b.kernel_size, b.stride, b.expand_ratio) for b in blocks]
    assert got == list(models.PROXYLESS_MOBILE_BLOCKS)
    assert net(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, 1000)
    assert net.features[-2](torch.empty(1, 192, 7, 7, device="meta")).shape == (1, 320, 7, 7)


def test_group_norm_has_8_channels_a_group_and_the_same_parameters():
    net = proxylessnas_mobile(num_classes=102, norm="group", device="meta")
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert all(m.num_channels // m.num_groups == 8 for m in norms)
    assert sum(p.numel() for p in net.parameters()) == 2_930_174


def test_weight_standardisation_standardises_each_output_channel():
    conv = WSConv2d(4, 3, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(3, 4, 3, 3, generator=torch.Generator().manual_seed(0)) * 5 + 2)
    x = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(1))
    w = conv.weight.reshape(3, -1)
    standard = (w - w.mean(1, keepdim=True)) / (w.std(1, keepdim=True) + 1e-5)
    expected = torch.nn.functional.conv2d(x, standard.view(3, 4, 3, 3), padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-5)


def test_group_norm_and_weight_standardisation_train_on_cpu():
    net = proxylessnas_mobile(num_classes=5, norm="group", weight_standardization=True)
    assert sum(isinstance(m, WSConv2d) for m in net.modules()) == 1 + 20 * 2 + 19 + 1  # stem, dw + project, 19 expands, 1x1
    x, y = models.example_batch("proxylessnas-mobile", 2, resolution=32, num_classes=5)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_an_unknown_norm_is_refused_with_the_choices():
    try:
        proxylessnas_mobile(norm="layer", device="meta")
    except ValueError as err:
        assert "batch" in str(err) and "group" in str(err)
    else:  # pragma: no cover
        raise AssertionError("norm='layer' was accepted")
