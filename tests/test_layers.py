"""The package's layers only look down (STYLE.md): no module imports one from a floor above it, lazily or not.

Floors, bottom to top: configuration, utilities and data-parallel helpers; data, models, losses, metrics; features,
the run store and checkpoints; methods; the evaluation path; the training engine; the instruments (viz) and the
dashboard; the command line, the notebook runner, the handouts made from its executed notebooks and the notebook
conveniences (lab). No module imports itself back through others (no circles), and the engine and the run store stay
in functions a reader can hold (no function over 80 lines).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"

FLOORS = {
    "config": 0, "utils": 0, "profiling": 0, "distributed": 0,
    "data": 1, "models": 1, "losses": 1, "metrics": 1,
    "features": 2, "runs": 2, "checkpoint": 2, "pretrain": 2, "pretrain_distill": 2, "optim": 2,
    "methods": 3,
    "evaluate": 3.5, "evaluation_store": 3.5,  # the one evaluation path: below the engine, which calls it
    "train": 4, "recipe": 4,
    "viz": 5, "dashboard": 6,
    "viz.curves": 2,  # training curves drawn from a run's log: the engine's live plot uses them
    "__main__": 7, "notebooks": 7, "handouts": 7, "lab": 7, "claims": 7, "__init__": 7,
}


def _top(module: str) -> str:
    """The FLOORS key of a module: its sub-package, or `sub.module` where that has a floor of its own."""
    if not module.startswith("workbench."):
        return ""
    parts = module.split(".")
    return ".".join(parts[1:3]) if ".".join(parts[1:3]) in FLOORS else parts[1]


def _imports(path: Path) -> set[str]:
    """Every workbench module a file imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "workbench":
                found.update(f"workbench.{a.name}" for a in node.names)
            elif node.module.startswith("workbench."):
                found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:  # relative: stays inside its own sub-package
            continue
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("workbench."))
    return found


def _floor_of(path: Path) -> tuple[str, int]:
    rel = path.relative_to(PACKAGE)
    name = _top("workbench." + ".".join(rel.with_suffix("").parts))
    if name not in FLOORS:
        pytest.fail(f"{rel} is in no floor of FLOORS: add its sub-package to tests/test_layers.py")
    return name, FLOORS[name]


def test_no_import_climbs():
    climbs = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name, floor = _floor_of(path)
        if name == "__init__":
            continue
        for module in _imports(path):
            target = _top(module)
            if target in FLOORS and target != name and FLOORS[target] > floor:
                climbs.append(f"{path.relative_to(PACKAGE)} ({name}, floor {floor}) imports {module} "
                              f"(floor {FLOORS[target]})")
    assert not climbs, "imports that climb:\n" + "\n".join(climbs)


def test_the_checker_sees_lazy_imports(tmp_path):
    """The checker is not blind to imports inside functions (the kind that made the old circles)."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from workbench.train import fit\n    import workbench.methods.base\n")
    assert _imports(src) == {"workbench.train", "workbench.methods.base"}


def _unit(path: Path) -> str:
    """The FLOORS key of a file under the package (`train`, `data`, `viz.curves`, ...)."""
    return _top("workbench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))


def test_no_import_circles():
    """No module or sub-package reaches itself through imports of other ones, top-level or inside functions.
    (Circles between the modules of one folder: `test_no_import_circles_inside_a_folder`.)"""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = _unit(path)
        if unit == "__init__":
            continue
        graph.setdefault(unit, set()).update(t for t in map(_top, _imports(path)) if t in FLOORS and t != unit)
    circles = _circles(graph)
    assert not circles, "import circles:\n" + "\n".join(circles)


def _module_imports(path: Path) -> set[str]:
    """The workbench modules (files, not packages) a file imports, relative imports and `from pkg import module`
    resolved to the module's file; imports of a package's `__init__` (a facade of re-exports) are left out."""
    here = "workbench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's package, `level` folders up
                base = here.split(".")[:-node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [f"{module}.{a.name}" for a in node.names]
            candidates = [module, *names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for name in candidates:
            if name.startswith("workbench.") and (PACKAGE.parent / (name.replace(".", "/") + ".py")).is_file():
                found.add(name)
    found.discard(here)
    return found


def _circles(graph: dict[str, set[str]]) -> list[str]:
    circles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return circles


def test_no_import_circles_inside_a_folder():
    """No module reaches itself through the other modules of the package, folder-internal imports included
    (issue 20: `dashboard/cams` <-> `dashboard/paired` and `data/synthetic` <-> `data/synthetic_render` were such
    circles). A package's `__init__` only re-exports, so importing it is not followed."""
    graph = {"workbench." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts): _module_imports(p)
             for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    circles = _circles(graph)
    assert not circles, "import circles between modules:\n" + "\n".join(circles)


def test_the_folder_circle_check_sees_a_circle(tmp_path, monkeypatch):
    """Two modules of one folder importing each other (relatively and lazily) are reported."""
    pkg = tmp_path / "workbench"
    (pkg / "viz").mkdir(parents=True)
    (pkg / "viz" / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "viz" / "b.py").write_text("from workbench.viz import a\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    with pytest.raises(AssertionError, match="workbench.viz.a -> workbench.viz.b -> workbench.viz.a"):
        test_no_import_circles_inside_a_folder()


def test_the_circle_check_sees_a_circle(tmp_path, monkeypatch):
    """The check is not blind: two modules importing each other lazily are reported."""
    pkg = tmp_path / "workbench"
    pkg.mkdir()
    (pkg / "config.py").write_text("def f():\n    from workbench.utils import g\n")
    (pkg / "utils.py").write_text("def g():\n    from workbench.config import f\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    with pytest.raises(AssertionError, match="config -> utils -> config"):
        test_no_import_circles()


@pytest.mark.parametrize("module", ["train.py", "runs.py"])
def test_no_function_over_80_lines(module):
    """The engine and the run store read as small functions (issue 20: `_train` was 180 lines)."""
    tree = ast.parse((PACKAGE / module).read_text())
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines, from line {n.lineno})" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert not long, f"functions over 80 lines in workbench/{module}: {long}"
