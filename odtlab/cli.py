"""The ``odtlab`` command.

Subcommands
-----------
``odtlab devices``
    List the device presets and their training budgets.
``odtlab fit --model mobilenetv2 --resolution 224 --batch 8 --device rpi4``
    Measure the memory of one training step (on the ``meta`` device, nothing
    is allocated) and say whether it fits the device; exit code 1 if not.
``odtlab student``
    Build the student version, public tests and autograder zip of every lab
    (what ``make student`` runs).
``odtlab grade FOLDER --jobs 2``
    Grade every submitted notebook in FOLDER, two at a time, and write
    ``grades.csv`` with per-question scores and notes
    (what ``make grade SUBMISSIONS=FOLDER JOBS=2`` runs).
``odtlab samples FOLDER``
    Write five sample submissions of lab 0 (correct, all wrong, a loop at the
    top level, a loop in a function, an exception) to try the grader on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from odtlab.errors import OdtlabError

__all__ = ["main", "build_parser"]


def _cmd_devices(args: argparse.Namespace) -> int:
    from odtlab import devices

    if args.name:
        print(devices.get(args.name).summary())
        return 0
    print(f"{'name':16s} {'kind':9s} {'training memory':>16s} {'fp32 GMAC/s':>12s} {'int8 GMAC/s':>12s}")
    for name in devices.available():
        d = devices.get(name)
        print(
            f"{name:16s} {d.kind:9s} {devices.format_bytes(d.training_memory_bytes):>16s} "
            f"{d.macs_per_second['fp32'] / 1e9:12.3g} {d.macs_per_second['int8'] / 1e9:12.3g}"
        )
    print("\nDetails: odtlab devices NAME")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from odtlab import devices, memory, models
    from odtlab.errors import DoesNotFit

    profile = devices.get(args.device)  # unknown names fail here, listing the known ones
    model_kwargs = {} if args.classes is None else {"num_classes": args.classes}
    if args.width is not None:
        model_kwargs["width_mult"] = args.width
    net = models.build(args.model, device="meta", **model_kwargs)
    batch = models.example_batch(
        args.model, args.batch, resolution=args.resolution, device="meta", **model_kwargs
    )
    report = memory.profile_training(
        net, batch, optimizer=args.optimizer, accounting=args.accounting
    )
    print(report if args.layers else _summary(report))
    try:
        verdict = devices.check_fit(report, profile)
    except DoesNotFit as exc:
        print(f"\nDOES NOT FIT {profile.name}:\n{exc}")
        return 1
    print(f"\n{verdict}")
    return 0


def _summary(report) -> str:
    from odtlab.devices import format_bytes

    lines = [f"Training memory of one step ({report.accounting} accounting, {report.optimizer})"]
    for key in ("weights", "gradients", "optimizer", "activations", "peak"):
        lines.append(f"  {key:12s} {format_bytes(report.totals[key]):>12s}")
    lines.append(f"  {'inference':12s} {format_bytes(report.inference_peak):>12s}  (peak, no_grad)")
    lines.append(f"  training / inference = {report.ratio:.1f}x   (per-layer table: --layers)")
    return "\n".join(lines)


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
        cell_timeout=args.cell_timeout, test_timeout=args.test_timeout, jobs=args.jobs,
    )  # fmt: skip
    for g in grades:
        print(f"{g.submission:40s} {g.lab:24s} {g.total:g}/{g.total_possible:g}")
        for note in g.notes:
            print(f"    {note}")
    print(f"Wrote {out}")
    return 0


def _cmd_samples(args: argparse.Namespace) -> int:
    from pathlib import Path

    from odtlab.grading import write_samples

    for path in write_samples(Path(args.dist) / "lab00_welcome", args.out):
        print(path)
    print(f"Grade them with: odtlab grade {args.out} --jobs 2")
    return 0


def _cmd_protocol(args: argparse.Namespace) -> int:
    from odtlab.train import Protocol, cache_dir

    protocol = Protocol()
    result = protocol.run(list(protocol.methods().values()), cache=args.cache or cache_dir(),
                          workers=args.workers, progress=True)  # fmt: skip
    print(result.table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``odtlab`` command."""
    parser = argparse.ArgumentParser(
        prog="odtlab", description="Tools of the on-device training course."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("devices", help="list the device presets (or show one)")
    p.add_argument("name", nargs="?", help="a device name for its full profile")
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser("fit", help="does one training step fit a device? (memory report + verdict)")
    p.add_argument("--model", default="mobilenetv2", help="zoo model (default: mobilenetv2)")
    p.add_argument("--resolution", type=int, default=None, help="input size in pixels")
    p.add_argument("--batch", type=int, default=8, help="batch size (default: 8)")
    p.add_argument("--width", type=float, default=None, help="width multiplier (mobilenetv2)")
    p.add_argument("--classes", type=int, default=None, help="number of classes")
    p.add_argument("--optimizer", default="sgd", help="sgd, momentum, adam or adamw")
    p.add_argument("--accounting", default="pytorch", choices=["pytorch", "engine"])
    p.add_argument("--device", default="rpi4", help="device name (see `odtlab devices`)")
    p.add_argument("--layers", action="store_true", help="print the per-layer table")
    p.set_defaults(func=_cmd_fit)

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
    p.add_argument(
        "--test-timeout", type=int, default=20, help="seconds per test case (default 20)"
    )
    p.add_argument(
        "--jobs", "-j", type=int, default=1, help="notebooks graded at once (default 1)"
    )
    p.set_defaults(func=_cmd_grade)

    p = sub.add_parser("samples", help="write five sample submissions of lab 0 to try the grader on")
    p.add_argument("out", help="folder to write correct.ipynb, all_wrong.ipynb, ... into")
    p.add_argument("--dist", default="dist", help="where `odtlab student` wrote the zips")
    p.set_defaults(func=_cmd_samples)

    p = sub.add_parser(
        "protocol", help="train the standard methods under the book's protocol, into the cache"
    )
    p.add_argument("--cache", default=None, help="cache folder (default: $ODTLAB_CACHE)")
    p.add_argument("--workers", type=int, default=2, help="runs trained at once (default 2)")
    p.set_defaults(func=_cmd_protocol)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``odtlab`` command; errors of odtlab print as one clear line."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (OdtlabError, ValueError, TypeError) as exc:
        # bad input (an unknown name, an argument a model does not take): one clear line
        print(f"odtlab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
