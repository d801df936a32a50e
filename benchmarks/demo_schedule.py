"""Replay `make demo`'s side-by-side schedule on the notebook times a run recorded, to see what a notebook adds to
the demo's wall time and where the critical path lies.

    python benchmarks/demo_schedule.py [--records outputs/records.json] [--jobs 2] [--without 08] [--rule]

It takes each notebook's `seconds` from the records (written by `python -m workbench.notebooks run`), then runs the
runner's own scheduling (`workbench.notebooks.NEEDS`, the start order `plan_order` finds from `EXPECTED_SECONDS`,
or with `--rule` the `schedule_order` rule alone) on a simulated clock, with `--jobs` lanes. `--without` drops notebooks from the plan, as `--only` would leave them out. The replay assumes each
notebook takes the time it took in the recorded run; one that ran beside another may run faster alone.
"""

from __future__ import annotations

import argparse
import json

from workbench import notebooks as nbs
from workbench.notebooks import read_records_file
from workbench.utils import outputs_dir


def replay(seconds: dict[str, float], jobs: int, expected: dict[str, float] | None = None,
           planned: bool = True) -> tuple[float, list[tuple[str, float, float]]]:
    """The wall time of running notebooks that take these `seconds` (keyed by number, "02") on `jobs` lanes, and
    each notebook's (number, start, end). The order is the runner's: `plan_order` on the `expected` seconds
    (default the runner's own `EXPECTED_SECONDS`), or with `planned=False` the `schedule_order` rule alone."""
    notebooks = [nb for nb in nbs.list_notebooks() if nb.name[:2] in seconds]
    selected = {nb.name[:2] for nb in notebooks}
    order = nbs.plan_order(notebooks, jobs, expected) if planned else None
    clock, pending, done, running, plan = 0.0, list(notebooks), set(), {}, []
    while pending or running:
        ready = nbs.ready_notebooks(pending, done, selected)
        for nb in nbs.schedule_order(ready, pending, order)[: jobs - len(running)]:
            pending.remove(nb)
            running[nb.name[:2]] = (clock, clock + seconds[nb.name[:2]])
        number = min(running, key=lambda n: running[n][1])
        start, clock = running.pop(number)
        done.add(number)
        plan.append((number, start, clock))
    return clock, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", default=None, help="a records.json (default: the project's outputs/)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--without", nargs="*", default=[], help="notebook numbers to leave out, e.g. 08")
    parser.add_argument("--rule", action="store_true",
                        help="order by schedule_order's rule alone, as the runner did before plan_order")
    parser.add_argument("--plan-from-records", action="store_true",
                        help="plan on the recorded seconds themselves instead of the runner's EXPECTED_SECONDS")
    args = parser.parse_args()
    path = outputs_dir(None) / nbs.RECORDS_FILE if args.records is None else args.records
    entries = read_records_file(path)
    missing = [stem for stem, e in entries.items() if e["seconds"] is None]
    if missing:
        raise SystemExit(f"{path}: no recorded seconds for {', '.join(missing)}; run them with "
                         "`python -m workbench.notebooks run` first")
    seconds = {stem[:2]: e["seconds"] for stem, e in entries.items() if stem[:2] not in args.without}
    wall, plan = replay(seconds, args.jobs, expected=seconds if args.plan_from_records else None,
                        planned=not args.rule)
    for number, start, end in plan:
        print(f"{number}: {start:7.0f} -> {end:7.0f} s")
    print(json.dumps({"jobs": args.jobs, "without": args.without, "order": "rule" if args.rule else "plan",
                      "wall_s": round(wall),
                      "wall_min": round(wall / 60, 1), "sum_s": round(sum(seconds.values())),
                      "perfect_split_min": round(sum(seconds.values()) / args.jobs / 60, 1)}))


if __name__ == "__main__":
    main()
