"""The memory explorer: same numbers as odtlab.memory, verdicts from odtlab.devices."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import odtlab as odt  # noqa: E402


def test_explorer_point_equals_a_direct_measurement():
    point = odt.widgets.explore_memory("cnn", batch_size=4, resolution=32, device="stm32f746")
    net = odt.models.small_cnn(in_channels=3, width=16, device="meta")
    x, y = odt.models.example_batch("mobilenetv2", 4, resolution=32, device="meta")
    report = odt.memory.profile_training(net, (x, y.clamp(max=9)), optimizer="sgd", flops=False)
    assert point.totals == report.totals
    assert point.budget == odt.devices.get("stm32f746").training_memory_bytes
    assert point.fits is (report.totals["peak"] <= point.budget)


def test_verdict_says_by_how_much_when_it_does_not_fit():
    point = odt.widgets.explore_memory("mobilenetv2", batch_size=8, resolution=224, device="stm32f746")
    assert not point.fits
    over = point.totals["peak"] - point.budget
    assert f"over by {over} bytes" in point.verdict
    assert "activations" in point.verdict


def test_adam_adds_two_states_per_trainable_weight():
    sgd = odt.widgets.explore_memory("mcunet", batch_size=2, resolution=64, optimizer="sgd")
    adam = odt.widgets.explore_memory("mcunet", batch_size=2, resolution=64, optimizer="adam")
    assert sgd.totals["optimizer"] == 0
    assert adam.totals["optimizer"] >= 2 * adam.totals["gradients"]
    assert adam.totals["activations"] == sgd.totals["activations"]


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match="optimizer"):
        odt.widgets.explore_memory(optimizer="lion")
    with pytest.raises(ValueError, match="model"):
        odt.widgets.explore_memory(model="resnet")
    with pytest.raises(odt.UnknownDevice, match="rpi4"):
        odt.widgets.explore_memory(device="pi5")


def test_widget_updates_when_a_slider_moves():
    box = odt.widgets.memory_explorer("mobilenetv2", device="rpi4")
    rows = box.children
    batch = rows[0].children[1]
    verdict = rows[3]
    before = verdict.value
    batch.value = 64
    assert verdict.value != before
    device = rows[1].children[2]
    device.value = "stm32f746"
    assert "over by" in verdict.value
