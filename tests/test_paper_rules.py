"""The papers' counting rules (odtlab.memory.paper_rules), checked on small nets counted by hand.

Every expected number below is worked out in the comments from the rules as
the papers' reference code applies them, not by calling the code under test.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import odtlab as odt
from odtlab import memory
from odtlab.models import InvertedResidual
from odtlab.recipes import Recipe, SparseConv2d
from odtlab.train.profile import ACCOUNTINGS


def _freeze_all_but(net: nn.Module, *prefixes: str) -> nn.Module:
    for name, p in net.named_parameters():
        p.requires_grad_(any(name.startswith(pre) for pre in prefixes))
    return net


def _small_cnn() -> nn.Sequential:
    # conv 3->8 (3x3), BN, ReLU, grouped conv 8->8 (groups 4), flatten, Linear 128 -> 10
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False), nn.Flatten(), nn.Linear(128, 10),
    )  # fmt: skip


X = torch.empty(2, 3, 4, 4, device="meta")  # batch 2 of 3 x 4 x 4 images


def test_tinytl_full_training_by_hand():
    # One image, elements: input 48, every 8 x 4 x 4 map 128; fp32 = 4 bytes.
    # conv1: temporary 48*4 + 128*4 = 704, stored 0 before -> 704; stores its input 192
    # BN: temporary 512 + 192 = 704; gamma trains: stores its input 512 (total 704)
    # ReLU: 512 + 704 = 1216; stores 128 bits = 16 bytes (total 720)
    # grouped conv: 512 + 512 / 4 = 640, + 720 = 1360; stores 512 (total 1232)
    # Linear: (128 + 10) * 4 = 552, + 1232 = 1784  <- the peak
    mem = memory.tinytl_memory(_small_cnn(), X)
    assert mem.activation_peak_bytes == 1784
    assert mem.activation_bytes == 2 * 1784
    # parameters, all trained at 4 B: 216 + 16 + 144 + 1290 = 1666
    assert mem.parameter_bytes == 1666 * 4
    assert mem.total_bytes == 1666 * 4 + 2 * 1784
    assert mem.megabytes == mem.total_bytes / 10**6


def test_tinytl_last_layer_only_stores_no_masks_and_counts_frozen_weights_at_1_byte():
    net = _freeze_all_but(_small_cnn(), "5.")
    # nothing before the classifier stores anything; the largest temporary is conv1's 704
    mem = memory.tinytl_memory(net, X)
    assert mem.activation_peak_bytes == 704
    assert mem.parameter_bytes == 1290 * 4 + (216 + 16 + 144) * 1


def test_tinytl_a_trained_beta_stores_nothing_but_the_relu_mask_is_kept():
    net = _freeze_all_but(_small_cnn(), "1.bias", "5.")
    # BN stores nothing (gamma frozen); ReLU stores 16 bytes since more than the head trains:
    # conv1 704, BN 512, ReLU 512, grouped conv 640 + 16 = 656, Linear 552 + 16 = 568
    assert memory.tinytl_memory(net, X).activation_peak_bytes == 704
    net = _freeze_all_but(_small_cnn(), "1.weight", "5.")
    # gamma trains: BN stores 512; ReLU 512 + 512 = 1024, grouped conv 640 + 528 = 1168
    assert memory.tinytl_memory(net, X).activation_peak_bytes == 1168


def test_tinytl_counts_the_block_input_inside_a_residual_block():
    block = InvertedResidual(4, 4, stride=1, expand_ratio=1, kernel_size=3)  # residual
    x = torch.empty(1, 4, 4, 4, device="meta")  # 64 elements, 256 bytes, held by the block
    # dw conv: 256 + 256/4 = 320 (+256 residual) -> 576, stores 256
    # BN: 256 + 256 + 256 = 768, stores 256 (total 512)
    # ReLU6: 256 + 512 + 256 = 1024, stores 8 (total 520)
    # project 1x1: 256 + 256 + 520 + 256 = 1288, stores 256 (776); BN: 256 + 776 + 256 = 1288
    assert memory.tinytl_memory(block, x).activation_peak_bytes == 1288


def test_tinytl_smooth_activations_store_32_bits_relus_1_bit():
    x = torch.empty(1, 4, device="meta")
    # Linear 4->4: 32, stores 16; Sigmoid: 16 + 16 = 32, stores 16; Linear 4->2: 24 + 32 = 56
    sig = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    assert memory.tinytl_memory(sig, x).activation_peak_bytes == 56
    # ReLU stores 4 bits = 0.5 byte: the last Linear sees 24 + 16.5 = 40.5
    relu = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    assert memory.tinytl_memory(relu, x).activation_peak_bytes == 40.5


def test_tinytl_parameter_bytes():
    net = _freeze_all_but(nn.Linear(3, 2), "weight")
    assert memory.tinytl_parameter_bytes(net) == 6 * 4 + 2 * 1


def _mcu_net() -> nn.Sequential:
    # conv 3->8 3x3, ReLU, depthwise 8 3x3, pointwise 8->16, pool, flatten, Linear 16->10
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Conv2d(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


def test_256kb_bias_and_weight_updates_by_hand():
    net = _freeze_all_but(_mcu_net(), "2.bias", "3.", "6.")
    x = torch.empty(1, 3, 8, 8, device="meta")  # 8 x 8 maps: 64 pixels
    # classifier: its 16 inputs in 8 bits = 128 bits (its weight is not counted)
    # pointwise (weight and bias): mask 16*64 = 1024 bits, bias 16*32 = 512 bits,
    #   input 64 px x 8 channels x 8 bits = 4096, weights 16*8 x 8 bits = 1024
    # depthwise (bias only): mask 8*64 = 512 bits, bias 8*32 = 256 bits
    mem = memory.sparse_update_memory(net, x)
    assert mem.parameter_bytes == (512 + 1024 + 256) / 8
    assert mem.activation_bytes == (128 + 1024 + 4096 + 512) / 8
    assert mem.kilobytes == (1792 + 5760) / 8 / 1024


def test_256kb_depthwise_weights_and_kept_input_channels():
    net = _freeze_all_but(_mcu_net(), "2.", "6.")
    x = torch.empty(1, 3, 8, 8, device="meta")
    # depthwise (weight and bias): mask 512, bias 256, input 64 px x 8 ch x 8 = 4096,
    # weights 8 x 3 x 3 x 8 bits = 576; classifier 128 bits
    mem = memory.sparse_update_memory(net, x)
    assert mem.parameter_bytes == (256 + 576) / 8
    assert mem.activation_bytes == (128 + 512 + 4096) / 8
    # a channel-sparse pointwise conv training 2 of its 8 input channels (ratio 0.25)
    sparse = nn.Sequential(SparseConv2d(8, 16, 1, update_ratio=0.25), nn.Flatten(), nn.Linear(1024, 2))
    for p in sparse[2].parameters():
        p.requires_grad_(False)
    mem = memory.sparse_update_memory(sparse, torch.empty(1, 8, 8, 8, device="meta"))
    # mask 16*64 = 1024, bias 512, input 64 px x 2 ch x 8 = 1024, weights 16 x 2 x 8 = 256
    assert mem.activation_bytes == (1024 + 1024) / 8
    assert mem.parameter_bytes == (512 + 256) / 8


def test_profile_accepts_the_paper_accountings():
    assert {"pytorch", "engine", "tinytl", "256kb"} <= set(ACCOUNTINGS)
    batch = (X, torch.zeros(2, dtype=torch.long, device="meta"))
    report = odt.train.profile(_small_cnn(), batch, Recipe(), accounting="tinytl")
    assert report.totals["peak"] == 1666 * 4 + 2 * 1784
    assert report.totals["gradients"] == report.totals["optimizer"] == 0
    assert report.accounting == "tinytl" and report.peak_bytes == report.totals["peak"]
    with pytest.raises(odt.OdtlabError, match="'tinytl'"):
        odt.train.profile(_small_cnn(), batch, Recipe(), accounting="tiny")
    with pytest.raises(odt.OdtlabError, match="rules"):
        memory.paper_report(_small_cnn(), X, "mcunet")
