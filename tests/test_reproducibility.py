"""Same inputs, same numbers (issue 22 item 2).

A cache build never touches the random state of the run that asked for it; two processes asking for the same
missing cache entry build it once; a run records what it started from (initial weights, data) and a resume refuses
a changed start.
"""

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.config import get_config
from workbench.runs import load_run
from workbench.utils import build_lock, preserved_rng

REPO = Path(__file__).resolve().parent.parent


def test_preserved_rng_restores_every_generator_whatever_the_block_draws():
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    with preserved_rng():
        torch.manual_seed(12345)  # what the stand-in build did inside a run
        np.random.seed(99)
        random.seed(7)
        torch.randn(1000), np.random.rand(1000), random.random()
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_preserved_rng_restores_after_an_error():
    torch.manual_seed(0)
    before = torch.get_rng_state().clone()
    with pytest.raises(RuntimeError), preserved_rng():
        torch.randn(10)
        raise RuntimeError("build failed")
    assert torch.equal(torch.get_rng_state(), before)


_BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from workbench.utils import build_lock
    entry, go, log = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.01)
    if not entry.exists():
        with build_lock(entry, "a test entry"):
            if not entry.exists():
                with open(log, "a") as f:
                    f.write("built\\n")
                time.sleep(1.0)  # a slow build: the other process arrives while it runs
                tmp = entry.with_suffix(".tmp")
                tmp.write_text("content")
                tmp.rename(entry)
    print(entry.read_text())
""")


def test_two_processes_build_a_missing_entry_once_and_both_read_it(tmp_path):
    script = tmp_path / "builder.py"
    script.write_text(_BUILDER)
    entry, go, log = tmp_path / "cache" / "entry.txt", tmp_path / "go", tmp_path / "log.txt"
    entry.parent.mkdir()
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, str(script), str(entry), str(go), str(log)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert log.read_text().splitlines() == ["built"]  # one build
    assert [o[0].strip() for o in outs] == ["content", "content"]
    waited = [o[1] for o in outs if "waiting for process" in o[1]]
    assert len(waited) <= 1


def test_build_lock_names_its_holder(tmp_path, capfd):
    entry = tmp_path / "x"
    with build_lock(entry, "x"):
        holder = (tmp_path / ".x.lock").read_text()
    assert holder.startswith("process ")


def _smoke(out, name, **overrides):
    cfg = get_config("baseline", "synthetic-vi", "smoke")
    return cfg.override(**{"run.out_dir": str(out), "run.name": name, "run.device": "cpu",
                           "data.batches_per_epoch": 2, **overrides})


@pytest.mark.slow
def test_a_run_records_its_start_and_a_resume_refuses_other_initial_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    from workbench.methods import get_method
    from workbench.train import fit

    cfg = get_config("baseline", "synthetic-vi", "smoke")
    model = get_method("baseline").build_model(cfg, num_classes=12)
    weights = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    run = fit(_smoke(tmp_path / "runs", "r", **{"model.pretrained": str(weights), "run.max_steps": 3}),
              progress=False)
    start = load_run(run.path).environment["start"]
    assert set(start) == {"weights", "data"} and all(len(v) == 40 for v in start.values())
    state = load_file(str(weights))
    key = next(k for k in state if k.endswith("weight") and state[k].dim() == 4)
    state[key] = state[key] + 0.01  # the pretrained file changed under the run
    save_file(state, str(weights))
    with pytest.raises(ValueError, match="initial weights"):
        fit(_smoke(tmp_path / "runs", "r", **{"model.pretrained": str(weights), "run.max_steps": 6}),
            resume=run.path, progress=False)


@pytest.mark.slow
def test_a_resume_refuses_changed_data_and_continues_on_the_same(tmp_path, monkeypatch):
    from workbench.data import load_dataset
    from workbench.train import fit

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    cfg = _smoke(tmp_path / "runs", "d", **{"run.max_steps": 2})
    run = fit(cfg, progress=False)
    resumed = fit(cfg.override(**{"run.max_steps": 3}), resume=run.path, progress=False)  # same start: fine
    assert resumed.results["steps"] == 3
    ds = load_dataset(cfg.data.dataset, **cfg.data.options)
    image = Path(ds.train[0].paths["rgb"])
    image.write_bytes(image.read_bytes() + b"\0")  # one training image of the export changed
    with pytest.raises(ValueError, match="dataset files"):
        fit(cfg.override(**{"run.max_steps": 4}), resume=run.path, progress=False)


def test_data_fingerprint_ignores_where_the_dataset_lies_and_sees_its_files(tmp_path):
    import shutil

    from workbench.data import load_dataset
    from workbench.features import data_fingerprint

    root = tmp_path / "a"
    subprocess.run([sys.executable, "-m", "workbench.data.synthetic", "--layout", "rgbnt201", "--out", str(root),
                    "--ids", "6"], check=True, capture_output=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    moved = tmp_path / "b"
    shutil.copytree(root, moved)
    a, b = load_dataset("rgbnt201", root=root), load_dataset("rgbnt201", root=moved)
    assert data_fingerprint(a) == data_fingerprint(b)
    f = Path(b.query[0].paths["rgb"])
    f.write_bytes(f.read_bytes() + b"\0")
    assert data_fingerprint(a) != data_fingerprint(load_dataset("rgbnt201", root=moved))


def test_environment_json_is_json(tmp_path):
    from workbench.runs import Run

    cfg = _smoke(tmp_path / "runs", "e")
    run = Run.create(cfg, start={"weights": "w" * 40, "data": "d" * 40})
    env = json.loads((run.path / "environment.json").read_text())
    assert env["start"]["data"] == "d" * 40
    assert env["threads"] == torch.get_num_threads()  # the trained numbers depend on it
    with pytest.raises(ValueError, match="initial weights"):
        run.check_start({"weights": "x" * 40, "data": "d" * 40})
    run.check_start({"weights": "w" * 40, "data": "d" * 40})


_TINY_STANDIN = {"pool_ids": 24, "images_per_id": 2, "holdout_ids": 4, "height": 64, "width": 32, "epochs": 1,
                 "batch_size": 16}


def _tiny_standin(monkeypatch, tmp_path):
    """Every default stand-in recipe becomes a seconds-long one, cached under tmp_path (cold at first)."""
    import dataclasses

    from workbench import pretrain

    tiny = dataclasses.replace(pretrain.StandInRecipe(), **_TINY_STANDIN)
    monkeypatch.setattr(pretrain, "StandInRecipe", lambda: tiny)
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tiny


@pytest.mark.slow
def test_a_cold_stand_in_build_leaves_the_runs_numbers_as_a_warm_cache_gives_them(tmp_path, monkeypatch):
    """Issue 22: the stand-in's `torch.manual_seed(recipe.seed)` ran inside the run that asked for it, after the run
    had seeded itself, so a cold cache trained on other random draws than a warm one."""
    from workbench.train import fit

    _tiny_standin(monkeypatch, tmp_path)
    cfg = _smoke(tmp_path / "runs", "cold", **{"model.pretrained": "synthetic", "run.max_steps": 4})
    assert not list((tmp_path / "cache").glob("standin/*.safetensors"))
    cold = fit(cfg, progress=False)
    assert len(list((tmp_path / "cache").glob("standin/*.safetensors"))) == 1  # the build happened inside the run
    warm = fit(cfg.override(**{"run.name": "warm"}), progress=False)
    losses = [load_run(r.path).metrics["loss/total"].dropna().tolist() for r in (cold, warm)]
    assert len(losses[0]) == 4 and losses[0] == losses[1]
    assert load_run(cold.path).test.mean == load_run(warm.path).test.mean


_STANDIN_BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import dataclasses
    from workbench import pretrain
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.01)
    recipe = dataclasses.replace(pretrain.StandInRecipe(), **{tiny})
    print(pretrain.standin_weights("test_vi_resnet", recipe, progress=False))
""")


@pytest.mark.slow
def test_two_processes_missing_the_same_stand_in_build_it_once(tmp_path):
    script = tmp_path / "standin.py"
    script.write_text(_STANDIN_BUILDER.replace("{tiny}", repr(_TINY_STANDIN)))
    go = tmp_path / "go"
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "WORKBENCH_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(go)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    paths = [o[0].strip().splitlines()[-1] for o in outs]
    assert paths[0] == paths[1]
    assert sum(o[0].count("pre-training the stand-in") for o in outs) == 1  # one build, the other waited and read
    assert len(list((tmp_path / "cache" / "standin").glob("*.safetensors"))) == 1


@pytest.mark.slow
@pytest.mark.notebooks
def test_the_command_line_and_a_notebook_log_the_same_first_steps(tmp_path):
    """Issue 22: the same configuration from `python -m workbench train` and from a notebook cell that calls
    `train.fit` logs identical losses at steps 1 to 5 (a notebook kernel imports more, and must not draw more)."""
    import nbformat
    from nbclient import NotebookClient

    env = {**os.environ, "PYTHONPATH": str(REPO), "WORKBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    runs = tmp_path / "runs"
    changes = {"run.max_steps": "5", "run.out_dir": str(runs), "run.device": "cpu", "data.batches_per_epoch": "5"}
    done = subprocess.run([sys.executable, "-m", "workbench", "train", "--dataset", "synthetic-vi", "--profile", "smoke",
                           "--name", "cli", *[f"{k}={v}" for k, v in changes.items()]],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    typed = {"run.max_steps": 5, "run.out_dir": str(runs), "run.device": "cpu", "data.batches_per_epoch": 5,
             "run.name": "notebook"}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfrom workbench import config, train, viz"),
        nbformat.v4.new_code_cell(f"cfg = config.get_config('baseline', 'synthetic-vi', 'smoke').override(**{typed!r})\n"
                                  "train.fit(cfg, progress=False)")])
    old = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    losses = {name: load_run(runs / name).metrics.dropna(subset=["loss/total"]) for name in ("cli", "notebook")}
    terms = [c for c in losses["cli"].columns if c.startswith("loss/")]
    assert len(losses["cli"]) == 5 and terms
    for term in terms:
        assert losses["cli"][term].tolist() == losses["notebook"][term].tolist(), term


def test_the_demo_reproducibility_check_separates_numbers_from_timings():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_repro", REPO / "benchmarks" / "bench_reproducible_demo.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    first = {"02": {"records": {"vi_mAP": 0.25, "vi_train_time_s": 100.0, "ci": [0.1, 0.2], "n": float("nan")}}}
    same = {"02": {"records": {"vi_mAP": 0.25, "vi_train_time_s": 93.0, "ci": [0.1, 0.2], "n": float("nan")}}}
    numbers, timings = bench.differences(first, same)
    assert numbers == [] and len(timings) == 1 and "vi_train_time_s" in timings[0]
    moved = {"02": {"records": {"vi_mAP": 0.25, "vi_train_time_s": 100.0, "ci": [0.1, 0.2000001]}}}
    numbers, _ = bench.differences(first, moved)
    assert [line.split(": ")[1] for line in numbers] == ["ci", "n"]  # a changed interval, a missing record
