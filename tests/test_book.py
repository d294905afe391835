"""The built book: chapters executed, labs shown as student versions only.

`make test` (and `make book`) build the HTML into ``_build/html`` before pytest
runs; these tests read what was built. Run alone, without a build, the fixture
builds the book first (several minutes: every chapter executes once, then the
execution cache makes later builds quick).
"""

from __future__ import annotations

import html as html_lib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"


@pytest.fixture(scope="module")
def html() -> Path:
    if not (HTML / "index.html").is_file():
        book = Path(sys.executable).with_name("jupyter-book")
        done = subprocess.run([str(book), "build", str(ROOT)], capture_output=True, text=True)
        if done.returncode != 0 or not (HTML / "index.html").is_file():
            pytest.fail(f"building the book failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return HTML


def test_book_opens_on_the_course_and_links_chapter_zero(html):
    index = (html / "index.html").read_text()
    assert "chapters/intro.html" in index or "On-Device Training" in index
    intro = (html / "chapters" / "intro.html").read_text()
    assert "ch00_why_on_device.html" in intro


def test_chapter_zero_was_executed_with_output_and_a_figure(html):
    page = (html / "chapters" / "ch00_why_on_device.html").read_text()
    # printed by the code cell that counts MobileNetV2's parameters
    assert re.search(r"MobileNetV2: [\d,]+ parameters", page)
    assert "3,504,872" in page  # glued into the prose from the same computation
    assert re.search(r"<img[^>]+\.png", page), "the budget figure is missing"
    assert "stm32f746" in page


def _visible_text(page: str) -> str:
    """Text of an HTML page as a reader sees it (tags removed, entities decoded)."""
    return html_lib.unescape(re.sub(r"<[^>]+>", "", page))


def _solution_lines(master: Path) -> list[str]:
    """Code lines of a master notebook that otter removes from the student version."""
    lines, inside = [], False
    for cell in json.loads(master.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            stripped = line.strip()
            if stripped == "# BEGIN SOLUTION":
                inside = True
            elif stripped == "# END SOLUTION":
                inside = False
            elif inside or stripped.endswith("# SOLUTION"):
                code = stripped.removesuffix("# SOLUTION").strip()
                if len(code) > 12:  # long enough to be specific to the answer
                    lines.append(code)
    return lines


def test_lab_pages_show_the_student_version_without_solutions(html):
    masters = sorted((ROOT / "labs").glob("lab*.ipynb"))
    assert masters
    pages = {p: _visible_text(p.read_text()) for p in html.rglob("*.html")}
    for master in masters:
        lab_page = pages[html / "labs" / "student" / f"{master.stem}.html"]
        assert "grader.check" in lab_page and "..." in lab_page
        secrets = _solution_lines(master)
        assert secrets, f"no solution lines found in {master.name}"
        for secret in secrets:
            assert secret not in lab_page, f"solution line {secret!r} published in the lab page"
        # elsewhere, only lines long enough to be specific to the answer (a chapter may well
        # contain a generic line such as `loss.backward()`)
        for path, text in pages.items():
            for secret in (s for s in secrets if len(s) >= 30):
                assert secret not in text, f"solution line {secret!r} published in {path}"


def test_lab_pages_offer_a_colab_launch_button(html):
    page = (html / "labs" / "student" / "lab00_welcome.html").read_text()
    assert "colab.research.google.com/github/odtlab/odtlab/blob/main/labs/student/lab00_welcome.ipynb" in page


def test_bibliography_resolves_citations(html):
    page = (html / "chapters" / "ch00_why_on_device.html").read_text()
    assert "Cai" in page and "bibliography.html" in page
