"""Fixtures shared by the test files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module, restored afterwards.

    The course's models are small: their convolutions gain little from a
    second thread, and on a shared 2-core machine two threads wait for each
    other (measured here: a TinyTL training test took 1 s with one thread and
    20 to 60 s with two). Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
