"""Grade a folder of student submissions locally, without Docker.

Each notebook is graded by ``otter run`` against its lab's autograder zip (built
by ``make student``) in its own process, with a time limit per cell (an
infinite loop at the top level costs the student that cell), a time limit per
test case (a function that never returns costs the tests that call it) and a
time limit for the whole notebook. A notebook that raises, loops, or answers
wrong gets a per-question score and a note saying what happened; the grader
itself never stops on a bad submission. Several notebooks are graded at once
with ``jobs=N`` (each in its own process and kernel).

The result is one CSV: a row per submission, a column per question, the total,
and the notes, one per question that lost points, in the words of the failed
test's message. ``make grade SUBMISSIONS=path/to/folder`` runs it.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from odtlab.errors import GradingError
from odtlab.grading.checks import short_message

__all__ = ["SubmissionGrade", "grade_submission", "grade_folder", "lab_of"]


@dataclass
class SubmissionGrade:
    """Scores of one submission.

    Attributes
    ----------
    submission : str
        File name of the graded notebook.
    lab : str
        Lab it was graded against.
    scores : dict[str, float]
        Points per question (``{"q1": 2.0, ...}``).
    possible : dict[str, float]
        Points available per question.
    notes : list[str]
        What went wrong, per question, in words (failed tests, errors, timeouts).
    """

    submission: str
    lab: str
    scores: dict[str, float] = field(default_factory=dict)
    possible: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Points scored over all questions."""
        return sum(self.scores.values())

    @property
    def total_possible(self) -> float:
        """Points available over all questions."""
        return sum(self.possible.values())


def lab_of(notebook: str | Path) -> str | None:
    """The lab a notebook belongs to, from its metadata (``odtlab.lab`` or otter's name)."""
    try:
        meta = json.loads(Path(notebook).read_text()).get("metadata", {})
    except (OSError, ValueError):
        return None
    return meta.get("odtlab", {}).get("lab") or meta.get("otter", {}).get("assignment_name")


def _autograder_for(lab: str, dist_dir: Path) -> Path:
    zip_path = dist_dir / lab / f"{lab}-autograder.zip"
    if not zip_path.is_file():
        raise GradingError(
            f"No autograder for lab {lab!r} at {zip_path}. Run `make student` first; "
            "it builds the autograder zip of every lab into dist/."
        )
    return zip_path


def grade_submission(
    submission: str | Path,
    autograder_zip: str | Path,
    *,
    lab: str = "",
    cell_timeout: int = 120,
    test_timeout: int = 20,
    notebook_timeout: int = 1800,
) -> SubmissionGrade:
    """Grade one notebook with ``otter run``; never raises for a bad submission.

    Parameters
    ----------
    submission : path
        The student's ``.ipynb``.
    autograder_zip : path
        The lab's autograder zip from ``make student``.
    cell_timeout : int
        Seconds one cell may run before it is interrupted (its question then
        usually scores 0, with a ``CellTimeout`` note).
    test_timeout : int
        Seconds one test case may run; a test that calls a function that never
        returns fails with a ``TimeoutError`` note and costs only its own points.
    notebook_timeout : int
        Seconds the whole grading of this notebook may take.
    """
    submission = Path(submission)
    grade = SubmissionGrade(submission=submission.name, lab=lab)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable, str(Path(__file__).with_name("_run_one.py")),  # no odtlab import
            str(Path(autograder_zip).resolve()), str(submission.resolve()), str(out),
            "--cell-timeout", str(cell_timeout), "--test-timeout", str(test_timeout),
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=notebook_timeout, cwd=tmp
            )
        except subprocess.TimeoutExpired:
            grade.notes.append(f"grading stopped after {notebook_timeout} s; scored 0")
            return grade
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            grade.notes.append("could not be graded: " + " | ".join(tail))
            return grade
        result = json.loads(out.read_text())
    for name, q in result["questions"].items():
        grade.scores[name] = q["score"]
        grade.possible[name] = q["possible"]
        if q["score"] < q["possible"]:
            first = short_message(q["failed_tests"][0]) if q["failed_tests"] else "failed"
            grade.notes.append(f"{name}: {q['score']:g}/{q['possible']:g} ({first})")
    for name, problems in result["cell_problems"].items():
        grade.notes.append(f"{name}: error while running: {'; '.join(problems)}")
    if result["error"]:
        grade.notes.append(f"grading error: {result['error']}")
    return grade


def grade_folder(
    submissions_dir: str | Path,
    *,
    dist_dir: str | Path = "dist",
    lab: str | None = None,
    out_csv: str | Path | None = None,
    cell_timeout: int = 120,
    test_timeout: int = 20,
    jobs: int = 1,
    progress: bool = True,
) -> list[SubmissionGrade]:
    """Grade every ``.ipynb`` in ``submissions_dir`` and write one CSV of scores.

    Parameters
    ----------
    submissions_dir : path
        Folder of submitted notebooks (any file names).
    dist_dir : path
        Where ``make student`` wrote the autograder zips.
    lab : str, optional
        Lab to grade against; by default read from each notebook's metadata.
    out_csv : path, optional
        Defaults to ``<submissions_dir>/grades.csv``.
    cell_timeout : int
        Seconds one cell may run.
    test_timeout : int
        Seconds one test case may run.
    jobs : int
        Notebooks graded at the same time (each in its own process and kernel);
        one per free CPU core is a good choice. The CSV is the same for any value.
    progress : bool
        Show a progress bar.
    """
    folder = Path(submissions_dir)
    notebooks = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    if not notebooks:
        raise GradingError(f"No .ipynb submissions in {folder.resolve()}.")
    if jobs < 1:
        raise GradingError(f"jobs={jobs!r}: grade at least one notebook at a time (jobs >= 1).")
    labs = {nb: lab or lab_of(nb) for nb in notebooks}
    zips = {name: _autograder_for(name, Path(dist_dir)) for name in set(labs.values()) if name}

    def grade_one(nb: Path) -> SubmissionGrade:
        if not labs[nb]:
            return SubmissionGrade(nb.name, "?", notes=["unknown lab: pass LAB=labNN_name"])
        return grade_submission(
            nb, zips[labs[nb]], lab=labs[nb], cell_timeout=cell_timeout, test_timeout=test_timeout
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each job waits on its own process
        results = pool.map(grade_one, notebooks)
        if progress:
            from tqdm.auto import tqdm

            results = tqdm(results, total=len(notebooks), desc="grading", unit="nb")
        grades = list(results)
    write_csv(grades, Path(out_csv) if out_csv else folder / "grades.csv")
    return grades


def write_csv(grades: list[SubmissionGrade], path: Path) -> Path:
    """One row per submission: lab, a column per question, total, possible, notes."""
    questions = sorted({q for g in grades for q in g.possible}, key=_question_key)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "lab", *questions, "total", "possible", "notes"])
        for g in grades:
            writer.writerow(
                [g.submission, g.lab]
                + [f"{g.scores[q]:g}" if q in g.scores else "" for q in questions]
                + [f"{g.total:g}", f"{g.total_possible:g}", " | ".join(g.notes)]
            )
    return path


def _question_key(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 0, name)
