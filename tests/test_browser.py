"""JupyterLab in a real browser, as a new user meets it: notebook 07's dashboard renders and follows selections, and a
framework notebook opened after its runs exist reuses them instead of training again.

JupyterLab runs on 127.0.0.1 with a token; headless Chromium (Debian's `chromium` package: the registry's Playwright
cannot download its own browser here) is driven by Playwright. The kernel starts in `<project>/notebooks/` as it
does under `make lab`; `WORKBENCH_HOME` points the project at a temporary copy so the test leaves the repository's
runs alone. Screenshots go to `outputs/browser/`. Skipped only when no Chromium executable is found.
"""

from __future__ import annotations

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

import pytest

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


def test_dashboard_notebook_renders_and_follows_selections(lab, browser):
    base, token, project = lab
    smoke_copy("07_ablation_dashboard.ipynb", project / "notebooks")
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    page = open_and_run_all(browser, base, token, "07_ablation_dashboard.ipynb")
    shots = screenshots_dir()
    try:
        summary = page.locator(".wb-summary")
        summary.get_by_text("is better than").wait_for(timeout=180_000)
        wait_until_done(page)
        page.locator("img.wb-detail").wait_for()
        page.locator(".wb-dashboard").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "dashboard_07.png"), full_page=False)
        before = summary.inner_text()
        n = int(re.search(r"on (\d+) of (\d+) queries", before).group(2))

        # a click on the scatter (an ipympl canvas) selects the query nearest to it: list and ranked lists follow
        canvas = page.locator(".wb-scatter canvas").last
        canvas.wait_for()
        box = canvas.bounding_box()
        caption = page.locator(".wb-detail-text").inner_text()
        for fx, fy in ((0.55, 0.45), (0.3, 0.7), (0.75, 0.3)):  # one of them lands nearer another query's point
            canvas.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
            try:
                page.wait_for_function("([sel, old]) => document.querySelector(sel).innerText !== old",
                                       arg=[".wb-detail-text", caption], timeout=15_000)
                break
            except PlaywrightTimeoutError:
                continue
        else:
            raise AssertionError("clicking the scatter did not select another query")
        picked = page.locator(".wb-query select").evaluate(
            "s => s.selectedIndex < 0 ? '' : s.options[s.selectedIndex].text").replace("\xa0", " ")  # ipywidgets' nbsp
        shown = re.search(r"query (\d+)", page.locator(".wb-detail-text").inner_text())
        assert shown, page.locator(".wb-detail-text").inner_text()
        assert re.search(rf"query {shown.group(1)}\b", picked), (picked, shown.group(0))  # the list follows the click
        page.locator(".wb-dashboard").screenshot(path=str(shots / "dashboard_07_after_click.png"))

        # another run: B := A, every query tied, the numbers in the summary change
        run_a = page.locator(".wb-run-a select").input_value()
        page.locator(".wb-run-b select").select_option(value=run_a)
        page.wait_for_function(
            "([sel, old]) => document.querySelector(sel).innerText !== old", arg=[".wb-summary", before])
        after = summary.inner_text()
        assert f"on 0 of {n} queries, worse on 0, tied on {n}" in after, after

        # another query: the ranked-list image and its caption change
        img = page.locator("img.wb-detail")
        src, caption = img.get_attribute("src"), page.locator(".wb-detail-text").inner_text()
        options = page.locator(".wb-query select option")
        assert options.count() == n
        page.locator(".wb-query select").select_option(index=n - 1)
        page.wait_for_function("([sel, old]) => document.querySelector(sel).innerText !== old",
                               arg=[".wb-detail-text", caption])  # the caption is updated after the image
        assert img.get_attribute("src") != src

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
