"""`load_dataset(name, root)`: one entry point for the six real datasets and the synthetic presets.

Real datasets: "sysu-mm01", "regdb", "llcm", "rgbnt201", "rgbnt100", "msvr310" (loaders in the modules of the
same name; protocols in METHODS.md section 5). Synthetic presets: "synthetic-vi" (a SYSU-MM01-layout export read
by the SYSU loader), "synthetic-rgbnt" (RGBNT201 layout) and "synthetic-<layout>" for each of the six layouts.
A preset exports once to `workbench.utils.cache_dir() / "synthetic" / "<layout>-<hash>"` (the hash covers the
export arguments and the generator's source files `synthetic*.py`) through a temporary folder that is renamed into
place only when the export is complete, then loads it through the real loader, so synthetic data takes the same
code path as real data.

Whenever the root holds `synthetic_factors.jsonl` (written by `workbench.data.synthetic.export`), each sample's
ground-truth factors are attached to `Sample.factors`, matched by the sample's path relative to the root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.data.base import EvalSplit, ReIDDataset
from workbench.data.llcm import load_llcm
from workbench.data.msvr310 import load_msvr310
from workbench.data.regdb import load_regdb
from workbench.data.rgbnt import load_rgbnt100, load_rgbnt201
from workbench.data.samples import Sample
from workbench.data.sysu import load_sysu
from workbench.utils import build_lock, cache_dir

__all__ = ["EvalSplit", "ReIDDataset", "attach_factors", "list_datasets", "load_dataset", "synthetic_root"]

LOADERS: dict[str, Callable[..., ReIDDataset]] = {
    "sysu-mm01": load_sysu,
    "regdb": load_regdb,
    "llcm": load_llcm,
    "rgbnt201": load_rgbnt201,
    "rgbnt100": load_rgbnt100,
    "msvr310": load_msvr310,
}
PRESETS = {
    "synthetic-vi": "sysu-mm01",
    "synthetic-rgbnt": "rgbnt201",
    **{f"synthetic-{k}": k for k in LOADERS},
}
MANIFEST = "synthetic_manifest.json"
FACTORS = "synthetic_factors.jsonl"
_EXPORT_ONLY = ("ids", "seed", "difficulty", "config")


def list_datasets() -> list[str]:
    """Names `load_dataset` accepts: the six real datasets, then the synthetic presets."""
    return list(LOADERS) + list(PRESETS)


def load_dataset(name: str, root: str | Path | None = None, **options: Any) -> ReIDDataset:
    """Load a dataset by name.

    Args:
        name: one of `list_datasets()`.
        root: dataset folder for a real dataset (required); must be None for a synthetic preset.
        **options: loader options (`verify=`, SYSU `mode=`/`merge_val=`, RegDB `trial=`/`direction=`, LLCM
            `direction=`/`deen_faithful=`); synthetic presets also take `ids=`, `seed=`, `difficulty=`
            ("easy", "default", "medium", "hard") or `config=` (a `SyntheticConfig`), and any other argument of
            `synthetic.export` (e.g. `images_per_id_cam=`).

    Returns:
        The loaded `ReIDDataset`.
    """
    key = name.lower()
    if key in PRESETS:
        if root is not None:
            raise ValueError(
                f"{name!r} is a synthetic preset with its own cache, so root= must be None; to read an existing "
                f"export, pass its layout name instead, e.g. load_dataset({PRESETS[key]!r}, root={str(root)!r})"
            )
        return _load_preset(key, **options)
    if key not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list_datasets()}")
    for opt in _EXPORT_ONLY:
        if opt in options:
            raise ValueError(
                f"{opt}= is an option of the synthetic presets, not of {key!r}; drop it or use 'synthetic-{key}'"
            )
    if root is None:
        raise FileNotFoundError(
            f"{key} needs root= (the folder of the downloaded dataset). It cannot be downloaded automatically: see "
            f"data_cards/{key}.md for how to obtain it, or try load_dataset('synthetic-{key}') first."
        )
    ds = LOADERS[key](root, **options)
    factors = Path(root).expanduser() / FACTORS
    if factors.is_file():
        ds = attach_factors(ds, read_factors(factors))
    return ds


# --------------------------------------------------------------------------------------------- synthetic


def synthetic_root(layout: str, **export_args: Any) -> Path:
    """Export (once) a synthetic dataset in `layout` and return its folder under `cache_dir()/synthetic`.

    Args:
        layout: one of the six real layouts.
        **export_args: `ids`, `seed`, `difficulty` (a preset name or `{"preset": ..., "<knob>": value}`, resolved to
            the layout's config class: `VehicleConfig` for rgbnt100 / msvr310, else `SyntheticConfig`) or `config`,
            and other `synthetic.export` arguments.
    """
    from workbench.data import synthetic

    export_args = dict(export_args)
    difficulty = export_args.pop("difficulty", None)
    if difficulty is not None:  # the layout's config class: VehicleConfig for rgbnt100 / msvr310, else SyntheticConfig
        if export_args.get("config") is not None:
            raise ValueError("pass either difficulty= or config=, not both")
        if isinstance(difficulty, dict):  # {"preset": "default", "<knob>": value, ...}: JSON-friendly knob overrides
            knobs = dict(difficulty)
            export_args["config"] = synthetic.config_for(layout, knobs.pop("preset", "default"), **knobs)
        else:
            export_args["config"] = synthetic.config_for(layout, str(difficulty))
    key_args = {k: _jsonable(v) for k, v in sorted(export_args.items())}
    digest = hashlib.sha1(json.dumps({"layout": layout, "args": key_args}, sort_keys=True).encode())
    # the generator's code is part of the key: a changed generator never reuses a stale export
    for source in sorted(Path(inspect.getfile(synthetic)).parent.glob("synthetic*.py")):
        digest.update(source.read_bytes())
    final = cache_dir() / "synthetic" / f"{layout}-{digest.hexdigest()[:10]}"
    if _complete(final):
        return final
    with build_lock(final, f"the synthetic {layout} export"):  # one process exports, the others wait and read it
        if not _complete(final):
            _export_once(layout, final, export_args)
    return final


def _export_once(layout: str, final: Path, export_args: dict) -> None:
    """Export into a temporary folder renamed to `final` (called under `final`'s build lock)."""
    from workbench.data import synthetic

    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # an older, incomplete export under the final name (should not happen with the rename)
        shutil.rmtree(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        params = inspect.signature(synthetic.export).parameters
        if "progress" in params:
            export_args.setdefault("progress", False)
        synthetic.export(layout, tmp, **export_args)
        if not _complete(tmp):
            raise RuntimeError(f"synthetic export to {tmp} finished without writing {MANIFEST}")
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_preset(key: str, **options: Any) -> ReIDDataset:
    from workbench.data import synthetic

    layout = PRESETS[key]
    export_params = set(inspect.signature(synthetic.export).parameters) - {"layout", "out"}
    export_args = {k: options.pop(k) for k in list(options) if k in export_params or k in _EXPORT_ONLY}
    root = synthetic_root(layout, **export_args)
    ds = LOADERS[layout](root, **options)
    ds = attach_factors(ds, read_factors(root / FACTORS))
    ds.name = key
    return ds


def _complete(folder: Path) -> bool:
    """A finished export: the generator's own check when it has one, else a readable manifest."""
    from workbench.data import synthetic

    if hasattr(synthetic, "is_complete_export"):
        return bool(synthetic.is_complete_export(folder))
    try:
        json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return True


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **dataclasses.asdict(value)}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


# --------------------------------------------------------------------------------------------- factors


def read_factors(path: Path) -> dict[str, dict[str, Any]]:
    """Read `synthetic_factors.jsonl`: relative path (posix) -> factors, for every path of every line.

    Each line holds the relative path(s) of one image or triplet ("path": str, or "paths": a list or a
    modality -> path mapping) and its "factors".
    """
    lookup: dict[str, dict[str, Any]] = {}
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}: line {i + 1}: expected one JSON object per line ({exc})") from exc
        paths = rec.get("paths", rec.get("path"))
        if isinstance(paths, dict):
            paths = list(paths.values())
        elif isinstance(paths, str):
            paths = [paths]
        if not paths:
            raise ValueError(f"{path}: line {i + 1}: expected a 'path' or 'paths' entry")
        factors = rec.get("factors", {})
        for p in paths:
            lookup[Path(p).as_posix()] = factors
    return lookup


def attach_factors(ds: ReIDDataset, lookup: dict[str, dict[str, Any]]) -> ReIDDataset:
    """Return `ds` with `Sample.factors` filled from `lookup` in every pool (shared samples and lists stay shared)."""
    root = Path(ds.root)
    memo: dict[int, Sample] = {}

    def convert(s: Sample) -> Sample:
        if id(s) not in memo:
            found = None
            for p in s.paths.values():
                found = lookup.get(Path(p).relative_to(root).as_posix())
                if found is not None:
                    break
            memo[id(s)] = dataclasses.replace(s, factors=found) if found is not None else s
        return memo[id(s)]

    containers: dict[int, Any] = {}  # keeps shared lists shared (RGBNT201: query is gallery)

    def walk(value: Any) -> Any:
        if isinstance(value, Sample):
            return convert(value)
        if not isinstance(value, (list, dict)):
            return value
        if id(value) not in containers:
            if isinstance(value, list):
                containers[id(value)] = [walk(v) for v in value]
            else:
                containers[id(value)] = {k: walk(v) for k, v in value.items()}
        return containers[id(value)]

    changes = {
        f.name: walk(getattr(ds, f.name)) for f in dataclasses.fields(ds) if f.name not in ("root", "options")
    }
    return dataclasses.replace(ds, **changes)
