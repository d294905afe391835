"""The house's rules, checked on the source: no import circle, arrows point down, no private
names across packages, short modules, and chapters, labs and benchmarks on the public API."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "odtlab"

# Floors from the ground up (DESIGN.md); a package may import its own floor and those below.
# The plots (viz) sit on the ground floor so that every report's .plot() can call them; the
# interactive explorers that run the library sit on top (widgets).
FLOORS = {
    "errors": 0, "units": 0, "parallel": 0, "viz": 0, "devices": 1, "data": 1, "models": 1, "memory": 2,
    "recipes": 2, "train": 3, "search": 4, "fl": 4, "cl": 4, "export": 4, "papers": 5, "grading": 5,
    "tutor": 5,
    "widgets": 6, "cli": 6,
}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(imported module, names, at module level?) for every ``odtlab`` import in the file."""
    tree = ast.parse(path.read_text())
    found = []
    top = {id(n) for n in tree.body}
    type_checking = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("odtlab"):
            found.append((node.module, [a.name for a in node.names], id(node) in top))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("odtlab"):
                    found.append((alias.name, [], id(node) in top))
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, name: str) -> str:
    """``from odtlab.recipes import layers`` imports the module ``odtlab.recipes.layers``."""
    return f"{module}.{name}" if f"{module}.{name}" in MODULES else module


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for target, names, _ in _imports(path):
            for dest in {_resolve(target, n) for n in names} or {target}:
                if dest in MODULES and dest != mod:
                    graph[mod].add(dest)
    # importing a submodule first runs its package's __init__
    for mod in list(graph):
        for dest in list(graph[mod]):
            parts = dest.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in MODULES and not mod.startswith(parent + ".") and parent != mod:
                    graph[mod].add(parent)
    return graph


def test_no_import_circle_between_modules():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_arrows_point_down_and_no_import_hides_in_a_function():
    wrong = []
    for mod, path in MODULES.items():
        here = _package(mod)
        if here not in FLOORS:
            continue
        for target, _, top in _imports(path):
            there = _package(target)
            if there in FLOORS and there != here and FLOORS[there] > FLOORS[here]:
                wrong.append(f"{mod} imports {target} (a floor above)")
            if not top and here != "cli" and there != "":
                wrong.append(f"{mod} imports {target} inside a function")
    assert not wrong, "\n".join(wrong)


def test_no_private_name_is_imported_from_another_module():
    wrong = []
    for mod, path in MODULES.items():
        for target, names, _ in _imports(path):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private and not target.startswith(mod.rsplit(".", 1)[0] + "._"):
                wrong.append(f"{mod}: from {target} import {', '.join(private)}")
    assert not wrong, "\n".join(wrong)


def test_recipes_has_at_most_eight_modules_at_its_top_level_and_modules_stay_short():
    top = sorted(p.name for p in (PACKAGE / "recipes").glob("*.py"))
    assert len(top) <= 8, top
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 420}
    assert not long, f"modules over 420 lines (aim for about 300): {long}"


def _notebook_code() -> dict[str, str]:
    code = {}
    for path in sorted((ROOT / "chapters").glob("*.md")):
        code[str(path.relative_to(ROOT))] = path.read_text()
    for path in sorted((ROOT / "labs").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code[str(path.relative_to(ROOT))] = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "code"
        )
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        code[str(path.relative_to(ROOT))] = path.read_text()
    return code


def test_chapters_labs_and_benchmarks_use_the_public_api_without_subprocess():
    private = re.compile(r"from odtlab(\.\w+)*\.(_\w+|\w+) import \w*_\w*|odtlab(\.\w+)*\._\w+")
    deep = re.compile(r"from odtlab\.\w+\.\w+")  # a module below a package's public surface
    wrong = []
    for name, text in _notebook_code().items():
        if name.startswith("chapters/") and "subprocess" in text:
            wrong.append(f"{name}: runs a subprocess")
        for line in text.splitlines():
            if private.search(line) and "import _" in line or re.search(r"odtlab(\.\w+)*\._", line):
                wrong.append(f"{name}: private name: {line.strip()}")
            elif not name.startswith("benchmarks/") and deep.search(line):
                wrong.append(f"{name}: import below the public API: {line.strip()}")
    assert not wrong, "\n".join(wrong)


def test_production_code_carries_no_fault_injection():
    hits = [
        f"{m}: {line.strip()}"
        for m, p in MODULES.items()
        for line in p.read_text().splitlines()
        if re.search(r"\b_crash|_cut_at|crash_after", line)
    ]
    assert not hits, "\n".join(hits)
