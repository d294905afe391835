"""The memory explorer: same numbers as odtlab.memory, verdicts from odtlab.devices."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace  # noqa: E402

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


def test_contribution_labels_do_not_overlap_and_points_keep_their_values():
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from odtlab.viz import plot_contributions

    # the candidates of chapter 4's figure (KiB, points): crowded within 0-150 KiB
    rows = [("bias", "bias of last 52", 70, 9.6), ("bias", "bias of last 16", 30, 2.0),
            ("bias", "bias of last 32", 40, 1.7), ("bias", "bias of last 8", 20, 1.0),
            ("bias", "bias of last 4", 15, 0.7), ("bias", "classifier only", 0, 0.0),
            ("weight", "conv 48 at 100%", 130, 10.0), ("weight", "conv 48 at 50%", 65, 7.7),
            ("weight", "conv 48 at 12.5%", 17, 4.7), ("weight", "conv 50 at 100%", 260, 4.7),
            ("weight", "conv 51 at 100%", 980, 2.0), ("weight", "conv 51 at 50%", 490, 1.0),
            ("weight", "conv 47 at 100%", 130, 1.0), ("weight", "conv 50 at 50%", 130, 0.7),
            ("weight", "conv 51 at 12.5%", 122, 0.0), ("weight", "conv 47 at 50%", 65, -2.0),
            ("weight", "conv 50 at 12.5%", 33, -2.4), ("weight", "conv 47 at 12.5%", 17, -3.0)]
    table = SimpleNamespace(contributions=[
        SimpleNamespace(kind=k, name=n, extra_bytes=x * 1024, gain=g / 100) for k, n, x, g in rows
    ])  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        plot_contributions(table, ax)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        texts = [t for t in ax.texts if t.get_text() in {n for _, n, _, _ in rows}]
        assert len(texts) == len(rows)
        # the text's own box (an Annotation's extent would include its leader line)
        boxes = [Text.get_window_extent(t, renderer) for t in texts]
        overlaps = [(texts[i].get_text(), texts[j].get_text())
                    for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]  # fmt: skip
        assert not overlaps, overlaps
        plotted = sorted(tuple(p) for c in ax.collections for p in c.get_offsets().tolist())
        expected = sorted((x, g) for _, _, x, g in rows)
        assert [p for pair in plotted for p in pair] == pytest.approx([v for pair in expected for v in pair])
    finally:
        plt.close(fig)
