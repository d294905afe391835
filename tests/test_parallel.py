"""map_in_processes: the same results, in job order, from one process or several."""

from __future__ import annotations

import doctest
import os

import pytest
import torch

from odtlab import data, models, parallel
from odtlab import recipes as R
from odtlab.parallel import can_fork, map_in_processes
from odtlab.train import compare

needs_fork = pytest.mark.skipif(not can_fork(), reason="worker processes need fork (Linux)")


def test_the_doctest_runs():
    result = doctest.testmod(parallel, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0


@needs_fork
def test_jobs_run_in_other_processes_and_come_back_in_order():
    parent = os.getpid()
    done: list[int] = []
    out = map_in_processes(lambda i: (i, os.getpid()), 5, workers=2, on_done=done.append)
    assert [i for i, _ in out] == [0, 1, 2, 3, 4]
    assert all(pid != parent for _, pid in out)
    assert sorted(done) == [0, 1, 2, 3, 4]


def test_one_worker_runs_here_in_order():
    parent = os.getpid()
    done: list[int] = []
    out = map_in_processes(lambda i: (i, os.getpid()), 3, workers=1, on_done=done.append)
    assert out == [(0, parent), (1, parent), (2, parent)] and done == [0, 1, 2]


@needs_fork
def test_a_job_that_fails_raises_its_error_here():
    def job(i: int) -> int:
        if i == 2:
            raise ValueError("job 2 is broken")
        return i

    with pytest.raises(ValueError, match="job 2 is broken"):
        map_in_processes(job, 4, workers=2)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_a_bad_worker_count_is_refused(workers):
    with pytest.raises(ValueError, match="workers="):
        map_in_processes(lambda i: i, 2, workers=workers)


@needs_fork
def test_seeded_training_gives_the_same_rows_in_two_processes(one_thread):
    train, test = data.digits("train"), data.digits("test")
    recipes = [R.Recipe(R.SGD(lr=0.05), name="full"), R.Recipe(R.LastLayer(), R.SGD(lr=0.05))]
    one = compare(recipes, lambda: models.mlp(seed=3), train, test, "stm32f746", steps=8, workers=1)
    two = compare(recipes, lambda: models.mlp(seed=3), train, test, "stm32f746", steps=8, workers=2)
    assert one.rows == two.rows
    assert one.rows[0]["final_accuracy"] != one.rows[1]["final_accuracy"]  # two different runs
    assert torch.get_num_threads() == 1  # the parent's settings are untouched

