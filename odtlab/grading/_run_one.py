"""Grade one submission with ``otter run``, with a time limit on every cell.

This is the worker that :func:`odtlab.grading.autograde.grade_submission` starts
in a fresh process. ``otter run`` executes the notebook with nbconvert's
``ExecutePreprocessor``, which by default waits forever for a cell; a student's
infinite loop would then hang the whole grading run. Here the preprocessor is
replaced by a subclass that interrupts a cell after ``--cell-timeout`` seconds
and records a clear error in that cell, so grading goes on with the next cell
and the question that owns the looping cell simply scores what its tests give.

Tests get a limit of their own, ``--test-timeout`` seconds per test case, set
inside the grading kernel by :mod:`odtlab.grading._kernel`: a hidden test that
calls a student's function that never returns fails with a ``TimeoutError``
and costs that test's points, not the submission. The cells that run tests
(``grader.check`` and otter's final cell) get a cell limit long enough for
their tests to time out one by one.

Usage (normally through ``odtlab grade``)::

    python odtlab/grading/_run_one.py AUTOGRADER_ZIP SUBMISSION.ipynb OUT.json \
        --cell-timeout 60 --test-timeout 20
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any

_CHECK_RE = re.compile(r"grader\.check\(\s*[\"']([^\"']+)[\"']\s*\)")


_TEST_CELL_RE = re.compile(r"\.check\(|Checker\.check")
# test cases one cell may run before its own limit could cut the last ones short
_TESTS_PER_CELL = 8
_TESTS_IN_FINAL_CELL = 40


def _cell_limit(source: str, cell_timeout: int, test_timeout: int) -> int:
    """Seconds a cell may run: more for the cells that run tests, each test having its limit,
    and for otter's first cell, which imports otter and odtlab (torch) in a fresh kernel."""
    if "init_grading_mode" in source:
        return max(cell_timeout, 120)
    if "GradingResults(" in source:  # otter's final cell: every question not yet checked
        return cell_timeout + _TESTS_IN_FINAL_CELL * test_timeout
    if _TEST_CELL_RE.search(source):
        return cell_timeout + _TESTS_PER_CELL * test_timeout
    return cell_timeout


def _install_time_limits(cell_timeout: int, test_timeout: int) -> None:
    import nbconvert.preprocessors as preprocessors
    import otter.execute.preprocessor as otter_preprocessor
    from traitlets import Any as AnyTrait
    from traitlets import Bool, Dict

    # the first cell otter runs in the kernel also puts a limit on every test case
    if "odtlab.grading._kernel" not in otter_preprocessor.INIT_CELL_SOURCE:
        otter_preprocessor.INIT_CELL_SOURCE += (
            f"\nimport odtlab.grading._kernel\nodtlab.grading._kernel.install({test_timeout})\n"
        )
    seconds = cell_timeout
    base = preprocessors.ExecutePreprocessor

    class TimedExecutePreprocessor(base):  # type: ignore[misc, valid-type]
        timeout_func = AnyTrait(
            lambda cell: _cell_limit(cell.get("source", ""), cell_timeout, test_timeout)
        ).tag(config=True)
        interrupt_on_timeout = Bool(True).tag(config=True)
        error_on_timeout = Dict(
            {
                "ename": "CellTimeout",
                "evalue": f"the cell ran for more than {seconds} s and was stopped",
                "traceback": [f"CellTimeout: the cell ran for more than {seconds} s and was stopped"],
            }
        ).tag(config=True)

    preprocessors.ExecutePreprocessor = TimedExecutePreprocessor


def _cell_problems(notebook: Any, cell_timeout: int) -> dict[str, list[str]]:
    """Errors in the executed notebook, keyed by the question whose check follows them.

    A cell stopped by the time limit shows as a ``KeyboardInterrupt`` (that is
    how the kernel is interrupted); it is reported as a ``CellTimeout``.
    """
    problems: dict[str, list[str]] = {}
    pending: list[str] = []
    for cell in notebook.cells if notebook is not None else []:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", ""))
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            if out.get("ename") == "KeyboardInterrupt":
                pending.append(
                    f"CellTimeout: a cell ran for more than {cell_timeout} s and was stopped"
                )
            else:
                pending.append(f"{out.get('ename')}: {out.get('evalue')}".strip())
        match = _CHECK_RE.search(source)
        if match and pending:
            problems.setdefault(match.group(1), []).extend(pending)
            pending = []
    if pending:
        problems.setdefault("(after the last question)", []).extend(pending)
    return problems


def grade(
    autograder: str, submission: str, cell_timeout: int, test_timeout: int = 20
) -> dict[str, Any]:
    """Grade ``submission``; return per-question scores and the problems found."""
    _install_time_limits(cell_timeout, test_timeout)
    from otter.run import main as otter_run

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()) as log:
        results = otter_run(submission, autograder=autograder, output_dir=tmp, no_logo=True)
    questions = {}
    for name, test_file in sorted(results.results.items()):
        failed = [tc.message for tc in getattr(test_file, "test_case_results", []) if not tc.passed]
        questions[name] = {
            "score": float(test_file.score),
            "possible": float(test_file.possible),
            "failed_tests": [str(m).strip()[-500:] for m in failed],
        }
    error = results.catastrophic_error
    return {
        "questions": questions,
        "cell_problems": _cell_problems(results.notebook, cell_timeout),
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "log_tail": log.getvalue()[-2000:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("autograder")
    parser.add_argument("submission")
    parser.add_argument("output")
    parser.add_argument("--cell-timeout", type=int, default=120)
    parser.add_argument("--test-timeout", type=int, default=20)
    args = parser.parse_args(argv)
    result = grade(args.autograder, args.submission, args.cell_timeout, args.test_timeout)
    Path(args.output).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
