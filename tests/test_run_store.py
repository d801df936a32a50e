"""The run store never loses work (issue 12): overwrite only replaces runs inside out_dir and only after the new
request is checked, one writer per run folder, honest statuses, damaged checkpoints refused in our words, leftover
temp files cleaned, run files as readable as config.json."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
import torch

from workbench.config import get_config
from workbench.runs import Run, load_run


def smoke(tmp_path, name="r", method="baseline", **overrides):
    cfg = get_config(method, "synthetic-vi", "smoke")
    return cfg.override(**{"run.out_dir": str(tmp_path / "runs"), "run.name": name, "run.device": "cpu",
                           **overrides})


def finished_run(tmp_path, name="done"):
    """A run folder as the store leaves it after training, without training (fast)."""
    run = Run.create(smoke(tmp_path, name))
    run.start_attempt(num_classes=12)
    run.save_results({"num_classes": 12, "test": {"mean": {"mAP": 0.5}}})
    run.set_status("finished")
    return run


def finished_run_at(cfg):
    """A finished run of `cfg` that trained every epoch, without training."""
    run = Run.create(cfg)
    run.start_attempt(num_classes=1)
    run.save_results({"num_classes": 1, "epochs_done": cfg.optim.epochs})
    run.set_status("finished")
    return run


# ------------------------------------------------------------------------------------------------ item 1: overwrite

@pytest.mark.parametrize("name", ["..", "../victim", "/tmp/abs-victim", "a/b", ".hidden", ""])
def test_overwrite_refuses_names_that_leave_out_dir(tmp_path, name):
    from workbench.train import fit

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    (tmp_path / "runs").mkdir()
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="run.name"):
        fit(smoke(tmp_path, name), overwrite=True, progress=False)
    assert (victim / "thesis.tex").read_text() == "years of work" and (tmp_path / "keep.txt").exists()


def test_overwrite_refuses_a_folder_the_run_store_did_not_create(tmp_path):
    from workbench.train import fit

    folder = tmp_path / "runs" / "mine"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("not a run")
    with pytest.raises(ValueError, match="not a run folder"):
        fit(smoke(tmp_path, "mine"), overwrite=True, progress=False)
    assert (folder / "notes.txt").read_text() == "not a run"


def test_overwrite_refuses_a_user_folder_that_merely_holds_a_config(tmp_path):
    """A config.json alone (a user's folder of configs, a copied config) does not make a run folder: the run store
    wrote the folder (its marker), or, for runs older than the marker, config.json *and* environment.json."""
    from workbench.runs import is_run_folder
    from workbench.train import fit

    cfg = smoke(tmp_path, "mine")
    folder = tmp_path / "runs" / "mine"
    folder.mkdir(parents=True)
    cfg.save(folder / "config.json")
    (folder / "notes.txt").write_text("my experiment log")
    assert not is_run_folder(folder)
    with pytest.raises(ValueError, match="not a run folder"):
        Run.check_target(cfg, overwrite=True)
    with pytest.raises(ValueError, match="not a run folder"):
        fit(cfg, overwrite=True, progress=False)
    assert (folder / "notes.txt").read_text() == "my experiment log" and (folder / "config.json").exists()


def test_overwrite_replaces_a_run_written_before_the_marker(tmp_path):
    """A run folder from before the marker (config.json and environment.json) is a run: overwrite replaces it
    whole, nothing of the old run stays."""
    from workbench.runs import MARKER, is_run_folder

    old = finished_run(tmp_path, "old")
    (old.path / MARKER).unlink()
    old.log(step=1, **{"loss/total": 9.0})
    assert is_run_folder(old.path)
    new = Run.create(smoke(tmp_path, "old"), overwrite=True)
    assert new.path == old.path and new.status == "created" and new.metrics.empty and new.results == {}
    assert sorted(p.name for p in new.path.iterdir()) == sorted([MARKER, "config.json", "environment.json",
                                                                 "status.json"])


def test_an_empty_folder_is_used_without_overwrite(tmp_path):
    (tmp_path / "runs" / "made-by-hand").mkdir(parents=True)
    run = Run.create(smoke(tmp_path, "made-by-hand"))
    assert run.status == "created"
    with pytest.raises(FileExistsError):  # now it holds a run
        Run.create(smoke(tmp_path, "made-by-hand"))


def test_overwrite_with_a_typo_in_the_method_keeps_the_finished_run(tmp_path):
    from workbench.train import fit

    run = finished_run(tmp_path, "done")
    with pytest.raises(ValueError, match="unknown method 'basline'"):
        fit(smoke(tmp_path, "done", **{"run.method": "basline"}), overwrite=True, progress=False)
    assert run.status == "finished" and run.results["test"]["mean"]["mAP"] == 0.5


# ------------------------------------------------------------------------------------------- item 2: state machine

def test_status_transitions_are_explicit(tmp_path):
    run = Run.create(smoke(tmp_path, "s"))
    assert run.status == "created"
    with pytest.raises(ValueError, match="cannot go from 'created' to 'finished'"):
        run.set_status("finished")
    run.lock()
    run.start_attempt(num_classes=3)
    run.set_status("interrupted", signal="SIGTERM")
    assert run.status_record.signal == "SIGTERM"
    run.start_attempt(num_classes=3)
    run.save_results({**run.results, "test": {"mean": {"mAP": 0.1}}})
    run.set_status("stopped", stop_reason="run.max_steps=2")
    run.start_attempt(num_classes=3)
    assert "test" not in run.results  # a new attempt does not show the numbers of the last one
    run.set_status("finished")
    record = run.status_record
    assert run.results == {"num_classes": 3} and record.signal is None and record.stop_reason is None
    assert (record.status, record.attempts, record.pid) == ("finished", 3, os.getpid())
    with pytest.raises(ValueError, match="cannot go from 'finished' to 'running'"):
        run.start_attempt(num_classes=3)
    with pytest.raises(ValueError, match="start_attempt"):
        run.set_status("running")
    run.unlock()


def test_status_is_its_own_record_and_results_hold_results_only(tmp_path):
    run = Run.create(smoke(tmp_path, "rec"))
    assert json.loads((run.path / "status.json").read_text())["status"] == "created"
    assert not (run.path / "results.json").exists()
    with pytest.raises(ValueError, match="status field"):
        run.save_results({"status": "finished", "test": {}})
    run.start_attempt(num_classes=4, world_size=1)
    assert json.loads((run.path / "results.json").read_text()) == {"num_classes": 4, "world_size": 1}
    assert json.loads((run.path / "status.json").read_text())["status"] == "running"


def test_a_run_written_before_status_json_reads_its_status_from_results_json(tmp_path):
    """Older runs kept status fields in results.json: read them there, and only results in `run.results`."""
    run = Run.create(smoke(tmp_path, "old"))
    (run.path / "status.json").unlink()
    old = {"status": "stopped at run.max_steps", "attempts": 2, "pid": 7, "num_classes": 12,
           "test": {"mean": {"mAP": 0.25}, "std": {"mAP": 0.0}, "per_trial": [{"mAP": 0.25}]}}
    (run.path / "results.json").write_text(json.dumps(old))
    run = load_run(run.path)
    assert (run.status, run.status_record.attempts, run.status_record.pid) == ("stopped", 2, 7)
    assert run.results == {"num_classes": 12, "test": old["test"]}
    assert run.test.mean == {"mAP": 0.25} and run.test.table()["mAP"].tolist() == [0.25]
    run.start_attempt(num_classes=12)  # the resume writes status.json; the status fields leave results.json
    assert run.status_record.attempts == 3
    assert "status" not in json.loads((run.path / "results.json").read_text())


def test_typed_accessors_read_what_fit_records(tmp_path):
    run = Run.create(smoke(tmp_path, "typed"))
    assert (run.test, run.val, run.best_epoch, run.train_time_s, run.num_classes) == (None, {}, None, None, 0)
    run.start_attempt(num_classes=5)
    test = {"mean": {"rank1": 0.5, "mAP": 0.4}, "std": {"rank1": 0.1, "mAP": 0.05},
            "per_trial": [{"rank1": 0.4, "mAP": 0.35}, {"rank1": 0.6, "mAP": 0.45}]}
    run.save_results({"num_classes": 5, "best_epoch": 2, "val": {"mAP": 0.3}, "train_time_s": 12.5, "test": test})
    assert run.test.mean == test["mean"] and run.test.std == test["std"]
    assert run.test.per_trial == tuple(test["per_trial"]) and run.test_rerank is None
    assert (run.val, run.best_epoch, run.train_time_s, run.num_classes) == ({"mAP": 0.3}, 2, 12.5, 5)


def test_a_relative_out_dir_is_taken_from_the_project_folder_not_the_working_directory(tmp_path, monkeypatch):
    from workbench.runs import find_run, list_runs, run_path

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "project"))
    monkeypatch.chdir(tmp_path)
    cfg = smoke(tmp_path, "rel").override(**{"run.out_dir": "my-runs"})
    assert run_path(cfg) == tmp_path / "project" / "my-runs" / "rel"
    run = finished_run_at(cfg)
    assert run.path == tmp_path / "project" / "my-runs" / "rel" and not (tmp_path / "my-runs").exists()
    assert find_run(cfg).path == run.path
    assert list_runs("my-runs")["name"].tolist() == ["rel"]



def test_a_running_run_without_a_live_writer_reads_as_interrupted(tmp_path):
    run = Run.create(smoke(tmp_path, "k"))
    run.start_attempt()  # and then a SIGKILL: the record says "running", no process holds the lock
    assert load_run(run.path).status == "interrupted"
    run.lock()
    assert load_run(run.path).status == "running"  # someone holds the lock: it is really running
    run.unlock()


def test_resume_of_a_finished_run_is_refused(tmp_path):
    from workbench.train import fit

    run = finished_run(tmp_path, "done")
    before = (run.path / "results.json").read_text()
    with pytest.raises(ValueError, match="finished"):
        fit(smoke(tmp_path, "done", **{"optim.epochs": 5}), resume=run.path, progress=False)
    assert (run.path / "results.json").read_text() == before


@pytest.mark.slow
def test_a_run_finished_early_by_a_resume_is_not_reused_as_the_longer_recipe(tmp_path):
    from workbench.runs import find_run
    from workbench.train import fit

    cfg = smoke(tmp_path, "short", **{"optim.epochs": 2})
    stopped = fit(cfg.override(**{"run.max_steps": 3}), progress=False)  # 3 batches per epoch: epoch 1 of 2
    assert stopped.status_record.status == "stopped" and stopped.results["epochs_done"] == 1
    done = fit(cfg.override(**{"optim.epochs": 1}), resume=True, progress=False)
    assert done.status_record.status == "finished" and done.results["epochs_done"] == 1
    assert done.config.optim.epochs == 1  # config.json says what ran
    assert find_run(cfg) is None  # the 2-epoch recipe was never finished
    assert find_run(cfg.override(**{"optim.epochs": 1})).path == done.path


def test_find_run_needs_every_epoch_of_the_recipe(tmp_path):
    from workbench.runs import find_run

    cfg = smoke(tmp_path, "a", **{"optim.epochs": 50})
    run = Run.create(cfg)
    run.start_attempt()
    run.save_results({"epochs_done": 14})
    run.set_status("finished")
    assert find_run(cfg) is None


# ---------------------------------------------------------------------------------------------------- item 5: lock

def test_a_second_writer_is_refused_and_told_who_holds_the_lock(tmp_path):
    from workbench.runs import RunLockedError
    from workbench.train import fit

    run = Run.create(smoke(tmp_path, "busy"))
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from workbench.runs import load_run
            load_run({str(run.path)!r}).lock()
            print("locked", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"process {holder.pid} on"):
            fit(smoke(tmp_path, "busy"), resume=run.path, progress=False)
        with pytest.raises(RunLockedError, match=str(holder.pid)):
            Run.create(smoke(tmp_path, "busy"), overwrite=True)
        assert run.path.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    run.lock()  # released when the holder ended
    run.unlock()


# ------------------------------------------------------------------------------ item 11: damaged files, temp files

@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A smoke run stopped after one step (has checkpoints/last.pt)."""
    from workbench.train import fit

    tmp = tmp_path_factory.mktemp("stopped")
    return fit(smoke(tmp, "stopped", **{"run.max_steps": 1}), progress=False)


def _copy(run, tmp_path):
    import shutil

    dst = tmp_path / "runs" / run.name
    shutil.copytree(run.path, dst)
    return load_run(dst)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "pickle"])
def test_a_damaged_checkpoint_is_refused_in_our_words(stopped_run, tmp_path, damage):
    from workbench.runs import CheckpointError
    from workbench.train import fit

    run = _copy(stopped_run, tmp_path)
    last = run.last_checkpoint
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    else:
        torch.save({"model": _Evil()}, last)
    with pytest.raises(CheckpointError) as info:
        fit(smoke(tmp_path, "stopped", **{"run.max_steps": 1}), resume=run.path, progress=False)
    message = str(info.value)
    assert str(last) in message and "damaged" in message
    assert "weights_only" not in message and "False" not in message
    assert load_run(run.path).status_record.status == "stopped"  # the resume was refused before it started


def test_a_malicious_pretrained_file_is_refused_without_suggesting_unsafe_loading(tmp_path):
    from workbench.models import create_model

    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Evil()}, path)
    with pytest.raises(ValueError) as info:
        create_model("test_vi_resnet", num_classes=0, pretrained=str(path))
    assert str(path) in str(info.value) and "weights_only" not in str(info.value)


@pytest.mark.slow
def test_temp_files_left_by_a_killed_save_are_removed_on_the_next_start(stopped_run, tmp_path):
    from workbench.train import fit

    run = _copy(stopped_run, tmp_path)
    leftover = run.path / "checkpoints" / ".last.pt.x1y2z3.tmp"
    leftover.write_bytes(b"half a checkpoint")
    fit(smoke(tmp_path, "stopped", **{"run.max_steps": 2}), resume=run.path, progress=False)
    assert not leftover.exists()
    assert not list(run.path.rglob("*.tmp"))


# ------------------------------------------------------------------------------------------- item 14: file modes

def test_run_files_are_as_readable_as_config_json(tmp_path):
    run = Run.create(smoke(tmp_path, "m"))
    run.save_results({"num_classes": 3})
    mode = stat.S_IMODE((run.path / "config.json").stat().st_mode)
    for name in ("results.json", "status.json", "environment.json"):
        assert stat.S_IMODE((run.path / name).stat().st_mode) == mode, name
    assert json.loads((run.path / "status.json").read_text())["status"] == "created"
    assert json.loads((run.path / "results.json").read_text()) == {"num_classes": 3}
