"""The GroupNorm rule of odtlab.memory, by hand: PyTorch's saved tensors and the engine's."""

from __future__ import annotations

import torch
from torch import nn

from odtlab import memory
from odtlab.memory import analytic_saved_tensors, measure_saved_tensors


def _net_and_batch() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.GroupNorm(2, 8), nn.Flatten(), nn.Linear(200, 4)
    )
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    return net, (x, torch.tensor([0, 3]))


def test_pytorch_keeps_the_input_and_two_statistics_per_sample_and_group():
    net, batch = _net_and_batch()
    # GroupNorm trained only: its fp32 input (2 x 8 x 5 x 5 floats) and mean, rstd (2 x 2 fp32 each)
    expected = 2 * 8 * 5 * 5 * 4 + 2 * (2 * 2 * 4)
    measured = measure_saved_tensors(net, batch, trainable=["1"]).by_module()
    analytic = analytic_saved_tensors(net, batch, trainable=["1"]).by_module()
    assert measured["1"] == analytic["1"] == expected == 1632


def test_analytic_equals_measured_for_group_norm_on_meta():
    net, batch = _net_and_batch()
    measured = measure_saved_tensors(net, batch)
    meta = (batch[0].to("meta"), batch[1].to("meta"))
    analytic = analytic_saved_tensors(net.to("meta"), meta)
    assert analytic.by_module() == measured.by_module()


def test_the_engine_keeps_the_input_in_8_bits_and_fp32_statistics():
    net, batch = _net_and_batch()
    for name, p in net.named_parameters():
        p.requires_grad_(name.startswith("1."))
    report = memory.profile_training(net, batch, accounting="engine", flops=False)
    assert report.saved.by_module()["1"] == 2 * 8 * 5 * 5 * 1 + 2 * (2 * 2 * 4) == 432
