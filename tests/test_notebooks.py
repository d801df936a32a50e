"""Every ordered notebook executes headless with SMOKE=True; the numbers it records are its runs' results."""

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
def test_notebook_executes_in_smoke_mode(notebook, executed_notebook):
    root, records = executed_notebook(notebook.stem)  # (the handout tests reuse the same execution)
    assert records, f"{notebook.name} recorded no values with workbench.utils.record()"
    for name, value in records.items():
        if isinstance(value, float):
            assert math.isfinite(value), f"{notebook.name}: {name} = {value}"
    assert list((root / "figures" / notebook.stem).glob("*.png")), "the notebook saved no figure"
    scored = check_recorded_scores_are_run_results(records, root / "runs")
    assert scored == SCORED_RUNS.get(notebook.stem, set())
    if notebook.stem in RECORD_CHECKS:
        RECORD_CHECKS[notebook.stem](records)


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_executed_copy_shows_its_figures(notebook, executed_notebook):
    """Each figure the notebook saves is also displayed: the kernel draws inline, as in JupyterLab, whatever
    MPLBACKEND the caller has (the fixture sets Agg), so the executed copy and its handout show them."""
    root, _ = executed_notebook(notebook.stem)
    executed = json.loads((root / "notebooks" / notebook.name).read_text())
    shown = sum("image/png" in o.get("data", {}) for c in executed["cells"] for o in c.get("outputs", []))
    saved = len(list((root / "figures" / notebook.stem).glob("*.png")))
    assert shown >= saved > 0, f"{saved} figures saved, {shown} shown in the executed copy"


# The runs whose test scores each notebook records as `<tag>_rank1`, `<tag>_mAP`, `<tag>_mINP`.
SCORED_RUNS = {"02_baselines": {"vi", "mm", "vi_scratch", "mm_scratch"}, "03_dakd": {"baseline", "teacher", "student", "student_from_baseline"},
               "04_icre": {"icre_baseline", "icre_mpfr", "icre_mpfr_sdce", "icre_icg", "icre_full"},
               "05_sd2reid": {"sd2_full"}, "08_vehicles": {"veh_baseline", "veh_sd2", "msvr_baseline", "msvr_sd2"}}


def check_recorded_scores_are_run_results(records: dict, runs_dir) -> set[str]:
    """Each recorded `<tag>_rank1/_mAP/_mINP` triple is the test result of one run the notebook wrote, or one of
    the evaluations stored with a run (e.g. a cross-dataset test, notebook 08); returns the tags."""
    from workbench.evaluate import list_evaluations
    from workbench.runs import load_run

    results = [load_run(p.parent).results["test"]["mean"] for p in runs_dir.glob("*/results.json")]
    results += [ev.mean for p in runs_dir.glob("*/results.json") for ev in list_evaluations(p.parent)]
    tags = {name.removesuffix("_mINP") for name in records if name.endswith("_mINP")}
    for tag in tags:
        triple = tuple(records[f"{tag}_{m}"] for m in ("rank1", "mAP", "mINP"))
        # (no order between mAP and mINP: true matches at ranks 2 and 3 give AP 0.58 < INP 0.67)
        assert all(0.0 <= v <= 1.0 for v in triple), (tag, triple)
        assert any(triple == pytest.approx(tuple(r[m] for m in ("rank1", "mAP", "mINP")), abs=1e-9)
                   for r in results), f"{tag}: {triple} is the test result of no run in {runs_dir}"
    return tags


def _check_data_tour(records: dict) -> None:
    """The smoke data tour summarises the 12-identity presets: recount them here."""
    from workbench import data

    vi = data.load_dataset("synthetic-vi", ids=12, seed=0, difficulty="default")
    mm = data.load_dataset("synthetic-rgbnt", ids=12, seed=0, difficulty="default")
    assert records["vi_train_images"] == len(vi.train)
    assert records["vi_train_ids"] == vi.num_train_ids == len({s.pid for s in vi.train})
    assert records["vi_queries"] == len(vi.eval_splits(mode="all", shot=1)[0].query)
    assert records["rgbnt_train_triplets"] == len(mm.train)


RECORD_CHECKS = {"01_data_tour": _check_data_tour}


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
    monkeypatch.setattr(utils, "in_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append((obj, raw)))
    utils.record("rank1", torch.tensor(0.25))
    assert shown == [({RECORD_MIME: {"rank1": 0.25}}, True)]
    nb = {"cells": [{"outputs": [{"output_type": "display_data", "data": shown[0][0]}]}]}
    assert read_records(nb) == {"rank1": 0.25}
