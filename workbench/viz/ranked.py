"""Ranked lists, per-query tables and a failure browser over the queries of a run.

Compute once, plot many: a `workbench.evaluate.Retrieval` holds one evaluation trial (query and gallery features,
the distance matrix of the run's protocol, labels, samples and `RankResult`), usually read from a run's stored
evaluation (`open_run(path).test.trial(0)`); `retrieval.ranked_list(q)` reads one query's list out of it with the
package's one ranker (`workbench.metrics.ranked_list`: the same junk rule, tie policy and metric definitions as
`rank_metrics`). `plot_ranked_list` is the one drawing of a ranked list (the dashboard draws its two runs' lists
with it). Junk gallery items are shown and marked, never silently dropped: they do not count in ranks, AP or INP,
as in the protocol.

The browser comes in two separately named forms: `browse` builds the ipywidgets browser (and displays it in a
notebook), `static_failure_report` draws the same figures for the hardest queries (headless runs, papers).
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.evaluate import Retrieval

MATCH_COLOUR, FALSE_COLOUR, JUNK_COLOUR = "tab:green", "tab:red", "0.6"

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


def sample_image(retrieval: Retrieval, side: str, index: int, modality: str | None = None) -> np.ndarray:
    """A displayable (H, W, 3) image of a query or gallery sample (for triplets, `modality` or the first, RGB); a
    grey tile when the image file is gone (an evaluation read on another machine)."""
    from workbench.viz.data import to_image

    s = retrieval.sample(side, index)
    mod = modality if modality in s.paths else next(iter(s.paths))
    try:
        return to_image(s.load_image(mod))
    except (OSError, ValueError):
        return np.full((128, 64, 3), 0.8, dtype=np.float32)


def plot_ranked_list(retrieval: Retrieval, q: int, *, k: int = 10, modality: str | None = None, axes=None,
                     size: float = 1.1, label: str = ""):
    """The query and its top-`k` gallery items (junk included and marked): green frame = true match, red = false,
    grey dashed = junk (not ranked). Titles: rank, distance, identity, modality and camera; the query's title has
    its pid, first-match rank, AP and INP. Returns the Axes (k + 1,).

    Args:
        modality: for triplets, which modality to draw (default RGB).
        axes: k + 1 Axes to draw into (a row of a larger figure); default a new figure.
        label: written beside the query (e.g. the run's name, when several lists are stacked).
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
        ax.imshow(sample_image(retrieval, "query", q, modality))
    fm = "-" if rl.first_match_rank is None else rl.first_match_rank
    ax.set_title(f"query {q}\npid {qs.pids[q]} {retrieval.q_modalities[q]} cam{qs.camids[q]}\n"
                 f"1st match @{fm}\nAP {rl.AP:.2f} INP {rl.INP:.2f}", fontsize=6)
    _frame(ax, "black", width=1.0)
    if label:
        ax.set_ylabel(label, fontsize=7)
    gs = retrieval.gallery
    for j in range(k):
        ax, gi = axes[j + 1], int(rl.order[j])
        if has_images:
            ax.imshow(sample_image(retrieval, "gallery", gi, modality))
        if rl.is_junk[j]:
            head, colour = "junk", JUNK_COLOUR
        else:
            head, colour = f"#{rl.rank[j]}", MATCH_COLOUR if rl.is_match[j] else FALSE_COLOUR
        ax.set_title(f"{head} d={rl.distances[j]:.3g}\npid {gs.pids[gi]}\n"
                     f"{retrieval.g_modalities[gi]} cam{gs.camids[gi]}", fontsize=6)
        _frame(ax, colour, dashed=bool(rl.is_junk[j]))
    for ax in axes[k + 1:]:  # a longer row than the list (a shared grid): leave the rest blank
        ax.axis("off")
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
    """One figure for one query: its ranked list and, with a model, the similarity CAMs of the query against its
    top false match and its first true match (`workbench.viz.cam.pair_cams`, drawn by `plot_pair_cams`) and the
    contrastive map true - false. Returns the Figure."""
    rl = retrieval.ranked_list(q)
    with_cam = model is not None and rl.first_match is not None and rl.top_false is not None
    fig = plt.figure(figsize=(1.1 * (k + 1), 2.9 + (5.0 if with_cam else 0)))
    grid = fig.add_gridspec(3 if with_cam else 1, k + 1, height_ratios=[1, 1, 1] if with_cam else [1])
    plot_ranked_list(retrieval, q, k=k, modality=modality, axes=[fig.add_subplot(grid[0, j]) for j in range(k + 1)])
    if with_cam:
        from workbench.features import test_transform
        from workbench.viz import cam

        tf = test_transform(retrieval.info["config"])
        mean, std = tf.mean.flatten().tolist(), tf.std.flatten().tolist()
        q_in = retrieval.inputs("query", q)
        q_cam = int(retrieval.query.camids[q]) if _uses_camera(model) else None
        m = modality if modality in q_in else next(iter(q_in))
        pairs = cam.query_cams(model, q_in, [retrieval.inputs("gallery", g) for g in (rl.top_false, rl.first_match)],
                               both=False, method=method, cam_method=cam_method, query_camid=q_cam,
                               labels=["top false", "1st true"])  # one forward of the query for both targets
        for pair in pairs:  # the drawn modality, with its note when the embedding does not reach it
            maps = pair.query_maps
            pair.query_maps = cam.CamMaps({m: maps[m]}, {k: v for k, v in maps.notes.items() if k == m})
        cam.plot_pair_cams(pairs, mean=mean, std=std,
                           axes=[[fig.add_subplot(grid[r, c]) for c in range(len(pairs))] for r in (1, 2)])
        contrast = cam.contrastive_cam(model, q_in, retrieval.inputs("gallery", rl.first_match),
                                       retrieval.inputs("gallery", rl.top_false), method=method,
                                       cam_method=cam_method, query_camid=q_cam)
        cam.plot_cam(q_in[m], contrast[m], mean=mean, std=std, ax=fig.add_subplot(grid[2, len(pairs)]),
                     title=f"true - false\n({cam_method}, {m})")
    fig.suptitle(f"{retrieval.name}: query {q}" + (f" ({cam_method} CAMs)" if with_cam else ""), fontsize=8)
    return fig


def _uses_camera(model) -> bool:
    embed = getattr(model, "embed", None)
    try:
        return embed is not None and embed[0].sie_embed is not None
    except (TypeError, AttributeError, IndexError):
        return False


def static_failure_report(retrieval: Retrieval, *, n: int = 3, order: str = "hardest", **kwargs) -> list:
    """The browser's figures without widgets: `failure_figure` for the first `n` queries of an ordering. Returns
    the Figures."""
    table = sort_queries(retrieval.query_table(), order)
    return [failure_figure(retrieval, int(q), **kwargs) for q in table["query"].head(n)]


class FailureBrowser:
    """An ipywidgets browser over a run's queries: choose an ordering and a query, see its ranked list and the CAMs
    of the query against its top false and its first true match. `widget()` builds it, `render(q)` returns the
    same figure headless.

    Args:
        retrieval: the trial to browse (`open_run(path).test.trial(0)`).
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

    def widget(self):
        """The browser as an ipywidgets VBox (ordering and query pickers above the figure of the chosen query)."""
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
        draw()
        return widgets.VBox([widgets.HBox([order, query]), out])


def browse(retrieval: Retrieval, **kwargs):
    """The failure browser as a widget (`FailureBrowser.widget`), displayed when running in a notebook kernel;
    returns the widget wherever it runs. The figures without widgets: `static_failure_report`."""
    from workbench.utils import in_kernel

    box = FailureBrowser(retrieval, **kwargs).widget()
    if in_kernel():
        from IPython.display import display

        display(box)
    return box
