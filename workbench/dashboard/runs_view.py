"""Run discovery for the dashboard: which runs exist, which config values vary between them, their metrics with the
spread over gallery draws, and their training curves overlaid."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from workbench.evaluate import load_evaluation
from workbench.runs import CONFIG, Run, load_run
from workbench.utils import runs_dir as _runs_dir

# Config keys that say where and how a run was displayed, not what it trained.
IGNORED_KEYS = ("run.name", "run.out_dir", "run.live_plot", "run.tensorboard", "run.log_every", "run.device")
METRICS = ("rank1", "mAP", "mINP")


def flatten_config(d: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested config dict (`{"optim": {"lr": 0.1}}` -> `{"optim.lr": 0.1}`); lists become tuples."""
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, name + "."))
        else:
            flat[name] = tuple(value) if isinstance(value, list) else value
    return flat


def discover_runs(runs_dir: str | Path | None = None) -> dict[str, Run]:
    """Every run folder under `runs_dir` (default: the project's runs/), by name, sorted by name."""
    root = _runs_dir(runs_dir)
    return {p.parent.name: load_run(p.parent) for p in sorted(root.glob(f"*/{CONFIG}"))}


def run_configs(runs: dict[str, Run]) -> dict[str, dict[str, Any]]:
    """Flattened config of every run whose config is readable (others are left out)."""
    out = {}
    for name, run in runs.items():
        try:
            flat = flatten_config(json.loads((run.path / CONFIG).read_text()))
        except (OSError, json.JSONDecodeError):
            continue
        out[name] = {k: v for k, v in flat.items() if k not in IGNORED_KEYS}
    return out


def varying_keys(configs: dict[str, dict[str, Any]]) -> list[str]:
    """Config keys whose value is not the same in every given run (a key missing from a run counts as None)."""
    keys = sorted({k for c in configs.values() for k in c})
    return [k for k in keys if len({json.dumps(c.get(k), default=str) for c in configs.values()}) > 1]


def _value_text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def run_labels(configs: dict[str, dict[str, Any]], *, sep: str = " · ") -> dict[str, str]:
    """A short label per run that says what sets it apart from the other given runs: `key=value` of the config
    keys that vary between them, e.g. `loss.triplet=hard` or `run.method=dakd · method_options.ablation=full`.

    The keys are chosen greedily (this workbench's choice): at each step the varying key that splits the runs into
    the most distinct groups (ties: by key name), until every run is told apart or no key splits further; they are
    written in that order, and a key a run's config lacks (or sets to None) is left out of its label unless that
    would leave it empty. Runs that no key tells apart
    (identical configs, e.g. one recipe trained twice) get their run name after the label; a single run, or runs
    that differ in nothing, are labelled by name. Labels are unique (names are).

    Args:
        configs: run name -> flattened config (`run_configs`).
    Returns:
        run name -> label, in the order of `configs`.
    """
    if len(configs) < 2:
        return {n: n for n in configs}
    text = {n: {k: json.dumps(c.get(k), sort_keys=True, default=str) for k in varying_keys(configs)}
            for n, c in configs.items()}
    candidates, chosen = varying_keys(configs), []

    def groups(keys: list[str]) -> int:
        return len({tuple(text[n][k] for k in keys) for n in configs})

    while candidates and groups(chosen) < len(configs):
        best = max(sorted(candidates), key=lambda k: groups(chosen + [k]))  # the first of the best, by name
        if groups(chosen + [best]) == groups(chosen):
            break  # what is left tells no more runs apart
        chosen.append(best)
        candidates.remove(best)
    parts = {}
    for n, c in configs.items():
        keys = [k for k in chosen if c.get(k) is not None] or chosen  # all None: say so rather than nothing
        parts[n] = sep.join(f"{k}={_value_text(c.get(k))}" for k in keys)
    shared = Counter(parts.values())
    return {n: (f"{p} ({n})" if p else n) if shared[p] > 1 else p for n, p in parts.items()}


def families(configs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Groups of at least two runs whose configs differ in exactly one key, as `"key: run, run, ..." -> names`.

    Runs are grouped by their config with one key left out; a group whose members all take different values of
    that key is a one-key family (the ablation grid of DAKD varies `method_options.ablation`).
    """
    found: dict[str, list[str]] = {}
    for key in varying_keys(configs):
        groups: dict[str, list[str]] = defaultdict(list)
        for name, cfg in configs.items():
            rest = json.dumps({k: v for k, v in cfg.items() if k != key}, sort_keys=True, default=str)
            groups[rest].append(name)
        for names in groups.values():
            values = {json.dumps(configs[n].get(key), default=str) for n in names}
            if len(names) >= 2 and len(values) == len(names):
                found[f"{key}: {', '.join(str(configs[n].get(key)) for n in names)}"] = sorted(names)
    return found


def family_members(configs: dict[str, dict[str, Any]], key: str, values: Sequence[Any] = ()) -> dict[Any, str]:
    """The largest one-key family varying `key` (among those that take every one of `values`, when given), as
    value -> run name (latest run for a repeated value).

    Two grids can vary the same key (DAKD's and ICRE's `method_options.ablation`): `values` names the pair to
    compare, so the family that holds them is chosen, not merely the largest.
    """
    best: list[str] = []
    candidates = []
    for label, names in families(configs).items():
        if label.split(":")[0] != key:
            continue
        candidates.append(label)
        takes_all = all(any(configs[n].get(key) == v for n in names) for v in values)
        if takes_all and len(names) > len(best):
            best = names
    if not best:
        wanted = f" taking the values {list(values)}" if values else ""
        raise ValueError(f"no two runs differ in {key!r} alone{wanted}; families with that key: {candidates or 'none'};"
                         f" varying keys here: {varying_keys(configs)}")
    return {configs[n].get(key): n for n in best}


def metrics_table(runs: dict[str, Run], names: Sequence[str], protocol: str | None = None,
                  columns: Sequence[str] = ()) -> pd.DataFrame:
    """rank-1 / mAP / mINP (mean and std over gallery draws) of the named runs under one protocol.

    Args:
        protocol: a stored evaluation key; None: the default protocol (its stored evaluation, else the test results
            that fit wrote to results.json).
        columns: config keys to show beside the metrics (e.g. the varying keys).
    """
    configs = run_configs({n: runs[n] for n in names})
    rows = []
    for name in names:
        run = runs[name]
        row: dict[str, Any] = {"run": name, **{k: configs.get(name, {}).get(k) for k in columns}}
        mean, std, trials, source = {}, {}, None, "not evaluated"
        try:
            ev = load_evaluation(run, protocol)
            mean, std, trials, source = ev.mean, ev.std, ev.num_trials, f"stored ({ev.key})"
        except (FileNotFoundError, KeyError):
            test = run.results.get("test") if protocol is None else None
            if test:  # a run evaluated before evaluations were stored: the engine's copy in results.json
                mean, std, trials, source = test["mean"], test.get("std", {}), len(test.get("per_trial", [])), \
                    "results.json"
        for m in METRICS:
            row[m] = mean.get(m)
            row[f"{m}_std"] = std.get(m)
        row["trials"] = trials or None
        row["source"] = source
        rows.append(row)
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """The metrics table for reading: `0.306 ± 0.016` cells."""
    out = table.drop(columns=[c for c in table.columns if c.endswith("_std")]).copy()
    for m in METRICS:
        if m in table:
            out[m] = [("-" if pd.isna(v) else f"{v:.3f} ± {s:.3f}") for v, s in zip(table[m], table[f"{m}_std"])]
    return out


def plot_curves_overlay(runs: dict[str, Run], names: Sequence[str], *, metric: str = "val/mAP", axes=None,
                        smooth: int = 5):
    """Training curves of several runs on shared axes: the total loss per step (left) and `metric` per epoch
    (right). Returns the two Axes."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    ax_loss, ax_val = axes
    for name in names:
        m = runs[name].metrics
        if m.empty:
            continue
        if "loss/total" in m:
            steps = m.dropna(subset=["loss/total"])
            ax_loss.plot(steps["step"], steps["loss/total"].rolling(smooth, min_periods=1).mean(), label=name, lw=1)
        if metric in m:
            ev = m.dropna(subset=[metric])
            ax_val.plot(ev["epoch"], ev[metric], marker="o", ms=3, label=name)
    ax_loss.set(xlabel="step", ylabel="total loss", title="training loss")
    ax_val.set(xlabel="epoch", ylabel=metric.removeprefix("val/"), title=f"{metric} (held-out training identities)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return axes
