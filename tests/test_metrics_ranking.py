"""rank_metrics against brute-force per-query oracles (written here as plain loops) and invariants.

Oracles follow the reference semantics named in PROTOCOLS.md: ReID-Survey ``eval_func`` (Market-style),
Cross-Modal-Re-ID-baseline ``eval_sysu`` / ``eval_regdb``, TOP-ReID ``eval_func_msrv``. They use a stable sort,
so they define the "stable" tie policy too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from workbench.metrics import rank_metrics

# ----------------------------------------------------------------------------------------------- oracles


def oracle(
    distmat, q_pids, g_pids, q_cams, g_cams, rule, max_rank, dedup=False, q_scenes=None, g_scenes=None
):
    """Per-query loop: returns (cmc (max_rank,), mAP, mINP, per-query AP dict, per-query INP dict)."""
    num_q, num_g = distmat.shape
    all_cmc, aps, inps = [], {}, {}
    for i in range(num_q):
        order = np.argsort(distmat[i], kind="stable")
        if rule == "market":
            remove = (g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i])
        elif rule == "sysu":
            remove = (q_cams[i] == 3) & (g_cams[order] == 2)
        elif rule == "msvr310":
            remove = (g_pids[order] == q_pids[i]) & (g_scenes[order] == q_scenes[i])
        else:
            remove = np.zeros(num_g, dtype=bool)
        keep = ~remove
        raw = (g_pids[order][keep] == q_pids[i]).astype(np.int64)
        if not raw.any():
            continue
        if dedup:
            labels = g_pids[order][keep]
            first_idx = np.unique(labels, return_index=True)[1]
            labels = labels[np.sort(first_idx)]
            hit = (labels == q_pids[i]).astype(np.int64)
        else:
            hit = raw
        cmc = np.minimum(hit.cumsum(), 1)
        if len(cmc) < max_rank:  # pad with the final value (1 for a valid query)
            cmc = np.concatenate([cmc, np.full(max_rank - len(cmc), cmc[-1])])
        all_cmc.append(cmc[:max_rank])
        cum = raw.cumsum()
        precision = [x / (k + 1.0) for k, x in enumerate(cum)]
        aps[i] = float(np.sum(np.asarray(precision) * raw) / raw.sum())
        last = np.flatnonzero(raw)[-1]
        inps[i] = float(cum[last] / (last + 1.0))
    cmc = np.mean(all_cmc, axis=0)
    return cmc, float(np.mean(list(aps.values()))), float(np.mean(list(inps.values()))), aps, inps


def make_problem(seed, num_q=40, num_g=160, num_ids=20, num_cams=6, dim=8, ties=False):
    rng = np.random.default_rng(seed)
    g_pids = rng.integers(0, num_ids, num_g)
    q_pids = rng.integers(0, num_ids, num_q)
    g_cams = rng.integers(1, num_cams + 1, num_g)
    q_cams = rng.integers(1, num_cams + 1, num_q)
    centres = rng.standard_normal((num_ids, dim))
    q = centres[q_pids] + 0.9 * rng.standard_normal((num_q, dim))
    g = centres[g_pids] + 0.9 * rng.standard_normal((num_g, dim))
    dist = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    if ties:
        dist = np.round(dist, 0)
    return dist, q_pids, g_pids, q_cams, g_cams


def check_against_oracle(res, ref, atol=1e-6):
    cmc, m_ap, m_inp, aps, inps = ref
    np.testing.assert_allclose(res.cmc, cmc, atol=atol)
    assert res.mAP == pytest.approx(m_ap, abs=atol)
    assert res.mINP == pytest.approx(m_inp, abs=atol)
    pq = res.per_query
    assert sorted(pq.index[pq.valid]) == sorted(aps)
    np.testing.assert_allclose(pq.AP[list(aps)], list(aps.values()), atol=atol)
    np.testing.assert_allclose(pq.INP[list(inps)], list(inps.values()), atol=atol)


# ----------------------------------------------------------------------------------------------- oracle agreement


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_market_matches_eval_func_oracle(seed):
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(seed)
    res = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, junk="market", max_rank=50)
    check_against_oracle(res, oracle(dist, q_pids, g_pids, q_cams, g_cams, "market", 50))


@pytest.mark.parametrize("seed", [0, 1])
def test_market_ap_matches_sklearn(seed):
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(seed)
    res = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, junk="market")
    for i in range(len(q_pids)):
        keep = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        y = g_pids[keep] == q_pids[i]
        if not y.any():
            assert not res.per_query.valid[i]
            continue
        assert res.per_query.AP[i] == pytest.approx(average_precision_score(y, -dist[i, keep]), abs=1e-9)


def sysu_problem(seed, num_ids=30, shots=1):
    """SYSU-like: IR probes on cams 3 and 6, gallery = `shots` RGB images per (id, cam in 1, 2, 4, 5)."""
    rng = np.random.default_rng(seed)
    g_pids = np.repeat(np.arange(num_ids), 4 * shots)
    g_cams = np.tile(np.repeat([1, 2, 4, 5], shots), num_ids)
    q_pids = np.repeat(np.arange(num_ids), 3)
    q_cams = rng.choice([3, 6], len(q_pids))
    centres = rng.standard_normal((num_ids, 6))
    q = centres[q_pids] + 1.2 * rng.standard_normal((len(q_pids), 6))
    g = centres[g_pids] + 1.2 * rng.standard_normal((len(g_pids), 6))
    dist = np.sqrt(((q[:, None] - g[None]) ** 2).sum(-1))
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("shots", [1, 10])
def test_sysu_matches_eval_sysu_oracle(shots):
    dist, q_pids, g_pids, q_cams, g_cams = sysu_problem(3, shots=shots)
    res = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, junk="sysu", dedup_cmc=True, max_rank=20)
    check_against_oracle(res, oracle(dist, q_pids, g_pids, q_cams, g_cams, "sysu", 20, dedup=True))


def test_sysu_location_rule_removes_cam2_for_cam3_probes_only():
    dist, q_pids, g_pids, q_cams, g_cams = sysu_problem(4)
    # make the cam-2 image of each probe's identity the nearest: it must be ignored for cam-3 probes only
    for i in range(len(q_pids)):
        dist[i, (g_pids == q_pids[i]) & (g_cams == 2)] = -1.0
    res = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, junk="sysu", dedup_cmc=True)
    pq = res.per_query
    assert (pq.first_match_rank[q_cams == 6] == 1).all()
    none = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, junk="none")
    assert (none.per_query.first_match_rank == 1).all()
    assert pq.first_match_rank[q_cams == 3].mean() > 1


def test_dedup_changes_only_ranks_above_one():
    dist, q_pids, g_pids, q_cams, g_cams = sysu_problem(5, shots=10)
    plain = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, junk="sysu", dedup_cmc=False)
    dedup = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, junk="sysu", dedup_cmc=True)
    assert dedup.rank1 == plain.rank1
    assert dedup.mAP == plain.mAP and dedup.mINP == plain.mINP
    assert np.all(dedup.cmc >= plain.cmc - 1e-12)
    assert np.any(dedup.cmc > plain.cmc)


def test_regdb_matches_eval_regdb_oracle():
    rng = np.random.default_rng(6)
    ids = np.repeat(np.arange(25), 10)
    vis = rng.standard_normal((25, 16))[ids] + rng.standard_normal((250, 16))
    th = rng.standard_normal((25, 16))[ids] * 0.5 + vis * 0.5 + rng.standard_normal((250, 16))
    dist = np.sqrt(((vis[:, None] - th[None]) ** 2).sum(-1))
    res = rank_metrics(dist, ids, ids, junk="none", max_rank=20)
    ref = oracle(dist, ids, ids, np.ones(250), np.full(250, 2), "market", 20)  # eval_regdb: cams 1 vs 2
    check_against_oracle(res, ref)


def test_msvr310_scene_rule_matches_oracle():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(7)
    rng = np.random.default_rng(7)
    q_sc, g_sc = rng.integers(0, 3, len(q_pids)), rng.integers(0, 3, len(g_pids))
    res = rank_metrics(dist, q_pids, g_pids, junk="msvr310", q_scenes=q_sc, g_scenes=g_sc)
    ref = oracle(dist, q_pids, g_pids, None, None, "msvr310", 50, q_scenes=q_sc, g_scenes=g_sc)
    check_against_oracle(res, ref)
    # the camera plays no part: shuffled camera ids change nothing
    res2 = rank_metrics(
        dist, q_pids, g_pids, q_cams[::-1], g_cams, junk="msvr310", q_scenes=q_sc, g_scenes=g_sc
    )
    np.testing.assert_array_equal(res.cmc, res2.cmc)


def test_query_in_gallery_rgbnt201_style_self_match_removed():
    """Query = gallery (RGBNT201): Market removal drops the self-match and same-camera siblings."""
    dist, _, pids, _, cams = make_problem(8, num_q=1, num_g=120)
    rng = np.random.default_rng(8)
    feats = rng.standard_normal((120, 6)) + 2 * rng.standard_normal((20, 6))[pids]
    dist = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    res = rank_metrics(dist, pids, pids, cams, cams, junk="market")
    check_against_oracle(res, oracle(dist, pids, pids, cams, cams, "market", 50))
    none = rank_metrics(dist, pids, pids, junk="none")
    assert none.rank1 == 1.0 and none.mAP < 1.0  # the self-match is at distance 0


def test_small_gallery_and_max_rank_longer_than_gallery():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(9, num_q=15, num_g=12, num_ids=4)
    res = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, max_rank=50)
    ref = oracle(dist, q_pids, g_pids, q_cams, g_cams, "market", 50)
    check_against_oracle(res, ref)
    assert len(res.cmc) == 50 and res.cmc[-1] == 1.0


def test_skipped_queries_counted_and_excluded():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(10)
    q_pids = q_pids.copy()
    q_pids[:5] = 999  # identities absent from the gallery
    res = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    kept = rank_metrics(dist[5:], q_pids[5:], g_pids, q_cams[5:], g_cams)
    assert res.num_skipped >= 5 and res.num_valid == kept.num_valid
    assert res.num_valid + res.num_skipped == len(q_pids)
    np.testing.assert_allclose(res.cmc, kept.cmc)
    assert res.mAP == pytest.approx(kept.mAP) and res.mINP == pytest.approx(kept.mINP)
    assert res.per_query.AP[:5].isna().all() and res.per_query.first_match_rank[:5].isna().all()


def test_chunking_does_not_change_results():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(11, num_q=37)
    a = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, chunk_size=1)
    b = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, chunk_size=1000)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.mAP == b.mAP and a.mINP == b.mINP


def test_string_pids_and_torch_input():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(12)
    a = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    b = rank_metrics(torch.from_numpy(dist), q_pids.astype(str), g_pids.astype(str), q_cams, g_cams)
    np.testing.assert_allclose(a.cmc, b.cmc)
    assert a.mAP == pytest.approx(b.mAP)


# ----------------------------------------------------------------------------------------------- invariants


def test_gallery_order_does_not_matter_without_ties():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(13)
    perm = np.random.default_rng(0).permutation(len(g_pids))
    a = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    b = rank_metrics(dist[:, perm], q_pids, g_pids[perm], q_cams, g_cams[perm])
    np.testing.assert_allclose(a.cmc, b.cmc, atol=1e-12)
    assert a.mAP == pytest.approx(b.mAP, abs=1e-12) and a.mINP == pytest.approx(b.mINP, abs=1e-12)


def test_perfect_ranking_gives_one():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(14)
    perfect = (g_pids[None, :] != q_pids[:, None]).astype(float) + 1e-3 * np.random.default_rng(0).random(
        dist.shape
    )
    res = rank_metrics(perfect, q_pids, g_pids, q_cams, g_cams)
    assert np.all(res.cmc == 1.0) and res.mAP == 1.0 and res.mINP == 1.0


def test_worst_ranking_gives_expected_minimum():
    """All true matches last: rank-1 = 0 (unless all kept items match) and AP, INP have closed forms."""
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(15)
    worst = (g_pids[None, :] == q_pids[:, None]).astype(float) + 1e-3 * np.random.default_rng(1).random(
        dist.shape
    )
    res = rank_metrics(worst, q_pids, g_pids, q_cams, g_cams)
    aps, inps = [], []
    for i in range(len(q_pids)):
        keep = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        n_pos = int((g_pids[keep] == q_pids[i]).sum())
        n_kept = int(keep.sum())
        if n_pos == 0:
            continue
        n_neg = n_kept - n_pos
        aps.append(np.mean([j / (n_neg + j) for j in range(1, n_pos + 1)]))
        inps.append(n_pos / n_kept)  # the last true match is last
    assert res.rank1 == 0.0
    assert res.mAP == pytest.approx(np.mean(aps), abs=1e-12)
    assert res.mINP == pytest.approx(np.mean(inps), abs=1e-12)


def test_metrics_in_unit_interval_and_cmc_monotone():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(16)
    res = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    assert np.all(np.diff(res.cmc) >= 0) and 0 <= res.cmc[0] and res.cmc[-1] <= 1
    assert 0 < res.mINP <= 1 and 0 < res.mAP <= 1
    d = res.as_dict()
    assert set(d) == {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP"}
    assert all(isinstance(v, float) for v in d.values())


def test_inp_can_exceed_ap():
    """No order between AP and INP: true matches at ranks 2 and 3 give AP (1/2 + 2/3) / 2 and INP 2/3."""
    dist = np.array([[0.1, 0.2, 0.3]])
    res = rank_metrics(dist, np.array([1]), np.array([2, 1, 1]), np.array([1]), np.array([2, 2, 2]), junk="none")
    assert res.mAP == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-12)
    assert res.mINP == pytest.approx(2 / 3, abs=1e-12)


# ----------------------------------------------------------------------------------------------- ties


def test_ties_stable_policy_is_deterministic_and_matches_stable_oracle():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(17, ties=True)
    assert len(np.unique(dist)) < dist.size / 10  # heavily tied
    a = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ties="stable")
    b = rank_metrics(dist.copy(), q_pids, g_pids, q_cams, g_cams, ties="stable")
    np.testing.assert_array_equal(a.cmc, b.cmc)
    check_against_oracle(a, oracle(dist, q_pids, g_pids, q_cams, g_cams, "market", 50))


def pessimistic_oracle(dist, q_pids, g_pids, q_cams, g_cams, sign, rule="market", max_rank=50, dedup=False):
    """Sort by (distance, sign * is_match) with a stable sort: sign=+1 pessimistic, -1 optimistic."""
    match = (g_pids[None, :] == q_pids[:, None]).astype(float)
    # a rank transform keeps the order of distances and leaves room for the tie key between distinct values
    ranks = np.searchsorted(np.unique(dist), dist).astype(float)
    return oracle(ranks + sign * 0.5 * match, q_pids, g_pids, q_cams, g_cams, rule, max_rank, dedup=dedup)


@pytest.mark.parametrize("seed", [18, 19])
def test_ties_pessimistic_and_optimistic_match_oracle_and_bound_stable(seed):
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(seed, ties=True)
    st = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ties="stable")
    pe = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ties="pessimistic")
    op = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ties="optimistic")
    check_against_oracle(pe, pessimistic_oracle(dist, q_pids, g_pids, q_cams, g_cams, +1))
    check_against_oracle(op, pessimistic_oracle(dist, q_pids, g_pids, q_cams, g_cams, -1))
    assert np.all(pe.cmc <= st.cmc + 1e-12) and np.all(st.cmc <= op.cmc + 1e-12)
    assert pe.mAP <= st.mAP <= op.mAP and pe.mINP <= st.mINP <= op.mINP
    assert pe.mAP < op.mAP  # the ties do matter here


def test_ties_with_dedup_match_oracle():
    dist, q_pids, g_pids, q_cams, g_cams = sysu_problem(20, shots=10)
    dist = np.round(dist, 1)
    res = rank_metrics(
        dist, q_pids, g_pids, q_cams, g_cams, junk="sysu", dedup_cmc=True, ties="stable", max_rank=20
    )
    check_against_oracle(res, oracle(dist, q_pids, g_pids, q_cams, g_cams, "sysu", 20, dedup=True))
    for ties, sign in (("pessimistic", +1), ("optimistic", -1)):
        res = rank_metrics(
            dist, q_pids, g_pids, q_cams, g_cams, junk="sysu", dedup_cmc=True, ties=ties, max_rank=20
        )
        ref = pessimistic_oracle(dist, q_pids, g_pids, q_cams, g_cams, sign, "sysu", 20, dedup=True)
        check_against_oracle(res, ref)


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_infinite_distances_rank_last(offset):
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(21)
    dist = dist + offset
    dist[:, :10] = np.inf
    dist[:5, 10:12] = -np.inf
    res = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    check_against_oracle(res, oracle(dist, q_pids, g_pids, q_cams, g_cams, "market", 50))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset,spread", [(1e6, 1.0), (0.0, 1e-30), (-5.0, 1e3)])
def test_extreme_value_ranges_match_oracle(dtype, offset, spread):
    """Large offsets, tiny ranges and negative distances must not disturb the exact ranks."""
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(23)
    dist = (offset + spread * dist / dist.max()).astype(dtype)
    res = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    check_against_oracle(res, oracle(dist, q_pids, g_pids, q_cams, g_cams, "market", 50))


# ----------------------------------------------------------------------------------------------- errors


def test_errors_name_the_argument():
    dist, q_pids, g_pids, q_cams, g_cams = make_problem(22)
    with pytest.raises(ValueError, match="distmat must be 2-D"):
        rank_metrics(dist[0], q_pids, g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="q_pids has length"):
        rank_metrics(dist, q_pids[:-1], g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="g_camids has length"):
        rank_metrics(dist, q_pids, g_pids, q_cams, g_cams[:-1])
    with pytest.raises(ValueError, match="q_camids is required"):
        rank_metrics(dist, q_pids, g_pids, junk="market")
    with pytest.raises(ValueError, match="q_scenes is required"):
        rank_metrics(dist, q_pids, g_pids, junk="msvr310")
    bad = dist.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="distmat contains 1 NaN"):
        rank_metrics(bad, q_pids, g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="gallery is empty"):
        rank_metrics(np.zeros((4, 0)), q_pids[:4], g_pids[:0], q_cams[:4], g_cams[:0])
    with pytest.raises(ValueError, match="no query has a true match"):
        rank_metrics(dist, q_pids + 1000, g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="junk must be one of"):
        rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, junk="cuhk")
    with pytest.raises(ValueError, match="ties must be one of"):
        rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ties="random")
    with pytest.raises(ValueError, match="max_rank must be"):
        rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, max_rank=0)
