"""Notebook 03's teacher-memory switch as a stored study: the MCE teacher with its memories built from clean
test-transform images (published) and from one draw of the training augmentation (`method_options.memory_images`,
issue 19's hypothesis), both in notebook 03's cpu-demo recipe.

The second teacher costs about eight minutes of one core and answered its question once (no gain on the validation
identities), so `make demo` reads this file instead of training it again (`lab.stored_or_trained`); notebook 03
trains it when its `TRAIN_MEMORY_SWITCH` parameter is True, or when its recipe differs from the stored one. The
published teacher is stored too, so the notebook compares the two from one source, and `make claims` checks that
the demo's own teacher equals the stored one (same code, same thread count).

    OMP_NUM_THREADS=1 python benchmarks/teacher_memory_study.py [--runs runs/] [--out outputs/teacher_memory_study.json]
                                                                [--store]

Runs are reused from `--runs` when they exist (`train.fit(reuse=True)`), so after `make demo` with the switch trained
it only reads them. Train on one thread, as `make demo` does: the numbers depend on the thread count.
`--store` writes the package's copy (`workbench/results/teacher_memory_study.json`) instead of `--out`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench import config, evaluate, lab, train
from workbench.runs import atomic_write_bytes
from workbench.utils import outputs_dir

COMMAND = "OMP_NUM_THREADS=1 python benchmarks/teacher_memory_study.py --store"


def study_configs(runs: str | None, seed: int = 0) -> dict[str, config.Config]:
    """The two teachers, as notebook 03 configures them (`lab.setup` overrides, cpu-demo profile)."""
    _, common, _ = lab.setup(False, "cpu-demo", runs, seed)
    published = config.get_config("dakd_teacher", "synthetic-vi", "cpu-demo").override(**common)
    return {"published": published, "augmented": published.override(**{"method_options.memory_images": "train"})}


def row(label: str, cfg: config.Config) -> dict:
    """One stored run: trained here or reused from the runs folder."""
    run = evaluate.open_run(train.fit(cfg, reuse=True, progress=False))
    stored = cfg.override(**{"run.out_dir": "runs"}).to_dict()  # the recipe, not this machine's folder
    test = run.test
    return {"label": label, "name": run.name, "config": stored, "best_epoch": run.best_epoch,
            "val": {k: float(v) for k, v in run.val.items()},
            "test_mean": {k: float(v) for k, v in test.mean.items()},
            "test_std": {k: float(v) for k, v in test.std.items()},
            "train_time_s": round(run.train_time_s, 1),
            "threads": run.run.environment.get("threads")}  # None: trained before runs recorded it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=None, help="runs folder to train in or reuse from (default: runs/)")
    parser.add_argument("--out", default=None, help="where to write (default: outputs/teacher_memory_study.json)")
    parser.add_argument("--store", action="store_true", help="write the package's copy that notebook 03 reads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = lab.TEACHER_MEMORY_STUDY if args.store else Path(args.out or outputs_dir(None) / lab.TEACHER_MEMORY_STUDY.name)
    rows = [row(label, cfg) for label, cfg in study_configs(args.runs, args.seed).items()]
    study = {"command": COMMAND, "runs": rows}
    atomic_write_bytes(out, (json.dumps(study, indent=1) + "\n").encode())
    for r in rows:
        print(f"{r['label']:>9}: val rank-1 {r['val']['rank1']:.3f} ± {r['val']['rank1_std']:.3f}, "
              f"mAP {r['val']['mAP']:.3f}; test rank-1 {r['test_mean']['rank1']:.3f}, train {r['train_time_s']} s")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
