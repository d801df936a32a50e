"""Step records kept on the device and written every `run.log_every` steps (issue 23): the same metrics.jsonl, line
for line, as writing every step; a non-finite loss still stops training at its own step with the same message."""

import json
import re

import pytest
import torch

from workbench.config import Config, get_config
from workbench.runs import Run
from workbench.train import TrainingDiverged, TrainLog, fit


def _log(tmp_path, every):
    run = Run.create(Config().override(**{"run.out_dir": str(tmp_path), "run.name": f"log{every}"}))
    calls: list[list[dict]] = []
    return run, calls, TrainLog(run, [run.log_records, calls.append], every=every)


def _step(log, step, total):
    terms = {"id": torch.tensor(total - 1.0), "triplet": torch.tensor(1.0)}
    return log.step({"step": step, "epoch": 1, "lr": 0.1}, terms, torch.stack(list(terms.values())).sum())


def test_records_are_written_every_n_steps_in_order_and_flushed_on_demand(tmp_path):
    run, calls, log = _log(tmp_path, 3)
    written = [_step(log, s, float(s)) for s in range(1, 8)]
    assert [len(w) for w in written] == [0, 0, 3, 0, 0, 3, 0]  # nothing crosses to the host in between
    log.write({"step": 7, "epoch": 1, "val/mAP": 0.5})  # another record: the kept step goes first
    assert [[r["step"] for r in c] for c in calls] == [[1, 2, 3], [4, 5, 6], [7], [7]]
    lines = [json.loads(ln) for ln in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [1, 2, 3, 4, 5, 6, 7, 7]
    assert lines[4] == {"step": 5, "epoch": 1, "lr": 0.1, "loss/id": 4.0, "loss/triplet": 1.0, "loss/total": 5.0}
    assert log.flush() == []


def test_a_non_finite_step_writes_the_steps_before_it_and_names_its_own(tmp_path):
    run, calls, log = _log(tmp_path, 4)
    _step(log, 1, 2.0)
    _step(log, 2, float("nan"))
    _step(log, 3, 2.0)
    with pytest.raises(TrainingDiverged, match=r"not finite at epoch 1, step 2: \{'id': nan, 'triplet': 1.0\}. "
                                               r"Training stopped; no checkpoint was written yet"):
        _step(log, 4, 2.0)
    assert [[r["step"] for r in c] for c in calls] == [[1]]
    assert [json.loads(ln)["step"] for ln in (run.path / "metrics.jsonl").read_text().splitlines()] == [1]


# ------------------------------------------------------------------------------------------------- end to end

def smoke(tmp_path, name, **overrides):
    cfg = get_config("baseline", "synthetic-vi", "smoke")
    return cfg.override(**{"run.out_dir": str(tmp_path), "run.name": name, "run.device": "cpu", **overrides})


def _untimed(run) -> list[str]:
    """metrics.jsonl's lines as written, less the timing field."""
    return [re.sub(r', "train_time_s": [0-9.e-]+', "", ln) for ln in (run.path / "metrics.jsonl").read_text()
            .splitlines()]


@pytest.mark.slow
def test_log_every_n_writes_the_same_metrics_as_every_step(tmp_path):
    every = fit(smoke(tmp_path, "every"), progress=False)
    batched = fit(smoke(tmp_path, "batched", **{"run.log_every": 4}), progress=False)  # 3 steps an epoch
    assert '"train_time_s"' in (every.path / "metrics.jsonl").read_text()
    assert _untimed(batched) == _untimed(every) and len(_untimed(every)) == 6 + 2 + 1  # steps, validations, test
    assert batched.results["test"] == every.results["test"] and batched.best_epoch == every.best_epoch


@pytest.mark.slow
@pytest.mark.parametrize("log_every", [1, 4])
def test_a_nan_at_step_k_is_reported_at_step_k_whatever_log_every(tmp_path, monkeypatch, log_every):
    from workbench.methods.baseline import Baseline

    original, calls = Baseline.training_losses, {"n": 0}

    def poisoned(self, model, batch, cfg):
        calls["n"] += 1
        terms = original(self, model, batch, cfg)
        if calls["n"] == 5:  # second epoch, second batch
            terms["id"] = terms["id"] * float("nan")
        return terms

    monkeypatch.setattr(Baseline, "training_losses", poisoned)
    with pytest.raises(TrainingDiverged, match="not finite at epoch 2, step 5: .*the last good checkpoint is"):
        fit(smoke(tmp_path, "nan", **{"run.log_every": log_every}), progress=False)
    state = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert (state["step"], state["epoch"]) == (3, 1)  # nothing trained after the NaN was saved
    logged = [json.loads(ln) for ln in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss/total" in r] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "nan" / "status.json").read_text())["status"] == "failed"
