"""Property test: on random small networks and random trainable sets, analytic == measured."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from odtlab.memory import analytic_saved_tensors, measure_saved_tensors

CONV_LAYERS = {
    "conv": lambda c: nn.Conv2d(c, c, 3, padding=1),
    "conv_nobias": lambda c: nn.Conv2d(c, c, 1, bias=False),
    "depthwise": lambda c: nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False),
    "bn": lambda c: nn.BatchNorm2d(c),
    "relu": lambda c: nn.ReLU(),
    "relu_inplace": lambda c: nn.ReLU(inplace=True),
    "relu6_inplace": lambda c: nn.ReLU6(inplace=True),
    "relu6": lambda c: nn.ReLU6(),
    "hardswish": lambda c: nn.Hardswish(),
    "sigmoid": lambda c: nn.Sigmoid(),
    "avgpool": lambda c: nn.AvgPool2d(3, stride=1, padding=1),
    "maxpool": lambda c: nn.MaxPool2d(3, stride=1, padding=1),
    "dropout": lambda c: nn.Dropout(0.25),
    "identity": lambda c: nn.Identity(),
}
VECTOR_LAYERS = {
    "linear": lambda d: nn.Linear(d, d),
    "linear_nobias": lambda d: nn.Linear(d, d, bias=False),
    "layernorm": lambda d: nn.LayerNorm(d),
    "gelu": lambda d: nn.GELU(),
    "silu": lambda d: nn.SiLU(),
    "tanh": lambda d: nn.Tanh(),
    "leaky_inplace": lambda d: nn.LeakyReLU(inplace=True),
    "dropout": lambda d: nn.Dropout(0.5),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    conv=st.lists(st.sampled_from(sorted(CONV_LAYERS)), min_size=1, max_size=5),
    vector=st.lists(st.sampled_from(sorted(VECTOR_LAYERS)), max_size=4),
    mask=st.lists(st.booleans(), min_size=30, max_size=30),
    device=st.sampled_from(["cpu", "meta"]),
)
def test_random_networks(conv: list[str], vector: list[str], mask: list[bool], device: str) -> None:
    channels, dim = 3, 6
    layers = [nn.Conv2d(1, channels, 3, padding=1)]
    layers += [CONV_LAYERS[name](channels) for name in conv]
    layers += [nn.Flatten(), nn.Linear(channels * 4 * 4, dim)]
    layers += [VECTOR_LAYERS[name](dim) for name in vector]
    layers += [nn.Linear(dim, 4)]
    model = nn.Sequential(*layers).to(device)
    names = [n for n, _ in model.named_parameters()]
    chosen = {n for n, keep in zip(names, mask, strict=False) if keep} or {names[-1]}
    batch = (torch.randn(2, 1, 4, 4).to(device), torch.tensor([1, 3]).to(device))
    trainable = sorted(chosen)
    measured = measure_saved_tensors(model, batch, trainable=trainable)
    predicted = analytic_saved_tensors(model, batch, trainable=trainable)
    assert predicted.by_module() == measured.by_module()
    assert predicted.total_bytes == measured.total_bytes
