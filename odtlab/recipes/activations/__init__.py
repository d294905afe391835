"""What is kept for backward: checkpointing, micro-batches, BatchNorm mode, in-place activations.

Each part here decides which activations live until backward (chapter 2):
:class:`Checkpointing` recomputes a trunk in segments, :class:`MicroBatch`
splits a batch and accumulates gradients, :class:`BatchNormPolicy` owns the
BatchNorm mode (``MicroBatch(bn=...)`` is a shorthand for it), and
:class:`InPlaceActivations` switches activations to in-place.
"""

from odtlab.recipes.activations.batchnorm import (
    BatchNormPolicy,
    FrozenBatchNorm2d,
    batchnorm_to_groupnorm,
    freeze_batchnorm,
    unfreeze_batchnorm,
)
from odtlab.recipes.activations.checkpointing import (
    CheckpointedSequential,
    Checkpointing,
    checkpoint_trunk,
    find_trunk,
    plan_segments,
    remove_checkpointing,
    segment_bounds,
)
from odtlab.recipes.activations.inplace import InPlaceActivations, set_inplace
from odtlab.recipes.activations.microbatch import MicroBatch, accumulate_step, split_batch

__all__ = [
    "Checkpointing",
    "CheckpointedSequential",
    "checkpoint_trunk",
    "find_trunk",
    "plan_segments",
    "remove_checkpointing",
    "segment_bounds",
    "MicroBatch",
    "split_batch",
    "accumulate_step",
    "BatchNormPolicy",
    "FrozenBatchNorm2d",
    "freeze_batchnorm",
    "unfreeze_batchnorm",
    "batchnorm_to_groupnorm",
    "InPlaceActivations",
    "set_inplace",
]
