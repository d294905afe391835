"""The ``odtlab`` command.

Subcommands
-----------
``odtlab student``
    Build the student version, public tests and autograder zip of every lab
    (what ``make student`` runs).
``odtlab grade FOLDER``
    Grade every submitted notebook in FOLDER and write ``grades.csv``
    (what ``make grade SUBMISSIONS=FOLDER`` runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from odtlab.errors import OdtlabError

__all__ = ["main", "build_parser"]


def _cmd_student(args: argparse.Namespace) -> int:
    from odtlab.grading import build_student_versions

    for lab in build_student_versions(args.labs, args.dist, config=args.config, sync=not args.no_sync):
        print(f"{lab.name}: student notebook {lab.student_notebook}")
        print(f"{' ' * len(lab.name)}  autograder      {lab.autograder_zip}")
    if not args.no_sync:
        print(f"Refreshed {args.labs}/student/ and the packaged public tests.")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from odtlab.grading import grade_folder

    out = Path(args.out) if args.out else Path(args.submissions) / "grades.csv"
    grades = grade_folder(
        args.submissions, dist_dir=args.dist, lab=args.lab, out_csv=out,
        cell_timeout=args.cell_timeout,
    )  # fmt: skip
    for g in grades:
        print(f"{g.submission:40s} {g.lab:24s} {g.total:g}/{g.total_possible:g}")
        for note in g.notes:
            print(f"    {note}")
    print(f"Wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``odtlab`` command."""
    parser = argparse.ArgumentParser(
        prog="odtlab", description="Tools of the on-device training course."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("student", help="build student notebooks and autograder zips of the labs")
    p.add_argument("--labs", default="labs", help="folder of master notebooks (default: labs)")
    p.add_argument("--dist", default="dist", help="output folder (default: dist)")
    p.add_argument("--config", default="_config.yml", help="book config with repository.url")
    p.add_argument("--no-sync", action="store_true", help="do not refresh labs/student/")
    p.set_defaults(func=_cmd_student)

    p = sub.add_parser("grade", help="grade a folder of submitted notebooks into one CSV")
    p.add_argument("submissions", help="folder of .ipynb submissions")
    p.add_argument("--lab", default=None, help="lab name; default: read from each notebook")
    p.add_argument("--dist", default="dist", help="where `odtlab student` wrote the zips")
    p.add_argument("--out", default=None, help="CSV path (default: SUBMISSIONS/grades.csv)")
    p.add_argument("--cell-timeout", type=int, default=120, help="seconds per cell (default 120)")
    p.set_defaults(func=_cmd_grade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``odtlab`` command; errors of odtlab print as one clear line."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except OdtlabError as exc:
        print(f"odtlab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
