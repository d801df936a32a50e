"""Execute the workbench notebooks headless (papermill), for `make demo` and the notebook tests.

    python -m workbench.notebooks run [--out outputs] [--smoke] [--only 01 02]

Each notebook has a cell tagged `parameters` (SMOKE, seeds, sizes); papermill injects overrides after it. Executed
copies go to `<out>/notebooks/`, and the values each notebook records with `workbench.utils.record()` are collected
into `<out>/records.json`. Figures that notebooks save with `workbench.viz.savefig` land in `<out>/figures/`
(the notebook reads `WORKBENCH_FIGURES`). `<out>` defaults to the project's outputs folder
(`workbench.utils.outputs_dir()`), whatever the working directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from workbench.utils import RECORD_MIME, outputs_dir

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
RECORD_PREFIX = "WORKBENCH_RECORD "  # the older printed form, still read back


def list_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The ordered notebooks: `NN_name.ipynb`, sorted by name."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


def read_records(executed: dict) -> dict:
    """Collect the `record()` values of an executed notebook (a dict loaded from the .ipynb JSON): the display
    outputs of MIME type `RECORD_MIME`, and `WORKBENCH_RECORD {...}` lines printed by older versions."""
    records: dict = {}
    for cell in executed.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "display_data" and RECORD_MIME in output.get("data", {}):
                value = output["data"][RECORD_MIME]
                records.update(json.loads(value) if isinstance(value, str) else value)
                continue
            if output.get("output_type") != "stream":
                continue
            text = output.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                if line.startswith(RECORD_PREFIX):
                    records.update(json.loads(line[len(RECORD_PREFIX):]))
    return records


def execute(notebook: Path, out_dir: Path, parameters: dict | None = None, timeout: int = 3600) -> dict:
    """Run one notebook with papermill; return its recorded values. Raises papermill's error on a failing cell."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / notebook.name
    figures = out_dir.parent / "figures" / notebook.stem
    os.environ["WORKBENCH_FIGURES"] = str(figures)
    os.environ.setdefault("MPLBACKEND", "Agg")
    pm.execute_notebook(
        str(notebook),
        str(out_path),
        parameters=parameters or {},
        kernel_name="python3",
        cwd=str(notebook.parent.parent),  # notebooks run from the repository root
        progress_bar=False,
        execution_timeout=timeout,
    )
    return read_records(json.loads(out_path.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.notebooks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebooks headless")
    run.add_argument("--out", default=None,
                     help="folder for executed copies, figures and records.json (default: the project's outputs/)")
    run.add_argument("--smoke", action="store_true", help="run with SMOKE=True (seconds per notebook)")
    run.add_argument("--only", nargs="*", default=None, help="notebook number prefixes to run, e.g. 01 02")
    args = parser.parse_args(argv)

    notebooks = list_notebooks()
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(prefix) for prefix in args.only)]
    if not notebooks:
        print(f"no notebooks matched in {NOTEBOOK_DIR}", file=sys.stderr)
        return 2
    out = outputs_dir(args.out)
    all_records = {}
    for nb in notebooks:
        start = time.perf_counter()
        print(f"[{nb.name}] running{' (SMOKE)' if args.smoke else ''} ...", flush=True)
        params = {"RUNS_DIR": str(out / "runs")} if args.smoke else {}
        records = execute(nb, out / "notebooks", parameters=params | ({"SMOKE": True} if args.smoke else {}))
        all_records[nb.stem] = records
        print(f"[{nb.name}] done in {time.perf_counter() - start:.0f} s: {records}", flush=True)
    (out / "records.json").write_text(json.dumps(all_records, indent=2))
    print(f"executed notebooks in {out / 'notebooks'}, figures in {out / 'figures'}, records in {out / 'records.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
