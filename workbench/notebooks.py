"""Execute the workbench notebooks headless (papermill), for `make demo` and the notebook tests.

    python -m workbench.notebooks run [--out outputs] [--smoke] [--only 01 02]
    python -m workbench.notebooks handouts [--out outputs] [--reader]

Each notebook has a cell tagged `parameters` (SMOKE, seeds, sizes); papermill injects overrides after it. Executed
copies go to `<out>/notebooks/`, and the values each notebook records with `workbench.utils.record()` are collected
into `<out>/records.json`, one entry per notebook: `{"smoke": ..., "profile": ..., "records": {name: value}}`. A run
replaces the entries of the notebooks it ran and keeps the others, so `--only 05` after `make demo` leaves the other
notebooks' numbers in place; `tests/test_claims.py` checks the notebooks' prose against the cpu-demo entries. Figures that notebooks save with `workbench.viz.savefig` land in `<out>/figures/`
(the notebook reads `WORKBENCH_FIGURES`). `<out>` defaults to the project's outputs folder
(`workbench.utils.outputs_dir()`), whatever the working directory. `handouts` then writes each executed copy as
one self-contained HTML page, and an index, into `<out>/handouts/` (`workbench.handouts`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from workbench.utils import RECORD_PREFIX, outputs_dir, read_records  # noqa: F401  (read_records: public here too)

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def list_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The ordered notebooks: `NN_name.ipynb`, sorted by name."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


# Parameters the runner passes to every notebook; a notebook that does not declare one does not get it.
SHARED_PARAMETERS = ("RUNS_DIR",)


def notebook_parameters(notebook: Path) -> set[str]:
    """Names assigned in a notebook's cell tagged `parameters`."""
    import re

    cells = json.loads(Path(notebook).read_text()).get("cells", [])
    names: set[str] = set()
    for cell in cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell.get("source", []))
            names |= set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=", source, flags=re.MULTILINE))
    return names


def select_notebooks(only: list[str] | None, notebooks: list[Path] | None = None) -> list[Path]:
    """The notebooks `--only` names: numbers ("2", "02") or names ("02_baselines"); every token must match one.

    Raises:
        ValueError: a token matches no notebook (the message lists the valid ones).
    """
    notebooks = list_notebooks() if notebooks is None else notebooks
    if only is None:
        return notebooks
    chosen = []
    for token in only:
        token = token.strip()
        hits = [nb for nb in notebooks if (token.isdigit() and int(token) == int(nb.name[:2]))
                or token in (nb.stem, nb.name)]
        if not token or not hits:
            valid = ", ".join(f"{nb.name[:2]} ({nb.stem})" for nb in notebooks)
            raise ValueError(f"--only {token!r} matches no notebook; valid: {valid}")
        chosen += [nb for nb in hits if nb not in chosen]
    return sorted(chosen)


def execute(notebook: Path, out_dir: Path, parameters: dict | None = None, timeout: int = 3600) -> dict:
    """Run one notebook with papermill; return its recorded values. Raises papermill's error on a failing cell.

    `SHARED_PARAMETERS` the notebook does not declare are left out (papermill would warn about each).
    """
    import papermill as pm

    declared = notebook_parameters(notebook)
    parameters = {k: v for k, v in (parameters or {}).items() if k not in SHARED_PARAMETERS or k in declared}

    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / notebook.name
    figures = out_dir.parent / "figures" / notebook.stem
    os.environ["WORKBENCH_FIGURES"] = str(figures)
    provenance = run_provenance()
    try:
        with _environment(MPLBACKEND=INLINE_BACKEND):
            pm.execute_notebook(
                str(notebook),
                str(out_path),
                parameters=parameters or {},
                kernel_name="python3",
                cwd=str(notebook.parent.parent),  # notebooks run from the repository root
                progress_bar=False,
                execution_timeout=timeout,
            )
    finally:
        if out_path.is_file():  # a failing notebook is saved too, with its error: say where it ran as well
            stamp_provenance(out_path, provenance)
    return read_records(json.loads(out_path.read_text()))


# The kernel draws figures with the backend JupyterLab uses, so the executed copy holds them as PNG outputs (the
# handouts show them). A caller's `MPLBACKEND=Agg` would leave the copy without a single figure; the runner's own
# process is unaffected.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables (inherited by the kernel) for the duration of the block, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_provenance() -> dict:
    """Where and from what a notebook runs: the run store's environment record (git commit and whether the tree
    was dirty, python, torch, CUDA device, platform, local start time)."""
    from workbench.runs import environment_info

    return environment_info()


def stamp_provenance(executed: Path, provenance: dict) -> None:
    """Store `provenance` in an executed notebook's metadata (`metadata.workbench.provenance`), atomically."""
    from workbench.runs import atomic_write_bytes

    nb = json.loads(Path(executed).read_text())
    nb.setdefault("metadata", {}).setdefault("workbench", {})["provenance"] = provenance
    atomic_write_bytes(Path(executed), (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode())


RECORDS_FILE = "records.json"
ENTRY_KEYS = ("smoke", "profile", "records")


def runner_profile(smoke: bool) -> str:
    """The profile a notebook's `PROFILE = "cpu-demo"` default resolves to when the runner executes it here
    (`lab.notebook_profile`): "smoke" with `--smoke`, "paper" on a machine with a GPU, else "cpu-demo"."""
    from workbench.lab import notebook_profile

    return notebook_profile(smoke)


def read_records_file(path: Path) -> dict[str, dict]:
    """The entries of a `records.json` the runner wrote: `{notebook stem: {"smoke": bool, "profile": str,
    "records": {name: value}}}`; {} when the file does not exist.

    A file from before the entries had a `smoke` flag (`{stem: {name: value}}`) is read with `smoke` and `profile`
    None: nothing tells whether those numbers came from a SMOKE run.

    Raises:
        ValueError: the file is not JSON, or not an object of notebook entries (the message names the file and
            says to move it aside).
    """
    path = Path(path)
    if not path.is_file():
        return {}
    fix = f"move {path} aside (or delete it) and run the notebooks again"
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); {fix}") from exc
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ValueError(f"{path} should map each notebook to its entry, got {type(raw).__name__}; {fix}")
    entries = {}
    for stem, entry in raw.items():
        if set(entry) == set(ENTRY_KEYS) and isinstance(entry["records"], dict):
            entries[stem] = entry
        else:  # the older flat form: the records alone
            entries[stem] = {"smoke": None, "profile": None, "records": entry}
    return entries


def write_records_file(path: Path, entries: dict[str, dict]) -> None:
    """Write the notebook entries to `path` atomically (readers never see half a file), notebooks in order."""
    from workbench.runs import atomic_write_bytes

    text = json.dumps({stem: entries[stem] for stem in sorted(entries)}, indent=2)
    atomic_write_bytes(Path(path), (text + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.notebooks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebooks headless")
    run.add_argument("--out", default=None,
                     help="folder for executed copies, figures and records.json (default: the project's outputs/)")
    run.add_argument("--smoke", action="store_true", help="run with SMOKE=True (seconds per notebook)")
    run.add_argument("--only", nargs="*", default=None, help="notebooks to run, by number or name, e.g. 1 02 03_dakd")
    run.add_argument("--runs", default=None, help="the notebooks' RUNS_DIR (default: the project's runs/, or "
                                                  "<out>/runs with --smoke); a fresh folder trains every run again")
    handouts = sub.add_parser("handouts", help="write each executed notebook as one self-contained HTML page, and "
                                               "an index (after `run`)")
    handouts.add_argument("--out", default=None,
                          help="the folder `run` wrote to; handouts go to <out>/handouts (default: outputs/)")
    handouts.add_argument("--reader", action="store_true",
                          help="also write each notebook's reader's copy (headings, formulas, figures, findings; "
                               "no code)")
    args = parser.parse_args(argv)
    if args.command == "handouts":
        return write_handouts(outputs_dir(args.out), reader=args.reader)

    try:
        notebooks = select_notebooks(args.only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"no notebooks matched in {NOTEBOOK_DIR}", file=sys.stderr)
        return 2
    out = outputs_dir(args.out)
    records_path = out / RECORDS_FILE
    try:
        entries = read_records_file(records_path)  # before any notebook runs: a damaged file stops us here
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    profile = runner_profile(args.smoke)
    for nb in notebooks:
        start = time.perf_counter()
        print(f"[{nb.name}] running{' (SMOKE)' if args.smoke else ''} ...", flush=True)
        params = {"RUNS_DIR": str(out / "runs")} if args.smoke else {}
        if args.runs is not None:
            params["RUNS_DIR"] = str(Path(args.runs).resolve())
        try:
            records = execute(nb, out / "notebooks", parameters=params | ({"SMOKE": True} if args.smoke else {}))
        except BaseException:
            # Its old numbers no longer describe its executed copy (now the failing one): drop them.
            if entries.pop(nb.stem, None) is not None:
                write_records_file(records_path, entries)
            raise
        entries[nb.stem] = {"smoke": bool(args.smoke), "profile": profile, "records": records}
        write_records_file(records_path, entries)  # after each notebook: a later failure keeps these
        print(f"[{nb.name}] done in {time.perf_counter() - start:.0f} s: {records}", flush=True)
    print(f"executed notebooks in {out / 'notebooks'}, figures in {out / 'figures'}, records in {records_path}")
    return 0


def write_handouts(out: Path, *, reader: bool = False) -> int:
    """`handouts`: the pages of `workbench.handouts` for the executed copies in `<out>/notebooks/`."""
    from workbench.handouts import build_handouts

    executed = list_notebooks(out / "notebooks")
    if not executed:
        print(f"error: no executed notebooks in {out / 'notebooks'}: run `python -m workbench.notebooks run"
              f"{'' if out == outputs_dir() else f' --out {out}'}` first", file=sys.stderr)
        return 2
    start = time.perf_counter()
    written = build_handouts(executed, out / "handouts", reader=reader)
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in written)
    print(f"handouts in {out / 'handouts'} ({time.perf_counter() - start:.0f} s): {sizes}; open "
          f"{out / 'handouts' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
