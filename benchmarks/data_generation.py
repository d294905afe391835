"""How fast the synthetic datasets are generated (printed, not asserted).

Run: ``.venv/bin/python benchmarks/data_generation.py``
"""

from __future__ import annotations

import time

import odtlab as odt


def timed(label: str, make) -> None:
    start = time.perf_counter()
    ds = make()
    elapsed = time.perf_counter() - start
    print(f"{label}: {len(ds)} samples in {elapsed:.2f} s ({len(ds) / elapsed:,.0f} samples/s)")


if __name__ == "__main__":
    timed("shapes 32x32 source", lambda: odt.data.SyntheticShapes(10_000, seed=3))
    timed(
        "shapes 32x32 target-noise",
        lambda: odt.data.SyntheticShapes(10_000, seed=3, domain="target-noise"),
    )
    timed("sensor windows 3x64", lambda: odt.data.SensorActivity(5_000, seed=0))
    timed("digits 32x32 train", lambda: odt.data.digits("train", resolution=32))
