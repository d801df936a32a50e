"""The ipywidgets app: pick a dataset, a protocol and runs (by name or by a one-key family), read the metrics table
and the overlaid curves, then compare two runs query by query. Every view is drawn by a plain function of
`runs_view` or `compare`; this file only wires widgets to them."""

from __future__ import annotations

import html
import json
import time
from base64 import b64encode
from collections import Counter
from pathlib import Path

import ipywidgets as W
import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from workbench import evaluate as E
from workbench.dashboard import paired as C
from workbench.dashboard import runs_view as V
from workbench.dashboard.cams import RunModels, detail_cams, plot_detail_cams
from workbench.utils import runs_dir as _runs_dir

# Importing ipympl switches pyplot to its widget backend (`matplotlib.use` in ipympl/__init__.py, run whenever
# matplotlib is already imported): every figure a notebook drew after building a dashboard became a canvas that is
# never displayed, and switching back does not restore IPython's inline display hook. The dashboard only needs
# ipympl's canvas class, so that one call is skipped while ipympl is imported; the notebook keeps its backend.
_use, matplotlib.use = matplotlib.use, lambda *args, **kwargs: None
try:
    from ipympl.backend_nbagg import Canvas, FigureManager  # noqa: E402
finally:
    matplotlib.use = _use

DEFAULT_PROTOCOL = "default test protocol"


class _ScatterCanvas(Canvas):
    """ipympl's canvas widget, sending every frame whole.

    ipympl sends the difference to the last frame by default; the browser sets each frame as the source of one image
    and draws it when loaded, so when two frames arrive close together (the one this app sends, then the one the
    browser asked for) the first can be replaced before it loads, and a lost difference leaves stale pixels. A whole
    frame stands alone (inferred from ipympl 0.10's front end; the frames are a few tens of kB)."""

    def get_diff_image(self):
        self._force_full = True  # matplotlib's webagg canvas: the next frame is a full one
        return super().get_diff_image()

    def send_binary(self, data: bytes) -> None:
        """Send a frame (PNG bytes). Until the browser's view has started, ipympl 0.10 sends the raw pixel buffer
        in its place (which the browser cannot decode) and keeps the PNG as the widget's saved image; here the
        PNG is sent either way, and saved as a data URL while no view has started."""
        if self.syncing_data_url:
            self._data_url = "data:image/png;base64," + b64encode(data).decode("ascii")
        self.send({"data": json.dumps({"type": "binary"})}, buffers=[data])


def _scatter_widget() -> tuple[_ScatterCanvas, Figure]:
    """The per-query scatter: a matplotlib canvas widget (ipympl), so a click selects a query. The figure is never
    registered with pyplot."""
    fig = Figure(figsize=(4.2, 4.2), dpi=90)
    canvas = _ScatterCanvas(fig)
    FigureManager(canvas, 0)  # wires the canvas' messages
    canvas.header_visible = canvas.footer_visible = canvas.toolbar_visible = False
    canvas.resizable = False
    return canvas, fig


def _table_html(table: pd.DataFrame) -> str:
    return V.format_table(table).to_html(index=False, border=0, classes="wb-metrics", na_rep="-")


class Dashboard:
    """The dashboard over a runs folder. Display it with `app.widget` (or as the last expression of a cell).

    Attributes:
        widget: the top-level widget. comparison: the current `PairedComparison` (None until two comparable,
            different runs are picked). timings: seconds spent in the last table / comparison / detail / CAM update.
        labels: run name -> how the run pickers, the scatter's axes and the ranked lists name it: the config keys
            and values that set it apart from the dataset's other runs (`runs_view.run_labels`); the picked run's
            full name is its picker's tooltip.
        scatter: the per-query scatter (an ipympl canvas widget); every selection sends it a new frame at once.
        show_cams: the toggle (off by default) that adds the CAM panel `cams` of the selected query (both runs'
            similarity CAMs, `workbench.dashboard.cams`); models: the per-run model cache it uses.
    """

    def __init__(self, runs_dir: str | Path | None = None, *, run_a: str | None = None, run_b: str | None = None,
                 compute_missing: bool = True):
        t0 = time.perf_counter()
        self.root = _runs_dir(runs_dir)
        self.compute_missing = compute_missing
        self.runs = V.discover_runs(self.root)
        self.configs = V.run_configs(self.runs)
        self.comparison: C.PairedComparison | None = None
        self.timings: dict[str, float] = {}
        counts = Counter(c.get("data.dataset") for c in self.configs.values())
        datasets = sorted(counts, key=lambda d: (-counts[d], str(d)))  # the dataset with most runs first
        if run_a in self.configs:
            datasets.sort(key=lambda d: d != self.configs[run_a].get("data.dataset"))
        self.dataset = W.Dropdown(options=datasets, description="dataset")
        self.protocol = W.Dropdown(description="protocol", layout=W.Layout(width="420px"))
        self.family = W.Dropdown(description="family", layout=W.Layout(width="520px"))
        self.selected = W.SelectMultiple(description="runs", rows=6, layout=W.Layout(width="520px"))
        self.table = W.HTML()
        self.curves = W.Image(format="png")
        self.run_a = W.Dropdown(description="A", layout=W.Layout(width="420px"))
        self.run_b = W.Dropdown(description="B", layout=W.Layout(width="420px"))
        self.summary = W.HTML()
        self.scatter, self._scatter_fig = _scatter_widget()  # click a point: that query is selected
        self._scatter_ax = self._highlight = None
        self.scatter.mpl_connect("button_press_event", self._on_scatter_click)
        self._background = None  # (figure size, pixels) of the scatter without its ring
        self.labels: dict[str, str] = {}  # run name -> what the pickers show: what sets the run apart
        self.query = W.Select(description="query", rows=8, layout=W.Layout(width="520px"))
        self.detail = W.Image(format="png")
        self.detail_text = W.HTML()
        # CAMs cost a forward and backward per map: computed only while this is on, after the list is shown
        self.show_cams = W.ToggleButton(value=False, description="show CAMs", icon="eye",
                                        tooltip="similarity CAM of the query against each run's rank-1 (and first "
                                                "true) match; slow on large models")
        self.cams = W.Image(format="png", layout=W.Layout(display="none"))
        self.cams_text = W.HTML()
        self.models = RunModels()  # each run's model loaded once
        self.progress = W.Output()
        for w, cls in ((self.dataset, "wb-dataset"), (self.protocol, "wb-protocol"), (self.family, "wb-family"),
                       (self.selected, "wb-runs"), (self.table, "wb-table"), (self.curves, "wb-curves"),
                       (self.run_a, "wb-run-a"), (self.run_b, "wb-run-b"), (self.summary, "wb-summary"),
                       (self.scatter, "wb-scatter"), (self.query, "wb-query"), (self.detail, "wb-detail"),
                       (self.detail_text, "wb-detail-text"), (self.show_cams, "wb-show-cams"),
                       (self.cams, "wb-cams"), (self.cams_text, "wb-cams-text")):
            w.add_class(cls)
        self.widget = W.VBox([
            W.HTML(f"<b>Runs in</b> <code>{html.escape(str(self.root))}</code>: {len(self.runs)}"),
            W.HBox([self.dataset, self.protocol]), self.family, self.selected, self.table, self.curves,
            W.HTML("<b>Paired comparison</b> (same queries, B against A)"), W.HBox([self.run_a, self.run_b]),
            self.progress, self.summary, W.HBox([self.scatter, self.query]), self.detail, self.detail_text,
            self.show_cams, self.cams_text, self.cams,
        ])
        self.widget.add_class("wb-dashboard")
        self._busy = False
        self._on_dataset(None, run_a=run_a, run_b=run_b)
        self.dataset.observe(self._on_dataset, "value")
        self.protocol.observe(self._on_protocol, "value")
        self.family.observe(self._on_family, "value")
        self.selected.observe(lambda _: self._refresh_table(), "value")
        self.run_a.observe(self._on_run, "value")
        self.run_b.observe(self._on_run, "value")
        self.query.observe(lambda _: self._refresh_detail(), "value")
        self.show_cams.observe(lambda _: self._refresh_cams(), "value")
        self.timings["start"] = time.perf_counter() - t0

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # -- selection --------------------------------------------------------------------------------------------

    def _names(self) -> list[str]:
        return [n for n, c in self.configs.items() if c.get("data.dataset") == self.dataset.value]

    def _on_dataset(self, _change, run_a: str | None = None, run_b: str | None = None) -> None:
        self._busy = True
        names = self._names()
        labels = {}
        for n in names:
            for ev in E.list_evaluations(self.runs[n]):
                labels.setdefault(ev.key, ev.label)
        default_keys = {E.load_evaluation(self.runs[n]).key for n in names if E.list_evaluations(self.runs[n])}
        self.protocol.options = [(DEFAULT_PROTOCOL, None)] + [(f"{lab} ({k})", k) for k, lab in labels.items()
                                                             if k not in default_keys]
        self.protocol.value = None
        fams = V.families({n: self.configs[n] for n in names})
        self.family.options = [("(pick runs by name below)", None)] + [(lab, lab) for lab in fams]
        self._families = fams
        self.labels = V.run_labels({n: self.configs[n] for n in names})
        choices = [(self.labels[n], n) for n in names]
        self.selected.options = choices
        self.selected.value = tuple(names)
        self.run_a.options = choices
        self.run_b.options = choices
        if names:
            self.run_a.value = run_a if run_a in names else names[0]
            self.run_b.value = run_b if run_b in names else names[min(1, len(names) - 1)]
        self._name_tooltips()
        self._busy = False
        self._refresh_table()
        self._refresh_comparison()

    def _name_tooltips(self) -> None:
        """The pickers show what sets a run apart; hovering one shows the picked run's full name."""
        for tag, picker in (("A", self.run_a), ("B", self.run_b)):
            picker.tooltip = f"run {tag}: {picker.value}" if picker.value else None

    def _on_run(self, _change) -> None:
        self._name_tooltips()
        self._refresh_comparison()

    def _on_protocol(self, _change) -> None:
        self._refresh_table()
        self._refresh_comparison()

    def _on_family(self, change) -> None:
        if change["new"] is None:
            return
        members = self._families[change["new"]]
        self._busy = True
        self.selected.value = tuple(members)
        self.run_a.value, self.run_b.value = members[0], members[-1]
        self._name_tooltips()
        self._busy = False
        self._refresh_table()
        self._refresh_comparison()

    # -- views ------------------------------------------------------------------------------------------------

    def _refresh_table(self) -> None:
        if self._busy:
            return
        t0 = time.perf_counter()
        names = list(self.selected.value)
        keys = V.varying_keys({n: self.configs[n] for n in names}) if len(names) > 1 else []
        table = V.metrics_table(self.runs, names, self.protocol.value, columns=keys[:4])
        self.table.value = _table_html(table)
        if names:
            axes = V.plot_curves_overlay(self.runs, names)
            self.curves.value = C.figure_png(axes[0].figure)
        self.timings["table"] = time.perf_counter() - t0

    def _evaluation(self, name: str) -> E.Evaluation:
        run = self.runs[name]
        key = self.protocol.value
        if not self.compute_missing:
            return E.load_evaluation(run, key)
        if key is None:
            return E.open_run(run).test
        for n in self._names():  # the protocol's options, from a run that has it
            for ev in E.list_evaluations(self.runs[n]):
                if ev.key == key:
                    ident, handle = ev.identity, E.open_run(run)
                    return handle.evaluation(split_options=ident["split_options"] or None, rerank=ident["rerank"],
                                             branches=ident["branches"],
                                             test_on=E.identity_test_on(handle.config, ident))
        return E.load_evaluation(run, key)

    def _refresh_comparison(self) -> None:
        if self._busy:
            return
        t0 = time.perf_counter()
        self.comparison = None
        a, b = self.run_a.value, self.run_b.value
        if a is None or b is None:
            self.summary.value = "<i>no runs for this dataset</i>"
            self._show_no_comparison("no runs")
            return
        if a == b:
            self.summary.value = f"<p class='wb-same-run'>{html.escape(C.same_run_text(a))}</p>"
            self._show_no_comparison("A and B are the same run:\nnothing to compare")
            self.timings["comparison"] = time.perf_counter() - t0
            return
        try:
            with self.progress:
                ev_a, ev_b = self._evaluation(a), self._evaluation(b)
            self.comparison = C.compare(ev_a, ev_b)
        except (C.IncomparableRuns, FileNotFoundError, KeyError) as exc:
            self.summary.value = f"<span style='color:#b00'>Not compared: {html.escape(str(exc))}</span>"
            self._show_no_comparison("not compared: see above")
            return
        self.progress.clear_output()
        self.summary.value = f"<p>{html.escape(self.comparison.summary())}</p>"
        choices = self.comparison.query_choices()
        self._busy = True
        self.query.options = choices
        self.query.value = choices[0][1] if choices else None
        self._busy = False
        self._refresh_detail(draw_scatter=True)
        self.timings["comparison"] = time.perf_counter() - t0

    def _show_no_comparison(self, note: str) -> None:
        """No comparison: the scatter says `note`, and the query list, ranked lists and CAMs are empty."""
        self.comparison = None
        self._clear_scatter(note)
        self._busy = True
        self.query.options = []
        self._busy = False
        self.detail.value = b""
        self.detail_text.value = ""
        self._refresh_cams()

    def _refresh_detail(self, draw_scatter: bool = False) -> None:
        if self._busy or self.comparison is None or self.query.value is None:
            return
        t0 = time.perf_counter()
        sample = int(self.query.value)
        if draw_scatter:  # once per comparison: a matplotlib figure costs about a second
            self._draw_scatter()
        self._mark_query(sample)  # the browser gets the new frame before the ranked lists and CAMs are computed
        a, b = self.comparison.name_a, self.comparison.name_b
        self.detail.value = C.detail_png(self.comparison, sample, labels=(self.labels.get(a, a), self.labels.get(b, b)))
        lists = C.ranked_lists(self.comparison, sample)
        parts = []
        for tag, table in lists.items():
            marks = " ".join(f"{'✓' if m else '✗'}{int(p)}" for p, m in zip(table["pid"], table["match"]))
            parts.append(f"<b>{tag}</b> top-{len(table)} identities: {marks}")
        self.detail_text.value = f"<span class='wb-query-id'>query {sample}</span>: " + " | ".join(parts)
        self.timings["detail"] = time.perf_counter() - t0
        self._refresh_cams()

    # -- the per-query scatter ----------------------------------------------------------------------------------

    def _points(self) -> tuple[np.ndarray, np.ndarray]:
        """The compared queries' (AP of A, AP of B) points (Q, 2) and their sample ids (Q,); empty without a
        comparison."""
        if self.comparison is None:
            return np.zeros((0, 2)), np.zeros(0, dtype=int)
        pq = self.comparison.per_query
        return pq[["AP_a", "AP_b"]].to_numpy(dtype=float), pq["sample"].to_numpy(dtype=int)

    def _draw_scatter(self) -> None:
        """The comparison's scatter, without a ring yet (`_mark_query` sets it and sends the frame)."""
        self._scatter_fig.clear()
        self._scatter_ax = self._scatter_fig.add_subplot()
        a, b = self.comparison.name_a, self.comparison.name_b
        C.plot_paired(self.comparison, ax=self._scatter_ax, labels=(self.labels.get(a, a), self.labels.get(b, b)))
        self._scatter_ax.set_title(self._scatter_ax.get_title() + "\n(click a point to select its query)", fontsize=9)
        # above every other artist of the axes, so that drawing it alone over the rest gives the full drawing
        self._highlight = self._scatter_ax.scatter([], [], s=90, facecolors="none", edgecolors="k", lw=1.6, zorder=10)
        self._scatter_fig.tight_layout()
        self._background = None

    def _clear_scatter(self, note: str) -> None:
        """An empty scatter that says `note`."""
        self._scatter_fig.clear()
        self._scatter_ax = self._highlight = self._background = None
        self._scatter_fig.text(0.5, 0.5, note, ha="center", va="center", fontsize=10, color="0.3")
        self._send_scatter()

    def _mark_query(self, sample: int) -> None:
        """Ring the selected query's point and send the frame."""
        if self._highlight is None:
            return
        xy, samples = self._points()
        at = xy[samples == sample]
        self._highlight.set_offsets(at[:1] if len(at) else np.zeros((0, 2)))
        self._send_scatter()

    def _send_scatter(self) -> None:
        """Render the scatter and send the frame to the browser now.

        Not `draw_idle()`: in ipympl that only asks the browser to ask back for a frame, and the browser's request
        waits in the kernel's queue behind the rest of this update (ranked lists, CAMs) and every selection made
        meanwhile, so the canvas lagged the list by up to seconds (issue 22 item 6). Here the frame is rendered and
        sent at once, ahead of the slower views. Moving the ring redraws only the ring, over the rest of the figure
        rendered once per comparison (and again when the browser's pixel ratio changes the figure's size): a full
        render is about a tenth of a second, mostly tick labels."""
        canvas, ring = self.scatter, self._highlight
        if ring is None:  # a note, no axes
            canvas.draw()
            return
        size = tuple(self._scatter_fig.bbox.size)
        if self._background is None or self._background[0] != size:
            ring.set_visible(False)
            FigureCanvasAgg.draw(canvas)  # renders without sending a frame
            ring.set_visible(True)
            self._background = size, canvas.copy_from_bbox(self._scatter_fig.bbox)
        canvas.restore_region(self._background[1])
        self._scatter_ax.draw_artist(ring)
        canvas.blit()  # sends the rendered pixels as a frame

    def nearest_query(self, x: float, y: float) -> int | None:
        """The query whose (AP of A, AP of B) point is nearest to (x, y); None when nothing is compared."""
        xy, samples = self._points()
        if not len(samples):
            return None
        return int(samples[np.argmin(((xy - [x, y]) ** 2).sum(axis=1))])

    def _on_scatter_click(self, event) -> None:
        if event.inaxes is not self._scatter_ax or event.xdata is None:
            return
        sample = self.nearest_query(event.xdata, event.ydata)
        if sample is not None and sample != self.query.value:
            self.query.value = sample  # the query list follows, and its observer redraws the detail

    def _refresh_cams(self) -> None:
        """The CAM panel of the selected query, only while "show CAMs" is on (hidden otherwise)."""
        if self._busy:
            return
        if not self.show_cams.value or self.comparison is None or self.query.value is None:
            self.cams.layout.display = "none"
            self.cams.value, self.cams_text.value = b"", ""
            return
        t0 = time.perf_counter()
        self.cams_text.value = "<i>computing CAMs ...</i>"
        cams = detail_cams(self.comparison, int(self.query.value), models=self.models)
        axes = plot_detail_cams(cams)
        axes[0][0].figure.tight_layout()
        self.cams.value = C.figure_png(axes[0][0].figure)
        self.cams.layout.display = None
        notes = [f"<b>{rc.tag}</b>: {html.escape(rc.message)}" for rc in cams.values() if rc.message]
        self.cams_text.value = ("<span class='wb-cams-note' style='color:#b00'>" + " | ".join(notes) + "</span>"
                                if notes else "")
        self.timings["cams"] = time.perf_counter() - t0
