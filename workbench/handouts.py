"""Reading-group handouts: each executed notebook as one self-contained HTML file, and an index of them.

    python -m workbench.notebooks handouts [--out outputs] [--reader]

Notebooks are committed without outputs, so a reader who opens one on a code host sees no figure. After
`python -m workbench.notebooks run` (`make demo`) has left executed copies in `<out>/notebooks/`, this writes
`<out>/handouts/NN_name.html` for each, with `--reader` also a reader's copy `NN_name.reader.html`, and
`<out>/handouts/index.html`: one row per notebook with its title, links, the scalars it recorded, date, commit and
profile. Links are relative; nothing in a handout is fetched from anywhere.

A handout is nbconvert's `lab` template with every block that would reach the network replaced:
* figures and images are inline `data:` URIs, the lab CSS is inlined; require.js, the widget manager and MathJax,
  which the template loads from a CDN, are left out;
* formulas are drawn ahead of time: matplotlib's mathtext turns each `$...$` / `$$...$$` of a markdown cell into an
  inline SVG path (Computer Modern glyphs, the TeX source as its title), no script needed. A formula mathtext cannot
  parse stays readable as its TeX source in a `<code>` span (`tex_to_svg` lists the rewrites it makes first);
* widgets show a static snapshot of the state the kernel left them in (`static_widget_html`: text, tables, images,
  the options chosen); what the saved state cannot show (an ipympl canvas) is named as such. Progress bars are left
  out: the engine's close when their loop ends (tqdm `leave=False`), so JupyterLab no longer shows them, and the
  state saved in mid-update can lag their last tick. The record messages (`utils.record`) are dropped: JupyterLab
  shows nothing for them either;
* code cells fold into `<details>` whose summary is the cell's first line; the parameters cell and the one
  papermill injected are open, and a header gives the run's provenance (`Provenance`).

The reader's copy (fastbook's `clean/` idea) keeps headings, prose, formulas, figures, tables, printed findings
and plain-text results; it drops code, stderr (warnings), widgets (interactive by nature: the notebooks draw the
static figure next to them) and a plain-text result sitting next to a figure in the same cell (the figure's handle:
the path `viz.savefig` returned, an Axes repr).
"""

from __future__ import annotations

import ast
import copy
import datetime as _dt
import functools
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jinja2 import DictLoader, pass_context
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

from workbench.utils import RECORD_MIME, RECORD_PREFIX, read_records, runs_dir

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")
# What a handout may show of an output, best first: no JavaScript (it would need the network or a kernel).
DISPLAY_PRIORITY = ["text/html", "text/markdown", "image/svg+xml", "image/png", "image/jpeg", "text/latex",
                    "text/plain"]
HEADLINE_VISIBLE = 8  # recorded numbers shown in an index row before the "more" fold


# ---------------------------------------------------------------------------------------------------- formulas

# mathtext is a subset of TeX; these rewrites keep the look and make the notebooks' formulas parse.
_TEX_REWRITES = (
    (re.compile(r"\\[bB]igg?[lrm]?(?![a-zA-Z])"), ""),               # \big( -> (: fixed-size delimiters
    (re.compile(r"\\[td]frac(?![a-zA-Z])"), r"\\frac"),              # \tfrac, \dfrac -> \frac
    (re.compile(r"\\frac\s*([0-9A-Za-z])\s*([0-9A-Za-z])"), r"\\frac{\1}{\2}"),  # \frac1B -> \frac{1}{B}
    (re.compile(r"\\(?:mathrel|mathbin|mathop)\{([^{}]*)\}"), r"\1"),  # \mathrel{+}= -> +=
    (re.compile(r"\\operatorname\{([^{}]*)\}"), r"\\mathrm{\1}"),
    (re.compile(r"\s*\n\s*"), " "),                                 # mathtext draws one line
)


def normalise_tex(tex: str) -> str:
    """The TeX of a formula rewritten into matplotlib's mathtext dialect (`_TEX_REWRITES`)."""
    for pattern, replacement in _TEX_REWRITES:
        tex = pattern.sub(replacement, tex)
    return tex.strip()


@functools.lru_cache(maxsize=1024)  # the full handout and the reader's copy draw the same formulas
def tex_to_svg(tex: str, *, display: bool = False, size: float = 10.0, scale: float = 1.15) -> str | None:
    """A formula as inline SVG (one filled path, sized in `em` so it follows the text), or None when matplotlib's
    mathtext cannot parse it. Inline formulas sit on the text's baseline.

    Args:
        tex: the formula without its `$` delimiters.
        display: a display formula (`$$...$$`): a centred block of its own.
        size: the font size mathtext draws at (units of the SVG's coordinates per em).
        scale: the formula's em relative to the surrounding text (Computer Modern runs small next to sans serif).
    """
    from matplotlib import rc_context
    from matplotlib.path import Path as MplPath
    from matplotlib.textpath import TextPath

    source = normalise_tex(tex)
    if not source:
        return None
    try:
        with rc_context({"mathtext.fontset": "cm"}):
            path = TextPath((0, 0), f"${source}$", size=size)
    except ValueError:  # mathtext's parse errors
        return None
    if not len(path.vertices):
        return None
    box = path.get_extents()
    pad = 0.08 * size
    x0, x1 = box.x0 - pad, box.x1 + pad
    y0, y1 = min(box.y0, -0.2 * size) - pad, max(box.y1, 0.7 * size) + pad  # room for a baseline and an x-height
    parts = []
    for vertices, code in path.iter_segments(simplify=False, curves=True):
        pts = " ".join(f"{v:.2f}" for v in (vertices.reshape(-1, 2) * [1, -1]).ravel())  # SVG: y points down
        parts.append({MplPath.MOVETO: "M", MplPath.LINETO: "L", MplPath.CURVE3: "Q", MplPath.CURVE4: "C"}.get(
            code, "Z") + ("" if code == MplPath.CLOSEPOLY else pts))
    em = scale / size
    label = html.escape(tex.strip(), quote=True)
    style = (f"width:{(x1 - x0) * em:.3f}em;height:{(y1 - y0) * em:.3f}em"
             + ("" if display else f";vertical-align:{y0 * em:.3f}em"))
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" class="wb-math" role="img" aria-label="{label}" '
           f'viewBox="{x0:.2f} {-y1:.2f} {x1 - x0:.2f} {y1 - y0:.2f}" style="{style}"><title>{label}</title>'
           f'<path fill="currentColor" d="{"".join(parts)}"/></svg>')
    return f'<span class="wb-math-display">{svg}</span>' if display else svg


def math_html(tex: str, *, display: bool = False) -> str:
    """The HTML of one formula: its SVG, or its TeX source in a `<code>` span when mathtext cannot draw it."""
    svg = tex_to_svg(tex, display=display)
    if svg is not None:
        return svg
    delim = "$$" if display else "$"
    code = f'<code class="wb-tex" title="formula (TeX source)">{html.escape(delim + tex.strip() + delim)}</code>'
    return f'<span class="wb-math-display">{code}</span>' if display else code


class _MathRenderer(IPythonRenderer):
    """nbconvert's markdown renderer with formulas drawn here instead of by MathJax in the browser."""

    def block_math(self, body: str) -> str:
        return math_html(body, display=True)

    def inline_math(self, body: str) -> str:
        return math_html(body, display=False)

    def latex_environment(self, name: str, body: str) -> str:
        return math_html(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)  # mathtext has no environments


def render_markdown(source: str, **renderer_options) -> str:
    """A markdown cell's HTML as the handouts show it: nbconvert's markdown with formulas drawn by `math_html`."""
    return MarkdownWithMath(renderer=_MathRenderer(escape=False, **renderer_options)).render(source)


# ---------------------------------------------------------------------------------------------------- widgets

_BOXES = {"HBoxModel": "row", "VBoxModel": "column", "BoxModel": "column", "GridBoxModel": "row"}
_CHOICES = ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel", "SelectionSliderModel")
_VALUES = ("TextModel", "TextareaModel", "IntTextModel", "FloatTextModel", "BoundedIntTextModel",
           "BoundedFloatTextModel", "IntSliderModel", "FloatSliderModel", "IntRangeSliderModel",
           "FloatRangeSliderModel", "DatePickerModel", "ColorPickerModel", "PlayModel")


def static_widget_html(model_id: str, state: dict, *, _depth: int = 0) -> str:
    """A static HTML snapshot of a widget from the state the kernel saved (`metadata.widgets`): boxes lay out their
    children, text and HTML widgets show their value, images their saved bytes, progress bars their fraction,
    choosers the option picked. A widget whose look is not in its state (an ipympl canvas) is named, not faked.

    Args:
        model_id: the widget's model id (what the output's widget-view data points to).
        state: model id -> {"model_name", "model_module", "state"}.
    """
    entry = state.get(model_id)
    if entry is None or _depth > 30:
        return '<span class="wb-w-missing">[widget: its state was not saved with the notebook]</span>'
    name, s = entry.get("model_name", ""), entry.get("state", {})
    desc = s.get("description") or ""
    label = f'<span class="wb-w-label">{html.escape(desc)}</span> ' if desc else ""
    if name in _BOXES:
        kids = "".join(static_widget_html(c.removeprefix("IPY_MODEL_"), state, _depth=_depth + 1)
                       for c in s.get("children", []))
        return f'<div class="wb-w-box wb-w-{_BOXES[name]}">{kids}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<div class="wb-w-html">{label}{s.get("value", "")}</div>'
    if name == "LabelModel":
        return f'<div class="wb-w-html">{label}{html.escape(str(s.get("value", "")))}</div>'
    if name in ("FloatProgressModel", "IntProgressModel"):
        lo, hi, value = s.get("min", 0), s.get("max", 100), s.get("value", 0)
        return (f'<span class="wb-w-progress">{label}<progress value="{value - lo}" max="{max(hi - lo, 1e-12)}">'
                f"{value}/{hi}</progress></span>")
    if name in _CHOICES or name == "SelectMultipleModel":
        labels, index = s.get("_options_labels", []), s.get("index")
        picked = [labels[i] for i in ([] if index is None else index if isinstance(index, list) else [index])
                  if 0 <= i < len(labels)]
        shown = ", ".join(picked) if picked else "(none)"
        more = f" <small>({len(labels)} options)</small>" if len(labels) > 1 else ""
        return f'<div class="wb-w-choice">{label}<b>{html.escape(shown)}</b>{more}</div>'
    if name in ("ToggleButtonModel", "CheckboxModel"):
        return f'<div class="wb-w-choice">{label}<b>{"on" if s.get("value") else "off"}</b></div>'
    if name == "ButtonModel":
        return f'<span class="wb-w-button">{html.escape(desc or "button")}</span>'
    if name in _VALUES:
        return f'<div class="wb-w-choice">{label}<b>{html.escape(str(s.get("value", "")))}</b></div>'
    if name == "ImageModel":
        data = next((b.get("data", "") for b in entry.get("buffers", []) if b.get("path") == ["value"]
                     and b.get("encoding") == "base64"), "")
        if not data:  # an image not set yet (JupyterLab shows nothing either), or one the runner did not keep
            return ""
        fmt = s.get("format", "png")
        return f'<img class="wb-w-image" alt="widget image" src="data:image/{fmt};base64,{data}">'
    if name == "OutputModel":
        return f'<div class="wb-w-output">{"".join(_plain_output_html(o) for o in s.get("outputs", []))}</div>'
    if name == "MPLCanvasModel":
        return '<span class="wb-w-missing">[matplotlib canvas: drawn live in JupyterLab, not saved]</span>'
    return f'<span class="wb-w-missing">[{html.escape(name or "widget")}: shown live in JupyterLab only]</span>'


def is_progress_bar(model_id: str, state: dict) -> bool:
    """A progress bar: a progress widget, or a box of one progress widget and text labels (tqdm's notebook bar)."""
    entry = state.get(model_id, {})
    name = entry.get("model_name", "")
    if name in ("FloatProgressModel", "IntProgressModel"):
        return True
    if name not in _BOXES:
        return False
    kids = [state.get(c.removeprefix("IPY_MODEL_"), {}).get("model_name", "")
            for c in entry.get("state", {}).get("children", [])]
    return (sum(k in ("FloatProgressModel", "IntProgressModel") for k in kids) == 1
            and all(k in ("FloatProgressModel", "IntProgressModel", "HTMLModel", "LabelModel") for k in kids))


def _plain_output_html(output: dict) -> str:
    """An output inside an Output widget, by the same priority as the handout (no nested widgets)."""
    if output.get("output_type") == "stream":
        return f"<pre>{html.escape(_text(output.get('text', '')))}</pre>"
    data = output.get("data", {})
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            return f'<img alt="widget output" src="data:{mime};base64,{_text(data[mime]).strip()}">'
    if "text/html" in data:
        return _text(data["text/html"])
    if "text/plain" in data:
        return f"<pre>{html.escape(_text(data['text/plain']))}</pre>"
    return ""


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


# ---------------------------------------------------------------------------------------------------- provenance

@dataclass(frozen=True)
class Provenance:
    """Where an executed notebook came from, as its handout header and the index show it.

    Attributes:
        title: the first markdown heading (the file's stem without one).
        executed: papermill's end time, UTC ("2026-01-31 14:05 UTC"), or "" when not recorded.
        duration_s: papermill's wall time of the run.
        commit: the git commit the runner ran from (`workbench.runs.environment_info`), None when unknown.
        dirty: whether tracked files differed from that commit.
        profile: "smoke" when SMOKE was set, else the PROFILE parameter ("cpu-demo" for a notebook without one,
            which runs at the demo's sizes).
        device: "CPU" or the CUDA device the run saw (notebooks 02-06 take the `paper` profile on a GPU).
        parameters: name -> value as run (the parameters cell's defaults, then what papermill injected).
        runs: names of run folders (in the notebook's runs folder) that its outputs name.
        failed: papermill recorded an exception (the handout shows the cell's error).
    """

    title: str
    executed: str = ""
    duration_s: float | None = None
    commit: str | None = None
    dirty: bool | None = None
    profile: str = "cpu-demo"
    device: str = "unknown"
    parameters: dict[str, str] = field(default_factory=dict)
    runs: tuple[str, ...] = ()
    failed: bool = False

    @property
    def commit_text(self) -> str:
        if not self.commit:
            return "not recorded"
        return self.commit[:10] + (" + uncommitted changes" if self.dirty else "")


def notebook_title(nb: dict, default: str) -> str:
    """The text of the first markdown heading of a notebook."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in _text(cell.get("source", "")).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip() or default
    return default


def parameter_defaults(nb: dict) -> dict[str, str]:
    """Name -> value (repr) of each assignment in the cell tagged `parameters`; an expression that is not a literal
    keeps its source text."""
    values: dict[str, str] = {}
    for cell in nb.get("cells", []):
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        source = _text(cell.get("source", ""))
        for node in ast.parse(source).body:
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                names = [target] if isinstance(target, ast.Name) else list(getattr(target, "elts", []))
                exprs = [node.value] if isinstance(target, ast.Name) else list(getattr(node.value, "elts", []))
                for name, expr in zip(names, exprs):
                    if isinstance(name, ast.Name):
                        try:
                            values[name.id] = repr(ast.literal_eval(expr))
                        except ValueError:
                            values[name.id] = ast.get_source_segment(source, expr) or "?"
    return values


def provenance(nb: dict, default_title: str = "notebook") -> Provenance:
    """The `Provenance` of an executed notebook (a dict loaded from its JSON): papermill's metadata and what the
    runner stamped (`workbench.notebooks.stamp_provenance`)."""
    meta = nb.get("metadata", {})
    pm_meta = meta.get("papermill", {}) or {}
    env = (meta.get("workbench", {}) or {}).get("provenance", {}) or {}
    injected = pm_meta.get("parameters", {}) or {}
    parameters = parameter_defaults(nb) | {k: repr(v) for k, v in injected.items()}
    if parameters.get("SMOKE") == "True":
        profile = "smoke"
    elif _is_literal_str(parameters.get("PROFILE")):
        profile = ast.literal_eval(parameters["PROFILE"])
    else:
        profile = "cpu-demo"
    executed = ""
    if pm_meta.get("end_time"):
        end = _dt.datetime.fromisoformat(pm_meta["end_time"]).astimezone(_dt.timezone.utc)
        executed = end.strftime("%Y-%m-%d %H:%M UTC")
    runs_parameter = injected.get("RUNS_DIR", None)
    return Provenance(
        title=notebook_title(nb, default_title), executed=executed, duration_s=pm_meta.get("duration"),
        commit=env.get("git_commit"), dirty=env.get("git_dirty"), profile=str(profile),
        device=(env.get("cuda") or "CPU") if env else "unknown", parameters=parameters,
        runs=tuple(named_runs(nb, runs_dir(runs_parameter))), failed=bool(pm_meta.get("exception")))


def _is_literal_str(value: str | None) -> bool:
    try:
        return isinstance(ast.literal_eval(value), str) if value else False
    except ValueError:
        return False


def named_runs(nb: dict, root: Path) -> list[str]:
    """The run folders under `root` whose names the notebook's outputs (text, HTML, widget state) contain."""
    if not Path(root).is_dir():
        return []
    text = json.dumps([c.get("outputs", []) for c in nb.get("cells", [])] + [nb.get("metadata", {}).get("widgets")])
    names = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    return [n for n in names if re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w.-])", text)]


# ---------------------------------------------------------------------------------------------------- notebook

def prepare(nb: dict, *, reader: bool = False) -> dict:
    """A copy of an executed notebook ready for export: record messages and `WORKBENCH_RECORD` lines removed, widget
    views replaced by their static snapshot (full copy) or dropped (reader's copy; progress bars in both), outputs
    that are JavaScript only dropped, the saved widget state removed (the template would load a widget manager from
    a CDN for it). The reader's copy also loses stderr, a plain-text result next to a figure, and every code cell
    left without output (the exporter hides the code itself)."""
    nb = copy.deepcopy(nb)
    widgets = (nb.get("metadata", {}).pop("widgets", None) or {}).get(WIDGET_STATE, {}).get("state", {})
    cells = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            cells.append(cell)
            continue
        outputs = []
        for out in cell.get("outputs", []):
            kind, data = out.get("output_type"), out.get("data", {})
            if RECORD_MIME in data:
                continue
            if kind == "stream":
                lines = [ln for ln in _text(out.get("text", "")).splitlines(keepends=True)
                         if not ln.startswith(RECORD_PREFIX)]
                if not lines or (reader and out.get("name") == "stderr"):
                    continue
                out = {**out, "text": "".join(lines)}
            elif WIDGET_VIEW in data:
                model_id = data[WIDGET_VIEW].get("model_id", "")
                if reader or is_progress_bar(model_id, widgets):
                    continue
                snapshot = static_widget_html(model_id, widgets)
                out = {"output_type": "display_data", "metadata": {},
                       "data": {"text/html": f'<div class="wb-widget" title="a static snapshot of an interactive '
                                             f'widget, as the run left it">{snapshot}</div>'}}
            elif "application/javascript" in data and not (set(data) & set(DISPLAY_PRIORITY)):
                continue
            outputs.append(out)
        if reader and any(set(o.get("data", {})) & set(IMAGE_MIMES) for o in outputs):
            outputs = [o for o in outputs if set(o.get("data", {})) - {"text/plain"} or o["output_type"] == "stream"
                       or o["output_type"] == "error"]
        cell = {**cell, "outputs": outputs}
        if reader and not outputs:
            continue
        cells.append(cell)
    nb["cells"] = cells
    return nb


# The lab template, minus everything it would fetch: require.js, the widget manager, MathJax, mermaid.
_TEMPLATE = r"""
{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">{{ resources.workbench.css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}{{ super() }}{{ resources.workbench.header }}{%- endblock body_header -%}
{%- block input_group -%}
{%- set tags = cell.metadata.get('tags', []) -%}
{%- set params = 'parameters' in tags or 'injected-parameters' in tags -%}
<details class="wb-code{{ ' wb-parameters' if params else '' }}"{{ ' open' if params else '' }}>
<summary>{{ cell | wb_summary }}</summary>
{{ super() }}
</details>
{%- endblock input_group -%}
{#- a figure has no description of its own: call it one (nbconvert would warn and write "no description") -#}
{%- block data_png scoped -%}{{ super() | replace('<img src=', '<img alt="figure" src=') }}{%- endblock data_png -%}
{%- block data_jpg scoped -%}{{ super() | replace('<img src=', '<img alt="figure" src=') }}{%- endblock data_jpg -%}
{%- block footer_js -%}{{ resources.workbench.script }}{%- endblock footer_js -%}
"""

_CSS = """
.wb-header { border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa; padding: 0.6em 1em;
  margin: 0.5em 0 1.2em; font-size: 0.92em; line-height: 1.5; }
.wb-header nav { margin-bottom: 0.3em; }
.wb-header nav a { margin-right: 1.2em; color: #0969da; text-decoration: underline; }
.wb-header dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.1em 1em; margin: 0.3em 0; }
.wb-header dt { font-weight: 600; }
.wb-header dd { margin: 0; }
.wb-header pre { margin: 0; white-space: pre-wrap; }
.wb-failed { color: #b00020; font-weight: 600; }
details.wb-code > summary { cursor: pointer; color: #57606a; font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size); padding: 2px 0 2px 4px; list-style-position: inside;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
details.wb-code[open] > summary { color: #8c959f; }
details.wb-parameters > summary { color: #0550ae; font-weight: 600; }
.wb-toggle { font-size: 0.9em; margin-right: 0.5em; }
.wb-math-display { display: block; text-align: center; overflow-x: auto; margin: 0.6em 0; }
svg.wb-math { display: inline-block; overflow: visible; }
code.wb-tex { background: #f6f8fa; }
.wb-widget { border-left: 3px solid #d0d7de; padding: 0.3em 0.6em; }
.wb-w-box { display: flex; gap: 0.8em; flex-wrap: wrap; }
.wb-w-row { flex-direction: row; align-items: center; }
.wb-w-column { flex-direction: column; align-items: flex-start; }
.wb-widget img { max-width: 100%; height: auto; }
.wb-w-label { color: #57606a; }
.wb-w-missing { color: #8c959f; font-style: italic; }
.wb-w-button { border: 1px solid #d0d7de; border-radius: 4px; padding: 0 0.5em; }
.wb-w-progress progress { vertical-align: middle; }
"""

_SCRIPT = """<script>
document.querySelectorAll('button[data-wb-code]').forEach(function (button) {
  button.addEventListener('click', function () {
    var open = button.getAttribute('data-wb-code') === 'open';
    document.querySelectorAll('details.wb-code').forEach(function (d) { d.open = open; });
  });
});
</script>"""


def _summary(cell: dict) -> str:
    """The one line a folded code cell shows."""
    tags = cell.get("metadata", {}).get("tags", [])
    if "parameters" in tags:
        return "parameters (the notebook's defaults)"
    if "injected-parameters" in tags:
        return "parameters set for this run (injected by papermill)"
    first = next((ln for ln in _text(cell.get("source", "")).splitlines() if ln.strip()), "(empty cell)")
    return html.escape(first if len(first) <= 100 else first[:99] + "…")


class HandoutExporter(HTMLExporter):
    """nbconvert's HTMLExporter with the handout template, formulas drawn by `tex_to_svg` and no script fetched."""

    def __init__(self, *, reader: bool = False, **kwargs):
        super().__init__(template_name="lab", extra_loaders=[DictLoader({"handout.html.j2": _TEMPLATE})],
                         template_file="handout.html.j2", embed_images=True, exclude_input=reader,
                         exclude_input_prompt=reader, exclude_output_prompt=reader, **kwargs)
        self.display_data_priority = list(DISPLAY_PRIORITY)
        self.register_filter("wb_summary", _summary)

    @pass_context
    def markdown2html(self, context, source: str) -> str:
        cell = context.get("cell", {})
        path = context.get("resources", {}).get("metadata", {}).get("path", "")
        return render_markdown(source, attachments=cell.get("attachments", {}), embed_images=True, path=path,
                               anchor_link_text=self.anchor_link_text,
                               exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)


def _header_html(prov: Provenance, *, name: str, reader: bool, other: str | None) -> str:
    links = ['<a href="index.html">all notebooks</a>']
    if other:
        what = "the full handout (with code)" if reader else "the reader’s copy (no code)"
        links.append(f'<a href="{html.escape(other)}">{what}</a>')
    if not reader:
        links.append('<button type="button" class="wb-toggle" data-wb-code="open">show all code</button>'
                     '<button type="button" class="wb-toggle" data-wb-code="closed">fold all code</button>')
    params = "\n".join(f"{k} = {v}" for k, v in prov.parameters.items())
    duration = f" ({prov.duration_s:.0f} s)" if prov.duration_s is not None else ""
    rows = [("executed", (prov.executed or "not recorded") + duration),
            ("commit", prov.commit_text), ("profile", prov.profile), ("device", prov.device),
            ("notebook", f"{name}.ipynb" + (" — <span class='wb-failed'>a cell failed</span>" if prov.failed
                                            else ""))]
    body = "".join(f"<dt>{k}</dt><dd>{v if k == 'notebook' else html.escape(v)}</dd>" for k, v in rows)
    body += f"<dt>parameters</dt><dd><pre>{html.escape(params) or '(none)'}</pre></dd>"
    if prov.runs:
        body += (f"<dt>runs</dt><dd>{len(prov.runs)} named in the outputs: "
                 + ", ".join(f"<code>{html.escape(r)}</code>" for r in prov.runs) + "</dd>")
    kind = "reader’s copy: headings, formulas, figures and findings, without code" if reader else "executed notebook"
    return (f'<header class="wb-header" id="wb-provenance"><nav>{"".join(links)}</nav>'
            f"<div><b>{html.escape(prov.title)}</b> · {kind}</div><dl>{body}</dl></header>")


def export_handout(executed: dict, *, name: str, reader: bool = False, other: str | None = None,
                   prov: Provenance | None = None) -> str:
    """One executed notebook (a dict loaded from its JSON) as a self-contained HTML page.

    Args:
        name: the notebook's file stem (the page's title and the header name it).
        reader: the reader's copy (no code) instead of the full handout.
        other: the file name of the other copy, linked from the header (None: no link).
        prov: its provenance (computed from the notebook when None).
    """
    prov = prov or provenance(executed, name)
    nb = nbformat.reads(json.dumps(prepare(executed, reader=reader)), as_version=4)  # joins split sources
    resources = {"metadata": {"name": prov.title}, "workbench": {
        "css": _CSS, "header": _header_html(prov, name=name, reader=reader, other=other),
        "script": "" if reader else _SCRIPT}}
    body, _ = HandoutExporter(reader=reader).from_notebook_node(nb, resources=resources)
    return body


# ---------------------------------------------------------------------------------------------------- index

def headline_numbers(records: dict) -> list[tuple[str, str]]:
    """The scalar records of a notebook, formatted: floats to 3 significant digits, integers whole; lists, dicts,
    strings and booleans are left out."""
    rows = []
    for key, value in records.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        rows.append((key, str(value) if isinstance(value, int) else f"{value:.3g}"))
    return rows


def _numbers_html(numbers: list[tuple[str, str]]) -> str:
    items = [f"<li><code>{html.escape(k)}</code> {html.escape(v)}</li>" for k, v in numbers]
    if not items:
        return "<span class='wb-none'>none recorded</span>"
    shown, rest = items[:HEADLINE_VISIBLE], items[HEADLINE_VISIBLE:]
    more = f"<details><summary>{len(rest)} more</summary><ul>{''.join(rest)}</ul></details>" if rest else ""
    return f"<ul>{''.join(shown)}</ul>{more}"


def index_html(rows: list[dict]) -> str:
    """The index page. Each row: name, handout (file name), reader (file name or None), prov (`Provenance`),
    numbers (`headline_numbers`)."""
    body = []
    for row in rows:
        prov = row["prov"]
        reader = f'<a href="{html.escape(row["reader"])}">reader’s copy</a>' if row["reader"] else "–"
        failed = " <span class='wb-failed'>(a cell failed)</span>" if prov.failed else ""
        body.append(
            f"<tr><td><a href=\"{html.escape(row['handout'])}\">{html.escape(prov.title)}</a>{failed}"
            f"<br><small><code>{html.escape(row['name'])}.ipynb</code></small></td><td>{reader}</td>"
            f"<td class='wb-numbers'>{_numbers_html(row['numbers'])}</td>"
            f"<td>{html.escape(prov.executed or '–')}</td>"
            f"<td><code>{html.escape(prov.commit_text)}</code></td><td>{html.escape(prov.profile)}</td></tr>")
    built = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ReID Workbench: executed notebooks</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 75em;
  padding: 0 1em; color: #1f2328; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #d0d7de; padding: 0.5em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f6f8fa; }}
td.wb-numbers ul {{ margin: 0; padding: 0; list-style: none; columns: 2; column-gap: 1.5em; }}
td.wb-numbers li {{ white-space: nowrap; }}
td.wb-numbers summary {{ cursor: pointer; color: #57606a; }}
code {{ font-size: 0.9em; }}
.wb-failed {{ color: #b00020; font-weight: 600; }}
.wb-none {{ color: #8c959f; }}
</style></head>
<body><main>
<h1>ReID Workbench: executed notebooks</h1>
<p>Each notebook as the runner executed it (<code>python -m workbench.notebooks run</code>), as one self-contained
page: figures inline, code folded, the parameters and the run's provenance at the top. The reader's copy leaves
the code out. Numbers: the scalars each notebook records with <code>workbench.utils.record</code>, 3 significant
digits. Built {built}.</p>
<table><thead><tr><th>notebook</th><th>without code</th><th>recorded numbers</th><th>executed</th><th>commit</th>
<th>profile</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
</main></body></html>
"""


def build_handouts(executed: Sequence[Path], dest: Path, *, reader: bool = False) -> list[Path]:
    """Write a handout for each executed notebook (and, with `reader`, its reader's copy) into `dest`, then
    `dest/index.html`; return the files written, the index last.

    Raises:
        ValueError: `executed` is empty, or names a file that is missing or is not a notebook.
    """
    if not executed:
        raise ValueError("no executed notebooks to make handouts of: run `python -m workbench.notebooks run` first")
    notebooks = []
    for path in executed:
        path = Path(path)
        if not path.is_file() or path.suffix != ".ipynb":
            raise ValueError(f"executed notebook {path} is missing or not an .ipynb file; pass the executed copies "
                             "the runner wrote (<out>/notebooks/NN_name.ipynb)")
        try:
            notebooks.append((path.stem, json.loads(path.read_text())))
        except json.JSONDecodeError as exc:
            raise ValueError(f"executed notebook {path} is not valid JSON ({exc}); run it again") from exc
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written, rows = [], []
    for name, nb in notebooks:
        prov = provenance(nb, name)
        full, clean = f"{name}.html", (f"{name}.reader.html" if reader else None)
        (dest / full).write_text(export_handout(nb, name=name, other=clean, prov=prov), encoding="utf-8")
        written.append(dest / full)
        if clean:
            (dest / clean).write_text(export_handout(nb, name=name, reader=True, other=full, prov=prov),
                                      encoding="utf-8")
            written.append(dest / clean)
        rows.append({"name": name, "handout": full, "reader": clean, "prov": prov,
                     "numbers": headline_numbers(read_records(nb))})
    (dest / "index.html").write_text(index_html(rows), encoding="utf-8")
    written.append(dest / "index.html")
    return written
