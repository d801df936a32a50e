"""k_reciprocal_rerank against a brute-force loop of the published algorithm (Zhong et al. CVPR 2017)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.metrics import pairwise_distance, rank_metrics
from workbench.metrics.rerank import k_reciprocal_rerank


def rerank_oracle(q_g, q_q, g_g, k1, k2, lam):
    """Plain loops over items, following the steps listed in the paper and its public code."""
    nq = q_g.shape[0]
    d = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float32) ** 2
    d = (d / d.max(axis=0)).T
    n = len(d)
    rank = np.argsort(d, axis=1, kind="stable")

    def recip(i, k):
        return [j for j in rank[i, : k + 1] if i in rank[j, : k + 1]]

    v = np.zeros((n, n))
    for i in range(n):
        r = recip(i, k1)
        expanded = set(r)
        for c in r:
            rc = recip(c, int(np.around(k1 / 2)))
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                expanded |= set(rc)
        idx = sorted(expanded)
        w = np.exp(-d[i, idx].astype(np.float64))
        v[i, idx] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    out = np.zeros((nq, n - nq))
    for i in range(nq):
        for j in range(nq, n):
            inter = np.minimum(v[i], v[j]).sum()
            union = np.maximum(v[i], v[j]).sum()
            out[i, j - nq] = (1 - inter / union) * (1 - lam) + d[i, j] * lam
    return out


def features(seed, nq=12, ng=40, ids=8, dim=6):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim)) * 2
    q_pids, g_pids = rng.integers(0, ids, nq), rng.integers(0, ids, ng)
    q = centres[q_pids] + rng.standard_normal((nq, dim))
    g = centres[g_pids] + rng.standard_normal((ng, dim))
    return q, g, q_pids, g_pids


@pytest.mark.parametrize("seed,k1,k2,lam", [(0, 20, 6, 0.3), (1, 5, 1, 0.3), (2, 7, 3, 0.0), (3, 3, 2, 1.0)])
def test_rerank_matches_brute_force(seed, k1, k2, lam):
    q, g, _, _ = features(seed)
    q_g = pairwise_distance(q, g, "euclidean")
    q_q = pairwise_distance(q, q, "euclidean")
    g_g = pairwise_distance(g, g, "euclidean")
    ours = k_reciprocal_rerank(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    ref = rerank_oracle(q_g, q_q, g_g, k1, k2, lam)
    assert ours.shape == (len(q), len(g))
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_rerank_lambda_one_is_normalised_squared_distance():
    q, g, _, _ = features(4)
    q_g, q_q, g_g = (pairwise_distance(a, b, "euclidean") for a, b in ((q, g), (q, q), (g, g)))
    out = k_reciprocal_rerank(q_g, q_q, g_g, lambda_value=1.0)
    full = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float32) ** 2
    # after the transpose, query row i is divided by the largest distance from query i
    np.testing.assert_allclose(
        out, (q_g.astype(np.float32) ** 2) / full.max(axis=1)[: len(q), None], rtol=1e-6
    )


def test_rerank_improves_map_on_clustered_data():
    rng = np.random.default_rng(5)
    ids = np.repeat(np.arange(15), 8)
    x = rng.standard_normal((15, 16))[ids] * 1.0 + rng.standard_normal((120, 16))
    q_idx = np.arange(0, 120, 8)
    g_idx = np.setdiff1d(np.arange(120), q_idx)
    q, g = x[q_idx], x[g_idx]
    q_g, q_q, g_g = (pairwise_distance(a, b, "euclidean") for a, b in ((q, g), (q, q), (g, g)))
    base = rank_metrics(q_g, ids[q_idx], ids[g_idx], junk="none")
    rr = rank_metrics(k_reciprocal_rerank(q_g, q_q, g_g, k1=6, k2=3), ids[q_idx], ids[g_idx], junk="none")
    assert rr.mAP > base.mAP


def test_rerank_errors():
    q, g, _, _ = features(6)
    q_g, q_q, g_g = (pairwise_distance(a, b, "euclidean") for a, b in ((q, g), (q, q), (g, g)))
    with pytest.raises(ValueError, match="g_g must have shape"):
        k_reciprocal_rerank(q_g, q_q, q_q)
    with pytest.raises(ValueError, match="lambda_value"):
        k_reciprocal_rerank(q_g, q_q, g_g, lambda_value=2.0)
    with pytest.raises(ValueError, match="k1 and k2"):
        k_reciprocal_rerank(q_g, q_q, g_g, k1=0)
