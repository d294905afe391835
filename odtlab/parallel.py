"""Run independent jobs on several CPU cores: :func:`map_in_processes`.

Comparing recipes means training the same model several times, each run
independent of the others. PyTorch's own threads barely help the course's
small models (a 32x32 MobileNetV2 step is no faster on two threads than on
one), but two *processes* train two candidates at once, so a laptop or a
Colab machine with two cores finishes in about half the time.

The helper forks the current process (Linux only), so each worker starts
with everything the parent had: the model, the data and the closure to run,
nothing is pickled on the way in. Only each job's result travels back, so it
must be picklable (numbers, dataclasses of numbers and tensors). Each worker
runs PyTorch on one thread, and every job must seed itself: results are
then the same whichever worker ran them and in whichever order.

Where fork is missing (Windows, or macOS where it is unsafe), or for
``workers=1``, the jobs run one after the other in this process.

Examples
--------
>>> map_in_processes(lambda i: i * i, 4, workers=2)
[0, 1, 4, 9]
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

import torch

__all__ = ["map_in_processes", "can_fork"]

R = TypeVar("R")

# The job of the pool being run. Set just before the workers fork (they inherit it) and
# cleared after: it lives only while map_in_processes runs.
_JOB: list[Callable[[int], Any]] = []


def can_fork() -> bool:
    """Whether :func:`map_in_processes` can use more than one process here (Linux)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _run_job(index: int) -> Any:
    torch.set_num_threads(1)
    return _JOB[-1](index)


def map_in_processes(
    job: Callable[[int], R],
    count: int,
    *,
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
) -> list[R]:
    """``[job(0), job(1), ..., job(count - 1)]``, computed by ``workers`` processes.

    Parameters
    ----------
    job : callable
        ``job(i)`` for ``i`` in ``range(count)``; any closure (it is not
        pickled). It must seed any randomness it uses, and its result must
        be picklable.
    count : int
        How many jobs.
    workers : int, default 1
        Processes to use; ``1`` runs the jobs here, one after the other.
        More workers than cores only slows things down.
    on_done : callable or None
        Called with ``i`` in this process when job ``i`` has finished (to
        move a progress bar).

    Returns
    -------
    list
        The results in job order, whichever finished first.

    Raises
    ------
    ValueError
        For ``workers < 1``. An exception raised by a job is raised here.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}: give the number of processes, an int >= 1")
    if workers == 1 or count < 2 or not can_fork():
        results = []
        for i in range(count):
            results.append(job(i))
            if on_done is not None:
                on_done(i)
        return results
    _JOB.append(job)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, count), mp_context=context) as pool:
            futures = {pool.submit(_run_job, i): i for i in range(count)}
            out: dict[int, R] = {}
            for future in as_completed(futures):
                i = futures[future]
                out[i] = future.result()
                if on_done is not None:
                    on_done(i)
        return [out[i] for i in range(count)]
    finally:
        _JOB.pop()
