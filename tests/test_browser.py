"""JupyterLab in a real browser, as a new user meets it: notebook 07's dashboard renders and follows selections (its
scatter compared pixel for pixel with the figure an in-process dashboard draws for the same selection), and a
framework notebook opened after its runs exist reuses them instead of training again.

JupyterLab runs on 127.0.0.1 with a token; headless Chromium (Debian's `chromium` package: the registry's Playwright
cannot download its own browser here) is driven by Playwright. The kernel starts in `<project>/notebooks/` as it
does under `make lab`; `WORKBENCH_HOME` points the project at a temporary copy so the test leaves the repository's
runs alone. Screenshots go to `outputs/browser/`. Skipped only when no Chromium executable is found.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = bool(os.environ.get("WORKBENCH_REQUIRE_BROWSER"))  # .ci/run sets it: in CI a missing browser fails

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None and not REQUIRED,
                       reason="no chromium executable on PATH (Debian: apt-get install chromium; "
                              "or set CHROMIUM=/path/to/chrome)"),
]


def smoke_copy(notebook: str, dest: Path) -> Path:
    """A copy of a repository notebook with `SMOKE = True` in its parameters cell (what a tester would type)."""
    nb = json.loads((REPO / "notebooks" / notebook).read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"])
            assert "SMOKE = False" in src
            cell["source"] = src.replace("SMOKE = False", "SMOKE = True", 1)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / notebook).write_text(json.dumps(nb, indent=1))
    return dest / notebook


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a temporary project (notebooks/ holds SMOKE copies); yields (base url, token, project)."""
    if CHROMIUM is None:
        pytest.fail("WORKBENCH_REQUIRE_BROWSER is set but no chromium executable was found (apt-get install chromium)")
    if not REQUIRED:
        pytest.importorskip("playwright", reason="playwright is missing: pip install -e '.[dev]'")
    project = tmp_path_factory.mktemp("project").resolve()  # as utils.project_dir() resolves WORKBENCH_HOME
    settings = tmp_path_factory.mktemp("lab-settings")
    # Plain rendering of every cell (no windowing) and no news / update toasts over the page.
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "WORKBENCH_HOME": str(project), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path_factory.mktemp("lab-workspaces")), "MPLBACKEND": "Agg",
           "JUPYTER_RUNTIME_DIR": str(tmp_path_factory.mktemp("jupyter-runtime")),
           "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    env.pop("WORKBENCH_FIGURES", None)
    log = open(project.parent / f"lab-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={project}", "--ServerApp.open_browser=False",
         "--LabApp.news_url=", "--ServerApp.port_retries=0"] + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"JupyterLab did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, token, project
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


def screenshots_dir() -> Path:
    from workbench.utils import outputs_dir

    path = outputs_dir() / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_and_run_all(browser, base: str, token: str, notebook: str):
    """Open a notebook in JupyterLab, run all its cells from the menu, return the page once the kernel is done."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{base}/lab/tree/notebooks/{notebook}?reset&token={token}")  # reset: no tabs restored
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    return page


def wait_until_done(page, timeout_s: float = 150) -> None:
    """Every code cell has an execution number (no `[*]` / `[ ]` left) and the kernel is idle."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        panel = page.locator(".jp-NotebookPanel:visible")
        prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        tracebacks = panel.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)")
        if tracebacks.count():
            pytest.fail("a cell raised: " + tracebacks.first.inner_text()[-1500:])
        if prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts):
            return
        time.sleep(1)
    pytest.fail(f"the notebook did not finish in {timeout_s} s; prompts: {prompts}")


def data_url_pixels(url: str):
    """An image data URL as an (H, W, 4) RGBA array."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))


SCATTER = ".wb-scatter canvas"  # ipympl's view: the drawing canvas, then a transparent one on top for the mouse


def drawn_scatter(page):
    """What the browser shows in the dashboard's scatter now, (H, W, 4) RGBA."""
    return data_url_pixels(page.locator(SCATTER).first.evaluate("c => c.toDataURL('image/png')"))


def figure_pixels(app):
    """An in-process dashboard's scatter figure rendered now, (H, W, 4) RGBA: what the browser should show."""
    buf = io.BytesIO()
    app._scatter_fig.savefig(buf, format="rgba", dpi=app._scatter_fig.dpi)
    w, h = (int(round(v)) for v in app._scatter_fig.bbox.size)
    return np.frombuffer(buf.getvalue(), np.uint8).reshape(h, w, 4)


def assert_drawn(shown, expected, what: str, name: str) -> None:
    """The browser's scatter pixels equal the figure's. They go to outputs/browser/<name>.png, and when they differ
    the figure to <name>_expected.png."""
    Image.fromarray(shown).save(screenshots_dir() / f"{name}.png")
    if shown.shape == expected.shape and np.array_equal(shown, expected):
        return
    Image.fromarray(expected).save(screenshots_dir() / f"{name}_expected.png")
    differ = (shown != expected).any(axis=-1).mean() if shown.shape == expected.shape else 1.0
    raise AssertionError(f"{what}: the scatter the browser shows is not the figure ({shown.shape} vs "
                         f"{expected.shape}, {100 * differ:.1f} % of the pixels differ; see outputs/browser/{name}*.png)")


def wait_drawn(page, expected, what: str, name: str, timeout_s: float = 30) -> None:
    """Wait until the browser's scatter shows `expected`."""
    deadline = time.monotonic() + timeout_s
    shown = drawn_scatter(page)
    while not (shown.shape == expected.shape and np.array_equal(shown, expected)) and time.monotonic() < deadline:
        time.sleep(0.25)
        shown = drawn_scatter(page)
    assert_drawn(shown, expected, f"{what} (after {timeout_s:.0f} s)", name)


def picked_text(page, selector: str) -> str:
    """The text of a select's picked option (ipywidgets writes spaces as no-break spaces)."""
    return page.locator(selector).evaluate(
        "s => s.selectedIndex < 0 ? '' : s.options[s.selectedIndex].text").replace("\xa0", " ")


def pick_by_text(page, selector: str, text: str) -> None:
    texts = [t.replace("\xa0", " ") for t in page.locator(f"{selector} option").all_inner_texts()]
    assert text in texts, (text, texts)
    page.locator(selector).select_option(index=texts.index(text))


def test_dashboard_notebook_renders_and_follows_selections(lab, browser):
    """Every selection reaches every view as drawn: the scatter's pixels are compared with the figure an in-process
    dashboard on the same runs draws for the same selection (the kernel's figure is not reachable from here)."""
    base, token, project = lab
    smoke_copy("07_ablation_dashboard.ipynb", project / "notebooks")
    from workbench.dashboard import Dashboard

    page = open_and_run_all(browser, base, token, "07_ablation_dashboard.ipynb")
    shots = screenshots_dir()
    try:
        summary = page.locator(".wb-summary")
        summary.get_by_text("is better than").wait_for(timeout=180_000)
        wait_until_done(page)
        page.locator("img.wb-detail").wait_for()
        page.locator(".wb-dashboard").scroll_into_view_if_needed()
        before = summary.inner_text()
        n = int(re.search(r"on (\d+) of (\d+) queries", before).group(2))

        # the same dashboard in process, on the notebook's runs: the pickers name runs by what sets them apart
        ref = Dashboard(project / "runs")
        name_of = {label: name for name, label in ref.labels.items()}
        label_a, label_b = picked_text(page, ".wb-run-a select"), picked_text(page, ".wb-run-b select")
        assert (label_a, label_b) == ("loss.triplet=wrt", "loss.triplet=hard")
        ref.run_a.value, ref.run_b.value = name_of[label_a], name_of[label_b]
        assert picked_text(page, ".wb-query select") == ref.query.label
        first = figure_pixels(ref)
        wait_drawn(page, first, "the first frame", "dashboard_07_scatter_first")
        page.screenshot(path=str(shots / "dashboard_07.png"), full_page=False)

        # (a) with "show CAMs" on, a click on the point farthest from the ringed one: the list, the ranked lists and
        # the ring follow, and the ring has moved by the time the (slowest) CAM panel arrives
        page.locator("button.wb-show-cams").click()
        page.locator("img.wb-cams").wait_for(state="visible", timeout=120_000)
        page.evaluate("""sel => { window.__scatterAtCams = null;  // what the scatter shows when the CAM panel changes
            new MutationObserver(() => { if (window.__scatterAtCams === null)
                window.__scatterAtCams = document.querySelector(sel).toDataURL('image/png'); })
            .observe(document.querySelector('img.wb-cams'), {attributes: true, attributeFilter: ['src']}); }""",
                      SCATTER)
        pq = ref.comparison.per_query
        old = int(ref.query.value)
        xy = {int(s): ref._scatter_ax.transData.transform((a, b))  # figure pixels, from the bottom left
              for s, a, b in zip(pq["sample"], pq["AP_a"], pq["AP_b"])}
        target = max(xy, key=lambda s: np.hypot(*(xy[s] - xy[old])))
        row = pq[pq["sample"] == target].iloc[0]
        expected = ref.nearest_query(row.AP_a, row.AP_b)  # a point at the same place may win the tie
        canvas = page.locator(SCATTER).last
        box = canvas.bounding_box()
        scale = box["width"] / first.shape[1]
        canvas.click(position={"x": xy[target][0] * scale, "y": (first.shape[0] - xy[target][1]) * scale})
        page.locator(".wb-detail-text").get_by_text(f"query {expected}:").wait_for(timeout=30_000)
        assert re.search(rf"query {expected}\b", picked_text(page, ".wb-query select"))  # the list follows the click
        page.wait_for_function("() => window.__scatterAtCams !== null", timeout=120_000)
        ref.query.value = expected
        assert_drawn(data_url_pixels(page.evaluate("window.__scatterAtCams")), figure_pixels(ref),
                     "when the clicked query's CAM panel arrived", "dashboard_07_scatter_click")
        page.locator(".wb-dashboard").screenshot(path=str(shots / "dashboard_07_after_click.png"))
        page.locator("button.wb-show-cams").click()
        page.locator("img.wb-cams").wait_for(state="hidden")

        # (b) another query from the list: the ranked-list image, its caption and the ring change
        img = page.locator("img.wb-detail")
        src, caption = img.get_attribute("src"), page.locator(".wb-detail-text").inner_text()
        assert page.locator(".wb-query select option").count() == n
        page.locator(".wb-query select").select_option(index=n - 1)
        page.wait_for_function("([sel, old]) => document.querySelector(sel).innerText !== old",
                               arg=[".wb-detail-text", caption])  # the caption is updated after the image
        assert img.get_attribute("src") != src
        ref.query.value = ref.query.options[n - 1][1]
        assert f"query {ref.query.value}:" in page.locator(".wb-detail-text").inner_text()
        wait_drawn(page, figure_pixels(ref), "a query picked from the list", "dashboard_07_scatter_list")

        # (c) B := A: the same run, nothing to compare, and no comparison is drawn
        pick_by_text(page, ".wb-run-b select", label_a)
        summary.get_by_text("A and B are the same run").wait_for()
        assert "better" not in summary.inner_text()
        page.wait_for_function("() => !document.querySelector('.wb-query select option') && "
                               "document.querySelector('.wb-detail-text').innerText.trim() === ''")
        ref.run_b.value = ref.run_a.value
        wait_drawn(page, figure_pixels(ref), "B := A", "dashboard_07_scatter_same_run")

        # (d) A := the other run: B against A again, mirrored; the new counts and run labels are drawn
        pick_by_text(page, ".wb-run-a select", label_b)
        summary.get_by_text("is better than").wait_for()
        ref.run_a.value = name_of[label_b]
        c = ref.comparison
        assert f"on {c.n_better} of {n} queries, worse on {c.n_worse}" in summary.inner_text()
        now = figure_pixels(ref)
        wait_drawn(page, now, "A := the other run", "dashboard_07_scatter_swapped")
        title = slice(0, int(first.shape[0] - ref._scatter_ax.bbox.y1))  # the rows above the axes
        assert (now[title] != first[title]).any(), "the title's counts should have changed"

        # fewer runs in the table: a row (and its numbers) leaves the table
        table = page.locator(".wb-table")
        rows_before = table.locator("tbody tr").count()
        page.locator(".wb-runs select").select_option(index=0)
        page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length === n",
                               arg=[".wb-table tbody tr", 1])
        assert rows_before >= 2
        page.locator(".wb-dashboard").screenshot(path=str(shots / "dashboard_07_after_selection.png"))

        # records are hidden: no raw record text anywhere on the page
        assert "WORKBENCH_RECORD" not in page.locator(".jp-Notebook").inner_text()
        assert list((project / "outputs" / "figures").glob("*.png")), "figures did not land in the project outputs"
        assert not (project / "notebooks" / "runs").exists() and not (project / "notebooks" / "outputs").exists()
    except Exception:
        page.screenshot(path=str(shots / "dashboard_07_failure.png"), full_page=True)
        if page.locator(".wb-dashboard").count():
            (shots / "dashboard_07_failure.html").write_text(page.locator(".wb-dashboard").inner_html())
            page.locator(".wb-dashboard").screenshot(path=str(shots / "dashboard_07_failure_widget.png"))
        raise
    finally:
        page.close()


def test_framework_notebook_in_jupyterlab_reuses_runs_trained_at_the_root(lab, browser):
    """Notebook 02's two baselines already exist at the project root (as `make demo` leaves them); opened in
    JupyterLab, whose kernel starts in notebooks/, the notebook finds and reuses them."""
    from workbench.config import get_config
    from workbench.train import fit

    base, token, project = lab
    smoke_copy("02_baselines.ipynb", project / "notebooks")
    for dataset in ("synthetic-vi", "synthetic-rgbnt"):  # the recipes notebook 02 trains with SMOKE = True
        cfg = get_config("baseline", dataset, "smoke").override(**{"run.out_dir": str(project / "runs"), "run.seed": 0})
        fit(cfg, progress=False)
    trained = sorted(p.name for p in (project / "runs").iterdir())

    page = open_and_run_all(browser, base, token, "02_baselines.ipynb")
    try:
        wait_until_done(page)
        text = page.locator(".jp-NotebookPanel:visible .jp-Notebook").inner_text()
        # both baselines, and both again where the notebook sets random weights next to the stand-in (with
        # SMOKE = True both starts are random, so the second pair is the same two runs)
        assert text.count("reusing finished run") == 4, text[-3000:]
        page.screenshot(path=str(screenshots_dir() / "reuse_02.png"))
    finally:
        page.close()
    assert sorted(p.name for p in (project / "runs").iterdir()) == trained  # nothing retrained
    assert not (project / "notebooks" / "runs").exists()
