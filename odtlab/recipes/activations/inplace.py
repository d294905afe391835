"""In-place activations: let ReLU overwrite its input instead of writing a new tensor.

``nn.ReLU(inplace=True)`` writes its result over its input, so a forward
pass needs one activation-sized buffer less at that moment. Does it help
*training*? What PyTorch 2.13 keeps for backward (see :mod:`odtlab.memory`):

* ``ReLU`` keeps its output either way (in place, the output *is* the
  input's storage, and the BatchNorm before it keeps its own input);
* ``ReLU6``/``Hardtanh`` keep their input; in place, a *clone* of it;
* ``SiLU``, ``Hardswish``, ``LeakyReLU``... follow the same pattern.

So the saved activations do not change, and the training peak, reached in
the backward pass, does not either. Measured with
``benchmarks/recipes.py`` (torch 2.13, CPU, batch 4): the same activation
bytes and the same training peak for the CNN, MobileNetV2 and the MLP,
in place or not, confirmed by ``torch.profiler``; only the MLP's
*inference* peak drops (74,024 to 73,000 bytes). In-place activations
matter for inference and for engines that free what PyTorch keeps, not for
PyTorch training. If training fails with "one of the variables needed for
gradient computation has been modified by an inplace operation", a layer
needs the overwritten input: use ``InPlaceActivations(False)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from odtlab.recipes.base import RecipePart, register_kind

__all__ = ["InPlaceActivations", "INPLACE_TYPES", "set_inplace"]

#: Activation layers with an ``inplace`` flag that this part switches.
INPLACE_TYPES = (
    nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.SiLU,
    nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Threshold, nn.RReLU,
)  # fmt: skip


def set_inplace(model: nn.Module, inplace: bool) -> int:
    """Set ``inplace`` on every activation of :data:`INPLACE_TYPES`; return how many changed.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> set_inplace(net, True), net[1].inplace
    (1, True)
    """
    changed = 0
    for m in model.modules():
        if isinstance(m, INPLACE_TYPES) and m.inplace != inplace:
            m.inplace = inplace
            changed += 1
    return changed


@dataclass(frozen=True)
class InPlaceActivations(RecipePart):
    """Switch every ReLU-like activation to in place (``True``) or out of place (``False``).

    Without this part a recipe leaves each activation as the model built it
    (the zoo's CNNs use in-place ReLU/ReLU6, the MLP does not).

    Examples
    --------
    >>> InPlaceActivations().name, InPlaceActivations(False).name
    ('inplace', 'no-inplace')
    """

    kind: ClassVar[str] = "activations"
    enabled: bool = True

    @property
    def name(self) -> str:
        return "inplace" if self.enabled else "no-inplace"

    def apply(self, model: nn.Module) -> None:
        set_inplace(model, bool(self.enabled))


register_kind("activations", stage=40)
