"""Disentanglement scores reach their expected extremes on identity-only and modality-only synthetic features."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.metrics.disentanglement import (
    cross_modal_centre_ratio,
    cross_modal_knn_purity,
    disentanglement_report,
    linear_probe,
    linear_probe_score,
    modality_centroid_gap,
    silhouette_by,
)

IDS, MODS, PER = 12, 3, 8  # identities, modalities, samples per (identity, modality)


@pytest.fixture(scope="module")
def labels():
    pids = np.repeat(np.arange(IDS), MODS * PER)
    mods = np.tile(np.repeat(np.arange(MODS), PER), IDS)
    return pids, mods


def features(pids, mods, id_scale, mod_scale, seed=0, dim=24):
    rng = np.random.default_rng(seed)
    id_c = rng.standard_normal((IDS, dim))
    mod_c = rng.standard_normal((MODS, dim))
    return id_scale * id_c[pids] + mod_scale * mod_c[mods] + 0.1 * rng.standard_normal((len(pids), dim))


def test_identity_only_features(labels):
    pids, mods = labels
    x = features(pids, mods, id_scale=3.0, mod_scale=0.0)
    rep = disentanglement_report(
        x, pids, mods, factors={"noise": np.random.default_rng(1).integers(0, 2, len(pids))}
    )
    assert rep.identity_probe.accuracy == 1.0
    assert rep.modality_probe.accuracy < rep.modality_probe.chance + 0.2
    assert rep.silhouette_identity > 0.8 and rep.silhouette_modality < 0.05
    assert rep.cross_modal_purity == 1.0
    assert rep.centroid_gap.ratio < 0.05
    assert set(rep.as_dict()) >= {"identity_probe_acc", "noise_probe_acc", "centroid_gap_ratio"}


def test_modality_only_features(labels):
    pids, mods = labels
    x = features(pids, mods, id_scale=0.0, mod_scale=3.0)
    rep = disentanglement_report(x, pids, mods)
    assert rep.modality_probe.accuracy == 1.0
    assert rep.identity_probe.accuracy < 3.0 / IDS
    assert rep.silhouette_modality > 0.8 and rep.silhouette_identity < 0.05
    assert rep.cross_modal_purity < 3.0 / IDS
    assert rep.centroid_gap.ratio > 10


def test_probe_chance_is_majority_rate():
    y = np.array([0] * 70 + [1] * 30)
    x = np.random.default_rng(0).standard_normal((100, 4))
    res = linear_probe(x, y, test_size=0.5, seed=0)
    assert res.chance == pytest.approx(0.7) and res.num_classes == 2
    assert linear_probe_score(x, y, test_size=0.5, seed=0) == res.accuracy
    assert isinstance(linear_probe_score(x, y, test_size=0.5, seed=0), float)


def test_purity_and_gap_exact_on_tiny_example():
    # two identities, two modalities, one point each: cross-modal nearest neighbour is the same identity
    x = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    pids, mods = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    assert cross_modal_knn_purity(x, pids, mods, k=1, metric="euclidean") == 1.0
    assert cross_modal_knn_purity(x, pids, mods, k=2, metric="euclidean") == 0.5
    gap = modality_centroid_gap(x, pids, mods)
    assert gap.modality_gap == pytest.approx(1.0) and gap.identity_spread == pytest.approx(10.0)
    assert gap.ratio == pytest.approx(0.1)


def test_deterministic_and_errors(labels):
    pids, mods = labels
    x = features(pids, mods, 1.0, 1.0)
    assert silhouette_by(x, pids, sample_size=100, seed=3) == silhouette_by(x, pids, sample_size=100, seed=3)
    assert linear_probe_score(x, mods, seed=2) == linear_probe_score(x, mods, seed=2)
    with pytest.raises(ValueError, match="pids must have shape"):
        cross_modal_knn_purity(x, pids[:-1], mods)
    with pytest.raises(ValueError, match="at least 2 distinct modalities"):
        cross_modal_knn_purity(x, pids, np.zeros_like(mods))
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe_score(x, np.zeros_like(pids))


def test_cross_modal_centre_ratio_against_a_loop():
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(4), 6)
    mods = np.tile(np.array(["rgb", "rgb", "rgb", "ir", "ir", "ir"]), 4)
    x = rng.normal(size=(24, 5)).astype(np.float32)
    f = x / np.linalg.norm(x, axis=1, keepdims=True)
    centre = {(p, m): f[(pids == p) & (mods == m)].mean(0) for p in range(4) for m in ("rgb", "ir")}
    same = np.mean([np.sum((centre[p, "rgb"] - centre[p, "ir"]) ** 2) for p in range(4)])
    other = np.mean([np.sum((centre[p, "rgb"] - centre[q, "ir"]) ** 2) for p in range(4) for q in range(4) if p != q])
    assert cross_modal_centre_ratio(x, pids, mods) == pytest.approx(same / other, rel=1e-5)
    # aligned modalities, separated identities: far below 1; an identity seen in one modality only is left out
    aligned = np.repeat(np.eye(4, 5), 6, axis=0) + 0.01 * rng.normal(size=(24, 5))
    assert cross_modal_centre_ratio(aligned, pids, mods) < 0.01
    keep = ~((pids == 3) & (mods == "ir"))
    assert cross_modal_centre_ratio(x[keep], pids[keep], mods[keep]) == pytest.approx(
        cross_modal_centre_ratio(x[pids < 3], pids[pids < 3], mods[pids < 3]))
    with pytest.raises(ValueError, match="at least 2 identities"):
        cross_modal_centre_ratio(x[pids == 0], pids[pids == 0], mods[pids == 0])


def test_camera_pair_rank1_against_a_loop():
    """Oracle: for every ordered camera pair, a plain loop over queries that scans the pair's gallery by hand."""
    from scipy.spatial.distance import cosine

    from workbench.metrics.disentanglement import camera_pair_rank1

    rng = np.random.default_rng(3)
    n = 90
    pids, cams = rng.integers(0, 9, n), rng.integers(1, 5, n)
    x = rng.standard_normal((n, 6))
    table = camera_pair_rank1(x, pids, cams).set_index(["query_cam", "gallery_cam"])
    expected = {}
    for a in range(1, 5):
        for b in range(1, 5):
            shared = set(pids[cams == a]) & set(pids[cams == b])
            if a == b or not shared:
                continue
            gallery = [j for j in range(n) if cams[j] == b and pids[j] in shared]
            hits = []
            for i in range(n):
                if cams[i] == a and pids[i] in shared:
                    best = min(gallery, key=lambda j: (cosine(x[i], x[j]), j))
                    hits.append(pids[best] == pids[i])
            expected[a, b] = (float(np.mean(hits)), len(hits), len(gallery), len(shared))
    assert set(table.index) == set(expected)
    for key, (rank1, queries, images, ids) in expected.items():
        row = table.loc[key]
        assert row["rank1"] == pytest.approx(rank1)
        assert (row["queries"], row["gallery_images"], row["gallery_ids"]) == (queries, images, ids)


def test_camera_pair_rank1_separates_a_camera_cluster_from_a_lost_identity():
    """Features = identity code + a large per-camera offset: a mixed gallery would match the camera, but every single
    camera pair still finds the identity (rank-1 exactly 1); pure noise in camera 3 makes every pair that touches
    camera 3 miss exactly when the nearest image is another identity."""
    from workbench.metrics.disentanglement import camera_pair_rank1

    ids = np.eye(5)
    pids = np.tile(np.arange(5), 3)
    cams = np.repeat([1, 2, 3], 5)
    x = np.concatenate([ids[pids], 10.0 * np.eye(3)[cams - 1]], axis=1)
    table = camera_pair_rank1(x, pids, cams, metric="euclidean")
    assert len(table) == 6 and (table["rank1"] == 1.0).all()
    assert (table["gallery_ids"] == 5).all() and (table["queries"] == 5).all()
    x_lost = x.copy()
    x_lost[cams == 3, :5] = 0.0  # camera 3 keeps no identity: its images are all equally far from every identity
    pairs = camera_pair_rank1(x_lost, pids, cams, metric="euclidean").set_index(["query_cam", "gallery_cam"])
    assert pairs.loc[(1, 2), "rank1"] == 1.0
    assert pairs.loc[(3, 1), "rank1"] == pytest.approx(1 / 5)  # ties go to the first gallery image: identity 0 only
    with pytest.raises(ValueError, match="at least 2 cameras"):
        camera_pair_rank1(x, pids, np.ones_like(cams))
