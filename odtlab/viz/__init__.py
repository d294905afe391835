"""odtlab.viz: plots and ipywidgets explorers that sit on top of the library."""

from odtlab.viz.explorer import (
    EXPLORER_MODELS,
    ExplorerPoint,
    explore_memory,
    memory_explorer,
    plot_point,
)

__all__ = ["EXPLORER_MODELS", "ExplorerPoint", "explore_memory", "memory_explorer", "plot_point"]
