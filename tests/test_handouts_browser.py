"""The handouts in the browser the suite already drives (Debian's Chromium through Playwright, as in
tests/test_browser.py): the index opens from disk (file://, as a reader opens a copied folder), every link leads to
a page that loads with all its images and formulas, nothing is requested from anywhere but that folder, no request
fails, the console stays free of errors and warnings, and the code toggles work. Screenshots of the index and of
one handout go to `outputs/browser/`.

Pages: notebooks 01 and 02 executed at smoke scale (the same executions as tests/test_notebooks.py), and the small
notebook of tests/test_handouts.py, which has formulas and a widget snapshot.
"""

from __future__ import annotations

import json

import pytest
import test_browser
from test_browser import CHROMIUM, REQUIRED, screenshots_dir
from test_handouts import small_notebook

browser = test_browser.browser  # its headless Chromium fixture (one per module)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None and not REQUIRED,
                       reason="no chromium executable on PATH (Debian: apt-get install chromium; "
                              "or set CHROMIUM=/path/to/chrome)"),
]

NOTEBOOKS = ("01_data_tour", "02_baselines")


@pytest.fixture(scope="module")
def handout_folder(executed_notebook, tmp_path_factory):
    from workbench.handouts import build_handouts

    if CHROMIUM is None:
        pytest.fail("WORKBENCH_REQUIRE_BROWSER is set but no chromium executable was found (apt-get install chromium)")
    work = tmp_path_factory.mktemp("handouts-browser")
    executed = [executed_notebook(stem)[0] / "notebooks" / f"{stem}.ipynb" for stem in NOTEBOOKS]
    small = work / "09_small.ipynb"
    small.write_text(json.dumps(small_notebook(work / "runs")))
    build_handouts(executed + [small], work / "handouts", reader=True)
    return work / "handouts"


def watch(page) -> tuple[list[str], list[str]]:
    """(problems, requested urls) of a page: console errors and warnings, uncaught exceptions, failed requests."""
    problems, requested = [], []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:120]} ({r.failure})"))
    page.on("request", lambda r: requested.append(r.url))
    return problems, requested


def check_loaded(page, folder) -> None:
    """Every image decoded with a size, every formula drawn with a size, every header link to a file that exists."""
    images = page.evaluate("() => Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
    assert all(done and width > 0 for done, width, _ in images), [i for i in images if not (i[0] and i[1] > 0)]
    formulas = page.evaluate("() => Array.from(document.querySelectorAll('svg.wb-math'))"
                             ".map(s => s.getBoundingClientRect()).map(r => [r.width, r.height])")
    assert all(w > 0 and h > 0 for w, h in formulas), formulas
    for href in page.locator("header.wb-header nav a").evaluate_all("as => as.map(a => a.getAttribute('href'))"):
        assert (folder / href).is_file(), href


def test_index_and_every_handout_load_offline(handout_folder, browser):
    folder = handout_folder
    shots = screenshots_dir()
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.set_default_timeout(60_000)
    problems, requested = watch(page)
    index = (folder / "index.html").as_uri()
    try:
        page.goto(index)
        hrefs = page.locator("a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        stems = (*NOTEBOOKS, "09_small")
        assert hrefs == [f"{s}{kind}.html" for s in stems for kind in ("", ".reader")]
        assert page.locator("tbody tr").count() == len(stems)
        page.screenshot(path=str(shots / "handouts_index.png"), full_page=True)
        counts = {}
        for href in hrefs:  # follow each link as a reader does, from the index
            page.goto(index)
            page.locator(f'a[href="{href}"]').click()
            page.wait_for_load_state("load")
            assert page.url == (folder / href).as_uri()
            check_loaded(page, folder)
            counts[href] = page.evaluate("() => document.images.length")
            assert page.locator("#wb-provenance").is_visible()
        for stem in NOTEBOOKS:  # every figure also in the reader's copy; the small one has a widget image more
            assert counts[f"{stem}.html"] == counts[f"{stem}.reader.html"] > 0
        assert (counts["09_small.html"], counts["09_small.reader.html"]) == (2, 1)

        page.goto((folder / "02_baselines.html").as_uri())
        page.screenshot(path=str(shots / "handouts_02_baselines.png"))
        opened = "() => document.querySelectorAll('details.wb-code[open]').length"
        total = page.locator("details.wb-code").count()
        assert page.evaluate(opened) == 2 < total  # the parameters cell and the injected one
        page.get_by_role("button", name="show all code").click()
        assert page.evaluate(opened) == total
        page.get_by_role("button", name="fold all code").click()
        assert page.evaluate(opened) == 0
        page.goto((folder / "09_small.html").as_uri())
        page.locator("svg.wb-math").first.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "handouts_formulas_widget.png"))
    except Exception:
        page.screenshot(path=str(shots / "handouts_failure.png"), full_page=True)
        raise
    finally:
        page.close()
    assert not problems, problems
    assert requested and all(u.startswith(("file://", "data:")) for u in requested), \
        [u for u in requested if not u.startswith(("file://", "data:"))][:5]
    assert all(u.startswith(folder.as_uri()) for u in requested if u.startswith("file://"))
