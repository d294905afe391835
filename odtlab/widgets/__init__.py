"""odtlab.widgets: ipywidgets explorers where a learner turns a knob (the top floor).

``odt.widgets.memory_explorer()`` shows sliders for the batch size, the
resolution, the width and the optimizer, and a bar of the training memory
against a device's budget (chapter 1, lab 1).
"""

from odtlab.widgets.explorer import (
    EXPLORER_MODELS,
    ExplorerPoint,
    explore_memory,
    memory_explorer,
    plot_point,
)

__all__ = ["EXPLORER_MODELS", "ExplorerPoint", "explore_memory", "memory_explorer", "plot_point"]
