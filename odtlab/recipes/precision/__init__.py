"""In which number format we train: fp32 (no part), bf16/fp16 autocast, int8 with QAS.

Chapter 4. :class:`MixedPrecision` runs the forward pass under
``torch.autocast``; :class:`Int8` folds BatchNorm and trains the int8 graph
with fake-quantised weights and activations and quantisation-aware scaling.
"""

from odtlab.recipes.precision.int8 import (
    Int8,
    convert_to_int8,
    dequantized_state,
    qas_gradient_scale_report,
    quantized_layers,
)
from odtlab.recipes.precision.mixed import MixedPrecision, PrecisionPart
from odtlab.recipes.precision.qas import QASReport, weight_gradient_ratios

__all__ = [
    "PrecisionPart",
    "MixedPrecision",
    "Int8",
    "convert_to_int8",
    "quantized_layers",
    "dequantized_state",
    "qas_gradient_scale_report",
    "weight_gradient_ratios",
    "QASReport",
]
