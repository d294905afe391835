"""odtlab.recipes: *how* we train, as small parts that compose.

A :class:`Recipe` is a few :class:`RecipePart` objects, at most one of each kind:

=================  ===========================================================
kind               parts
=================  ===========================================================
trainable set      :class:`Full` (default), :class:`LastLayer`,
                   :class:`BiasOnly`, :class:`Freeze`, :class:`TinyTL`,
                   :class:`SparseUpdate`, :class:`LoRA`
checkpointing      :class:`Checkpointing` (recompute the trunk in segments)
micro-batch        :class:`MicroBatch` (gradient accumulation; BatchNorm
                   ``"keep"``, ``"frozen"`` or ``"group"``)
optimizer          :class:`SGD` (default, lr 0.05), :class:`Momentum`,
                   :class:`Adam`, :class:`AdamW`, :class:`Adam8bit`
update             :class:`UpdateInBackward` (each tensor stepped inside
                   backward, its gradient freed at once)
precision          :class:`MixedPrecision` (bf16/fp16 autocast),
                   :class:`Int8` (int8 graph with QAS)
batchnorm          :class:`BatchNormPolicy`
activations        :class:`InPlaceActivations`
=================  ===========================================================

Examples
--------
>>> from odtlab import models
>>> from odtlab.recipes import Recipe, BiasOnly, MicroBatch
>>> recipe = Recipe(BiasOnly(), MicroBatch(4))
>>> model = recipe.prepare(models.build("cnn"))
>>> optimizer = recipe.make_optimizer(model.parameters())
>>> x, y = models.example_batch("cnn", 8, resolution=16)
>>> loss = recipe.train_step(model, x, y, None, optimizer)
>>> report = recipe.memory_report(model, (x, y))
>>> recipe.name, report.micro_batch_size
('bias-only+mb(4)', 2)
"""

from odtlab.recipes.activations import InPlaceActivations, set_inplace
from odtlab.recipes.adam8bit import Adam8bit, BlockwiseAdam8bit
from odtlab.recipes.base import KINDS, RecipePart
from odtlab.recipes.checkpointing import (
    CheckpointedSequential,
    Checkpointing,
    checkpoint_trunk,
    find_trunk,
    plan_segments,
    remove_checkpointing,
    segment_bounds,
)
from odtlab.recipes.fold import count_batchnorms, fold_batchnorm
from odtlab.recipes.fused_update import FusedBackwardOptimizer, UpdateInBackward
from odtlab.recipes.lite_residual import (
    InvertedResidualWithLite,
    LiteResidual,
    add_lite_residuals,
    lite_residuals,
    remove_lite_residuals,
)
from odtlab.recipes.lora import (
    LoRA,
    LoRAConv2d,
    LoRALinear,
    add_lora,
    lora_layers,
    merge_lora,
    remove_lora,
)
from odtlab.recipes.memory import RecipeMemoryReport, SegmentMemory, recipe_memory_report
from odtlab.recipes.microbatch import MicroBatch, accumulate_step, split_batch
from odtlab.recipes.norm import (
    BatchNormPolicy,
    FrozenBatchNorm2d,
    batchnorm_to_groupnorm,
    freeze_batchnorm,
    unfreeze_batchnorm,
)
from odtlab.recipes.optimizers import SGD, Adam, AdamW, Momentum, OptimizerPart
from odtlab.recipes.precision import MixedPrecision, PrecisionPart
from odtlab.recipes.presets import presets
from odtlab.recipes.quant_layers import QuantConv2d, QuantLinear
from odtlab.recipes.quant_sparse import QuantSparseConv2d
from odtlab.recipes.quantized import (
    Int8,
    QASReport,
    convert_to_int8,
    dequantized_state,
    qas_gradient_scale_report,
    quantized_layers,
    weight_gradient_ratios,
)
from odtlab.recipes.recipe import Recipe
from odtlab.recipes.scheme_search import (
    Contribution,
    ContributionTable,
    MemoryMeter,
    SchemeSearchResult,
    contribution_analysis,
    default_weight_candidates,
    search_scheme,
)
from odtlab.recipes.sparse_conv import SparseConv2d, channels_to_update
from odtlab.recipes.sparse_update import (
    SparseUpdate,
    describe_scheme,
    paper_scheme_100kb,
    sparse_layers,
)
from odtlab.recipes.summary import LayerParameters, TrainableSummary, summarize
from odtlab.recipes.tinytl import NormOnly, TinyTL, tinytl_methods
from odtlab.recipes.trainable import BiasOnly, Freeze, Full, LastLayer, TrainablePart, find_head

__all__ = [
    "TinyTL",
    "NormOnly",
    "tinytl_methods",
    "LiteResidual",
    "InvertedResidualWithLite",
    "add_lite_residuals",
    "remove_lite_residuals",
    "lite_residuals",
    "Recipe",
    "RecipePart",
    "KINDS",
    "presets",
    # trainable sets
    "TrainablePart",
    "Full",
    "LastLayer",
    "BiasOnly",
    "Freeze",
    "find_head",
    "SparseUpdate",
    "sparse_layers",
    "describe_scheme",
    "paper_scheme_100kb",
    "SparseConv2d",
    "channels_to_update",
    "contribution_analysis",
    "search_scheme",
    "Contribution",
    "ContributionTable",
    "MemoryMeter",
    "SchemeSearchResult",
    "default_weight_candidates",
    # memory savers
    "Checkpointing",
    "CheckpointedSequential",
    "MicroBatch",
    "InPlaceActivations",
    "BatchNormPolicy",
    # optimizers
    "OptimizerPart",
    "SGD",
    "Momentum",
    "Adam",
    "AdamW",
    "Adam8bit",
    "BlockwiseAdam8bit",
    "UpdateInBackward",
    "FusedBackwardOptimizer",
    # precision
    "PrecisionPart",
    "MixedPrecision",
    "Int8",
    "convert_to_int8",
    "quantized_layers",
    "dequantized_state",
    "weight_gradient_ratios",
    "qas_gradient_scale_report",
    "QASReport",
    "QuantConv2d",
    "QuantLinear",
    "QuantSparseConv2d",
    # adapters
    "LoRA",
    "LoRALinear",
    "LoRAConv2d",
    "add_lora",
    "merge_lora",
    "remove_lora",
    "lora_layers",
    # reports
    "RecipeMemoryReport",
    "SegmentMemory",
    "recipe_memory_report",
    "TrainableSummary",
    "LayerParameters",
    "summarize",
    # building blocks
    "split_batch",
    "accumulate_step",
    "find_trunk",
    "segment_bounds",
    "plan_segments",
    "checkpoint_trunk",
    "remove_checkpointing",
    "freeze_batchnorm",
    "fold_batchnorm",
    "count_batchnorms",
    "unfreeze_batchnorm",
    "batchnorm_to_groupnorm",
    "FrozenBatchNorm2d",
    "set_inplace",
]
