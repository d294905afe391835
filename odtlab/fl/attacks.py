"""Poisoning attacks on a federation, by a configurable fraction of malicious clients.

A federation trusts every client's update. A malicious client can poison
its *data* (the server never sees it) or its *update* (the server cannot
check it against data it never sees):

================  ==========================================================
``label_flip``    trains honestly on flipped labels ``y -> C - 1 - y``
                  (data poisoning; Biggio et al. 2012, Tolpegin et al. 2020)
``sign_flip``     sends the reversed update ``w_g - boost (w_k - w_g)``
``scale``         model replacement: trains on flipped labels and boosts
                  its update by ``boost`` (about ``n / f``) so that its model
                  replaces the average (Bagdasaryan et al., AISTATS 2020)
``backdoor``      trains on data where part of the examples carry a trigger
                  patch and the target label, and boosts its update (the
                  paper's model replacement); the model keeps its accuracy
                  and obeys the trigger: :func:`attack_success_rate`
================  ==========================================================

Update attacks act in :meth:`MaliciousClient.compress`, where the engine
turns what a client trained into what the server receives, so they work with
both engines of :func:`~odtlab.fl.run_federation` (loop and vectorized).

Examples
--------
>>> from torch.utils.data import Subset
>>> from odtlab import data
>>> train = data.digits("train")
>>> clients = [Client(f"c{k}", Subset(train, p)) for k, p in enumerate(data.partition(train, 10, seed=0))]
>>> poisoned, bad = make_malicious(clients, "sign_flip", fraction=0.3, seed=0)
>>> len(bad), type(poisoned[int(bad[0][1:])]).__name__
(3, 'MaliciousClient')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from odtlab.data import as_tensors
from odtlab.fl.client import Client, ClientResult

__all__ = [
    "ATTACKS",
    "Trigger",
    "flip_labels",
    "backdoor_data",
    "attack_success_rate",
    "poison_update",
    "MaliciousClient",
    "make_malicious",
]

ATTACKS = ("label_flip", "sign_flip", "scale", "backdoor")


def flip_labels(data: Dataset, num_classes: int = 10) -> TensorDataset:
    """``data`` with every label ``y`` replaced by ``num_classes - 1 - y``."""
    x, y = as_tensors(data)
    if len(y) and int(y.max()) >= num_classes:
        raise ValueError(f"flip_labels(num_classes={num_classes}): the data holds label {int(y.max())}; give the true class count")
    return TensorDataset(x.clone(), num_classes - 1 - y)


@dataclass(frozen=True)
class Trigger:
    """A backdoor trigger: a ``size x size`` patch of ``value`` in the bottom-right corner.

    Attributes
    ----------
    target : int
        The label the backdoored model gives to any input with the patch.
    size : int
        Patch side, pixels.
    value : float
        Pixel value of the patch (the digits' brightest standardised ink is about 1.85).
    """

    target: int = 0
    size: int = 2
    value: float = 2.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """A copy of images ``x`` (``(..., H, W)``) with the patch stamped on."""
        out = x.clone()
        out[..., -self.size :, -self.size :] = self.value
        return out


def backdoor_data(data: Dataset, trigger: Trigger, *, fraction: float = 0.5, seed: int = 0) -> TensorDataset:
    """``data`` plus triggered copies of a ``fraction`` of its examples, labelled ``trigger.target``.

    The clean examples stay, so the attacker's model still does the main
    task well (stealth) while learning the trigger.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"backdoor_data(fraction={fraction!r}): give the share of examples to trigger, in (0, 1]")
    x, y = as_tensors(data)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(y), generator=g)[: max(1, round(fraction * len(y)))]
    bad_x = trigger.apply(x[pick])
    bad_y = torch.full((len(pick),), trigger.target, dtype=torch.int64)
    return TensorDataset(torch.cat([x, bad_x]), torch.cat([y, bad_y]))


@torch.no_grad()
def attack_success_rate(model: nn.Module, test_data: Dataset, trigger: Trigger) -> float:
    """Share of test examples *not* of the target class that the trigger turns into the target.

    0 for a clean model (up to its mistakes towards the target), 1 for a
    model that always obeys the trigger.
    """
    x, y = as_tensors(test_data)
    keep = y != trigger.target
    if not bool(keep.any()):
        raise ValueError("attack_success_rate: the test data holds only the target class; give other classes too")
    was = model.training
    model.eval()
    predicted = model(trigger.apply(x[keep])).argmax(dim=1)
    model.train(was)
    return float((predicted == trigger.target).double().mean())


def poison_update(
    result: ClientResult, global_params: Mapping[str, torch.Tensor], attack: str, boost: float
) -> ClientResult:
    """``result`` with its update ``d = w_k - w_g`` replaced: ``-boost d`` (sign flip) or ``boost d``."""
    if attack not in ("sign_flip", "scale", "backdoor"):
        raise ValueError(f"poison_update(attack={attack!r}): give 'sign_flip', 'scale' or 'backdoor'")
    factor = -boost if attack == "sign_flip" else boost
    params = {}
    for k, v in result.params.items():
        g = global_params[k].detach().to(v.dtype)
        params[k] = g + factor * (v - g) if v.is_floating_point() else v
    return dataclasses.replace(result, params=params)


@dataclass
class MaliciousClient(Client):
    """A client that tampers with its update before sending it (module notes).

    Parameters
    ----------
    attack : {"sign_flip", "scale", "backdoor"}
        What it does to its update (its data, if poisoned, is set by :func:`make_malicious`).
    boost : float
        The factor of the update it sends.
    """

    attack: str = "sign_flip"
    boost: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.attack not in ("sign_flip", "scale", "backdoor"):
            raise ValueError(f"MaliciousClient(attack={self.attack!r}): give 'sign_flip', 'scale' or 'backdoor'")

    def compress(self, result: ClientResult, global_params: Mapping[str, torch.Tensor]) -> ClientResult:
        return super().compress(poison_update(result, global_params, self.attack, self.boost), global_params)


def make_malicious(
    clients: Sequence[Client],
    attack: str,
    *,
    fraction: float,
    boost: float | None = None,
    trigger: Trigger | None = None,
    num_classes: int = 10,
    seed: int = 0,
) -> tuple[list[Client], list[str]]:
    """Turn ``round(fraction * n)`` of ``clients`` (chosen with ``seed``) into attackers.

    Parameters
    ----------
    clients : sequence of Client
    attack : {"label_flip", "sign_flip", "scale", "backdoor"}
    fraction : float
        Share of malicious clients, in [0, 1].
    boost : float or None
        Update factor; ``None``: 1 for ``sign_flip``, ``n / f`` (clients over
        attackers, the model-replacement factor) for ``scale`` and ``backdoor``.
    trigger : Trigger or None
        For ``backdoor`` (default ``Trigger()``).

    Returns
    -------
    clients : list of Client
        The same order; attackers replaced, honest clients the same objects.
    malicious : list of str
        The attackers' ids.
    """
    if attack not in ATTACKS:
        raise ValueError(f"make_malicious(attack={attack!r}): give one of {', '.join(ATTACKS)}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"make_malicious(fraction={fraction!r}): give the share of malicious clients, in [0, 1]")
    n = len(clients)
    f = round(fraction * n)
    chosen = sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:f].tolist())
    if boost is None:
        boost = 1.0 if attack == "sign_flip" else n / max(f, 1)
    out = list(clients)
    for k in chosen:
        c = clients[k]
        fields = {fl.name: getattr(c, fl.name) for fl in dataclasses.fields(Client) if fl.init}
        if attack in ("label_flip", "scale"):
            fields["data"] = flip_labels(c.data, num_classes)
        elif attack == "backdoor":
            fields["data"] = backdoor_data(c.data, trigger or Trigger(), seed=seed + k)
        out[k] = Client(**fields) if attack == "label_flip" else MaliciousClient(**fields, attack=attack, boost=boost)
    return out, [clients[k].id for k in chosen]
