"""Embedding maps: 2-D UMAP projections of feature branches, identity by colour, modality by marker.

Compute once, plot many: `embedding_map({"semantic": f1, "style": f2}, pids, modalities)` projects each named
branch with umap-learn (McInnes et al., 2018; seeded with `random_state`, which makes umap-learn run its
deterministic single-threaded path) and scores it with `workbench.metrics.disentanglement`; `EmbeddingMap.plot`
draws the branches side by side with the same colour per identity and marker per modality in every panel, and the
disentanglement numbers in each panel's title. Used for SD2-ReID (semantic vs style codes), ICRE (shallow clue vs
enhanced), DAKD (teacher vs student) and any run's retrieval feature.

`ModalityMaps` / `plot_modality_maps` draw maps of multi-modal samples (one point per sample and modality) for a
reader asking whether a code brings one object's views in different modalities together: a row coloured by
modality, and a row following a seeded draw of identities with each sample's views joined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from workbench.utils import to_numpy

MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")
SCORE_KEYS = ("identity_probe_acc", "modality_probe_acc", "cross_modal_purity", "centroid_gap_ratio")


def _array(name: str, x, ndim: int) -> np.ndarray:
    return to_numpy(x, name=name, ndim=ndim)


def subsample(n: int, max_points: int | None, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices of at most `max_points` of `n` rows, seeded; with `groups` (e.g. pids), whole groups are kept
    (a random subset of identities), so every plotted identity shows all its images."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1 or None, got {max_points}")
    rng = np.random.default_rng(seed)
    if groups is None:
        return np.sort(rng.choice(n, max_points, replace=False))
    keep, total = [], 0
    for gid in rng.permutation(np.unique(groups)):
        rows = np.flatnonzero(groups == gid)
        if total + len(rows) > max_points and keep:
            break
        keep.append(rows)
        total += len(rows)
    return np.sort(np.concatenate(keep))[:max_points]


def umap_2d(feats, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine",
            **kwargs) -> np.ndarray:
    """2-D UMAP of `feats` (N, D); deterministic for a fixed `seed` (umap-learn's `random_state`). Returns (N, 2)."""
    import umap  # lazy: numba compilation on first import

    x = _array("feats", feats, 2).astype(np.float32)
    if len(x) < 4:
        raise ValueError(f"UMAP needs at least 4 points, got {len(x)}")
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist, metric=metric,
                        random_state=seed, **kwargs)
    threads = torch.get_num_threads()
    try:
        return reducer.fit_transform(x).astype(np.float32)
    finally:
        # umap-learn's fit resets the OpenMP thread count torch shares (1 -> all cores here), so every training step
        # after a UMAP cell ran on more threads than asked for: 3-8x slower on a busy 2-core machine (issue 21).
        torch.set_num_threads(threads)


@dataclass
class EmbeddingMap:
    """2-D maps of several feature branches of the same samples.

    Attributes:
        coords: branch name -> (n, 2) UMAP coordinates.
        pids, modalities: (n,) labels of the plotted rows.
        rows: (n,) indices of the plotted rows in the input (after subsampling).
        scores: branch name -> `DisentanglementReport.as_dict()` (empty when not computed).
        images: optional (n,) sequence of displayable images (for thumbnails).
    """

    coords: dict[str, np.ndarray]
    pids: np.ndarray
    modalities: np.ndarray
    rows: np.ndarray
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    images: Sequence | None = field(default=None, repr=False)

    def table(self) -> pd.DataFrame:
        """Disentanglement numbers, one row per branch."""
        return pd.DataFrame(self.scores).T

    def plot(self, *, axes=None, thumbnails: int = 0, seed: int = 0, size: float = 3.4, legend: bool = True):
        """Branches side by side (same identity colours and modality markers in every panel). Returns the Axes.

        Args:
            thumbnails: draw this many images (seeded choice) at their points; needs `images`.
        """
        names = list(self.coords)
        if axes is None:
            _, axes = plt.subplots(1, len(names), figsize=(size * len(names), size), squeeze=False)
            axes = axes[0]
        axes = np.atleast_1d(axes)
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(self.rows), min(thumbnails, len(self.rows)), replace=False) if thumbnails else []
        for ax, name in zip(axes, names):
            scatter(self.coords[name], self.pids, self.modalities, ax=ax, legend=legend and ax is axes[-1],
                    title=_title(name, self.scores.get(name)))
            if len(chosen):
                if self.images is None:
                    raise ValueError("thumbnails need images; pass images= to embedding_map")
                add_thumbnails(ax, self.coords[name][chosen], [self.images[i] for i in chosen])
        return axes


def _title(name: str, scores: Mapping[str, float] | None) -> str:
    if not scores:
        return name
    return (f"{name}\nid probe {scores['identity_probe_acc']:.2f} (chance {scores['identity_probe_chance']:.2f}) · "
            f"mod probe {scores['modality_probe_acc']:.2f} (chance {scores['modality_probe_chance']:.2f})\n"
            f"cross-modal kNN purity {scores['cross_modal_purity']:.2f} · centroid gap {scores['centroid_gap_ratio']:.2f}")


def scatter(coords, pids, modalities, *, ax=None, title: str = "", legend: bool = True, s: float = 14):
    """Points coloured by identity (one colour per pid, cycled through tab20) and shaped by modality."""
    coords = _array("coords", coords, 2)
    pids, modalities = np.asarray(pids), np.asarray(modalities)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.4, 3.4))
    ids = {p: i for i, p in enumerate(np.unique(pids))}
    # tab20 holds ten hue pairs (dark, light): take the ten dark hues first so few identities get distinct colours
    order = np.r_[np.arange(0, 20, 2), np.arange(1, 20, 2)]
    colours = plt.get_cmap("tab20")(order[np.array([ids[p] % 20 for p in pids])])
    for j, m in enumerate(pd.unique(modalities)):
        sel = modalities == m
        ax.scatter(coords[sel, 0], coords[sel, 1], c=colours[sel], marker=MARKERS[j % len(MARKERS)], s=s,
                   linewidths=0.3, edgecolors="k", label=str(m))
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if legend:
        handles = [plt.Line2D([], [], marker=MARKERS[j % len(MARKERS)], color="0.3", ls="", label=str(m))
                   for j, m in enumerate(pd.unique(modalities))]
        ax.legend(handles=handles, fontsize=7, title="modality", title_fontsize=7, loc="best")
    return ax


def add_thumbnails(ax, points, images, *, zoom: float = 0.25):
    """Draw images (H, W, 3) at 2-D points of an Axes."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    for (x, y), img in zip(points, images):
        ax.add_artist(AnnotationBbox(OffsetImage(img, zoom=zoom), (x, y), frameon=True, pad=0.1))
    return ax


def embedding_map(branches: Mapping[str, object], pids, modalities, *, max_points: int | None = 2000, seed: int = 0,
                  scores: bool = True, images: Sequence | None = None, progress: bool = True,
                  **umap_kwargs) -> EmbeddingMap:
    """UMAP each named branch of the same samples and score it.

    Args:
        branches: name -> (N, D) features of the same N samples (e.g. {"semantic": ..., "style": ...}).
        pids, modalities: (N,) labels.
        max_points: subsample whole identities down to this many points (None: all).
        scores: compute `disentanglement_report` per branch (needs >= 2 identities and 2 modalities).
        images: optional (N,) images for thumbnails (subsampled with the points).
        progress: a progress bar over branches.
    """
    from tqdm.auto import tqdm

    from workbench.metrics import disentanglement_report

    if not branches:
        raise ValueError("branches is empty; pass {name: (N, D) features}")
    pids, modalities = _array("pids", pids, 1), _array("modalities", modalities, 1)
    n = len(pids)
    for name, f in branches.items():
        if _array(f"branches[{name!r}]", f, 2).shape[0] != n or len(modalities) != n:
            raise ValueError(f"branches[{name!r}], pids and modalities must have the same N={n} rows")
    rows = subsample(n, max_points, seed, groups=pids)
    coords, reports = {}, {}
    for name, f in tqdm(branches.items(), desc="embedding maps", disable=not progress, leave=False):
        x = _array(name, f, 2)[rows]
        coords[name] = umap_2d(x, seed=seed, **umap_kwargs)
        if scores and len(np.unique(modalities[rows])) > 1:
            reports[name] = disentanglement_report(x, pids[rows], modalities[rows], seed=seed).as_dict()
    imgs = None if images is None else [images[i] for i in rows]
    return EmbeddingMap(coords, pids[rows], modalities[rows], rows, reports, imgs)


def branches_as_points(branches: Mapping[str, object], pids, names: Sequence[str]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-modality branches of multi-modal samples as separate points: (feats (M*N, D), pids (M*N,), modality
    (M*N,) = the branch name), so a triplet model's RGB / NIR / TIR features share one map (same D needed)."""
    arrays = [_array(f"branches[{n!r}]", branches[n], 2) for n in names]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"branches {list(names)} must have the same shape to share a map, got "
                         f"{[a.shape for a in arrays]}")
    pids = _array("pids", pids, 1)
    return (np.concatenate(arrays), np.tile(pids, len(names)),
            np.repeat(np.asarray(list(names), dtype=object), len(pids)))


def plot_modality_centres(feats, pids, modalities, *, pair: tuple[str, str] = ("rgb", "ir"), ax=None,
                          title: str = "", normalize: bool = True):
    """Features of a few identities in two modalities on their first two principal axes: colour = identity, circle =
    `pair[0]`, triangle = `pair[1]`, and a line joining the two modality centres of each identity (the shorter,
    the better aligned; `workbench.metrics.cross_modal_centre_ratio` puts a number on it). Returns the Axes.

    Args:
        feats: (N, D) features (L2-normalised first with `normalize`). pids, modalities: (N,) labels.
    """
    f = _array("feats", feats, 2)
    pids, modalities = _array("pids", pids, 1), _array("modalities", modalities, 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    if normalize:
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
    centred = f - f.mean(0)
    xy = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T  # (N, 2): the first two principal axes
    for j, p in enumerate(np.unique(pids)):
        colour = plt.cm.tab10(j % 10)
        centres = []
        for m, marker in zip(pair, ("o", "^")):
            sel = (pids == p) & (modalities == m)
            ax.scatter(*xy[sel].T, color=colour, marker=marker, s=14, alpha=0.5)
            centres.append(xy[sel].mean(0))
        ax.plot([centres[0][0], centres[1][0]], [centres[0][1], centres[1][1]], color=colour, lw=2)
    ax.set_title(title, fontsize=10)
    return ax


# ----------------------------------------------------------------------------------------------------------------
# Modality maps: one row coloured by modality, one row following a few identities across modalities

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies
MODALITY_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
# Paul Tol's "bright" qualitative scheme (colour-blind safe; its grey is kept for the faint points), then two
# Okabe-Ito hues for a seventh and eighth identity
IDENTITY_COLOURS = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#E69F00", "#000000")
FAINT = "#BBBBBB"


def pick_identities(pids, modalities, samples, n: int = 6, *, seed: int = 0) -> np.ndarray:
    """`n` identities drawn at random (seeded) among those with at least one sample seen in every modality of the
    data, so the draw is representative rather than picked for how it looks. Returns their sorted pids.

    Args:
        pids, modalities, samples: (N,) labels of the points: identity, modality, and which sample (the same
            object at the same time, e.g. one aligned RGB/NIR/TIR triplet) the point is a view of.
        n: how many (fewer when fewer identities qualify).
    """
    pids, modalities, samples = (_array(k, v, 1) for k, v in
                                 (("pids", pids), ("modalities", modalities), ("samples", samples)))
    if not len(pids) == len(modalities) == len(samples):
        raise ValueError(f"pids, modalities and samples must have the same length, got "
                         f"{len(pids)}, {len(modalities)}, {len(samples)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    every = set(np.unique(modalities).tolist())
    seen: dict = {}
    for p, m, s in zip(pids.tolist(), modalities.tolist(), samples.tolist()):
        seen.setdefault((p, s), set()).add(m)
    eligible = sorted({p for (p, _), mods in seen.items() if mods == every})
    if not eligible:
        raise ValueError(f"no identity has a sample seen in every modality {sorted(every)}; check samples")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(np.asarray(eligible), min(n, len(eligible)), replace=False))


def sample_links(coords, pids, samples, ids) -> tuple[np.ndarray, np.ndarray]:
    """Segments joining each point of the identities `ids` to the centre of its sample's points (a star per
    sample: short when the modalities of one sample land together, long when they land apart).

    Args:
        coords: (N, 2) map coordinates. pids, samples: (N,) labels (see `pick_identities`).
        ids: the identities to join.

    Returns:
        segments (L, 2, 2), one per point of `ids` whose sample has at least two points; pids (L,) of each segment.
    """
    coords = _array("coords", coords, 2)
    pids, samples = _array("pids", pids, 1), _array("samples", samples, 1)
    segments, owners = [], []
    for p in np.asarray(ids).tolist():
        for s in np.unique(samples[pids == p]).tolist():
            rows = np.flatnonzero((pids == p) & (samples == s))
            if len(rows) < 2:
                continue
            centre = coords[rows].mean(0)
            segments += [np.stack([coords[r], centre]) for r in rows]
            owners += [p] * len(rows)
    return np.asarray(segments, dtype=float).reshape(-1, 2, 2), np.asarray(owners)


def plot_by_modality(coords, modalities, *, ax=None, title: str = "", s: float = 16, legend: bool = True):
    """Every point coloured and shaped by its modality (`MODALITY_COLOURS`, `MARKERS`). Returns the Axes.

    Args:
        coords: (N, 2) map coordinates. modalities: (N,) modality names.
    """
    coords, modalities = _array("coords", coords, 2), _array("modalities", modalities, 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    for j, m in enumerate(pd.unique(modalities)):
        sel = modalities == m
        ax.scatter(*coords[sel].T, s=s, marker=MARKERS[j % len(MARKERS)], c=MODALITY_COLOURS[j % len(MODALITY_COLOURS)], alpha=0.55,
                   linewidths=0, label=str(m).upper())
    _bare(ax, title)
    if legend:
        ax.legend(title="modality", markerscale=1.6, fontsize=9, title_fontsize=9, loc="best")
    return ax


def plot_linked_identities(coords, pids, modalities, samples, ids, *, ax=None, title: str = "", s: float = 40,
                           legend: bool = True):
    """The identities `ids` in distinct colours (`IDENTITY_COLOURS`), shaped by modality, each sample's points
    joined to their centre by thin lines (`sample_links`); every other point small and grey. Returns the Axes.

    Args:
        coords: (N, 2) map coordinates. pids, modalities, samples: (N,) labels (see `pick_identities`).
        ids: the identities to follow (at most len(IDENTITY_COLOURS)), e.g. `pick_identities(...)`.
    """
    from matplotlib.collections import LineCollection

    coords = _array("coords", coords, 2)
    pids, modalities = _array("pids", pids, 1), _array("modalities", modalities, 1)
    ids = np.asarray(ids)
    if len(ids) > len(IDENTITY_COLOURS):
        raise ValueError(f"at most {len(IDENTITY_COLOURS)} identities can get distinct colours, got {len(ids)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    colour = {p: IDENTITY_COLOURS[i] for i, p in enumerate(ids.tolist())}
    shown = np.isin(pids, ids)
    ax.scatter(*coords[~shown].T, s=s / 6, c=FAINT, alpha=0.6, linewidths=0, marker="o", label="other identities")
    segments, owners = sample_links(coords, pids, samples, ids)
    ax.add_collection(LineCollection(segments, colors=[colour[p] for p in owners.tolist()], linewidths=0.7,
                                     alpha=0.45, label="sample's views to their centre"))
    for j, m in enumerate(pd.unique(modalities)):
        sel = shown & (modalities == m)
        ax.scatter(*coords[sel].T, s=s, marker=MARKERS[j % len(MARKERS)], c=[colour[p] for p in pids[sel].tolist()],
                   edgecolors="k", linewidths=0.4, label=str(m).upper())
    _bare(ax, title)
    if legend:
        ax.legend(handles=_identity_handles(ids, modalities), fontsize=9, loc="best")
    return ax


def _identity_handles(ids: np.ndarray, modalities: np.ndarray) -> list:
    handles = [plt.Line2D([], [], marker="o", ls="", color=IDENTITY_COLOURS[i], markeredgecolor="k", markersize=7,
                          label=f"id {p}") for i, p in enumerate(ids.tolist())]
    handles += [plt.Line2D([], [], marker=MARKERS[j % len(MARKERS)], ls="", color="0.35", markersize=7,
                           label=str(m).upper()) for j, m in enumerate(pd.unique(modalities))]
    handles += [plt.Line2D([], [], color="0.35", lw=0.9, label="sample's views\nto their centre"),
                plt.Line2D([], [], marker="o", ls="", color=FAINT, markersize=4, label="other identities")]
    return handles


def score_text(scores: Mapping[str, float], by: str) -> str:
    """The numbers that measure what one row of `plot_modality_maps` shows, from `DisentanglementReport.as_dict()`
    or a row of `viz.sd2.code_reports`: by "modality", its probe accuracy (chance in brackets) and silhouette; by
    "identity", the same and the cross-modal kNN purity (do an identity's other-modality views sit nearby?)."""
    if by not in ("identity", "modality"):
        raise ValueError(f"by must be 'identity' or 'modality', got {by!r}")
    text = (f"{by} probe {scores[f'{by}_probe_acc']:.2f} (chance {scores[f'{by}_probe_chance']:.2f})\n"
            f"silhouette by {by} {scores[f'silhouette_{by}']:.2f}")
    if by == "identity":
        text += f"\ncross-modal kNN purity {scores['cross_modal_purity']:.2f}"
    return text


def _bare(ax, title: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title, fontsize=13)


@dataclass
class ModalityMaps:
    """2-D maps of several codes of the same multi-modal samples, one point per (sample, modality); `plot` draws
    them as a 2 x K grid (`plot_modality_maps`).

    Attributes:
        coords: code name -> (N, 2) map coordinates (e.g. `umap_2d`), the same N points in every code.
        pids, modalities, samples: (N,) labels of the points (see `pick_identities`).
    """

    coords: dict[str, np.ndarray]
    pids: np.ndarray
    modalities: np.ndarray
    samples: np.ndarray

    def plot(self, scores: Mapping[str, Mapping[str, float]] | pd.DataFrame | None = None, *, highlight: int = 6,
             seed: int = 0, axes=None) -> np.ndarray:
        """`plot_modality_maps` of these maps. Returns the Axes (2, K)."""
        return plot_modality_maps(self.coords, self.pids, self.modalities, self.samples, scores=scores,
                                  highlight=highlight, seed=seed, axes=axes)


def plot_modality_maps(coords: Mapping[str, object], pids, modalities, samples, *,
                       scores: Mapping[str, Mapping[str, float]] | pd.DataFrame | None = None, highlight: int = 6,
                       seed: int = 0, axes=None) -> np.ndarray:
    """One column per code. Top row: every point coloured and shaped by modality (`plot_by_modality`). Bottom row:
    `highlight` identities drawn at random (seeded, `pick_identities`: any identity with a sample seen in every
    modality may come up, none is picked by hand) in distinct colours, each sample's modality points joined to
    their centre, the rest faint (`plot_linked_identities`). With `scores` (code name -> `DisentanglementReport`
    keys, e.g. `viz.sd2.code_reports`), each panel carries under it the numbers that measure what its row shows
    (`score_text`): the modality probe and silhouette on top; the identity probe, silhouette and cross-modal kNN
    purity below. Returns the Axes (2, K).

    A code that keeps identity and drops modality shows mixed colours on top and short stars below; one that
    keeps modality shows one island per colour on top and stars spanning the islands below.

    Args:
        coords: code name -> (N, 2) map coordinates of the same N points.
        pids, modalities, samples: (N,) labels of the points (see `pick_identities`).
    """
    names = list(coords)
    pids, modalities = _array("pids", pids, 1), _array("modalities", modalities, 1)
    samples = _array("samples", samples, 1)
    for name in names:
        if _array(f"coords[{name!r}]", coords[name], 2).shape != (len(pids), 2):
            raise ValueError(f"coords[{name!r}] must be ({len(pids)}, 2) like pids, got {np.shape(coords[name])}")
    if scores is not None:
        table = pd.DataFrame(scores).T if not isinstance(scores, pd.DataFrame) else scores
        missing = [n for n in names if n not in table.index]
        if missing:
            raise ValueError(f"scores has no row for {missing}; pass code_reports of the same codes")
    ids = pick_identities(pids, modalities, samples, highlight, seed=seed)
    if axes is None:
        fig, axes = plt.subplots(2, len(names), figsize=(3.5 * len(names) + 1.5, 8.4), squeeze=False,
                                 layout="constrained")
        fig.suptitle(f"one point per (sample, modality): {len(pids)} points, {len(np.unique(pids))} identities",
                     fontsize=11)
    for c, name in enumerate(names):
        last = c == len(names) - 1
        xy = _array(f"coords[{name!r}]", coords[name], 2)
        top = plot_by_modality(xy, modalities, ax=axes[0, c], title=name, legend=False)
        low = plot_linked_identities(xy, pids, modalities, samples, ids, ax=axes[1, c], legend=False)
        if scores is not None:
            for ax, by in ((top, "modality"), (low, "identity")):
                ax.set_xlabel(score_text(table.loc[name], by), fontsize=10.5, linespacing=1.35)
        if last:
            top.legend(title="modality", markerscale=1.6, fontsize=10, title_fontsize=10, loc="upper left",
                       bbox_to_anchor=(1.02, 1))
            low.legend(handles=_identity_handles(ids, modalities), fontsize=10, loc="upper left",
                       bbox_to_anchor=(1.02, 1), title=f"{len(ids)} identities\n(seeded draw)", title_fontsize=10)
    axes[0, 0].set_ylabel("coloured by modality", fontsize=12)
    axes[1, 0].set_ylabel(f"{len(ids)} identities followed", fontsize=12)
    return axes
