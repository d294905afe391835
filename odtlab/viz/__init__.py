"""odtlab.viz: every plot of the course, in one style (the ground floor, beside errors and units).

The reports' ``.plot()`` methods call these functions, so a learner can also
call them directly on any object with the same attributes. The interactive
explorers (ipywidgets) live in :mod:`odtlab.widgets`, on the top floor, since
they run the library.

Examples
--------
>>> from odtlab import viz
>>> viz.pareto_front([1, 2, 3], [0.5, 0.4, 0.9])
[0, 2]
"""

from odtlab.viz.cl import plot_accuracy_matrix, plot_stability_plasticity
from odtlab.viz.device import plot_roofline, plot_temperature
from odtlab.viz.federated import plot_label_mix, plot_personalization, plot_rounds
from odtlab.viz.memory import plot_breakdown, plot_budget, plot_timeline
from odtlab.viz.search import plot_contributions
from odtlab.viz.style import CATEGORY_COLORS, new_axes
from odtlab.viz.training import pareto_front, plot_comparison, plot_protocol, plot_training
from odtlab.viz.tutor import plot_personal_auc, plot_reliability, plot_students
from odtlab.viz.usage import plot_usage

__all__ = [
    "plot_breakdown",
    "plot_timeline",
    "plot_budget",
    "plot_temperature",
    "plot_roofline",
    "plot_training",
    "plot_comparison",
    "plot_protocol",
    "plot_contributions",
    "plot_label_mix",
    "plot_rounds",
    "plot_personalization",
    "plot_accuracy_matrix",
    "plot_stability_plasticity",
    "pareto_front",
    "CATEGORY_COLORS",
    "new_axes",
    "plot_usage",
    "plot_students",
    "plot_personal_auc",
    "plot_reliability",
]
