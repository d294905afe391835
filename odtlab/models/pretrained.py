"""Pretrained backbones shipped inside the package (no download).

==================  ================================================  =========
name                what                                              file
==================  ================================================  =========
``"mbv2-shapes"``   MobileNetV2-0.35, 10 classes, 32x32 RGB, trained  0.9 MB
                    on the ``"source"`` SyntheticShapes domain
``"kt-mlp"``        the capstone tutor's population model: a          22 KB
                    knowledge-tracing MLP (64-64) on context features
                    of 300 simulated students
``"kt-gru"``        the same population, a GRU (64) over the last 16   61 KB
                    interactions
==================  ================================================  =========

Each backbone is two package-data files in ``odtlab/models/weights/``: the
state dict ``NAME.pt`` (float16 to stay small; loaded back as float32) and
``NAME.json``: builder arguments, data settings, seed, held-out accuracy,
torch version and date. ``scripts/pretrain.py`` made the backbone and
``scripts/pretrain_tutor.py`` the tutor's models.

Examples
--------
>>> from odtlab import models
>>> net = models.pretrained("mbv2-shapes")
>>> type(net).__name__, net.training
('MobileNetV2', False)
>>> models.pretrained_info("mbv2-shapes")["architecture"]["width_mult"]
0.35
"""

from __future__ import annotations

import difflib
import json
from importlib import resources
from typing import Any

import torch
from torch import nn

from odtlab.errors import UnknownModel
from odtlab.models.mcunet import mcunet
from odtlab.models.mobilenetv2 import mobilenetv2
from odtlab.models.tracing import tracing_gru, tracing_mlp

__all__ = ["pretrained", "pretrained_info", "available_pretrained"]

_BUILDERS = {
    "odtlab.models.mobilenetv2": mobilenetv2, "odtlab.models.mcunet": mcunet,
    "odtlab.models.tracing_mlp": tracing_mlp, "odtlab.models.tracing_gru": tracing_gru,
}  # fmt: skip


def _weights_dir() -> Any:
    return resources.files("odtlab.models").joinpath("weights")


def available_pretrained() -> list[str]:
    """Names of the shipped backbones, sorted.

    Examples
    --------
    >>> "mbv2-shapes" in available_pretrained()
    True
    """
    folder = _weights_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def pretrained_info(name: str = "mbv2-shapes") -> dict[str, Any]:
    """The metadata of a shipped backbone: architecture, data, seed, accuracy, versions.

    Raises
    ------
    odtlab.UnknownModel
        If there is no backbone called ``name``; the message lists the names.
    """
    names = available_pretrained()
    if name not in names:
        message = (f"no pretrained backbone {name!r}; shipped: "
                   f"{', '.join(repr(n) for n in names) or 'none'}")  # fmt: skip
        close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.5)
        if close:
            message += f". Did you mean {close[0]!r}?"
        raise UnknownModel(message)
    return json.loads(_weights_dir().joinpath(f"{name}.json").read_text(encoding="utf-8"))


def pretrained(name: str = "mbv2-shapes", *, device: torch.device | str | None = None) -> nn.Module:
    """Build a shipped backbone and load its weights (float32), in eval mode.

    Parameters
    ----------
    name : str
        One of :func:`available_pretrained`.
    device : torch.device or str, optional
        Where the weights go (the CPU by default).

    Returns
    -------
    nn.Module
        The model in eval mode (call ``.train()`` to fine-tune it); its
        ``classifier`` is the final ``nn.Linear``.

    Raises
    ------
    odtlab.UnknownModel
        For an unknown name (the message lists the shipped ones).
    """
    info = pretrained_info(name)
    builder = _BUILDERS.get(info["builder"])
    if builder is None:  # pragma: no cover - only a hand-edited metadata file gets here
        raise UnknownModel(f"{name}.json names an unknown builder {info['builder']!r}.")
    model = builder(**info["architecture"], seed=0, device=device)
    with _weights_dir().joinpath(f"{name}.pt").open("rb") as f:
        state = torch.load(f, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()
