"""What a student sees from ``grader.check("q1")``: one line per question.

otter prints a failed check as a doctest trace, about fifteen lines before the
one that matters (the assertion's message). :func:`grader` returns otter's
``Notebook`` with one change: ``check`` returns a :class:`CheckResult` that
prints a single line, the first failed test's message, and keeps otter's full
result in ``.result`` for whoever wants the trace. Grading is unchanged: the
autograder records otter's own results.

Each lab's grader cell is::

    grader = odt.grading.grader("lab00_welcome")
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from odtlab.grading.public_tests import public_tests_dir

__all__ = ["CheckResult", "CheckResults", "grader", "short_message"]

_ERROR_LINE_RE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))(?::\s?(.*))?$")


def short_message(message: str) -> str:
    """The line of a failed test's report that says what is wrong.

    That is the last ``SomeError: text`` line of the trace (an assertion's
    message, or the error a student's function raised), without the module path.

    Examples
    --------
    >>> short_message("Failed example:\\n    assert x == 1, 'x is off'\\nAssertionError: x is off")
    'AssertionError: x is off'
    >>> short_message("    odtlab.errors.GradingError: no tests")
    'GradingError: no tests'
    """
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        match = _ERROR_LINE_RE.match(line)
        if match:
            name = match.group(1).rsplit(".", 1)[-1]
            text = (match.group(2) or "").strip()
            if name == "AssertionError" and not text:
                return "AssertionError: a check failed (the test gives no message)"
            return f"{name}: {text}" if text else name
    return lines[-1] if lines else "failed"


@dataclass
class CheckResult:
    """The outcome of ``grader.check(question)``, printed in one line.

    Attributes
    ----------
    question : str
        The question's name (``"q1"``).
    result : otter TestFile
        otter's full result; ``print(check.result)`` shows every test's trace.
    """

    question: str
    result: Any

    @property
    def passed(self) -> bool:
        """Whether every test that ran passed."""
        return bool(self.result.passed_all)

    @property
    def failures(self) -> list[str]:
        """One line per failed test, in the order of the tests."""
        return [short_message(r.message or "") for r in self.result.test_case_results if not r.passed]

    def __str__(self) -> str:
        if self.passed:
            return f"{self.question}: the checks pass. (The hidden tests grade the final answer.)"
        failures = self.failures
        extra = len(failures) - 1
        more = f" ({extra} more check{'s' * (extra > 1)} failed)" if extra else ""
        message = failures[0].removeprefix("AssertionError: ")
        return f"{self.question}: not yet. {message}{more}"

    __repr__ = __str__

    def __getattr__(self, name: str) -> Any:
        # the rest of otter's TestFile (name, score, summary()...), for otter's own callers
        if name == "result":
            raise AttributeError(name)
        return getattr(self.result, name)

    def _repr_html_(self) -> str:
        import html

        color = "green" if self.passed else "#b00"
        return f"<p style='color: {color}'>{html.escape(str(self))}</p>"


class CheckResults(list):
    """What ``grader.check_all()`` returns: a :class:`CheckResult` per question, a line each."""

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "".join(r._repr_html_() for r in self)


def _question_key(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 0, name)


@cache
def _notebook_class() -> type:
    import otter

    class Notebook(otter.Notebook):
        """otter's ``Notebook`` whose ``check`` prints one line (see :class:`CheckResult`)."""

        def check(self, question: str, global_env: dict[str, Any] | None = None) -> CheckResult:
            if global_env is None:
                global_env = inspect.currentframe().f_back.f_globals
            return CheckResult(question, super().check(question, global_env))

        def check_all(self) -> CheckResults | None:
            if type(self)._grading_mode:  # the autograder checks every question itself
                return None
            global_env = inspect.currentframe().f_back.f_globals
            names = sorted((p.stem for p in Path(self._tests_dir).glob("*.py")), key=_question_key)
            return CheckResults(self.check(name, global_env) for name in names if name != "__init__")

    return Notebook


def grader(lab: str) -> Any:
    """The grader of a lab: ``grader("lab00_welcome").check("q1")`` runs q1's public tests.

    The tests ship inside odtlab (:func:`public_tests_dir`), so this works in a
    clone of the repository and in Colab alike.
    """
    return _notebook_class()(tests_dir=str(public_tests_dir(lab)))
