"""Protocol runner: defaults per dataset, per-trial averaging, branch selection, directions, re-ranking."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from workbench.metrics import (
    PROTOCOLS,
    EvalSet,
    ProtocolSpec,
    combine_branches,
    evaluate_directions,
    evaluate_trials,
    k_reciprocal_rerank,
    pairwise_distance,
    rank_metrics,
    with_rerank,
)


def sysu_trial(seed, num_ids=12, dim=16):
    """IR probes (cams 3, 6) against one RGB image per (id, cam in 1, 2, 4, 5), built with numpy."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(100).standard_normal((num_ids, dim))
    q_pids = np.repeat(np.arange(num_ids), 4)
    q_cams = np.tile([3, 3, 6, 6], num_ids)
    g_pids = np.repeat(np.arange(num_ids), 4)
    g_cams = np.tile([1, 2, 4, 5], num_ids)
    q = EvalSet(centres[q_pids] + rng.standard_normal((len(q_pids), dim)), q_pids, q_cams)
    g = EvalSet(centres[g_pids] + rng.standard_normal((len(g_pids), dim)), g_pids, g_cams)
    return q, g


def test_protocol_defaults_follow_the_references():
    assert set(PROTOCOLS) == {"sysu-mm01", "regdb", "llcm", "rgbnt201", "rgbnt100", "msvr310"}
    sysu, regdb, llcm = PROTOCOLS["sysu-mm01"], PROTOCOLS["regdb"], PROTOCOLS["llcm"]
    assert (sysu.junk, sysu.dedup_cmc, sysu.max_rank) == ("sysu", True, 20)
    assert (regdb.junk, regdb.dedup_cmc) == ("none", False)
    assert (llcm.junk, llcm.dedup_cmc) == ("market", True)
    for name in ("rgbnt201", "rgbnt100"):
        spec = PROTOCOLS[name]
        assert (spec.junk, spec.metric, spec.branch_norm, spec.normalize) == (
            "market",
            "sqeuclidean",
            "concat",
            True,
        )
    assert PROTOCOLS["msvr310"].junk == "msvr310"
    with pytest.raises(ValueError, match="junk must be one of"):
        ProtocolSpec(junk="cuhk03")


def test_sysu_trials_equal_rank_metrics_on_cosine_and_mean_is_per_trial():
    trials = [sysu_trial(s) for s in range(3)]
    # trial 2 gets fewer queries, so a pooled average would weigh trials differently
    q2, g2 = trials[2]
    trials[2] = (EvalSet(q2.feats[:20], q2.pids[:20], q2.camids[:20]), g2)
    res = evaluate_trials(trials, PROTOCOLS["sysu-mm01"])
    singles = []
    for q, g in trials:
        d = (
            1.0
            - (q.feats / np.linalg.norm(q.feats, axis=1, keepdims=True))
            @ (g.feats / np.linalg.norm(g.feats, axis=1, keepdims=True)).T
        )
        singles.append(
            rank_metrics(d, q.pids, g.pids, q.camids, g.camids, junk="sysu", dedup_cmc=True, max_rank=20)
        )
    for key in ("rank1", "rank10", "mAP", "mINP"):
        per = [s.as_dict()[key] for s in singles]
        assert res.mean[key] == pytest.approx(np.mean(per), abs=1e-12)
        assert res.std[key] == pytest.approx(np.std(per), abs=1e-12)
    np.testing.assert_allclose(res.cmc, np.mean([s.cmc for s in singles], axis=0))
    assert list(res.per_trial.trial) == [0, 1, 2] and list(res.per_trial.num_query) == [48, 48, 20]
    pooled_ap = np.concatenate([s.per_query.AP.dropna().to_numpy() for s in singles]).mean()
    assert res.mean["mAP"] != pytest.approx(pooled_ap, abs=1e-9)
    assert "sysu-mm01" in res.summary() and "±" in repr(res)


@pytest.mark.parametrize("batch_elements", [1 << 25, 48 * 100])
def test_shared_query_batched_distances_equal_per_pair(monkeypatch, batch_elements):
    """Trials sharing one query object get their distances from batched products: same numbers as one by one."""
    import workbench.metrics.protocols as protocols

    monkeypatch.setattr(protocols, "_BATCH_ELEMENTS", batch_elements)  # 48 x 100: batches of two galleries
    query, _ = sysu_trial(0)
    trials = [(query, sysu_trial(s)[1]) for s in range(5)]
    spec = PROTOCOLS["sysu-mm01"]
    res = evaluate_trials(trials, spec)
    for t, (q, g) in enumerate(trials):
        single = protocols.evaluate_pair(q, g, spec)
        np.testing.assert_allclose(res.trials[t].cmc, single.cmc, atol=1e-12)
        assert res.trials[t].mAP == pytest.approx(single.mAP, abs=1e-12)
        assert res.trials[t].mINP == pytest.approx(single.mINP, abs=1e-12)


def test_batched_distances_with_unequal_query_and_gallery_sizes(monkeypatch):
    """30 queries against galleries of 48, 20, 36, 44 and 12 images, at most 30 x 70 distances per product: the
    products group consecutive galleries as [48, 20], [36], [44, 12] (by hand), and each trial gets its own
    columns (the same numbers as one pair at a time)."""
    import workbench.metrics.protocols as protocols

    monkeypatch.setattr(protocols, "_BATCH_ELEMENTS", 30 * 70)
    widths = []
    real = protocols.pairwise_distance

    def spy(a, b, *args, **kwargs):
        widths.append((len(a), len(b)))
        return real(a, b, *args, **kwargs)

    q0, _ = sysu_trial(0)
    query = EvalSet(q0.feats[:30], q0.pids[:30], q0.camids[:30])
    sizes = (48, 20, 36, 44, 12)
    trials = []
    for s, n in enumerate(sizes):
        g = sysu_trial(s + 1)[1]
        keep = np.random.default_rng(s).permutation(len(g.pids))[:n]
        trials.append((query, EvalSet(g.feats[keep], g.pids[keep], g.camids[keep])))
    spec = PROTOCOLS["sysu-mm01"]
    monkeypatch.setattr(protocols, "pairwise_distance", spy)
    res = evaluate_trials(trials, spec)
    assert widths == [(30, 68), (30, 36), (30, 56)]
    monkeypatch.setattr(protocols, "pairwise_distance", real)
    for t, (q, g) in enumerate(trials):
        single = protocols.evaluate_pair(q, g, spec)
        np.testing.assert_allclose(res.trials[t].cmc, single.cmc, atol=1e-12)
        assert res.trials[t].mAP == pytest.approx(single.mAP, abs=1e-12)
        assert res.trials[t].mINP == pytest.approx(single.mINP, abs=1e-12)
    assert len({round(r.mAP, 9) for r in res.trials}) == len(sizes)  # distinct galleries, distinct scores


def multimodal_set(seed, n=60, ids=10):
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, ids, n)
    base = np.random.default_rng(7).standard_normal((ids, 8))
    feats = {
        "rgb": base[pids] + rng.standard_normal((n, 8)),
        "nir": 3.0 * base[pids][:, ::-1] + rng.standard_normal((n, 8)),
        "tir": 10.0 * rng.standard_normal((n, 5)),  # pure noise, large scale
    }
    return EvalSet(feats, pids, rng.integers(0, 4, n))


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_branch_rules():
    s = multimodal_set(0)
    f = s.feats
    np.testing.assert_allclose(combine_branches(s, ("nir",)), unit(f["nir"]))
    np.testing.assert_allclose(
        combine_branches(s, ("rgb", "tir")), np.concatenate([unit(f["rgb"]), unit(f["tir"])], axis=1)
    )
    np.testing.assert_allclose(
        combine_branches(s, None, branch_norm="concat"),
        unit(np.concatenate([f["rgb"], f["nir"], f["tir"]], axis=1)),
    )
    np.testing.assert_allclose(
        combine_branches(s, ("tir", "rgb"), normalize=False), np.concatenate([f["tir"], f["rgb"]], 1)
    )
    with pytest.raises(ValueError, match="unknown branches"):
        combine_branches(s, ("depth",))


def test_branch_subset_evaluation_matches_manual_and_differs_between_branches():
    q, g = multimodal_set(1), multimodal_set(2)
    spec = PROTOCOLS["rgbnt201"]
    only_nir = evaluate_trials([(q, g)], spec, branches=["nir"])
    d = pairwise_distance(unit(q.feats["nir"]), unit(g.feats["nir"]), "sqeuclidean")
    ref = rank_metrics(d, q.pids, g.pids, q.camids, g.camids, junk="market")
    assert only_nir.mean["mAP"] == pytest.approx(ref.mAP) and only_nir.branches == ("nir",)
    only_tir = evaluate_trials([(q, g)], spec, branches=["tir"])
    assert only_nir.mean["mAP"] > only_tir.mean["mAP"]  # tir is noise here
    # torch features give the same numbers
    qt = EvalSet({k: torch.from_numpy(v) for k, v in q.feats.items()}, q.pids, q.camids)
    gt = EvalSet({k: torch.from_numpy(v) for k, v in g.feats.items()}, g.pids, g.camids)
    assert evaluate_trials([(qt, gt)], spec).mean["mAP"] == pytest.approx(
        evaluate_trials([(q, g)], spec).mean["mAP"]
    )


def test_cosine_on_per_branch_concatenation():
    """Cosine on two per-branch-normalised branches = cosine of their concatenation (rows not unit-norm)."""
    q, g = multimodal_set(5), multimodal_set(6)
    spec = ProtocolSpec(name="vi", junk="market", metric="cosine", branch_norm="per_branch")
    res = evaluate_trials([(q, g)], spec, branches=["rgb", "nir"])
    qf = np.concatenate([unit(q.feats["rgb"]), unit(q.feats["nir"])], axis=1)
    gf = np.concatenate([unit(g.feats["rgb"]), unit(g.feats["nir"])], axis=1)
    d = 1.0 - unit(qf) @ unit(gf).T
    ref = rank_metrics(d, q.pids, g.pids, q.camids, g.camids, junk="market")
    assert res.mean["mAP"] == pytest.approx(ref.mAP, abs=1e-12)
    np.testing.assert_allclose(res.cmc, ref.cmc)


def test_msvr310_uses_scenes():
    q, g = multimodal_set(3), multimodal_set(4)
    rng = np.random.default_rng(0)
    q = replace(q, scenes=rng.integers(0, 2, len(q)))
    g = replace(g, scenes=rng.integers(0, 2, len(g)))
    res = evaluate_trials([(q, g)], PROTOCOLS["msvr310"])
    qf, gf = combine_branches(q, None, branch_norm="concat"), combine_branches(g, None, branch_norm="concat")
    ref = rank_metrics(
        pairwise_distance(qf, gf, "sqeuclidean"),
        q.pids,
        g.pids,
        junk="msvr310",
        q_scenes=q.scenes,
        g_scenes=g.scenes,
    )
    assert res.mean["mAP"] == pytest.approx(ref.mAP)


def test_directions_table():
    v2t = [sysu_trial(s) for s in range(2)]
    t2v = [(g, q) for q, g in v2t]
    spec = PROTOCOLS["regdb"]
    table = evaluate_directions({"visible->thermal": v2t, "thermal->visible": t2v}, spec)
    assert list(table.index) == ["visible->thermal", "thermal->visible"]
    assert {"rank1", "mAP", "mINP", "mAP_std", "num_trials"} <= set(table.columns)
    # oracle: per trial, cosine distances written out and rank_metrics with the RegDB rules; mean and std over trials
    for name, trials in (("visible->thermal", v2t), ("thermal->visible", t2v)):
        per = []
        for q, g in trials:
            d = 1.0 - unit(q.feats) @ unit(g.feats).T
            per.append(rank_metrics(d, q.pids, g.pids, q.camids, g.camids, junk="none", max_rank=spec.max_rank))
        for key in ("rank1", "mAP", "mINP"):
            values = [r.as_dict()[key] for r in per]
            assert table.loc[name, key] == pytest.approx(np.mean(values), abs=1e-12), (name, key)
            assert table.loc[name, f"{key}_std"] == pytest.approx(np.std(values), abs=1e-12), (name, key)
        assert table.loc[name, "num_trials"] == len(trials)
    assert table.loc["visible->thermal", "mAP"] != pytest.approx(table.loc["thermal->visible", "mAP"], abs=1e-6)
    with pytest.raises(ValueError, match="directions is empty"):
        evaluate_directions({}, spec)


def test_rerank_spec():
    q, g = sysu_trial(5)
    spec = with_rerank(PROTOCOLS["regdb"], k1=5, k2=2)
    res = evaluate_trials([(q, g)], spec)
    qf, gf = unit(q.feats), unit(g.feats)
    dist = k_reciprocal_rerank(
        pairwise_distance(qf, gf, "euclidean"),
        pairwise_distance(qf, qf, "euclidean"),
        pairwise_distance(gf, gf, "euclidean"),
        k1=5,
        k2=2,
    )
    ref = rank_metrics(dist, q.pids, g.pids, junk="none", max_rank=20)
    assert res.mean["mAP"] == pytest.approx(ref.mAP) and spec.name == "regdb+rerank"


def test_errors():
    q, g = sysu_trial(6)
    with pytest.raises(ValueError, match="trials is empty"):
        evaluate_trials([], PROTOCOLS["regdb"])
    with pytest.raises(ValueError, match="wrap a single pair"):
        evaluate_trials((q, g), PROTOCOLS["regdb"])
    with pytest.raises(ValueError, match="has 3 rows but pids has 4"):
        EvalSet(np.zeros((3, 2)), np.arange(4), np.arange(4))
    with pytest.raises(ValueError, match="differ from gallery branches"):
        evaluate_trials([(multimodal_set(0), g)], PROTOCOLS["regdb"])
