"""An interactive memory explorer: sliders in, stacked bar and fit verdict out.

The explorer builds the model on PyTorch's ``meta`` device and measures what a
training step would keep (weights, gradients, optimizer state, activations)
without allocating any of it, so an update takes a fraction of a second even
for an ImageNet-size MobileNetV2. Results are cached, so moving a slider back
is instant.

In a notebook::

    import odtlab as odt
    odt.widgets.memory_explorer()          # sliders: batch, resolution, width, optimizer, device

Without a live kernel (a static book page) the widgets do not respond; the
function :func:`explore_memory` gives the same numbers and figure for one
setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from odtlab import devices, memory, models, viz
from odtlab.errors import DoesNotFit

__all__ = ["ExplorerPoint", "explore_memory", "memory_explorer", "plot_point", "EXPLORER_MODELS"]

#: Zoo models the explorer offers; each takes a resolution and a width multiplier.
EXPLORER_MODELS = ("mobilenetv2", "mcunet", "cnn")
_OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class ExplorerPoint:
    """One setting of the explorer and what it measured.

    Attributes
    ----------
    totals : dict[str, int]
        Bytes per category and the step's ``"peak"``.
    budget : int
        Training memory of the device, bytes.
    fits : bool
        Whether the peak fits the budget.
    verdict : str
        One readable sentence (or the ``DoesNotFit`` message).
    """

    model: str
    batch_size: int
    resolution: int
    width: float
    optimizer: str
    device: str
    totals: dict[str, int]
    budget: int
    fits: bool
    verdict: str


def _build(model: str, width: float) -> Any:
    if model == "mobilenetv2":
        return models.mobilenetv2(num_classes=10, width_mult=width, device="meta")
    if model == "mcunet":
        return models.mcunet(device="meta")
    if model == "cnn":
        return models.small_cnn(in_channels=3, width=max(1, round(16 * width)), device="meta")
    raise ValueError(f"model must be one of {EXPLORER_MODELS}, got {model!r}")


@lru_cache(maxsize=512)
def _totals(model: str, batch_size: int, resolution: int, width: float, optimizer: str):
    net = _build(model, width)
    x, y = models.example_batch(
        "mcunet" if model == "mcunet" else "mobilenetv2",
        batch_size, resolution=resolution, device="meta",
    )  # fmt: skip
    if model != "mobilenetv2":
        y = y.clamp(max=9)
    report = memory.profile_training(net, (x, y), optimizer=optimizer, flops=False)
    return tuple(sorted(report.totals.items()))


def explore_memory(
    model: str = "mobilenetv2",
    batch_size: int = 8,
    resolution: int = 224,
    width: float = 1.0,
    optimizer: str = "sgd",
    device: str = "rpi4",
) -> ExplorerPoint:
    """Measure one explorer setting on the meta device (no memory allocated).

    Parameters
    ----------
    model : {"mobilenetv2", "mcunet", "cnn"}
        Zoo model, with 10 output classes and 3 input channels.
    batch_size, resolution : int
        Examples per step and input height = width in pixels.
    width : float
        Width multiplier (channels scale with it; ignored by "mcunet").
    optimizer : {"sgd", "momentum", "adam"}
        Optimizer whose state is counted.
    device : str
        A device name from ``odtlab.devices.available()``.

    Examples
    --------
    >>> p = explore_memory("cnn", batch_size=4, resolution=32, device="stm32f746")
    >>> p.fits, max(("weights", "gradients", "optimizer", "activations"), key=p.totals.get)
    (False, 'activations')
    """
    if model not in EXPLORER_MODELS:
        raise ValueError(f"model must be one of {EXPLORER_MODELS}, got {model!r}")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
    if batch_size < 1 or resolution < 8:
        raise ValueError(
            f"batch_size must be >= 1 and resolution >= 8, got {batch_size} and {resolution}"
        )
    profile = devices.get(device)
    totals = dict(_totals(model, int(batch_size), int(resolution), float(width), optimizer))
    try:
        verdict, fits = str(devices.check_fit(totals, profile)), True
    except DoesNotFit as exc:  # the message says by how much and what to try
        verdict, fits = str(exc), False
    return ExplorerPoint(
        model, int(batch_size), int(resolution), float(width), optimizer, profile.name,
        totals, profile.training_memory_bytes, fits, verdict,
    )  # fmt: skip


def plot_point(point: ExplorerPoint, ax: Any = None) -> Any:
    """Stacked bar of the four categories against the device budget (:func:`odtlab.viz.plot_budget`)."""
    status = "fits" if point.fits else "does NOT fit"
    title = (
        f"{point.model} w={point.width:g} {point.resolution}px batch {point.batch_size}, "
        f"{point.optimizer}: peak {devices.format_bytes(point.totals['peak'])}, {status}"
    )
    return viz.plot_budget(point.totals, point.budget, point.device, title=title, ax=ax)


def memory_explorer(model: str = "mobilenetv2", device: str = "rpi4") -> Any:
    """Sliders for batch size, resolution, width, optimizer and device.

    Returns the ipywidgets container; in a notebook it shows itself. Each
    update measures the step on the meta device (cached) and redraws the
    stacked bar with the device budget and the fit verdict.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    controls = {
        "model": w.Dropdown(options=list(EXPLORER_MODELS), value=model, description="model"),
        "batch_size": w.IntSlider(value=8, min=1, max=64, description="batch"),
        "resolution": w.IntSlider(value=224 if model == "mobilenetv2" else 64, min=32, max=320,
                                  step=16, description="resolution"),
        "width": w.FloatSlider(value=1.0, min=0.35, max=1.4, step=0.05, description="width"),
        "optimizer": w.Dropdown(options=list(_OPTIMIZERS), value="sgd", description="optimizer"),
        "device": w.Dropdown(options=devices.available(), value=device, description="device"),
    }  # fmt: skip
    out = w.Output()
    verdict = w.HTML()

    def update(_: Any = None) -> None:
        point = explore_memory(**{k: c.value for k, c in controls.items()})
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(7, 2.4))
            plot_point(point, ax)
            fig.tight_layout()
            display(fig)
            plt.close(fig)
        color = "green" if point.fits else "crimson"
        verdict.value = f"<pre style='color:{color}; white-space:pre-wrap'>{point.verdict}</pre>"

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return w.VBox([w.HBox(list(controls.values())[:3]), w.HBox(list(controls.values())[3:]),
                   out, verdict])  # fmt: skip
