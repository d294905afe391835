"""odtlab: the library behind the course on training neural networks on the device.

The whole library carries one idea: *model + data + recipe, run on a device,
gives a report*. Import it as::

    import odtlab as odt
"""

from __future__ import annotations

from odtlab import (
    cl,
    data,
    devices,
    errors,
    export,
    fl,
    grading,
    memory,
    models,
    papers,
    parallel,
    recipes,
    search,
    train,
    tutor,
    viz,
    widgets,
)
from odtlab.errors import (
    CorruptCheckpoint,
    DoesNotFit,
    GradingError,
    InvalidRecipe,
    OdtlabError,
    UnknownDevice,
    UnknownModel,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "errors",
    "devices",
    "memory",
    "models",
    "data",
    "recipes",
    "train",
    "search",
    "fl",
    "cl",
    "export",
    "tutor",
    "grading",
    "viz",
    "widgets",
    "papers",
    "parallel",
    "OdtlabError",
    "UnknownDevice",
    "UnknownModel",
    "DoesNotFit",
    "InvalidRecipe",
    "CorruptCheckpoint",
    "GradingError",
]
