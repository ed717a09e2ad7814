"""Every stage's code deps in dvc.yaml cover all the project code the stage runs.

The promise of the pipeline is that a change of code reruns exactly the stages it
affects. DVC only knows what ``deps`` lists, so a module a stage imports but does not
list would be changed without a rerun. This test follows each stage's entry points
(its notebook's code cells, a ``python -m`` module) through every import of the
project's own code (function-local ones included, and the ``__init__.py`` of each
package on the way, which Python runs first), and checks that each file reached lies
under one of the stage's deps.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from lib.core.paths import ROOT

PACKAGE = "lib"


def module_file(name: str) -> Path | None:
    """lib.a.b -> lib/a/b.py or lib/a/b/__init__.py (None when it is not the project's)."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def with_parents(name: str) -> list[str]:
    """Importing lib.a.b runs lib/__init__.py and lib/a/__init__.py first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_modules(source: str) -> set[str]:
    """Project modules a piece of Python source imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from lib.a import b` imports the submodule lib.a.b when there is one
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if module_file(m) is not None}


def closure(roots: set[str]) -> set[Path]:
    """The files of every project module reached from ``roots``."""
    seen: set[str] = set()
    todo = [p for r in roots for p in with_parents(r)]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        todo += [p for m in imported_modules(module_file(name).read_text(encoding="utf-8")) for p in with_parents(m)]
    return {module_file(m) for m in seen}


def notebook_source(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = ("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    # IPython magics and shell escapes are not Python
    return "\n".join(line for cell in code for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))


def entry_points(stage: dict) -> set[str]:
    cmd = stage["cmd"] if isinstance(stage["cmd"], str) else " ".join(stage["cmd"])
    roots = set(re.findall(r"python -m ([\w.]+)", cmd))
    for dep in stage.get("deps", []):
        if str(dep).endswith(".ipynb"):
            roots |= imported_modules(notebook_source(ROOT / dep))
    return roots


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_code_deps_cover_every_module_the_stage_runs(name):
    stage = STAGES[name]
    roots = entry_points(stage)
    assert roots, f"stage {name}: found no entry point into {PACKAGE}/ (notebook dep or `python -m`)"
    deps = [str(d) for d in stage.get("deps", [])]
    missing = sorted(str(p.relative_to(ROOT)) for p in closure(roots) if not covered(p, deps))
    assert not missing, (
        f"dvc.yaml stage {name!r} runs these files but does not list them (or a folder above them) in deps: {missing}"
    )


def test_the_closure_follows_function_local_imports_and_package_inits(tmp_path):
    source = "def f():\n    from lib.core import paths\n"
    assert imported_modules(source) == {"lib.core", "lib.core.paths"}
    files = {str(p.relative_to(ROOT)) for p in closure({"lib.core.paths"})}
    assert {"lib/__init__.py", "lib/core/__init__.py", "lib/core/paths.py"} <= files


def test_a_missing_dep_is_caught():
    stage = {"cmd": "python -m lib.encoders.embeddings", "deps": ["lib/encoders"]}
    deps = stage["deps"]
    missing = [p for p in closure(entry_points(stage)) if not covered(p, deps)]
    assert any(p.name == "__init__.py" and p.parent.name == PACKAGE for p in missing), (
        "lib/__init__.py must be required"
    )
    assert any("core" in p.parts for p in missing)


# Lowest first: a package may import its own layer and the ones before it, never a later one.
LAYERS = (
    "core",
    "scoring",
    "prepare",
    "sources",
    "encoders",  # below frames: the frames stage runs the encoder on its own decode
    "frames",
    "loaders",
    "models",
    "train",
    "evaluate",
    "apps",
)


def project_modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / PACKAGE).rglob("*.py")
    }


def test_every_package_is_in_a_layer():
    packages = {p.name for p in (ROOT / PACKAGE).iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS)


def test_imports_go_down_the_layers_only():
    upward = []
    for name, path in project_modules().items():
        if name == PACKAGE:
            continue
        level = LAYERS.index(name.split(".")[1])
        for imported in imported_modules(path.read_text(encoding="utf-8")):
            parts = imported.split(".")
            if len(parts) > 1 and LAYERS.index(parts[1]) > level:
                upward.append(f"{name} imports {imported}")
    assert not upward, upward


def test_no_import_cycles():
    graph = {
        name: {m for m in imported_modules(path.read_text(encoding="utf-8")) if module_file(m) != path}
        for name, path in project_modules().items()
    }
    # a package's __init__ is reached by importing any module under it, not a cycle by itself
    graph = {n: {m for m in deps if module_file(m).name != "__init__.py"} for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(trail + [node, nxt])}")
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
