"""Named recipes that the chapters compare again and again."""

from __future__ import annotations

from odtlab.recipes.checkpointing import Checkpointing
from odtlab.recipes.microbatch import MicroBatch
from odtlab.recipes.optimizers import Adam
from odtlab.recipes.recipe import Recipe
from odtlab.recipes.trainable import BiasOnly, Full, LastLayer

__all__ = ["presets"]


def presets() -> dict[str, Recipe]:
    """Fresh copies of the commonly compared recipes, by name.

    =================  ===========================================================
    ``"full"``         train everything, SGD (the baseline)
    ``"last-layer"``   train the classifier only
    ``"bias-only"``    train the biases (BatchNorm shifts) and the classifier
    ``"full+ckpt"``    train everything, trunk checkpointed in 4 segments
    ``"full+mb4"``     train everything, each batch in 4 micro-batches
    ``"full+adam"``    train everything with Adam (two state buffers per parameter)
    =================  ===========================================================

    Examples
    --------
    >>> sorted(presets())
    ['bias-only', 'full', 'full+adam', 'full+ckpt', 'full+mb4', 'last-layer']
    >>> presets()["full+mb4"].micro_batches
    4
    """
    return {
        "full": Recipe(Full(), name="full"),
        "last-layer": Recipe(LastLayer(), name="last-layer"),
        "bias-only": Recipe(BiasOnly(), name="bias-only"),
        "full+ckpt": Recipe(Full(), Checkpointing(4), name="full+ckpt"),
        "full+mb4": Recipe(Full(), MicroBatch(4), name="full+mb4"),
        "full+adam": Recipe(Full(), Adam(), name="full+adam"),
    }
