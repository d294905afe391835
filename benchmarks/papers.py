"""Paper figures next to ours: one line per comparison, ``<name>: paper=<x> ours=<y> ratio=<y/x>``.

Each chapter that reproduces a paper adds a function returning
:class:`Comparison` rows to :data:`PAPERS`. Paper numbers are quoted with the
version and the table or figure they come from, in a comment next to each.
Ours are computed by odtlab on the ``meta`` device (nothing is allocated)
with the memory-optimised ``"engine"`` accounting (:mod:`odtlab.memory.engine`:
frozen weights int8, trained weights fp32, activations 8-bit, ReLU masks 1
bit, fp32 gradients), plain SGD (no optimizer state, as the papers count
none). "MB" is MiB (2**20 bytes), as in TinyTL's profiler.

TinyTL (Cai, Gan, Zhu, Han, NeurIPS 2020; the NeurIPS version's abstract
says "up to 6.5x" saving against full fine-tuning of the same network, and
"7.3-12.9x", "up to 12.9x" in the text, with feature extractor adaptation
against Inception-V3). Table 2 uses ProxylessNAS-Mobile at 224x224, batch 8,
the Flowers head (102 classes), GroupNorm everywhere. Our zoo has no
ProxylessNAS: MobileNetV2-1.0 (its closest relative, same MB-blocks) stands
in, named ``mbv2-as-proxyless``, with BatchNorm (the engine accounting has no
GroupNorm rule yet). Ours is the engine's training **peak** of one step
(weights, gradients, activations kept for backward, and the forward's and
backward's transient tensors); the paper's figure is model size plus peak
activation memory of the forward, activations counted in fp32 (TinyTL's
profiler, ``activation_bits=32``), which is why full fine-tuning comes out
~3x smaller here. Bias-only comes out larger: the engine keeps each
BatchNorm's 8-bit input when its shift (beta) trains, which the input
gradient through batch statistics needs; TinyTL's profiler charges a norm
layer only when its scale (gamma) trains.

The 256 KB paper (Lin et al., NeurIPS 2022): sparse update against full update on
MCUNet-5FPS at 128x128, batch 1; see the comments above :func:`lin2022_sparse_update`.

Run: ``python benchmarks/papers.py`` (about 15 s on 2 CPU cores).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from odtlab import memory, models
from odtlab.recipes import SGD, Recipe
from odtlab.recipes.trainable.tinytl import tinytl_methods

MiB = 2**20


@dataclass(frozen=True)
class Comparison:
    """One paper figure and ours, in the same unit."""

    name: str
    paper: float
    ours: float

    def line(self) -> str:
        """``<name>: paper=<number> ours=<number> ratio=<ours/paper>``."""
        return f"{self.name}: paper={self.paper:g} ours={self.ours:.2f} ratio={self.ours / self.paper:.2f}"


def meta_batch(batch: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An image batch on ``meta``: shapes only, no memory."""
    x = torch.empty(batch, 3, resolution, resolution, device="meta")
    return x, torch.zeros(batch, dtype=torch.long, device="meta")


def engine_peak(recipe: Recipe, model: nn.Module, batch: int, resolution: int) -> float:
    """Engine-accounting training peak (MiB) of ``recipe`` on a prepared copy of ``model``."""
    net = recipe.prepare(copy.deepcopy(model))
    report = memory.analytic_report(
        net, meta_batch(batch, resolution), accounting="engine", optimizer="sgd", flops=False
    )
    return report.totals["peak"] / MiB


# TinyTL, NeurIPS 2020, Table 2 ("Train. Mem." column; ProxylessNAS-Mobile, batch 8).
TINYTL_TABLE2 = (
    # (paper's row, our method, resolution, MB)
    ("FT-Full", "full fine-tuning", 224, 391),  # NeurIPS 2020, Table 2, FT-Full: 391MB
    ("FT-Norm+Last", "BN+last layer", 224, 192),  # NeurIPS 2020, Table 2, FT-Norm+Last: 192MB
    ("FT-Last", "last layer", 224, 31),  # NeurIPS 2020, Table 2, FT-Last: 31MB
    ("TinyTL-B", "bias-only", 224, 32),  # NeurIPS 2020, Table 2, TinyTL-B: 32MB
    ("TinyTL-L", "lite residual only", 224, 37),  # NeurIPS 2020, Table 2, TinyTL-L: 37MB
    ("TinyTL-L+B", "lite residual + bias", 224, 37),  # NeurIPS 2020, Table 2, TinyTL-L+B: 37MB
    ("TinyTL-L+B", "lite residual + bias", 320, 65),  # NeurIPS 2020, Table 2, L+B@320: 65MB
)


def tinytl_table2() -> list[Comparison]:
    """TinyTL's Table 2 training memory, each method on MobileNetV2-1.0 (102 classes), batch 8."""
    backbone = models.mobilenetv2(num_classes=102, width_mult=1.0, device="meta")
    methods = tinytl_methods(SGD())
    rows = []
    for paper_row, method, resolution, paper_mb in TINYTL_TABLE2:
        ours = engine_peak(methods[method], backbone, 8, resolution)
        name = f"tinytl/{paper_row} mbv2-as-proxyless r{resolution} b8 (MB)"
        rows.append(Comparison(name, paper_mb, ours))
    return rows


def tinytl_figure1() -> list[Comparison]:
    """TinyTL's Figure 1 (right): ResNet-50 over MobileNetV2-1.4, full training, batch 16."""
    batch = meta_batch(16, 224)
    sizes = {}
    for label, model in (
        ("r50", models.resnet50(device="meta")),
        ("m14", models.mobilenetv2(width_mult=1.4, device="meta")),
    ):
        report = memory.analytic_report(
            model, batch, accounting="engine", optimizer="sgd", flops=False
        )
        sizes[label] = report.totals
    params = sizes["r50"]["weights"] / sizes["m14"]["weights"]
    activations = sizes["r50"]["activations"] / sizes["m14"]["activations"]
    return [
        # NeurIPS 2020, Section 1 and Figure 1 (right): "MobileNetV2-1.4 is 4.3x smaller".
        Comparison("tinytl/fig1 params resnet50-over-mbv2-1.4 b16 (x)", 4.3, params),
        # NeurIPS 2020, Section 1 and Figure 1 (right): activations "only 1.1x smaller".
        Comparison("tinytl/fig1 activations resnet50-over-mbv2-1.4 b16 (x)", 1.1, activations),
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


def _sparse_memory(part: object, model: nn.Module, resolution: int) -> dict[str, int]:
    """Bytes of a trainable part on ``model`` at batch 1, in the two ways described above."""
    net = Recipe(part, SGD()).prepare(copy.deepcopy(model))  # type: ignore[arg-type]
    report = memory.analytic_report(
        net, meta_batch(1, resolution), accounting="engine", optimizer="sgd", flops=False
    )
    trained = {n: p.numel() for n, p in net.named_parameters() if p.requires_grad}
    biases = sum(v for n, v in trained.items() if n.endswith("bias"))
    weights = sum(trained.values()) - biases
    return {
        "sram": report.totals["peak"] - report.frozen_weight_bytes,
        "int8 in place": report.totals["activations"] + weights * 1 + biases * 4,
    }


def lin2022_sparse_update() -> list[Comparison]:
    """The 256 KB paper's sparse update against full update on MCUNet-5FPS (128x128, batch 1)."""
    from odtlab.recipes.trainable.basic import Full
    from odtlab.recipes.trainable.sparse_update import SparseUpdate, paper_scheme_100kb

    KiB = 1024
    model = models.mcunet(blocks="mcunet-5fps", num_classes=102, device="meta")
    full = _sparse_memory(Full(), model, 128)
    sparse = _sparse_memory(paper_scheme_100kb(), model, 128)
    last12 = _sparse_memory(
        SparseUpdate(bias_layers=12, weights={i: 1.0 for i in range(30, 42)}), model, 128
    )
    return [
        # Peak memory measured on STM32F746 for three models (MbV2-w0.35, ProxylessNAS-w0.3,
        # MCUNet-5FPS): "The sparse update effectively reduces peak memory by 7-9x" against
        # the full update. Read in Lin et al., "Tiny Machine Learning: Progress and Futures",
        # IEEE Circuits and Systems Magazine 2023, Q3, p. 30, Figure 21(a), which restates the
        # NeurIPS 2022 paper's Figure 10(a) (the NeurIPS PDF was not at hand). We print the
        # middle of the range, 8.
        Comparison(
            "256kb/SRAM full-over-sparse(100KB scheme) mcunet-5fps r128 b1 (x, paper 7-9)",
            8,
            full["sram"] / sparse["sram"],
        ),
        # tiny-training, algorithm/scripts/sparse_update.sh: "sparse update (100KB scheme)",
        # the reference's analytic extra memory (8-bit activations and updated weights,
        # 1-bit masks, 32-bit biases): the "int8 in place" count.
        Comparison(
            "256kb/100KB-scheme extra memory, int8 in place, mcunet-5fps r128 b1 (KB)",
            100,
            sparse["int8 in place"] / KiB,
        ),
        # Same script: "update last 12 weights and biases ... uses 448KB".
        Comparison(
            "256kb/last-12-layers extra memory, int8 in place, mcunet-5fps r128 b1 (KB)",
            448,
            last12["int8 in place"] / KiB,
        ),
    ]


def lin2022_qas() -> list[Comparison]:
    """QAS: the int8 graph's ||W||/||G|| against the fp32 graph's, median over the layers."""
    from odtlab import data
    from odtlab.recipes.precision.int8 import qas_gradient_scale_report

    images = data.train_test("target-new-classes", 16, 1, seed=0)[0]
    batch = data.as_tensors(images)
    report = qas_gradient_scale_report(models.pretrained("mbv2-shapes"), batch)
    per_tensor = qas_gradient_scale_report(
        models.pretrained("mbv2-shapes"), batch, per_channel=False
    )
    return [
        # Section 2.1 ("Quantization-aware scaling") of the NeurIPS 2022 version plots
        # ||W||/||G|| layer by layer for fp32, int8 and int8+QAS: with QAS the int8 curve lies
        # on the fp32 one, i.e. a ratio of 1 (the figure gives no per-layer numbers; the
        # reference's algorithm/core/optimizer/sgd_scale.py divides each weight gradient by
        # its per-channel scale squared, as we do). Ours: the pretrained MobileNetV2-0.35,
        # BatchNorm folded, per-channel scales, 16 images.
        Comparison(
            "256kb/QAS ||W||/||G|| int8+QAS over fp32, median over layers (x)",
            1,
            report.median_with_qas,
        ),
        # The same with one scale per tensor: what is left is rounding. With per-channel
        # scales each channel's share of both norms is weighted by its own 1/s_c, so the
        # tensor-level ratio cannot be exactly the fp32 one.
        Comparison(
            "256kb/QAS ||W||/||G|| int8+QAS over fp32, per-tensor scales (x)",
            1,
            per_tensor.median_with_qas,
        ),
    ]


#: The comparisons, in the order they print; later chapters append theirs.
PAPERS: list[Callable[[], list[Comparison]]] = [
    tinytl_table2,
    tinytl_figure1,
    lin2022_sparse_update,
    lin2022_qas,
]


def main() -> None:
    for comparisons in PAPERS:
        for comparison in comparisons():
            print(comparison.line(), flush=True)


if __name__ == "__main__":
    main()
