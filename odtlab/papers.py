"""Published figures side by side with ours: the papers the book reproduces.

Each function returns a list of :class:`PaperComparison` rows, one per figure
of a paper, with the paper's number and ours in the same unit. Chapters call
them and show the rows; ``benchmarks/papers.py`` prints them, one line each::

    <name>: paper=<x> ours=<y> ratio=<y/x>

Paper numbers are quoted with the version and the table or figure they come
from, in a comment next to each (paper versions differ: TinyTL's NeurIPS 2020
abstract says "up to 6.5x", the text "up to 12.9x"). Ours are computed by
odtlab on the ``meta`` device (nothing is allocated, so a 224 x 224 ResNet-50
costs no memory and about a second) with the memory-optimised ``"engine"``
accounting (frozen weights int8, trained weights fp32, activations 8-bit, ReLU
masks 1 bit, fp32 gradients) and plain SGD (no optimizer state, as the papers
count none). "MB" is MiB (2**20 bytes), as in TinyTL's profiler.

**TinyTL** (Cai, Gan, Zhu, Han, NeurIPS 2020), chapter 3:
:func:`tinytl_table2` and :func:`tinytl_figure1`. Table 2 uses
ProxylessNAS-Mobile at 224 x 224, batch 8, the Flowers head (102 classes),
GroupNorm everywhere. Our zoo has no ProxylessNAS: MobileNetV2-1.0 (its
closest relative, same MB-blocks) stands in, named ``mbv2-as-proxyless``, with
BatchNorm (the engine accounting has no GroupNorm rule yet). Ours is the
engine's training **peak** of one step (weights, gradients, activations kept
for backward, and the forward's and backward's transient tensors); the paper's
figure is model size plus peak activation memory of the forward, activations
counted in fp32 (TinyTL's profiler, ``activation_bits=32``), which is why full
fine-tuning comes out about 3x smaller here. Bias-only comes out larger: the
engine keeps each BatchNorm's 8-bit input when its shift (beta) trains, which
the input gradient through batch statistics needs; TinyTL's profiler charges a
norm layer only when its scale (gamma) trains.

**On-Device Training Under 256KB Memory** (Lin, Zhu, Chen, Wang, Gan, Han,
NeurIPS 2022), chapter 4: :func:`lin2022_sparse_update` (sparse against full
update on MCUNet-5FPS at 128 x 128, batch 1) and :func:`lin2022_qas`
(quantization-aware scaling).

Examples
--------
>>> import odtlab as odt
>>> rows = odt.papers.tinytl_figure1()
>>> rows[0].name
'tinytl/fig1 params resnet50-over-mbv2-1.4 b16 (x)'
>>> 4 < rows[0].ours < 5  # ResNet-50 has about 4.3x the parameters of MobileNetV2-1.4
True
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from odtlab import data, memory, models
from odtlab import recipes as R

__all__ = [
    "PAPERS",
    "PaperComparison",
    "all_comparisons",
    "lin2022_qas",
    "lin2022_sparse_update",
    "tinytl_figure1",
    "tinytl_table2",
]

MiB = 2**20
KiB = 2**10


@dataclass(frozen=True)
class PaperComparison:
    """One paper figure and ours, in the same unit.

    Attributes
    ----------
    name : str
        What is compared, the setting and the unit in brackets, e.g.
        ``"tinytl/FT-Full mbv2-as-proxyless r224 b8 (MB)"``.
    paper : float
        The paper's figure (its unit is in ``name``: MB = MiB, KB = KiB, x = ratio).
    ours : float
        odtlab's figure, in the same unit.
    """

    name: str
    paper: float
    ours: float

    @property
    def ratio(self) -> float:
        """Ours over the paper's (1.0 is perfect agreement)."""
        return self.ours / self.paper

    def line(self) -> str:
        """``<name>: paper=<number> ours=<number> ratio=<ours/paper>``."""
        return f"{self.name}: paper={self.paper:g} ours={self.ours:.2f} ratio={self.ratio:.2f}"


def _meta_batch(batch: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An image batch on ``meta``: shapes only, no memory."""
    x = torch.empty(batch, 3, resolution, resolution, device="meta")
    return x, torch.zeros(batch, dtype=torch.long, device="meta")


def _engine_report(net: nn.Module, batch: int, resolution: int) -> memory.TrainingMemoryReport:
    """The engine-accounting report of one SGD step of ``net`` on a ``meta`` batch."""
    return memory.analytic_report(
        net, _meta_batch(batch, resolution), accounting="engine", optimizer="sgd", flops=False
    )


# TinyTL, NeurIPS 2020, Table 2 ("Train. Mem." column; ProxylessNAS-Mobile, batch 8).
TINYTL_TABLE2 = (
    # (paper's row, our method, resolution, MB)
    ("FT-Full", "tinytl/full", 224, 391),  # NeurIPS 2020, Table 2, FT-Full: 391MB
    ("FT-Norm+Last", "tinytl/bn+last", 224, 192),  # NeurIPS 2020, Table 2, FT-Norm+Last: 192MB
    ("FT-Last", "tinytl/last", 224, 31),  # NeurIPS 2020, Table 2, FT-Last: 31MB
    ("TinyTL-B", "tinytl/bias", 224, 32),  # NeurIPS 2020, Table 2, TinyTL-B: 32MB
    ("TinyTL-L", "tinytl/lite", 224, 37),  # NeurIPS 2020, Table 2, TinyTL-L: 37MB
    ("TinyTL-L+B", "tinytl/lite+bias", 224, 37),  # NeurIPS 2020, Table 2, TinyTL-L+B: 37MB
    ("TinyTL-L+B", "tinytl/lite+bias", 320, 65),  # NeurIPS 2020, Table 2, L+B@320: 65MB
)


def tinytl_table2() -> list[PaperComparison]:
    """TinyTL's Table 2 training memory against ours, method by method (chapter 3).

    Source: Cai et al., "TinyTL: Reduce Memory, Not Parameters for Efficient
    On-Device Learning", NeurIPS 2020, Table 2, "Train. Mem." column
    (ProxylessNAS-Mobile, batch 8, 224 x 224 and one row at 320 x 320).

    Ours: each method of :func:`odtlab.recipes.tinytl_methods` on MobileNetV2-1.0
    with a 102-class head (``mbv2-as-proxyless``), batch 8, the engine's training
    peak of one SGD step in MiB, analysed on ``meta``.

    Returns
    -------
    list of PaperComparison
        One row per line of Table 2, unit MB (MiB).
    """
    backbone = models.mobilenetv2(num_classes=102, width_mult=1.0, device="meta")
    methods = R.tinytl_methods(R.SGD())
    rows = []
    for paper_row, method, resolution, paper_mb in TINYTL_TABLE2:
        net = methods[method].prepare(copy.deepcopy(backbone))
        ours = _engine_report(net, 8, resolution).totals["peak"] / MiB
        name = f"tinytl/{paper_row} mbv2-as-proxyless r{resolution} b8 (MB)"
        rows.append(PaperComparison(name, paper_mb, ours))
    return rows


def tinytl_figure1() -> list[PaperComparison]:
    """TinyTL's Figure 1 (right): ResNet-50 over MobileNetV2-1.4, full training (chapter 3).

    Source: Cai et al., NeurIPS 2020, Section 1 and Figure 1 (right):
    MobileNetV2-1.4 has 4.3x fewer parameters than ResNet-50 but only 1.1x
    fewer activation bytes at batch 16, so a smaller model does not mean a
    smaller training memory.

    Ours: the ratios of the engine accounting's weight bytes and activation
    bytes (batch 16, 224 x 224, analysed on ``meta``).

    Returns
    -------
    list of PaperComparison
        Two rows, unit x (a ratio): parameters, then activations.
    """
    sizes = {}
    for label, model in (
        ("r50", models.resnet50(device="meta")),
        ("m14", models.mobilenetv2(width_mult=1.4, device="meta")),
    ):
        sizes[label] = _engine_report(model, 16, 224).totals
    params = sizes["r50"]["weights"] / sizes["m14"]["weights"]
    activations = sizes["r50"]["activations"] / sizes["m14"]["activations"]
    return [
        # NeurIPS 2020, Section 1 and Figure 1 (right): "MobileNetV2-1.4 is 4.3x smaller".
        PaperComparison("tinytl/fig1 params resnet50-over-mbv2-1.4 b16 (x)", 4.3, params),
        # NeurIPS 2020, Section 1 and Figure 1 (right): activations "only 1.1x smaller".
        PaperComparison("tinytl/fig1 activations resnet50-over-mbv2-1.4 b16 (x)", 1.1, activations),
    ]


# ---- On-Device Training Under 256KB Memory (Lin et al., NeurIPS 2022, lin2022ondevice) ----
#
# The model is MCUNet-5FPS (``models.mcunet(blocks="mcunet-5fps")``, random weights) at
# 128x128 (tiny-training's ``image_size: 128``), batch 1, the Flowers head (102 classes, as
# in tiny-training's ``algorithm/scripts/sparse_update.sh``), BatchNorm folded (the
# SparseUpdate part folds it). Two ways to count, both from odtlab's engine accounting
# (8-bit activations, 1-bit ReLU masks, SGD without momentum, as the paper's main results):
#
# * "SRAM": the engine's whole-step peak minus the frozen int8 weights, which a
#   microcontroller reads from flash (a constant over the step). Our engine keeps fp32
#   master copies of the trained weights and their fp32 gradients until the optimizer step.
# * "int8 in place": what the paper's Tiny Training Engine keeps besides the inference
#   graph, as the reference script counts it: 8-bit activations for backward, the updated
#   weights in int8 (the int8 graph is trained directly, QAS fixing its gradients) updated in
#   place during backward so no gradient buffer lives on, and 32-bit biases. This is an
#   *extra* memory, on top of the forward's own buffers, so it is only compared with the
#   reference's extra-memory figures, never with a peak.


def _sparse_memory(part: R.TrainablePart, model: nn.Module, resolution: int) -> dict[str, int]:
    """Bytes of a trainable part on ``model`` at batch 1, in the two ways described above."""
    net = R.Recipe(part, R.SGD()).prepare(copy.deepcopy(model))
    report = _engine_report(net, 1, resolution)
    trained = {n: p.numel() for n, p in net.named_parameters() if p.requires_grad}
    biases = sum(v for n, v in trained.items() if n.endswith("bias"))
    weights = sum(trained.values()) - biases
    return {
        "sram": report.totals["peak"] - report.frozen_weight_bytes,
        "int8 in place": report.totals["activations"] + weights * 1 + biases * 4,
    }


def lin2022_sparse_update() -> list[PaperComparison]:
    """The 256 KB paper's sparse update against full update, and its schemes' memory (chapter 4).

    Sources: Lin et al., "On-Device Training Under 256KB Memory", NeurIPS 2022,
    Figure 10(a), restated in Lin et al., "Tiny Machine Learning: Progress and
    Futures", IEEE Circuits and Systems Magazine 2023, Figure 21(a) (peak SRAM
    of full over sparse update: 7-9x); the reference code's
    ``algorithm/scripts/sparse_update.sh`` in mit-han-lab/tiny-training (the
    "100KB scheme" and "update last 12 weights and biases ... uses 448KB").

    Ours: MCUNet-5FPS (random weights: memory depends on shapes only) at
    128 x 128, batch 1, 102 classes, BatchNorm folded, analysed on ``meta``
    with the engine accounting; SRAM is the step's peak less the frozen int8
    weights (read from flash), extra memory is counted as the reference does
    (8-bit activations, int8 updated weights, 32-bit biases).

    Returns
    -------
    list of PaperComparison
        Three rows: the SRAM ratio (x), the 100 KB scheme's and the last 12
        layers' extra memory (KB = KiB).
    """
    model = models.mcunet(blocks="mcunet-5fps", num_classes=102, device="meta")
    full = _sparse_memory(R.Full(), model, 128)
    sparse = _sparse_memory(R.paper_scheme_100kb(), model, 128)
    last12 = _sparse_memory(
        R.SparseUpdate(bias_layers=12, weights={i: 1.0 for i in range(30, 42)}), model, 128
    )
    return [
        # Peak memory measured on STM32F746 for three models (MbV2-w0.35, ProxylessNAS-w0.3,
        # MCUNet-5FPS): "The sparse update effectively reduces peak memory by 7-9x" against
        # the full update. Read in Lin et al., "Tiny Machine Learning: Progress and Futures",
        # IEEE Circuits and Systems Magazine 2023, Q3, p. 30, Figure 21(a), which restates the
        # NeurIPS 2022 paper's Figure 10(a) (the NeurIPS PDF was not at hand). We print the
        # middle of the range, 8.
        PaperComparison(
            "256kb/SRAM full-over-sparse(100KB scheme) mcunet-5fps r128 b1 (x, paper 7-9)",
            8,
            full["sram"] / sparse["sram"],
        ),
        # tiny-training, algorithm/scripts/sparse_update.sh: "sparse update (100KB scheme)",
        # the reference's analytic extra memory (8-bit activations and updated weights,
        # 1-bit masks, 32-bit biases): the "int8 in place" count.
        PaperComparison(
            "256kb/100KB-scheme extra memory, int8 in place, mcunet-5fps r128 b1 (KB)",
            100,
            sparse["int8 in place"] / KiB,
        ),
        # Same script: "update last 12 weights and biases ... uses 448KB".
        PaperComparison(
            "256kb/last-12-layers extra memory, int8 in place, mcunet-5fps r128 b1 (KB)",
            448,
            last12["int8 in place"] / KiB,
        ),
    ]


def lin2022_qas(
    per_channel: R.QASReport | None = None, per_tensor: R.QASReport | None = None
) -> list[PaperComparison]:
    """QAS: the int8 graph's ||W||/||G|| over the fp32 graph's, median over the layers (chapter 4).

    Source: Lin et al., NeurIPS 2022, Section 2.1 ("Quantization-aware
    scaling"), which plots ||W||/||G|| layer by layer for fp32, int8 and
    int8+QAS: with QAS the int8 curve lies on the fp32 one, a ratio of 1 (the
    figure gives no per-layer numbers; the reference's
    ``algorithm/core/optimizer/sgd_scale.py`` divides each weight gradient by
    its per-channel scale squared, as odtlab does).

    Ours: :func:`odtlab.recipes.qas_gradient_scale_report` on the pretrained
    MobileNetV2-0.35 (``mbv2-shapes``), BatchNorm folded, 16 images of the
    ``target-new-classes`` task (seed 0), with per-channel and with per-tensor
    scales.

    Parameters
    ----------
    per_channel, per_tensor : QASReport, optional
        Reports already computed in exactly that setting (a chapter that has
        just plotted them passes them in, so nothing is computed twice); by
        default they are computed here (a few seconds on a CPU).

    Returns
    -------
    list of PaperComparison
        Two rows, unit x (a ratio): per-channel scales, then per-tensor.
    """
    if per_channel is None or per_tensor is None:
        images = data.train_test("target-new-classes", 16, 1, seed=0)[0]
        batch = data.as_tensors(images)
        if per_channel is None:
            per_channel = R.qas_gradient_scale_report(models.pretrained("mbv2-shapes"), batch)
        if per_tensor is None:
            per_tensor = R.qas_gradient_scale_report(
                models.pretrained("mbv2-shapes"), batch, per_channel=False
            )
    return [
        # Section 2.1 ("Quantization-aware scaling") of the NeurIPS 2022 version plots
        # ||W||/||G|| layer by layer for fp32, int8 and int8+QAS: with QAS the int8 curve lies
        # on the fp32 one, i.e. a ratio of 1. Ours: per-channel scales, 16 images.
        PaperComparison(
            "256kb/QAS ||W||/||G|| int8+QAS over fp32, median over layers (x)",
            1,
            per_channel.median_with_qas,
        ),
        # The same with one scale per tensor: what is left is rounding. With per-channel
        # scales each channel's share of both norms is weighted by its own 1/s_c, so the
        # tensor-level ratio cannot be exactly the fp32 one.
        PaperComparison(
            "256kb/QAS ||W||/||G|| int8+QAS over fp32, per-tensor scales (x)",
            1,
            per_tensor.median_with_qas,
        ),
    ]


#: The comparisons, in the order ``benchmarks/papers.py`` prints them; later chapters add theirs.
PAPERS: list[Callable[[], list[PaperComparison]]] = [
    tinytl_table2,
    tinytl_figure1,
    lin2022_sparse_update,
    lin2022_qas,
]


def all_comparisons() -> list[PaperComparison]:
    """Every row of :data:`PAPERS`, in order (about 15 s on 2 CPU cores)."""
    return [row for comparisons in PAPERS for row in comparisons()]
