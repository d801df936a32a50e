"""`python -m workbench.notebooks run` keeps one entry per notebook in `<out>/records.json`: a run replaces the
entries of the notebooks it ran, keeps the others, and marks each with whether it ran with SMOKE. The notebooks
themselves are not executed here (`execute` is replaced by a stand-in that returns fixed records)."""

from __future__ import annotations

import json
import time

import pytest
import torch

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
    assert first["05_sd2reid"]["records"] == {"ran": "05_sd2reid", "was_smoke": False}
    assert (first["05_sd2reid"]["smoke"], first["05_sd2reid"]["profile"]) == (False, "cpu-demo")
    assert first["05_sd2reid"]["threads"] == torch.get_num_threads() and first["05_sd2reid"]["seconds"] >= 0

    # A SMOKE run of 05 alone replaces 05's entry and keeps 01's, untouched.
    assert notebooks.main(["run", "--out", str(tmp_path), "--only", "05", "--smoke"]) == 0
    second = _entries(tmp_path)
    assert second["01_data_tour"] == first["01_data_tour"]
    assert second["05_sd2reid"]["records"] == {"ran": "05_sd2reid", "was_smoke": True}
    assert (second["05_sd2reid"]["smoke"], second["05_sd2reid"]["profile"]) == (True, "smoke")
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
        "07_ablation_dashboard": {"smoke": None, "profile": None, "records": {"paired_queries": 25},
                                  "threads": None, "seconds": None}}
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


@pytest.fixture
def logged_execute(monkeypatch, tmp_path):
    """Replace `execute` for --jobs runs in forked workers: each call appends "start NN" and "end NN" lines to a
    log file (the workers' memory is their own), sleeping between them so that overlaps show; stems in `fail`
    raise."""
    log, fail = tmp_path / "log.txt", set()

    def execute(nb, out_dir, parameters=None, timeout=3600):
        with open(log, "a") as f:
            f.write(f"start {nb.name[:2]}\n")
        time.sleep(0.3)
        with open(log, "a") as f:
            f.write(f"end {nb.name[:2]}\n")
        if nb.stem in fail:
            raise RuntimeError(f"{nb.stem} failed")
        return {"ran": nb.stem}

    monkeypatch.setattr(notebooks, "execute", execute)
    monkeypatch.setattr(notebooks, "runner_profile", lambda smoke: "cpu-demo")
    monkeypatch.setattr(notebooks, "POOL_CONTEXT", "fork")  # the workers inherit the replaced `execute`
    return log, fail


def _events(log):
    return [tuple(line.split()) for line in log.read_text().splitlines()]


def test_jobs_run_notebooks_side_by_side_each_after_what_it_needs(tmp_path, logged_execute):
    log, _ = logged_execute
    out = tmp_path / "out"
    assert notebooks.main(["run", "--out", str(out), "--jobs", "2"]) == 0
    events = _events(log)
    position = {event: i for i, event in enumerate(events)}
    stems = [nb.name[:2] for nb in notebooks.list_notebooks()]
    assert sorted(n for kind, n in events if kind == "start") == stems  # each notebook once
    for nb, needs in notebooks.NEEDS.items():
        for need in needs:
            assert position[("end", need)] < position[("start", nb)], (nb, need, events)
    running, most = 0, 0
    for kind, _ in events:
        running += 1 if kind == "start" else -1
        most = max(most, running)
    assert most == 2  # two at once, never three
    assert events[:2] == [("start", "02"), ("start", "08")] or events[:2] == [("start", "08"), ("start", "02")]
    entries = _entries(out)
    assert sorted(entries) == sorted(nb.stem for nb in notebooks.list_notebooks())
    assert all(e["records"] == {"ran": stem} and e["threads"] >= 1 for stem, e in entries.items())


def test_a_failure_under_jobs_stops_what_waits_and_keeps_what_finished(tmp_path, logged_execute, capsys):
    log, fail = logged_execute
    out = tmp_path / "out"
    assert notebooks.main(["run", "--out", str(out), "--only", "2", "3", "6", "8", "--jobs", "2"]) == 0
    fail.add("03_dakd")
    assert notebooks.main(["run", "--out", str(out), "--only", "2", "3", "6", "8", "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: 03_dakd failed" in err and "not started: 06_failure_analysis" in err
    entries = _entries(out)
    assert "03_dakd" not in entries                        # its numbers would describe the failed copy
    assert entries["06_failure_analysis"]["records"] == {"ran": "06_failure_analysis"}  # from the first run: kept
    started = [n for kind, n in _events(log)[8:] if kind == "start"]  # the second run's
    assert sorted(started) == ["02", "03", "08"]           # 06 needs 03: never started


def test_ctrl_c_under_jobs_drops_the_entries_of_the_notebooks_it_cut_short(tmp_path, logged_execute, monkeypatch):
    import concurrent.futures

    out = tmp_path / "out"
    assert notebooks.main(["run", "--out", str(out), "--only", "1", "2", "8", "--jobs", "2"]) == 0

    def interrupted(*args, **kwargs):  # Ctrl-C while the runner waits on its two running notebooks
        raise KeyboardInterrupt

    monkeypatch.setattr(concurrent.futures, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        notebooks.main(["run", "--out", str(out), "--only", "2", "8", "--jobs", "2"])
    assert list(_entries(out)) == ["01_data_tour"]  # 02 and 08 were running: their old numbers are gone


def test_schedule_prefers_what_most_notebooks_wait_for():
    by_number = {nb.name[:2]: nb for nb in notebooks.list_notebooks()}
    everything = list(by_number.values())
    ready = [by_number[n] for n in ("01", "02", "08")]
    assert [nb.name[:2] for nb in notebooks.schedule_order(ready, everything)] == ["02", "08", "01"]
    ready = [by_number[n] for n in ("05", "04", "03")]  # each unblocks 06 and 07: by number
    assert [nb.name[:2] for nb in notebooks.schedule_order(ready, everything)] == ["03", "04", "05"]


def test_jobs_below_one_is_refused(tmp_path, logged_execute, capsys):
    assert notebooks.main(["run", "--out", str(tmp_path), "--only", "1", "--jobs", "0"]) == 2
    assert "--jobs 0" in capsys.readouterr().err


def test_the_schedule_replay_follows_the_runner_on_known_times():
    """benchmarks/demo_schedule.py replays --jobs 2 with the runner's NEEDS and order; hand-worked times: 02 and 08
    first (0-10), then 03 (10-40) and 04 (10-20), 05 (20-30), 01 (30-31); 06 and 07 wait for 03 (40-41)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "demo_schedule.py"
    spec = importlib.util.spec_from_file_location("demo_schedule", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seconds = {"01": 1, "02": 10, "03": 30, "04": 10, "05": 10, "06": 1, "07": 1, "08": 10}
    wall, plan = module.replay(seconds, jobs=2, planned=False)
    assert wall == 41
    assert {n: (s, e) for n, s, e in plan} == {"02": (0, 10), "08": (0, 10), "03": (10, 40), "04": (10, 20),
                                               "05": (20, 30), "01": (30, 31), "06": (40, 41), "07": (40, 41)}
    without_08 = {k: v for k, v in seconds.items() if k != "08"}
    assert module.replay(without_08, jobs=2, planned=False)[0] == 41  # 08 off the path
    assert module.replay(seconds, jobs=1, planned=False)[0] == sum(seconds.values())
    assert module.replay(seconds, jobs=2, expected=seconds)[0] == 41  # the rule was already best here
    # The demo's shape: 08 long, 03 longer. The rule starts 03 when 02 ends (two notebooks wait for it) and queues
    # 04 and 05 behind 08: 02 0-10, 03 10-28, 01 28-29 | 08 0-14, 04 14-25, 05 25-38; 06, 07 38-39. The plan puts
    # 03 behind 08 instead: 02 0-10, 04 10-21, 05 21-34 | 08 0-14, 03 14-32, 01 32-33; 06, 07 34-35.
    seconds = {"01": 1, "02": 10, "03": 18, "04": 11, "05": 13, "06": 1, "07": 1, "08": 14}
    assert module.replay(seconds, jobs=2, planned=False)[0] == 39
    wall, plan = module.replay(seconds, jobs=2, expected=seconds)
    assert wall == 35
    assert {n: (s, e) for n, s, e in plan} == {"02": (0, 10), "08": (0, 14), "04": (10, 21), "03": (14, 32),
                                               "05": (21, 34), "01": (32, 33), "06": (34, 35), "07": (34, 35)}


def _list_schedule_wall(order: list[str], seconds: dict[str, float], jobs: int) -> float:
    """Brute-force oracle: the wall time of starting, whenever a lane is free, the first ready notebook of `order`."""
    pending, done, running, clock = list(order), set(), [], 0.0
    while pending or running:
        for n in [n for n in pending if all(d in done or d not in order for d in notebooks.NEEDS.get(n, ()))]:
            if len(running) < jobs:
                pending.remove(n)
                running.append((clock + seconds[n], n))
        clock, n = min(running)
        running.remove((clock, n))
        done.add(n)
    return clock


@pytest.mark.parametrize("seed", range(4))
def test_the_plan_is_as_short_as_the_best_of_every_start_order(seed):
    """`plan_order` against every permutation of the notebooks as a priority list (each list schedule is one of
    them), on random costs: the plan's wall time is the minimum, and its order respects NEEDS."""
    import itertools
    import random

    rng = random.Random(seed)
    by_number = {nb.name[:2]: nb for nb in notebooks.list_notebooks()}
    numbers = sorted(by_number) if seed == 0 else sorted(rng.sample(sorted(by_number), 6))
    seconds = {n: rng.randint(1, 40) for n in numbers}
    for jobs in (2, 3):
        plan = notebooks.plan_order([by_number[n] for n in numbers], jobs, seconds)
        planned = [nb.name[:2] for nb in plan]
        assert sorted(planned) == numbers
        best = min(_list_schedule_wall(list(p), seconds, jobs) for p in itertools.permutations(numbers))
        assert _list_schedule_wall(planned, seconds, jobs) == best, (seconds, jobs, planned)


def test_without_an_estimate_for_every_notebook_the_rule_orders():
    everything = notebooks.list_notebooks()
    assert notebooks.plan_order(everything, 2, {"02": 5, "03": 5}) is None
    assert notebooks.plan_order(everything, 2) is not None  # the shipped estimates cover every notebook
    assert sorted(notebooks.EXPECTED_SECONDS) == sorted(nb.name[:2] for nb in everything)
