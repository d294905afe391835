"""Sample-level DP-SGD on the device with Opacus, and what its per-sample gradients cost.

DP-SGD (Abadi et al., CCS 2016) protects each *example* rather than each
client: every example's gradient is clipped to ``max_grad_norm`` before the
batch is summed and noised. Clipping one example at a time needs one
gradient per example, which Opacus's ``GradSampleModule`` computes with
hooks and stores as ``param.grad_sample`` of shape ``(B, *param.shape)``.

On a device that is the price: per-sample gradients take ``B`` times the
gradient memory, on top of the ordinary training step.
:func:`dp_sgd_memory` measures the ordinary step with
:func:`odtlab.memory.profile_training` and adds ``B x gradient bytes``;
:func:`per_sample_gradient_bytes` measures what Opacus really stores, and
the tests hold the two together.

Examples
--------
>>> from odtlab import models
>>> net = models.mlp(seed=0)
>>> batch = (torch.zeros(32, 1, 8, 8), torch.zeros(32, dtype=torch.int64))
>>> cost = dp_sgd_memory(net, batch, "stm32f746")
>>> cost.per_sample_bytes == 32 * cost.gradient_bytes, cost.fits_without_dp, cost.fits
(True, True, False)
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from opacus import GradSampleModule, PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, Dataset

from odtlab import devices, memory
from odtlab.units import format_bytes

__all__ = ["DPSGDMemory", "DPSGDResult", "dp_sgd_memory", "per_sample_gradient_bytes", "dp_sgd_train"]


@dataclass(frozen=True)
class DPSGDMemory:
    """Memory of one DP-SGD step against the plain step, on one device (bytes).

    Attributes
    ----------
    batch_size : int
    gradient_bytes : int
        Ordinary gradients (one per trainable parameter).
    per_sample_bytes : int
        ``batch_size * gradient_bytes``: Opacus's ``grad_sample`` tensors.
    plain_peak_bytes : int
        Peak of the ordinary training step (:func:`odtlab.memory.profile_training`).
    dp_peak_bytes : int
        ``plain_peak_bytes + per_sample_bytes`` (the per-sample gradients are
        alive with the step's gradients at the end of backward).
    budget_bytes : int
        The device's training memory.
    device : str
    """

    batch_size: int
    gradient_bytes: int
    per_sample_bytes: int
    plain_peak_bytes: int
    dp_peak_bytes: int
    budget_bytes: int
    device: str

    @property
    def fits(self) -> bool:
        """Whether the DP-SGD step fits the device's training memory."""
        return self.dp_peak_bytes <= self.budget_bytes

    @property
    def fits_without_dp(self) -> bool:
        """Whether the ordinary step fits."""
        return self.plain_peak_bytes <= self.budget_bytes

    def __str__(self) -> str:
        verdict = "fits" if self.fits else f"does NOT fit (over by {format_bytes(self.dp_peak_bytes - self.budget_bytes)})"
        return (
            f"DP-SGD, batch {self.batch_size} on {self.device}: per-sample gradients "
            f"{format_bytes(self.per_sample_bytes)}, peak {format_bytes(self.plain_peak_bytes)} -> "
            f"{format_bytes(self.dp_peak_bytes)} of {format_bytes(self.budget_bytes)}: {verdict}"
        )


def dp_sgd_memory(model: nn.Module, example_batch: tuple[Any, torch.Tensor], device: str | devices.DeviceProfile) -> DPSGDMemory:
    """The memory of a DP-SGD step of ``model`` on ``example_batch``, and whether it fits ``device``.

    Parameters
    ----------
    model : nn.Module
        Its trainable parameters are those with ``requires_grad``.
    example_batch : (inputs, targets)
        The batch size is ``len(targets)``.
    device : str or DeviceProfile
        ``"stm32f746"``, ``"phone-mid"``, ... (:func:`odtlab.devices.get`).
    """
    profile = devices.get(device)
    report = memory.profile_training(model, example_batch, flops=False)
    batch = int(len(example_batch[1]))
    grads = int(report.totals["gradients"])
    extra = batch * grads
    return DPSGDMemory(
        batch_size=batch, gradient_bytes=grads, per_sample_bytes=extra,
        plain_peak_bytes=report.peak_bytes, dp_peak_bytes=report.peak_bytes + extra,
        budget_bytes=int(profile.training_memory_bytes), device=profile.name,
    )  # fmt: skip


def per_sample_gradient_bytes(model: nn.Module, example_batch: tuple[Any, torch.Tensor]) -> int:
    """Bytes of the ``grad_sample`` tensors Opacus's ``GradSampleModule`` stores for one batch.

    Runs one forward and backward of a copy of ``model`` (cross-entropy);
    ``model`` itself is not changed.
    """
    net = GradSampleModule(copy.deepcopy(model))
    x, y = example_batch
    with warnings.catch_warnings():  # torch notes that the inputs need no grad: true, and harmless here
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        torch.nn.functional.cross_entropy(net(x), y).backward()
    return sum(p.grad_sample.numel() * p.grad_sample.element_size()
               for p in net.parameters() if p.requires_grad and p.grad_sample is not None)  # fmt: skip


@dataclass(frozen=True)
class DPSGDResult:
    """What :func:`dp_sgd_train` returns: the trained model and the privacy it spent."""

    model: nn.Module
    epsilon: float
    delta: float
    steps: int


def dp_sgd_train(
    model: nn.Module,
    data: Dataset,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    lr: float = 0.05,
    batch_size: int = 32,
    epochs: int = 1,
    delta: float = 1e-5,
    seed: int = 0,
) -> DPSGDResult:
    """Train a copy of ``model`` on ``data`` with DP-SGD (Opacus ``PrivacyEngine``, plain SGD).

    Batches are Poisson-sampled with rate ``batch_size / len(data)``, each
    example's gradient is clipped to ``max_grad_norm`` and Gaussian noise of
    std ``noise_multiplier * max_grad_norm`` is added to the batch's sum;
    Opacus's RDP accountant gives ``epsilon`` at ``delta``. The sampling and
    the noise are drawn from ``seed`` (``model`` and torch's global random
    state are left as they were).

    Raises
    ------
    ValueError
        For a noise multiplier below 0 or a clipping norm that is not positive.
    """
    if not noise_multiplier >= 0:
        raise ValueError(f"dp_sgd_train(noise_multiplier={noise_multiplier!r}): give a number >= 0")
    if not max_grad_norm > 0:
        raise ValueError(f"dp_sgd_train(max_grad_norm={max_grad_norm!r}): give a positive L2 norm")
    net = copy.deepcopy(model).train()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # seeded on purpose (the course's runs repeat): Opacus warns that its secure RNG is off
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        torch.manual_seed(seed)  # Opacus's Poisson sampler draws from the global generator
        engine = PrivacyEngine(accountant="rdp")
        optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr)
        loader = DataLoader(data, batch_size=batch_size)
        private, optimizer, loader = engine.make_private(
            module=net, optimizer=optimizer, data_loader=loader, noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm, noise_generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip
        steps = 0
        for _ in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(private(x), y).backward()
                optimizer.step()
                steps += 1
    trained = copy.deepcopy(model)  # a clean copy: `net` carries Opacus's hooks
    trained.load_state_dict(net.state_dict())  # GradSampleModule trained `net` in place
    return DPSGDResult(model=trained, epsilon=float(engine.get_epsilon(delta)), delta=delta, steps=steps)
