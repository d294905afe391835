"""The modules and autograd functions that recipe parts swap into a model.

TinyTL's lite residual branch, the sparse-update convolution that keeps only
its trained input channels, the int8 fake-quantised layers, LoRA adapters,
and BatchNorm folding. Each layer registers its memory rule with
:func:`odtlab.memory.register_layer`, so the memory model knows it.
"""

from odtlab.recipes.layers.fold import count_batchnorms, fold_batchnorm
from odtlab.recipes.layers.lite_residual import (
    InvertedResidualWithLite,
    LiteResidual,
    add_lite_residuals,
    lite_residuals,
    remove_lite_residuals,
)
from odtlab.recipes.layers.lora import LoRAConv2d, LoRALinear
from odtlab.recipes.layers.quant import QuantConv2d, QuantLinear
from odtlab.recipes.layers.quant_sparse import QuantSparseConv2d
from odtlab.recipes.layers.sparse_conv import SparseConv2d, channels_to_update

__all__ = [
    "LiteResidual",
    "InvertedResidualWithLite",
    "add_lite_residuals",
    "remove_lite_residuals",
    "lite_residuals",
    "SparseConv2d",
    "channels_to_update",
    "QuantConv2d",
    "QuantLinear",
    "QuantSparseConv2d",
    "LoRALinear",
    "LoRAConv2d",
    "fold_batchnorm",
    "count_batchnorms",
]
