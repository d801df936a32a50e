"""The training engine end to end on tiny synthetic data: fit, validation-based selection, exact resume, NaN stop,
data-parallel agreement, the CLI."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.config import get_config
from workbench.methods import load_run_model
from workbench.runs import load_run
from workbench.train import TrainingDiverged, fit

pytestmark = pytest.mark.slow


def smoke(tmp_path, dataset="synthetic-vi", name="run", **overrides):
    cfg = get_config("baseline", dataset, "smoke")
    return cfg.override(**{"run.out_dir": str(tmp_path), "run.name": name, "run.device": "cpu", **overrides})


@pytest.mark.parametrize("dataset", ["synthetic-vi", "synthetic-rgbnt"])
def test_fit_selects_on_validation_and_reports_test_separately(tmp_path, dataset):
    run = fit(smoke(tmp_path, dataset), progress=False)
    res = run.results
    assert run.status == "finished"
    assert res["best_epoch"] in (1, 2) and set(res["val"]) >= {"mAP", "rank1"}
    test = res["test"]["mean"]
    metrics = run.metrics
    losses = metrics["loss/total"].dropna()
    assert len(losses) == res["steps"] and np.isfinite(losses).all()
    assert {"loss/id", "loss/triplet"} <= set(metrics.columns)
    # the validation-selected weights are the ones saved as best, and evaluation of the run reproduces the test score
    model = load_run_model(run)
    assert not model.training
    from workbench.train import evaluate

    again = evaluate(run, progress=False, cache=False)
    for key in ("rank1", "mAP", "mINP"):
        assert again.mean[key] == pytest.approx(test[key], abs=1e-6), key


def test_resume_mid_epoch_gives_the_same_losses_as_an_uninterrupted_run(tmp_path):
    full = fit(smoke(tmp_path, name="full"), progress=False)
    part = fit(smoke(tmp_path, name="part", **{"run.max_steps": 4}), progress=False)
    assert part.status_record.status == "stopped" and part.status_record.stop_reason == "run.max_steps=4"
    state = torch.load(part.last_checkpoint, weights_only=True)
    assert (state["epoch"], state["consumed"], state["step"]) == (1, 1, 4)  # one batch into the second epoch
    resumed = fit(smoke(tmp_path, name="part"), resume=True, progress=False)
    a = full.metrics.dropna(subset=["loss/total"])
    b = resumed.metrics.dropna(subset=["loss/total"])
    assert a["step"].tolist() == b["step"].tolist()
    np.testing.assert_array_equal(a["loss/total"].to_numpy(), b["loss/total"].to_numpy())
    assert resumed.results["test"]["mean"]["mAP"] == pytest.approx(full.results["test"]["mean"]["mAP"], abs=1e-9)


def test_resume_refuses_a_changed_recipe(tmp_path):
    fit(smoke(tmp_path, name="r", **{"run.max_steps": 2}), progress=False)
    with pytest.raises(ValueError, match="optim.lr"):
        fit(smoke(tmp_path, name="r", **{"optim.lr": 0.5}), resume=True, progress=False)


def test_existing_run_is_not_overwritten(tmp_path):
    fit(smoke(tmp_path, name="r", **{"run.max_steps": 1}), progress=False)
    with pytest.raises(FileExistsError, match="resume"):
        fit(smoke(tmp_path, name="r"), progress=False)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from workbench.methods.baseline import Baseline

    original = Baseline.training_losses
    calls = {"n": 0}

    def poisoned(self, model, batch, cfg):
        calls["n"] += 1
        terms = original(self, model, batch, cfg)
        if calls["n"] == 5:  # second epoch, second batch
            terms["id"] = terms["id"] * float("nan")
        return terms

    monkeypatch.setattr(Baseline, "training_losses", poisoned)
    cfg = smoke(tmp_path, name="nan")
    with pytest.raises(TrainingDiverged, match="not finite at epoch 2, step 5"):
        fit(cfg, progress=False)
    state = torch.load(Path(tmp_path) / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3 and state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_two_process_data_parallel_replicas_agree(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: torchrun binds a free port itself (a fixed port collides with a concurrent run)
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "workbench", "train",
           "--dataset", "synthetic-vi", "--profile", "smoke", "--name", "ddp",
           f"run.out_dir={tmp_path}", "run.device=cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = load_run(tmp_path / "ddp").results
    assert res["world_size"] == 2 and load_run(tmp_path / "ddp").status_record.status == "finished"
    a, b = res["replica_checksums"]
    assert math.isfinite(a) and a == b
    # smoke: 3 batches per epoch shared by 2 ranks (padded to 2 each), 2 epochs
    assert res["steps"] == math.ceil(3 / 2) * 2


def test_cli_train_resume_then_evaluate(tmp_path):
    env = {**os.environ}
    out = subprocess.run([sys.executable, "-m", "workbench", "train", "--dataset", "synthetic-vi", "--profile", "smoke",
                          "--name", "cli", f"run.out_dir={tmp_path}", "run.device=cpu", "run.max_steps=2"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout[out.stdout.index("{"):])["status"].startswith("stopped")
    out = subprocess.run([sys.executable, "-m", "workbench", "train", "--resume", str(tmp_path / "cli"),
                          "run.max_steps=none", "optim.epochs=1"], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout[out.stdout.index("{"):])["status"] == "finished"
    ev = subprocess.run([sys.executable, "-m", "workbench", "evaluate", "--run", str(tmp_path / "cli")],
                        env=env, capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-3000:]
    from workbench.evaluate import load_evaluation

    saved = load_evaluation(tmp_path / "cli")  # the command line stores under evaluations/, where fit stored the test
    assert saved.mean["mAP"] == pytest.approx(load_run(tmp_path / "cli").results["test"]["mean"]["mAP"], abs=1e-6)
    assert f"saved {saved.path}" in ev.stdout


def test_multimodal_evaluation_uses_the_concatenated_embedding_and_branches_on_request(tmp_path):
    from workbench.data import load_dataset
    from workbench.metrics import PROTOCOLS, evaluate_trials
    from workbench.train import evaluate, extract_features

    run = fit(smoke(tmp_path, "synthetic-rgbnt"), progress=False)
    cfg, model = run.config, load_run_model(run)
    ds = load_dataset(cfg.data.dataset, **cfg.data.options)
    split = ds.eval_splits()[0]
    feats = extract_features(model, split.query, cfg, progress=False)
    assert set(feats.branches) == {"feats", "rgb", "nir", "tir"}
    np.testing.assert_allclose(feats.branches["feats"],
                               np.concatenate([feats.branches[m] for m in ("rgb", "nir", "tir")], axis=1), atol=1e-6)
    default = evaluate(run, progress=False, cache=False)
    only = evaluate_trials([(feats.subset(np.arange(len(split.query))),) * 2], PROTOCOLS["rgbnt201"], branches=["feats"])
    assert default.mean["mAP"] == pytest.approx(only.mean["mAP"], abs=1e-9)
    nir = evaluate(run, branches=["nir"], progress=False, cache=False)
    only_nir = evaluate_trials([(feats.subset(np.arange(len(split.query))),) * 2], PROTOCOLS["rgbnt201"],
                               branches=["nir"])
    assert nir.mean["mAP"] == pytest.approx(only_nir.mean["mAP"], abs=1e-9)
    assert nir.mean["mAP"] != pytest.approx(default.mean["mAP"], abs=1e-6)  # the branch was actually selected


def test_cli_dakd_teacher_then_student(tmp_path):
    env = {**os.environ}
    base = [sys.executable, "-m", "workbench", "train", "--dataset", "synthetic-vi", "--profile", "smoke",
            f"run.out_dir={tmp_path}", "run.device=cpu", "optim.epochs=1"]
    out = subprocess.run(base + ["--method", "dakd_teacher", "--name", "teacher"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    out = subprocess.run(base + ["--method", "dakd", "--name", "student",
                                 f"method_options.teacher={tmp_path / 'teacher'}", "method_options.mask_mode=gt"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    student = load_run(tmp_path / "student")
    assert student.status_record.status == "finished"
    assert student.config.method_options == {"teacher": str(tmp_path / "teacher"), "mask_mode": "gt"}
    terms = {c.removeprefix("loss/") for c in student.metrics.columns if c.startswith("loss/")}
    assert terms == {"inst_weak", "inst_strong", "cls_weak", "cls_strong", "total"}
    # the logged total is the sum of the logged terms, for the student and for the teacher (all five MCE terms)
    for run, names in ((student, ("inst_weak", "inst_strong", "cls_weak", "cls_strong")),
                       (load_run(tmp_path / "teacher"), ("gc", "mem", "sid", "caid", "kl"))):
        logged = run.metrics.dropna(subset=["loss/total"])
        assert len(logged) == run.results["steps"] > 0
        np.testing.assert_allclose(logged["loss/total"], logged[[f"loss/{n}" for n in names]].sum(axis=1), rtol=1e-5)


def test_a_resume_may_change_log_every_and_logs_what_an_uninterrupted_run_logs(tmp_path):
    """run.log_every is a display option: a run stopped mid-epoch with its last steps kept on the device (every 4
    steps) and resumed writing every 2 steps leaves the same metrics.jsonl as a run never stopped."""
    import re

    def untimed(run):
        return [re.sub(r', "train_time_s": [0-9.e-]+', "", ln) for ln in
                (run.path / "metrics.jsonl").read_text().splitlines()]

    full = fit(smoke(tmp_path, name="full"), progress=False)
    fit(smoke(tmp_path, name="part", **{"run.max_steps": 4, "run.log_every": 4}), progress=False)
    resumed = fit(smoke(tmp_path, name="part", **{"run.log_every": 2}), resume=True, progress=False)
    assert resumed.config.run.log_every == 2 and resumed.status == "finished"
    assert untimed(resumed) == untimed(full) and len(untimed(full)) == 6 + 2 + 1  # steps, validations, test
