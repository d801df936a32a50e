"""Exact resume after an interrupt at any point (issue 12 items 3, 4, 8; issue 13 "Resume").

The reference is an uninterrupted run; an interrupted run resumed from its checkpoint must log the same loss and
learning rate at every step, the same validation scores, select the same epoch and report the same test numbers.
The schedule has a warm-up and a step (a scheduler that is not restored shows in the lr column) and validation
every epoch (a best-so-far record that is not restored shows in the selection).
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from workbench.config import get_config
from workbench.runs import load_run
from workbench.train import TrainingDiverged, fit

pytestmark = pytest.mark.slow

SCHEDULE = {"optim.schedule": "step", "optim.warmup_epochs": 3, "optim.warmup_start": 0.1, "optim.milestones": (3,),
            "optim.epochs": 4, "data.batches_per_epoch": 2, "run.eval_every": 1}


def smoke(out, name, method="baseline", **overrides):
    cfg = get_config(method, "synthetic-vi", "smoke")
    return cfg.override(**{"run.out_dir": str(out), "run.name": name, "run.device": "cpu", **overrides})


def steps(run):
    m = run.metrics
    rows = m.dropna(subset=["loss/total"])
    return rows["step"].tolist(), rows["loss/total"].to_numpy(), rows["lr"].to_numpy()


def validations(run):
    m = run.metrics
    rows = m.dropna(subset=["val/mAP"]) if "val/mAP" in m else m.iloc[:0]
    return list(zip(rows["step"].tolist(), rows["val/mAP"].tolist()))


def assert_same_run(a, b):
    sa, la, lra = steps(a)
    sb, lb, lrb = steps(b)
    assert sa == sb
    np.testing.assert_array_equal(lra, lrb)  # the schedule: warm-up then the step
    np.testing.assert_array_equal(la, lb)
    assert validations(a) == validations(b)
    ra, rb = a.results, b.results
    assert a.status_record.status == b.status_record.status
    assert (ra["best_epoch"], ra["val"]) == (rb["best_epoch"], rb["val"])
    assert ra["test"]["mean"] == rb["test"]["mean"]


def interrupt(fn, *args, **kwargs):
    """Run fit, which an injected signal interrupts; returns the run folder from the exception (or the run)."""
    try:
        return fn(*args, **kwargs).path
    except KeyboardInterrupt as exc:
        return getattr(exc, "run_path", None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    run = fit(smoke(out, "ref", **SCHEDULE), progress=False)
    lrs = steps(run)[2]
    assert len(set(lrs.round(12))) == 3 and len(validations(run)) == 4  # warm-up 0.1, 0.55, 1, then x0.1 at 3; 4 validations
    return run


def _kill_self(sig=signal.SIGINT):
    os.kill(os.getpid(), sig)


def test_interrupt_mid_epoch_resumes_exactly(reference, tmp_path):
    def at_step_3(record):
        if record.get("step") == 3 and "loss/total" in record:
            _kill_self()

    with pytest.raises(KeyboardInterrupt):
        fit(smoke(tmp_path, "r", **SCHEDULE), callbacks=[at_step_3], progress=False)
    run = load_run(tmp_path / "r")
    assert run.status_record.status == "interrupted"
    state = torch.load(run.last_checkpoint, weights_only=True)
    assert (state["epoch"], state["consumed"], state["step"]) == (1, 1, 3)
    assert_same_run(reference, fit(smoke(tmp_path, "r", **SCHEDULE), resume=True, progress=False))


def test_interrupt_during_validation_resumes_exactly(reference, tmp_path, monkeypatch):
    import workbench.train as train

    real, calls = train.score_validation, {"n": 0}

    def interrupted_validation(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the validation after epoch 2 (the scheduler has stepped to epoch 3)
            _kill_self()
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "score_validation", interrupted_validation)
    interrupt(fit, smoke(tmp_path, "v", **SCHEDULE), progress=False)
    monkeypatch.setattr(train, "score_validation", real)
    run = load_run(tmp_path / "v")
    assert run.status_record.status == "interrupted"
    state = torch.load(run.last_checkpoint, weights_only=True)
    assert (state["epoch"], state["consumed"], state["pending_validation"]) == (2, 0, True)  # the boundary, owed
    assert_same_run(reference, fit(smoke(tmp_path, "v", **SCHEDULE), resume=True, progress=False))


def test_interrupt_during_a_checkpoint_write_resumes_exactly(reference, tmp_path, monkeypatch):
    import workbench.checkpoint as checkpoint

    real, calls = checkpoint.atomic_torch_save, {"n": 0}

    def interrupted_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the end-of-epoch-2 checkpoint
            _kill_self(signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_torch_save", interrupted_save)
    interrupt(fit, smoke(tmp_path, "c", **SCHEDULE), progress=False)
    monkeypatch.setattr(checkpoint, "atomic_torch_save", real)
    run = load_run(tmp_path / "c")
    assert run.status_record.status == "interrupted" and run.status_record.signal == "SIGTERM"
    assert_same_run(reference, fit(smoke(tmp_path, "c", **SCHEDULE), resume=True, progress=False))


def test_dakd_teacher_resumed_mid_epoch_logs_the_same_losses(tmp_path):
    """The teacher memories are built at the epoch start and updated every step: a resume restores them."""
    full = fit(smoke(tmp_path, "full", "dakd_teacher"), progress=False)

    def at_step_5(record):
        if record.get("step") == 5 and "loss/total" in record:
            _kill_self()

    interrupt(fit, smoke(tmp_path, "part", "dakd_teacher"), callbacks=[at_step_5], progress=False)
    state = torch.load(tmp_path / "part" / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["consumed"]) == (1, 2)  # two batches into the second epoch
    resumed = fit(smoke(tmp_path, "part", "dakd_teacher"), resume=True, progress=False)
    a, b = full.metrics.dropna(subset=["loss/total"]), resumed.metrics.dropna(subset=["loss/total"])
    assert a["step"].tolist() == b["step"].tolist() == list(range(1, 7))
    for column in [c for c in a.columns if c.startswith("loss/")]:
        np.testing.assert_array_equal(a[column].to_numpy(), b[column].to_numpy(), err_msg=column)
    assert set(state["method"]["memories"]) == {"global_", "rgb", "ir", "ca"}  # through Method.state_dict()


# ------------------------------------------------------------------------------------------- signals, subprocess

def _train_until(tmp_path, name, n_steps, sig):
    # the same intra-op thread count as this process: the in-process reference must add floats in the same order
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    cmd = [sys.executable, "-m", "workbench", "train", "--dataset", "synthetic-vi", "--profile", "smoke",
           "--name", name, f"run.out_dir={tmp_path}", "run.device=cpu", "optim.epochs=50"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / name / "metrics.jsonl"
    deadline, seen = time.monotonic() + 900, 0  # generous: a loaded machine starts python and torch slowly
    while time.monotonic() < deadline and proc.poll() is None and seen < n_steps:
        if metrics.exists():
            seen = sum('"loss/total"' in ln for ln in metrics.read_text().splitlines())
        time.sleep(0.05)
    if seen < n_steps or proc.poll() is not None:
        proc.kill()
        pytest.fail(f"training logged {seen} steps before the signal (rc {proc.poll()}): {proc.communicate()[1][-2000:]}")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_the_state_marks_the_run_interrupted_and_exits_non_zero(tmp_path, sig, code):
    rc, err = _train_until(tmp_path, "sig", 2, sig)
    assert rc == code, err[-2000:]
    assert "Traceback" not in err and "--resume" in err
    run = load_run(tmp_path / "sig")
    assert run.status_record.status == "interrupted" and run.status_record.signal == signal.Signals(sig).name
    state = torch.load(run.last_checkpoint, weights_only=True)
    logged = run.metrics.dropna(subset=["loss/total"])["step"].tolist()
    assert state["step"] == logged[-1] == len(logged) >= 2  # nothing trained that the checkpoint does not hold
    if sig == signal.SIGTERM:  # the resume is exact: the same losses as an uninterrupted run to the same step
        stop = {"optim.epochs": 50, "run.max_steps": state["step"] + 2}
        resumed = fit(smoke(tmp_path, "sig", **stop), resume=True, progress=False)
        ref = fit(smoke(tmp_path, "ref", **stop), progress=False)
        assert steps(resumed)[0] == steps(ref)[0] == list(range(1, state["step"] + 3))
        np.testing.assert_array_equal(steps(resumed)[1], steps(ref)[1])


# ---------------------------------------------------------------------------------------------- item 8: NaN start

def test_nan_at_the_first_step_says_there_is_no_checkpoint_and_marks_the_run_failed(tmp_path, monkeypatch):
    from workbench.methods.baseline import Baseline

    original = Baseline.training_losses

    def poisoned(self, model, batch, cfg):
        terms = original(self, model, batch, cfg)
        terms["id"] = terms["id"] * float("nan")
        return terms

    monkeypatch.setattr(Baseline, "training_losses", poisoned)
    with pytest.raises(TrainingDiverged) as info:
        fit(smoke(tmp_path, "nan"), progress=False)
    assert "no checkpoint was written yet" in str(info.value) and "last.pt" not in str(info.value)
    status = json.loads((tmp_path / "nan" / "status.json").read_text())
    assert status["status"] == "failed" and "not finite" in status["error"]
    monkeypatch.setattr(Baseline, "training_losses", original)
    # a failed run that never wrote a checkpoint can be resumed: it starts over
    again = fit(smoke(tmp_path, "nan", **{"run.max_steps": 1}), resume=True, progress=False)
    assert again.status_record.status == "stopped" and again.results["steps"] == 1
