"""Positive and negative distance distributions per modality pair.

The retrieval protocol only sees ranks; these views show the distances behind them: for every (query modality,
gallery modality) pair, the distances to true matches (positives) and to other identities (negatives), with junk
pairs excluded as the protocol excludes them. The AUC of separating the two (probability that a random positive is
closer than a random negative) summarises each pair in one number.
For multi-modal runs, `branch_distances` also compares each modality branch of the retrieval feature on its own
(RGB to RGB, NIR to NIR, TIR to TIR).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.evaluate import Retrieval
from workbench.metrics import l2_normalize, pairwise_distance
from workbench.metrics.ranking import junk_mask


def pair_distances(retrieval: Retrieval, *, max_negatives: int = 20000, seed: int = 0) -> pd.DataFrame:
    """Long table of distances: columns `pair` ("ir->rgb"), `kind` ("positive"/"negative"), `distance`.

    Args:
        retrieval: one trial (its protocol distances and junk rule are used).
        max_negatives: negatives kept per pair (a seeded random subset; positives are all kept).
    """
    return _table(retrieval, retrieval.distmat, retrieval.q_modalities, retrieval.g_modalities,
                  max_negatives=max_negatives, seed=seed)


def branch_distances(retrieval: Retrieval, branches: Sequence[str] | None = None, *, max_negatives: int = 20000,
                     seed: int = 0) -> pd.DataFrame:
    """`pair_distances` computed on each feature branch alone (L2-normalised, the protocol's metric); `pair` is
    "<branch>-><branch>". Default branches: every branch except the concatenated "feats"."""
    q_feats, g_feats = retrieval.query.feats, retrieval.gallery.feats
    names = [b for b in q_feats if b != "feats"] if branches is None else list(branches)
    if not names:
        raise ValueError("this retrieval has no per-modality branches (only 'feats'); use pair_distances")
    metric = retrieval.spec.metric
    tables = []
    for b in names:
        d = np.asarray(pairwise_distance(l2_normalize(np.asarray(q_feats[b])), l2_normalize(np.asarray(g_feats[b])),
                                         metric))
        tables.append(_table(retrieval, d, np.full(len(d), b, dtype=object), np.full(d.shape[1], b, dtype=object),
                             max_negatives=max_negatives, seed=seed))
    return pd.concat(tables, ignore_index=True)


def _table(retrieval: Retrieval, dist: np.ndarray, q_mods: np.ndarray, g_mods: np.ndarray, *, max_negatives: int,
           seed: int) -> pd.DataFrame:
    q, g = retrieval.query, retrieval.gallery
    q_pids, g_pids = np.asarray(q.pids), np.asarray(g.pids)
    junk = np.stack([junk_mask(retrieval.spec.junk, q_pids[i], q.camids[i], g_pids, np.asarray(g.camids),
                               None if q.scenes is None else q.scenes[i], g.scenes) for i in range(len(q_pids))])
    same = q_pids[:, None] == g_pids[None, :]
    rng = np.random.default_rng(seed)
    rows = []
    for qm in pd.unique(q_mods):
        for gm in pd.unique(g_mods):
            cell = (q_mods == qm)[:, None] & (g_mods == gm)[None, :] & ~junk
            pos, neg = dist[cell & same], dist[cell & ~same]
            if len(neg) > max_negatives:
                neg = rng.choice(neg, max_negatives, replace=False)
            pair = f"{qm}->{gm}"
            rows.append(pd.DataFrame({"pair": pair, "kind": "positive", "distance": pos}))
            rows.append(pd.DataFrame({"pair": pair, "kind": "negative", "distance": neg}))
    return pd.concat(rows, ignore_index=True)


def separation_table(distances: pd.DataFrame) -> pd.DataFrame:
    """Per pair: counts, mean positive / negative distance, and the AUC P(positive < negative) (ties count half)."""
    from sklearn.metrics import roc_auc_score

    rows = {}
    for pair, df in distances.groupby("pair", sort=False):
        pos = df.loc[df["kind"] == "positive", "distance"].to_numpy()
        neg = df.loc[df["kind"] == "negative", "distance"].to_numpy()
        auc = float("nan")
        if len(pos) and len(neg):
            labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
            auc = float(roc_auc_score(labels, -np.r_[pos, neg]))
        rows[pair] = {"positives": len(pos), "negatives": len(neg), "mean_positive": float(np.mean(pos)) if len(pos)
                      else float("nan"), "mean_negative": float(np.mean(neg)) if len(neg) else float("nan"),
                      "auc": auc}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "pair"
    return table


def plot_distance_distributions(distances: pd.DataFrame, *, axes=None, bins: int = 40, title: str = ""):
    """One panel per modality pair: density histograms of positive (green) and negative (red) distances, the AUC
    in the title. Returns the Axes array."""
    pairs = list(pd.unique(distances["pair"]))
    if not pairs:
        raise ValueError("distances is empty")
    if axes is None:
        _, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 2.6), squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(axes)
    sep = separation_table(distances)
    for ax, pair in zip(axes, pairs):
        df = distances[distances["pair"] == pair]
        lo, hi = df["distance"].min(), df["distance"].max()  # per pair: branches can live on very different scales
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        for kind, colour in (("positive", "tab:green"), ("negative", "tab:red")):
            values = df.loc[df["kind"] == kind, "distance"]
            if len(values):
                ax.hist(values, bins=edges, density=True, alpha=0.55, color=colour, label=f"{kind} ({len(values)})")
        ax.set_title(f"{title}{pair}  AUC {sep.loc[pair, 'auc']:.3f}", fontsize=8)
        ax.set_xlabel("distance")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("density")
    return axes


MODALITY_NAMES = {"rgb": "visible", "ir": "infrared", "nir": "NIR", "tir": "TIR"}


def plot_camera_pairs(pairs: pd.DataFrame, *, ax=None, title: str = ""):
    """Heat map of `lab.camera_diagnosis(...).pairs`: rank-1 from each query camera (rows) into each gallery camera
    alone (columns), the value written in every cell, each camera labelled with its modality, chance (1 / the pair's
    gallery identities) in a small second line. Returns the Axes."""
    if pairs.empty:
        raise ValueError("pairs is empty: no two cameras share an identity")
    cams = sorted(set(pairs["query_cam"]) | set(pairs["gallery_cam"]))
    modality = dict(zip(pairs["query_cam"], pairs["query_modality"])) | dict(zip(pairs["gallery_cam"],
                                                                                 pairs["gallery_modality"]))
    grid = np.full((len(cams), len(cams)), np.nan)
    chance = np.full_like(grid, np.nan)
    at = {c: i for i, c in enumerate(cams)}
    for r in pairs.itertuples():
        grid[at[r.query_cam], at[r.gallery_cam]] = r.rank1
        chance[at[r.query_cam], at[r.gallery_cam]] = 1 / r.gallery_ids
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 * len(cams) + 2.2, 0.85 * len(cams) + 1.2))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=1)
    for i in range(len(cams)):
        for j in range(len(cams)):
            if np.isnan(grid[i, j]):
                continue
            colour = "black" if grid[i, j] > 0.6 else "white"
            ax.text(j, i - 0.1, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=9, color=colour)
            ax.text(j, i + 0.25, f"chance {chance[i, j]:.2f}", ha="center", va="center", fontsize=6, color=colour)
    labels = [f"cam {c}\n{MODALITY_NAMES.get(modality[c], modality[c])}" for c in cams]
    ax.set_xticks(range(len(cams)), labels, fontsize=8)
    ax.set_yticks(range(len(cams)), labels, fontsize=8)
    ax.set_xlabel("gallery: that camera's images only")
    ax.set_ylabel("query camera")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="rank-1")
    ax.set_title(title or "rank-1 by camera pair (held-out identities)", fontsize=10)
    ax.figure.tight_layout()
    return ax
