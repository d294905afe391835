"""Paper figures next to ours: one line per comparison, ``<name>: paper=<x> ours=<y> ratio=<y/x>``.

The comparisons live in :mod:`odtlab.papers` (chapters 3 and 4 call it), whose
docstrings cite the paper, version and table of every figure and state every
assumption of ours. This script prints them all, in the order of
``odtlab.papers.PAPERS``.

Run: ``python benchmarks/papers.py`` (about 15 s on 2 CPU cores).
"""

from __future__ import annotations

import odtlab as odt


def main() -> None:
    for comparisons in odt.papers.PAPERS:
        for comparison in comparisons():
            print(comparison.line(), flush=True)


if __name__ == "__main__":
    main()
