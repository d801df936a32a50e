"""`python -m workbench.notebooks run` keeps one entry per notebook in `<out>/records.json`: a run replaces the
entries of the notebooks it ran, keeps the others, and marks each with whether it ran with SMOKE. The notebooks
themselves are not executed here (`execute` is replaced by a stand-in that returns fixed records)."""

from __future__ import annotations

import json

import pytest

from workbench import notebooks


@pytest.fixture
def fake_execute(monkeypatch):
    """Replace `execute`: each call returns {"ran": stem, "smoke": SMOKE parameter}, or raises for stems in `fail`."""
    calls, fail = [], set()

    def execute(nb, out_dir, parameters=None, timeout=3600):
        calls.append((nb.stem, dict(parameters or {})))
        if nb.stem in fail:
            raise RuntimeError(f"{nb.stem} failed")
        return {"ran": nb.stem, "was_smoke": bool((parameters or {}).get("SMOKE", False))}

    monkeypatch.setattr(notebooks, "execute", execute)
    monkeypatch.setattr(notebooks, "runner_profile", lambda smoke: "smoke" if smoke else "cpu-demo")
    return calls, fail


def _entries(out):
    return json.loads((out / "records.json").read_text())


def test_run_merges_entries_and_marks_smoke(tmp_path, fake_execute):
    calls, _ = fake_execute
    assert notebooks.main(["run", "--out", str(tmp_path), "--only", "1", "5"]) == 0
    first = _entries(tmp_path)
    assert list(first) == ["01_data_tour", "05_sd2reid"]
    assert first["05_sd2reid"] == {"smoke": False, "profile": "cpu-demo",
                                   "records": {"ran": "05_sd2reid", "was_smoke": False}}

    # A SMOKE run of 05 alone replaces 05's entry and keeps 01's, untouched.
    assert notebooks.main(["run", "--out", str(tmp_path), "--only", "05", "--smoke"]) == 0
    second = _entries(tmp_path)
    assert second["01_data_tour"] == first["01_data_tour"]
    assert second["05_sd2reid"] == {"smoke": True, "profile": "smoke",
                                    "records": {"ran": "05_sd2reid", "was_smoke": True}}
    assert [stem for stem, _ in calls] == ["01_data_tour", "05_sd2reid", "05_sd2reid"]
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*"))  # no temp file left behind


def test_a_failing_notebook_drops_its_old_entry_and_keeps_the_ones_before(tmp_path, fake_execute):
    _, fail = fake_execute
    assert notebooks.main(["run", "--out", str(tmp_path), "--only", "1", "5", "6"]) == 0
    fail.add("06_failure_analysis")
    with pytest.raises(RuntimeError, match="06_failure_analysis failed"):
        notebooks.main(["run", "--out", str(tmp_path), "--only", "5", "6", "--smoke"])
    entries = _entries(tmp_path)
    assert entries["01_data_tour"]["smoke"] is False  # not run: kept
    assert entries["05_sd2reid"]["smoke"] is True     # ran before the failure: written already
    assert "06_failure_analysis" not in entries       # its numbers would describe a copy that no longer exists


def test_older_flat_records_are_read_with_unknown_smoke(tmp_path, fake_execute):
    (tmp_path / "records.json").write_text(json.dumps({"07_ablation_dashboard": {"paired_queries": 25}}))
    assert notebooks.read_records_file(tmp_path / "records.json") == {
        "07_ablation_dashboard": {"smoke": None, "profile": None, "records": {"paired_queries": 25}}}
    assert notebooks.main(["run", "--out", str(tmp_path), "--only", "1"]) == 0
    entries = _entries(tmp_path)
    assert entries["07_ablation_dashboard"]["records"] == {"paired_queries": 25}
    assert entries["01_data_tour"]["smoke"] is False


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"01_data_tour": 3}'])
def test_a_damaged_records_file_stops_the_run_before_any_notebook(tmp_path, fake_execute, capsys, text):
    calls, _ = fake_execute
    (tmp_path / "records.json").write_text(text)
    assert notebooks.main(["run", "--out", str(tmp_path), "--only", "1"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "records.json") in err and "move" in err
    assert calls == [] and (tmp_path / "records.json").read_text() == text  # nothing ran, nothing overwritten
