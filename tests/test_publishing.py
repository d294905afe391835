"""Publishing the course: the Binder/conda environment, the syllabus, no leaked solutions,
and a fresh install the way a lab's Colab cell does it.

- ``environment.yml`` (Binder, conda) carries every runtime, book and lab
  dependency of ``pyproject.toml`` with the same pin, torch pinned exactly as
  the Makefile installs it, and what Binder needs to open the MyST chapters as
  notebooks (jupytext, myst-nb for ``glue``).
- The syllabus page agrees with the chapters: the objectives are those of each
  chapter's "What you will learn" box, the reading times are the words at 200
  a minute.
- No solution line, solution marker or hidden test reaches the student
  notebooks, the public tests shipped in the package, or the built book.
- A fresh virtual environment installs odtlab with the Colab cell's pip
  command (pointed at this checkout, offline) and runs lab 0 there.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_book import _solution_lines
from test_browser import LAUNCH, PAGES, _is_text_notebook

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
MASTERS = sorted((ROOT / "labs").glob("lab*.ipynb"))
STUDENTS = sorted((ROOT / "labs" / "student").glob("lab*.ipynb"))


# ---- environment.yml in step with pyproject.toml ---------------------------------------------


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment_requirements() -> dict[str, Requirement]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    reqs = [Requirement(line) for line in pip if not line.startswith("-")]
    return {canonicalize_name(r.name): r for r in reqs}


def _makefile_torch() -> Requirement:
    match = re.search(r"^TORCH\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile no longer sets TORCH := torch==..."
    return Requirement(match[1])


def test_environment_yml_pins_every_runtime_book_and_lab_dependency_like_pyproject():
    project = _pyproject()["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    extras, seen = ["book", "lab"], set()
    while extras:  # an extra may pull another (book -> trust): follow the odtlab[...] references
        extra = extras.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in map(Requirement, project["optional-dependencies"][extra]):
            if canonicalize_name(r.name) == "odtlab":
                extras += sorted(r.extras)
            else:
                wanted.append(r)
    env = _environment_requirements()
    torch = _makefile_torch()
    problems = []
    for req in wanted:
        name = canonicalize_name(req.name)
        if name not in env:
            problems.append(f"{req} (pyproject) is missing from environment.yml")
        elif name == "torch":
            if str(env[name].specifier) != str(torch.specifier):
                problems.append(f"environment.yml pins {env[name]}, the Makefile installs {torch}")
            pinned = next(iter(torch.specifier)).version
            if not req.specifier.contains(pinned):
                problems.append(f"the Makefile's {torch} is outside pyproject's {req}")
        elif env[name].specifier != req.specifier:
            problems.append(f"environment.yml has {env[name]}, pyproject {req}")
    assert not problems, "\n".join(problems)


def test_binder_opens_the_chapters_as_notebooks():
    env = _environment_requirements()
    # chapters glue numbers into the prose with myst_nb; jupytext reads their MyST markdown
    assert {"myst-nb", "jupytext", "ipykernel"} <= env.keys()
    post = (ROOT / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post
    assert re.search(r"jupytext-config set-default-viewer.*\bmarkdown\b", post)
    toc = (ROOT / "_toc.yml").read_text()
    for chapter in sorted((ROOT / "chapters").glob("*.md")):
        text = chapter.read_text()
        if "{code-cell}" in text:  # an executed chapter, with launch buttons
            front = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
            assert front and "jupytext:" in front[1] and "kernelspec:" in front[1], (
                f"{chapter.name} runs code but is not a jupytext notebook: Binder would open it as text"
            )
            assert f"chapters/{chapter.stem}" in toc


def test_built_launch_buttons_open_what_colab_and_binder_can_open():
    """The browser test follows the same rule; this one needs no Chromium."""
    if not (HTML / "index.html").is_file():
        pytest.skip("the book is not built: run `make book` (make test builds it first)")
    problems, seen = [], {"colab": 0, "binder": 0}
    for page in PAGES:
        hrefs = re.findall(r'href="([^"]+)"', (HTML / f"{page}.html").read_text())
        for match in filter(None, (LAUNCH.search(h.replace("&amp;", "&")) for h in hrefs)):
            kind = "colab" if match["colab"] else "binder"
            seen[kind] += 1
            target = match[kind]
            if not (ROOT / target).is_file():
                problems.append(f"{page}: {kind} opens {target}, not in the repository")
            if page.startswith("labs/") and target != f"{page}.ipynb":
                problems.append(f"{page}: {kind} opens {target}, not the page's student notebook")
            if kind == "colab" and not target.endswith(".ipynb"):
                problems.append(f"{page}: Colab opens {target}, but Colab opens only notebooks")
            if kind == "binder" and not (target.endswith(".ipynb") or _is_text_notebook(target)):
                problems.append(f"{page}: Binder opens {target}, which is not a notebook")
    assert seen["colab"] and seen["binder"], seen
    assert not problems, "\n".join(problems)


# ---- the syllabus agrees with the chapters ---------------------------------------------------


def prose_words(path: Path) -> int:
    """Words a reader reads: the markdown prose, without front matter, code cells and fences.

    This is the count the syllabus's reading times are made from (200 words a minute).
    """
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(), flags=re.DOTALL)
        text = re.sub(r"^```\{code-cell\}.*?^```[ \t]*$", "", text, flags=re.DOTALL | re.MULTILINE)
    text = re.sub(r"^(```.*|:[\w-]+:.*)$", "", text, flags=re.MULTILINE)
    return len(text.split())


def _objectives(text: str) -> str:
    match = re.search(r"```\{admonition\} What you will learn\n:class: tip\n\n(.*?)\n```", text, re.DOTALL)
    assert match, "no 'What you will learn' admonition"
    return match[1].strip()


def test_syllabus_objectives_and_reading_times_agree_with_the_chapters():
    syllabus = (ROOT / "chapters" / "syllabus.md").read_text()
    assert "chapters/syllabus" in (ROOT / "_toc.yml").read_text()
    problems = []
    for chapter in sorted((ROOT / "chapters").glob("ch*.md")):
        text = chapter.read_text()
        if f"<{chapter.stem}>`" not in syllabus:
            problems.append(f"{chapter.stem} is not in the syllabus")
            continue
        if _objectives(text) not in syllabus:
            problems.append(f"the objectives of {chapter.stem} differ from its 'What you will learn'")
        row = re.search(rf"<{chapter.stem}>` \| ([\d,]+) \| (\d+) min \|", syllabus)
        if not row:
            problems.append(f"no words/reading-time row for {chapter.stem}")
            continue
        words = prose_words(chapter)
        # chapters keep being edited: a stale figure is tolerated within 15% (or a minute)
        stated = int(row[2])
        if abs(stated - math.ceil(words / 200)) > max(1, 0.15 * stated):
            problems.append(f"{chapter.stem}: {words} words now, the syllabus says {stated} min")
    for lab in re.findall(r"</labs/student/(lab\w+)>`", syllabus):
        if not (ROOT / "labs" / "student" / f"{lab}.ipynb").is_file():
            problems.append(f"the syllabus links a lab that does not exist: {lab}")
    assert "200 words" in syllabus and "estimate" in syllabus
    assert not problems, "\n".join(problems)


# ---- no solution or hidden test is published -------------------------------------------------

MARKERS = re.compile(r"#\s*(BEGIN|END) SOLUTION|#\s*SOLUTION\b|^\s*#\s*HIDDEN\b|#\s*BEGIN TESTS", re.M)


def _hidden_test_lines(master: Path) -> list[str]:
    """Lines of a master's hidden test cells that no public test cell shares (30+ characters)."""
    hidden, public = set(), set()
    for cell in json.loads(master.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code":
            continue
        lines = {line.strip() for line in source.splitlines() if len(line.strip()) >= 30}
        (hidden if source.lstrip().startswith("# HIDDEN") else public).update(lines)
    return sorted(hidden - public)


@pytest.fixture(scope="module")
def secrets() -> dict[str, list[str]]:
    """Per lab: its solution lines (12+ characters) and its hidden test lines."""
    return {m.stem: _solution_lines(m) + _hidden_test_lines(m) for m in MASTERS}


def test_student_notebooks_and_public_tests_hold_no_solution_or_hidden_test(secrets):
    assert [s.name for s in STUDENTS] == [m.name for m in MASTERS]
    assert all(_hidden_test_lines(m) for m in MASTERS), "a lab without hidden tests?"
    problems = []
    public_root = ROOT / "odtlab" / "grading" / "public_tests"
    for student in STUDENTS:
        cells = json.loads(student.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells)
        outputs = json.dumps([c.get("outputs", []) for c in cells])
        for marker in MARKERS.finditer(code):
            problems.append(f"{student.name}: otter marker {marker[0]!r} left in")
        shipped = "\n".join(p.read_text() for p in (public_root / student.stem).glob("*.py"))
        for secret in secrets[student.stem]:
            for where, text in (("cells", code), ("outputs", outputs), ("public tests", shipped)):
                if secret in text:
                    problems.append(f"{student.name} {where}: {secret!r}")
        if "'hidden': True" in shipped or '"hidden": true' in shipped.lower():
            problems.append(f"public tests of {student.stem} ship a hidden case")
    assert not problems, "\n".join(problems)


def test_built_book_holds_no_solution_or_hidden_test(secrets):
    if not (HTML / "index.html").is_file():
        pytest.skip("the book is not built: run `make book` (make test builds it first)")
    # masters are never built (only the toc's student copies are)
    assert not list((HTML / "labs").glob("lab*.html"))
    everything = [s for lab in secrets.values() for s in lab]
    problems = []
    for path in sorted(HTML.rglob("*")):
        if path.suffix not in {".html", ".ipynb", ".md", ".txt", ".py"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        rel = path.relative_to(HTML)
        lab_page = rel.parts[:2] == ("labs", "student") or "labs/student" in str(rel)
        if lab_page:
            # the instructors page may show otter's markers in an example, a lab page never
            problems += [f"{rel}: otter marker {m[0]!r}" for m in MARKERS.finditer(text)]
        lab = next((s for s in secrets if s in rel.name), None)
        # on a lab's own page every secret; elsewhere the ones specific enough (30+ chars)
        for secret in secrets[lab] if lab else []:
            if secret in text:
                problems.append(f"{rel}: {secret!r}")
        for secret in (s for s in everything if len(s) >= 30):
            if secret in text and f"{rel}: {secret!r}" not in problems:
                problems.append(f"{rel}: {secret!r}")
    assert not problems, "\n".join(problems[:30])


# ---- a fresh install the Colab way, then lab 0 -----------------------------------------------


def _colab_requirement(notebook: Path) -> str:
    """The requirement the lab's Colab set-up cell passes to pip (``odtlab[lab] @ git+...``)."""
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "google.colab" in source:
            match = re.search(r'"pip", "install", "-q", "([^"]+)"', source)
            assert match, "the Colab cell's pip command changed: update this test"
            return match[1]
    raise AssertionError(f"{notebook.name} has no Colab set-up cell")


RUN_LAB = r"""
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells.append(nbformat.v4.new_code_cell("import odtlab, sys; print('ODTLAB', odtlab.__file__); print('PREFIX', sys.prefix)"))
NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print(nb.cells[-1].outputs[0]["text"])
"""


@pytest.mark.slow
def test_fresh_venv_installs_odtlab_like_the_colab_cell_and_runs_lab0(tmp_path):
    """A new venv, odtlab installed by the Colab cell's pip command, lab 0 run in it.

    Offline, the third-party packages come from this project's venv through a
    ``.pth`` file (they are what Colab preinstalls or pip would fetch); odtlab
    itself is built and installed from a copy of this checkout, exactly the
    requirement of the Colab cell with ``git+URL`` replaced by the copy's path,
    with ``--no-deps --no-build-isolation`` (no index, no network). The lab runs
    from a folder outside the repository, so ``import odtlab`` can only find the
    venv's installed copy.
    """
    import site
    import venv

    deps = [p for p in site.getsitepackages() if p.endswith("site-packages")]
    if not deps or not Path(deps[0], "nbclient").is_dir():
        pytest.skip("this interpreter's site-packages has no nbclient to lend the venv")
    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(fresh)
    python = fresh / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # appended after the venv's own site-packages: the venv's odtlab comes first; the
    # project's editable odtlab is NOT visible (.pth files of that folder are not run)
    Path(purelib, "zz_project_deps.pth").write_text(deps[0] + "\n")

    source = _mkdir(tmp_path / "src")  # the files the package build reads, as in a git clone
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "odtlab", source / "odtlab", ignore=shutil.ignore_patterns("__pycache__"))

    requirement = _colab_requirement(ROOT / "labs" / "lab00_welcome.ipynb")
    assert re.fullmatch(r"odtlab\[lab\] @ git\+https://\S+", requirement)
    local = requirement.split(" @ ")[0] + f" @ {source.as_uri()}"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env["PIP_NO_INDEX"] = "1"
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-compile", local],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr

    work = _mkdir(tmp_path / "colab")  # outside the repository, like /content in Colab
    notebook = shutil.copy(ROOT / "labs" / "lab00_welcome.ipynb", work / "lab00_welcome.ipynb")
    run = subprocess.run(
        [python, "-c", RUN_LAB, str(notebook), str(work)],
        capture_output=True, text=True, env=env, cwd=work, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    where = Path(re.search(r"ODTLAB (\S+)", run.stdout)[1]).resolve()
    assert Path(re.search(r"PREFIX (\S+)", run.stdout)[1]).resolve() == fresh.resolve()
    assert where.is_relative_to(Path(purelib).resolve()), f"odtlab imported from {where}"
    assert not where.is_relative_to(ROOT)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- GitHub Pages ----------------------------------------------------------------------------


def test_pages_workflow_builds_with_the_readmes_command_and_deploys_the_html():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    assert "make book" in (ROOT / "README.md").read_text()
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert build["runs-on"].startswith("ubuntu")
    steps = build["steps"]
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(python["with"]["python-version"]) == "3.11"
    assert any(s.get("run", "").strip() == "make book" for s in steps)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
