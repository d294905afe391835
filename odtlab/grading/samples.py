"""Five sample submissions of lab 0, one of each kind a grader must survive.

They are made from the lab's solution (the notebook in otter's autograder
folder) by replacing a few answer cells:

=====================  ==============================================================
``correct``            the solution
``all_wrong``          a typical wrong answer to every question
``top_level_loop``     the last answer cell never ends (``while True``)
``loop_in_function``   ``param_bytes`` never returns for a half-precision model, which
                       only a hidden test builds
``exception``          ``param_bytes`` raises ``KeyError`` for a half-precision model
=====================  ==============================================================

The test suite grades them and checks their scores; the instructors' page
shows the CSV they give. To make and grade them yourself::

    make student
    odtlab samples samples/
    odtlab grade samples/ --jobs 2
"""

from __future__ import annotations

from pathlib import Path

from odtlab.errors import GradingError

__all__ = ["SAMPLES", "write_samples"]

_LOOP_PARAM_BYTES = '''def param_bytes(model):
    total = 0
    for p in model.parameters():
        while p.dtype != torch.float32:  # meant to convert, never does
            pass
        total += p.numel() * 4
    return total


mlp = odt.models.mlp()
'''

_KEYERROR_PARAM_BYTES = '''def param_bytes(model):
    size = {torch.float32: 4}  # only float32 thought of
    return sum(p.numel() * size[p.dtype] for p in model.parameters())


mlp = odt.models.mlp()
'''

#: answer cells replaced in each sample, keyed by how the solution's cell starts
SAMPLES: dict[str, dict[str, str]] = {
    "correct": {},
    "all_wrong": {
        "linear_bytes =": "linear_bytes = 4 * 64 * 10  # the weight only\nlinear_bytes",
        "def param_bytes": "def param_bytes(model):\n    return sum(p.numel() for p in model.parameters())"
        "\n\n\nmlp = odt.models.mlp()\n",
        "devices_that_hold_mlp =": "devices_that_hold_mlp = [\"rpi4\", \"jetson-nano\"]  # the big boards",
    },
    "top_level_loop": {"devices_that_hold_mlp =": "while True:\n    pass"},
    "loop_in_function": {"def param_bytes": _LOOP_PARAM_BYTES},
    "exception": {"def param_bytes": _KEYERROR_PARAM_BYTES},
}


def write_samples(autograder_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the five sample submissions of lab 0 into ``out_dir``; return their paths.

    Parameters
    ----------
    autograder_dir : path
        ``dist/lab00_welcome`` as ``make student`` wrote it (its ``autograder/``
        folder holds the solution notebook).
    out_dir : path
        Folder for ``correct.ipynb``, ``all_wrong.ipynb``, ... (created if needed).
    """
    import nbformat  # with otter, in the [lab] extra

    solution = Path(autograder_dir) / "autograder" / "lab00_welcome.ipynb"
    if not solution.is_file():
        raise GradingError(f"No solution notebook at {solution}: run `make student` first.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, replacements in SAMPLES.items():
        nb = nbformat.read(solution, as_version=4)
        found = set()
        for cell in nb.cells:
            for start, source in replacements.items():
                if cell.cell_type == "code" and cell.source.startswith(start):
                    cell.source = source
                    found.add(start)
        missing = set(replacements) - found
        if missing:
            raise GradingError(f"sample {kind!r}: no answer cell starts with {sorted(missing)}")
        path = out / f"{kind}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths

