"""Execute the workbench notebooks headless (papermill), for `make demo` and the notebook tests.

    python -m workbench.notebooks run [--out outputs] [--smoke] [--only 01 02] [--jobs 2]
    python -m workbench.notebooks handouts [--out outputs] [--reader]

Each notebook has a cell tagged `parameters` (SMOKE, seeds, sizes); papermill injects overrides after it. Executed
copies go to `<out>/notebooks/`, and the values each notebook records with `workbench.utils.record()` are collected
into `<out>/records.json`, one entry per notebook: `{"smoke": ..., "profile": ..., "records": {name: value},
"threads": ..., "seconds": ...}` (the intra-op threads its kernel ran on, and how long it took). A run
replaces the entries of the notebooks it ran and keeps the others, so `--only 05` after `make demo` leaves the other
notebooks' numbers in place; `tests/test_claims.py` checks the notebooks' prose against the cpu-demo entries. Figures that notebooks save with `workbench.viz.savefig` land in `<out>/figures/`
(the notebook reads `WORKBENCH_FIGURES`). `<out>` defaults to the project's outputs folder
(`workbench.utils.outputs_dir()`), whatever the working directory. `handouts` then writes each executed copy as
one self-contained HTML page, and an index, into `<out>/handouts/` (`workbench.handouts`).

`--jobs N` runs up to N notebooks at once, each in its own process and kernel, in an order that respects `NEEDS`
(a notebook that reuses another's runs starts after it) and that `plan_order` chose to finish soonest, from each
notebook's usual share of the time (`EXPECTED_SECONDS`). A notebook's numbers depend on its kernel's thread count
(the order of float sums), not on what runs beside it, so two one-thread jobs on two cores give exactly the numbers
of one job after another on one thread, in about half the time (`make demo`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
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


# Which notebooks a notebook waits for under --jobs > 1: those that train the runs it reuses (notebooks 03-05 reuse
# 02's baselines; 06 dissects the runs of 02-05), and, for 07's dashboard, every notebook that trains, so the runs it
# finds do not depend on timing. A dependency outside the selection (--only) is taken as done already. 01 and 08 wait
# for nothing: the synthetic exports and stand-in weights they share with 02 are built once under a file lock.
NEEDS = {"03": ("02",), "04": ("02",), "05": ("02",), "06": ("02", "03", "04", "05"),
         "07": ("02", "03", "04", "05", "08")}


def ready_notebooks(pending: list[Path], done: set[str], selected: set[str]) -> list[Path]:
    """The pending notebooks whose `NEEDS` are met: each is done, or outside the selection (taken as done)."""
    return [nb for nb in pending if all(d in done or d not in selected for d in NEEDS.get(nb.name[:2], ()))]


# Wall seconds each notebook took in `make demo` (cpu-demo, two one-thread notebooks side by side, clean runs/ and
# cache) on the 2-core reference machine; `plan_order` reads them as relative costs, so a faster or slower machine
# gets the same plan. Measured 2026-12-04 (records.json `seconds` of that day's clean demo with the 160-step vehicle
# recipe). Update them from a new demo's records.json when the notebooks change what they train.
EXPECTED_SECONDS = {"01": 15, "02": 971, "03": 1745, "04": 1011, "05": 1345, "06": 40, "07": 14, "08": 1621}

# Beyond this many notebooks `plan_order` gives up its exhaustive search and the runner keeps `schedule_order`'s rule.
PLAN_LIMIT = 10


def plan_order(notebooks: list[Path], jobs: int, expected: dict[str, float] | None = None) -> list[Path] | None:
    """The start order of `notebooks` on `jobs` lanes that finishes soonest if each takes its `expected` seconds
    (keyed by number, "03"; default `EXPECTED_SECONDS`), or None when one has no estimate (or there are more than
    `PLAN_LIMIT`).

    Every list schedule is tried: whenever a lane is free, each ready notebook (its `NEEDS` met) in turn, never a
    lane left idle while one is ready. A branch stops once it cannot beat the best found (its running ends, or
    the remaining work spread over the lanes). Branches are tried in `schedule_order`'s order and only a shorter
    plan replaces the best, so among equally short plans the rule's wins. With two lanes the rule alone can lose
    minutes: it starts 03 as soon as 02 ends, because two notebooks wait for it, while the long 08 holds the
    other lane and 04 and 05 queue behind it.
    """
    expected = EXPECTED_SECONDS if expected is None else expected
    numbers = [nb.name[:2] for nb in notebooks]
    if len(notebooks) > PLAN_LIMIT or any(n not in expected for n in numbers):
        return None
    by_number = dict(zip(numbers, notebooks))
    selected = set(numbers)
    best: list = [float("inf"), []]

    def search(clock: float, running: tuple, pending: tuple, done: frozenset, order: tuple) -> None:
        remaining = sum(expected[n] for n in pending) + sum(end - clock for end, _ in running)
        bound = max([clock + remaining / jobs] + [end for end, _ in running])
        if bound >= best[0]:
            return
        pending_paths = [by_number[n] for n in pending]
        ready = ready_notebooks(pending_paths, done, selected) if len(running) < jobs else []
        if ready:
            for nb in schedule_order(ready, pending_paths):
                n = nb.name[:2]
                search(clock, running + ((clock + expected[n], n),), tuple(p for p in pending if p != n), done,
                       order + (n,))
            return
        if not running:
            best[:] = [clock, list(order)]
            return
        end, n = min(running)
        search(end, tuple(r for r in running if r != (end, n)), pending, done | {n}, order)

    search(0.0, (), tuple(numbers), frozenset(), ())
    return [by_number[n] for n in best[1]]


def schedule_order(ready: list[Path], pending: list[Path], plan: list[Path] | None = None) -> list[Path]:
    """The ready notebooks, best first: in the order of `plan` (`plan_order`'s) when given; otherwise the one that
    most of the pending notebooks wait for (directly or through others) first, as it unblocks the most work; ties
    by number."""
    if plan is not None:
        position = {nb.name: i for i, nb in enumerate(plan)}
        return sorted(ready, key=lambda nb: (position.get(nb.name, len(plan)), nb.name))

    def waiting_on(nb: Path) -> int:
        blocked, frontier = set(), {nb.name[:2]}
        while frontier:
            frontier = {p.name[:2] for p in pending if set(NEEDS.get(p.name[:2], ())) & frontier} - blocked
            blocked |= frontier
        return len(blocked)

    return sorted(ready, key=lambda nb: (-waiting_on(nb), nb.name))


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
OPTIONAL_KEYS = ("threads", "seconds")  # absent from entries written before the runner kept them


def runner_profile(smoke: bool) -> str:
    """The profile a notebook's `PROFILE = "cpu-demo"` default resolves to when the runner executes it here
    (`lab.notebook_profile`): "smoke" with `--smoke`, "paper" on a machine with a GPU, else "cpu-demo"."""
    from workbench.lab import notebook_profile

    return notebook_profile(smoke)


def read_records_file(path: Path) -> dict[str, dict]:
    """The entries of a `records.json` the runner wrote: `{notebook stem: {"smoke": bool, "profile": str,
    "records": {name: value}, "threads": int, "seconds": float}}`; {} when the file does not exist. Entries from
    before the runner kept `threads` and `seconds` read them as None.

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
        if set(ENTRY_KEYS) <= set(entry) <= set(ENTRY_KEYS + OPTIONAL_KEYS) and isinstance(entry["records"], dict):
            entries[stem] = dict.fromkeys(OPTIONAL_KEYS) | entry
        else:  # the older flat form: the records alone
            entries[stem] = dict.fromkeys(OPTIONAL_KEYS) | {"smoke": None, "profile": None, "records": entry}
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
    run.add_argument("--jobs", type=int, default=1,
                     help="notebooks run at once, each in its own kernel, in an order that respects NEEDS (default 1)")
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

    if args.jobs < 1:
        print(f"error: --jobs {args.jobs}: give at least 1", file=sys.stderr)
        return 2
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
    params = {"RUNS_DIR": str(out / "runs")} if args.smoke else {}
    if args.runs is not None:
        params["RUNS_DIR"] = str(Path(args.runs).resolve())
    params |= {"SMOKE": True} if args.smoke else {}

    def finished(nb: Path, records: dict | None, threads: int | None, seconds: float) -> None:
        """Keep a notebook's entry (None: it failed, so its old numbers no longer describe its executed copy)."""
        if records is None:
            if entries.pop(nb.stem, None) is not None:
                write_records_file(records_path, entries)
            return
        entries[nb.stem] = {"smoke": bool(args.smoke), "profile": profile, "records": records,
                            "threads": threads, "seconds": round(seconds, 1)}
        write_records_file(records_path, entries)  # after each notebook: a later failure keeps these
        print(f"[{nb.name}] done in {seconds:.0f} s: {records}", flush=True)

    smoke_note = " (SMOKE)" if args.smoke else ""
    if args.jobs == 1:
        for nb in notebooks:
            start = time.perf_counter()
            print(f"[{nb.name}] running{smoke_note} ...", flush=True)
            try:
                records = execute(nb, out / "notebooks", parameters=params)
            except BaseException:
                finished(nb, None, None, 0.0)
                raise
            finished(nb, records, kernel_threads(), time.perf_counter() - start)
    else:
        failed = run_parallel(notebooks, out / "notebooks", params, args.jobs, finished, smoke_note)
        if failed:
            return 1
    print(f"executed notebooks in {out / 'notebooks'}, figures in {out / 'figures'}, records in {records_path}")
    return 0


def kernel_threads() -> int:
    """The intra-op threads a notebook's kernel computes with: torch's count in this process, which reads the same
    OMP_NUM_THREADS the kernel inherits."""
    import torch

    return torch.get_num_threads()


def _execute_caught(nb: Path, out_dir: Path, parameters: dict) -> tuple[dict | None, int, str]:
    """`execute` in a worker process: (records, threads, "") or (None, threads, the error's traceback); the error
    comes back as text, since papermill's errors do not survive pickling."""
    import traceback

    try:
        return execute(nb, out_dir, parameters=parameters), kernel_threads(), ""
    except BaseException:  # noqa: BLE001  (reported by the parent, which stops scheduling)
        return None, kernel_threads(), traceback.format_exc()


# How worker processes start: "spawn" gives each a fresh interpreter (the runner's own state stays out of it).
POOL_CONTEXT = "spawn"


def run_parallel(notebooks: list[Path], out_dir: Path, parameters: dict, jobs: int,
                 finished: Callable[[Path, dict | None, int | None, float], None], note: str = "") -> list[Path]:
    """Execute `notebooks`, up to `jobs` at once in worker processes, each after the notebooks it `NEEDS` among
    them, in the start order `plan_order` finds from `EXPECTED_SECONDS` (`schedule_order`'s rule without one). `finished(nb, records or None, threads, seconds)` is
    called in this process as each one ends. After a failure no further notebook starts; the running ones finish.
    Returns the notebooks that failed (their tracebacks are printed to stderr) or were not started because of one.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    selected = {nb.name[:2] for nb in notebooks}
    plan = plan_order(notebooks, jobs)
    pending, running, done, failed = list(notebooks), {}, set(), []
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context(POOL_CONTEXT)) as pool:
        try:
            while pending or running:
                if not failed:
                    ready = ready_notebooks(pending, done, selected)
                    if not ready and not running:
                        raise RuntimeError(f"NEEDS has a cycle among {[nb.name for nb in pending]}")
                    for nb in schedule_order(ready, pending, plan)[: jobs - len(running)]:
                        pending.remove(nb)
                        print(f"[{nb.name}] running{note} ...", flush=True)
                        running[pool.submit(_execute_caught, nb, out_dir, parameters)] = (nb, time.perf_counter())
                if not running:
                    break
                ended, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in ended:
                    nb, start = running.pop(future)
                    records, threads, error = future.result()
                    finished(nb, records, threads, time.perf_counter() - start)
                    if records is None:
                        failed.append(nb)
                        print(f"[{nb.name}] failed:\n{error}", file=sys.stderr, flush=True)
                    else:
                        done.add(nb.name[:2])
        except KeyboardInterrupt:  # Ctrl-C reaches the workers too: their notebooks stop where they are
            for nb, _ in running.values():
                finished(nb, None, None, 0.0)  # their old numbers no longer describe their executed copies
            raise
    if failed:
        print(f"error: {', '.join(nb.name for nb in failed)} failed; not started: "
              f"{', '.join(nb.name for nb in pending) or 'none'}", file=sys.stderr)
    return failed + pending


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
