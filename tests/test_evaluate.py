"""The one evaluation path (`workbench.evaluate`): the engine stores each run's test evaluation with the numbers it
reports, a stored evaluation reads back exactly, its trials rank as the protocol did, the command line writes there
and the dashboard reads what it wrote; safe formats, and protocol identities that refuse comparisons across
protocols."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from workbench import dashboard
from workbench import evaluate as E
from workbench.config import get_config
from workbench.metrics import PROTOCOLS, with_rerank

pytestmark = pytest.mark.slow


def test_fit_stores_the_test_evaluation_with_the_same_numbers(two_runs):
    run = two_runs["a"]
    ev = E.load_evaluation(run)
    assert ev.mean == run.results["test"]["mean"] and ev.std == run.results["test"]["std"]
    assert ev.per_trial.to_dict("records") == run.results["test"]["per_trial"]
    assert ev.num_trials == 10 and ev.identity["dataset"] == "synthetic-vi" and ev.spec == PROTOCOLS["sysu-mm01"]
    pq = ev.per_query
    valid = pq[pq["valid"].astype(bool)]
    per_trial = valid.groupby("trial")["AP"].mean().to_numpy()
    np.testing.assert_allclose(per_trial, ev.per_trial["mAP"], rtol=0, atol=1e-12)
    # one query list shared by the ten gallery draws (SYSU): the same samples in every trial
    assert pq.groupby("trial")["sample"].apply(tuple).nunique() == 1


def test_open_run_is_one_handle_on_a_run(two_runs, tmp_path):
    run = two_runs["a"]
    h = E.open_run(run.path)
    assert E.open_run(h) is h and E.open_run(run).path == run.path
    assert h.name == "a" and h.status == "finished" and h.config == run.config
    pd.testing.assert_frame_equal(h.curves, run.metrics)
    assert h.weights == run.best_weights and h.val == run.results["val"]
    assert h.best_epoch == run.results["best_epoch"] and h.train_time_s == run.results["train_time_s"]
    assert h.test.path == E.load_evaluation(run).path and h.test.mean == run.results["test"]["mean"]
    assert [e.key for e in h.evaluations()] == [h.test.key]
    line = h.test.summary()
    assert line.startswith("a: synthetic-vi (sysu-mm01) [feats] (10 trials): rank1 ") and "mAP" in line
    assert h.model().training is False and h.method.name == "baseline"
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        E.open_run(tmp_path)


def test_a_trial_ranks_exactly_as_the_stored_protocol(two_runs):
    ev = E.load_evaluation(two_runs["b"])
    for t in range(ev.num_trials):
        r = ev.trial(t)
        stored = ev.per_query[ev.per_query["trial"] == t].reset_index(drop=True)
        np.testing.assert_array_equal(r.result.per_query["AP"], stored["AP"])
        assert r.result.mAP == pytest.approx(ev.per_trial["mAP"][t], abs=1e-12)
        assert [s.paths for s in r.q_samples] == [ev.sample(i).paths for i in ev.query_rows(t)]
    r = ev.trial(0)
    assert ev.trial(0) is r, "a trial is computed once per evaluation object"
    for row in ev.per_query[(ev.per_query["trial"] == 0) & ev.per_query["valid"]].itertuples():
        rl = r.ranked_list(row.query)
        assert rl.first_match_rank == row.first_match_rank and rl.AP == row.AP
        table = ev.ranked_list(0, row.query, k=5)  # the list's first ranked items, with the stored samples
        assert table["rank"].tolist() == list(range(1, len(table) + 1))
        assert (table["match"] == (table["pid"] == row.pid)).all() and table["distance"].is_monotonic_increasing
        assert table["row"].tolist() == ev.gallery_rows(0)[rl.order[rl.kept(5)]].tolist()


def test_an_evaluation_computed_then_read_back_is_identical(two_runs, tmp_path, monkeypatch):
    copy = tmp_path / "a"
    shutil.copytree(two_runs["a"].path, copy)
    shutil.rmtree(copy / E.EVALUATIONS)
    computed = E.open_run(copy).evaluation(split_options={"mode": "indoor"}, device="cpu", progress=False)
    oracle = E.evaluate(copy, split_options={"mode": "indoor"}, device="cpu", cache=False, progress=False)
    assert computed.mean == pytest.approx(oracle.mean, abs=1e-12) and computed.identity["split_options"] == {
        "mode": "indoor"}

    def no_compute(*args, **kwargs):
        raise AssertionError("a stored evaluation is read, not recomputed")

    monkeypatch.setattr(E, "evaluate_and_store", no_compute)
    read = E.open_run(copy).evaluation(split_options={"mode": "indoor"})
    assert read.path == computed.path and read is not computed
    assert read.mean == computed.mean and read.std == computed.std
    pd.testing.assert_frame_equal(read.per_trial, computed.per_trial)
    pd.testing.assert_frame_equal(read.per_query, computed.per_query)
    for name, feats in computed.features().items():
        np.testing.assert_array_equal(read.features()[name], feats)
    # an evaluation stored in the older layout (trial rows in ranked.npz) still reads
    (read.path / "trials.npz").rename(read.path / "ranked.npz")
    older = E.load_evaluation(copy, read.key)
    np.testing.assert_array_equal(older.trial(1).result.per_query["AP"], read.trial(1).result.per_query["AP"])


def test_the_samples_are_stored_as_loaded(two_runs):
    from workbench.data import load_dataset

    ev = E.load_evaluation(two_runs["a"])
    cfg = two_runs["a"].config
    split = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options).eval_splits()[3]
    got = [ev.sample(r) for r in ev.gallery_rows(3)]
    assert [(s.paths, s.pid, s.camid, s.modality, s.scene) for s in got] == \
        [(dict(s.paths), s.pid, s.camid, s.modality, s.scene) for s in split.gallery]


def test_the_dashboard_reads_what_the_command_line_wrote(two_runs, tmp_path, capsys):
    from workbench.__main__ import main

    for name in ("a", "b"):
        shutil.copytree(two_runs[name].path, tmp_path / name)
        assert main(["evaluate", "--run", str(tmp_path / name), "--split", "mode=indoor", "--device", "cpu"]) == 0
    capsys.readouterr()
    evs = {n: next(e for e in E.list_evaluations(tmp_path / n) if e.identity["split_options"]) for n in "ab"}
    key = evs["a"].key
    assert evs["b"].key == key
    table = dashboard.metrics_table(dashboard.discover_runs(tmp_path), ["a", "b"], protocol=key)
    assert table["mAP"].tolist() == [evs[n].mean["mAP"] for n in "ab"]
    assert table["source"].tolist() == [f"stored ({key})"] * 2 and table["trials"].tolist() == [10, 10]
    cmp = dashboard.compare(tmp_path / "a", tmp_path / "b", key=key)
    assert cmp.a.key == cmp.b.key == key
    assert cmp.delta == pytest.approx(evs["b"].mean["mAP"] - evs["a"].mean["mAP"], abs=1e-12)
    app = dashboard.Dashboard(tmp_path, run_a="a", run_b="b", compute_missing=False)
    assert key in [v for _, v in app.protocol.options]


def test_stored_files_are_plain_arrays_and_tables(two_runs):
    ev = E.load_evaluation(two_runs["a"])
    for name in ("trials.npz", "features.npz"):
        with np.load(ev.path / name, allow_pickle=False) as z:  # raises on object arrays
            assert all(z[k].dtype != object for k in z.files)
    feats = ev.features()["feats"]
    assert feats.shape[0] == len(ev.samples) and feats.dtype == np.float32
    assert not list(ev.path.glob("*.pkl")) and not list(ev.path.glob("*.pt"))


def test_protocol_identity_tells_protocols_apart():
    cfg = get_config("baseline", "synthetic-vi", "smoke")
    spec = PROTOCOLS["sysu-mm01"]
    base = E.protocol_key(E.protocol_identity(cfg, spec))
    assert base == E.protocol_key(E.protocol_identity(cfg, spec))
    others = {E.protocol_key(E.protocol_identity(cfg, with_rerank(spec))),
              E.protocol_key(E.protocol_identity(cfg, spec, split_options={"mode": "indoor"})),
              E.protocol_key(E.protocol_identity(cfg.override(**{"data.options": {**cfg.data.options, "difficulty": "hard"}}), spec))}
    assert base not in others and len(others) == 3
    assert "mode=indoor" in E.protocol_label(E.protocol_identity(cfg, spec, split_options={"mode": "indoor"}))


def test_comparable_says_which_protocol_field_differs(two_runs, tmp_path):
    a, b = E.load_evaluation(two_runs["a"]), E.load_evaluation(two_runs["b"])
    assert E.comparable(a, b) == (True, "same protocol, same queries and gallery draws")
    other = tmp_path / "c" / E.EVALUATIONS / a.key
    shutil.copytree(a.path, other)
    meta = json.loads((other / "protocol.json").read_text())
    meta["identity"]["split_options"] = {"mode": "indoor"}
    (other / "protocol.json").write_text(json.dumps(meta))
    ok, reason = E.comparable(a, E.load_evaluation(tmp_path / "c"))
    assert not ok and "split_options" in reason and "indoor" in reason and "dataset" not in reason
    meta = json.loads((a.path / "protocol.json").read_text())
    meta["query_fingerprint"] = "0" * 40
    (other / "protocol.json").write_text(json.dumps(meta))
    ok, reason = E.comparable(a, E.load_evaluation(tmp_path / "c"))
    assert not ok and "different query lists" in reason


def test_load_evaluation_names_the_fix_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="open_run"):
        E.load_evaluation(tmp_path)


# ------------------------------------------------------------------------------- protocol identity (issue 22 item 5)

def _untrained_run(root, name, dataset="synthetic-vi"):
    """A finished run folder whose selected weights are an untrained model's (no training: fast), and its parts:
    (run, cfg, model, method, loaded dataset)."""
    import torch

    from workbench.data import load_dataset
    from workbench.methods import get_method
    from workbench.runs import Run, save_weights

    cfg = get_config("baseline", dataset, "smoke").override(
        **{"run.out_dir": str(root), "run.name": name, "run.device": "cpu"})
    run = Run.create(cfg)
    run.start_attempt(num_classes=12)
    method = get_method(cfg.run.method)
    torch.manual_seed(0)
    model = method.build_model(cfg, 12).eval()
    save_weights(model.state_dict(), run.best_weights)
    run.set_status("finished")
    return run, cfg, model, method, load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)


def _stored(root, run_name, identity, query="q", gallery="g"):
    """An `Evaluation` with this identity and these list fingerprints, as protocol.json would hold them."""
    key = E.protocol_key(identity)
    meta = {"identity": identity, "key": key, "label": E.protocol_label(identity), "run": run_name,
            "query_fingerprint": query, "gallery_fingerprint": gallery, "num_trials": 1}
    return E.Evaluation(root / run_name / E.EVALUATIONS / key, meta)


_SMOKE = get_config("baseline", "synthetic-vi", "smoke")
_DIFFERENT = {  # protocol field -> (config, protocol_identity keywords) of an evaluation that differs in it
    "split_options": [(_SMOKE, {"split_options": {"mode": "indoor"}}),
                      (_SMOKE, {"split_options": {"trials": [0, 1]}}),   # other gallery draws, asked for
                      (_SMOKE, {"split_options": {"shot": 10}})],
    "rerank": [(_SMOKE, {"rerank": True})],
    "branches": [(_SMOKE, {"branches": ["rgb"]})],
    "data_options": [(_SMOKE.override(**{"data.options.trial": 2}), {}),
                     (_SMOKE.override(**{"data.options.ids": 20}), {}),
                     (_SMOKE.override(**{"data.options.difficulty": "hard"}), {}),
                     (_SMOKE.override(**{"data.options.seed": 1}), {})],
    "root": [(_SMOKE.override(**{"data.root": "/data/elsewhere"}), {})],
    "dataset": [(_SMOKE.override(**{"data.dataset": "synthetic-sysu-mm01"}), {})],
}


def _identity(cfg, rerank=False, **kwargs):
    return E.protocol_identity(cfg, E.protocol_spec(cfg, rerank=rerank), **kwargs)


@pytest.mark.parametrize("field,case", [(f, i) for f, cases in _DIFFERENT.items() for i in range(len(cases))])
def test_evaluations_that_differ_in_one_protocol_field_are_refused_naming_it(tmp_path, field, case):
    cfg, kwargs = _DIFFERENT[field][case]
    base, other = _identity(_SMOKE), _identity(cfg, **kwargs)
    assert base[field] != other[field], f"protocol_identity must hold {field}"
    assert E.protocol_key(base) != E.protocol_key(other)  # stored apart, never one over the other
    a, b = _stored(tmp_path, "a", base), _stored(tmp_path, "b", other)
    ok, reason = E.comparable(a, b)
    assert not ok and f"{field}: " in reason and "(run a)" in reason and "(run b)" in reason
    with pytest.raises(dashboard.IncomparableRuns, match=f"{field}: "):
        dashboard.compare(a, b)
    assert E.comparable(a, _stored(tmp_path, "c", _identity(_SMOKE))) == (
        True, "same protocol, same queries and gallery draws")


def test_evaluations_of_other_gallery_draws_are_refused(tmp_path):
    """Same protocol options, other gallery draws (the drawing code changed): the stored gallery lists tell them
    apart; fewer draws change the lists too."""
    run, cfg, model, method, dataset = _untrained_run(tmp_path, "a")

    def store(name, trials=None):
        from workbench.data import load_dataset

        ds = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
        if trials is not None:
            draw = ds.eval_splits
            ds.eval_splits = lambda: draw(trials=trials)
        return E.evaluate_and_store(tmp_path / name, model, ds, cfg, method=method, progress=False)

    a, same = store("a"), store("same")
    assert E.comparable(a, same) == (True, "same protocol, same queries and gallery draws")
    other = store("other", trials=range(10, 20))
    assert other.identity == a.identity and other.key == a.key and other.num_trials == a.num_trials
    assert other.meta["query_fingerprint"] == a.meta["query_fingerprint"]  # SYSU: one query list
    assert other.meta["gallery_fingerprint"] != a.meta["gallery_fingerprint"]
    ok, reason = E.comparable(a, other)
    assert not ok and "different gallery draws" in reason
    with pytest.raises(dashboard.IncomparableRuns, match="different gallery draws"):
        dashboard.compare(a, other)
    fewer = store("fewer", trials=range(5))
    assert fewer.num_trials == 5 and not E.comparable(a, fewer)[0]


def test_a_stored_evaluation_is_found_by_its_protocol_options(tmp_path):
    """open_run(p).evaluation(...) reads the stored evaluation of exactly that protocol, computes (and stores) one
    that is missing, and recomputing a stored protocol by its key keeps its options."""
    run, *_ = _untrained_run(tmp_path, "vi")
    h = E.open_run(run.path)
    default = h.evaluation(device="cpu", progress=False)
    rerank = h.evaluation(rerank=True, device="cpu", progress=False)
    assert rerank.key != default.key and rerank.identity["rerank"] and rerank.spec == with_rerank(default.spec)
    assert rerank.mean == pytest.approx(E.evaluate(run, rerank=True, device="cpu", cache=False,
                                                   progress=False).mean, abs=1e-12)
    assert h.evaluation(rerank=True).path == rerank.path and h.evaluation().path == default.path
    again = h.evaluation(key=rerank.key, recompute=True, device="cpu", progress=False)
    assert again.key == rerank.key and again.identity == rerank.identity and again.mean == rerank.mean
    assert E.load_evaluation(run).key == default.key  # the default protocol, whatever else is stored
    mm, *_ = _untrained_run(tmp_path, "mm", "synthetic-rgbnt")
    h = E.open_run(mm.path)
    nir = h.evaluation(branches=["nir"], device="cpu", progress=False)  # before the default one: the oldest
    default = h.evaluation(device="cpu", progress=False)
    assert nir.key != default.key and nir.identity["branches"] == ["nir"] and nir.branches == ["nir"]
    assert nir.mean == pytest.approx(E.evaluate(mm, branches=["nir"], device="cpu", cache=False,
                                                progress=False).mean, abs=1e-12)
    assert nir.mean != default.mean and default.identity["branches"] == ["feats"]
    assert [e.key for e in h.evaluations()] == [nir.key, default.key]
    assert E.load_evaluation(mm).key == default.key and h.test.key == default.key  # the default, not the oldest


def test_an_interrupted_re_evaluation_is_not_read_as_complete(tmp_path, monkeypatch):
    """protocol.json is written last and removed first: a re-evaluation that fails half-way leaves no evaluation
    that mixes new files with the old protocol record."""
    run, cfg, model, method, dataset = _untrained_run(tmp_path, "half")
    ev = E.evaluate_and_store(run, model, dataset, cfg, method=method, progress=False)
    assert [e.key for e in E.list_evaluations(run)] == [ev.key]
    real = E.atomic_write_bytes

    def fail_at_per_query(path, data):
        if path.name == "per_query.csv":
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(E, "atomic_write_bytes", fail_at_per_query)
    with pytest.raises(OSError, match="disk full"):
        E.evaluate_and_store(run, model, dataset, cfg, method=method, progress=False)
    assert E.list_evaluations(run) == []


def test_a_run_tested_on_another_dataset_keeps_that_evaluation_apart_from_its_default(tmp_path):
    """Cross-dataset transfer (`test_on`): a vehicle model trained on RGBNT100's layout, tested on MSVR310's test
    set, is scored with MSVR310's scene rule; the numbers are those of an independent evaluate() with the run's
    config on that test set; the evaluation is stored under its own key, found again instead of recomputed, and never
    taken for the run's default evaluation even when it is the oldest."""
    from workbench.data import load_dataset

    run, cfg, model, *_ = _untrained_run(tmp_path, "veh", "synthetic-rgbnt100")
    other = get_config("baseline", "synthetic-msvr310", "smoke")
    h = E.open_run(run.path)
    cross = h.evaluation(test_on=other, device="cpu", progress=False)  # stored first: the oldest
    assert cross.identity["dataset"] == "synthetic-msvr310" and cross.spec == PROTOCOLS["msvr310"]
    assert cross.identity["data_options"] == dict(sorted(other.data.options.items()))
    tested = E.tested_config(cfg, other)
    assert (tested.data.height, tested.data.width) == (cfg.data.height, cfg.data.width)
    ds = load_dataset(other.data.dataset, other.data.root, **other.data.options)
    assert cross.mean == pytest.approx(E.evaluate(model, ds, cfg=tested, cache=False, progress=False).mean,
                                       abs=1e-12)
    default = h.test
    assert default.identity["dataset"] == "synthetic-rgbnt100" and default.key != cross.key
    assert default.spec == PROTOCOLS["rgbnt100"] and E.load_evaluation(run).key == default.key
    assert h.evaluation(test_on=other).path == cross.path  # read back, not recomputed
    again = h.evaluation(key=cross.key, recompute=True, device="cpu", progress=False)
    assert again.identity == cross.identity and again.mean == cross.mean
    assert E.identity_test_on(cfg, default.identity) is None
    assert E.identity_test_on(cfg, cross.identity).data.dataset == "synthetic-msvr310"


def test_an_evaluation_of_weights_that_changed_since_is_computed_again(tmp_path, capsys):
    """A stored evaluation names the weights file it scored and its SHA-256: read back while the file is unchanged,
    computed again (with the reason said) once the run's weights change, by options or by key; evaluations stored
    before the stamp are read as they are."""
    import hashlib

    import torch

    from workbench.runs import save_weights

    run, cfg, model, method, _ = _untrained_run(tmp_path, "moving")
    h = E.open_run(run.path)
    first = h.evaluation(device="cpu", progress=False)
    assert first.meta["weights"] == {"file": run.best_weights.name,
                                     "sha256": hashlib.sha256(run.best_weights.read_bytes()).hexdigest()}
    written = (first.path / "protocol.json").stat().st_mtime_ns
    assert h.evaluation(device="cpu", progress=False).mean == first.mean
    assert (first.path / "protocol.json").stat().st_mtime_ns == written  # read, not recomputed
    capsys.readouterr()

    torch.manual_seed(1)  # the run "trains on": other weights in the same file
    save_weights(method.build_model(cfg, 12).eval().state_dict(), run.best_weights)
    again = h.evaluation(device="cpu", progress=False)
    assert "out of date" in capsys.readouterr().out
    oracle = E.evaluate(run, device="cpu", cache=False, progress=False)  # the new weights, scored without storing
    assert again.key == first.key and again.mean == pytest.approx(oracle.mean, abs=1e-12)
    assert again.mean != first.mean and E.open_run(run.path).test.mean == again.mean
    assert again.meta["weights"]["sha256"] == hashlib.sha256(run.best_weights.read_bytes()).hexdigest()

    torch.manual_seed(2)
    save_weights(method.build_model(cfg, 12).eval().state_dict(), run.best_weights)
    by_key = h.evaluation(key=again.key, device="cpu", progress=False)
    assert by_key.mean == pytest.approx(E.evaluate(run, device="cpu", cache=False, progress=False).mean, abs=1e-12)
    assert E.stale_reason(by_key, run) == ""
    moved = run.best_weights.rename(run.best_weights.with_suffix(".bak"))
    assert h.evaluation(device="cpu", progress=False).mean == by_key.mean  # copied without its weights: as stored
    moved.rename(run.best_weights)

    meta = json.loads((by_key.path / "protocol.json").read_text())
    del meta["weights"]  # as stored before the stamp existed
    (by_key.path / "protocol.json").write_text(json.dumps(meta))
    torch.manual_seed(3)
    save_weights(method.build_model(cfg, 12).eval().state_dict(), run.best_weights)
    assert h.evaluation(device="cpu", progress=False).mean == by_key.mean  # unstamped: taken as it is
    assert E.stale_reason(E.load_evaluation(run), run) == ""
