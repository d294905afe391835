"""otter-grader end to end: student versions, public tests, and local autograding.

These tests run ``otter assign`` on every lab and ``otter run`` on a few
submissions (about 10 s each), so they are marked slow.
"""

from __future__ import annotations

import csv
import filecmp
import json
from pathlib import Path

import nbformat
import pytest

from odtlab.errors import GradingError
from odtlab.grading import (
    assign_lab,
    find_masters,
    grade_folder,
    grade_submission,
    lab_of,
    public_tests_dir,
)
from odtlab.grading.assign import _clean_student_notebook, repository_url

ROOT = Path(__file__).resolve().parents[1]
MASTERS = find_masters(ROOT / "labs")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assigned(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # test_solution_scores_full_marks_and_student_version_scores_zero grades each solution with
    # `otter run`, so otter assign need not run the same tests once more here
    return {m.stem: assign_lab(m, out / m.stem, check_solutions=False) for m in MASTERS}


def _solution_notebook(lab) -> Path:
    """otter's autograder notebook: the solution version, with check cells."""
    return lab.autograder_zip.parent / "autograder" / lab.student_notebook.name


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_committed_student_version_and_public_tests_are_up_to_date(master, assigned, tmp_path):
    lab = assigned[master.stem]
    fresh = tmp_path / "student.ipynb"
    _clean_student_notebook(lab.student_notebook, fresh)
    committed = ROOT / "labs" / "student" / master.name
    assert committed.is_file(), f"missing {committed}: run `make student`"
    assert fresh.read_text() == committed.read_text(), f"{committed} is stale: run `make student`"
    cmp = filecmp.dircmp(lab.public_tests, public_tests_dir(master.stem))
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files), "run `make student`"


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_student_version_has_no_solutions_and_no_hidden_tests(master, assigned):
    lab = assigned[master.stem]
    student = nbformat.read(lab.student_notebook, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "# SOLUTION" not in text and "BEGIN SOLUTION" not in text
    assert "# HIDDEN" not in text
    assert "..." in text
    for test in lab.public_tests.glob("*.py"):
        assert "'hidden': True" not in test.read_text()
    assert lab_of(lab.student_notebook) == master.stem


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_colab_install_cell_uses_the_configured_repository(master):
    url = repository_url(ROOT / "_config.yml")
    text = master.read_text()
    assert f"odtlab[lab] @ git+{url}" in text


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_solution_scores_full_marks_and_student_version_scores_zero(master, assigned):
    lab = assigned[master.stem]
    solved = grade_submission(_solution_notebook(lab), lab.autograder_zip, lab=lab.name)
    assert solved.total_possible > 0
    assert solved.total == solved.total_possible, solved.notes
    blank = grade_submission(lab.student_notebook, lab.autograder_zip, lab=lab.name)
    assert blank.possible == solved.possible
    assert blank.total == 0, blank.scores


def _with_answers(notebook: Path, replacements: dict[str, str], dest: Path) -> Path:
    """Copy ``notebook`` replacing the source of the cell that starts with each key."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        for start, source in replacements.items():
            if cell.cell_type == "code" and cell.source.startswith(start):
                cell.source = source
    nbformat.write(nb, dest)
    return dest


def test_bad_submissions_get_per_question_results_and_one_csv(assigned, tmp_path):
    lab = assigned["lab00_welcome"]
    subs = tmp_path / "submissions"
    subs.mkdir()
    solution = _solution_notebook(lab)
    (subs / "alice.ipynb").write_text(solution.read_text())
    _with_answers(
        solution,
        {
            "linear_bytes =": "linear_bytes = 4 * 64 * 10  # forgot the bias\nlinear_bytes",
            "def param_bytes": "def param_bytes(model):\n    return 1 / 0\n\nmlp = None",
            "devices_that_hold_mlp =": "while True:\n    pass",
        },
        subs / "bob.ipynb",
    )
    grades = grade_folder(subs, dist_dir=lab.autograder_zip.parent.parent, cell_timeout=5)
    by_name = {g.submission: g for g in grades}
    alice, bob = by_name["alice.ipynb"], by_name["bob.ipynb"]
    assert alice.total == alice.total_possible == 7
    assert bob.scores["q1"] < bob.possible["q1"]
    assert bob.scores["q2"] == 0
    assert bob.scores["q3"] == 0
    notes = " ".join(bob.notes)
    assert "ZeroDivisionError" in notes
    assert "CellTimeout" in notes
    assert "q1:" in notes and "q2:" in notes and "q3:" in notes

    rows = list(csv.DictReader((subs / "grades.csv").open()))
    assert [r["submission"] for r in rows] == ["alice.ipynb", "bob.ipynb"]
    assert rows[0]["total"] == "7" and rows[0]["possible"] == "7"
    assert rows[1]["q2"] == "0" and rows[1]["q3"] == "0"
    assert "CellTimeout" in rows[1]["notes"]


def test_grading_a_folder_without_autograder_says_run_make_student(tmp_path):
    sub = tmp_path / "s"
    sub.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"odtlab": {"lab": "lab00_welcome"}})
    nbformat.write(nb, sub / "x.ipynb")
    with pytest.raises(GradingError, match="make student"):
        grade_folder(sub, dist_dir=tmp_path / "nowhere")


def test_a_notebook_that_is_not_json_is_reported_not_fatal(assigned, tmp_path):
    lab = assigned["lab00_welcome"]
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    grade = grade_submission(broken, lab.autograder_zip, lab=lab.name)
    assert grade.total == 0
    assert grade.notes and "could not be graded" in grade.notes[0]
    assert json.loads(json.dumps(grade.notes))  # notes are plain strings
