"""Where the public tests of each lab live.

The lab notebooks call ``otter.Notebook(tests_dir=public_tests_dir("lab01_memory_wall"))``
so that ``grader.check("q1")`` works the same in a clone of the repository and
in Google Colab, where the notebook arrives alone: the public tests ship inside
the ``odtlab`` package. They are generated from the lab's master notebook by
``make student`` (see :mod:`odtlab.grading.assign`); hidden tests never ship.
"""

from __future__ import annotations

from pathlib import Path

from odtlab.errors import GradingError

__all__ = ["PUBLIC_TESTS_ROOT", "public_tests_dir", "labs_with_public_tests"]

PUBLIC_TESTS_ROOT = Path(__file__).resolve().parent / "public_tests"


def labs_with_public_tests() -> list[str]:
    """Names of the labs whose public tests ship with this version of odtlab."""
    if not PUBLIC_TESTS_ROOT.is_dir():
        return []
    return sorted(p.name for p in PUBLIC_TESTS_ROOT.iterdir() if p.is_dir() and any(p.glob("*.py")))


def public_tests_dir(lab: str) -> Path:
    """Folder of the public otter tests of ``lab`` (e.g. ``"lab00_welcome"``).

    Raises
    ------
    GradingError
        If no public tests ship for that lab; the message lists the labs that have them.

    Examples
    --------
    >>> public_tests_dir("lab00_welcome").name
    'lab00_welcome'
    """
    path = PUBLIC_TESTS_ROOT / lab
    if not path.is_dir():
        known = ", ".join(labs_with_public_tests()) or "none"
        raise GradingError(
            f"No public tests for lab {lab!r}. Labs with tests: {known}. "
            "If you are an instructor who added a lab, run `make student` to generate them."
        )
    return path
