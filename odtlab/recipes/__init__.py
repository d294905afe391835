"""odtlab.recipes: *how* we train, as small parts that compose.

A :class:`Recipe` is a few :class:`RecipePart` objects, at most one of each
kind. The parts live in one subpackage per kind of decision:

=========================  =====================================================
subpackage                 parts
=========================  =====================================================
``recipes.trainable``      which parameters learn: :class:`Full` (default),
                           :class:`LastLayer`, :class:`BiasOnly`,
                           :class:`Freeze`, :class:`TinyTL`, :class:`NormOnly`,
                           :class:`SparseUpdate`, :class:`LoRA`
``recipes.activations``    what is kept for backward: :class:`Checkpointing`,
                           :class:`MicroBatch`, :class:`BatchNormPolicy`,
                           :class:`InPlaceActivations`
``recipes.precision``      number format: :class:`MixedPrecision` (bf16/fp16),
                           :class:`Int8` (int8 graph with QAS)
``recipes.optim``          optimizer and when it steps: :class:`SGD` (default,
                           lr 0.05), :class:`Momentum`, :class:`Adam`,
                           :class:`AdamW`, :class:`Adam8bit`,
                           :class:`UpdateInBackward`
``recipes.layers``         the modules those parts swap in (lite residual,
                           sparse conv, int8 layers, LoRA adapters)
=========================  =====================================================

Named recipes (``named("tinytl/bias")``, ``recipe_names()``) live in
:mod:`odtlab.recipes.registry`. What a recipe costs on a device is asked of
:func:`odtlab.train.profile` and :class:`odtlab.train.Trainer`.

Examples
--------
>>> from odtlab import models
>>> from odtlab.recipes import Recipe, BiasOnly, MicroBatch
>>> recipe = Recipe(BiasOnly(), MicroBatch(4))
>>> model = recipe.prepare(models.build("cnn"))
>>> optimizer = recipe.make_optimizer(model.parameters())
>>> x, y = models.example_batch("cnn", 8, resolution=16)
>>> loss = recipe.train_step(model, x, y, None, optimizer)
>>> recipe.name, recipe.micro_batches
('bias-only+mb(4)', 4)
"""

from odtlab.recipes import activations, layers, optim, precision, trainable
from odtlab.recipes.activations import (
    BatchNormPolicy,
    Checkpointing,
    InPlaceActivations,
    MicroBatch,
)
from odtlab.recipes.base import KINDS, RecipePart, register_kind
from odtlab.recipes.layers import LiteResidual, SparseConv2d, add_lite_residuals, fold_batchnorm
from odtlab.recipes.optim import (
    SGD,
    Adafactor,
    Adam,
    Adam8bit,
    AdamW,
    Momentum,
    OptimizerPart,
    UpdateInBackward,
)
from odtlab.recipes.precision import (
    Int8,
    MixedPrecision,
    PrecisionPart,
    convert_to_int8,
    qas_gradient_scale_report,
)
from odtlab.recipes.recipe import Recipe
from odtlab.recipes.registry import (
    named,
    paper_scheme_100kb,
    recipe_names,
    register_recipe,
    tinytl_methods,
)
from odtlab.recipes.trainable import (
    BiasOnly,
    Freeze,
    Full,
    LastLayer,
    LiteResidualBranches,
    LoRA,
    NormOnly,
    SparseUpdate,
    TinyTL,
    TrainablePart,
    TrainableSummary,
    describe_scheme,
    sparse_layers,
)

__all__ = [
    # the recipe and its protocol
    "Recipe",
    "RecipePart",
    "KINDS",
    "register_kind",
    # named recipes
    "named",
    "recipe_names",
    "register_recipe",
    "tinytl_methods",
    "paper_scheme_100kb",
    # which parameters learn
    "TrainablePart",
    "Full",
    "LastLayer",
    "BiasOnly",
    "Freeze",
    "TinyTL",
    "LiteResidualBranches",
    "NormOnly",
    "SparseUpdate",
    "LoRA",
    "sparse_layers",
    "describe_scheme",
    "TrainableSummary",
    # what is kept for backward
    "Checkpointing",
    "MicroBatch",
    "BatchNormPolicy",
    "InPlaceActivations",
    # number format
    "PrecisionPart",
    "MixedPrecision",
    "Int8",
    "convert_to_int8",
    "qas_gradient_scale_report",
    # optimizers
    "OptimizerPart",
    "SGD",
    "Momentum",
    "Adam",
    "AdamW",
    "Adafactor",
    "Adam8bit",
    "UpdateInBackward",
    # layers the chapters show
    "LiteResidual",
    "add_lite_residuals",
    "SparseConv2d",
    "fold_batchnorm",
    # the subpackages
    "trainable",
    "activations",
    "precision",
    "optim",
    "layers",
]
