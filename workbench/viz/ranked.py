"""Ranked lists, per-query tables and a failure browser over the queries of a run.

Compute once, plot many: `Retrieval` holds one evaluation trial (query and gallery features, the distance matrix
of the run's protocol, labels, samples and `RankResult`); `ranked_list(retrieval, q)` reads one query's list out of
it with the same junk rule, tie policy and metric definitions as `workbench.metrics.rank_metrics` (the tests check
they agree); plots take `ax`/`axes`. Junk gallery items are shown and marked, never silently dropped: they do not
count in ranks, AP or INP, as in the protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.features import Features
from workbench.metrics import (
    EvalSet,
    ProtocolSpec,
    RankResult,
    combine_branches,
    pairwise_distance,
    rank_metrics,
)
from workbench.metrics.ranking import JUNK_RULES, TIE_POLICIES, junk_mask  # noqa: F401  (junk_mask re-exported)

MATCH_COLOUR, FALSE_COLOUR, JUNK_COLOUR = "tab:green", "tab:red", "0.6"


def rank_order(dist: np.ndarray, is_match: np.ndarray, ties: str = "stable") -> np.ndarray:
    """Gallery indices from closest to farthest under a tie policy ("stable": gallery index; "pessimistic":
    true matches after tied false ones; "optimistic": before)."""
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    index = np.arange(len(dist))
    if ties == "stable":
        return np.lexsort((index, dist))
    return np.lexsort((index, is_match if ties == "pessimistic" else ~is_match, dist))


@dataclass(frozen=True)
class RankedList:
    """One query's ranked gallery.

    Attributes:
        query: query index.
        order: (G,) gallery indices, closest first (junk included).
        distances: (G,) distances in that order.
        is_match, is_junk: (G,) bool in that order.
        rank: (G,) 1-based rank among kept (non-junk) items, 0 for junk.
        num_matches: true matches kept; 0 means the query is skipped by the protocol.
        first_match_rank: rank of the first true match (kept list), None when there is none.
        cmc_rank: the rank CMC counts (identity-deduplicated when `dedup`), None when there is none.
        AP, INP: average precision and inverse negative penalty (NaN when there is no match).
        first_match, top_false: gallery index of the first true match / the closest kept false match, or None.
    """

    query: int
    order: np.ndarray
    distances: np.ndarray
    is_match: np.ndarray
    is_junk: np.ndarray
    rank: np.ndarray
    num_matches: int
    first_match_rank: int | None
    cmc_rank: int | None
    AP: float
    INP: float
    first_match: int | None
    top_false: int | None

    def top(self, k: int) -> pd.DataFrame:
        """The first `k` items (junk counted as items, so junk is visible): position, gallery, rank, distance,
        match, junk."""
        k = min(k, len(self.order))
        return pd.DataFrame({"position": np.arange(1, k + 1), "gallery": self.order[:k], "rank": self.rank[:k],
                             "distance": self.distances[:k], "match": self.is_match[:k], "junk": self.is_junk[:k]})


def ranked_list_from_distances(dist: np.ndarray, q_pid, g_pids: np.ndarray, q_camid=None,
                               g_camids: np.ndarray | None = None, *, junk: str = "market", ties: str = "stable",
                               dedup_cmc: bool = False, q_scene=None, g_scenes: np.ndarray | None = None,
                               query: int = 0) -> RankedList:
    """The ranked list of one query from its (G,) distances, with the metrics `rank_metrics` reports for it."""
    dist = np.asarray(dist)
    g_pids = np.asarray(g_pids)
    if dist.ndim != 1 or len(dist) != len(g_pids):
        raise ValueError(f"dist must be (G,) = ({len(g_pids)},), got shape {dist.shape}")
    g_camids = np.zeros(len(g_pids), dtype=int) if g_camids is None else np.asarray(g_camids)
    junk_g = junk_mask(junk, q_pid, q_camid, g_pids, g_camids, q_scene, g_scenes)
    match_g = (g_pids == q_pid) & ~junk_g
    order = rank_order(dist, match_g, ties)
    is_match, is_junk = match_g[order], junk_g[order]
    rank = np.where(is_junk, 0, np.cumsum(~is_junk))
    match_ranks = rank[is_match]
    n = len(match_ranks)
    false_pos = np.flatnonzero(~is_match & ~is_junk)
    top_false = int(order[false_pos[0]]) if len(false_pos) else None
    if n == 0:
        return RankedList(query, order, dist[order], is_match, is_junk, rank, 0, None, None, float("nan"),
                          float("nan"), None, top_false)
    first = int(match_ranks[0])
    cmc_rank = first
    if dedup_cmc:  # distinct identities among kept items before the first match, plus one
        before = order[: np.flatnonzero(is_match)[0]]
        cmc_rank = len(np.unique(g_pids[before][~junk_g[before]])) + 1
    ap = float(np.mean(np.arange(1, n + 1) / match_ranks))
    inp = float(n / match_ranks[-1])
    return RankedList(query, order, dist[order], is_match, is_junk, rank, n, first, cmc_rank, ap, inp,
                      int(order[np.flatnonzero(is_match)[0]]), top_false)


# ----------------------------------------------------------------------------------------------------------------
# One trial of a run, computed once

def _modalities(samples: Sequence | None, n: int) -> np.ndarray:
    if samples is None:
        return np.full(n, "?", dtype=object)
    return np.asarray([s.modality for s in samples], dtype=object)


@dataclass
class Retrieval:
    """One evaluation trial, computed once: features, distances, labels, samples and the protocol's metrics.

    Attributes:
        distmat: (Q, G) distances under `spec` (the branches given, normalised and compared as the protocol says).
        query, gallery: `EvalSet`s (features by branch, pids, camids, scenes).
        q_modalities, g_modalities: (Q,), (G,) modality names ("rgb", "ir", "rgb+nir+tir"...).
        spec: the protocol; result: `rank_metrics` of this trial (its `per_query` table drives the browser).
        q_samples, g_samples: the samples (for images), or None.
        name: a label (the run's name).
        info: anything else worth keeping (the config, the trial name).
    """

    distmat: np.ndarray
    query: EvalSet
    gallery: EvalSet
    q_modalities: np.ndarray
    g_modalities: np.ndarray
    spec: ProtocolSpec
    result: RankResult
    q_samples: Sequence | None = None
    g_samples: Sequence | None = None
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_features(cls, query: EvalSet | Features, gallery: EvalSet | Features, spec: ProtocolSpec, *,
                      branches: Sequence[str] | None = ("feats",), q_samples: Sequence | None = None,
                      g_samples: Sequence | None = None, name: str = "", info: dict | None = None) -> Retrieval:
        """Distances and metrics of query vs gallery features under `spec` (branches as in `evaluate_trials`)."""
        query = query.subset(np.arange(len(query.pids))) if isinstance(query, Features) else query
        gallery = gallery.subset(np.arange(len(gallery.pids))) if isinstance(gallery, Features) else gallery
        qf = combine_branches(query, branches, normalize=spec.normalize, branch_norm=spec.branch_norm)
        gf = combine_branches(gallery, branches, normalize=spec.normalize, branch_norm=spec.branch_norm)
        distmat = np.asarray(pairwise_distance(np.asarray(qf), np.asarray(gf), spec.metric))
        result = rank_metrics(distmat, np.asarray(query.pids), np.asarray(gallery.pids), np.asarray(query.camids),
                              np.asarray(gallery.camids), junk=spec.junk, dedup_cmc=spec.dedup_cmc,
                              max_rank=spec.max_rank, ties=spec.ties, q_scenes=query.scenes,
                              g_scenes=gallery.scenes)
        return cls(distmat, query, gallery, _modalities(q_samples, len(query)), _modalities(g_samples, len(gallery)),
                   spec, result, q_samples, g_samples, name, dict(info or {}))

    @classmethod
    def from_run(cls, run, *, trial: int = 0, dataset=None, split_options: dict | None = None,
                 branches: Sequence[str] | None = ("feats",), device: str = "cpu", cache: bool = True,
                 progress: bool = False) -> Retrieval:
        """Load a run's selected model, extract (cached) features of one test trial and rank it.

        Args:
            run: a `workbench.runs.Run` or a run folder.
            trial: which evaluation split (`dataset.eval_splits(**split_options)[trial]`).
            dataset: a loaded dataset (default: the run's, from its config).
        """
        from workbench.config import dataset_layout
        from workbench.data import load_dataset
        from workbench.features import extract_features
        from workbench.methods import get_method, load_run_model
        from workbench.metrics import PROTOCOLS
        from workbench.runs import load_run

        run = load_run(run) if not hasattr(run, "config") else run
        cfg = run.config
        if dataset is None:
            dataset = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
        splits = dataset.eval_splits(**(split_options or {}))
        if not 0 <= trial < len(splits):
            raise ValueError(f"trial must be in [0, {len(splits)}), got {trial}")
        split = splits[trial]
        model = load_run_model(run, device)
        method = get_method(cfg.run.method)
        q = extract_features(model, split.query, cfg, method=method, cache=cache, progress=progress)
        g = extract_features(model, split.gallery, cfg, method=method, cache=cache, progress=progress)
        spec = PROTOCOLS[dataset_layout(cfg.data.dataset)]
        return cls.from_features(q, g, spec, branches=branches, q_samples=split.query, g_samples=split.gallery,
                                 name=run.name, info={"config": cfg, "split": split.name, "trial": split.trial,
                                                      "run": run})

    def ranked_list(self, q: int) -> RankedList:
        """The ranked list of query `q`."""
        if not 0 <= q < len(self.distmat):
            raise ValueError(f"query index must be in [0, {len(self.distmat)}), got {q}")
        scenes_q = None if self.query.scenes is None else self.query.scenes[q]
        return ranked_list_from_distances(
            self.distmat[q], self.query.pids[q], np.asarray(self.gallery.pids), self.query.camids[q],
            np.asarray(self.gallery.camids), junk=self.spec.junk, ties=self.spec.ties,
            dedup_cmc=self.spec.dedup_cmc, q_scene=scenes_q, g_scenes=self.gallery.scenes, query=q)

    def query_table(self) -> pd.DataFrame:
        """`RankResult.per_query` plus the query's modality and the distance to its closest gallery item."""
        table = self.result.per_query.copy()
        table.insert(2, "modality", self.q_modalities)
        first = self.distmat.min(axis=1)
        table["top1_distance"] = first
        return table

    def features(self, branch: str = "feats", sides: Sequence[str] = ("query", "gallery")
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(feats (N, D), pids (N,), modalities (N,)) of the query and/or gallery side, for embedding maps."""
        parts = {"query": (self.query, self.q_modalities), "gallery": (self.gallery, self.g_modalities)}
        feats, pids, mods = [], [], []
        for side in sides:
            es, m = parts[side]
            branches = es.feats if isinstance(es.feats, Mapping) else {"feats": es.feats}
            if branch not in branches:
                raise ValueError(f"unknown branch {branch!r}; this retrieval has {list(branches)}")
            feats.append(np.asarray(branches[branch]))
            pids.append(np.asarray(es.pids))
            mods.append(m)
        return np.concatenate(feats), np.concatenate(pids), np.concatenate(mods)

    # -- images -----------------------------------------------------------------------------------------------
    def image(self, side: str, index: int, modality: str | None = None) -> np.ndarray:
        """A displayable (H, W, 3) image of a query or gallery sample (for triplets, `modality` or RGB)."""
        from workbench.viz.data import to_image

        samples = self.q_samples if side == "query" else self.g_samples
        if samples is None:
            raise ValueError("this Retrieval has no samples; build it with q_samples= and g_samples=")
        s = samples[index]
        mod = modality if modality in s.paths else next(iter(s.paths))
        return to_image(s.load_image(mod))

    def inputs(self, side: str, index: int) -> dict:
        """{modality: (3, H, W)} test-transformed tensors of a sample (the CAM input), with the run's transform."""
        from workbench.features import test_transform

        cfg = self.info.get("config")
        if cfg is None:
            raise ValueError("this Retrieval has no config; build it with Retrieval.from_run(run)")
        s = (self.q_samples if side == "query" else self.g_samples)[index]
        tf = test_transform(cfg)
        return {m: tf(s.load_image(m)) for m in s.paths}


def ranked_list(retrieval: Retrieval, q: int) -> RankedList:
    """`retrieval.ranked_list(q)` as a function."""
    return retrieval.ranked_list(q)


# ----------------------------------------------------------------------------------------------------------------
# Query orderings

ORDERINGS = {
    "hardest": (["AP", "first_match_rank"], [True, False]),        # lowest AP first, then the deepest first match
    "first_match_rank": (["first_match_rank", "AP"], [False, True]),  # deepest first true match first
    "easiest": (["AP", "first_match_rank"], [False, True]),
    "query": (["query"], [True]),
}


def sort_queries(table: pd.DataFrame, order: str = "hardest", *, valid_only: bool = True) -> pd.DataFrame:
    """Sort a per-query table by a named ordering (`ORDERINGS`: hardest, first_match_rank, easiest, query).

    Queries the protocol skips (no true match) are dropped with `valid_only`, else put last.
    """
    if order not in ORDERINGS:
        raise ValueError(f"order must be one of {sorted(ORDERINGS)}, got {order!r}")
    cols, ascending = ORDERINGS[order]
    table = table[table["valid"]] if valid_only else table
    return table.sort_values(cols, ascending=ascending, kind="stable", na_position="last")


def compare_failures(retrievals: Mapping[str, Retrieval], *, fail_rank: int = 1) -> pd.DataFrame:
    """Which queries fail for every run and which for some: one row per query, the CMC rank of each run, the number
    of runs where it exceeds `fail_rank`, and a category ("all", "some", "none").

    The runs must share one query set (same dataset and trial; checked on the query identities).
    """
    if not retrievals:
        raise ValueError("retrievals is empty; pass {run name: Retrieval}")
    items = list(retrievals.items())
    ref = np.asarray(items[0][1].query.pids)
    for name, r in items[1:]:
        if len(r.query.pids) != len(ref) or not np.array_equal(np.asarray(r.query.pids), ref):
            raise ValueError(f"run {name!r} has a different query set from {items[0][0]!r}; compare runs of "
                             "the same dataset and trial")
    table = items[0][1].result.per_query[["query", "pid"]].copy()
    valid = np.ones(len(table), dtype=bool)
    for name, r in items:
        table[name] = r.result.per_query["cmc_rank"].to_numpy()
        valid &= r.result.per_query["valid"].to_numpy()
    table = table[valid].copy()
    ranks = table[[name for name, _ in items]].astype(float).to_numpy()
    table["fails_in"] = (ranks > fail_rank).sum(axis=1)
    table["category"] = np.select([table["fails_in"] == len(items), table["fails_in"] > 0], ["all", "some"], "none")
    return table.sort_values(["fails_in", "query"], ascending=[False, True], kind="stable")


# ----------------------------------------------------------------------------------------------------------------
# Drawing

def _frame(ax, colour: str, dashed: bool = False, width: float = 3.0) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)
        spine.set_linestyle("--" if dashed else "-")
    ax.set_xticks([])
    ax.set_yticks([])


def _label(samples, index: int, camids, modalities) -> str:
    return f"{modalities[index]} cam{camids[index]}"


def plot_ranked_list(retrieval: Retrieval, q: int, *, k: int = 10, modality: str | None = None, axes=None,
                     size: float = 1.1):
    """The query and its top-`k` gallery items (junk included and marked): green frame = true match, red = false,
    grey dashed = junk (not ranked). Titles: rank, distance, modality and camera; the query's title has its pid,
    first-match rank, AP and INP. Returns the Axes (1, k + 1).

    Args:
        modality: for triplets, which modality to draw (default RGB).
    """
    rl = retrieval.ranked_list(q)
    k = min(k, len(rl.order))
    if axes is None:
        _, axes = plt.subplots(1, k + 1, figsize=(size * (k + 1), 2.6 * size), squeeze=False)
        axes = axes[0]
    qs = retrieval.query
    has_images = retrieval.q_samples is not None
    ax = axes[0]
    if has_images:
        ax.imshow(retrieval.image("query", q, modality))
    fm = "-" if rl.first_match_rank is None else rl.first_match_rank
    ax.set_title(f"query {q}\npid {qs.pids[q]} {retrieval.q_modalities[q]} cam{qs.camids[q]}\n"
                 f"1st match @{fm}\nAP {rl.AP:.2f} INP {rl.INP:.2f}", fontsize=6)
    _frame(ax, "black", width=1.0)
    gs = retrieval.gallery
    for j in range(k):
        ax, gi = axes[j + 1], int(rl.order[j])
        if has_images:
            ax.imshow(retrieval.image("gallery", gi, modality))
        if rl.is_junk[j]:
            head, colour = "junk", JUNK_COLOUR
        else:
            head, colour = f"#{rl.rank[j]}", MATCH_COLOUR if rl.is_match[j] else FALSE_COLOUR
        ax.set_title(f"{head} d={rl.distances[j]:.3g}\npid {gs.pids[gi]}\n"
                     f"{_label(None, gi, gs.camids, retrieval.g_modalities)}", fontsize=6)
        _frame(ax, colour, dashed=bool(rl.is_junk[j]))
    return axes


def plot_query_metrics(table: pd.DataFrame, *, ax=None):
    """Histogram of the first-match rank over the valid queries (log scale), the shape of a run's failures."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 2.6))
    ranks = table.loc[table["valid"], "first_match_rank"].astype(float)
    bins = np.unique(np.geomspace(1, max(2.0, ranks.max() + 1), 20).astype(int))
    ax.hist(ranks, bins=bins, color="tab:blue")
    ax.set_xscale("log")
    ax.set(xlabel="rank of the first true match", ylabel="queries")
    return ax


# ----------------------------------------------------------------------------------------------------------------
# The failure browser

def failure_figure(retrieval: Retrieval, q: int, *, k: int = 8, model=None, method=None, cam_method: str = "gradcam",
                   modality: str | None = None):
    """One figure for one query: its ranked list and, with a model, the CAMs of the query against its top false
    match and its first true match (and the contrastive map true - false). Returns the Figure."""
    rl = retrieval.ranked_list(q)
    with_cam = model is not None and rl.first_match is not None and rl.top_false is not None
    fig = plt.figure(figsize=(1.1 * (k + 1), 2.9 + (3.0 if with_cam else 0)))
    grid = fig.add_gridspec(2 if with_cam else 1, k + 1, height_ratios=[1, 1.1] if with_cam else [1])
    plot_ranked_list(retrieval, q, k=k, modality=modality, axes=[fig.add_subplot(grid[0, j]) for j in range(k + 1)])
    if with_cam:
        from workbench.features import test_transform
        from workbench.viz import cam

        cfg = retrieval.info["config"]
        tf = test_transform(cfg)
        mean, std = tf.mean.flatten().tolist(), tf.std.flatten().tolist()
        q_in = retrieval.inputs("query", q)
        true_in, false_in = retrieval.inputs("gallery", rl.first_match), retrieval.inputs("gallery", rl.top_false)
        q_cam = int(retrieval.query.camids[q]) if _uses_camera(model) else None
        vs_false = cam.compute_cam(model, q_in, cam.SimilarityTarget(cam.embed(model, false_in, method=method)),
                                   method=method, cam_method=cam_method, camid=q_cam)
        vs_true = cam.compute_cam(model, q_in, cam.SimilarityTarget(cam.embed(model, true_in, method=method)),
                                  method=method, cam_method=cam_method, camid=q_cam)
        contrast = cam.contrastive_cam(model, q_in, true_in, false_in, method=method, cam_method=cam_method,
                                       query_camid=q_cam)
        m = modality if modality in q_in else next(iter(q_in))

        def pick(images):  # the gallery's own modality for visible-infrared data, else the same one
            return images[m] if m in images else next(iter(images.values()))

        panels = [("query vs top false", q_in[m], vs_false[m]), ("top false", pick(false_in), None),
                  ("query vs 1st true", q_in[m], vs_true[m]), ("1st true", pick(true_in), None),
                  ("true - false", q_in[m], contrast[m])]
        for j, (title, img, heat) in enumerate(panels):
            ax = fig.add_subplot(grid[1, j])
            if heat is None:
                ax.imshow(cam.display_image(img, mean, std))
                ax.set_title(title, fontsize=7)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                cam.plot_cam(img, heat, mean=mean, std=std, ax=ax, title=f"{title}\n({cam_method}, {m})")
    fig.suptitle(f"{retrieval.name}: query {q}", fontsize=8)
    return fig


def _uses_camera(model) -> bool:
    embed = getattr(model, "embed", None)
    try:
        return embed is not None and embed[0].sie_embed is not None
    except (TypeError, AttributeError, IndexError):
        return False


def static_failure_report(retrieval: Retrieval, *, n: int = 3, order: str = "hardest", **kwargs) -> list:
    """The headless fallback of the browser: `failure_figure` for the first `n` queries of an ordering."""
    table = sort_queries(retrieval.query_table(), order)
    return [failure_figure(retrieval, int(q), **kwargs) for q in table["query"].head(n)]


class FailureBrowser:
    """An ipywidgets browser over a run's queries: choose an ordering and a query, see its ranked list and the CAMs
    of the query against its top false and its first true match. `show()` displays it in a notebook;
    `render(q)` returns the same figure headless.

    Args:
        retrieval: the trial to browse (`Retrieval.from_run`).
        model, method: the run's model and eval forward for the CAMs (None: ranked lists only).
        k: gallery items shown.
        max_queries: queries listed in the chooser (per ordering).
    """

    def __init__(self, retrieval: Retrieval, *, model=None, method=None, k: int = 8, cam_method: str = "gradcam",
                 max_queries: int = 200) -> None:
        self.retrieval, self.model, self.method, self.k = retrieval, model, method, k
        self.cam_method, self.max_queries = cam_method, max_queries
        self.table = retrieval.query_table()

    def options(self, order: str) -> list[tuple[str, int]]:
        rows = sort_queries(self.table, order).head(self.max_queries)
        return [(f"q{int(r.query)} pid {r.pid} 1st@{r.first_match_rank} AP {r.AP:.2f}", int(r.query))
                for r in rows.itertuples()]

    def render(self, q: int):
        return failure_figure(self.retrieval, q, k=self.k, model=self.model, method=self.method,
                              cam_method=self.cam_method)

    def show(self):
        """Display the widget (in a notebook kernel) and return it."""
        import ipywidgets as widgets
        from IPython.display import display

        order = widgets.Dropdown(options=sorted(ORDERINGS), value="hardest", description="order")
        query = widgets.Dropdown(options=self.options("hardest"), description="query")
        out = widgets.Output()

        def draw(*_):
            with out:
                out.clear_output(wait=True)
                fig = self.render(query.value)
                display(fig)
                plt.close(fig)

        def reorder(change):
            query.options = self.options(change["new"])

        order.observe(reorder, names="value")
        query.observe(draw, names="value")
        box = widgets.VBox([widgets.HBox([order, query]), out])
        display(box)
        draw()
        return box


def browse(retrieval: Retrieval, *, interactive: bool | None = None, n_static: int = 3, **kwargs):
    """The failure browser when a notebook kernel with ipywidgets is there, else the static report (a list of
    figures for the hardest queries). `interactive=None` decides by the environment (headless runs, papermill and
    `MPLBACKEND=Agg` get the static one)."""
    if interactive is None:
        import matplotlib

        interactive = matplotlib.get_backend().lower() != "agg" and _in_kernel()
    if interactive:
        return FailureBrowser(retrieval, **kwargs).show()
    return static_failure_report(retrieval, n=n_static, **kwargs)


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
