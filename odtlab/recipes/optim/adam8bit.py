"""8-bit Adam: the two moments stored in 1 byte each, block by block (dettmers2022optimizers).

Adam keeps two fp32 numbers per trainable parameter, the running mean of
the gradient ``m`` and of its square ``v``: 8 bytes, twice the weights.
Dettmers et al. ("8-bit Optimizers via Block-wise Quantization", ICLR 2022)
store each moment in **8 bits** and lose (almost) no accuracy:

1. **Block-wise.** The moment, flattened, is cut into blocks of
   ``block_size`` numbers (256 here; the paper uses 2048). Each block keeps
   one fp32 scale, its largest absolute value (``absmax``), and stores
   ``x / absmax`` in ``[-1, 1]``. An outlier then only coarsens its own
   block, not the whole tensor.
2. **A dynamic code.** ``x / absmax`` is rounded to the nearest of 256 fixed
   values (the *code*) and stored as that value's index, a ``uint8``. We use
   the paper's *dynamic tree* code (as bitsandbytes builds it): 7 decades
   ``[1e-7, 1]`` with few values per small decade and many per large one, a
   floating-point number in miniature. Both moments need it: ``v`` spans
   many orders of magnitude inside one block, and a linear code (steps of
   ``absmax / 255``) would round the small ``v`` to zero, so those
   parameters would take steps of ``lr * m / eps``, orders of magnitude too
   large (``quantization="linear"`` shows it: 20 steps of a regression end
   14x farther from Adam's weights than Adam's own norm; the paper's
   ablation finds linear quantization unstable). ``m`` uses the signed
   code, ``v`` the unsigned one (twice the values per decade, as ``v >= 0``).
3. **Dequantize, update, requantize** every step: the update itself runs in
   fp32 on the freshly updated moments, only their *storage* is 8-bit.
   We do it a few blocks at a time (:data:`CHUNK_BLOCKS`), so the fp32
   moments never exist in full (the paper's CUDA kernel does it in registers).

Tensors with fewer than ``min_8bit_size`` elements (4096) keep fp32
``exp_avg`` / ``exp_avg_sq`` like ``torch.optim.Adam``, as bitsandbytes does:
their state is small, and biases and norms are sensitive.

Memory per 8-bit parameter tensor of ``n`` elements, in bytes:
``2 * n + 2 * 4 * ceil(n / block_size) + 4`` (two ``uint8`` code tensors,
two fp32 ``absmax`` per block, the fp32 ``step``) against fp32 Adam's
``8 * n + 4``: about 0.254 of it with blocks of 256. The two 256-value code
tables (2 KiB in all) are shared constants of the module, not state.

Examples
--------
>>> w = torch.nn.Parameter(torch.zeros(64, 128))           # 8192 elements, 32 blocks
>>> opt = BlockwiseAdam8bit([w], lr=0.1)
>>> w.grad = torch.ones_like(w)
>>> opt.step()
>>> sorted(opt.state[w]), opt.state[w]["exp_avg_codes"].dtype
(['exp_avg_absmax', 'exp_avg_codes', 'exp_avg_sq_absmax', 'exp_avg_sq_codes', 'step'], torch.uint8)
>>> round(w[0, 0].item(), 4)                               # Adam's first step: -lr * sign(grad)
-0.1
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from odtlab.errors import InvalidRecipe
from odtlab.recipes.base import check_choice, check_positive_float, check_positive_int
from odtlab.recipes.optim.basic import OptimizerPart, check_betas

__all__ = [
    "Adam8bit",
    "BlockwiseAdam8bit",
    "dynamic_code",
    "linear_code",
    "quantize_blockwise",
    "dequantize_blockwise",
    "CHUNK_BLOCKS",
]

#: Blocks updated at once; bounds the temporary fp32 moments to ``CHUNK_BLOCKS * block_size``.
CHUNK_BLOCKS = 64
QUANTIZATIONS = ("dynamic", "linear")


def dynamic_code(signed: bool) -> torch.Tensor:
    """The 256 sorted values of the dynamic tree code in ``[-1, 1]`` (or ``[0, 1]``).

    Decade ``i = 0..6`` covers ``[0.1, 1] * 10 ** (i - 6)`` with ``2 ** i``
    evenly spaced values (``2 ** (i + 1)`` when unsigned), each the midpoint
    of its interval; the signed code mirrors them. Plus ``0`` and ``1``:
    ``2 * 127 + 2 = 256`` values (signed), ``254 + 2`` (unsigned). This is
    bitsandbytes' ``create_dynamic_map``, written out.

    Examples
    --------
    >>> code = dynamic_code(signed=False)
    >>> code.numel(), code[0].item(), code[-1].item(), f"{code[1].item():.3g}"
    (256, 0.0, 1.0, '3.25e-07')
    """
    values = [torch.tensor([0.0, 1.0], dtype=torch.float64)]
    for i in range(7):
        count = 2**i if signed else 2 ** (i + 1)
        edges = torch.linspace(0.1, 1.0, count + 1, dtype=torch.float64)
        means = (edges[:-1] + edges[1:]) / 2 * 10.0 ** (i - 6)
        values += [means, -means] if signed else [means]
    return torch.cat(values).sort().values.to(torch.float32)


def linear_code(signed: bool) -> torch.Tensor:
    """256 evenly spaced values: ``k / 127`` for ``k = -127..127`` (signed), or ``k / 255``.

    The signed code has 255 distinct values (so that 0 is one of them);
    ``-1`` appears twice to make 256.

    Examples
    --------
    >>> linear_code(True)[[0, 1, 128, 255]].tolist(), linear_code(False)[[0, 255]].tolist()
    ([-1.0, -1.0, 0.0, 1.0], [0.0, 1.0])
    """
    if signed:
        return torch.cat([torch.tensor([-1.0]), torch.arange(-127, 128) / 127.0])
    return torch.arange(256) / 255.0


def _midpoints(code: torch.Tensor) -> torch.Tensor:
    return (code[1:] + code[:-1]) / 2


def quantize_blockwise(
    x: torch.Tensor, code: torch.Tensor, block_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x`` to 8 bits: one fp32 ``absmax`` per block, each value the index of its nearest code.

    Returns ``(codes, absmax)``: ``codes`` a ``uint8`` tensor of ``x.numel()``
    indices into ``code`` (flattened ``x``), ``absmax`` fp32 of
    ``ceil(n / block_size)`` scales. A block of zeros has ``absmax = 0``.

    Examples
    --------
    >>> codes, absmax = quantize_blockwise(torch.tensor([0.5, -1.0, 2.0]), linear_code(True), 2)
    >>> codes.tolist(), absmax.tolist()
    ([191, 0, 255], [1.0, 2.0])
    """
    flat = x.detach().reshape(-1).float()
    n = flat.numel()
    blocks = -(-n // block_size)
    padded = F.pad(flat, (0, blocks * block_size - n)).view(blocks, block_size)
    absmax = padded.abs().amax(dim=1)
    normed = padded / absmax.clamp_min(torch.finfo(torch.float32).tiny).unsqueeze(1)
    index = torch.searchsorted(_midpoints(code.to(x.device)), normed)
    return index.to(torch.uint8).view(-1)[:n], absmax


def dequantize_blockwise(
    codes: torch.Tensor, absmax: torch.Tensor, code: torch.Tensor, block_size: int = 256
) -> torch.Tensor:
    """The fp32 values of ``codes`` (flat), as :func:`quantize_blockwise` stored them."""
    n = codes.numel()
    values = code.to(codes.device)[codes.long()]
    padded = F.pad(values, (0, absmax.numel() * block_size - n)).view(-1, block_size)
    return (padded * absmax.unsqueeze(1)).view(-1)[:n]


class BlockwiseAdam8bit(torch.optim.Optimizer):
    """Adam with block-wise 8-bit moments (dettmers2022optimizers); see the module docstring.

    Parameters
    ----------
    params : iterable of tensors or param-group dicts
    lr, betas, eps, weight_decay :
        As in ``torch.optim.Adam`` (weight decay is L2, added to the gradient).
    block_size : int
        Elements per quantization block (one fp32 scale each).
    min_8bit_size : int
        Tensors with fewer elements keep fp32 moments.
    quantization : {"dynamic", "linear"}
        The 8-bit code of both moments; ``"linear"`` is there to see it fail.

    State per 8-bit tensor: ``exp_avg_codes``, ``exp_avg_sq_codes`` (``uint8``,
    one per element), ``exp_avg_absmax``, ``exp_avg_sq_absmax`` (fp32, one
    per block), ``step`` (fp32 scalar). Smaller tensors: ``exp_avg``,
    ``exp_avg_sq``, ``step``, as ``torch.optim.Adam``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        block_size: int = 256,
        min_8bit_size: int = 4096,
        quantization: str = "dynamic",
    ) -> None:
        name = type(self).__name__
        check_positive_float(name, "lr", lr)
        check_positive_float(name, "eps", eps)
        check_positive_float(name, "weight_decay", weight_decay, zero=True)
        check_betas(name, tuple(betas))  # type: ignore[arg-type]
        check_positive_int(name, "block_size", block_size)
        check_positive_int(name, "min_8bit_size", min_8bit_size)
        check_choice(name, "quantization", quantization, QUANTIZATIONS)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.block_size, self.min_8bit_size = block_size, min_8bit_size
        self.quantization = quantization
        make = dynamic_code if quantization == "dynamic" else linear_code
        self.codes = {"exp_avg": make(True), "exp_avg_sq": make(False)}

    def is_8bit(self, p: torch.Tensor) -> bool:
        """Whether ``p``'s moments are stored in 8 bits (``p.numel() >= min_8bit_size``)."""
        return p.numel() >= self.min_8bit_size

    def _init_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state[p]
        state["step"] = torch.zeros((), dtype=torch.float32)
        if not self.is_8bit(p):
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            return state
        blocks = -(-p.numel() // self.block_size)
        for key, code in self.codes.items():
            zero = int(torch.argmin(code.abs()))  # the index of the value 0
            state[f"{key}_codes"] = torch.full(
                (p.numel(),), zero, dtype=torch.uint8, device=p.device
            )
            state[f"{key}_absmax"] = torch.zeros(blocks, dtype=torch.float32, device=p.device)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Adam step on every parameter with a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise InvalidRecipe("BlockwiseAdam8bit does not take sparse gradients")
                state = self.state[p] if self.state[p] else self._init_state(p)
                state["step"] += 1
                if self.is_8bit(p) and p.is_contiguous():
                    self._update_8bit(p, p.grad, state, group)
                elif self.is_8bit(p):  # e.g. a transposed view: update a row-major copy
                    flat = p.contiguous()
                    self._update_8bit(flat, p.grad, state, group)
                    p.copy_(flat)
                else:
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                    _adam(p, p.grad, m, v, state["step"], group)
        return loss

    def _update_8bit(
        self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        """Dequantize, update and requantize ``CHUNK_BLOCKS`` blocks at a time."""
        flat_p, flat_g = p.view(-1), grad.reshape(-1)
        chunk, bs = CHUNK_BLOCKS * self.block_size, self.block_size
        for start in range(0, p.numel(), chunk):
            stop = min(start + chunk, p.numel())
            blocks = slice(start // bs, -(-stop // bs))
            moments = {}
            for key, code in self.codes.items():
                codes, absmax = state[f"{key}_codes"][start:stop], state[f"{key}_absmax"][blocks]
                moments[key] = dequantize_blockwise(codes, absmax, code, bs)
            _adam(
                flat_p[start:stop], flat_g[start:stop], moments["exp_avg"],
                moments["exp_avg_sq"], state["step"], group,
            )  # fmt: skip
            for key, code in self.codes.items():
                codes, absmax = quantize_blockwise(moments[key], code, bs)
                state[f"{key}_codes"][start:stop] = codes
                state[f"{key}_absmax"][blocks] = absmax

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict, keeping the ``uint8`` codes and fp32 scales as they were saved.

        ``torch.optim.Optimizer.load_state_dict`` casts every state tensor to
        its parameter's dtype (fine for fp32 moments, wrong for codes).
        """
        saved = {
            pid: {k: v for k, v in s.items() if isinstance(v, torch.Tensor) and k != "step"}
            for pid, s in state_dict["state"].items()
        }
        super().load_state_dict(state_dict)
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for pid, p in zip(ids, params, strict=True):
            for key, value in saved.get(pid, {}).items():
                self.state[p][key] = value.to(device=p.device, copy=True)


def _adam(
    p: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    step: torch.Tensor,
    group: dict[str, Any],
) -> None:
    """Adam's update of ``p``, ``m`` and ``v`` in place, op for op as ``torch.optim.Adam``."""
    beta1, beta2 = group["betas"]
    t = float(step)  # a CPU scalar even for meta or GPU parameters
    g = grad if grad.dtype == m.dtype else grad.to(m.dtype)
    if group["weight_decay"]:
        g = g.add(p.to(m.dtype), alpha=group["weight_decay"])
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    step_size = group["lr"] / (1 - beta1**t)
    denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
    if p.dtype == m.dtype:
        p.addcdiv_(m, denom, value=-step_size)
    else:
        p.add_((m / denom * -step_size).to(p.dtype))


@dataclass(frozen=True)
class Adam8bit(OptimizerPart):
    """The recipe part of :class:`BlockwiseAdam8bit`: Adam's state in about a quarter of the bytes.

    Parameters
    ----------
    lr, betas, eps, weight_decay :
        As in :class:`~odtlab.recipes.Adam`.
    block_size : int
        Elements per quantization block.
    min_8bit_size : int
        Smaller tensors keep fp32 moments.

    Examples
    --------
    >>> Adam8bit().name, type(Adam8bit().build([torch.zeros(3, requires_grad=True)])).__name__
    ('adam8bit', 'BlockwiseAdam8bit')
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    block_size: int = 256
    min_8bit_size: int = 4096

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_positive_float(name, "lr", self.lr)
        check_positive_float(name, "eps", self.eps)
        check_positive_float(name, "weight_decay", self.weight_decay, zero=True)
        check_betas(name, self.betas)
        check_positive_int(name, "block_size", self.block_size)
        check_positive_int(name, "min_8bit_size", self.min_8bit_size)

    @property
    def name(self) -> str:
        return "adam8bit"

    def build(self, params: Iterable[Any], *, foreach: bool | None = None) -> torch.optim.Optimizer:
        """Build :class:`BlockwiseAdam8bit` (``foreach`` is accepted and ignored: one loop)."""
        return BlockwiseAdam8bit(
            params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
            block_size=self.block_size, min_8bit_size=self.min_8bit_size,
        )  # fmt: skip
