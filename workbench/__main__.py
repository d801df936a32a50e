"""Command line: train, evaluate, print a recipe card.

    python -m workbench train --method baseline --dataset synthetic-vi --profile cpu-demo [section.key=value ...]
    python -m workbench train --resume runs/NAME [optim.epochs=N run.max_steps=none]
    python -m workbench evaluate --run runs/NAME [--rerank] [--branches nir tir] [--split mode=indoor shot=10]
                                 (stored in runs/NAME/evaluations/<protocol>/, read by the dashboard)
    python -m workbench recipe --method baseline --dataset sysu-mm01 --profile paper [--epochs 0,9,20]
    torchrun --nproc_per_node=2 -m workbench train ...        (data-parallel: gloo on CPU, NCCL on GPU)

Errors print one message and exit 1 (2 for a malformed command line); `--debug` or WORKBENCH_DEBUG=1 shows the
traceback. A run stopped by SIGINT or SIGTERM saves its state and exits 130 or 143.

A subcommand is a pair in `COMMANDS`: a function adding its parser and one running it (returns the exit code).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from workbench.config import PROFILES, _coerce, get_config

TRAIN_DEFAULTS = {"method": "baseline", "dataset": "synthetic-vi", "profile": "cpu-demo"}


def _parse_pairs(pairs: list[str], what: str) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must be key=value, got {pair!r}")
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------------- train

def add_train(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    tr = sub.add_parser("train", parents=[common], help="train a method on a dataset")
    tr.add_argument("--method", default=None, help=f"default {TRAIN_DEFAULTS['method']}")
    tr.add_argument("--dataset", default=None, help=f"default {TRAIN_DEFAULTS['dataset']}")
    tr.add_argument("--profile", default=None, choices=PROFILES, help=f"default {TRAIN_DEFAULTS['profile']}")
    tr.add_argument("--root", default=None, help="dataset root folder (real datasets)")
    tr.add_argument("--name", default=None, help="run folder name under run.out_dir (a plain name)")
    tr.add_argument("--resume", default=None, help="a run folder to continue from its last checkpoint, with its "
                    "saved config (only optim.epochs, run.max_steps and display options may change)")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name (after the "
                    "new configuration, data and teacher are checked)")
    tr.add_argument("overrides", nargs="*", help="config changes, e.g. optim.epochs=5 data.p=4 model.pretrained=w.pth")


def run_train(args: argparse.Namespace) -> int:
    from workbench.train import fit

    overrides = _parse_pairs(args.overrides, "an override")
    if args.resume:  # the run's own recipe; overrides may only move the stopping point (optim.epochs, ...)
        from workbench.runs import load_run

        cfg = load_run(args.resume).config
        saved = {"method": cfg.run.method, "dataset": cfg.data.dataset, "profile": cfg.run.profile,
                 "root": cfg.data.root, "name": os.path.basename(os.path.normpath(args.resume))}
        for option, value in saved.items():
            given = getattr(args, option)
            if given is not None and given != value:
                raise ValueError(f"--resume continues {args.resume} with its saved config (--{option} {value}); "
                                 f"--{option} {given} cannot change it. Drop --{option}, or start a new run.")
        if args.overwrite:
            raise ValueError("--resume and --overwrite contradict each other: resume continues the run, overwrite "
                             "replaces it. Pass one of them.")
    else:
        opts = {k: getattr(args, k) or v for k, v in TRAIN_DEFAULTS.items()}
        cfg = get_config(opts["method"], opts["dataset"], opts["profile"])
        if args.root:
            overrides["data.root"] = args.root
        if args.name:
            overrides["run.name"] = args.name
    cfg = cfg.override(**overrides)
    run = fit(cfg, resume=args.resume or False, overwrite=args.overwrite)
    res = run.results
    print(json.dumps({"run": str(run.path), "status": run.status, "val": res.get("val"),
                      "test": (res.get("test") or {}).get("mean")}, indent=2))
    return 0


# ------------------------------------------------------------------------------------------------------- evaluate

def add_evaluate(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    ev = sub.add_parser("evaluate", parents=[common], help="evaluate a run with its dataset's test protocol and store "
                        "the result in the run's evaluations/ folder")
    ev.add_argument("--run", required=True, help="run folder, e.g. runs/baseline-synthetic-vi-cpu-demo-...")
    ev.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    ev.add_argument("--branches", nargs="*", default=None, help="feature branches to evaluate, e.g. nir tir")
    ev.add_argument("--split", nargs="*", default=[], help="eval_splits options, e.g. mode=indoor shot=10")
    ev.add_argument("--device", default="auto")


def run_evaluate(args: argparse.Namespace) -> int:
    from workbench.evaluate import open_run

    run = open_run(args.run)
    split = {k: _coerce(v, 0) for k, v in _parse_pairs(args.split, "--split").items()}
    ev = run.evaluation(split_options=split or None, branches=args.branches, rerank=args.rerank, device=args.device,
                        recompute=True)
    print(ev.summary())
    print(f"saved {ev.path}")
    return 0


# --------------------------------------------------------------------------------------------------------- recipe

def add_recipe(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    rc = sub.add_parser("recipe", parents=[common],
                        help="print the recipe card of a configuration (values, sources, differences)")
    rc.add_argument("--method", default="baseline")
    rc.add_argument("--dataset", default="sysu-mm01")
    rc.add_argument("--profile", default="paper", choices=PROFILES)
    rc.add_argument("--epochs", default=None, help="0-based epochs to show each group's lr at, e.g. 0,9,20")
    rc.add_argument("overrides", nargs="*", help="config changes, e.g. data.train_recipe=channel_aug")


def run_recipe(args: argparse.Namespace) -> int:
    from workbench.recipe import format_card, recipe_card

    cfg = get_config(args.method, args.dataset, args.profile).override(**_parse_pairs(args.overrides, "an override"))
    try:
        epochs = None if args.epochs is None else [int(e) for e in args.epochs.split(",") if e.strip()]
    except ValueError:
        raise ValueError(f"--epochs must be comma-separated integers (e.g. 0,9,20), got {args.epochs!r}") from None
    print(format_card(recipe_card(cfg, epochs=epochs)))
    return 0


COMMANDS: dict[str, tuple[Callable, Callable[[argparse.Namespace], int]]] = {
    "train": (add_train, run_train),
    "evaluate": (add_evaluate, run_evaluate),
    "recipe": (add_recipe, run_recipe),
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error (or set WORKBENCH_DEBUG=1)")
    parser = argparse.ArgumentParser(prog="python -m workbench", parents=[common],
                                     description="ReID Workbench: train and evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may stand anywhere (argparse takes a positional list only once, so collect the rest)
    args, extra = parser.parse_known_args(argv)
    stray = [x for x in extra if x.startswith("-") or "=" not in x]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if hasattr(args, "overrides"):
        args.overrides = list(args.overrides) + extra
    debug = getattr(args, "debug", False) or os.environ.get("WORKBENCH_DEBUG", "") not in ("", "0")
    from workbench.train import RunInterrupted

    try:
        return COMMANDS[args.command][1](args)
    except RunInterrupted as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"error: {exc}\n(run with --debug or WORKBENCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
