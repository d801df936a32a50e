"""Every ordered notebook executes headless with SMOKE=True and records finite numbers."""

import json
import math

import numpy as np
import pytest
import torch

from workbench.notebooks import list_notebooks, read_records
from workbench.utils import RECORD_MIME

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


def test_read_records_parses_display_and_stream_outputs():
    nb = {"cells": [{"outputs": [{"output_type": "stream", "text": ["x\n", 'WORKBENCH_RECORD {"a": 1.5}\n']}]},
                    {"outputs": [{"output_type": "display_data", "data": {RECORD_MIME: {"b": 2}}, "metadata": {}},
                                 {"output_type": "display_data", "data": {RECORD_MIME: '{"c": [1, 2]}'}}]},
                    {"outputs": [{"output_type": "execute_result", "data": {"text/plain": "{'d': 1}"}}]}]}
    assert read_records(nb) == {"a": 1.5, "b": 2, "c": [1, 2]}


def test_record_prints_no_raw_json_outside_a_kernel(capsys):
    """Scripts get one readable line; the raw `WORKBENCH_RECORD {...}` form is gone from what a reader sees."""
    from workbench import utils

    assert utils.record("x", np.float32(0.5)) == 0.5
    out = capsys.readouterr().out
    assert out == "recorded x = 0.5\n" and "WORKBENCH_RECORD" not in out


def test_record_in_a_kernel_is_a_hidden_display_message(monkeypatch):
    """In a notebook the value goes out as a display message of the record MIME type only: JupyterLab has no
    renderer for it, so nothing shows, and read_records gets it back."""
    import IPython.display

    from workbench import utils

    shown = []
    monkeypatch.setattr(utils, "_in_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    utils.record("rank1", torch.tensor(0.25))
    assert shown == [({RECORD_MIME: {"rank1": 0.25}}, True)]
    nb = {"cells": [{"outputs": [{"output_type": "display_data", "data": shown[0][0]}]}]}
    assert read_records(nb) == {"rank1": 0.25}
