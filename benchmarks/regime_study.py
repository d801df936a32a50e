"""The visible-infrared miniature's regime study (issue 19): which backbone start and budget puts the VI baseline in
the papers' regime on a CPU, chosen on validation identities only.

Each regime is the cpu-demo VI baseline (synthetic-vi: 221 training identities after 20 are held out, validation on
ten seeded gallery draws of the held-out ones) with config overrides. Per epoch the study records the validation
rank-1 and mAP (means over the draws) and the CPU seconds the process spent on that epoch, training and validation
together (`time.process_time`: every thread of the process, so the figure does not depend much on what else the
machine runs). Cache builds (stand-in, distilled stand-in, ImageNet conversion) happen before the clock starts.

The rule (the issue's): among regimes whose best validation rank-1 lies in [0.40, 0.80], choose the highest best
validation rank-1 per CPU minute of the whole run; only the chosen regime's test numbers are printed. The test split
is never read for the choice.

    python benchmarks/regime_study.py [--only a b] [--epochs 6] [--out outputs/regime_study.json] [--runs runs/regime]
                                      [--merge] [--partial c4] [--budget-min 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# name -> (what it is, config overrides on the cpu-demo VI baseline)
REGIMES: dict[str, tuple[str, dict]] = {
    "a": ("test_resnet (0.37 M) from the synthetic stand-in, 128x64 (today)", {}),
    "b": ("EfficientNet-Lite0 from ImageNet, 128x64",
          {"model.name": "agw_lite0", "model.pretrained": "imagenet-lite0"}),
    "c1": ("Lite0 from ImageNet, stem and first two stages frozen, 128x64",
           {"model.name": "agw_lite0", "model.pretrained": "imagenet-lite0", "model.kwargs": {"frozen_stages": 3}}),
    "c2": ("Lite0 from ImageNet, 96x48",
           {"model.name": "agw_lite0", "model.pretrained": "imagenet-lite0", "data.height": 96, "data.width": 48}),
    "c3": ("Lite0 from ImageNet, frozen to stage 2, 96x48, half the steps per epoch",
           {"model.name": "agw_lite0", "model.pretrained": "imagenet-lite0", "model.kwargs": {"frozen_stages": 3},
            "data.height": 96, "data.width": 48, "data.batches_per_epoch": 40}),
    "c4": ("Lite0 from ImageNet, frozen to stage 2, 128x64, 40 steps per epoch, backbone lr x0.1 (AGW's ratio)",
           {"model.name": "agw_lite0", "model.pretrained": "imagenet-lite0", "model.kwargs": {"frozen_stages": 3},
            "data.batches_per_epoch": 40, "optim.backbone_lr_mult": 0.1}),
    "d": ("test_resnet from a stand-in distilled from ImageNet Lite0 features, 128x64",
          {"model.pretrained": "synthetic-distilled"}),
}
# (e): more epochs for a regime whose validation still climbed at the end of 6: key -> (regime it extends, epochs)
REGIMES["e"] = ("test_resnet from the distilled stand-in (d), 10 epochs, lr step after 7",
                REGIMES["d"][1])
REGIMES["f"] = ("test_resnet from the synthetic stand-in (a), 16 epochs, lr step after 11",
                REGIMES["a"][1])
REGIMES["g"] = ("test_resnet from the synthetic stand-in, DAKD's channel augmentation (erasing on both streams, "
                "adaptive gray on infrared) on top of AGW's pad, crop and flip", {"data.train_recipe": "channel_aug"})
LONGER = {"e": ("d", 10), "f": ("a", 16)}
BAND = (0.40, 0.80)


def regime_config(overrides: dict, epochs: int, runs: Path, name: str, seed: int = 0):
    from workbench.config import get_config

    cfg = get_config("baseline", "synthetic-vi", "cpu-demo")
    changes = {"optim.epochs": epochs, "run.eval_every": 1, "run.name": name, "run.out_dir": str(runs),
               "run.seed": seed, "run.live_plot": False}
    if epochs != cfg.optim.epochs:  # keep the demo schedule's shape: the lr step two thirds of the way
        changes["optim.milestones"] = (max(1, round(epochs * 2 / 3)),)
    return cfg.override(**{**changes, **overrides})


def warm_caches(cfg) -> None:
    """Build what the regime's model loads (stand-in, distilled stand-in, converted ImageNet weights) off the clock."""
    from workbench.methods import get_method

    get_method(cfg.run.method).build_model(cfg, num_classes=2)


def _score(row: dict) -> None:
    """Add what the rule reads to a row: its best validation rank-1, whether that is in the band, per CPU minute."""
    row["best_val_rank1"] = max(row["val_rank1"])
    row["in_band"] = BAND[0] <= row["best_val_rank1"] <= BAND[1]
    row["rank1_per_cpu_min"] = round(row["best_val_rank1"] / row["cpu_min"], 4)


def run_regime(key: str, epochs: int, runs: Path) -> dict:
    from workbench.runs import load_run
    from workbench.train import fit

    what, overrides = REGIMES[key]
    base, epochs = LONGER.get(key, (key, epochs))
    cfg = regime_config(overrides, epochs, runs, f"regime-{base}-{epochs}ep")
    warm_caches(cfg)
    marks: list[tuple[int, float]] = []
    start = time.process_time()

    def clock(record: dict) -> None:
        if "val/rank1" in record:
            marks.append((int(record["epoch"]), time.process_time() - start))

    path = runs / cfg.run.name
    if (path / "status.json").exists() and load_run(path).status == "finished":
        return json.loads((path / "study.json").read_text())
    run = fit(cfg, callbacks=[clock], progress=False, overwrite=True)
    vals = run.metrics.dropna(subset=["val/rank1"])
    cpu = [b - a for (_, a), (_, b) in zip([(0, 0.0)] + marks[:-1], marks)]
    row = {"regime": key, "what": what, "overrides": overrides, "epochs": epochs,
           "val_rank1": vals["val/rank1"].round(4).tolist(), "val_rank1_std": vals["val/rank1_std"].round(4).tolist(),
           "val_mAP": vals["val/mAP"].round(4).tolist(), "cpu_s_per_epoch": [round(c, 1) for c in cpu],
           "cpu_min": round(sum(cpu) / 60, 2), "best_epoch": run.best_epoch, "run": str(run.path)}
    _score(row)
    (path / "study.json").write_text(json.dumps(row, indent=1))
    return row


def partial_row(key: str, epochs: int, runs: Path) -> dict:
    """The row of a regime whose run was stopped before its last epoch, from its metrics log. Its cost is the wall
    time of the training steps per epoch (validation left out), not CPU seconds: flagged `"cost": "wall"`."""
    import pandas as pd

    what, overrides = REGIMES[key]
    base, epochs = LONGER.get(key, (key, epochs))
    path = runs / f"regime-{base}-{epochs}ep"
    if not (path / "metrics.jsonl").is_file():
        raise FileNotFoundError(f"--partial {key}: no metrics log in {path}; train the regime first")
    log = pd.read_json(path / "metrics.jsonl", lines=True)
    vals = log.dropna(subset=["val/rank1"])
    ends = log.dropna(subset=["train_time_s"]).groupby("epoch")["train_time_s"].max()
    wall = [float(ends[e] - ends.get(e - 1, 0.0)) for e in vals["epoch"]]
    row = {"regime": key, "what": what, "overrides": overrides, "epochs": epochs, "stopped_after": len(vals),
           "cost": "wall", "val_rank1": vals["val/rank1"].round(4).tolist(),
           "val_rank1_std": vals["val/rank1_std"].round(4).tolist(), "val_mAP": vals["val/mAP"].round(4).tolist(),
           "cpu_s_per_epoch": [round(w, 1) for w in wall], "cpu_min": round(sum(wall) / 60, 2),
           "best_epoch": None, "run": str(path)}
    _score(row)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| regime | validation rank-1 per epoch (mean of 10 draws) | validation mAP per epoch | CPU s per epoch | "
             "CPU min | in band | rank-1 per CPU min |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        note = f" (stopped after epoch {r['stopped_after']} of {r['epochs']}; wall s)" if r.get("stopped_after") else ""
        lines.append(f"| ({r['regime']}) {r['what']}{note} | {' / '.join(f'{v:.2f}' for v in r['val_rank1'])} | "
                     f"{' / '.join(f'{v:.2f}' for v in r['val_mAP'])} | "
                     f"{round(sum(r['cpu_s_per_epoch']) / len(r['cpu_s_per_epoch']))} | {r['cpu_min']:.1f} | "
                     f"{'yes' if r['in_band'] else 'no'} | {r['rank1_per_cpu_min']:.3f} |")
    return "\n".join(lines)


def choose(rows: list[dict], budget_min: float) -> tuple[dict | None, str]:
    """The issue's rule on complete rows: in the band, the highest best validation rank-1 per CPU minute. When no row
    is in the band: the highest best validation rank-1 among the rows whose whole run fits `budget_min` CPU minutes
    (the notebooks' per-run share of their 15 minutes), the cheaper on a tie. Returns (row, why)."""
    complete = [r for r in rows if not r.get("stopped_after")]
    eligible = [r for r in complete if r["in_band"]]
    if eligible:
        return max(eligible, key=lambda r: r["rank1_per_cpu_min"]), "in the band, highest rank-1 per CPU minute"
    affordable = [r for r in complete if r["cpu_min"] <= budget_min]
    if not affordable:
        return None, f"no regime in the band {BAND}, none within {budget_min} CPU min"
    best = max(affordable, key=lambda r: (round(r["best_val_rank1"], 2), -r["cpu_min"]))
    return best, (f"no regime reaches the band {BAND}; among those within {budget_min} CPU min per run, the highest "
                  "best validation rank-1 (to two decimals; the cheaper on a tie)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--runs", default="runs/regime")
    parser.add_argument("--out", default="outputs/regime_study.json")
    parser.add_argument("--merge", action="store_true", help="keep the rows already in --out that this call does not "
                                                            "re-run (the study run in several sittings)")
    parser.add_argument("--partial", nargs="*", default=[], choices=list(REGIMES),
                        help="regimes stopped before their last epoch: their rows from the metrics log (wall s)")
    parser.add_argument("--budget-min", type=float, default=4.0,
                        help="CPU minutes one run may cost when no regime is in the band (default 4)")
    args = parser.parse_args(argv)
    from workbench.utils import outputs_dir, runs_dir

    runs = runs_dir(args.runs)
    out = outputs_dir(args.out) if not Path(args.out).is_absolute() else Path(args.out)
    kept = json.loads(out.read_text()) if args.merge and out.is_file() else []
    rows = []
    for key in args.only:
        print(f"[{key}] {REGIMES[key][0]} ...", flush=True)
        rows.append(run_regime(key, args.epochs, runs))
        print(table(rows[-1:]), flush=True)
    rows += [partial_row(key, args.epochs, runs) for key in args.partial]
    fresh = {r["regime"] for r in rows}
    order = list(REGIMES)
    rows = sorted([r for r in kept if r["regime"] not in fresh] + rows, key=lambda r: order.index(r["regime"]))
    chosen, why = choose(rows, args.budget_min)
    for r in rows:
        r["chosen"] = chosen is not None and r["regime"] == chosen["regime"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    if chosen is None:
        print(why + "; nothing chosen")
        return 0
    from workbench.runs import load_run

    if not (Path(chosen["run"]) / "config.json").is_file():
        print(f"chosen: ({chosen['regime']}) ({why}); its run folder {chosen['run']} is not on this machine (a row "
              f"kept from --out), so no test numbers: train it again with --only {chosen['regime']}")
        return 0
    test = load_run(chosen["run"]).test  # read for the chosen regime only, after the choice
    print(f"chosen: ({chosen['regime']}) {chosen['what']} ({why}): best validation rank-1 "
          f"{chosen['best_val_rank1']:.3f} in {chosen['cpu_min']:.1f} CPU min; its test numbers: "
          + ", ".join(f"{k} {v:.3f} ± {test.std[k]:.3f}" for k, v in test.mean.items() if k in ("rank1", "mAP", "mINP")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
