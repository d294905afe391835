"""Student versions of the labs, built from the master notebooks with otter-grader.

The lab sources in ``labs/`` are otter *master* notebooks: they hold the
solutions, between ``# BEGIN SOLUTION`` / ``# END SOLUTION`` markers, and the
tests, between ``# BEGIN TESTS`` / ``# END TESTS`` (``# HIDDEN`` marks the tests
that only the instructor's autograder runs). ``otter assign`` turns one master
into

* a *student* notebook, with the solutions replaced by ``...``;
* the *public* tests that ``grader.check("q1")`` runs for the student;
* an *autograder* zip with every test, used by :mod:`odtlab.grading.autograde`.

:func:`build_student_versions` runs it over every lab, writes everything to
``dist/<lab>/`` and, with ``sync=True``, refreshes the two copies that live in
the repository: the student notebooks in ``labs/student/`` (what the book and
its Colab links show; solutions are never published) and the public tests in
``odtlab/grading/public_tests/<lab>/`` (so that ``grader.check`` also works in
Colab, where the notebook arrives alone and ``pip install odtlab`` brings the
tests).

Before assigning, the Colab set-up cell of every master is rewritten from the
single ``repository.url`` setting of ``_config.yml``, so that changing the
repository in one place changes every lab.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from odtlab.errors import GradingError
from odtlab.grading.public_tests import PUBLIC_TESTS_ROOT

__all__ = [
    "AssignedLab",
    "assign_lab",
    "build_student_versions",
    "find_masters",
    "repository_url",
    "sync_setup_cells",
]

_INSTALL_RE = re.compile(r"odtlab\[lab\] @ git\+[^\"']+")


@dataclass(frozen=True)
class AssignedLab:
    """The files that ``otter assign`` made for one lab.

    Attributes
    ----------
    name : str
        Lab name, the master notebook's file name without ``.ipynb``.
    student_notebook : Path
        The notebook to hand out, solutions removed.
    public_tests : Path
        Folder of the public tests (``q1.py``, ...).
    autograder_zip : Path
        Everything ``otter run`` needs to grade a submission, hidden tests included.
    """

    name: str
    student_notebook: Path
    public_tests: Path
    autograder_zip: Path


def find_masters(labs_dir: str | Path = "labs") -> list[Path]:
    """Master notebooks in ``labs_dir`` (``lab*.ipynb``, sorted; ``labs/student`` excluded)."""
    labs = sorted(Path(labs_dir).glob("lab*.ipynb"))
    if not labs:
        raise GradingError(
            f"No lab notebooks (lab*.ipynb) in {Path(labs_dir).resolve()}. "
            "Run this from the repository root or pass the labs folder."
        )
    return labs


def repository_url(config: str | Path = "_config.yml") -> str:
    """The repository URL, read from ``repository.url`` in the book's ``_config.yml``."""
    try:
        data = yaml.safe_load(Path(config).read_text())
        return str(data["repository"]["url"]).rstrip("/")
    except (OSError, KeyError, TypeError) as exc:
        raise GradingError(
            f"Cannot read repository.url from {config}: {exc}. "
            "The book's _config.yml must have a `repository:` section with a `url:`."
        ) from exc


def sync_setup_cells(masters: list[Path], url: str) -> list[Path]:
    """Point the Colab install line of every master at ``url``; return the files changed."""
    changed = []
    for path in masters:
        nb = json.loads(path.read_text())
        touched = False
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            new = _INSTALL_RE.sub(f"odtlab[lab] @ git+{url}", src)
            if new != src:
                cell["source"] = new.splitlines(keepends=True)
                touched = True
        if touched:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


def assign_lab(
    master: str | Path, out_dir: str | Path, *, check_solutions: bool = True
) -> AssignedLab:
    """Run ``otter assign`` on one master notebook, writing to ``out_dir``.

    With ``check_solutions`` (the default, what ``make student`` does) the
    solutions are checked against every test (public and hidden) while
    assigning, so a lab whose own solution fails its tests is refused.
    ``False`` skips that run of the notebook, for callers that grade the
    solution themselves (the test suite does, with ``otter run``).

    Raises
    ------
    GradingError
        If otter assign fails; the message carries otter's own output.
    """
    master = Path(master).resolve()
    out = Path(out_dir).resolve()
    if out.exists():
        shutil.rmtree(out)
    # A new lab's grader cell needs its public-tests folder to exist, even empty.
    (PUBLIC_TESTS_ROOT / master.stem).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "otter", "assign", str(master), str(out),
         *(() if check_solutions else ("--no-run-tests",))],  # fmt: skip
        capture_output=True,
        text=True,
        cwd=master.parent,
    )
    if proc.returncode != 0:
        raise GradingError(
            f"otter assign failed for {master.name} (exit {proc.returncode}). "
            f"Fix the master notebook and try again. Otter said:\n{proc.stdout}\n{proc.stderr}"
        )
    zips = sorted((out / "autograder").glob("*-autograder_*.zip"))
    if not zips:
        raise GradingError(f"otter assign made no autograder zip for {master.name} in {out}.")
    stable_zip = out / f"{master.stem}-autograder.zip"
    shutil.copyfile(zips[-1], stable_zip)
    return AssignedLab(
        name=master.stem,
        student_notebook=out / "student" / master.name,
        public_tests=out / "student" / "tests",
        autograder_zip=stable_zip,
    )


def _clean_student_notebook(src: Path, dst: Path) -> None:
    """Copy a student notebook with outputs cleared and stable cell ids.

    otter gives the cells it adds (the ``grader.check`` cells) random ids; the
    committed copy numbers every cell instead, so that rebuilding an unchanged
    lab gives an identical file.
    """
    nb = json.loads(src.read_text())
    for index, cell in enumerate(nb["cells"]):
        cell["id"] = f"cell-{index:03d}"
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def build_student_versions(
    labs_dir: str | Path = "labs",
    dist_dir: str | Path = "dist",
    *,
    config: str | Path = "_config.yml",
    sync: bool = True,
) -> list[AssignedLab]:
    """Build the student notebook, public tests and autograder zip of every lab.

    Parameters
    ----------
    labs_dir : path
        Folder of the master notebooks.
    dist_dir : path
        Output folder; ``dist/<lab>/`` holds otter's ``student/`` and
        ``autograder/`` folders and ``<lab>-autograder.zip``.
    config : path
        The book's ``_config.yml``, source of the repository URL.
    sync : bool
        Also refresh ``labs/student/<lab>.ipynb`` and the packaged public tests.
    """
    masters = find_masters(labs_dir)
    sync_setup_cells(masters, repository_url(config))
    built = []
    for master in masters:
        lab = assign_lab(master, Path(dist_dir) / master.stem)
        if sync:
            _clean_student_notebook(
                lab.student_notebook, Path(labs_dir) / "student" / f"{lab.name}.ipynb"
            )
            target = PUBLIC_TESTS_ROOT / lab.name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(lab.public_tests, target)
        built.append(lab)
    return built
