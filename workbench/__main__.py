"""Command line: train and evaluate.

    python -m workbench train --method baseline --dataset synthetic-vi --profile cpu-demo [section.key=value ...]
    python -m workbench train ... --resume runs/NAME
    python -m workbench evaluate --run runs/NAME [--rerank] [--branches nir tir] [--split mode=indoor shot=10]
    python -m workbench recipe --method baseline --dataset sysu-mm01 --profile paper [--epochs 0,9,20] [key=value ...]
    torchrun --nproc_per_node=2 -m workbench train ...        (data-parallel: gloo on CPU, NCCL on GPU)
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench.config import PROFILES, _coerce, get_config


def _parse_pairs(pairs: list[str], what: str) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"{what} must be key=value, got {pair!r}")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench", description="ReID Workbench: train and evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train a method on a dataset")
    tr.add_argument("--method", default="baseline")
    tr.add_argument("--dataset", default="synthetic-vi")
    tr.add_argument("--profile", default="cpu-demo", choices=PROFILES)
    tr.add_argument("--root", default=None, help="dataset root folder (real datasets)")
    tr.add_argument("--name", default=None, help="run folder name under runs/")
    tr.add_argument("--resume", default=None, help="a run folder to continue from its last checkpoint (its saved "
                    "config is used; --method/--dataset/--profile are ignored)")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    tr.add_argument("overrides", nargs="*", help="config changes, e.g. optim.epochs=5 data.p=4 model.pretrained=w.pth")
    ev = sub.add_parser("evaluate", help="evaluate a run with its dataset's test protocol")
    ev.add_argument("--run", required=True, help="run folder, e.g. runs/baseline-synthetic-vi-cpu-demo-...")
    ev.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    ev.add_argument("--branches", nargs="*", default=None, help="feature branches to evaluate, e.g. nir tir")
    ev.add_argument("--split", nargs="*", default=[], help="eval_splits options, e.g. mode=indoor shot=10")
    ev.add_argument("--device", default="auto")
    rc = sub.add_parser("recipe", help="print the recipe card of a configuration (values, sources, differences)")
    rc.add_argument("--method", default="baseline")
    rc.add_argument("--dataset", default="sysu-mm01")
    rc.add_argument("--profile", default="paper", choices=PROFILES)
    rc.add_argument("--epochs", default=None, help="0-based epochs to show each group's lr at, e.g. 0,9,20")
    rc.add_argument("overrides", nargs="*", help="config changes, e.g. data.train_recipe=channel_aug")
    # key=value overrides may stand anywhere (argparse takes a positional list only once, so collect the rest)
    args, extra = parser.parse_known_args(argv)
    stray = [x for x in extra if x.startswith("-") or "=" not in x]
    if stray or (extra and args.command != "train"):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if args.command == "train":
        args.overrides = list(args.overrides) + extra

    if args.command == "recipe":
        from workbench.recipe import format_card, recipe_card

        cfg = get_config(args.method, args.dataset, args.profile).override(**_parse_pairs(args.overrides, "override"))
        try:
            epochs = None if args.epochs is None else [int(e) for e in args.epochs.split(",") if e.strip()]
        except ValueError:
            parser.error(f"--epochs must be comma-separated integers (e.g. 0,9,20), got {args.epochs!r}")
        print(format_card(recipe_card(cfg, epochs=epochs)))
        return 0

    if args.command == "train":
        from workbench.train import fit

        overrides = _parse_pairs(args.overrides, "override")
        if args.resume:  # the run's own recipe; overrides may only move the stopping point (optim.epochs, ...)
            from workbench.runs import load_run

            cfg = load_run(args.resume).config
        else:
            cfg = get_config(args.method, args.dataset, args.profile)
        if args.root:
            overrides["data.root"] = args.root
        if args.name:
            overrides["run.name"] = args.name
        cfg = cfg.override(**overrides)
        run = fit(cfg, resume=args.resume or False, overwrite=args.overwrite)
        res = run.results
        print(json.dumps({"run": str(run.path), "status": res.get("status"), "val": res.get("val"),
                          "test": (res.get("test") or {}).get("mean")}, indent=2))
        return 0

    from workbench.runs import load_run
    from workbench.train import evaluate

    run = load_run(args.run)
    split = {k: _coerce(v, 0) for k, v in _parse_pairs(args.split, "--split").items()}
    result = evaluate(run, split_options=split, branches=args.branches, rerank=args.rerank, device=args.device)
    print(result.summary() if hasattr(result, "summary") else result)
    name = "evaluation" + ("-rerank" if args.rerank else "") + (f"-{'-'.join(args.branches)}" if args.branches else "")
    out = run.path / f"{name}.json"
    out.write_text(json.dumps({"split_options": split, "mean": result.mean, "std": result.std,
                               "per_trial": result.per_trial.to_dict("records")}, indent=2, default=float))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
