"""Which parameters learn: full, last layer, bias-only, frozen blocks, TinyTL, sparse update, LoRA.

A trainable part answers one question for every parameter: does it get a
gradient? Chapters 2 (freezing), 3 (TinyTL) and 4 (sparse update, LoRA).
"""

from odtlab.recipes.trainable.basic import (
    BiasOnly,
    Freeze,
    Full,
    LastLayer,
    TrainablePart,
    find_head,
)
from odtlab.recipes.trainable.lora import LoRA, add_lora, lora_layers, merge_lora, remove_lora
from odtlab.recipes.trainable.sparse_update import SparseUpdate, describe_scheme, sparse_layers
from odtlab.recipes.trainable.summary import LayerParameters, TrainableSummary, summarize
from odtlab.recipes.trainable.tinytl import LiteResidualBranches, NormOnly, TinyTL

__all__ = [
    "TrainablePart",
    "Full",
    "LastLayer",
    "BiasOnly",
    "Freeze",
    "find_head",
    "TinyTL",
    "LiteResidualBranches",
    "NormOnly",
    "SparseUpdate",
    "sparse_layers",
    "describe_scheme",
    "LoRA",
    "add_lora",
    "merge_lora",
    "remove_lora",
    "lora_layers",
    "TrainableSummary",
    "LayerParameters",
    "summarize",
]
