"""The run store: atomic writes, no silent overwrite, listing."""

import json

import pytest
import torch

from workbench.config import Config
from workbench.runs import Run, atomic_write_bytes, list_runs, load_run, load_weights, save_weights


def _cfg(tmp_path, name="r1"):
    return Config().override(**{"run.out_dir": str(tmp_path), "run.name": name})


def test_create_writes_config_and_environment(tmp_path):
    run = Run.create(_cfg(tmp_path))
    assert Config.load(run.path / "config.json") == _cfg(tmp_path)
    env = json.loads((run.path / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and "git_commit" in env


def test_existing_run_is_never_silently_overwritten(tmp_path):
    run = Run.create(_cfg(tmp_path))
    run.log(step=1, loss=0.5)
    with pytest.raises(FileExistsError, match="resume"):
        Run.create(_cfg(tmp_path))
    assert len(run.metrics) == 1
    again = Run.create(_cfg(tmp_path), overwrite=True)
    assert again.metrics.empty


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_weights_round_trip_safetensors_and_torch(tmp_path):
    state = {"w": torch.randn(3, 2), "b": torch.zeros(2)}
    save_weights(state, tmp_path / "w.safetensors")
    loaded = load_weights(tmp_path / "w.safetensors")
    assert all(torch.equal(state[k], loaded[k]) for k in state)
    torch.save({"model": state}, tmp_path / "w.pt")
    loaded = load_weights(tmp_path / "w.pt")
    assert all(torch.equal(state[k], loaded[k]) for k in state)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_weights(tmp_path / "missing.pt")


def test_truncate_metrics_keeps_steps_up_to_checkpoint(tmp_path):
    run = Run.create(_cfg(tmp_path))
    for s in range(1, 6):
        run.log(step=s, loss=float(s))
    run.truncate_metrics(3)
    assert run.metrics["step"].tolist() == [1, 2, 3]


def _finished(cfg, **results):
    run = Run.create(cfg)
    run.start_attempt()
    run.save_results(results)
    run.set_status("finished")
    return run


def test_list_and_load_runs(tmp_path):
    _finished(_cfg(tmp_path, "a"), val={"mAP": 0.5}, test={"mean": {"rank1": 0.4}})
    Run.create(_cfg(tmp_path, "b"))
    table = list_runs(tmp_path)
    assert table["name"].tolist() == ["a", "b"] and table["status"].tolist() == ["finished", "created"]
    assert table.loc[0, "val_mAP"] == 0.5 and table.loc[0, "test_rank1"] == 0.4
    assert load_run(tmp_path / "a").name == "a"
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_run(tmp_path / "nope")


def test_find_run_matches_recipe_not_name(tmp_path):
    from workbench.runs import find_run

    cfg = _cfg(tmp_path, "a")
    assert find_run(cfg) is None
    _finished(cfg)
    _finished(_cfg(tmp_path, "b").override(**{"optim.lr": 0.5}))
    stopped = Run.create(_cfg(tmp_path, "c"))  # written before status.json: the status in results.json
    (stopped.path / "status.json").unlink()
    atomic_write_bytes(stopped.path / "results.json", json.dumps({"status": "stopped at run.max_steps"}).encode())
    assert find_run(_cfg(tmp_path, "other-name")).name == "a"
    assert find_run(_cfg(tmp_path, "x").override(**{"run.log_every": 5})).name == "a"  # how often it logged
    assert find_run(_cfg(tmp_path, "x").override(**{"optim.lr": 0.5})).name == "b"
    assert find_run(_cfg(tmp_path, "x").override(**{"optim.lr": 0.7})) is None


def test_compare_throughput_is_images_over_the_median_call_time(monkeypatch):
    """A fake clock that only the timed functions advance: exact rates, the median (not the mean) of the calls,
    warm-up calls run but not timed. (Real timing belongs in benchmarks/.)"""
    import workbench.profiling as profiling

    clock = {"t": 0.0}
    monkeypatch.setattr(profiling.time, "perf_counter", lambda: clock["t"])
    calls = {"fast": 0, "slow": 0}
    # two warm-up calls each (slow ones: compiling, caches), then five timed calls; "slow" has one outlier
    durations = {"fast": [9.0, 9.0, 9.0, 0.5, 0.5, 0.5, 0.5], "slow": [50.0, 50.0, 1.0, 2.0, 4.0, 30.0, 3.0]}

    def make(name):
        def fn():
            clock["t"] += durations[name][calls[name]]
            calls[name] += 1
        return fn

    rates = profiling.compare_throughput({"fast": make("fast"), "slow": make("slow")}, {"fast": 8, "slow": 6},
                                         iters=5, warmup=2)
    assert calls == {"fast": 7, "slow": 7}
    assert rates == {"fast": 8 / 0.5, "slow": 6 / 3.0}  # medians 0.5 s and 3 s (the mean of "slow" is 8 s)


def test_automatic_names_never_collide(tmp_path):
    cfg = Config().override(**{"run.out_dir": str(tmp_path)})
    paths = {Run.create(cfg).path for _ in range(3)}  # within the same second
    assert len(paths) == 3 and all(p.parent == tmp_path for p in paths)


def test_a_run_folder_is_opened_one_way():
    """`load_run(path)` opens a run and `Run.create(config)` makes one: nothing else builds `Run(path)` directly
    (issue 20: `Run(path)` and `load_run(path)` were used interchangeably, the first without any check)."""
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    direct = []
    for path in sorted([*repo.glob("workbench/**/*.py"), *repo.glob("tests/*.py"), *repo.glob("benchmarks/*.py")]):
        if path == repo / "workbench" / "runs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            func = getattr(node, "func", None) if isinstance(node, ast.Call) else None
            if (isinstance(func, ast.Name) and func.id == "Run") or (isinstance(func, ast.Attribute)
                                                                     and func.attr == "Run"):
                direct.append(f"{path.relative_to(repo)}:{node.lineno}")
    assert not direct, f"Run(...) built directly (use load_run): {direct}"
