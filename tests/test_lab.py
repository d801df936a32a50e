"""The notebook conveniences: the preamble in one call, and a live batch that is exactly what `fit` trains its first
step on (oracle: the loss `fit` logged at step 1)."""

import pytest
import torch

from workbench import lab, utils
from workbench.config import get_config


def test_setup_gives_the_profile_overrides_and_runs_folder(monkeypatch, tmp_path):
    s = lab.setup(True, "cpu-demo", None, 3)
    assert s == ("smoke", {"run.out_dir": str(utils.runs_dir()), "run.seed": 3}, utils.runs_dir())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert lab.setup(False, "cpu-demo", tmp_path, 0).profile == "cpu-demo"
    assert lab.setup(False, "cpu-demo", tmp_path, 0).overrides["run.out_dir"] == str(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU runs the published recipe
    assert lab.setup(False, "cpu-demo").profile == "paper" and lab.setup(False, "cpu-demo", seed=1).profile == "paper"
    assert lab.setup(False, "paper").profile == "paper" and lab.setup(True, "paper").profile == "smoke"
    assert lab.setup(False, "cpu-demo", "elsewhere").runs_dir == utils.project_dir() / "elsewhere"


def test_setup_warns_when_the_kernel_trains_on_another_thread_count_than_the_prose(monkeypatch, tmp_path):
    """The prose quotes one-thread numbers (utils.CLAIMED_THREADS); a JupyterLab kernel takes every core. Only a
    cpu-demo notebook on another count is told, with the fix; smoke and paper runs have no prose numbers."""
    import warnings

    from workbench.utils import CLAIMED_THREADS

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: CLAIMED_THREADS + 3)
    with pytest.warns(lab.ThreadCountWarning, match=f"trains on {CLAIMED_THREADS + 3} threads") as caught:
        lab.setup(False, "cpu-demo", tmp_path, 0)
    assert f"OMP_NUM_THREADS={CLAIMED_THREADS}" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lab.setup(True, "cpu-demo", tmp_path, 0)   # smoke
        lab.setup(False, "paper", tmp_path, 0)     # the published recipe
        monkeypatch.setattr(torch, "get_num_threads", lambda: CLAIMED_THREADS)
        lab.setup(False, "cpu-demo", tmp_path, 0)  # the prose's own count
    assert lab.thread_note("cpu-demo", CLAIMED_THREADS) == "" and lab.thread_note("cpu-demo", 2 * CLAIMED_THREADS + 1)


@pytest.mark.slow
@pytest.mark.parametrize("method,dataset", [("baseline", "synthetic-vi"), ("sd2reid", "synthetic-rgbnt")])
def test_live_batch_is_what_fit_trains_its_first_step_on(method, dataset, tmp_path):
    from workbench.train import fit

    cfg = get_config(method, dataset, "smoke").override(
        **{"run.out_dir": str(tmp_path), "run.max_steps": 1, "run.device": "cpu"})
    run = fit(cfg, progress=False)
    logged = run.metrics.dropna(subset=["loss/total"]).iloc[0]
    utils.seed_everything(cfg.run.seed)  # fit seeds every generator before it prepares
    live = lab.live_batch(cfg, seed=cfg.run.seed)
    assert live.model.training and len({s.label for s in live.train_samples}) == run.results["num_classes"]
    with torch.no_grad():
        terms = live.method.training_losses(live.model, live.batch, cfg)
    assert float(torch.stack([t.float() for t in terms.values()]).sum()) == logged["loss/total"]
    again = lab.live_batch(cfg, seed=cfg.run.seed)  # the model's start is the seed's, whatever ran before
    for (name, a), b in zip(live.model.named_parameters(), again.model.parameters()):  # (buffers: BN ran once)
        assert torch.equal(a, b), name


def _study_script():
    import importlib.util

    script = utils.project_dir() / "benchmarks" / "teacher_memory_study.py"
    spec = importlib.util.spec_from_file_location("teacher_memory_study", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_teacher_memory_study_is_notebook_03s_recipe(tmp_path):
    """The stored study is only read for the recipe it trained: each shipped row must still be what notebook 03
    configures (a changed cpu-demo default would otherwise make the demo train the switch again, silently slow)."""
    configs = _study_script().study_configs(str(tmp_path))
    runs = lab.stored_runs()
    assert [r.config.method_options.get("memory_images", "test") for r in runs] == ["test", "train"]
    for run, (label, cfg) in zip(runs, configs.items()):
        assert lab.stored_or_trained(cfg) == run, label
        assert run.val["rank1"] > 0 and {"rank1", "mAP"} <= set(run.test.mean) and run.train_time_s > 0


def test_a_stored_run_is_read_only_for_its_own_recipe(tmp_path, monkeypatch):
    """Same recipe (another runs folder): the stored scores; another seed or train=True: `train.fit` runs."""
    import json

    from workbench import evaluate, train

    cfg = get_config("dakd_teacher", "synthetic-vi", "cpu-demo").override(**{"run.out_dir": str(tmp_path / "a")})
    row = {"label": "x", "name": "run-1", "config": cfg.override(**{"run.out_dir": "runs"}).to_dict(),
           "best_epoch": 4, "val": {"rank1": 0.25, "rank1_std": 0.01}, "test_mean": {"rank1": 0.125},
           "test_std": {"rank1": 0.02}, "train_time_s": 12.0}
    study = tmp_path / "study.json"
    study.write_text(json.dumps({"command": "python make_it.py", "runs": [row]}))
    fitted = []
    monkeypatch.setattr(train, "fit", lambda c, **kw: fitted.append(c) or "folder")
    monkeypatch.setattr(evaluate, "open_run", lambda folder: ("opened", folder))

    elsewhere = cfg.override(**{"run.out_dir": str(tmp_path / "b")})
    got = lab.stored_or_trained(elsewhere, study=study)
    assert isinstance(got, lab.StoredRun) and not fitted
    assert (got.val["rank1"], got.test.mean["rank1"], got.test.std["rank1"], got.best_epoch) == (0.25, 0.125, 0.02, 4)
    assert "make_it.py" in got.source
    assert lab.stored_or_trained(elsewhere.override(**{"run.seed": 1}), study=study) == ("opened", "folder")
    assert lab.stored_or_trained(elsewhere, train=True, study=study) == ("opened", "folder")
    assert len(fitted) == 2
    with pytest.raises(FileNotFoundError, match="teacher_memory_study.py"):
        lab.stored_or_trained(elsewhere, study=tmp_path / "missing.json")


def test_held_out_ids_are_the_ids_holdout_identities_holds_out():
    from workbench.data import load_dataset
    from workbench.data.validation import held_out_ids, holdout_identities

    train = load_dataset("synthetic-vi", None, ids=60, seed=0).train
    for seed in (0, 3):
        kept, query, gallery = holdout_identities(train, 7, seed=seed)
        held = held_out_ids(train, 7, seed=seed)
        assert {s.pid for s in query} | {s.pid for s in gallery} == held and len(held) == 7
        assert not held & {s.pid for s in kept}


@pytest.mark.slow
def test_camera_diagnosis_reads_the_held_out_identities_of_a_vi_run(tmp_path):
    """Every camera of the held-out images appears, each with its layout's modality; the by-modality means are the
    means of the camera pairs; one probe per (modality, factor), its chance the majority rate; clear errors for a
    multi-modal run and for a run that held out nobody."""
    import numpy as np

    from workbench.data import load_dataset
    from workbench.data.validation import held_out_ids
    from workbench.train import fit

    cfg = get_config("baseline", "synthetic-vi", "smoke").override(
        **{"run.out_dir": str(tmp_path), "run.max_steps": 2, "run.device": "cpu"})
    run = fit(cfg, progress=False)
    diag = lab.camera_diagnosis(run.path)
    train = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options).train
    held = held_out_ids(train, cfg.data.val_ids, seed=cfg.run.seed)
    images = [s for s in train if s.pid in held]
    assert set(diag.pairs["query_cam"]) == {s.camid for s in images}
    assert all(m == ("ir" if c in (3, 6) else "rgb") for c, m in zip(diag.pairs["query_cam"], diag.pairs["query_modality"]))
    for r in diag.by_modality.itertuples():
        same = diag.pairs[(diag.pairs["query_modality"] == r.query_modality)
                          & (diag.pairs["gallery_modality"] == r.gallery_modality)]
        assert r.camera_pairs == len(same) and r.rank1 == pytest.approx(same["rank1"].mean())
    assert list(zip(diag.probes["features"], diag.probes["factor"])) == [
        ("rgb", "camera"), ("rgb", "identity"), ("ir", "camera"), ("ir", "identity")]
    assert diag.probes["accuracy"].between(0, 1).all() and (diag.probes["chance"] < 1).all()
    ir_cams = np.array([s.camid for s in images if s.modality == "ir"])
    assert diag.probes.loc[2, "classes"] == len(set(ir_cams))
    mm = fit(get_config("baseline", "synthetic-rgbnt", "smoke").override(
        **{"run.out_dir": str(tmp_path), "run.max_steps": 1, "run.device": "cpu"}), progress=False)
    with pytest.raises(ValueError, match="visible-infrared runs"):
        lab.camera_diagnosis(mm.path)
    nobody = fit(cfg.override(**{"data.val_ids": 0, "run.name": "no-validation"}), progress=False)
    with pytest.raises(ValueError, match="data.val_ids=0"):
        lab.camera_diagnosis(nobody.path)
