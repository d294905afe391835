"""TinyTL's lite residual branch, and attaching it to every inverted residual block.

TinyTL (Cai et al., NeurIPS 2020, Section 3.2, Figure 2c) freezes a
pretrained network and learns, besides the biases, a small branch per
MobileNetV2 block that refines the block's output::

    x --> [ frozen block: expand, depthwise, project (+ x) ] ------------(+)--> out
      `-> avg-pool 2x2 -> group conv kxk -> norm -> ReLU -> conv 1x1 -> norm -> upsample

It is cheap to train because it works at half the resolution and at the
block's narrow width (no 6x expansion): it keeps a few percent of what the
block keeps for backward (the paper: 2^2 x 6.5 = 26x less). It is safe to
add because the last norm's scale (gamma) starts at **zero**: at first the
branch outputs exactly zero and the network computes what it computed before.

Attaching. :func:`add_lite_residuals` turns each
:class:`~odtlab.models.InvertedResidual` *in place* into an
:class:`InvertedResidualWithLite` (same object, class swapped to a subclass,
as :class:`~odtlab.recipes.FrozenBatchNorm2d` freezes a BatchNorm) with the
branch as its child ``lite_residual``. Chosen over a wrapper module holding
the block, and over a forward hook, because: the block's state-dict keys stay
(``features.3.conv.project.bn.bias``; pretrained weights still load, and
``Freeze(["features.3"])`` still finds its layers), the branch only adds
``features.3.lite_residual.*``; the block stays the same object and an
``InvertedResidual``, so references to it stay valid; and unlike a hook the
branch shows in ``print(model)`` and survives ``copy.deepcopy`` and
``torch.save``. :func:`remove_lite_residuals` undoes it.

Choices, the paper's in brackets: ``groups=2`` and ``kernel_size=5``
[Section 4.1], groups reduced to a divisor of the channels if needed; hidden
width = input width [``expand=1``]; the pool has ``ceil_mode=True`` so a 1x1
map stays 1x1 [TinyTL switches to a global pool there]; BatchNorm by default,
like the zoo's backbones, or ``norm="group"``: GroupNorm with 8 channels per
group [Section 4.1]; ``Recipe(TinyTL(), BatchNormPolicy("group"))`` turns
backbone and branches to GroupNorm together, TinyTL's setting. The upsampling
is bilinear (``align_corners=False``, as ``F.interpolate``) written as two
small matrix products with fixed weights: as matrix products, its memory
cost is visible to both accountings of :mod:`odtlab.memory`, which have no
rule for ``F.interpolate`` yet.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.models.blocks import InvertedResidual
from odtlab.recipes.activations.batchnorm import group_count
from odtlab.recipes.base import check_choice, check_positive_float, check_positive_int

__all__ = [
    "LiteResidual",
    "InvertedResidualWithLite",
    "add_lite_residuals",
    "remove_lite_residuals",
    "lite_residuals",
    "bilinear_matrix",
    "LITE_NAME",
]

#: The child name of the branch inside its block: parameters are ``<block>.lite_residual.*``.
LITE_NAME = "lite_residual"

NORMS = ("batch", "group")
CHANNELS_PER_GROUP = 8  # GroupNorm: "We set the number of channels per group to 8" (Sec. 4.1)


def bilinear_matrix(
    out_size: int,
    in_size: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The ``(out_size, in_size)`` matrix of 1-D linear interpolation (``align_corners=False``).

    Row ``i`` holds the two weights with which output pixel ``i`` mixes its
    two nearest input pixels, the same rule as
    ``F.interpolate(mode="bilinear", align_corners=False)``: output pixel
    ``i`` sits at input coordinate ``(i + 0.5) * in_size / out_size - 0.5``,
    clamped to the image. Bilinear resizing of ``x`` (``(..., h, w)``) is then
    ``A_h @ x @ A_w.T``.

    Examples
    --------
    >>> bilinear_matrix(4, 2)
    tensor([[1.0000, 0.0000],
            [0.7500, 0.2500],
            [0.2500, 0.7500],
            [0.0000, 1.0000]])
    """
    check_positive_int("bilinear_matrix", "out_size", out_size)
    check_positive_int("bilinear_matrix", "in_size", in_size)
    rows = torch.arange(out_size, dtype=torch.float64)
    src = ((rows + 0.5) * (in_size / out_size) - 0.5).clamp(min=0.0)
    low = src.floor().long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    frac = src - low
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    matrix.index_put_((rows.long(), low), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows.long(), high), frac, accumulate=True)
    return matrix.to(device=device, dtype=dtype)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(group_count(channels, max(1, channels // CHANNELS_PER_GROUP)), channels)


class LiteResidual(nn.Module):
    """TinyTL's lite residual branch: a small, low-resolution refinement of a block's output.

    ``x -> AvgPool 2x2 -> Conv kxk (groups, stride) -> norm -> ReLU -> Conv 1x1 ->
    norm (gamma = 0) -> bilinear upsample`` to the size of the block's output.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the block's input and output.
    stride : int
        The block's stride (1 or 2); the group convolution uses it, so the
        branch ends at ``1 / (2 * stride)`` of the input resolution.
    kernel_size : int
        Odd kernel of the group convolution (5 in the paper).
    groups : int
        Groups of that convolution (2 in the paper); the largest divisor of
        ``in_channels`` that is at most ``groups`` is used.
    expand : float
        Hidden width as a multiple of ``in_channels`` (1 in the paper).
    norm : {"batch", "group"}
        ``nn.BatchNorm2d``, or ``nn.GroupNorm`` with 8 channels per group.
    seed : int
        Seed of the initial weights (torch's global random state is not used).

    Attributes
    ----------
    pool, conv, norm, act, project, final_norm : nn.Module
        The layers, in order. ``final_norm.weight`` starts at zero.

    Examples
    --------
    >>> lite = LiteResidual(16, 24, stride=2)
    >>> out = lite(torch.randn(2, 16, 32, 32), size=(16, 16))
    >>> out.shape, bool(out.abs().sum() == 0)       # zero at initialisation
    (torch.Size([2, 24, 16, 16]), True)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        kernel_size: int = 5,
        groups: int = 2,
        expand: float = 1.0,
        norm: str = "batch",
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_positive_int("LiteResidual", "in_channels", in_channels)
        check_positive_int("LiteResidual", "out_channels", out_channels)
        if stride not in (1, 2) or isinstance(stride, bool):
            raise InvalidRecipe(f"LiteResidual(stride={stride!r}): stride must be 1 or 2")
        if check_positive_int("LiteResidual", "kernel_size", kernel_size) % 2 == 0:
            raise InvalidRecipe(
                f"LiteResidual(kernel_size={kernel_size}): use an odd kernel, e.g. 3 or 5"
            )
        check_positive_int("LiteResidual", "groups", groups)
        check_positive_float("LiteResidual", "expand", expand)
        check_choice("LiteResidual", "norm", norm, NORMS)
        hidden = max(1, round(in_channels * expand))
        conv_groups = math.gcd(group_count(in_channels, groups), hidden)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernel_size, self.groups, self.hidden_channels = kernel_size, conv_groups, hidden
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True)
        self.conv = nn.Conv2d(
            in_channels, hidden, kernel_size, stride, kernel_size // 2, groups=conv_groups,
            bias=False,
        )  # fmt: skip
        self.norm = _norm(norm, hidden)
        self.act = nn.ReLU(inplace=True)  # ReLU: a 1-bit mask for backward (paper, Table 1)
        self.project = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.final_norm = _norm(norm, out_channels)
        self.reset_parameters(torch.Generator().manual_seed(seed))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Kaiming-normal convolutions, norms at gamma = 1, beta = 0, and the final gamma at 0."""
        for conv in (self.conv, self.project):
            if conv.weight.device.type != "meta":
                nn.init.kaiming_normal_(
                    conv.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
        for norm in (self.norm, self.final_norm):
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)
        nn.init.zeros_(self.final_norm.weight)  # the branch outputs exactly 0 at first

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Map the block's input ``(B, in, H, W)`` to a residual of shape ``(B, out, *size)``.

        ``size`` is the spatial size of the block's output; ``None`` keeps the
        branch's own (reduced) size.
        """
        y = self.pool(x)
        y = self.act(self.norm(self.conv(y)))
        y = self.final_norm(self.project(y))
        if size is None or tuple(y.shape[-2:]) == tuple(size):
            return y
        return self.upsample(y, (int(size[0]), int(size[1])))

    @staticmethod
    def upsample(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Bilinear resize of ``y`` (``(..., h, w)``) to ``size``: ``A_h @ y @ A_w.T``."""
        a_h = bilinear_matrix(size[0], y.shape[-2], device=y.device, dtype=y.dtype)
        a_w = bilinear_matrix(size[1], y.shape[-1], device=y.device, dtype=y.dtype)
        wide = torch.matmul(y, a_w.t())  # (..., h, W)
        tall = torch.matmul(wide.transpose(-1, -2).contiguous(), a_h.t())  # (..., W, H)
        return tall.transpose(-1, -2)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, hidden={self.hidden_channels}, "
            f"k={self.kernel_size}, groups={self.groups}, stride={self.stride}"
        )


class InvertedResidualWithLite(InvertedResidual):
    """An :class:`~odtlab.models.InvertedResidual` with a :class:`LiteResidual` branch added.

    Made *in place* by :func:`add_lite_residuals` (never built directly):
    the block keeps its children, state-dict keys and identity; the branch is
    its child ``lite_residual``. ``forward(x) = block(x) + lite_residual(x)``,
    the branch upsampled to the block's output size.
    """

    lite_residual: LiteResidual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output plus the lite residual of its input."""
        out = super().forward(x)
        return out + self.lite_residual(x, (out.shape[-2], out.shape[-1]))


def lite_residuals(model: nn.Module) -> list[LiteResidual]:
    """The lite residual branches attached to ``model``'s blocks, in module order."""
    return [m.lite_residual for m in model.modules() if isinstance(m, InvertedResidualWithLite)]


def _blocks(model: nn.Module) -> list[tuple[str, InvertedResidual]]:
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, InvertedResidual)]
    if not found:
        raise InvalidRecipe(
            f"{type(model).__name__} has no odtlab.models.InvertedResidual block, so there is "
            "nowhere to attach a lite residual; TinyTL needs a MobileNetV2-style network: "
            "odtlab.models.mobilenetv2(...), odtlab.models.mcunet(...) or "
            "odtlab.models.pretrained('mbv2-shapes'). For other models (e.g. resnet50) use "
            "BiasOnly() or TinyTL(lite_residual=False)"
        )
    for name, block in found:
        if type(block) not in (InvertedResidual, InvertedResidualWithLite):
            raise InvalidRecipe(
                f"block {name!r} is a {type(block).__name__}, a subclass of InvertedResidual; "
                "add_lite_residuals only converts odtlab.models.InvertedResidual itself"
            )
    return found


def add_lite_residuals(
    model: nn.Module,
    *,
    kernel_size: int = 5,
    groups: int = 2,
    expand: float = 1.0,
    norm: str = "batch",
    seed: int = 0,
) -> list[LiteResidual]:
    """Attach a :class:`LiteResidual` to every inverted residual block of ``model``, in place.

    Blocks that already have one are left as they are, so calling it twice
    is safe. Each branch is made on the device and dtype of its block, in
    the block's train/eval mode; the ``i``-th block's branch is initialised
    with seed ``seed + i`` (same seed, same branches; torch's global RNG
    is not used).
    The network's output does not change (the final gamma is zero).

    Parameters
    ----------
    model : nn.Module
        A network with :class:`~odtlab.models.InvertedResidual` blocks.
    kernel_size, groups, expand, norm :
        As in :class:`LiteResidual`.
    seed : int
        Seed of the branches' initial weights.

    Returns
    -------
    list of LiteResidual
        The branches attached by this call (empty when all blocks had one).

    Raises
    ------
    InvalidRecipe
        If ``model`` has no inverted residual block (e.g. ``resnet50``).

    Examples
    --------
    >>> from odtlab import models
    >>> net = models.mobilenetv2(num_classes=10, width_mult=0.35)
    >>> len(add_lite_residuals(net)), len(add_lite_residuals(net))
    (17, 0)
    >>> "features.2.lite_residual.conv.weight" in net.state_dict()
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidRecipe(f"add_lite_residuals(seed={seed!r}): seed must be an int >= 0")
    added = []
    for index, (_, block) in enumerate(_blocks(model)):
        if isinstance(block, InvertedResidualWithLite):
            continue
        lite = LiteResidual(
            block.in_channels, block.out_channels, block.stride, kernel_size=kernel_size,
            groups=groups, expand=expand, norm=norm, seed=seed + index,
        )  # fmt: skip
        ref = next(block.parameters(), None)
        if ref is not None:
            lite.to(device=ref.device, dtype=ref.dtype)
        lite.train(block.training)
        block.add_module(LITE_NAME, lite)
        block.__class__ = InvertedResidualWithLite
        added.append(lite)
    return added


def remove_lite_residuals(model: nn.Module) -> list[LiteResidual]:
    """Detach every lite residual from ``model`` (in place); return the removed branches.

    The blocks become plain :class:`~odtlab.models.InvertedResidual` again,
    with their state-dict keys as before :func:`add_lite_residuals`.

    Examples
    --------
    >>> from odtlab import models
    >>> net = models.mobilenetv2(num_classes=10, width_mult=0.35)
    >>> _ = add_lite_residuals(net)
    >>> len(remove_lite_residuals(net)), len(lite_residuals(net))
    (17, 0)
    """
    removed = []
    for module in list(model.modules()):
        if isinstance(module, InvertedResidualWithLite):
            removed.append(module.lite_residual)
            del module._modules[LITE_NAME]
            module.__class__ = InvertedResidual
    return removed
