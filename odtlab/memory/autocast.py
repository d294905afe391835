"""Mixed precision in the memory model: PyTorch's CPU autocast policy, replayed on ``meta``.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (or ``float16``) some
operations cast their floating-point inputs before they run, and autograd
keeps the *casts* for backward, not the originals. The rules, found by
printing what each op packs under
:func:`torch.autograd.graph.saved_tensors_hooks` (torch 2.13, CPU):

=================================  ===========================================
operation                          under autocast on the CPU
=================================  ===========================================
conv1d/2d/3d, conv_transpose,      *lower precision*: every floating input
linear, matmul, mm, bmm, addmm,    (input, weight, bias) is cast to the 16-bit
baddbmm, prelu, einsum, sdpa       dtype; the conv keeps its 16-bit input and
                                   16-bit weight copy, a linear its 16-bit
                                   input (weight trainable) and 16-bit weight
                                   (input needs grad)
cross_entropy, nll_loss, mse_loss  *fp32*: 16-bit inputs are cast up first,
and the other losses, prod,        so cross-entropy keeps an fp32 log-softmax
cdist, fft, linalg, 3-D pooling    and ``mse_loss`` an fp32 copy of its input
cat, stack, index_copy             *promote*: to the widest floating dtype
everything else (BatchNorm,        *follows its input*: a 16-bit input gives
LayerNorm, ReLU, ReLU6, GELU,      16-bit saved tensors; BatchNorm's and
softmax, pooling, dropout, add,    LayerNorm's statistics stay fp32, the
mean, embedding)                   dropout mask takes the input's dtype; a
                                   16-bit + fp32 add gives fp32
=================================  ===========================================

Casts of **leaf tensors that require grad** (the trainable weights) are made
once per autocast region and shared: two uses of one weight keep one 16-bit
copy. Casts of anything else (a frozen weight, an activation) are made anew
at every use: the three projections ``q_proj``, ``k_proj``, ``v_proj`` of a
Transformer each keep their own 16-bit copy of the same LayerNorm output.
The 16-bit copy of a weight is not a parameter, so it counts as an
activation: with a small batch a convolution can keep *more* bytes under
autocast than in fp32.

The ``meta`` device has no autocast (``torch.autocast`` acts per device type,
and meta tensors never qualify), so :class:`AutocastEmulator` replays the
policy above at the level of torch functions, the calls the memory tracer
sees (:mod:`odtlab.memory.trace`), where PyTorch casts at the level of aten
operations. The two agree to the byte on every zoo model. Known gaps:

* a function that runs listed operations inside (``einsum``,
  ``tensordot``, ``F.multi_head_attention_forward``) is cast as a whole, at
  its inputs, where PyTorch casts the operands of the inner ``bmm`` after
  reshaping them: the output dtype is right, the saved copies may differ.
  These functions have no analytic formula, so only the *measured* path on
  ``meta`` is affected; ``F.pad`` (fp32 in ``reflect``/``replicate`` mode)
  is handled;
* only the CPU policy is known (CUDA also runs softmax, layer_norm and sums
  in fp32), so the emulator refuses other device types.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from odtlab.memory.errors import AnalyticUnsupported, MemoryArgumentError
from odtlab.memory.records import function_kind

__all__ = [
    "LOWER_PRECISION",
    "FP32",
    "PROMOTE",
    "AUTOCAST_DTYPES",
    "AutocastEmulator",
    "EmulatedAutocast",
    "autocast_policy",
    "resolve_autocast",
]

# The names are those of torch functions (:func:`odtlab.memory.records.function_kind`: what
# the tracer sees) and of the aten operations PyTorch registers an AutocastCPU kernel for
# (a test checks that every one of those is classified here).

#: Operations run in the 16-bit dtype (every floating input cast down).
LOWER_PRECISION = frozenset(
    "conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d conv_transpose3d prelu "
    "_convolution addmm addbmm baddbmm bmm mm matmul linear linalg_vecdot _addmm_activation "
    "einsum tensordot chain_matmul linalg_multi_dot scaled_dot_product_attention "
    "multi_head_attention_forward _native_multi_head_attention mkldnn_rnn_layer".split()
)

#: Operations run in fp32 (16-bit floating inputs cast up).
FP32 = frozenset(
    "cross_entropy cross_entropy_loss nll_loss nll_loss2d mse_loss l1_loss smooth_l1_loss "
    "huber_loss kl_div binary_cross_entropy binary_cross_entropy_with_logits "
    "margin_ranking_loss hinge_embedding_loss cosine_embedding_loss poisson_nll_loss "
    "soft_margin_loss multilabel_margin_loss multilabel_margin_loss_forward multi_margin_loss "
    "triplet_margin_loss ctc_loss cdist prod quantile nanquantile stft trace polar avg_pool3d "
    "max_pool3d adaptive_avg_pool3d adaptive_max_pool3d max_unpool2d max_unpool3d "
    "fractional_max_pool2d fractional_max_pool3d grid_sample grid_sampler grid_sampler_2d "
    "grid_sampler_3d _grid_sampler_2d_cpu_fallback reflection_pad1d reflection_pad2d "
    "replication_pad1d replication_pad2d replication_pad3d view_as_complex cholesky "
    "cholesky_inverse cholesky_solve inverse lu_solve _lu_with_info orgqr ormqr pinverse geqrf "
    "qr svd triangular_solve fake_quantize_per_tensor_affine "
    "fft_fft fft_fft2 fft_fftn fft_hfft fft_ifft fft_ifft2 fft_ifftn fft_ihfft fft_irfft "
    "fft_irfft2 fft_irfftn fft_rfft fft_rfft2 fft_rfftn linalg_cholesky linalg_cholesky_ex "
    "linalg_cond linalg_eig linalg_eigh linalg_eigvals linalg_eigvalsh linalg_householder_product "
    "linalg_inv linalg_inv_ex linalg_lstsq linalg_matrix_rank linalg_qr linalg_solve linalg_svd "
    "linalg_svdvals linalg_tensorinv linalg_tensorsolve".split()
)

#: Torch functions run in the widest floating dtype of their inputs.
PROMOTE = frozenset("cat concat concatenate stack hstack vstack dstack index_copy".split())

#: The dtypes autocast can train in, by the names the recipes use.
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_policy(
    kind: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
) -> str | None:
    """How CPU autocast runs the operation ``kind`` called with ``args``, ``kwargs``.

    Returns ``"lower"`` (16 bits), ``"fp32"``, ``"promote"`` (widest input
    dtype) or ``None`` (no cast: it runs in whatever dtype its inputs have).

    Examples
    --------
    >>> autocast_policy("conv2d"), autocast_policy("cross_entropy"), autocast_policy("relu")
    ('lower', 'fp32', None)
    """
    if kind in LOWER_PRECISION:
        return "lower"
    if kind in FP32:
        return "fp32"
    if kind in PROMOTE:
        return "promote"
    if kind == "pad":  # F.pad -> reflection_pad1d/2d or replication_pad1d/2d/3d: fp32 ops
        mode = args[2] if len(args) > 2 else (kwargs or {}).get("mode", "constant")
        pad = args[1] if len(args) > 1 else (kwargs or {}).get("pad", ())
        if mode == "replicate" or (mode == "reflect" and len(pad) <= 4):
            return "fp32"
    return None


def resolve_autocast(autocast: Any, device_type: str) -> torch.dtype | None:
    """The 16-bit dtype to model, or ``None`` for none.

    ``autocast`` is ``torch.bfloat16``, ``torch.float16``, ``"bf16"``,
    ``"fp16"``, or ``None``: follow the autocast already enabled for
    ``device_type`` (as the measured path does), if any.
    """
    if autocast is None:
        if torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
        return None
    dtype = AUTOCAST_DTYPES.get(autocast, autocast) if isinstance(autocast, str) else autocast
    if dtype not in AUTOCAST_DTYPES.values():
        raise MemoryArgumentError(
            "autocast must be None (no mixed precision, or the torch.autocast already enabled), "
            f"torch.bfloat16, torch.float16, 'bf16' or 'fp16'; got {autocast!r}"
        )
    return dtype


def _eligible(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64


class AutocastEmulator:
    """Cast the arguments of torch functions as ``torch.autocast("cpu", dtype)`` would.

    One emulator stands for one autocast region: it caches the 16-bit copy
    of every fp32 leaf tensor that requires grad (a trainable weight), as
    PyTorch does, so every use shares it.

    Parameters
    ----------
    dtype : torch.dtype
        ``torch.bfloat16`` or ``torch.float16``.
    device_type : str
        Whose policy to follow; only ``"cpu"`` is known.

    Examples
    --------
    >>> emulator = AutocastEmulator(torch.bfloat16)
    >>> w = torch.empty(4, 3, device="meta", requires_grad=True)
    >>> x = torch.empty(2, 3, device="meta")
    >>> (x16, w16), _, casts = emulator.cast("linear", (x, w), {})
    >>> x16.dtype, len(casts)
    (torch.bfloat16, 2)
    >>> emulator.cast("linear", (x, w), {})[0][1] is w16  # the weight copy is cached
    True
    """

    def __init__(self, dtype: torch.dtype, device_type: str = "cpu") -> None:
        if device_type != "cpu":
            raise AnalyticUnsupported(
                f"the analytic memory model knows the CPU autocast policy only, not {device_type!r} "
                "(CUDA runs softmax, layer_norm and sums in fp32 as well); measure the model on "
                "its device instead (method='measured')"
            )
        self.dtype = dtype
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _to(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if t.dtype == dtype:
            return t
        cacheable = (
            dtype == self.dtype
            and t.dtype == torch.float32
            and t.requires_grad
            and t.is_leaf
            and not t._is_view()
        )
        if not cacheable:
            return t.to(dtype)
        if id(t) not in self.cache:  # the original is kept too, so its id stays unique
            self.cache[id(t)] = (t, t.to(dtype))
        return self.cache[id(t)][1]

    def cast(
        self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any], dict[int, torch.Tensor]]:
        """``(args, kwargs, casts)`` for a call of the torch function called ``kind``.

        ``casts`` maps ``id(original tensor)`` to its cast, for every tensor
        that was cast (empty when the policy leaves the call alone).
        """
        policy = autocast_policy(kind, args, kwargs)
        if policy is None:
            return args, kwargs, {}
        if policy == "lower":
            target = self.dtype
        elif policy == "fp32":
            target = torch.float32
        else:  # promote: fp32 if any input is fp32, else the 16-bit dtype
            leaves, _ = tree_flatten((args, kwargs))
            wide = any(_eligible(t) and t.dtype == torch.float32 for t in leaves)
            target = torch.float32 if wide else self.dtype
        casts: dict[int, torch.Tensor] = {}

        def convert(t: Any) -> Any:
            if not _eligible(t) or t.dtype == target:
                return t
            casts[id(t)] = out = self._to(t, target)
            return out

        new_args, new_kwargs = tree_map(convert, (tuple(args), dict(kwargs)))
        return new_args, new_kwargs, casts


class EmulatedAutocast(TorchFunctionMode):
    """``torch.autocast("cpu", dtype)`` for tensors on ``meta``, as a context manager.

    Every torch function called inside has its arguments cast by the CPU
    policy (:class:`AutocastEmulator`); the memory tracer does the same
    for its own forward pass.

    Examples
    --------
    >>> x = torch.empty(2, 3, device="meta")
    >>> with EmulatedAutocast(torch.bfloat16):
    ...     torch.nn.functional.linear(x, torch.empty(4, 3, device="meta")).dtype
    torch.bfloat16
    """

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()

        self.emulator = AutocastEmulator(dtype)
        self.kind = function_kind

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        args, kwargs, _ = self.emulator.cast(self.kind(func), tuple(args), kwargs or {})
        return func(*args, **kwargs)
