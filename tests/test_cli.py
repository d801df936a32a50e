"""The command line (issue 12 items 2, 12, 13, 14): one message per error, stored evaluations per option set,
--resume that keeps its recipe, the notebook runner's --only and parameters."""

import json
import os
import subprocess
import sys

import pytest

from workbench.__main__ import main
from workbench.config import get_config
from workbench.runs import Run


def smoke(tmp_path, name="r", **overrides):
    cfg = get_config("baseline", "synthetic-vi", "smoke")
    return cfg.override(**{"run.out_dir": str(tmp_path), "run.name": name, "run.device": "cpu", **overrides})


# ---------------------------------------------------------------------------------------------- item 13: errors

def test_an_error_prints_one_message_and_no_traceback(tmp_path):
    cmd = [sys.executable, "-m", "workbench", "train", "--profile", "smoke", "--method", "basline",
           f"run.out_dir={tmp_path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "unknown method 'basline'" in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 3
    debug = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, timeout=300, env={**os.environ})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_error_exit_codes_in_process(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WORKBENCH_DEBUG", raising=False)
    assert main(["train", "--profile", "smoke", f"run.out_dir={tmp_path}", "optim.epochs=abc"]) == 1
    err = capsys.readouterr().err
    assert "optim.epochs='abc'" in err and "integer" in err
    monkeypatch.setenv("WORKBENCH_DEBUG", "1")
    with pytest.raises(ValueError, match="optim.epochs"):
        main(["train", "--profile", "smoke", f"run.out_dir={tmp_path}", "optim.epochs=abc"])


@pytest.mark.parametrize("method, dataset, says", [
    ("icre", "synthetic-vi", "'temprature' (did you mean 'temperature'?)"),
    ("dakd_teacher", "synthetic-vi", "'temprature'; its method_options are: caid_weight"),
    ("dakd", "synthetic-vi", "'temprature' (did you mean 'temperatures'?)"),
    ("sd2reid", "synthetic-rgbnt", "'temprature'; its method_options are: cross"),
    ("baseline", "synthetic-vi", "'temprature'; its method_options are: none"),
])
def test_a_misspelt_method_option_stops_the_start_with_one_message_and_no_run_folder(tmp_path, capsys,
                                                                                     monkeypatch, method, dataset,
                                                                                     says):
    """Issue 22 item 1: `train --method icre ... method_options.temprature=2` used to train (and finish) with the
    default temperature; every method now refuses an unknown option before the run folder is made."""
    monkeypatch.delenv("WORKBENCH_DEBUG", raising=False)
    argv = ["train", "--method", method, "--dataset", dataset, "--profile", "smoke", "--name", "bad",
            f"run.out_dir={tmp_path}", "run.device=cpu", "method_options.temprature=2"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"error: method {method!r} has no method_options {says}" in err
    assert len(err.strip().splitlines()) == 2 and "Traceback" not in err  # the message and the --debug hint
    assert not (tmp_path / "bad").exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- item 2: --resume recipe

@pytest.mark.parametrize("flag, value", [("--method", "dakd_teacher"), ("--dataset", "synthetic-rgbnt"),
                                         ("--profile", "paper")])
def test_resume_refuses_a_different_method_dataset_or_profile(tmp_path, capsys, flag, value):
    run = Run.create(smoke(tmp_path, "r"))
    run.start_attempt()
    run.set_status("stopped", stop_reason="run.max_steps=1")
    assert main(["train", "--resume", str(run.path), flag, value]) == 1
    err = capsys.readouterr().err
    assert f"{flag} {value} cannot change it" in err
    assert run.status_record.status == "stopped" and run.status_record.attempts == 1


# ------------------------------------------------------------------------------------- item 12: evaluation files

@pytest.mark.slow
def test_cli_evaluations_are_stored_per_option_set_and_bad_split_options_are_listed(tmp_path, capsys):
    from workbench.evaluate import list_evaluations, load_evaluation
    from workbench.train import fit

    run = fit(smoke(tmp_path, "e", **{"optim.epochs": 1}), progress=False)
    engine = load_evaluation(run)
    assert main(["evaluate", "--run", str(run.path)]) == 0
    out = capsys.readouterr().out
    assert "synthetic-vi (sysu-mm01) [feats] (10 trials)" in out and f"saved {engine.path}" in out
    assert main(["evaluate", "--run", str(run.path), "--split", "mode=indoor"]) == 0
    assert main(["evaluate", "--run", str(run.path), "--rerank", "--split", "mode=indoor"]) == 0
    evals = {(tuple(e.identity["split_options"].items()), e.identity["rerank"]): e for e in list_evaluations(run)}
    assert set(evals) == {((), False), ((("mode", "indoor"),), False), ((("mode", "indoor"),), True)}
    assert not list(run.path.glob("evaluation*.json")), "the command line writes under evaluations/ only"
    # the default protocol recomputed from the selected weights: the engine's numbers, in the same folder
    default = evals[(), False]
    assert default.path == engine.path and default.mean == run.results["test"]["mean"]
    assert evals[(("mode", "indoor"),), True].spec.rerank and evals[(("mode", "indoor"),), False].key != default.key
    assert main(["evaluate", "--run", str(run.path), "--split", "modee=indoor"]) == 1
    err = capsys.readouterr().err
    assert "modee" in err and "mode=" in err and "TypeError" not in err


# ------------------------------------------------------------------------------------ item 14: notebook runner

@pytest.mark.parametrize("only", [["0"], [""], ["1x"], ["09"]])
def test_notebook_runner_refuses_an_only_that_matches_nothing_and_lists_the_names(only, capsys, monkeypatch,
                                                                                  tmp_path):
    import workbench.notebooks as nbs

    ran = []
    monkeypatch.setattr(nbs, "execute", lambda nb, *a, **k: ran.append(nb) or {})
    assert nbs.main(["run", "--out", str(tmp_path / "out"), "--only", *only]) == 2
    assert ran == [] and not (tmp_path / "out").exists()
    assert "01_data_tour" in capsys.readouterr().err


def test_notebook_runner_only_by_number_or_name():
    from workbench.notebooks import select_notebooks

    assert [nb.stem for nb in select_notebooks(["1", "02_baselines"])] == ["01_data_tour", "02_baselines"]


def test_shared_parameters_go_only_to_notebooks_that_declare_them(tmp_path, monkeypatch):
    import papermill

    import workbench.notebooks as nbs

    seen = {}

    def fake_execute(source, output, parameters=None, **kwargs):
        seen[os.path.basename(source)] = dict(parameters or {})
        with open(output, "w") as f:
            json.dump({"cells": []}, f)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    for nb in nbs.list_notebooks():
        nbs.execute(nb, tmp_path, parameters={"SMOKE": True, "RUNS_DIR": str(tmp_path / "runs")})
    assert "RUNS_DIR" not in seen["01_data_tour.ipynb"] and seen["01_data_tour.ipynb"]["SMOKE"] is True
    assert seen["02_baselines.ipynb"]["RUNS_DIR"] == str(tmp_path / "runs")
