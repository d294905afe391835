"""BatchNorm folding and teaching the memory model a new layer type."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from odtlab import memory, models
from odtlab.memory.formulas import keep
from odtlab.recipes.layers.fold import count_batchnorms, fold_batchnorm
from odtlab.train import profile


@pytest.mark.parametrize("name", ["mcunet", "mobilenetv2", "cnn"])
def test_folded_model_computes_the_same_in_eval_mode(name: str) -> None:
    torch.manual_seed(0)
    net = models.build(name, num_classes=5).eval()
    # give BatchNorm non-trivial statistics, as after training
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    x = models.example_batch(name, 2, resolution=32)[0]
    before = net(x)
    n_bn = count_batchnorms(net)
    folded = fold_batchnorm(copy.deepcopy(net))
    torch.testing.assert_close(folded(x), before, atol=1e-4, rtol=1e-4)
    assert n_bn > 0 and count_batchnorms(folded) == 0
    # folding again changes nothing; names of the other parameters survive
    again = fold_batchnorm(folded)
    assert again is folded and count_batchnorms(again) == 0


def test_fold_keeps_training_mode() -> None:
    net = models.build("mcunet").train()
    assert fold_batchnorm(net).training is True


class _Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((), 2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def test_registered_layer_is_predicted_like_the_measurement() -> None:
    memory.register_layer(
        _Scale,
        pytorch=lambda c: [keep("input", c.args[0])],
        engine=lambda c: [memory.engine_int8("input (8-bit)", c.args[0])],
    )
    net = nn.Sequential(nn.Linear(6, 10), _Scale(), nn.Linear(10, 3))
    batch = (torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))
    measured = memory.measure_saved_tensors(net, batch)
    predicted = memory.analytic_saved_tensors(net, batch)
    assert measured.total_bytes == predicted.total_bytes
    # the scale keeps its (4, 10) fp32 input: 160 bytes among the total
    labels = [t.label for t in predicted.tensors if t.module == "1"]
    assert labels == ["input"]
    engine = memory.profile_training(net, batch, accounting="engine")
    assert engine.totals["activations"] > 0


def test_register_layer_rejects_non_modules() -> None:
    with pytest.raises(memory.MemoryArgumentError, match="nn.Module subclass"):
        memory.register_layer(int, pytorch=lambda c: [])  # type: ignore[arg-type]


def test_mcu_reads_frozen_weights_from_flash() -> None:
    from odtlab import devices
    from odtlab.recipes import BiasOnly, Recipe

    net = fold_batchnorm(models.build("mcunet", num_classes=10))
    batch = models.example_batch("mcunet", 1, resolution=64, num_classes=10)
    report = profile(net, batch, Recipe(BiasOnly()), accounting="engine")
    frozen = sum(p.numel() for n, p in net.named_parameters() if not n.endswith("bias"))
    frozen -= net.classifier.weight.numel()  # bias-only trains the classifier's weight too
    assert report.frozen_weight_bytes == frozen  # int8: one byte per frozen element
    on_mcu = devices.verdict(report, "stm32f746")
    assert on_mcu.flash_bytes == frozen
    assert on_mcu.peak_bytes == report.totals["peak"] - frozen
    on_pi = devices.verdict(report, "rpi4")  # a board with DRAM keeps every weight in it
    assert on_pi.flash_bytes == 0 and on_pi.peak_bytes == report.totals["peak"]
