"""Time limits on the tests, installed inside the kernel that grades a submission.

``otter run`` executes a submission in a Jupyter kernel and runs each question's
tests there (in the ``grader.check`` cells, then once more at the end for any
question not yet checked). A hidden test that calls a student's function which
never returns would hang that cell; the cell time limit then interrupts it with
a ``KeyboardInterrupt``, which no test runner catches, so the question is never
recorded and the final cell runs it again and hangs again: the whole submission
is lost.

:func:`install` wraps every test case in a ``SIGALRM`` time limit that raises
``TimeoutError``, an ordinary exception: the test case fails with a message
that says what happened, the other test cases and questions run as usual.
:mod:`odtlab.grading._run_one` adds ``install(seconds)`` to the first cell
otter runs.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["install", "time_limit"]


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "the test") -> Iterator[None]:
    """Raise ``TimeoutError`` in the main thread if the block runs longer than ``seconds``."""

    def _stop(signum, frame):  # noqa: ARG001 - the signal handler's signature
        raise TimeoutError(
            f"{what} ran for more than {seconds:g} s and was stopped: "
            "does a loop in a function it calls never end?"
        )

    previous = signal.signal(signal.SIGALRM, _stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def install(seconds: float) -> None:
    """Give every otter test case (OK and exception formats) a limit of ``seconds``."""
    from otter.test_files import exception_test, ok_test

    run_doctest = ok_test.run_doctest

    def timed_doctest(name, code, global_environment):
        with time_limit(seconds, "this test"):
            return run_doctest(name, code, global_environment)

    ok_test.run_doctest = timed_doctest

    call_func = exception_test.test_case.call_func

    def timed_call(self, global_environment):
        with time_limit(seconds, "this test"):
            return call_func(self, global_environment)

    exception_test.test_case.call_func = timed_call
