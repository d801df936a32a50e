"""Paired comparison of two runs on the same queries: per-query AP of A against B, how many queries improve and how
many get worse, a sign test and a paired bootstrap interval on the mAP difference, and the spread over gallery
draws, in words, as a static figure and per query as ranked lists.

The statistics are standard (exact two-sided sign test on the queries that changed; percentile bootstrap over
queries of the mean per-query AP difference); applying them to ReID ablations is this workbench's choice, not a
paper's. Queries are the unit: a query's AP is averaged over the gallery draws it appears in, so the mean of the
per-query differences equals the protocol's mAP difference when every query is valid in every draw.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.evaluate import Evaluation, RunHandle, comparable, open_run
from workbench.runs import Run


class IncomparableRuns(ValueError):
    """Two runs were evaluated under different protocols, datasets or query lists; the message says which."""


def same_run_text(name: str) -> str:
    """What a comparison of run `name` with itself says instead of statistics."""
    return f"A and B are the same run ({name}): nothing to compare. Pick another run for B."


@dataclass
class PairedComparison:
    """Run B against run A on the same queries.

    Attributes:
        per_query: one row per query sample: sample, pid, camid, AP_a, AP_b, diff (B - A), trials (draws it was
            valid in), trial and query (where to find its ranked list: the first draw).
        n_better, n_worse, n_tied: queries whose AP went up, down, or stayed within `tol`.
        delta: mean per-query AP difference (B - A). ci: its (low, high) bootstrap interval at `level`.
        sign_p: exact two-sided sign test p-value over the queries that changed.
        per_trial: per gallery draw: mAP_a, mAP_b, diff.
    """

    a: Evaluation = field(repr=False)
    b: Evaluation = field(repr=False)
    per_query: pd.DataFrame = field(repr=False)
    n_better: int
    n_worse: int
    n_tied: int
    delta: float
    ci: tuple[float, float]
    level: float
    sign_p: float
    per_trial: pd.DataFrame = field(repr=False)
    n_boot: int = 2000

    @property
    def name_a(self) -> str:
        return self.a.run_name

    @property
    def name_b(self) -> str:
        return self.b.run_name

    @property
    def n_queries(self) -> int:
        return len(self.per_query)

    @property
    def same_run(self) -> bool:
        """A and B are one run folder: every query ties by construction and there is nothing to compare."""
        return self.a.run_path.resolve() == self.b.run_path.resolve()

    def summary(self) -> str:
        """The comparison in words (for one run against itself, only that)."""
        if self.same_run:
            return same_run_text(self.name_a)
        lo, hi = self.ci
        pct = round(100 * self.level)
        verdict = ("the interval excludes 0" if lo > 0 or hi < 0
                   else "the interval includes 0: not distinguishable from query sampling at this size")
        d = self.per_trial["diff"]
        draws = (f"over the {len(d)} gallery draws the mAP difference is {d.mean():+.3f} ± {d.std(ddof=0):.3f} "
                 f"(min {d.min():+.3f}, max {d.max():+.3f})" if len(d) > 1 else "one gallery (no draws to spread)")
        return (f"B ({self.name_b}) is better than A ({self.name_a}) on {self.n_better} of {self.n_queries} queries, "
                f"worse on {self.n_worse}, tied on {self.n_tied} (sign test p = {self.sign_p:.3g}). "
                f"The mAP difference {self.delta:+.3f} (B - A) has a {pct} % interval of [{lo:+.3f}, {hi:+.3f}] "
                f"(paired bootstrap over queries, {self.n_boot} resamples); {verdict}. {draws[0].upper() + draws[1:]}.")

    def query_choices(self) -> list[tuple[str, int]]:
        """(label, sample) of every query, largest |AP difference| first, for a query picker."""
        order = self.per_query.reindex(self.per_query["diff"].abs().sort_values(ascending=False).index)
        return [(f"query {int(r.sample)} (id {int(r.pid)}): AP {r.AP_a:.2f} -> {r.AP_b:.2f} ({r.diff:+.2f})",
                 int(r.sample)) for r in order.itertuples()]


def sign_test(n_better: int, n_worse: int) -> float:
    """Exact two-sided sign test p-value (ties dropped): P(|X - n/2| >= |k - n/2|), X ~ Binomial(n, 1/2)."""
    from scipy.stats import binomtest

    n = n_better + n_worse
    return 1.0 if n == 0 else float(binomtest(n_better, n, 0.5).pvalue)


def bootstrap_mean_ci(diffs: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired differences (resampling the pairs).

    Args:
        diffs: (N,) per-query differences.
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    if diffs.ndim != 1 or len(diffs) == 0:
        raise ValueError(f"diffs must be a non-empty 1-D array, got shape {diffs.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):  # bounded memory: 256 resamples at a time
        idx = rng.integers(0, len(diffs), size=(min(256, n_boot - start), len(diffs)))
        means[start:start + len(idx)] = diffs[idx].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def compare(a: Evaluation | RunHandle | Run | str | Path, b: Evaluation | RunHandle | Run | str | Path, *,
            key: str | None = None, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
            tol: float = 1e-9) -> PairedComparison:
    """Paired comparison of run B against run A (stored evaluations, or runs: then their evaluation under protocol
    `key`, default the default protocol, is read, or computed once if missing).

    Raises:
        IncomparableRuns: different protocol, dataset or query list (the message names the difference).
    """
    a = a if isinstance(a, Evaluation) else open_run(a).evaluation(key=key)
    b = b if isinstance(b, Evaluation) else open_run(b).evaluation(key=key)
    ok, reason = comparable(a, b)
    if not ok:
        raise IncomparableRuns(f"runs {a.run_name} and {b.run_name} cannot be compared: {reason}")
    cols = ["trial", "query", "sample", "pid", "camid", "AP"]
    pa, pb = (e.per_query.loc[e.per_query["valid"].astype(bool), cols] for e in (a, b))
    joined = pa.merge(pb[["trial", "query", "AP"]], on=["trial", "query"], suffixes=("_a", "_b"), validate="1:1")
    per_query = (joined.groupby("sample", sort=True)
                 .agg(pid=("pid", "first"), camid=("camid", "first"), AP_a=("AP_a", "mean"), AP_b=("AP_b", "mean"),
                      trials=("trial", "size"), trial=("trial", "first"), query=("query", "first"))
                 .reset_index())
    per_query["diff"] = per_query["AP_b"] - per_query["AP_a"]
    d = per_query["diff"].to_numpy()
    n_better, n_worse = int((d > tol).sum()), int((d < -tol).sum())
    per_trial = joined.groupby("trial").agg(mAP_a=("AP_a", "mean"), mAP_b=("AP_b", "mean")).reset_index()
    per_trial["diff"] = per_trial["mAP_b"] - per_trial["mAP_a"]
    return PairedComparison(a, b, per_query, n_better, n_worse, len(d) - n_better - n_worse, float(d.mean()),
                            bootstrap_mean_ci(d, n_boot=n_boot, level=level, seed=seed), level,
                            sign_test(n_better, n_worse), per_trial, n_boot)


# ----------------------------------------------------------------------------------------------------------------
# Figures

def plot_paired(cmp: PairedComparison, *, ax=None, highlight: int | None = None,
                labels: tuple[str, str] | None = None):
    """Per-query AP of A (x) against B (y): above the diagonal B is better. Returns the Axes.

    Args:
        labels: how the axes name runs A and B (default: their run names), e.g. the dashboard's picker labels.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    pq = cmp.per_query
    colors = np.where(pq["diff"] > 0, "tab:green", np.where(pq["diff"] < 0, "tab:red", "tab:gray"))
    ax.scatter(pq["AP_a"], pq["AP_b"], s=10, c=colors, alpha=0.7, lw=0)
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--")
    if highlight is not None and (pq["sample"] == highlight).any():
        row = pq[pq["sample"] == highlight].iloc[0]
        ax.scatter([row.AP_a], [row.AP_b], s=80, facecolors="none", edgecolors="k", lw=1.5)
    name_a, name_b = labels or (cmp.name_a, cmp.name_b)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal", xlabel=f"AP, A: {name_a}",
           ylabel=f"AP, B: {name_b}",
           title=f"B better on {cmp.n_better}, worse on {cmp.n_worse} of {cmp.n_queries}")
    ax.title.set_fontsize(9)
    ax.xaxis.label.set_fontsize(8)
    ax.yaxis.label.set_fontsize(8)
    return ax


def comparison_figure(cmp: PairedComparison, *, labels: tuple[str, str] = ("A", "B")):
    """The static version of a comparison (for headless runs): per-query scatter, the distribution of per-query
    differences with the bootstrap interval, and, when the protocol has several gallery draws, the mAP difference
    per draw. The title names runs A and B in full; `labels` name them on the scatter's axes (run names are too long
    for an axis). Returns the Figure."""
    draws = len(cmp.per_trial) > 1
    fig, axes = plt.subplots(1, 3 if draws else 2, figsize=(13, 3.8) if draws else (9, 3.8),
                             gridspec_kw={"width_ratios": [1, 1.2, 1.2] if draws else [1, 1.2]})
    ax_s, ax_h = axes[:2]
    plot_paired(cmp, ax=ax_s)
    ax_s.set(xlabel=f"AP of {labels[0]}", ylabel=f"AP of {labels[1]}")
    ax_h.hist(cmp.per_query["diff"], bins=30, color="tab:blue", alpha=0.8)
    ax_h.axvline(0, color="k", lw=0.8)
    ax_h.axvline(cmp.delta, color="tab:orange", lw=1.5, label=f"mean {cmp.delta:+.3f}")
    ax_h.axvspan(*cmp.ci, color="tab:orange", alpha=0.25, label=f"{round(100 * cmp.level)} % interval")
    ax_h.set(xlabel="per-query AP difference (B - A)", ylabel="queries", title=f"sign test p = {cmp.sign_p:.3g}")
    ax_h.legend(fontsize=8)
    if draws:
        pt, ax_t = cmp.per_trial, axes[2]
        ax_t.bar(pt["trial"].astype(str), pt["diff"], color=np.where(pt["diff"] >= 0, "tab:green", "tab:red"))
        ax_t.axhline(0, color="k", lw=0.8)
        ax_t.set(xlabel="gallery draw", ylabel="mAP difference (B - A)", title="spread over gallery draws")
    names = [f"{ab} = {name}" if label == ab else f"{ab} ({label}) = {name}"  # the panels say A and B
             for ab, label, name in (("A", labels[0], cmp.name_a), ("B", labels[1], cmp.name_b))]
    fig.suptitle(f"{names[0]}   vs   {names[1]}\n{cmp.a.label}" + ("" if draws else "; one gallery, no draws to spread"),
                 fontsize=9)
    fig.tight_layout()
    return fig


def _first_image(paths_json: str, size: tuple[int, int]) -> np.ndarray:
    """The first modality's image of a stored sample (RGB of a triplet), or a grey tile when the file is gone."""
    from workbench.data.samples import load_rgb

    paths = json.loads(paths_json)
    path = paths.get("rgb") or next(iter(paths.values()))
    try:
        return np.asarray(load_rgb(path).resize(size))
    except (OSError, ValueError):
        return np.full((size[1], size[0], 3), 200, dtype=np.uint8)


def _where(cmp: PairedComparison, sample: int) -> tuple[int, int]:
    """(trial, query index) of a query sample: the first gallery draw it is valid in."""
    rows = cmp.per_query[cmp.per_query["sample"] == sample]
    if rows.empty:
        raise ValueError(f"sample {sample} is not a valid query of this comparison; pick one of "
                         f"cmp.per_query['sample'] (e.g. {int(cmp.per_query['sample'].iloc[0])})")
    return int(rows["trial"].iloc[0]), int(rows["query"].iloc[0])


def ranked_lists(cmp: PairedComparison, sample: int, k: int = 8) -> dict[str, pd.DataFrame]:
    """Both runs' top-k ranked items for one query sample (first gallery draw it is valid in), as the tables of
    `Evaluation.ranked_list`: {"A": table, "B": table}."""
    trial, query = _where(cmp, sample)
    return {"A": cmp.a.ranked_list(trial, query, k), "B": cmp.b.ranked_list(trial, query, k)}


def detail_view(cmp: PairedComparison, sample: int, k: int = 6, *, cams: bool = False, models=None,
                cam_method: str = "gradcam", both: bool = False):
    """Both runs' ranked lists for one query, one row each, drawn by `workbench.viz.ranked.plot_ranked_list` (the
    query, then each run's top-k gallery images framed green for the query's identity, red for another, grey dashed
    for junk). Returns the Figure.

    Args:
        cams: also draw, below the lists, each run's similarity CAM of the query against its rank-1 gallery sample
            (and against its first true match when rank 1 is false), from `workbench.dashboard.cams.detail_cams`;
            slow (a forward and backward per map), so off by default. A run without a CAM shows the reason.
        models: a `workbench.dashboard.cams.RunModels` cache, to load each run's model once over several calls.
        cam_method, both: passed to `detail_cams`.
    """
    from workbench.viz.ranked import plot_ranked_list

    trial, query = _where(cmp, sample)
    run_cams = None
    if cams:
        from workbench.dashboard.cams import detail_cams

        run_cams = detail_cams(cmp, sample, models=models, cam_method=cam_method, both=both)
    cam_cols = (6 if both else 4) if run_cams else 0
    n_cols = max(k + 1, cam_cols)
    fig = plt.figure(figsize=(1.15 * n_cols, 5.2 + (5.4 if run_cams else 0)))
    grid = fig.add_gridspec(4 if run_cams else 2, n_cols)
    for r, (tag, ev) in enumerate((("A", cmp.a), ("B", cmp.b))):
        plot_ranked_list(ev.trial(trial), query, k=k, axes=[fig.add_subplot(grid[r, c]) for c in range(k + 1)],
                         label=f"{tag}: {ev.run_name[:22]}")
    if run_cams:
        from workbench.dashboard.cams import plot_detail_cams

        cam_axes = [[fig.add_subplot(grid[2 + r, c]) for c in range(cam_cols)] for r in range(2)]
        plot_detail_cams(run_cams, axes=cam_axes)
        fig.detail_cams = run_cams  # what was drawn, for callers and tests
    fig.tight_layout()
    return fig


def detail_png(cmp: PairedComparison, sample: int, k: int = 6, size: tuple[int, int] = (48, 96), *,
               labels: tuple[str, str] | None = None) -> bytes:
    """Both runs' top-k ranked items (the tables of `ranked_lists`, junk left out) composed directly with PIL as
    PNG bytes: tens of milliseconds instead of `detail_view`'s matplotlib second, for the app's query picker.

    Args:
        labels: how runs A and B are named beside their rows, wrapped on up to four lines (default: the last 14
            characters of their run names), e.g. the dashboard's picker labels.
    """
    import textwrap

    from PIL import Image, ImageDraw

    lists = ranked_lists(cmp, sample, k)
    row = cmp.per_query[cmp.per_query["sample"] == sample].iloc[0]
    query_paths = cmp.a.samples.set_index("row").loc[sample, "paths"]
    w, h = size
    pad, head = 4, 26
    canvas = Image.new("RGB", ((k + 1) * (w + 2 * pad) + 90, 2 * (h + 2 * pad + head)), "white")
    draw = ImageDraw.Draw(canvas)
    colors = {True: (44, 160, 44), False: (214, 39, 40)}
    for r, (tag, table) in enumerate(lists.items()):
        top = r * (h + 2 * pad + head)
        ap = row.AP_a if tag == "A" else row.AP_b
        draw.text((2, top + head + h // 2 - 12), f"{tag}: AP {ap:.2f}", fill="black")
        if labels is None:
            name = (cmp.name_a if tag == "A" else cmp.name_b)[-14:]
        else:  # each " · " part on its own line(s), 14 characters a line
            lines = [line for part in labels[r].split(" · ") for line in textwrap.wrap(part, 14)]
            name = "\n".join(lines[:4]) + ("..." if len(lines) > 4 else "")
        draw.text((2, top + head + h // 2 + 2), name, fill=(90, 90, 90))
        x0 = 90
        canvas.paste(Image.fromarray(_first_image(query_paths, size)), (x0 + pad, top + head + pad))
        draw.text((x0 + pad, top + 2), f"query\nid {int(row.pid)}", fill="black")
        for c in range(min(k, len(table))):
            g = table.iloc[c]
            x = x0 + (c + 1) * (w + 2 * pad)
            color = colors[bool(g["match"])]
            draw.rectangle([x, top + head, x + w + 2 * pad - 1, top + head + h + 2 * pad - 1], fill=color)
            canvas.paste(Image.fromarray(_first_image(g["paths"], size)), (x + pad, top + head + pad))
            draw.text((x + 2, top + 2), f"{int(g['rank'])}: id {int(g['pid'])}\nd={g['distance']:.3f}", fill=color)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def figure_png(fig, dpi: int = 90) -> bytes:
    """A figure as PNG bytes (for an image widget); the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def comparable_runs(a: RunHandle | Run | str | Path, b: RunHandle | Run | str | Path) -> tuple[bool, str]:
    """Whether two runs can be compared query by query under their default protocol, and if not, why not
    (evaluates a run once if its per-query results are missing)."""
    return comparable(open_run(a).test, open_run(b).test)
