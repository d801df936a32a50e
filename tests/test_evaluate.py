"""Per-query results stored at evaluation: the same numbers as the protocol, ranked lists consistent with the
ranking metrics, safe formats, and protocol identities that refuse comparisons across protocols."""

import json
import shutil

import numpy as np
import pytest

from workbench import evaluation_store as store
from workbench.config import get_config
from workbench.metrics import PROTOCOLS, with_rerank

pytestmark = pytest.mark.slow


def test_fit_stores_the_test_evaluation_with_the_same_numbers(two_runs):
    run = two_runs["a"]
    ev = store.load_evaluation(run)
    assert ev.summary["mean"] == pytest.approx(run.results["test"]["mean"], abs=0)
    assert ev.meta["num_trials"] == 10 and ev.identity["dataset"] == "synthetic-vi"
    pq = ev.per_query
    valid = pq[pq["valid"].astype(bool)]
    per_trial = valid.groupby("trial")["AP"].mean().to_numpy()
    np.testing.assert_allclose(per_trial, [t["mAP"] for t in ev.summary["per_trial"]], rtol=0, atol=1e-12)
    # one query list shared by the ten gallery draws (SYSU): the same samples in every trial
    assert pq.groupby("trial")["sample"].apply(tuple).nunique() == 1


def test_ranked_lists_agree_with_the_ranking_metrics(two_runs):
    ev = store.load_evaluation(two_runs["b"])
    pq = ev.per_query
    k = ev.meta["top_k"]
    checked = 0
    for row in pq[pq["valid"].astype(bool)].itertuples():
        ranked = ev.ranked_list(row.trial, row.query)
        assert (ranked["match"].to_numpy() == (ranked["pid"].to_numpy() == row.pid)).all()
        assert np.all(np.diff(ranked["distance"].to_numpy()) >= 0)
        if row.first_match_rank <= k:
            assert int(np.flatnonzero(ranked["match"].to_numpy())[0]) + 1 == row.first_match_rank
            checked += 1
    assert checked > 0


def test_stored_files_are_plain_arrays_and_tables(two_runs):
    ev = store.load_evaluation(two_runs["a"])
    for name in ("ranked.npz", "features.npz"):
        with np.load(ev.path / name, allow_pickle=False) as z:  # raises on object arrays
            assert all(z[k].dtype != object for k in z.files)
    feats = ev.features()["feats"]
    assert feats.shape[0] == len(ev.samples) and feats.dtype == np.float32
    assert not list(ev.path.glob("*.pkl")) and not list(ev.path.glob("*.pt"))


def test_protocol_identity_tells_protocols_apart():
    cfg = get_config("baseline", "synthetic-vi", "smoke")
    spec = PROTOCOLS["sysu-mm01"]
    base = store.protocol_key(store.protocol_identity(cfg, spec))
    assert base == store.protocol_key(store.protocol_identity(cfg, spec))
    others = {store.protocol_key(store.protocol_identity(cfg, with_rerank(spec))),
              store.protocol_key(store.protocol_identity(cfg, spec, split_options={"mode": "indoor"})),
              store.protocol_key(store.protocol_identity(cfg.override(**{"data.options": {**cfg.data.options, "difficulty": "hard"}}), spec))}
    assert base not in others and len(others) == 3
    assert "mode=indoor" in store.protocol_label(store.protocol_identity(cfg, spec, split_options={"mode": "indoor"}))


def test_comparable_says_which_protocol_field_differs(two_runs, tmp_path):
    a, b = store.load_evaluation(two_runs["a"]), store.load_evaluation(two_runs["b"])
    assert store.comparable(a, b) == (True, "same protocol, same queries and gallery draws")
    other = tmp_path / "c" / store.EVALUATIONS / a.key
    shutil.copytree(a.path, other)
    meta = json.loads((other / "protocol.json").read_text())
    meta["identity"]["split_options"] = {"mode": "indoor"}
    (other / "protocol.json").write_text(json.dumps(meta))
    ok, reason = store.comparable(a, store.load_evaluation(tmp_path / "c"))
    assert not ok and "split_options" in reason and "indoor" in reason and "dataset" not in reason
    meta = json.loads((a.path / "protocol.json").read_text())
    meta["query_fingerprint"] = "0" * 40
    (other / "protocol.json").write_text(json.dumps(meta))
    ok, reason = store.comparable(a, store.load_evaluation(tmp_path / "c"))
    assert not ok and "different query lists" in reason


def test_load_evaluation_names_the_fix_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="ensure_evaluation"):
        store.load_evaluation(tmp_path)
