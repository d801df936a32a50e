"""The package's layers only look down (STYLE.md): no module imports one from a floor above it, lazily or not.

Floors, bottom to top: configuration and utilities; data, models, losses, metrics; features and the run store;
methods; the training engine; the instruments (viz) and the dashboard; the command line and the notebook runner.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"

FLOORS = {
    "config": 0, "utils": 0, "profiling": 0,
    "data": 1, "models": 1, "losses": 1, "metrics": 1,
    "features": 2, "runs": 2, "pretrain": 2, "pretrain_distill": 2, "optim": 2, "evaluation_store": 2,
    "methods": 3,
    "train": 4, "recipe": 4,
    "viz": 5, "sd2_analysis": 5, "dashboard": 6,
    "viz.curves": 2,  # training curves drawn from a run's log: the engine's live plot uses them
    "__main__": 7, "notebooks": 7, "__init__": 7,
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
