"""otter-grader end to end: student versions, public tests, and local autograding.

These tests run ``otter assign`` on every lab and ``otter run`` on a few
submissions (about 10 s each, two at a time), so they are marked slow.
"""

from __future__ import annotations

import ast
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
    grader,
    lab_of,
    public_tests_dir,
    short_message,
    write_samples,
)
from odtlab.grading.assign import _clean_student_notebook, repository_url

ROOT = Path(__file__).resolve().parents[1]
MASTERS = find_masters(ROOT / "labs")

pytestmark = pytest.mark.slow


class _Assigned(dict):
    """Lab name -> its otter assignment, made the first time a test asks for it.

    The per-lab tests are split over two files (this one and test_grading_labs.py, half of
    the labs each) so that the two test workers share the grading; each worker then assigns
    only the labs it grades. `otter assign` is told not to run the solutions: the tests
    grade each solution themselves, with `otter run`.
    """

    def __init__(self, out: Path):
        super().__init__()
        self.out = out

    def __missing__(self, stem: str):
        lab = assign_lab(ROOT / "labs" / f"{stem}.ipynb", self.out / stem, check_solutions=False)
        self[stem] = lab
        return lab


@pytest.fixture(scope="module")
def assigned(tmp_path_factory):
    return _Assigned(tmp_path_factory.mktemp("dist"))


# The labs whose per-lab tests run in this file; test_grading_labs.py takes the others.
HERE = MASTERS[0::2]


def pytest_generate_tests(metafunc):
    if "master" in metafunc.fixturenames:
        labs = getattr(metafunc.module, "HERE", HERE)
        metafunc.parametrize("master", labs, ids=[p.stem for p in labs])


def _solution_notebook(lab) -> Path:
    """otter's autograder notebook: the solution version, with check cells."""
    return lab.autograder_zip.parent / "autograder" / lab.student_notebook.name


def test_committed_student_version_and_public_tests_are_up_to_date(master, assigned, tmp_path):
    lab = assigned[master.stem]
    fresh = tmp_path / "student.ipynb"
    _clean_student_notebook(lab.student_notebook, fresh)
    committed = ROOT / "labs" / "student" / master.name
    assert committed.is_file(), f"missing {committed}: run `make student`"
    assert fresh.read_text() == committed.read_text(), f"{committed} is stale: run `make student`"
    cmp = filecmp.dircmp(lab.public_tests, public_tests_dir(master.stem))
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files), "run `make student`"


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


def test_colab_install_cell_uses_the_configured_repository(master):
    url = repository_url(ROOT / "_config.yml")
    text = master.read_text()
    assert f"odtlab[lab] @ git+{url}" in text


def test_solution_scores_full_marks_and_student_version_scores_zero(master, assigned):
    lab = assigned[master.stem]
    solved = grade_submission(_solution_notebook(lab), lab.autograder_zip, lab=lab.name)
    assert solved.total_possible > 0
    assert solved.total == solved.total_possible, solved.notes
    blank = grade_submission(lab.student_notebook, lab.autograder_zip, lab=lab.name)
    assert blank.possible == solved.possible
    assert blank.total == 0, blank.scores


# What the five sample submissions of lab 0 score (odtlab.grading.SAMPLES says what each does):
# a loop or an exception inside param_bytes costs only the q2 test that calls it (1 point), a
# loop at the top level only q3, the question whose answer cell never ends.
SAMPLE_SCORES = {
    "all_wrong.ipynb": {"q1": 0, "q2": 0, "q3": 0},
    "correct.ipynb": {"q1": 2, "q2": 3, "q3": 2},
    "exception.ipynb": {"q1": 2, "q2": 2, "q3": 2},
    "loop_in_function.ipynb": {"q1": 2, "q2": 2, "q3": 2},
    "top_level_loop.ipynb": {"q1": 2, "q2": 3, "q3": 0},
}
# The CSV the instructors' page shows; refresh it with
#   odtlab samples s/ && odtlab grade s/ --jobs 2 --cell-timeout 10 --test-timeout 5 \
#     --out labs/samples/lab00_welcome_grades.csv
SAMPLE_CSV = ROOT / "labs" / "samples" / "lab00_welcome_grades.csv"


def test_sample_submissions_get_fair_scores_and_notes(assigned, tmp_path):
    lab = assigned["lab00_welcome"]
    subs = tmp_path / "submissions"
    write_samples(lab.autograder_zip.parent, subs)
    grades = grade_folder(
        subs, dist_dir=lab.autograder_zip.parent.parent, cell_timeout=10, test_timeout=5,
        jobs=2, progress=False,
    )  # fmt: skip
    by_name = {g.submission: g for g in grades}
    assert {name: g.scores for name, g in by_name.items()} == SAMPLE_SCORES
    assert all(g.total_possible == 7 for g in grades)
    notes = {name: " | ".join(g.notes) for name, g in by_name.items()}
    assert notes["correct.ipynb"] == ""
    assert "TimeoutError" in notes["loop_in_function.ipynb"]
    assert "KeyError" in notes["exception.ipynb"]
    assert "CellTimeout" in notes["top_level_loop.ipynb"]
    # every lost point comes with the failed test's own message, one line each
    assert all(note.startswith("q") and "\n" not in note for g in grades for note in g.notes)
    assert notes["all_wrong.ipynb"].count("AssertionError: ") == 3

    fresh = (subs / "grades.csv").read_text()
    rows = list(csv.DictReader(fresh.splitlines()))
    assert [r["submission"] for r in rows] == sorted(SAMPLE_SCORES)
    assert [r["q2"] for r in rows] == ["0", "3", "2", "2", "3"]
    assert SAMPLE_CSV.read_text() == fresh, f"{SAMPLE_CSV} is stale: refresh it (see SAMPLE_CSV)"


def test_points_come_from_hidden_tests_of_the_value_and_each_says_what_to_fix(master, assigned):
    tests = sorted((assigned[master.stem].autograder_zip.parent / "autograder" / "tests").glob("*.py"))
    assert tests
    for path in tests:
        spec: dict = {}
        exec(path.read_text(), spec)
        cases = spec["test"]["suites"][0]["cases"]
        points = spec["test"]["points"]
        assert isinstance(points, list) and len(points) == len(cases), path.name
        for case, pts in zip(cases, points, strict=True):
            code = "\n".join(line[4:] for line in case["code"].splitlines() if line[:4] in (">>> ", "... "))
            asserts = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Assert)]
            assert asserts, f"{master.stem} {path.stem}: a test without an assert"
            assert all(a.msg is not None for a in asserts), f"{master.stem} {path.stem}: {code}"
            if case["hidden"]:
                assert pts > 0, f"{master.stem} {path.stem}: a hidden test worth no points"
            else:
                assert pts == 0, f"{master.stem} {path.stem}: public checks are hints, worth 0"
        assert sum(points) > 0


def test_a_failed_check_prints_one_line_and_catches_the_typical_wrong_answer(tmp_path, monkeypatch):
    import torch
    from torch import nn

    import odtlab as odt

    monkeypatch.chdir(tmp_path)  # otter writes its log next to the notebook
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    batch = (torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    right = odt.memory.saved_activation_bytes(model, batch)
    logits_only = 16 * 64 * 4 + 16 * 32 * 4 + 16 * 10 * 4
    assert logits_only == 6784 and right > logits_only

    check = grader("lab01_memory_wall").check
    forgot_targets = check("q1", {"act_bytes": logits_only})
    assert not forgot_targets.passed
    assert str(forgot_targets).startswith("q1: not yet. ")
    assert "\n" not in str(forgot_targets) and "loss" in str(forgot_targets)
    assert str(right) not in str(forgot_targets)
    twice = check("q1", {"act_bytes": right + 16 * 32 * 4})
    assert "counted twice" in str(twice) and "\n" not in str(twice)
    assert check("q1", {"act_bytes": right}).passed

    lab0 = grader("lab00_welcome").check
    assert "weight matrix alone" in str(lab0("q1", {"linear_bytes": 4 * 64 * 10}))
    assert lab0("q1", {"linear_bytes": 4 * (64 * 10 + 10)}).passed
    assert "q1: the checks pass" in repr(lab0("q1", {"linear_bytes": 4 * (64 * 10 + 10)}))
    every = str(grader("lab00_welcome").check_all())  # nothing answered here: a line a question
    assert [line[:13] for line in every.splitlines()] == [f"q{i}: not yet. " for i in (1, 2, 3)]
    assert "NameError" in every


def test_short_message_keeps_the_line_that_says_what_is_wrong():
    trace = "Failed example:\n    f()\nTraceback (most recent call last):\n  File x\nKeyError: 'a'\n"
    assert short_message(trace) == "KeyError: 'a'"
    assert short_message("AssertionError") == "AssertionError: a check failed (the test gives no message)"
    assert short_message("builtins.TimeoutError: too slow") == "TimeoutError: too slow"


def test_grade_command_takes_jobs_and_a_test_timeout():
    from odtlab.cli import build_parser

    args = build_parser().parse_args(["grade", "subs", "--jobs", "2", "--test-timeout", "7"])
    assert (args.jobs, args.test_timeout, args.cell_timeout) == (2, 7, 120)
    with pytest.raises(GradingError, match="jobs"):
        grade_folder(ROOT / "labs" / "student", jobs=0)


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
