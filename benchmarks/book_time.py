"""How long does the book take to execute? One line per notebook, then the totals.

The course promises a book that builds in minutes on a laptop, so each notebook
has a budget on 2 CPU cores:

* each chapter (``chapters/*.md`` executed by the book build): at most 40 s;
* each master lab (``labs/*.ipynb``, not ``labs/student``): at most 60 s.

Chapters are read from the book build's execution cache (jupyter-cache in
``_build/.jupyter_cache``): the seconds myst-nb measured when it last executed
each chapter. A chapter whose current source has no cached execution (never
built, or edited since) is marked ``stale`` and its seconds are those of the
newest execution of an earlier version; build the book first
(``jupyter-book build .``) to refresh. Master labs are executed here, each once,
with ``nbclient`` (kernel ``python3``, working directory ``labs/``); their stored
outputs are left untouched.

Output, one line per notebook, then the totals::

    chapters/ch00_why_on_device.md: seconds=4.21
    ...
    chapters: total_seconds=...
    labs/lab00_welcome.ipynb: seconds=9.80
    ...
    labs: total_seconds=...

A notebook over its budget is marked ``OVER BUDGET`` and the script exits with
status 1. Nothing is downloaded; the labs seed their own randomness, and the
kernel gets ``PYTHONHASHSEED=0``.

Run: ``python benchmarks/book_time.py [--chapters-only | --labs-only]``
(the labs take up to a minute each on 2 CPU cores). ``--execute`` executes the
chapters here instead of reading the cache (the same kernel and method as the
labs, without a book build); ``--cells S`` lists, under each executed notebook,
its cells slower than ``S`` seconds, to find where the time goes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
CHAPTER_BUDGET_S = 40.0
LAB_BUDGET_S = 60.0


def chapter_paths() -> list[Path]:
    """The executed chapters, in name order (``ch*.md``: the pages with code)."""
    return sorted((ROOT / "chapters").glob("ch*.md"))


def lab_paths() -> list[Path]:
    """The master labs (``labs/*.ipynb``; the student copies are not executed)."""
    return sorted((ROOT / "labs").glob("*.ipynb"))


def chapter_seconds(cache_path: Path = CACHE) -> dict[Path, tuple[float | None, bool]]:
    """Execution seconds of each chapter from the jupyter-cache of the book build.

    Returns ``{path: (seconds, fresh)}``: ``seconds`` is ``None`` when the chapter
    was never executed into this cache; ``fresh`` is False when the cached
    execution is of an earlier version of the chapter's source.
    """
    from jupyter_cache import get_cache

    paths = chapter_paths()
    found: dict[Path, tuple[float | None, bool]] = {p: (None, False) for p in paths}
    if not cache_path.exists():
        return found
    cache = get_cache(str(cache_path))
    newest: dict[str, object] = {}
    for record in cache.list_cache_records():
        uri = str(Path(record.uri).resolve())
        if uri not in newest or record.created > newest[uri].created:  # type: ignore[attr-defined]
            newest[uri] = record
    for path in paths:
        uri = str(path.resolve())
        fresh_record = None
        try:
            fresh_record = cache.get_cached_project_nb(uri)
        except Exception:  # not in the project (never built): no fresh record
            fresh_record = None
        record = fresh_record or newest.get(uri)
        if record is None:
            continue
        seconds = record.data.get("execution_seconds")  # type: ignore[attr-defined]
        found[path] = (None if seconds is None else float(seconds), fresh_record is not None)
    return found


def execute(path: Path, timeout_s: int = 600) -> tuple[float, list[tuple[float, str]]]:
    """Execute one notebook with nbclient in its own folder; its stored outputs are untouched.

    ``.md`` chapters are read with jupytext (as the book build reads them).
    Returns the wall-clock seconds and, per code cell, ``(seconds, first line)``.
    """
    import nbformat
    from nbclient import NotebookClient

    os.environ.setdefault("PYTHONHASHSEED", "0")
    if path.suffix == ".md":
        import jupytext

        nb = jupytext.read(path)
    else:
        nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout_s,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    cells = []
    for cell in nb.cells:
        timing = cell.metadata.get("execution", {})
        began, ended = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if cell.cell_type == "code" and began and ended:
            elapsed = (_when(ended) - _when(began)).total_seconds()
            cells.append((elapsed, (cell.source.splitlines() or [""])[0][:70]))
    return seconds, cells


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _line(path: Path, seconds: float | None, budget: float, note: str = "") -> tuple[str, bool]:
    rel = path.relative_to(ROOT).as_posix()
    if seconds is None:
        return f"{rel}: seconds=nan (not executed{note})", False
    over = seconds > budget
    mark = f" OVER BUDGET ({budget:g} s)" if over else ""
    return f"{rel}: seconds={seconds:.2f}{note}{mark}", over


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--chapters-only", action="store_true", help="only read the chapters' times")
    only.add_argument("--labs-only", action="store_true", help="only execute the master labs")
    parser.add_argument("--cache", type=Path, default=CACHE, help="the jupyter-cache folder")
    parser.add_argument(
        "--execute",
        action="store_true",
        help="execute the chapters here instead of reading the cache",
    )
    parser.add_argument(
        "--cells", type=float, metavar="S", help="also list the cells slower than S seconds"
    )
    parser.add_argument(
        "only", nargs="*", help="only the notebooks whose path contains one of these words"
    )
    args = parser.parse_args(argv)

    def wanted(path: Path) -> bool:
        return not args.only or any(word in path.as_posix() for word in args.only)

    def run(path: Path) -> float:
        seconds, cells = execute(path)
        for elapsed, first_line in cells:
            if args.cells is not None and elapsed >= args.cells:
                print(f"    {elapsed:7.2f} s  {first_line}", flush=True)
        return seconds

    failed = False
    if not args.labs_only:
        total = 0.0
        if args.execute:
            found = {p: (run(p), True) for p in chapter_paths() if wanted(p)}
        else:
            found = {p: v for p, v in chapter_seconds(args.cache).items() if wanted(p)}
        for path, (seconds, fresh) in found.items():
            note = "" if fresh or seconds is None else " stale"
            line, over = _line(path, seconds, CHAPTER_BUDGET_S, note)
            failed |= over or seconds is None
            total += seconds or 0.0
            print(line, flush=True)
        print(f"chapters: total_seconds={total:.2f}", flush=True)
    if not args.chapters_only:
        total = 0.0
        for path in filter(wanted, lab_paths()):
            seconds = run(path)
            line, over = _line(path, seconds, LAB_BUDGET_S)
            failed |= over
            total += seconds
            print(line, flush=True)
        print(f"labs: total_seconds={total:.2f}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
