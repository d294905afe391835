"""Update compression: fewer bytes up the client's link, for a little accuracy.

A client uploads its *update*, ``delta = w_client - w_global``, per tensor.
Two standard ways to shrink it:

:class:`Int8Updates`
    Symmetric linear quantization with one fp32 scale per tensor:
    ``q = round(delta / s)`` with ``s = max|delta| / 127``; 1 byte per value
    plus 4 per tensor, about a quarter of fp32.
:class:`TopK`
    Keep the ``fraction`` of values with the largest magnitude, send them
    with their int32 positions (8 bytes each); the rest count as zero.

Both are lossy. With **error feedback** (Stich et al., NeurIPS 2018;
Karimireddy et al., ICML 2019) the client keeps what it did not send and
adds it to its next update, so nothing is lost for good, only delayed.
The server receives ``w_global + decompressed delta``.

Examples
--------
>>> import torch
>>> topk = TopK(fraction=0.25)
>>> sent, nbytes = topk.compress({"w": torch.tensor([0.1, -2.0, 0.3, 0.05])})
>>> sent["w"], nbytes
(tensor([ 0., -2.,  0.,  0.]), 8)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

__all__ = ["Compressor", "Int8Updates", "TopK", "compress_update"]


class Compressor:
    """Base: ``compress(delta) -> (what the server reconstructs, bytes sent)``."""

    name = "none"

    def compress(self, delta: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        out = {k: v.clone() for k, v in delta.items()}
        return out, sum(v.numel() * v.element_size() for v in delta.values())


@dataclass
class Int8Updates(Compressor):
    """One byte per value and one fp32 scale per tensor (integer tensors are sent as they are)."""

    name: str = field(default="int8", init=False)

    def compress(self, delta: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        out, nbytes = {}, 0
        for key, value in delta.items():
            if not value.is_floating_point():
                out[key], nbytes = value.clone(), nbytes + value.numel() * value.element_size()
                continue
            scale = value.abs().max() / 127
            q = torch.zeros_like(value) if scale == 0 else (value / scale).round().clamp(-127, 127)
            out[key] = q * scale
            nbytes += value.numel() + 4
        return out, nbytes


@dataclass
class TopK(Compressor):
    """The ``fraction`` of largest-magnitude values of each tensor, with int32 positions."""

    fraction: float = 0.1
    name: str = field(default="top-k", init=False)

    def __post_init__(self) -> None:
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) or not 0 < self.fraction <= 1:
            raise ValueError(f"TopK(fraction={self.fraction!r}): give a share of values in (0, 1]")
        self.name = f"top-{self.fraction:g}"

    def compress(self, delta: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        out, nbytes = {}, 0
        for key, value in delta.items():
            if not value.is_floating_point():
                out[key], nbytes = value.clone(), nbytes + value.numel() * value.element_size()
                continue
            flat = value.reshape(-1)
            k = max(1, math.ceil(self.fraction * flat.numel()))
            keep = flat.abs().topk(k).indices
            sparse = torch.zeros_like(flat)
            sparse[keep] = flat[keep]
            out[key] = sparse.view_as(value)
            nbytes += 8 * k
        return out, nbytes


def compress_update(
    compressor: Compressor,
    params: Mapping[str, torch.Tensor],
    global_params: Mapping[str, torch.Tensor],
    residual: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], int]:
    """What the server gets from a client's ``params`` through ``compressor``, and the bytes sent.

    With a ``residual`` dict (error feedback, kept by the client between
    rounds), the part of the update not sent is added to it, and last
    round's residual is added to this round's update before compressing.
    """
    delta = {k: params[k] - global_params[k] if params[k].is_floating_point() else params[k] for k in params}
    if residual is not None:
        delta = {k: v + residual[k] if k in residual else v for k, v in delta.items()}
    sent, nbytes = compressor.compress(delta)
    if residual is not None:
        for k, v in delta.items():
            if v.is_floating_point():
                residual[k] = v - sent[k]
    out = {k: global_params[k] + sent[k] if sent[k].is_floating_point() else sent[k] for k in sent}
    return out, nbytes
