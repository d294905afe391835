"""Published figures side by side with ours: the papers the book reproduces.

Each function returns a list of :class:`PaperComparison` rows, one per figure
of a paper, with the paper's number and ours in the same unit. Chapters call
them and show the rows; ``benchmarks/papers.py`` prints them, one line each::

    <name>: paper=<x> ours=<y> ratio=<y/x> measured=<m> engine=<e>

``ours`` is counted under the **paper's own rules** (an ``accounting=`` of its
own, :mod:`odtlab.memory.paper_rules`), so it should match the paper;
``measured`` is what PyTorch really keeps for the same setting
(``accounting="pytorch"``) and ``engine`` what odtlab's memory-optimised
engine keeps (``accounting="engine"``), so the book can teach why the three
differ. Rows where those two do not apply (ratios of Figure 1, QAS) print the
first three fields only.

Paper numbers are quoted with the version and the table or figure they come
from, in a comment next to each (paper versions differ: TinyTL's NeurIPS 2020
abstract says "up to 6.5x", the text "up to 12.9x"). Everything is computed
on the ``meta`` device (nothing is allocated).

**TinyTL** (Cai, Gan, Zhu, Han, NeurIPS 2020), chapter 3:
:func:`tinytl_table2` and :func:`tinytl_figure1`. Table 2 uses
ProxylessNAS-Mobile (:func:`odtlab.models.proxylessnas_mobile`) with GroupNorm,
the Flowers head (102 classes), batch 8, at 224 x 224 (one row at 320), and
the lite residual branches in every method, as the reference code builds
them (:func:`odtlab.recipes.tinytl_methods` with ``paper=True``). TinyTL's
count is parameters (trained 4 B, frozen 1 B) plus batch x the forward's
activation peak for one image, activations in fp32; MB = 10^6 bytes.
``measured`` and ``engine`` are the training step's peak in MB.

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
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from odtlab import data, memory, models, train
from odtlab import recipes as R
from odtlab.parallel import map_in_processes

__all__ = [
    "PAPERS",
    "PaperComparison",
    "all_comparisons",
    "lin2022_qas",
    "lin2022_sparse_update",
    "tinytl_figure1",
    "tinytl_table2",
]

MB = 10**6  # TinyTL's MB (its profiler divides by 1e6)
KB = 1024  # the 256 KB paper's KB (its reference divides bits by 8 * 1024)


@dataclass(frozen=True)
class PaperComparison:
    """One paper figure and ours, in the same unit.

    Attributes
    ----------
    name : str
        What is compared, the setting and the unit in brackets, e.g.
        ``"tinytl/FT-Full proxylessnas-mobile r224 b8 (MB)"``.
    paper : float
        The paper's figure (its unit is in ``name``: MB = 10^6 bytes for
        TinyTL, KB = 1024 bytes for the 256 KB paper, x = ratio).
    ours : float
        odtlab's figure under the paper's own counting rules, same unit.
    measured : float or None
        What PyTorch really keeps in the same setting (``accounting="pytorch"``),
        same unit; ``None`` where it does not apply.
    engine : float or None
        What odtlab's memory-optimised engine keeps (``accounting="engine"``),
        same unit; ``None`` where it does not apply.
    """

    name: str
    paper: float
    ours: float
    measured: float | None = None
    engine: float | None = None

    @property
    def ratio(self) -> float:
        """Ours over the paper's (1.0 is perfect agreement)."""
        return self.ours / self.paper

    def line(self) -> str:
        """``<name>: paper=<x> ours=<y> ratio=<y/x>``, then `` measured=<m> engine=<e>`` if known."""
        text = f"{self.name}: paper={self.paper:g} ours={self.ours:.2f} ratio={self.ratio:.2f}"
        if self.measured is not None or self.engine is not None:
            m, e = ("n/a" if v is None else f"{v:.2f}" for v in (self.measured, self.engine))
            text += f" measured={m} engine={e}"
        return text


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


#: The accountings of every row: the paper's own rules, what PyTorch keeps, the engine's.
_ACCOUNTINGS = ("paper", "pytorch", "engine")


def _three_accountings(
    settings: list[tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], R.Recipe, str]],
    workers: int,
) -> list[dict[str, dict[str, int]]]:
    """For each ``(model, batch, recipe, paper rules)``: the report totals of the three accountings.

    Each setting gives ``{"paper": totals, "pytorch": totals, "engine": totals}``, the
    totals with ``"frozen"`` (the frozen weight bytes) added. The ``3 x len(settings)``
    reports are independent, so ``workers`` processes share them
    (:func:`odtlab.parallel.map_in_processes`).
    """

    def job(i: int) -> dict[str, int]:
        model, batch, recipe, rules = settings[i // 3]
        acc = _ACCOUNTINGS[i % 3]
        report = train.profile(
            model, batch, recipe, accounting=rules if acc == "paper" else acc, flops=False
        )
        return {**report.totals, "frozen": report.frozen_weight_bytes}

    totals = map_in_processes(job, 3 * len(settings), workers=workers)
    return [dict(zip(_ACCOUNTINGS, totals[3 * k : 3 * k + 3], strict=True)) for k in range(len(settings))]


def tinytl_table2(*, workers: int = 1) -> list[PaperComparison]:
    """TinyTL's Table 2 training memory against ours, method by method (chapter 3).

    Source: Cai et al., "TinyTL: Reduce Memory, Not Parameters for Efficient
    On-Device Learning", NeurIPS 2020, Table 2, "Train. Mem." column; rules of
    the reference's ``tinytl/utils/memory_cost_profiler.py`` (``mit-han-lab/tinyml``)
    as ``tinytl_fgvc_train.py`` calls it (32-bit activations and trained, 8-bit
    frozen parameters). Ours: ``odtlab.recipes.tinytl_methods(SGD(), paper=True)``
    on ProxylessNAS-Mobile (GroupNorm, 102 classes), batch 8, on ``meta``, with
    ``accounting="tinytl"``; ``measured`` and ``engine``: the step's peak under
    ``"pytorch"`` and ``"engine"`` (plain SGD). ``workers`` processes share the
    21 analyses. Returns one row per line of Table 2, unit MB (10^6 bytes).
    """
    backbone = models.proxylessnas_mobile(num_classes=102, norm="group", device="meta")
    methods = R.tinytl_methods(R.SGD(), paper=True)
    settings = [
        (backbone, _meta_batch(8, resolution), methods[method], "tinytl")
        for _, method, resolution, _ in TINYTL_TABLE2
    ]
    rows = []
    for (paper_row, _, resolution, paper_mb), totals in zip(
        TINYTL_TABLE2, _three_accountings(settings, workers), strict=True
    ):
        mb = {acc: t["peak"] / MB for acc, t in totals.items()}
        name = f"tinytl/{paper_row} proxylessnas-mobile r{resolution} b8 (MB)"
        rows.append(PaperComparison(name, paper_mb, mb["paper"], mb["pytorch"], mb["engine"]))
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
# MCUNet-5FPS (random weights) at 128x128 (tiny-training's ``image_size: 128``), batch 1,
# 102 classes (``algorithm/scripts/sparse_update.sh``), BatchNorm folded, SGD without
# momentum. "ours": the reference's own count (``accounting="256kb"``); "measured": what
# PyTorch keeps for backward (fp32); "engine": the engine's kept activations plus the
# updated weights in int8 and biases in 32 bits, updated in place ("int8 in place"). The
# "7-9x" line is a ratio of ratios: the paper *measured* peak SRAM on the STM32F746 with its
# engine; ours is our engine's peak less the frozen int8 weights (read from flash). What we
# cannot simulate is that engine's in-place memory planning (reusing forward buffers).


def _sparse_memory(totals: dict[str, dict[str, int]], recipe: R.Recipe, model: nn.Module) -> dict:
    """One scheme of the 256 KB paper (batch 1, 128 px): the figure of each accounting, bytes."""
    net = recipe.prepare(copy.deepcopy(model))
    trained = {n: p.numel() for n, p in net.named_parameters() if p.requires_grad}
    biases = sum(v for n, v in trained.items() if n.endswith("bias"))
    weights = sum(trained.values()) - biases
    engine, pytorch = totals["engine"], totals["pytorch"]
    return {
        "256kb": totals["paper"]["peak"],
        "pytorch kept": pytorch["activations"],
        "int8 in place": engine["activations"] + weights * 1 + biases * 4,
        "sram": engine["peak"] - engine["frozen"],
        "pytorch sram": pytorch["peak"] - pytorch["frozen"],
    }


def lin2022_sparse_update(*, workers: int = 1) -> list[PaperComparison]:
    """The 256 KB paper's sparse update against full update, and its schemes' memory (chapter 4).

    Sources: Lin et al., "On-Device Training Under 256KB Memory", NeurIPS 2022,
    Figure 10(a), restated in Lin et al., "Tiny Machine Learning: Progress and
    Futures", IEEE Circuits and Systems Magazine 2023, Figure 21(a) (peak SRAM
    of full over sparse update, measured on the STM32F746: 7-9x); the
    reference code's ``algorithm/scripts/sparse_update.sh`` in
    mit-han-lab/tiny-training (the "100KB scheme" and "update last 12 weights
    and biases ... uses 448KB"), counted by its ``nelem_saved_for_backward``.

    Ours: MCUNet-5FPS (random weights: memory depends on shapes only) at
    128 x 128, batch 1, 102 classes, BatchNorm folded, analysed on ``meta``;
    see the comment above this function for the accountings of each row.

    Parameters
    ----------
    workers : int, default 1
        Processes that share the nine analyses.

    Returns
    -------
    list of PaperComparison
        Three rows: the SRAM ratio of ratios (x), then the 100 KB scheme's and
        the last 12 layers' memory (KB = 1024 bytes).
    """
    model = models.mcunet(blocks="mcunet-5fps", num_classes=102, device="meta")
    last = R.SparseUpdate(bias_layers=12, weights={i: 1.0 for i in range(30, 42)})
    recipes = [R.Recipe(part, R.SGD()) for part in (R.Full(), R.paper_scheme_100kb(), last)]
    settings = [(model, _meta_batch(1, 128), recipe, "256kb") for recipe in recipes]
    full, sparse, last12 = (
        _sparse_memory(totals, recipe, model)
        for totals, recipe in zip(_three_accountings(settings, workers), recipes, strict=True)
    )
    return [
        # Peak memory measured on STM32F746 for three models (MbV2-w0.35, ProxylessNAS-w0.3,
        # MCUNet-5FPS): "The sparse update effectively reduces peak memory by 7-9x" against
        # the full update. Read in Lin et al., "Tiny Machine Learning: Progress and Futures",
        # IEEE Circuits and Systems Magazine 2023, Q3, p. 30, Figure 21(a), which restates the
        # NeurIPS 2022 paper's Figure 10(a). We print the middle of the range, 8; ours is our
        # engine's ratio (the paper measured its engine), so ratio= is a ratio of ratios.
        PaperComparison(
            "256kb/SRAM full-over-sparse(100KB scheme) mcunet-5fps r128 b1 "
            "(x, paper 7-9 measured on STM32F746 by its engine, ours our engine less flash weights)",
            8,
            full["sram"] / sparse["sram"],
            full["pytorch sram"] / sparse["pytorch sram"],
            full["sram"] / sparse["sram"],
        ),
        # tiny-training, algorithm/scripts/sparse_update.sh: "sparse update (100KB scheme)".
        PaperComparison(
            "256kb/100KB-scheme memory for backward, reference count, mcunet-5fps r128 b1 (KB)",
            100,
            sparse["256kb"] / KB,
            sparse["pytorch kept"] / KB,
            sparse["int8 in place"] / KB,
        ),
        # Same script: "update last 12 weights and biases ... uses 448KB".
        PaperComparison(
            "256kb/last-12-layers memory for backward, reference count, mcunet-5fps r128 b1 (KB)",
            448,
            last12["256kb"] / KB,
            last12["pytorch kept"] / KB,
            last12["int8 in place"] / KB,
        ),
    ]


def lin2022_qas(
    per_channel: R.QASReport | None = None,
    per_tensor: R.QASReport | None = None,
    *,
    workers: int = 1,
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

    workers : int, default 1
        Processes that share the two reports (when they are computed here).

    Returns
    -------
    list of PaperComparison
        Two rows, unit x (a ratio): per-channel scales, then per-tensor.
    """
    if per_channel is None or per_tensor is None:
        images = data.train_test("target-new-classes", 16, 1, seed=0)[0]
        batch = data.as_tensors(images)
        given = (per_channel, per_tensor)

        def job(i: int) -> R.QASReport:
            if given[i] is not None:
                return given[i]
            return R.qas_gradient_scale_report(
                models.pretrained("mbv2-shapes"), batch, per_channel=(i == 0)
            )

        per_channel, per_tensor = map_in_processes(job, 2, workers=workers)
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


def all_comparisons(*, workers: int = 1) -> list[PaperComparison]:
    """Every row of :data:`PAPERS`, in order; ``workers`` processes share the analyses."""
    rows: list[PaperComparison] = []
    for comparisons in PAPERS:
        takes_workers = "workers" in inspect.signature(comparisons).parameters
        rows += comparisons(workers=workers) if takes_workers else comparisons()  # type: ignore[call-arg]
    return rows
