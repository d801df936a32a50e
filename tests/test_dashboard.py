"""The dashboard's plain functions against oracles (varying keys, families, sign test, bootstrap, paired counts and
the protocol mAP difference), its refusal across protocols, and the widgets app reacting to selections."""

import dataclasses
import html
import io
import json
import math
import shutil

import matplotlib
import numpy as np
import pytest

from workbench import dashboard
from workbench import evaluate as E

matplotlib.use("Agg")


# -- run discovery -------------------------------------------------------------------------------------------

CONFIGS = {
    "t-wrt": {"loss.triplet": "wrt", "optim.lr": 0.1, "run.seed": 0},
    "t-hard": {"loss.triplet": "hard", "optim.lr": 0.1, "run.seed": 0},
    "t-soft": {"loss.triplet": "soft", "optim.lr": 0.1, "run.seed": 0},
    "lr": {"loss.triplet": "wrt", "optim.lr": 0.01, "run.seed": 0},
    "two": {"loss.triplet": "hard", "optim.lr": 0.01, "run.seed": 1},
}


def test_varying_keys_and_one_key_families():
    assert dashboard.varying_keys(CONFIGS) == ["loss.triplet", "optim.lr", "run.seed"]
    assert dashboard.varying_keys({"x": CONFIGS["t-wrt"]}) == []
    fams = dashboard.families(CONFIGS)
    assert sorted(fams.values()) == [["lr", "t-wrt"], ["t-hard", "t-soft", "t-wrt"]]
    assert next(k for k, v in fams.items() if v == ["lr", "t-wrt"]).startswith("optim.lr:")
    assert dashboard.family_members(CONFIGS, "loss.triplet") == {"wrt": "t-wrt", "hard": "t-hard", "soft": "t-soft"}
    with pytest.raises(ValueError, match="run.seed"):
        dashboard.family_members(CONFIGS, "run.seed")


def test_two_grids_on_one_key_are_told_apart_by_the_values_compared():
    # DAKD's and ICRE's grids both vary method_options.ablation; the larger one must not hide the other
    key = "method_options.ablation"
    dakd = {f"d-{v}": {"run.method": "dakd", key: v} for v in ("only_kd", "no_class", "full")}
    icre = {f"i-{v}": {"run.method": "icre", key: v} for v in ("baseline", "mpfr", "icg", "full")}
    configs = {**dakd, **icre}
    assert dashboard.family_members(configs, key) == {v: f"i-{v}" for v in ("baseline", "mpfr", "icg", "full")}
    assert dashboard.family_members(configs, key, values=("only_kd", "full")) == {
        v: f"d-{v}" for v in ("only_kd", "no_class", "full")}
    assert dashboard.family_members(configs, key, values=("mpfr",))["full"] == "i-full"
    with pytest.raises(ValueError, match="only_kd.*mpfr|taking the values"):
        dashboard.family_members(configs, key, values=("only_kd", "mpfr"))


def test_run_labels_name_the_keys_that_differ():
    one = {"x": {"loss.triplet": "wrt", "optim.lr": 0.1}, "y": {"loss.triplet": "hard", "optim.lr": 0.1}}
    assert dashboard.run_labels(one) == {"x": "loss.triplet=wrt", "y": "loss.triplet=hard"}
    # two keys, neither enough alone: both, in the order chosen (the key splitting most runs first, then by name)
    two = {n: CONFIGS[n] for n in ("t-wrt", "t-hard", "lr", "two")}
    assert dashboard.run_labels(two) == {"t-wrt": "loss.triplet=wrt · optim.lr=0.1",
                                         "t-hard": "loss.triplet=hard · optim.lr=0.1",
                                         "lr": "loss.triplet=wrt · optim.lr=0.01",
                                         "two": "loss.triplet=hard · optim.lr=0.01"}
    assert dashboard.run_labels(CONFIGS)["two"] == "loss.triplet=hard · optim.lr=0.01"  # run.seed is not needed
    # identical configs: nothing to tell them apart but their names
    same = {"r1": CONFIGS["t-wrt"], "r2": dict(CONFIGS["t-wrt"])}
    assert dashboard.run_labels(same) == {"r1": "r1", "r2": "r2"}
    assert dashboard.run_labels({**same, "h": CONFIGS["t-hard"]}) == {
        "r1": "loss.triplet=wrt (r1)", "r2": "loss.triplet=wrt (r2)", "h": "loss.triplet=hard"}
    assert dashboard.run_labels({"only": CONFIGS["lr"]}) == {"only": "only"}
    # two grids on one key: the method tells them apart; a key a run lacks is left out of its label
    key = "method_options.ablation"
    grids = {**{f"d-{v}": {"run.method": "dakd", key: v} for v in ("only_kd", "full")},
             **{f"i-{v}": {"run.method": "icre", key: v} for v in ("mpfr", "full")}, "base": {"run.method": "baseline"}}
    labels = dashboard.run_labels(grids)
    assert labels == {"d-only_kd": f"{key}=only_kd · run.method=dakd", "d-full": f"{key}=full · run.method=dakd",
                      "i-mpfr": f"{key}=mpfr · run.method=icre", "i-full": f"{key}=full · run.method=icre",
                      "base": "run.method=baseline"}
    assert len(set(labels.values())) == len(labels)


def test_flatten_config_uses_dotted_keys():
    assert dashboard.flatten_config({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": 3}) == {"a.b": 1, "a.c.d": (1, 2), "e": 3}


# -- statistics ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("better,worse", [(61, 35), (3, 0), (10, 10), (0, 0)])
def test_sign_test_matches_the_binomial_sum(better, worse):
    n = better + worse
    if n == 0:
        assert dashboard.sign_test(0, 0) == 1.0
        return
    k = min(better, worse)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    assert dashboard.sign_test(better, worse) == pytest.approx(min(1.0, 2 * tail), rel=1e-9)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(1)
    d = rng.normal(0.03, 0.1, size=400)
    lo, hi = dashboard.bootstrap_mean_ci(d, seed=3)
    assert (lo, hi) == dashboard.bootstrap_mean_ci(d, seed=3)
    assert lo < d.mean() < hi
    se = d.std(ddof=1) / math.sqrt(len(d))  # the normal approximation the percentile interval should be close to
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert dashboard.bootstrap_mean_ci(np.full(7, 0.25)) == (0.25, 0.25)
    with pytest.raises(ValueError, match="level"):
        dashboard.bootstrap_mean_ci(d, level=95)


# -- paired comparison on real runs --------------------------------------------------------------------------


@pytest.mark.slow
def test_paired_comparison_counts_and_matches_the_protocol_difference(two_runs):
    a, b = two_runs["a"], two_runs["b"]
    cmp = dashboard.compare(a.path, b.path)
    ev_a = E.load_evaluation(a)
    n_valid = ev_a.per_query.query("valid").groupby("sample").ngroups
    assert cmp.n_queries == n_valid == cmp.n_better + cmp.n_worse + cmp.n_tied
    assert cmp.n_better == int((cmp.per_query["AP_b"] > cmp.per_query["AP_a"] + 1e-9).sum())
    # every query is valid in every draw here, so the mean per-query difference is the protocol's mAP difference
    expected = b.results["test"]["mean"]["mAP"] - a.results["test"]["mean"]["mAP"]
    assert cmp.delta == pytest.approx(expected, abs=1e-12)
    assert cmp.per_trial["diff"].mean() == pytest.approx(expected, abs=1e-12)
    assert cmp.ci[0] <= cmp.delta <= cmp.ci[1]
    text = cmp.summary()
    assert f"better than A (a) on {cmp.n_better} of {cmp.n_queries} queries" in text and "95 % interval" in text
    # swapping A and B mirrors everything
    rev = dashboard.compare(b.path, a.path)
    assert (rev.n_better, rev.n_worse, rev.delta) == (cmp.n_worse, cmp.n_better, pytest.approx(-cmp.delta))
    assert rev.ci == pytest.approx((-cmp.ci[1], -cmp.ci[0]), abs=1e-12)  # same resamples, negated
    same = dashboard.compare(a.path, a.path)
    assert (same.n_tied, same.delta, same.ci, same.sign_p) == (same.n_queries, 0.0, (0.0, 0.0), 1.0)
    assert same.same_run and not cmp.same_run  # and it says so instead of printing statistics
    assert same.summary() == "A and B are the same run (a): nothing to compare. Pick another run for B."


@pytest.mark.slow
def test_runs_under_different_protocols_are_refused_with_the_reason(two_runs, tmp_path):
    a = E.load_evaluation(two_runs["a"])
    shutil.copytree(two_runs["b"].path, tmp_path / "b")
    meta_path = next((tmp_path / "b" / E.EVALUATIONS).glob("*/protocol.json"))
    meta = json.loads(meta_path.read_text())
    meta["identity"]["rerank"] = True
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(dashboard.IncomparableRuns, match=r"rerank: False \(run a\) vs True \(run b\)"):
        dashboard.compare(a, E.load_evaluation(tmp_path / "b"))


@pytest.mark.slow
def test_missing_results_are_recomputed_once_to_the_same_numbers(two_runs, tmp_path):
    copy = tmp_path / "a"
    shutil.copytree(two_runs["a"].path, copy)
    shutil.rmtree(copy / E.EVALUATIONS)
    ev = E.open_run(copy).evaluation(device="cpu", progress=False)
    original = E.load_evaluation(two_runs["a"])
    np.testing.assert_allclose(ev.per_query["AP"], original.per_query["AP"], atol=1e-6)
    assert ev.key == original.key


@pytest.mark.slow
def test_static_figure_detail_view_and_table(two_runs):
    cmp = dashboard.compare(two_runs["a"].path, two_runs["b"].path)
    fig = dashboard.comparison_figure(cmp)
    assert len(fig.axes) == 3  # ten gallery draws: the third panel spreads the difference over them
    assert fig.axes[0].get_xlabel() == "AP of A" and fig.axes[0].get_ylabel() == "AP of B"  # names are too long
    assert cmp.name_a in fig._suptitle.get_text() and cmp.name_b in fig._suptitle.get_text()
    one = dataclasses.replace(cmp, per_trial=cmp.per_trial.iloc[:1])  # a protocol with one gallery
    fig = dashboard.comparison_figure(one, labels=("wrt", "hard"))
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "AP of wrt"
    assert "one gallery" in fig._suptitle.get_text() and f"A (wrt) = {cmp.name_a}" in fig._suptitle.get_text()
    sample = int(cmp.per_query["sample"].iloc[0])
    fig = dashboard.detail_view(cmp, sample, k=4)
    assert len(fig.axes) == 2 * 5
    from PIL import Image

    png = Image.open(io.BytesIO(dashboard.detail_png(cmp, sample, k=4, size=(48, 96))))
    assert png.size == (5 * (48 + 8) + 90, 2 * (96 + 8 + 26))
    labelled = Image.open(io.BytesIO(dashboard.detail_png(cmp, sample, k=4, size=(48, 96),
                                                          labels=("loss.triplet=wrt", "loss.triplet=hard"))))
    plain, named = np.asarray(png.convert("RGB")), np.asarray(labelled.convert("RGB"))
    assert (plain[:, :90] != named[:, :90]).any() and (plain[:, 90:] == named[:, 90:]).all()  # only the names
    lists = dashboard.ranked_lists(cmp, sample, k=4)
    assert set(lists) == {"A", "B"} and len(lists["A"]) == 4
    trial, query = (int(cmp.per_query.loc[cmp.per_query["sample"] == sample, c].iloc[0]) for c in ("trial", "query"))
    for tag, ev in (("A", cmp.a), ("B", cmp.b)):  # the tables are the runs' ranked lists, junk left out
        rl = ev.trial(trial).ranked_list(query)
        assert lists[tag]["pid"].tolist() == rl.pids[rl.kept(4)].tolist()
    with pytest.raises(ValueError, match="not a valid query"):
        dashboard.ranked_lists(cmp, -5)
    runs = dashboard.discover_runs(two_runs["root"])
    table = dashboard.metrics_table(runs, ["a", "b"], columns=["loss.triplet"])
    assert table["loss.triplet"].tolist() == ["wrt", "hard"]
    assert table["mAP"].tolist() == [two_runs[n].results["test"]["mean"]["mAP"] for n in "ab"]
    assert table["trials"].tolist() == [10, 10]
    cell = dashboard.format_table(table)["mAP"].iloc[0]
    assert cell == f"{table['mAP'].iloc[0]:.3f} ± {table['mAP_std'].iloc[0]:.3f}"


def _spy_on_the_browser(app) -> list[tuple[str, object]]:
    """What the app sends the browser, in order: ("frame", (H, W, 4) image) for each scatter frame the canvas sends,
    ("caption", text) / ("summary", html) for each update of the ranked lists' caption / the summary."""
    from PIL import Image

    events: list[tuple[str, object]] = []
    send = app.scatter.send
    app.scatter.send = lambda content=None, buffers=None: (
        buffers and events.append(("frame", np.asarray(Image.open(io.BytesIO(buffers[0])).convert("RGBA")))),
        send(content, buffers))[-1]
    app.detail_text.observe(lambda change: events.append(("caption", change["new"])), "value")
    app.summary.observe(lambda change: events.append(("summary", change["new"])), "value")
    return events


def _last_frame_before_caption(events) -> np.ndarray:
    """The last frame sent before the first caption update; fails when none was."""
    kinds = [kind for kind, _ in events]
    assert "caption" in kinds, kinds
    frames = [f for kind, f in events[:kinds.index("caption")] if kind == "frame"]
    assert frames, f"no scatter frame was sent before the ranked lists' caption changed: {kinds}"
    return frames[-1]


def _figure_pixels(app) -> np.ndarray:
    """The scatter figure rendered now, (H, W, 4): what the browser should show."""
    buf = io.BytesIO()
    app._scatter_fig.savefig(buf, format="rgba", dpi=app._scatter_fig.dpi)
    w, h = (int(round(v)) for v in app._scatter_fig.bbox.size)
    return np.frombuffer(buf.getvalue(), np.uint8).reshape(h, w, 4)


def _only_near(before: np.ndarray, after: np.ndarray, centres, radius: float = 10) -> tuple[list[bool], bool]:
    """Whether pixels changed within `radius` of each (row, col) centre, and whether any changed elsewhere."""
    changed = (before != after).any(axis=-1)
    rows, cols = np.mgrid[:changed.shape[0], :changed.shape[1]]
    disks = [(rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2 for r, c in centres]
    return [bool(changed[d].any()) for d in disks], bool(changed[~np.logical_or.reduce(disks)].any())


def _pixel(app, sample: int) -> tuple[float, float]:
    """(row, col) of a query's point in the scatter's frame (rows from the top)."""
    pq = app.comparison.per_query
    row = pq[pq["sample"] == sample].iloc[0]
    x, y = app._scatter_ax.transData.transform((row.AP_a, row.AP_b))
    return app._scatter_fig.bbox.height - y, x


def _farthest(app, sample: int) -> int:
    """The query whose point is farthest from `sample`'s."""
    return max((int(s) for s in app.comparison.per_query["sample"]),
               key=lambda s: np.hypot(*np.subtract(_pixel(app, s), _pixel(app, sample))))


@pytest.mark.slow
def test_the_app_follows_its_selections(two_runs):
    app = dashboard.Dashboard(two_runs["root"], run_a="a", run_b="b")
    assert app.comparison is not None and "B (b)" in app.summary.value
    assert "loss.triplet" in app.table.value and app.detail.value[:4] == b"\x89PNG"
    # the pickers say what sets each run apart; the full name is the picked run's tooltip
    assert app.run_a.options == (("loss.triplet=wrt", "a"), ("loss.triplet=hard", "b")) == app.run_b.options
    assert (app.run_a.tooltip, app.run_b.tooltip) == ("run A: a", "run B: b")
    assert app._scatter_ax.get_xlabel() == "AP, A: loss.triplet=wrt"
    first_detail, first_frame = app.detail.value, _figure_pixels(app)
    n_better, n_worse = app.comparison.n_better, app.comparison.n_worse

    # another query from the list: the ring moves, and the browser gets that frame before the ranked lists
    events = _spy_on_the_browser(app)
    old = int(app.query.value)
    far = _farthest(app, old)
    app.query.value = far
    assert app.detail.value != first_detail and f"query {far}" in app.detail_text.value
    frame = _last_frame_before_caption(events)
    np.testing.assert_array_equal(frame, _figure_pixels(app))  # the frame is the figure as it is now
    near, elsewhere = _only_near(first_frame, frame, [_pixel(app, old), _pixel(app, far)])
    assert near == [True, True] and not elsewhere, "only the ring moved, from the old point to the new one"

    # B := A: nothing to compare, and nothing is shown as if it were a comparison
    events.clear()
    app.run_b.value = "a"
    assert "A and B are the same run (a): nothing to compare" in app.summary.value
    assert "better" not in app.summary.value and app.comparison is None
    assert app.query.options == () and app.detail.value == b"" and app.detail_text.value == ""
    assert app._scatter_fig.axes == []
    assert [t.get_text() for t in app._scatter_fig.texts] == ["A and B are the same run:\nnothing to compare"]
    np.testing.assert_array_equal([f for k, f in events if k == "frame"][-1], _figure_pixels(app))
    assert app.run_b.tooltip == "run B: a"

    # A := b: the comparison is back, mirrored, and its new title reaches the browser before the ranked lists
    events.clear()
    app.run_a.value = "b"
    assert (app.comparison.name_a, app.comparison.name_b) == ("b", "a")
    assert (app.comparison.n_better, app.comparison.n_worse) == (n_worse, n_better)
    assert app._scatter_ax.get_title().startswith(f"B better on {n_worse}, worse on {n_better} of")
    frame = _last_frame_before_caption(events)
    np.testing.assert_array_equal(frame, _figure_pixels(app))
    title = slice(0, int(app._scatter_fig.bbox.height - app._scatter_ax.bbox.y1))  # the rows above the axes
    assert (frame[title] != first_frame[title]).any(), "the title's counts changed"

    app.selected.value = ("b",)
    assert ">a<" not in app.table.value and ">b<" in app.table.value
    assert set(app.timings) >= {"start", "table", "comparison", "detail"}


def test_a_click_on_the_scatter_selects_the_nearest_query(two_runs):
    from matplotlib.backend_bases import MouseEvent

    app = dashboard.Dashboard(two_runs["root"], run_a="a", run_b="b")
    pq = app.comparison.per_query
    old = int(app.query.value)
    target = _farthest(app, old)
    row = pq[pq["sample"] == target].iloc[0]
    before, events = _figure_pixels(app), _spy_on_the_browser(app)
    # the click lands on the target's point, in the canvas' pixel coordinates
    x, y = app._scatter_ax.transData.transform((row.AP_a, row.AP_b))
    app.scatter.callbacks.process("button_press_event", MouseEvent("button_press_event", app.scatter, x, y, button=1))
    expected = app.nearest_query(row.AP_a, row.AP_b)  # a point at the same place may win the tie
    assert app.query.value == expected and tuple(pq.loc[pq["sample"] == expected, ["AP_a", "AP_b"]].iloc[0]) == \
        (row.AP_a, row.AP_b)
    assert f"query {expected}" in app.detail_text.value, "the ranked lists follow the click"
    ring = app._highlight.get_offsets()
    assert ring.shape == (1, 2) and tuple(ring[0]) == (row.AP_a, row.AP_b), "the selected point is ringed"
    # ... and the browser is sent the ringed frame before the ranked lists (not asked to ask for one later)
    frame = _last_frame_before_caption(events)
    np.testing.assert_array_equal(frame, _figure_pixels(app))
    near, elsewhere = _only_near(before, frame, [_pixel(app, old), _pixel(app, target)])
    assert near == [True, True] and not elsewhere
    # a click outside the axes changes nothing
    events.clear()
    app.scatter.callbacks.process("button_press_event", MouseEvent("button_press_event", app.scatter, 1, 1, button=1))
    assert app.query.value == expected and events == []
    # a HiDPI browser doubles the figure's pixels: the ring is then drawn over the rest at the new size
    app.scatter.handle_set_device_pixel_ratio({"device_pixel_ratio": 2})
    app.query.value = old
    frame = _last_frame_before_caption(events)
    assert frame.shape == (2 * before.shape[0], 2 * before.shape[1], 4)
    np.testing.assert_array_equal(frame, _figure_pixels(app))


@pytest.mark.slow
def test_the_comparison_follows_the_protocol(two_runs, tmp_path):
    for name in ("a", "b"):
        shutil.copytree(two_runs[name].path, tmp_path / name)
        E.open_run(tmp_path / name).evaluation(rerank=True, device="cpu", progress=False)
    app = dashboard.Dashboard(tmp_path, run_a="a", run_b="b")
    default_key = app.comparison.a.key
    (label, rerank_key), = [o for o in app.protocol.options if o[1] is not None]
    assert "rerank" in label
    events = _spy_on_the_browser(app)
    app.protocol.value = rerank_key
    expected = dashboard.compare(E.load_evaluation(tmp_path / "a", rerank_key),
                                 E.load_evaluation(tmp_path / "b", rerank_key))
    assert app.comparison.a.key == app.comparison.b.key == rerank_key != default_key
    assert app.summary.value == f"<p>{html.escape(expected.summary())}</p>"
    np.testing.assert_array_equal(app.comparison.per_query["AP_b"], expected.per_query["AP_b"])
    np.testing.assert_array_equal(_last_frame_before_caption(events), _figure_pixels(app))
    assert app._scatter_ax.get_title().startswith(f"B better on {expected.n_better}, worse on {expected.n_worse}")


@pytest.mark.slow
def test_the_app_says_why_it_does_not_compare(two_runs, tmp_path):
    for name in ("a", "b"):
        shutil.copytree(two_runs[name].path, tmp_path / name)
    meta_path = next((tmp_path / "b" / E.EVALUATIONS).glob("*/protocol.json"))
    meta = json.loads(meta_path.read_text())
    meta["identity"]["split_options"] = {"mode": "indoor"}
    meta_path.write_text(json.dumps(meta))
    app = dashboard.Dashboard(tmp_path, run_a="a", run_b="b", compute_missing=False)
    assert app.comparison is None
    assert "Not compared" in app.summary.value and "split_options" in app.summary.value
    assert app.query.options == () and app.detail.value == b""


# -- per-query CAMs --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_detail_cams_equal_what_viz_cam_computes_for_each_run(two_runs, tmp_path):
    from workbench.dashboard.cams import RunModels
    from workbench.data import load_dataset
    from workbench.evaluate import Retrieval, extract_features
    from workbench.methods import get_method, load_run_model
    from workbench.metrics import PROTOCOLS
    from workbench.viz import cam

    cmp = dashboard.compare(two_runs["a"].path, two_runs["b"].path)
    sample = int(cmp.per_query.loc[cmp.per_query["diff"].abs().idxmax(), "sample"])
    row = cmp.per_query[cmp.per_query["sample"] == sample].iloc[0]
    models = RunModels()
    # Grad-CAM++: plain Grad-CAM's maps of these 1-epoch smoke models are often all zero (its ReLU), which would make
    # the comparison below vacuous; the method is passed through unchanged either way
    fig = dashboard.detail_view(cmp, sample, k=4, cams=True, models=models, cam_method="gradcam++")
    drawn = fig.detail_cams
    assert len(models) == 2 and len(fig.axes) == 2 * 5 + 2 * 4
    assert sum(len(rc.pairs) for rc in drawn.values()) == 3, "expected rank 1 false for one run (seeded smoke runs)"
    for tag, name in (("A", "a"), ("B", "b")):
        rc = drawn[tag]
        # oracle: the run's model loaded afresh, its top-1 recomputed from fresh features, the CAM from viz.cam
        run = two_runs[name]
        cfg = run.config
        model = load_run_model(run, "cpu")
        split = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options).eval_splits()[int(row["trial"])]
        q_feats, g_feats = (extract_features(model, s, cfg, progress=False) for s in (split.query, split.gallery))
        r = Retrieval.from_features(q_feats, g_feats, PROTOCOLS["sysu-mm01"], q_samples=split.query,
                                    g_samples=split.gallery, info={"config": cfg})
        q = int(row["query"])
        rl = r.ranked_list(q)
        top = int(rl.order[rl.rank == 1][0])
        expected = cam.pair_cams(model, r.inputs("query", q), r.inputs("gallery", top), both=False,
                                 method=get_method(run.config.run.method), cam_method="gradcam++",
                                 query_camid=int(r.query.camids[q]), gallery_camid=int(r.gallery.camids[top]))
        (m, got), = rc.pairs[0].query_maps.items()
        assert got.shape == (run.config.data.height, run.config.data.width) and got.max() > 0 and got.std() > 0.01
        np.testing.assert_allclose(got, expected.query_maps[m], atol=1e-5)
        assert rc.pairs[0].similarity == pytest.approx(expected.similarity, abs=1e-5)
        assert rc.pairs[0].label.startswith("rank 1, " + ("true" if rl.is_match[rl.rank == 1][0] else "false"))
        # one CAM per run for the rank-1 item, a second one against the first true match when rank 1 is false
        first_true = rl.first_match_rank
        assert len(rc.pairs) == (1 if first_true == 1 or first_true is None or first_true > 20 else 2)
        if len(rc.pairs) == 2:
            assert rc.pairs[1].label == f"1st true match, rank {first_true}"
    assert len(models) == 2  # cached: a second call loads nothing
    dashboard.detail_view(cmp, sample, k=4, cams=True, models=models)
    assert len(models) == 2
    # a run whose weights are missing gets the reason, the other run its CAM
    shutil.copytree(two_runs["a"].path, tmp_path / "a")
    for f in (tmp_path / "a").rglob("*"):
        if f.suffix in (".safetensors", ".pt", ".pth"):
            f.unlink()
    no_weights = dashboard.compare(tmp_path / "a", two_runs["b"].path)
    fig = dashboard.detail_view(no_weights, sample, k=4, cams=True)
    assert fig.detail_cams["A"].pairs == [] and "weights cannot be read" in fig.detail_cams["A"].message
    assert len(fig.detail_cams["B"].pairs) == len(drawn["B"].pairs)
    assert any("weights cannot be read" in t.get_text().replace("\n", " ") for ax in fig.axes for t in ax.texts)


@pytest.mark.slow
def test_the_app_adds_the_cam_panel_only_when_asked(two_runs):
    from workbench.dashboard.cams import detail_cams

    app = dashboard.Dashboard(two_runs["root"], run_a="a", run_b="b")
    assert not app.show_cams.value and app.cams.value == b"" and app.cams.layout.display == "none"
    assert "cams" not in app.timings and len(app.models) == 0  # the list path loads no model
    app.show_cams.value = True
    assert app.cams.value[:4] == b"\x89PNG" and app.cams.layout.display is None and len(app.models) == 2
    first = app.cams.value
    sample = int(app.query.value)
    expected = detail_cams(app.comparison, sample)
    cached = detail_cams(app.comparison, sample, models=app.models)  # the app's cached models give the same maps
    for tag in "AB":
        np.testing.assert_array_equal(next(iter(cached[tag].pairs[0].query_maps.values())),
                                      next(iter(expected[tag].pairs[0].query_maps.values())))
    app.query.value = app.query.options[-1][1]  # another query: the panel follows
    assert app.cams.value[:4] == b"\x89PNG" and app.cams.value != first and len(app.models) == 2
    app.show_cams.value = False
    assert app.cams.value == b"" and app.cams.layout.display == "none"


def test_the_cam_panel_draws_the_note_of_a_modality_the_embedding_does_not_reach():
    import torch

    from workbench.dashboard.cams import RunCams, plot_detail_cams
    from workbench.viz import cam

    image = torch.zeros(3, 8, 4)
    maps = cam.CamMaps({"rgb": np.zeros((8, 4), np.float32), "tir": np.ones((8, 4), np.float32)},
                       {"rgb": cam.UNREACHED})
    pair = cam.PairCAM(maps, cam.CamMaps(), 0.3, {"rgb": image, "tir": image}, {"rgb": image, "tir": image},
                       "rank 1, true match")
    axes = plot_detail_cams({"A": RunCams("a", "A", [pair], [0])}, modality="rgb")
    assert cam.UNREACHED in axes[0][0].get_title() and "empty map" not in axes[0][0].get_title()
    axes = plot_detail_cams({"A": RunCams("a", "A", [pair], [0])}, modality="tir")
    assert cam.UNREACHED not in axes[0][0].get_title()


def test_the_cam_module_does_not_import_the_paired_view():
    """dashboard.paired draws the CAM panel from dashboard.cams; the dependency runs one way."""
    import ast
    from pathlib import Path

    import workbench.dashboard.cams as cams_module

    tree = ast.parse(Path(cams_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    assert "workbench.dashboard.paired" not in imported


def test_building_the_dashboard_leaves_pyplot_on_the_notebooks_backend():
    """Importing ipympl switched pyplot to ipympl's widget backend, so every figure a notebook drew after the dashboard
    was a canvas never displayed (notebook 07's comparison and detail figures were missing from JupyterLab and the
    handouts). The app keeps the backend it found."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('agg'); import matplotlib.pyplot as plt; "
            "import workbench.dashboard.app; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().lower() == "agg"
