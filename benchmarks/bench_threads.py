"""Why `make demo` runs two one-thread notebooks side by side: training throughput of one job on one thread, one job
on two threads, and two one-thread jobs at once, in one run.

    python benchmarks/bench_threads.py [--steps 40] [--pairs baseline:synthetic-vi sd2reid:synthetic-rgbnt]

Each measurement is a fresh process (the thread count is fixed when torch loads) running the bare training loop of
`bench_fit_throughput.bare_loop` (pre-loaded batches, random weights, cpu-demo size). The figure to read is
`side_by_side / two_threads`: the steps per second two one-thread jobs make together, against one job on two
threads. At 1 or above, two one-thread notebooks finish the demo at least as fast as one two-thread notebook after
another, and keep the one-thread numbers the notebooks' prose quotes (the thread count changes the order of float
sums; what runs beside a job does not). Run it on an idle machine with at least two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _steps_per_s(method: str, dataset: str, steps: int) -> float:
    """Run in a worker process: the bare loop's steps per second."""
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    from bench_fit_throughput import bare_loop

    from workbench.config import get_config

    cfg = get_config(method, dataset, "cpu-demo").override(**{"model.pretrained": None})
    seconds, _ = bare_loop(cfg, steps)
    return steps / seconds


def _launch(method: str, dataset: str, steps: int, threads: int) -> subprocess.Popen:
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); from bench_threads import _steps_per_s; "
            f"print(_steps_per_s({method!r}, {dataset!r}, {steps}))")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"a measurement process failed (exit {proc.returncode})")
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--pairs", nargs="+", default=["baseline:synthetic-vi", "sd2reid:synthetic-rgbnt"],
                        help="method:dataset pairs to measure (their cpu-demo models)")
    args = parser.parse_args()
    for pair in args.pairs:
        method, dataset = pair.split(":")
        one = _result(_launch(method, dataset, args.steps, 1))
        two = _result(_launch(method, dataset, args.steps, 2))
        side = [_launch(method, dataset, args.steps, 1) for _ in range(2)]
        both = [_result(p) for p in side]
        print(json.dumps({"method": method, "dataset": dataset, "steps": args.steps,
                          "one_thread": round(one, 3), "two_threads": round(two, 3),
                          "side_by_side": [round(x, 3) for x in both],
                          "two_threads_over_one": round(two / one, 3),
                          "side_by_side_over_two_threads": round(sum(both) / two, 3)}), flush=True)


if __name__ == "__main__":
    main()
