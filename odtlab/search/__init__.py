"""odtlab.search: experiments over recipes, above :mod:`odtlab.train`.

Chapter 4's tools for choosing a sparse-update scheme under a memory budget:
:func:`contribution_analysis` fine-tunes each candidate (a bias block, a
weight ratio of one layer) and records what it adds to accuracy and to
memory; :func:`search_scheme` finds the best combination that fits a device.

Examples
--------
>>> from odtlab import search
>>> sorted(search.__all__)[:2]
['Contribution', 'ContributionTable']
"""

from odtlab.search.contribution import contribution_analysis, default_weight_candidates
from odtlab.search.scheme import SchemeSearchResult, search_scheme
from odtlab.search.table import Contribution, ContributionTable, MemoryMeter

__all__ = [
    "Contribution",
    "ContributionTable",
    "MemoryMeter",
    "SchemeSearchResult",
    "contribution_analysis",
    "default_weight_candidates",
    "search_scheme",
]
