"""Which optimizer runs, and when it steps: SGD, Momentum, Adam(W), 8-bit Adam, update in backward.

Chapters 1 (optimizer state is memory) and 4 (memory-light optimizers).
"""

from odtlab.recipes.optim.adam8bit import Adam8bit, BlockwiseAdam8bit
from odtlab.recipes.optim.basic import SGD, Adafactor, Adam, AdamW, Momentum, OptimizerPart
from odtlab.recipes.optim.in_backward import FusedBackwardOptimizer, UpdateInBackward

__all__ = [
    "OptimizerPart",
    "SGD",
    "Momentum",
    "Adam",
    "AdamW",
    "Adafactor",
    "Adam8bit",
    "BlockwiseAdam8bit",
    "UpdateInBackward",
    "FusedBackwardOptimizer",
]
