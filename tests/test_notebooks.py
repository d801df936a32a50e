"""Every ordered notebook executes headless with SMOKE=True and records finite numbers."""

import json
import math

import pytest

from workbench.notebooks import list_notebooks, read_records

NOTEBOOKS = list_notebooks()


def test_there_are_notebooks():
    assert [nb.name for nb in NOTEBOOKS][:1] == ["01_data_tour.ipynb"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_committed_without_outputs(notebook):
    nb = json.loads(notebook.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs (make strip)"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "SMOKE = False" in "".join(tagged[0]["source"])
    # Thin notebooks: no function or class definitions.
    assert not any(line.lstrip().startswith(("def ", "class ")) for c in code for line in "".join(c["source"]).splitlines())


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_executes_in_smoke_mode(notebook, tmp_path, monkeypatch):
    from workbench.notebooks import execute

    monkeypatch.setenv("MPLBACKEND", "Agg")
    params = {"SMOKE": True, "RUNS_DIR": str(tmp_path / "runs")}  # notebooks without RUNS_DIR ignore it
    records = execute(notebook, tmp_path / "notebooks", parameters=params, timeout=600)
    assert records, f"{notebook.name} recorded no values with workbench.utils.record()"
    for name, value in records.items():
        if isinstance(value, float):
            assert math.isfinite(value), f"{notebook.name}: {name} = {value}"
    assert list((tmp_path / "figures" / notebook.stem).glob("*.png")), "the notebook saved no figure"


def test_read_records_parses_stream_outputs():
    nb = {"cells": [{"outputs": [{"output_type": "stream", "text": ["x\n", 'WORKBENCH_RECORD {"a": 1.5}\n']}]},
                    {"outputs": [{"output_type": "execute_result", "data": {}}]}]}
    assert read_records(nb) == {"a": 1.5}
