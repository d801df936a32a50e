"""Embedding maps (deterministic, subsampled by identity, scored), attention (recorder agrees with the model's
explicit path, rollout of identity attention is the identity), distance distributions (junk excluded, AUC)."""

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch

from workbench.evaluate import Retrieval
from workbench.metrics import PROTOCOLS, EvalSet
from workbench.models import create_model
from workbench.viz import attention, distances, embedding


def _features(n_ids=6, per=8, d=12, seed=0):
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(n_ids), per)
    mods = np.tile(np.array(["rgb", "ir"]), n_ids * per // 2)
    centres = rng.normal(size=(n_ids, d)) * 3
    return centres[pids] + rng.normal(size=(len(pids), d)), pids, mods


def test_embedding_map_is_deterministic_for_a_seed_and_scores_each_branch():
    feats, pids, mods = _features()
    noise = np.random.default_rng(1).normal(size=feats.shape)
    branches = {"identity": feats, "noise": noise}
    a = embedding.embedding_map(branches, pids, mods, seed=3, progress=False)
    b = embedding.embedding_map(branches, pids, mods, seed=3, progress=False)
    for name in branches:
        assert a.coords[name].shape == (48, 2)
        np.testing.assert_array_equal(a.coords[name], b.coords[name])
    table = a.table()
    assert table.loc["identity", "identity_probe_acc"] > table.loc["noise", "identity_probe_acc"]
    axes = a.plot()
    assert len(axes) == 2 and "id probe" in axes[0].get_title()


def test_subsample_keeps_whole_identities_and_is_seeded():
    pids = np.repeat(np.arange(50), 4)
    rows = embedding.subsample(len(pids), 40, seed=0, groups=pids)
    assert len(rows) == 40 and all((pids[rows] == p).sum() == 4 for p in np.unique(pids[rows]))
    np.testing.assert_array_equal(rows, embedding.subsample(len(pids), 40, seed=0, groups=pids))
    assert not np.array_equal(rows, embedding.subsample(len(pids), 40, seed=1, groups=pids))
    np.testing.assert_array_equal(embedding.subsample(10, None), np.arange(10))


def test_branches_as_points_and_thumbnails():
    feats, pids, _ = _features()
    x, p, m = embedding.branches_as_points({"rgb": feats, "nir": feats + 1}, pids, ["rgb", "nir"])
    assert x.shape == (96, 12) and list(m[:1]) == ["rgb"] and list(m[-1:]) == ["nir"] and (p[:48] == pids).all()
    emb = embedding.embedding_map({"f": x}, p, m, scores=False, progress=False,
                                  images=[np.zeros((8, 4, 3))] * len(p))
    assert emb.scores == {}
    emb.plot(thumbnails=3)
    with pytest.raises(ValueError, match="same N"):
        embedding.embedding_map({"f": x[:5]}, p, m)


def test_attention_rollout_of_identity_attention_is_the_identity():
    eye = torch.eye(9).expand(2, 4, 3, 9, 9)  # (B, layers, heads, T, T)
    np.testing.assert_allclose(attention.attention_rollout(eye).numpy(), np.broadcast_to(np.eye(9), (2, 9, 9)))
    np.testing.assert_allclose(attention.attention_rollout(eye, residual=False).numpy(),
                               np.broadcast_to(np.eye(9), (2, 9, 9)))


def test_attention_rollout_is_the_product_of_residual_mixed_layers():
    a = torch.softmax(torch.randn(3, 2, 5, 5), -1)  # (layers, heads, T, T)
    mixed = [0.5 * a[i].mean(0) + 0.5 * torch.eye(5) for i in range(3)]
    expected = mixed[2] @ mixed[1] @ mixed[0]
    torch.testing.assert_close(attention.attention_rollout(a), expected)
    assert torch.allclose(attention.attention_rollout(a).sum(-1), torch.ones(5))


def test_recorder_matches_the_models_explicit_attention_and_cleans_up():
    torch.manual_seed(0)
    model = create_model("test_mm_vit", shared_depth=0).eval()
    images = {m: torch.randn(2, 3, 64, 32) for m in model.modalities}
    explicit = attention.vit_attention(model, images)
    fused = [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")]
    with attention.AttentionRecorder(model) as rec:
        with torch.no_grad():
            model(images)
    assert [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")] == fused
    assert all(not m.attn_drop._forward_hooks for m in model.modules() if hasattr(m, "attn_drop"))
    assert rec.maps.shape == (2, 12, 2, 33, 33)  # 3 modalities x 4 blocks, in call order
    torch.testing.assert_close(rec.maps[:, :4], explicit["rgb"])
    cls = attention.cls_rows(explicit)
    assert cls["nir"].shape == (2, 32) and torch.allclose(cls["nir"].sum(-1), explicit["nir"][0, -1, :, 0, 1:].sum(-1))
    roll = attention.rollout_rows(explicit)
    assert roll["tir"].shape == (32,)
    image = np.zeros((64, 32, 3))
    axes = attention.plot_attention_heads(image, cls["rgb"], attention.patch_grid_of(model), rollout=roll["rgb"])
    assert len(axes) == 4
    attention.plot_mask(image, torch.rand(8, 4), grid=(8, 4), threshold=0.5)
    with pytest.raises(ValueError, match="grid"):
        attention.plot_mask(image, torch.rand(8, 4))


def test_distance_distributions_exclude_junk_and_separate_identities():
    feats, pids, mods = _features(per=4)
    q_rows, g_rows = np.flatnonzero(mods == "ir"), np.flatnonzero(mods == "rgb")
    q = EvalSet({"feats": feats[q_rows]}, pids[q_rows], np.full(len(q_rows), 3))
    g = EvalSet({"feats": feats[g_rows]}, pids[g_rows], np.tile([1, 2], len(g_rows) // 2))
    r = Retrieval.from_features(q, g, PROTOCOLS["sysu-mm01"])
    r.q_modalities, r.g_modalities = mods[q_rows], mods[g_rows]
    d = distances.pair_distances(r)
    assert set(d["pair"]) == {"ir->rgb"}
    # SYSU junk: camera-3 queries never see camera-2 gallery items -> half the gallery is excluded
    kept = len(q_rows) * (len(g_rows) // 2)
    assert len(d) == kept
    sep = distances.separation_table(d)
    assert sep.loc["ir->rgb", "auc"] > 0.9
    assert sep.loc["ir->rgb", "positives"] == len(q_rows) * 1  # one camera-1 image per identity in the gallery
    axes = distances.plot_distance_distributions(d)
    assert "AUC" in axes[0].get_title()


def test_a_umap_map_leaves_torch_on_the_threads_it_was_given():
    """umap-learn's fit resets the OpenMP thread count torch shares: training after a UMAP cell ran on every core
    (issue 21: 4 s a step instead of 0.45 in notebook 08). The map must hand torch back its own setting."""
    import torch

    from workbench.viz.embedding import umap_2d

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        umap_2d(np.random.default_rng(0).normal(size=(60, 8)), seed=0, n_neighbors=5)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_camera_pair_grid_writes_each_pair_where_its_cameras_meet():
    """Row = query camera, column = gallery camera; every pair's rank-1 and chance written in its cell, the diagonal
    left empty, each camera labelled with its modality; an empty table is refused."""
    import pandas as pd

    from workbench.viz.distances import plot_camera_pairs

    pairs = pd.DataFrame([
        {"query_cam": 1, "gallery_cam": 3, "query_modality": "rgb", "gallery_modality": "ir", "rank1": 0.25,
         "queries": 8, "gallery_images": 8, "gallery_ids": 4},
        {"query_cam": 3, "gallery_cam": 1, "query_modality": "ir", "gallery_modality": "rgb", "rank1": 0.75,
         "queries": 8, "gallery_images": 8, "gallery_ids": 5}])
    ax = plot_camera_pairs(pairs)
    grid = ax.get_images()[0].get_array()
    assert grid.mask[0, 0] and grid.mask[1, 1]
    assert grid[0, 1] == 0.25 and grid[1, 0] == 0.75
    cells = {(round(t.get_position()[0]), round(t.get_position()[1] + 0.1, 1)): t.get_text() for t in ax.texts}
    assert cells[(1, 0.0)] == "0.25" and cells[(0, 1.0)] == "0.75"
    assert {t.get_text() for t in ax.texts} >= {"chance 0.25", "chance 0.20"}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cam 1\nvisible", "cam 3\ninfrared"]
    with pytest.raises(ValueError, match="pairs is empty"):
        plot_camera_pairs(pairs.iloc[:0])
