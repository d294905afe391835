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

``paper=True`` builds the branches exactly as the TinyTL reference code
(``mit-han-lab/tinyml``, ``tinytl/model/modules.py``, ``insert_lite_residual``)
does for the numbers of the paper's Table 2, where the default above is the
course's simpler version (its numbers in chapter 3 stay as they were):

* every block **but the first** gets a branch (the first block, with no
  expansion, has none);
* the pool is a plain 2x2 average pool (no ``ceil_mode``), groups are
  exactly ``groups`` (2), the hidden width is ``make_divisible(in * expand, 8)``;
* the kernel shrinks where the map is small: the reference assumes the
  blocks see a 128-pixel map after the stem (:data:`PAPER_REFERENCE_RESOLUTION`),
  halves it at each stride-2 block, and gives a block whose branch would see
  ``r = max(1, map // 2)`` pixels the largest odd kernel ``<= kernel_size``
  that is ``<= r`` (a global pool and a 1x1 kernel when ``r == 1``). On
  ProxylessNAS-Mobile that is 5x5 everywhere but the last four blocks (3x3).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.models.blocks import InvertedResidual, make_divisible
from odtlab.recipes.activations.batchnorm import group_count
from odtlab.recipes.base import check_choice, check_positive_float, check_positive_int
from odtlab.recipes.layers.bilinear import bilinear_matrix

__all__ = [
    "LiteResidual",
    "InvertedResidualWithLite",
    "add_lite_residuals",
    "remove_lite_residuals",
    "lite_residuals",
    "bilinear_matrix",
    "LITE_NAME",
    "PAPER_REFERENCE_RESOLUTION",
    "paper_kernel_sizes",
]

#: The child name of the branch inside its block: parameters are ``<block>.lite_residual.*``.
LITE_NAME = "lite_residual"

NORMS = ("batch", "group")
#: The map size TinyTL's ``insert_lite_residual`` assumes after the stem, to choose kernels.
PAPER_REFERENCE_RESOLUTION = 128
CHANNELS_PER_GROUP = 8  # GroupNorm: "We set the number of channels per group to 8" (Sec. 4.1)


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
    paper : bool
        Build it as TinyTL's reference code does: a plain 2x2 average pool
        (no ``ceil_mode``), exactly ``groups`` groups, hidden width
        ``make_divisible(in_channels * expand, 8)``.
    global_pool : bool
        With ``paper=True``: pool the whole map to 1x1 (the reference does so
        where its 2x2 pool would leave a single pixel; use ``kernel_size=1``).

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
        paper: bool = False,
        global_pool: bool = False,
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
        if paper:
            hidden = make_divisible(int(in_channels * expand), 8)
            conv_groups = groups
            if in_channels % groups or hidden % groups:
                raise InvalidRecipe(
                    f"LiteResidual(paper=True, groups={groups}): {in_channels} input and {hidden} "
                    "hidden channels must both divide into the groups; pick a divisor, e.g. 2"
                )
        else:
            hidden = max(1, round(in_channels * expand))
            conv_groups = math.gcd(group_count(in_channels, groups), hidden)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernel_size, self.groups, self.hidden_channels = kernel_size, conv_groups, hidden
        self.paper = paper
        self.pool: nn.Module
        if paper and global_pool:
            self.pool = nn.AdaptiveAvgPool2d(1)
        elif paper:
            self.pool = nn.AvgPool2d(2, 2)
        else:
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


def paper_kernel_sizes(strides: list[int], kernel_size: int = 5) -> list[int]:
    """The kernel of each block's branch as TinyTL's ``insert_lite_residual`` picks it.

    The reference assumes a map of :data:`PAPER_REFERENCE_RESOLUTION` (128)
    pixels entering the first branch-carrying block and halves it after each
    stride-2 block; a branch that would see ``r = max(1, map // 2)`` pixels
    gets the largest odd kernel ``<= kernel_size`` that is not above ``r``
    (1 when ``r == 1``, where the reference pools globally).

    Parameters
    ----------
    strides : list of int
        The strides of the blocks that get a branch, in order.
    kernel_size : int
        The largest kernel (5 in the paper).

    Examples
    --------
    >>> paper_kernel_sizes([2, 1, 2, 2, 2, 1, 1])
    [5, 5, 5, 5, 5, 3, 3]
    """
    size, kernels = PAPER_REFERENCE_RESOLUTION, []
    for stride in strides:
        seen = max(1, size // 2)
        size //= stride
        k = kernel_size
        while k > 1 and seen < k:
            k -= 2
        kernels.append(1 if seen == 1 else k)
    return kernels


def add_lite_residuals(
    model: nn.Module,
    *,
    kernel_size: int = 5,
    groups: int = 2,
    expand: float = 1.0,
    norm: str = "batch",
    seed: int = 0,
    paper: bool = False,
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
    paper : bool
        Attach the branches as TinyTL's reference code does (see the module
        docstring): none on the first block, kernels from
        :func:`paper_kernel_sizes`, ``LiteResidual(paper=True)``.

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
    blocks = _blocks(model)
    kernels = [kernel_size] * len(blocks)
    if paper:  # TinyTL's reference: no branch on the first block, smaller kernels late
        kernels = [0, *paper_kernel_sizes([b.stride for _, b in blocks[1:]], kernel_size)]
    for index, (_, block) in enumerate(blocks):
        if isinstance(block, InvertedResidualWithLite) or kernels[index] == 0:
            continue
        lite = LiteResidual(
            block.in_channels, block.out_channels, block.stride, kernel_size=kernels[index],
            groups=groups, expand=expand, norm=norm, seed=seed + index, paper=paper,
            global_pool=paper and kernels[index] == 1,
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
