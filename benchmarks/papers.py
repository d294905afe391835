"""Paper figures next to ours: one line per comparison.

Each line reads ``<name>: paper=<x> ours=<y> ratio=<y/x> measured=<m> engine=<e>``:
``ours`` under the paper's own counting rules, then what PyTorch keeps and what
odtlab's memory-optimised engine keeps in the same setting (the last two only
where they apply).

The comparisons live in :mod:`odtlab.papers` (chapters 3 and 4 call it), whose
docstrings cite the paper, version and table of every figure and state every
assumption of ours. This script prints them all, in the order of
``odtlab.papers.PAPERS``.

Run: ``python benchmarks/papers.py`` (one worker process per core, at most 8, share the
analyses).
"""

from __future__ import annotations

import os

import odtlab as odt


def main() -> None:
    workers = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    for comparison in odt.papers.all_comparisons(workers=workers):
        print(comparison.line(), flush=True)


if __name__ == "__main__":
    main()
