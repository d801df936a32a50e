"""pairwise_distance against torch.cdist / scikit-learn, on numpy and torch, chunked and not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_distances

from workbench.metrics import l2_normalize, pairwise_distance


@pytest.fixture
def feats():
    rng = np.random.default_rng(0)
    return rng.standard_normal((23, 7)), rng.standard_normal((31, 7))


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_numpy_matches_references(feats, chunk):
    q, g = feats
    eu = torch.cdist(torch.from_numpy(q), torch.from_numpy(g)).numpy()
    np.testing.assert_allclose(pairwise_distance(q, g, "euclidean", chunk_size=chunk), eu, atol=1e-10)
    np.testing.assert_allclose(pairwise_distance(q, g, "sqeuclidean", chunk_size=chunk), eu**2, atol=1e-10)
    np.testing.assert_allclose(
        pairwise_distance(q, g, "cosine", chunk_size=chunk), cosine_distances(q, g), atol=1e-10
    )


def test_torch_in_torch_out_and_dtype(feats):
    q, g = (torch.from_numpy(x).float() for x in feats)
    out = pairwise_distance(q, g, "euclidean", chunk_size=4)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (23, 31)
    torch.testing.assert_close(out, torch.cdist(q, g), atol=1e-4, rtol=1e-4)
    out32 = pairwise_distance(feats[0].astype(np.float32), feats[1].astype(np.float32))
    assert out32.dtype == np.float32


def test_cosine_equals_half_sqeuclidean_of_normalised(feats):
    q, g = (l2_normalize(x) for x in feats)
    np.testing.assert_allclose(
        pairwise_distance(q, g, "cosine"), 0.5 * pairwise_distance(q, g, "sqeuclidean"), atol=1e-10
    )
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0)


def test_self_distance_zero_and_nonnegative(feats):
    q, _ = feats
    for metric in ("euclidean", "sqeuclidean", "cosine"):
        d = pairwise_distance(q, q, metric)
        assert (d >= -1e-12).all()
        np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-6)


def test_errors(feats):
    q, g = feats
    with pytest.raises(ValueError, match="metric must be one of"):
        pairwise_distance(q, g, "manhattan")
    with pytest.raises(ValueError, match="query_feats must be 2-D"):
        pairwise_distance(q[0], g)
    with pytest.raises(ValueError, match="D=7 but gallery_feats has D=3"):
        pairwise_distance(q, g[:, :3])
    with pytest.raises(ValueError, match="both be numpy arrays or both torch"):
        pairwise_distance(q, torch.from_numpy(g))
    bad = q.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="query_feats contains NaN"):
        pairwise_distance(bad, g)
    with pytest.raises(ValueError, match="chunk_size"):
        pairwise_distance(q, g, chunk_size=0)
