"""odtlab.export: train a model in a real on-device runtime, ExecuTorch.

:func:`export_training` turns a model, a loss and a recipe into an
ExecuTorch program whose one graph computes the loss and the gradients of
the recipe's trainable parameters (a *joint forward-backward graph*), writes
it to a ``.pte`` file and loads it in the ExecuTorch runtime. The returned
:class:`ExportedTraining` steps it from Python with the runtime's own SGD;
frozen parameters are constants inside the program. Chapter 5 compares its
steps with eager PyTorch and its step time with eager.

ExecuTorch is an optional extra (about 200 MB): ``pip install -e ".[export]"``;
where it is missing, :class:`ExecuTorchMissing` says so. Importing this
package does not import ExecuTorch.

Examples
--------
>>> from odtlab import export, models, recipes  # doctest: +SKIP
>>> x, y = models.example_batch("mlp", 8)  # doctest: +SKIP
>>> program = export.export_training(models.mlp(), (x, y), recipes.Recipe(recipes.BiasOnly()))  # doctest: +SKIP
>>> losses = program.train([(x, y)] * 20)  # doctest: +SKIP
"""

from __future__ import annotations

from odtlab.export.atomic import write_atomically
from odtlab.export.errors import CannotExport, ExecuTorchMissing, WrongBatch
from odtlab.export.program import (
    EXPORTABLE_KINDS,
    LOSSES,
    POOLS_WITHOUT_BACKWARD,
    TrainingGraph,
    export_training,
)
from odtlab.export.runtime import ExportedTraining, load_runtime

__all__ = [
    "export_training",
    "ExportedTraining",
    "TrainingGraph",
    "load_runtime",
    "write_atomically",
    "LOSSES",
    "EXPORTABLE_KINDS",
    "POOLS_WITHOUT_BACKWARD",
    "ExecuTorchMissing",
    "CannotExport",
    "WrongBatch",
]
