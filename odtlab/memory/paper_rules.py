"""The papers' own counting rules: TinyTL's profiler and the 256 KB paper's sparse-update count.

A paper's memory figure is a count under rules of its own, and the book can
only reproduce the figure by counting as the paper did. These are the rules
of the papers' reference code, written out for students; both run on the
``meta`` device (shapes only, nothing allocated) in well under a second.

**TinyTL** (Cai, Gan, Zhu, Han, NeurIPS 2020, ``cai2020tinytl``, Table 2;
reference: ``mit-han-lab/tinyml``, ``tinytl/utils/memory_cost_profiler.py``),
:func:`tinytl_memory`::

    memory = parameters + batch x (activation peak of the forward for one image)

* parameters: **4 bytes** for each trained element, **1 byte** for each
  frozen one (8-bit); no gradients, no optimizer state;
* the forward is walked layer by layer (leaf modules, in execution order);
  at each layer the memory in use is that layer's own input and output
  (in fp32) + everything stored for backward by the layers before it (+
  the block's input inside a residual block); the peak is the largest of
  these. A layer's input and output ("temporary" memory), in fp32:

  ===================  ==================================  ===========================
  layer                temporary                           stored for backward
  ===================  ==================================  ===========================
  Conv                 input + output / groups             input, if its weight trains
  Linear               input + output                      input, if its weight trains
  BatchNorm/GroupNorm  input                               input, if gamma trains
  ReLU, ReLU6,         input                               1 bit per element, unless
  LeakyReLU                                                only the classifier trains
  Sigmoid, Tanh,       input                               input, unless only the
  Hardswish,                                               classifier trains
  Hardsigmoid
  anything else        nothing                             nothing (pooling, dropout,
                                                           upsampling, add)
  ===================  ==================================  ===========================

  (A trained beta needs nothing: its gradient is the output gradient summed.)
* MB = 10^6 bytes (the reference divides by ``1e6``; its comments' "MB" is
  not MiB).

**On-Device Training Under 256KB Memory** (Lin, Zhu, Chen, Wang, Gan, Han,
NeurIPS 2022, ``lin2022ondevice``; reference: ``mit-han-lab/tiny-training``,
``algorithm/core/utils/partial_backward.py``, ``nelem_saved_for_backward``),
:func:`sparse_update_memory`, counted in bits for one image:

* every convolution that trains (its bias, its weight or both): a 1-bit
  mask per **output** element, plus its biases in 32 bits;
* if its weight trains: the **kept input channels** of its input in 8 bits
  (all of them, or the ``channels_trained`` of a channel-sparse
  convolution; a depthwise convolution keeps the channels it trains) plus
  the trained weights in 8 bits;
* the classifier (the last ``nn.Linear``): its input in 8 bits; its weight
  is not counted (the reference sets ``fc_bits = 0``);
* KB = bits / 8 / 1024.

Examples
--------
>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
>>> mem = tinytl_memory(net, torch.empty(2, 3, 8, 8, device="meta"))
>>> mem.parameter_bytes, mem.activation_peak_bytes   # 112 trained params; conv: 768 + 1024 B
(448, 1792.0)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from odtlab.memory.errors import MemoryArgumentError
from odtlab.memory.report import TrainingMemoryReport
from odtlab.memory.saved import SavedActivations
from odtlab.memory.timeline import Timeline, TimelineEvent
from odtlab.models.blocks import InvertedResidual
from odtlab.models.resnet import Bottleneck

__all__ = [
    "PaperMemory",
    "tinytl_memory",
    "tinytl_parameter_bytes",
    "sparse_update_memory",
    "paper_report",
    "PAPER_RULES",
    "MB",
    "KB",
]

#: The papers' units: TinyTL's MB (10^6 bytes) and the 256 KB paper's KB (1024 bytes).
MB = 10**6
KB = 1024
#: The papers' accountings by name: ``accounting="tinytl"`` and ``accounting="256kb"``.
PAPER_RULES = ("tinytl", "256kb")

_RELUS = (nn.ReLU, nn.Hardtanh, nn.LeakyReLU)  # nn.ReLU6 is a Hardtanh
_SMOOTH = (nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid)
_NORMS = (_BatchNorm, nn.GroupNorm)


@dataclass(frozen=True)
class PaperMemory:
    """A training memory counted under a paper's rules, in bytes.

    Attributes
    ----------
    rules : str
        ``"tinytl"`` or ``"256kb"``.
    parameter_bytes : int or float
        Parameters as the paper counts them (TinyTL: trained 4 B, frozen 1
        B; the 256 KB paper: the updated weights in 8 bits and biases in 32).
    activation_bytes : int or float
        TinyTL: ``batch x activation_peak_bytes``; the 256 KB paper: what is
        stored for backward (masks, kept inputs), for ``batch`` images.
    activation_peak_bytes : int or float
        TinyTL: the forward's activation peak for one image (0 for the 256 KB rules).
    batch : int
        Images per batch.
    """

    rules: str
    parameter_bytes: float
    activation_bytes: float
    activation_peak_bytes: float
    batch: int

    @property
    def total_bytes(self) -> float:
        """Parameters plus activations, as the paper adds them."""
        return self.parameter_bytes + self.activation_bytes

    @property
    def megabytes(self) -> float:
        """``total_bytes`` in TinyTL's MB (10^6 bytes)."""
        return self.total_bytes / MB

    @property
    def kilobytes(self) -> float:
        """``total_bytes`` in the 256 KB paper's KB (1024 bytes)."""
        return self.total_bytes / KB


def _check_input(fn: str, example: object) -> torch.Tensor:
    if not isinstance(example, torch.Tensor) or example.dim() < 2:
        raise MemoryArgumentError(
            f"{fn}(example_input=...): give the input batch as one tensor (B, C, H, W), e.g. "
            "torch.empty(8, 3, 224, 224, device='meta')"
        )
    return example


def _same_shape(x: torch.Tensor) -> torch.Tensor:
    return x


def _one_image_on_meta(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """A private copy of ``model`` on ``meta`` (flags kept) and a one-image input.

    Only shapes matter to the rules, so the copy's norm layers and activations,
    which keep the shape, skip their arithmetic (on ``meta`` each costs milliseconds).
    """
    net = copy.deepcopy(model).to("meta").eval()
    for (_, p), (_, q) in zip(model.named_parameters(), net.named_parameters(), strict=True):
        q.requires_grad_(p.requires_grad)
    for m in net.modules():
        if isinstance(m, (*_NORMS, *_RELUS, *_SMOOTH)):
            m.forward = _same_shape  # type: ignore[method-assign]
    return net, torch.empty((1, *example.shape[1:]), dtype=example.dtype, device="meta")


def _weight_trains(m: nn.Module) -> bool:
    """A conv/linear/norm whose weight (a channel-sparse conv: its trained slice) learns."""
    if hasattr(m, "channels_trained"):  # odtlab.recipes.SparseConv2d: the slice is a parameter
        return any(p.requires_grad for n, p in m.named_parameters() if n != "bias")
    weight = getattr(m, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.requires_grad


def _last_linear(model: nn.Module) -> nn.Module | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def tinytl_parameter_bytes(model: nn.Module) -> int:
    """Parameters as TinyTL counts them: 4 bytes per trained element, 1 per frozen one.

    Examples
    --------
    >>> net = nn.Linear(3, 2)
    >>> _ = net.bias.requires_grad_(False)
    >>> tinytl_parameter_bytes(net)     # 6 trained weights x 4 B + 2 frozen biases x 1 B
    26
    """
    return sum(p.numel() * (4 if p.requires_grad else 1) for p in model.parameters())


def _only_classifier_trains(model: nn.Module) -> bool:
    head = _last_linear(model)
    head_params = set() if head is None else {id(p) for p in head.parameters()}
    return not any(p.requires_grad and id(p) not in head_params for p in model.parameters())


def tinytl_memory(
    model: nn.Module, example_input: torch.Tensor, *, require_backward: bool | None = None
) -> PaperMemory:
    """Training memory as TinyTL's profiler counts it (module docstring; chapter 3).

    Parameters
    ----------
    model : nn.Module
        The prepared network: ``requires_grad`` says which parameters train.
        It is not changed (a copy on ``meta`` is walked).
    example_input : Tensor
        The input batch ``(B, C, H, W)`` (any device, ``meta`` included);
        its batch size multiplies the one-image peak.
    require_backward : bool or None
        Whether the ReLU masks and smooth activations' inputs are stored;
        ``None``: unless only the classifier (the last ``nn.Linear``) trains,
        as TinyTL's training script decides.

    Returns
    -------
    PaperMemory
        ``rules="tinytl"``; ``megabytes`` is the Table 2 figure.

    Raises
    ------
    MemoryArgumentError
        If ``example_input`` is not one tensor with a batch dimension.
    """
    example = _check_input("tinytl_memory", example_input)
    backward = not _only_classifier_trains(model) if require_backward is None else require_backward
    net, one = _one_image_on_meta(model, example)
    state = {"stored": 0.0, "residual": 0.0, "peak": 0.0}

    def on_leaf(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor):
            return
        act = 4.0  # bytes of an fp32 element
        temporary = stored = 0.0
        if isinstance(m, _ConvNd):
            temporary = x.numel() * act + (out.numel() * act) // m.groups
            stored = x.numel() * act if _weight_trains(m) else 0.0
        elif isinstance(m, nn.Linear):
            temporary = (x.numel() + out.numel()) * act
            stored = x.numel() * act if _weight_trains(m) else 0.0
        elif isinstance(m, _NORMS):
            temporary = x.numel() * act
            stored = x.numel() * act if _weight_trains(m) else 0.0
        elif isinstance(m, _RELUS):
            temporary, stored = x.numel() * act, (x.numel() / 8 if backward else 0.0)
        elif isinstance(m, _SMOOTH):
            temporary, stored = x.numel() * act, (x.numel() * act if backward else 0.0)
        current = temporary + state["stored"] + state["residual"]
        state["peak"] = max(state["peak"], current)
        state["stored"] += stored

    def enter_block(m: nn.Module, args: tuple) -> None:
        state["residual"] = args[0].numel() * 4.0

    def leave_block(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        state["residual"] = 0.0

    handles = []
    for m in net.modules():
        if not list(m.children()):
            handles.append(m.register_forward_hook(on_leaf))
        is_residual = isinstance(m, Bottleneck) or (
            isinstance(m, InvertedResidual) and m.use_residual
        )
        if is_residual:
            handles.append(m.register_forward_pre_hook(enter_block))
            handles.append(m.register_forward_hook(leave_block))
    try:
        with torch.no_grad():
            net(one)
    finally:
        for h in handles:
            h.remove()
    batch = int(example.shape[0])
    peak = state["peak"]
    return PaperMemory("tinytl", tinytl_parameter_bytes(model), batch * peak, peak, batch)


def _conv_bits(conv: nn.Module, in_shape: tuple, out_shape: tuple) -> tuple[int, int]:
    """(weight bits, activation bits) of one trained convolution, for one image."""
    mask = _prod(out_shape[1:])  # 1 bit per output element
    bias = getattr(conv, "bias", None)
    weight_bits = bias.numel() * 32 if isinstance(bias, torch.Tensor) else 0
    act_bits = mask
    if _weight_trains(conv):
        out_ch, in_per_group, kh, kw = conv.weight.shape
        pixels = _prod(in_shape[2:])
        if conv.groups == conv.in_channels == conv.out_channels:  # depthwise
            channels = conv.out_channels
            weight_elements = channels * kh * kw
        elif conv.groups == 1:
            channels = int(getattr(conv, "channels_trained", conv.in_channels))
            weight_elements = out_ch * channels * kh * kw
        else:  # a grouped conv (TinyTL's lite residual): every input channel, every weight
            channels = conv.in_channels
            weight_elements = conv.weight.numel()
        act_bits += pixels * channels * 8
        weight_bits += weight_elements * 8
    return weight_bits, act_bits


def _prod(shape: tuple) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def sparse_update_memory(model: nn.Module, example_input: torch.Tensor) -> PaperMemory:
    """Memory of a sparse update as the 256 KB paper's reference counts it (chapter 4).

    Parameters
    ----------
    model : nn.Module
        The prepared network (BatchNorm folded, as :class:`odtlab.recipes.SparseUpdate`
        leaves it): a convolution trains when its bias or its weight has
        ``requires_grad``; an :class:`odtlab.recipes.SparseConv2d` trains its
        ``channels_trained`` input channels. Not changed.
    example_input : Tensor
        The input batch ``(B, C, H, W)``; the paper trains at batch 1, and
        stored activations are counted per image times ``B``.

    Returns
    -------
    PaperMemory
        ``rules="256kb"``: ``parameter_bytes`` the updated weights (8-bit) and
        biases (32-bit), ``activation_bytes`` masks and kept inputs; the
        figure is ``kilobytes``.
    """
    example = _check_input("sparse_update_memory", example_input)
    net, one = _one_image_on_meta(model, example)
    shapes: dict[int, tuple[tuple, tuple]] = {}

    def record(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        shapes[id(m)] = (tuple(args[0].shape), tuple(out.shape))

    watched = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(record) for m in watched]
    try:
        with torch.no_grad():
            net(one)
    finally:
        for h in handles:
            h.remove()
    weight_bits = act_bits = 0
    head = _last_linear(net)
    if head is not None and any(p.requires_grad for p in head.parameters()):
        act_bits += head.in_features * 8  # its input in 8 bits; its weight is not counted
    for m in net.modules():
        if not isinstance(m, nn.Conv2d) or id(m) not in shapes:
            continue
        if not any(p.requires_grad for p in m.parameters()):
            continue
        w, a = _conv_bits(m, *shapes[id(m)])
        weight_bits, act_bits = weight_bits + w, act_bits + a
    batch = int(example.shape[0])
    return PaperMemory("256kb", weight_bits / 8, batch * act_bits / 8, 0.0, batch)


def paper_report(
    model: nn.Module, example_input: torch.Tensor, rules: str, *, label: str = ""
) -> TrainingMemoryReport:
    """A :class:`TrainingMemoryReport` counted under a paper's rules (``rules`` in :data:`PAPER_RULES`).

    ``totals``: ``"weights"`` the parameters as the paper counts them,
    ``"activations"`` what it counts for activations, no gradients and no
    optimizer state (neither paper counts them), and ``"peak"`` their sum, in
    bytes (rounded to whole bytes). There are no per-layer records and the
    timeline has one event; ``inference_peak`` is 0 (not counted).

    Raises
    ------
    MemoryArgumentError
        For an unknown ``rules`` (the message lists them).
    """
    if rules == "tinytl":
        mem = tinytl_memory(model, example_input)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    elif rules == "256kb":
        mem, frozen = sparse_update_memory(model, example_input), 0
    else:
        raise MemoryArgumentError(
            f"paper_report(rules={rules!r}): the papers' rules are {', '.join(map(repr, PAPER_RULES))}"
        )
    weights, activations = round(mem.parameter_bytes), round(mem.activation_bytes)
    live = {"weights": weights, "activations": activations}
    event = TimelineEvent(0, "forward", f"{rules} paper rules", live)
    return TrainingMemoryReport(
        totals={
            "weights": weights, "gradients": 0, "optimizer": 0, "activations": activations,
            "peak": weights + activations,
        },
        layers=[], accounting=rules, method="paper rules", optimizer="(not counted)",
        inference_peak=0, timeline=Timeline([event]), flops=None,
        saved=SavedActivations([], rules), label=label, frozen_weight_bytes=frozen,
    )  # fmt: skip
