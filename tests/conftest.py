"""Session-wide test settings and shared fixtures.

Derived data (synthetic dataset exports, feature caches) goes to `$WORKBENCH_CACHE`, by default the user's
`~/.cache/reid-workbench`. A test session must not write there: unless the caller set `WORKBENCH_CACHE` explicitly
(e.g. to reuse exports across sessions: `WORKBENCH_CACHE=/tmp/wb-cache pytest`), the session uses a fresh temporary
folder, removed at the end. It is set in the environment, so subprocesses (the CLI, notebook kernels, torchrun
workers) inherit it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_OWNED: list[str] = []


def pytest_configure(config) -> None:
    if not os.environ.get("WORKBENCH_CACHE"):
        path = tempfile.mkdtemp(prefix="workbench-test-cache-")
        os.environ["WORKBENCH_CACHE"] = path
        _OWNED.append(path)


def pytest_unconfigure(config) -> None:
    while _OWNED:
        path = _OWNED.pop()
        if os.environ.get("WORKBENCH_CACHE") == path:
            del os.environ["WORKBENCH_CACHE"]
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """Two finished smoke runs on synthetic-vi that differ in one key (the triplet loss), trained once per session:
    {"root": runs folder, "a": Run (wrt), "b": Run (hard)}."""
    from workbench.config import get_config
    from workbench.train import fit

    root = tmp_path_factory.mktemp("runs")
    base = get_config("baseline", "synthetic-vi", "smoke").override(
        **{"run.out_dir": str(root), "run.device": "cpu"})
    a = fit(base.override(**{"run.name": "a", "loss.triplet": "wrt"}), progress=False)
    b = fit(base.override(**{"run.name": "b", "loss.triplet": "hard"}), progress=False)
    return {"root": root, "a": a, "b": b}


@pytest.fixture(scope="session")
def executed_notebook(tmp_path_factory):
    """Execute a repository notebook with SMOKE=True at most once per session, in a folder of its own (runs/,
    notebooks/, figures/ under it): `executed_notebook("02_baselines") -> (folder, recorded values)`. The notebook
    tests and the handout tests share the executions; a failure is raised again to every test that asks."""
    from workbench.notebooks import execute, list_notebooks

    done: dict[str, tuple] = {}

    def run(stem: str):
        if stem not in done:
            notebook = next((p for p in list_notebooks() if p.stem == stem), None)
            if notebook is None:
                raise ValueError(f"no notebook named {stem!r} in notebooks/")
            root = tmp_path_factory.mktemp(stem)
            params = {"SMOKE": True, "RUNS_DIR": str(root / "runs")}  # notebooks without RUNS_DIR ignore it
            try:
                with pytest.MonkeyPatch.context() as mp:
                    mp.setenv("MPLBACKEND", "Agg")  # as a headless caller has it: the kernel must still draw inline
                    done[stem] = (root, execute(notebook, root / "notebooks", parameters=params, timeout=600), None)
            except Exception as exc:  # noqa: BLE001 -- kept and raised again below, to each test that asks
                done[stem] = (root, None, exc)
        root, records, error = done[stem]
        if error is not None:
            raise error
        return root, records

    return run
