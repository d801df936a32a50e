"""Handouts: each executed notebook as one self-contained HTML page (figures inline, nothing fetched, code folded,
parameters and provenance shown), its reader's copy without code, and the index.

The first tests build pages from a small notebook written here (every kind of output the workbench produces);
the last builds them from notebooks 01 and 02 executed at smoke scale (shared with tests/test_notebooks.py).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from PIL import Image

from workbench import handouts
from workbench.notebooks import list_notebooks, read_records
from workbench.utils import RECORD_MIME

REPO = Path(__file__).resolve().parent.parent
WIDGET_VIEW, WIDGET_STATE = handouts.WIDGET_VIEW, handouts.WIDGET_STATE


class Page(HTMLParser):
    """Every start tag of a page with its attributes, and the page's text without tags."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.chunks: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.chunks.append(data)

    def all(self, tag: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag]

    def with_class(self, name: str) -> list[dict]:
        return [a for _, a in self.tags if name in a.get("class", "").split()]

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def png_base64(width: int = 6, height: int = 4, color=(200, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def check_self_contained(text: str) -> Page:
    """No resource is fetched: scripts inline, no stylesheet link, no remote url() or @import, every <img> an inline
    PNG that decodes. Returns the parsed page."""
    page = Page(text)
    assert not [s for s in page.all("script") if s.get("src")], "a script is loaded from a file or the network"
    assert not [ln for ln in page.all("link") if ln.get("href")], "a stylesheet or other resource is linked"
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text) and "@import" not in text
    for tag, attrs in page.tags:
        if "src" in attrs:
            assert attrs["src"].startswith("data:"), (tag, attrs["src"][:80])
    for img in page.all("img"):
        assert img["src"].startswith("data:image/png;base64,"), img["src"][:60]
        decoded = Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1])))
        decoded.verify()
        assert decoded.format == "PNG"
    return page


def between(text: str, start: str, end: str) -> list[str]:
    """The plain text of every stretch of `text` from `start` to the next `end`."""
    return [html.unescape(re.sub(r"<[^>]+>", "", m)) for m in re.findall(re.escape(start) + "(.*?)" + re.escape(end),
                                                                        text, flags=re.S)]


# ------------------------------------------------------------------------------------------ a notebook written here

def widget(name: str, state: dict, **extra) -> dict:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
            "state": state, **extra}


def view(model_id: str, plain: str) -> dict:
    return nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": model_id, "version_major": 2,
                                                                      "version_minor": 0}, "text/plain": plain})


def small_notebook(runs: Path | None = None) -> dict:
    """An executed notebook with one of each kind of output: a figure with its savefig path and a warning, printed
    findings with records, a dashboard-like widget, a progress bar, a silent cell, a plain-text finding."""
    v4 = nbformat.v4
    plot = png_base64()
    cells = [
        v4.new_markdown_cell("# 09 · A small handout\n\nInline $x_v + \\tfrac1B$ and display\n\n"
                             "$$L = \\sum_i \\big(a_i - b_i\\big)^2$$"),
        v4.new_code_cell('SMOKE = False    # the test suite sets this\nPROFILE = "cpu-demo"\n'
                         'RUN_A, RUN_B = "only_kd", "full"\nSTEPS = 2 * 3', metadata={"tags": ["parameters"]}),
        v4.new_code_cell(f"# Parameters\nSMOKE = True\nRUNS_DIR = {str(runs)!r}\n",
                         metadata={"tags": ["injected-parameters"]}),
        v4.new_code_cell("fig = draw_the_curves()  # unique_code_token", outputs=[
            v4.new_output("execute_result", data={"text/plain": "PosixPath('figures/curves.png')"}, execution_count=3),
            v4.new_output("display_data", data={"image/png": plot, "text/plain": "<Figure size 640x480>"}),
            v4.new_output("stream", name="stderr", text="UserWarning: a warning on stderr\n")]),
        v4.new_code_cell("report()", outputs=[
            v4.new_output("stream", name="stdout",
                          text='finding: mAP rose by 0.05 with run-10\nWORKBENCH_RECORD {"old": 1}\n'),
            v4.new_output("display_data", data={RECORD_MIME: {"acc": 0.123456}}, metadata={})]),
        v4.new_code_cell("app = Dashboard()", outputs=[view("box", "VBox(children=(HTML(value='junk repr')")]),
        v4.new_code_cell("for step in tqdm(range(3)): pass", outputs=[view("bar", "0%|          | 0/3")]),
        v4.new_code_cell("x = 1"),
        v4.new_code_cell("changes", outputs=[
            v4.new_output("execute_result", data={"text/plain": "{'improved': 3, 'worse': 1}"}, execution_count=8)]),
    ]
    state = {
        "box": widget("VBoxModel", {"children": ["IPY_MODEL_html", "IPY_MODEL_pick", "IPY_MODEL_img",
                                                 "IPY_MODEL_canvas", "IPY_MODEL_empty"]}),
        "html": widget("HTMLModel", {"value": "<b>B is better than A on 13 of 25 queries</b>", "description": ""}),
        "pick": widget("DropdownModel", {"_options_labels": ["only_kd", "full"], "index": 1, "description": "run B"}),
        "img": widget("ImageModel", {"format": "png"},
                      buffers=[{"path": ["value"], "encoding": "base64", "data": png_base64(3, 3, (0, 0, 255))}]),
        "empty": widget("ImageModel", {"format": "png"}, buffers=[{"path": ["value"], "encoding": "base64",
                                                                  "data": ""}]),
        "canvas": {"model_name": "MPLCanvasModel", "model_module": "jupyter-matplotlib", "state": {}},
        "bar": widget("HBoxModel", {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}),
        "l": widget("HTMLModel", {"value": "epoch 1/2: 67%"}),
        "p": widget("FloatProgressModel", {"value": 3.0, "max": 3.0, "min": 0.0}),
        "r": widget("HTMLModel", {"value": "2/3 [00:00<00:00]"}),
    }
    nb = v4.new_notebook(cells=cells)
    nb.metadata.update({
        "papermill": {"parameters": {"SMOKE": True, "RUNS_DIR": str(runs)}, "end_time": "2026-01-31T15:05:00+02:00",
                      "duration": 12.3, "exception": None},
        "workbench": {"provenance": {"git_commit": "abcdef1234567890", "git_dirty": True, "cuda": None}},
        "widgets": {WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}})
    return json.loads(json.dumps(nb))


@pytest.fixture
def small(tmp_path):
    runs = tmp_path / "runs"
    for name in ("run-1", "run-10", "other"):
        (runs / name).mkdir(parents=True)
    return small_notebook(runs)


def test_tex_rewrites_into_mathtext():
    assert handouts.normalise_tex(r"\tfrac1B\big(x\Bigr)\mathrel{+}=\operatorname{sg}(y)") == (
        r"\frac{1}{B}(x)+=\mathrm{sg}(y)")
    assert handouts.normalise_tex("a +\n  b") == "a + b"
    assert handouts.normalise_tex(r"\frac{1}{|Y|}\bigcup") == r"\frac{1}{|Y|}\bigcup"  # \big is not a prefix of it


def test_formula_draws_as_svg_or_stays_readable_tex():
    inline = handouts.math_html(r"L_{mem}(M, \hat f, y)")
    assert inline.startswith("<svg") and "vertical-align:-" in inline  # sits on the baseline, the descent below
    assert 'aria-label="L_{mem}(M, \\hat f, y)"' in inline and re.search(r' d="M[-\d. ]+', inline)
    display = handouts.math_html(r"\sum_i a_i", display=True)
    assert display.startswith('<span class="wb-math-display"><svg') and "vertical-align" not in display
    wide = handouts.tex_to_svg(r"a + b + c + d + e")
    narrow = handouts.tex_to_svg(r"a")
    width = lambda svg: float(re.search(r"width:([\d.]+)em", svg).group(1))  # noqa: E731
    assert width(wide) > 4 * width(narrow)
    fallback = handouts.math_html(r"\begin{cases} a & b \end{cases}")  # no environments in mathtext
    assert fallback == ('<code class="wb-tex" title="formula (TeX source)">$\\begin{cases} a &amp; b '
                        '\\end{cases}$</code>')


def test_every_formula_in_the_notebooks_draws():
    """Each `$...$` / `$$...$$` of every notebook's markdown becomes one SVG; none falls back to TeX source."""
    spans = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", flags=re.S)
    found = drawn = 0
    for notebook in list_notebooks():
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                source = "".join(cell["source"])
                out = handouts.render_markdown(source)
                assert "wb-tex" not in out, (notebook.name, re.findall(r'<code class="wb-tex"[^>]*>(.*?)</code>', out))
                found += len(spans.findall(source))
                drawn += out.count('<svg xmlns="http://www.w3.org/2000/svg" class="wb-math"')
    assert drawn == found > 0


def test_provenance_from_papermill_and_the_runner_stamp(small):
    prov = handouts.provenance(small, "09_small")
    runs = small["metadata"]["papermill"]["parameters"]["RUNS_DIR"]
    assert prov == handouts.Provenance(
        title="09 · A small handout", executed="2026-01-31 13:05 UTC", duration_s=12.3, commit="abcdef1234567890",
        dirty=True, profile="smoke", device="CPU",
        parameters={"SMOKE": "True", "PROFILE": "'cpu-demo'", "RUN_A": "'only_kd'", "RUN_B": "'full'",
                    "STEPS": "2 * 3", "RUNS_DIR": repr(runs)},
        runs=("run-10",), failed=False)  # run-1 is a prefix of run-10, not named
    assert prov.commit_text == "abcdef1234 + uncommitted changes"
    del small["metadata"]["papermill"]["parameters"]["SMOKE"]
    assert handouts.provenance(small).profile == "cpu-demo"  # the PROFILE parameter
    small["metadata"].pop("workbench")
    bare = handouts.provenance(small)
    assert (bare.commit_text, bare.device) == ("not recorded", "unknown")


def test_headline_numbers_are_the_scalars_to_three_digits():
    records = {"acc": 0.123456, "n": 12345, "big": 12345.678, "ok": True, "per_trial": [1, 2], "name": "x",
               "tiny": 4.5e-05, "neg": -0.0063238}
    assert handouts.headline_numbers(records) == [("acc", "0.123"), ("n", "12345"), ("big", "1.23e+04"),
                                                  ("tiny", "4.5e-05"), ("neg", "-0.00632")]


def test_full_handout(small):
    text = handouts.export_handout(small, name="09_small", other="09_small.reader.html")
    page = check_self_contained(text)
    # figures: the plot and the dashboard's image (from the widget's saved buffer), nothing for an empty image
    assert len(page.all("img")) == 2
    # formulas drawn, no MathJax
    assert text.count('class="wb-math"') == 2 and "mathjax" not in text.lower()
    # code folded, the first line as summary; the two parameter cells open
    assert len(page.all("details")) == 8
    params = between(text, '<details class="wb-code wb-parameters" open="">', "</details>")
    assert len(params) == 2
    assert "SMOKE = False" in params[0] and "STEPS = 2 * 3" in params[0] and "SMOKE = True" in params[1]
    assert "fig = draw_the_curves()  # unique_code_token" in between(text, "<summary>", "</summary>")
    # provenance header
    header = between(text, '<header class="wb-header" id="wb-provenance">', "</header>")[0]
    for fact in ("2026-01-31 13:05 UTC (12 s)", "abcdef1234 + uncommitted changes", "smoke", "CPU", "run-10",
                 "RUN_A = 'only_kd'", "09_small.ipynb"):
        assert fact in header, fact
    assert {a["href"] for a in page.all("a") if not a["href"].startswith("#")} == {"index.html",
                                                                                    "09_small.reader.html"}
    # widgets: the static snapshot, no widget manager, no repr; the progress bar left out
    assert "B is better than A on 13 of 25 queries" in text and "<b>full</b>" in text
    assert "matplotlib canvas: drawn live in JupyterLab" in text
    assert "junk repr" not in text and "<progress" not in text and "epoch 1/2" not in text
    assert WIDGET_STATE not in text and WIDGET_VIEW not in text
    # records invisible, the rest of the printed text kept; stderr kept in the full copy
    assert "WORKBENCH_RECORD" not in text and RECORD_MIME not in text and "0.123456" not in text
    assert "finding: mAP rose by 0.05" in page.text and "a warning on stderr" in page.text
    assert "PosixPath('figures/curves.png')" in page.text
    # the toggle buttons
    assert {b["data-wb-code"] for b in page.all("button")} == {"open", "closed"}


def test_readers_copy_has_no_code(small):
    text = handouts.export_handout(small, name="09_small", reader=True, other="09_small.html")
    page = check_self_contained(text)
    assert "unique_code_token" not in text and "draw_the_curves" not in text and "RUN_A, RUN_B" not in text
    assert not page.all("details") and not page.with_class("jp-InputArea-editor") and not page.all("button")
    assert len(page.all("img")) == 1  # the figure; widgets are interactive and left out
    assert "A small handout" in page.text and text.count('class="wb-math"') == 2
    assert "finding: mAP rose by 0.05" in page.text and "{'improved': 3, 'worse': 1}" in page.text
    assert "a warning on stderr" not in page.text  # stderr
    assert "PosixPath" not in page.text  # a plain-text result beside a figure: its handle
    assert "B is better than A" not in text and "0.123456" not in text
    assert "RUN_A = 'only_kd'" in page.text  # the parameters as run, in the header
    assert {a["href"] for a in page.all("a") if not a["href"].startswith("#")} == {"index.html", "09_small.html"}


def test_prepare_leaves_the_notebook_alone(small):
    before = json.dumps(small, sort_keys=True)
    handouts.prepare(small, reader=True)
    handouts.prepare(small)
    assert json.dumps(small, sort_keys=True) == before


def test_build_writes_pages_and_an_index_with_relative_links(small, tmp_path):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    (nb_dir / "09_small.ipynb").write_text(json.dumps(small))
    other = json.loads(json.dumps(small))
    other["cells"][0]["source"] = "# 10 · Another"
    other["metadata"]["papermill"]["exception"] = True
    (nb_dir / "10_other.ipynb").write_text(json.dumps(other))
    written = handouts.build_handouts(sorted(nb_dir.glob("*.ipynb")), tmp_path / "handouts", reader=True)
    assert [p.name for p in written] == ["09_small.html", "09_small.reader.html", "10_other.html",
                                         "10_other.reader.html", "index.html"]
    index = (tmp_path / "handouts" / "index.html").read_text()
    page = check_self_contained(index)
    links = [a["href"] for a in page.all("a")]
    assert links == ["09_small.html", "09_small.reader.html", "10_other.html", "10_other.reader.html"]
    assert all((tmp_path / "handouts" / href).is_file() for href in links)
    assert len(page.all("tr")) == 3 and "09 · A small handout" in page.text and "10 · Another" in page.text
    assert "(a cell failed)" in page.text and page.text.count("abcdef1234 + uncommitted changes") == 2
    assert "2026-01-31 13:05 UTC" in page.text and page.text.count("smoke") == 2
    assert page.text.count("old 1") == page.text.count("acc 0.123") == 2  # the records, read as the runner does

    without = handouts.build_handouts([nb_dir / "09_small.ipynb"], tmp_path / "plain")
    assert [p.name for p in without] == ["09_small.html", "index.html"]
    assert "reader" not in " ".join(a["href"] for a in Page((tmp_path / "plain" / "index.html").read_text()).all("a"))


def test_build_refuses_what_is_not_an_executed_notebook(tmp_path):
    with pytest.raises(ValueError, match="no executed notebooks"):
        handouts.build_handouts([], tmp_path)
    with pytest.raises(ValueError, match="missing.ipynb is missing"):
        handouts.build_handouts([tmp_path / "missing.ipynb"], tmp_path)
    (tmp_path / "broken.ipynb").write_text("{not json")
    with pytest.raises(ValueError, match="broken.ipynb is not valid JSON"):
        handouts.build_handouts([tmp_path / "broken.ipynb"], tmp_path)


def test_cli_without_executed_notebooks_says_what_to_run(tmp_path, capsys):
    from workbench.notebooks import main

    assert main(["handouts", "--out", str(tmp_path)]) == 2
    assert "run `python -m workbench.notebooks run --out" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ notebooks 01 and 02

SMOKE_NOTEBOOKS = ("01_data_tour", "02_baselines")


@pytest.fixture(scope="module")
def smoke_handouts(executed_notebook, tmp_path_factory):
    """Notebooks 01 and 02 executed with SMOKE=True, gathered as `run` leaves them, and their handouts written by
    the command line: (out folder, {stem: executed notebook})."""
    from workbench.notebooks import main

    out = tmp_path_factory.mktemp("smoke-out")
    (out / "notebooks").mkdir()
    for stem in SMOKE_NOTEBOOKS:
        root, _ = executed_notebook(stem)
        shutil.copy(root / "notebooks" / f"{stem}.ipynb", out / "notebooks")
    assert main(["handouts", "--out", str(out), "--reader"]) == 0
    return out, {stem: json.loads((out / "notebooks" / f"{stem}.ipynb").read_text()) for stem in SMOKE_NOTEBOOKS}


def git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


@pytest.mark.notebooks
def test_smoke_handouts_of_notebooks_01_and_02(smoke_handouts):
    out, executed = smoke_handouts
    folder = out / "handouts"
    index = check_self_contained((folder / "index.html").read_text())
    links = [a["href"] for a in index.all("a")]
    assert links == [f"{s}{kind}.html" for s in SMOKE_NOTEBOOKS for kind in ("", ".reader")]
    for href in links:
        assert not urlparse(href).scheme and not urlparse(href).netloc and (folder / href).is_file(), href
    commit, status = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    for stem, nb in executed.items():
        full = (folder / f"{stem}.html").read_text()
        page = check_self_contained(full)
        figures = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
        assert figures and len(page.all("img")) == figures  # every figure of the executed copy, inline
        header = between(full, '<header class="wb-header" id="wb-provenance">', "</header>")[0]
        if commit is not None:  # the commit the runner ran from, and whether tracked files differed
            assert commit[:10] in header and ("uncommitted changes" in header) == bool(status)
        assert "profile" in header and "smoke" in header and "SMOKE = True" in header
        params = between(full, '<details class="wb-code wb-parameters" open="">', "</details>")
        assert len(params) == 2 and "SMOKE = False" in params[0] and "SMOKE = True" in params[1]
        assert page.all("details") and page.with_class("jp-InputArea-editor")
        assert RECORD_MIME not in full and "WORKBENCH_RECORD" not in full
        reader = (folder / f"{stem}.reader.html").read_text()
        reader_page = check_self_contained(reader)
        assert not reader_page.with_class("jp-InputArea-editor") and not reader_page.all("details")
        assert len(reader_page.all("img")) == figures  # the reader keeps every figure
        code_lines = {ln.strip() for c in nb["cells"] if c["cell_type"] == "code" for ln in "".join(c["source"])
                      .splitlines() if len(ln.strip()) > 25 and not ln.strip().startswith("#")}
        assert code_lines and not [ln for ln in code_lines if html.escape(ln, quote=False) in reader]
        for name, value in handouts.headline_numbers(read_records(nb)):
            assert f"<code>{name}</code> {value}" in (folder / "index.html").read_text()
    runs = between((folder / "02_baselines.html").read_text(), "<dt>runs</dt><dd>", "</dd>")[0]
    assert "baseline-synthetic-vi-smoke" in runs and "baseline-synthetic-rgbnt-smoke" in runs
