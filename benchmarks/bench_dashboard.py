"""Dashboard responsiveness: start time on a runs folder, and time from a selection change to the updated view, in
process and in a real browser (JupyterLab + headless Chromium through Playwright).

    python benchmarks/bench_dashboard.py                       # three smoke runs with ~500 queries, built once
    python benchmarks/bench_dashboard.py --runs runs           # start time on an existing runs folder (make demo)
    python benchmarks/bench_dashboard.py --no-browser          # in-process timings only

"Updated view" in the browser: after run B changes (between the two runs that are not A), the summary, the
scatter's pixels and the ranked-list caption have all changed; after a query changes, the ranked-list caption (the
scatter's frame is sent before it). Changes of run need three runs. Timings are medians over --repeats changes. In process only, with "show CAMs" on:
the first CAM panel (loading both models), then per query change the list and the CAM panel separately.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_runs(root: Path, ids: int) -> list[str]:
    """Three smoke baselines on synthetic-vi with `ids` identities (320: about 500 queries) differing in the triplet
    loss; reused when already there."""
    from workbench.config import get_config
    from workbench.train import fit

    base = get_config("baseline", "synthetic-vi", "smoke")
    base = base.override(**{"run.out_dir": str(root), "data.options": {**base.data.options, "ids": ids}})
    return [fit(base.override(**{"loss.triplet": t}), reuse=True, progress=False).name for t in ("wrt", "hard", "soft")]


def in_process(root: Path, repeats: int) -> dict[str, float]:
    from workbench.dashboard import Dashboard

    starts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        app = Dashboard(root)
        starts.append(time.perf_counter() - t0)
    names = [name for _, name in app.run_a.options]
    if len(names) < 3:
        return {"start_s": statistics.median(starts)}
    app.run_a.value, app.run_b.value = names[0], names[1]
    change, query = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        app.run_b.value = names[2 - i % 2]  # B against A, B alternating between the two other runs
        change.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        app.query.value = app.query.options[(i + 1) % len(app.query.options)][1]
        query.append(time.perf_counter() - t0)
    # "show CAMs" on: the first panel loads both runs' models; then each query change redraws the list first
    # (timings["detail"]) and the CAM panel after it (timings["cams"])
    app.show_cams.value = True
    cam_first = app.timings["cams"]
    cam_list, cam_panel = [], []
    for i in range(repeats):
        app.query.value = app.query.options[(i + 2) % len(app.query.options)][1]
        cam_list.append(app.timings["detail"])
        cam_panel.append(app.timings["cams"])
    return {"start_s": statistics.median(starts), "run_change_s": statistics.median(change),
            "query_change_s": statistics.median(query), "queries": app.comparison.n_queries if app.comparison else 0,
            "cams_first_panel_s": cam_first, "cams_on_list_s": statistics.median(cam_list),
            "cams_on_panel_s": statistics.median(cam_panel)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_browser(root: Path, repeats: int, chromium: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    project = Path(tempfile.mkdtemp(prefix="bench-lab-")).resolve()
    (project / "notebooks").mkdir()
    cells = [f"from workbench import dashboard\nRUNS = {str(root)!r}",
             "app = dashboard.Dashboard(RUNS)\napp", "app.timings"]
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                     "source": src} for i, src in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (project / "notebooks" / "bench.ipynb").write_text(json.dumps(nb))
    settings = project / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "WORKBENCH_HOME": str(project), "JUPYTERLAB_SETTINGS_DIR": str(project / ".settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(project / ".ws"), "JUPYTER_RUNTIME_DIR": str(project / ".rt"),
           "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={project}", "--LabApp.news_url="]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)
            page.goto(f"{base}/lab/tree/notebooks/bench.ipynb?reset&token={token}")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            t0 = time.perf_counter()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            page.locator(".wb-detail-text").get_by_text("top-").first.wait_for()
            start_with_kernel = time.perf_counter() - t0
            page.locator(".jp-OutputArea-output", has_text="'start'").wait_for()
            if page.locator(".wb-run-b select option").count() < 3:
                browser.close()
                return {"browser_start_incl_kernel_s": start_with_kernel}
            page.locator(".wb-run-a select").select_option(index=0)
            page.locator(".wb-run-b select").select_option(index=1)
            page.locator(".wb-summary").get_by_text("is better than").wait_for()
            changed = ("([s, c, px]) => document.querySelector('.wb-summary').innerText !== s && "
                       "document.querySelector('.wb-detail-text').innerText !== c && "
                       "document.querySelector('.wb-scatter canvas').toDataURL() !== px")
            change, query = [], []
            for i in range(repeats):
                caption = page.locator(".wb-detail-text").inner_text()
                summary = page.locator(".wb-summary").inner_text()
                pixels = page.locator(".wb-scatter canvas").first.evaluate("c => c.toDataURL()")
                t0 = time.perf_counter()
                page.locator(".wb-run-b select").select_option(index=2 - i % 2)
                page.wait_for_function(changed, arg=[summary, caption, pixels], polling=20)
                change.append(time.perf_counter() - t0)
                caption = page.locator(".wb-detail-text").inner_text()
                t0 = time.perf_counter()
                page.locator(".wb-query select").select_option(index=(2 * i + 3) % 50)
                page.wait_for_function("c => document.querySelector('.wb-detail-text').innerText !== c",
                                       arg=caption, polling=20)  # the ring may not move: queries can share a point
                query.append(time.perf_counter() - t0)
            out_dir = REPO / "outputs" / "browser"
            out_dir.mkdir(parents=True, exist_ok=True)
            page.locator(".wb-dashboard").screenshot(path=str(out_dir / "bench_dashboard.png"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(project, ignore_errors=True)
    return {"browser_start_incl_kernel_s": start_with_kernel, "browser_run_change_s": statistics.median(change),
            "browser_query_change_s": statistics.median(query)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=None, help="an existing runs folder (default: build three ~500-query runs)")
    parser.add_argument("--ids", type=int, default=320, help="synthetic identities of the built runs (320: ~500 queries)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    if args.runs:
        root = Path(args.runs).resolve()
    else:
        root = Path(tempfile.gettempdir()) / f"bench-dashboard-{args.ids}ids" / "runs"
        print("runs:", build_runs(root, args.ids), flush=True)
    results = {"runs_dir": str(root), **in_process(root, args.repeats)}
    print(json.dumps(results, indent=1), flush=True)
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not args.no_browser:
        if chromium is None:
            print("no chromium executable: browser timings skipped")
        else:
            results.update(in_browser(root, args.repeats, chromium))
            print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
