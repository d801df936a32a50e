"""Does the demo give the same numbers twice on one machine? (issue 22 item 2)

Runs the notebooks twice through the runner, each time into its own output folder and a fresh runs folder (so every
run trains again: `reuse=True` would otherwise read the first pass's runs back), with one shared cache (the second
pass finds the synthetic exports and stand-ins built by the first, which is the case the issue found broken: a
cold and a warm cache must give the same numbers). Then compares the two `records.json` value by value and prints
every difference. Timings (names ending in `_s`, `time`, or throughput ratios measured against a clock) are
reported apart and do not count.

    python benchmarks/bench_reproducible_demo.py --out /tmp/repro [--smoke] [--only 02 03]

Exit status 1 when a recorded number differs, 0 when all agree. Without --smoke it runs the cpu-demo profile (an
hour a pass on a 2-core CPU); with --smoke a few minutes a pass.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLOCKED = ("_s", "time", "_ratio", "ratio_paper", "seconds", "per_s")


def is_timing(name: str) -> bool:
    """A record measured against a clock: its value may differ between two identical runs."""
    return any(name.endswith(tag) or tag in name for tag in CLOCKED)


def differences(first: dict, second: dict) -> tuple[list[str], list[str]]:
    """(differing numbers, differing timings) between two records files, as readable lines."""
    numbers, timings = [], []
    for stem in sorted(set(first) | set(second)):
        a = first.get(stem, {}).get("records", {})
        b = second.get(stem, {}).get("records", {})
        for name in sorted(set(a) | set(b)):
            if name in a and name in b and _same(a[name], b[name]):
                continue
            line = f"{stem}: {name}: {a.get(name, '(missing)')!r} vs {b.get(name, '(missing)')!r}"
            (timings if is_timing(name) else numbers).append(line)
    return numbers, timings


def _same(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return x == y or (math.isnan(x) and math.isnan(y))
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return x == y


def run_pass(out: Path, smoke: bool, only: list[str] | None) -> dict:
    cmd = [sys.executable, "-m", "workbench.notebooks", "run", "--out", str(out), "--runs", str(out / "runs")]
    cmd += ["--smoke"] if smoke else []
    cmd += ["--only", *only] if only else []
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    return json.loads((out / "records.json").read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="a folder for the two passes (first/, second/)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if (out / "first").exists() or (out / "second").exists():
        print(f"error: {out} already holds a pass (first/ or second/); choose an empty --out", file=sys.stderr)
        return 2
    first = run_pass(out / "first", args.smoke, args.only)
    second = run_pass(out / "second", args.smoke, args.only)
    numbers, timings = differences(first, second)
    count = sum(len(e.get("records", {})) for e in first.values())
    print(f"{count} records in {len(first)} notebooks; {len(numbers)} numbers differ, {len(timings)} timings differ")
    for line in numbers:
        print("  DIFFERS", line)
    return 1 if numbers else 0


if __name__ == "__main__":
    raise SystemExit(main())
