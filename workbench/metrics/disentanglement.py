"""How well an embedding separates identity from modality (and from other known factors).

Scores for the UMAP and ablation views of the workbench (issue 3, section 3). None of the three frameworks defines
these scores; the choices below are ours [INFERRED], picked to be standard and easy to read:

* ``linear_probe_score``: held-out accuracy of a multinomial logistic regression (scikit-learn) on standardised
  features (a float; ``linear_probe`` returns it with the chance level, the majority-class rate of the held-out
  split). High identity accuracy and chance-level modality accuracy is the disentangled ideal for a retrieval
  feature.
* ``silhouette_by``: scikit-learn silhouette score of the features grouped by a label (cosine by default).
* ``cross_modal_knn_purity``: for each sample, the share of its k nearest neighbours *from other modalities*
  that have its identity.
* ``modality_centroid_gap``: mean distance between the modality centroids of one identity, divided by the mean
  distance between identity centroids: near 0 when modality leaves no trace, large when it dominates.
* ``camera_pair_rank1``: rank-1 from each camera into each other camera alone (is the identity kept across that
  pair, whatever the other cameras do).
* ``cross_modal_centre_ratio``: for two modalities, the mean squared distance between the two modality centres of
  the *same* identity divided by that between the centres of *different* identities (the alignment ICRE's centre
  loss asks for: below 1 when an identity's two modalities are closer to each other than to other identities).

All functions are deterministic given ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.spatial.distance import cdist, pdist
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from workbench.utils import to_numpy


def _prep(feats: object, *labels: tuple[str, object]) -> tuple[np.ndarray, list[np.ndarray]]:
    feats = to_numpy(feats, name="feats", ndim=2, shape="(N, D)").astype(np.float64, copy=False)
    if not np.isfinite(feats).all():
        raise ValueError("feats contains NaN or inf values")
    out = []
    for name, lab in labels:
        lab = to_numpy(lab, name=name)
        if lab.shape != (len(feats),):
            raise ValueError(f"{name} must have shape ({len(feats)},) to match feats, got {lab.shape}")
        out.append(lab)
    return feats, out


@dataclass(frozen=True)
class ProbeResult:
    """Held-out linear-probe accuracy and its chance level (majority-class rate of the test split)."""

    accuracy: float
    chance: float
    num_classes: int

    @property
    def above_chance(self) -> float:
        """accuracy - chance."""
        return self.accuracy - self.chance


def linear_probe(
    feats: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    *,
    test_size: float = 0.3,
    seed: int = 0,
    max_iter: int = 2000,
) -> ProbeResult:
    """A logistic-regression probe predicting ``labels`` from ``feats``: its held-out accuracy and chance level.

    Args:
        feats: (N, D) features.
        labels: (N,) class of each sample (modality, identity or another factor).
        test_size: held-out fraction; the split is stratified when every class has at least 2 samples.
        seed: split seed.
        max_iter: solver iterations.

    Returns:
        ProbeResult(accuracy, chance, num_classes).
    """
    x, (y,) = _prep(feats, ("labels", labels))
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"labels must hold at least 2 classes for a probe, got {len(classes)}")
    stratify = y if counts.min() >= 2 else None
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=stratify)
    scaler = StandardScaler().fit(x_tr)
    clf = LogisticRegression(max_iter=max_iter)
    clf.fit(scaler.transform(x_tr), y_tr)
    acc = float((clf.predict(scaler.transform(x_te)) == y_te).mean())
    _, te_counts = np.unique(y_te, return_counts=True)
    return ProbeResult(accuracy=acc, chance=float(te_counts.max() / len(y_te)), num_classes=len(classes))


def linear_probe_score(
    feats: np.ndarray | torch.Tensor, labels: np.ndarray, *, test_size: float = 0.3, seed: int = 0,
    max_iter: int = 2000
) -> float:
    """Held-out accuracy of a logistic-regression probe predicting ``labels`` from ``feats`` (``linear_probe``
    has its chance level too)."""
    return linear_probe(feats, labels, test_size=test_size, seed=seed, max_iter=max_iter).accuracy


def silhouette_by(
    feats: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    *,
    metric: str = "cosine",
    sample_size: int | None = 5000,
    seed: int = 0,
) -> float:
    """Silhouette score (in [-1, 1]) of the features grouped by ``labels``; a random subsample of
    ``sample_size`` points keeps it quadratic-cost-bounded (None: all points)."""
    x, (y,) = _prep(feats, ("labels", labels))
    n_labels = len(np.unique(y))
    if not 2 <= n_labels <= len(x) - 1:
        raise ValueError(
            f"silhouette needs 2 <= number of labels <= N - 1, got {n_labels} labels for N={len(x)}"
        )
    size = None if sample_size is None or sample_size >= len(x) else sample_size
    return float(silhouette_score(x, y, metric=metric, sample_size=size, random_state=seed))


def cross_modal_knn_purity(
    feats: np.ndarray | torch.Tensor,
    pids: np.ndarray,
    modalities: np.ndarray,
    *,
    k: int = 5,
    metric: str = "cosine",
) -> float:
    """Mean share of same-identity samples among each sample's k nearest neighbours from other modalities.

    Args:
        feats: (N, D). pids: (N,). modalities: (N,).
        k: neighbours per sample (capped by the number of other-modality samples).
        metric: any scipy ``cdist`` metric.

    Returns:
        Purity in [0, 1]; the chance level is about the share of each identity in the other modalities.
    """
    x, (p, m) = _prep(feats, ("pids", pids), ("modalities", modalities))
    if len(np.unique(m)) < 2:
        raise ValueError("modalities must hold at least 2 distinct modalities for a cross-modal score")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    d = cdist(x, x, metric=metric)  # (N, N)
    d[m[:, None] == m[None, :]] = np.inf  # only other modalities are candidates
    kk = int(min(k, (m[None, :] != m[:, None]).sum(axis=1).min()))
    nn = np.argsort(d, axis=1, kind="stable")[:, :kk]  # (N, kk)
    return float((p[nn] == p[:, None]).mean())


def camera_pair_rank1(
    feats: np.ndarray | torch.Tensor,
    pids: np.ndarray,
    camids: np.ndarray,
    *,
    metric: str = "cosine",
) -> pd.DataFrame:
    """Rank-1 of retrieval from each camera into each other camera, one pair at a time.

    For a pair (query camera a, gallery camera b), the gallery is every image of camera b whose identity camera a
    also saw, and the queries are camera a's images of identities camera b saw; a query scores 1 when its nearest
    gallery image (`metric`, ties to the first) has its identity. Restricting the gallery to one camera separates
    "this camera pair keeps the identity" from "each camera forms its own cluster": an embedding whose images sit
    nearest to other people of their own camera fails a mixed gallery while its single-camera pairs still score
    well. The chance level of a pair is about 1 / `gallery_ids`. [INFERRED: a diagnostic of ours, not a protocol of
    the papers.]

    Args:
        feats: (N, D). pids: (N,). camids: (N,).
        metric: any scipy ``cdist`` metric.

    Returns:
        One row per ordered camera pair with at least one shared identity: `query_cam`, `gallery_cam`, `rank1`,
        `queries`, `gallery_images`, `gallery_ids`.
    """
    x, (p, c) = _prep(feats, ("pids", pids), ("camids", camids))
    cams = np.unique(c)
    if len(cams) < 2:
        raise ValueError(f"camids must hold at least 2 cameras for camera pairs, got {len(cams)}")
    rows = []
    for a in cams:
        for b in cams:
            if a == b:
                continue
            shared = np.intersect1d(p[c == a], p[c == b])
            if len(shared) == 0:
                continue
            q = np.where((c == a) & np.isin(p, shared))[0]
            g = np.where((c == b) & np.isin(p, shared))[0]
            nearest = g[np.argmin(cdist(x[q], x[g], metric=metric), axis=1)]
            rows.append({"query_cam": a.item(), "gallery_cam": b.item(), "rank1": float((p[nearest] == p[q]).mean()),
                         "queries": len(q), "gallery_images": len(g), "gallery_ids": len(shared)})
    return pd.DataFrame(rows, columns=["query_cam", "gallery_cam", "rank1", "queries", "gallery_images",
                                       "gallery_ids"])


@dataclass(frozen=True)
class CentroidGap:
    """Modality gap inside identities relative to the spread between identities."""

    modality_gap: float  # mean distance between the modality centroids of one identity
    identity_spread: float  # mean distance between identity centroids
    ratio: float  # modality_gap / identity_spread


def modality_centroid_gap(
    feats: np.ndarray | torch.Tensor, pids: np.ndarray, modalities: np.ndarray, *, metric: str = "euclidean"
) -> CentroidGap:
    """Distance between per-identity modality centroids, relative to the between-identity spread.

    For every identity seen in at least two modalities, the mean pairwise distance between its modality
    centroids; averaged over identities, divided by the mean pairwise distance between identity centroids
    (each the mean of its modality centroids, so unbalanced modality counts do not bias it).
    """
    x, (p, m) = _prep(feats, ("pids", pids), ("modalities", modalities))
    ids, p_code = np.unique(p, return_inverse=True)
    mods, m_code = np.unique(m, return_inverse=True)
    if len(ids) < 2 or len(mods) < 2:
        raise ValueError(f"need at least 2 identities and 2 modalities, got {len(ids)} and {len(mods)}")
    cell = p_code * len(mods) + m_code
    counts = np.bincount(cell, minlength=len(ids) * len(mods)).reshape(len(ids), len(mods))
    sums = np.zeros((len(ids) * len(mods), x.shape[1]))
    np.add.at(sums, cell, x)
    centroids = sums.reshape(len(ids), len(mods), -1) / np.maximum(counts, 1)[..., None]  # (I, M, D)
    present = counts > 0
    gaps = [
        pdist(centroids[i][present[i]], metric=metric).mean()
        for i in range(len(ids))
        if present[i].sum() >= 2
    ]
    if not gaps:
        raise ValueError("no identity is seen in two modalities; the modality gap is undefined")
    id_centroids = (centroids * present[..., None]).sum(1) / present.sum(1, keepdims=True)  # (I, D)
    spread = float(pdist(id_centroids, metric=metric).mean())
    gap = float(np.mean(gaps))
    return CentroidGap(
        modality_gap=gap, identity_spread=spread, ratio=gap / spread if spread > 0 else float("inf")
    )


def cross_modal_centre_ratio(
    feats: np.ndarray | torch.Tensor,
    pids: np.ndarray,
    modalities: np.ndarray,
    *,
    pair: tuple[str, str] = ("rgb", "ir"),
    normalize: bool = True,
) -> float:
    """Same-identity over other-identity squared distance between the centres of two modalities.

    With c_y^a, c_y^b the mean (L2-normalised, with ``normalize``) feature of identity y in modality a and in b,
    over the identities seen in both: mean_y ||c_y^a - c_y^b||^2 / mean_{y != z} ||c_y^a - c_z^b||^2. Below 1 when
    an identity's two modalities are closer to each other than to other identities; an untrained network that
    maps every image near one point gives about 1 however small its distances. Computed in the features' dtype.

    Args:
        feats: (N, D). pids: (N,). modalities: (N,) modality names.
        pair: the two modalities (a, b).
    """
    f = to_numpy(feats, name="feats", ndim=2, shape="(N, D)")
    p, m = to_numpy(pids, name="pids"), to_numpy(modalities, name="modalities")
    if p.shape != (len(f),) or m.shape != (len(f),):
        raise ValueError(f"pids and modalities must have shape ({len(f)},) to match feats, got {p.shape}, {m.shape}")
    if normalize:
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
    ids = [y for y in np.unique(p) if ((p == y) & (m == pair[0])).any() and ((p == y) & (m == pair[1])).any()]
    if len(ids) < 2:
        raise ValueError(f"need at least 2 identities seen in both modalities {pair}, got {len(ids)}")
    c_a = np.stack([f[(p == y) & (m == pair[0])].mean(0) for y in ids])
    c_b = np.stack([f[(p == y) & (m == pair[1])].mean(0) for y in ids])
    d2 = ((c_a[:, None] - c_b[None]) ** 2).sum(-1)  # (ids, ids): centre of a for identity i to centre of b for j
    return float(np.diag(d2).mean() / d2[~np.eye(len(d2), dtype=bool)].mean())


@dataclass(frozen=True)
class DisentanglementReport:
    """Every score of this module for one embedding."""

    identity_probe: ProbeResult
    modality_probe: ProbeResult
    silhouette_identity: float
    silhouette_modality: float
    cross_modal_purity: float
    centroid_gap: CentroidGap
    factor_probes: dict[str, ProbeResult] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """Flat dict of floats (for tables and ``utils.record``)."""
        out = {
            "identity_probe_acc": self.identity_probe.accuracy,
            "identity_probe_chance": self.identity_probe.chance,
            "modality_probe_acc": self.modality_probe.accuracy,
            "modality_probe_chance": self.modality_probe.chance,
            "silhouette_identity": self.silhouette_identity,
            "silhouette_modality": self.silhouette_modality,
            "cross_modal_purity": self.cross_modal_purity,
            "centroid_gap_ratio": self.centroid_gap.ratio,
        }
        for name, probe in self.factor_probes.items():
            out[f"{name}_probe_acc"] = probe.accuracy
            out[f"{name}_probe_chance"] = probe.chance
        return out


def disentanglement_report(
    feats: np.ndarray | torch.Tensor,
    pids: np.ndarray,
    modalities: np.ndarray,
    factors: Mapping[str, np.ndarray] | None = None,
    *,
    k: int = 5,
    seed: int = 0,
) -> DisentanglementReport:
    """All disentanglement scores of ``feats`` (N, D) given identity, modality and optional other factors (N,)."""
    return DisentanglementReport(
        identity_probe=linear_probe(feats, pids, seed=seed),
        modality_probe=linear_probe(feats, modalities, seed=seed),
        silhouette_identity=silhouette_by(feats, pids, seed=seed),
        silhouette_modality=silhouette_by(feats, modalities, seed=seed),
        cross_modal_purity=cross_modal_knn_purity(feats, pids, modalities, k=k),
        centroid_gap=modality_centroid_gap(feats, pids, modalities),
        factor_probes={name: linear_probe(feats, f, seed=seed) for name, f in (factors or {}).items()},
    )
