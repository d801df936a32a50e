"""The run store: one folder per run, never silently overwritten.

    runs/<name>/
        config.json        the full Config
        environment.json   python, torch, device, platform, git commit (and whether the tree was dirty)
        metrics.jsonl      one JSON object per logged step or evaluation
        results.json       final results: best validation score and epoch, test protocol (mean, std, per trial)
        checkpoints/last.pt   full training state (model, optimiser, scheduler, sampler, RNG); resume from it
        checkpoints/best.safetensors   model weights of the epoch picked on validation identities

`list_runs()` tabulates runs for comparison, `load_run()` opens one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from workbench.config import Config

CONFIG, ENV, METRICS, RESULTS = "config.json", "environment.json", "metrics.jsonl", "results.json"
LAST, BEST = "checkpoints/last.pt", "checkpoints/best.safetensors"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers never see a partial one: temp file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    """`torch.save` through a temp file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(state_dict: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Model weights as safetensors, written atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load model weights from safetensors, or from a torch file with `weights_only=True` (never executes code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("model", state) if isinstance(state, dict) else state


def environment_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_count": os.cpu_count(),
        "time": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:  # pragma: no cover
        pass
    repo = Path(__file__).resolve().parent.parent
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                            check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["git_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


@dataclass
class Run:
    """A run folder. Create with `Run.create` (refuses to overwrite), open with `load_run`."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, config: Config, *, overwrite: bool = False) -> Run:
        name = config.run.name or default_run_name(config)
        path = Path(config.run.out_dir) / name
        if config.run.name is None:  # an automatic name never collides: two runs can start within one second
            n = 2
            while path.exists():
                path = Path(config.run.out_dir) / f"{name}-{n}"
                n += 1
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise FileExistsError(
                    f"run folder {path} already exists. Resume it with resume=True (CLI: --resume), choose another "
                    f"run.name, or pass overwrite=True (CLI: --overwrite) to replace it.")
            import shutil

            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        config.save(path / CONFIG)
        atomic_write_bytes(path / ENV, json.dumps(environment_info(), indent=2).encode())
        return run

    @property
    def config(self) -> Config:
        return Config.load(self.path / CONFIG)

    def log(self, **values: Any) -> None:
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(values, default=float) + "\n")

    @property
    def metrics(self) -> pd.DataFrame:
        path = self.path / METRICS
        if not path.exists():
            return pd.DataFrame()
        return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])

    def truncate_metrics(self, step: int) -> None:
        """Drop logged lines after `step` (a resumed run re-logs the steps after its checkpoint)."""
        path = self.path / METRICS
        if path.exists():
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
            atomic_write_bytes(path, ("\n".join(keep) + "\n" if keep else "").encode())

    @property
    def results(self) -> dict:
        path = self.path / RESULTS
        return json.loads(path.read_text()) if path.exists() else {}

    def save_results(self, results: dict) -> None:
        atomic_write_bytes(self.path / RESULTS, json.dumps(results, indent=2, default=float).encode())

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST

    @property
    def best_weights(self) -> Path:
        return self.path / BEST

    def weights_path(self) -> Path:
        """The weights evaluation uses: the validation-selected ones if present, else the last checkpoint."""
        if self.best_weights.exists():
            return self.best_weights
        if self.last_checkpoint.exists():
            return self.last_checkpoint
        raise FileNotFoundError(f"run {self.path} has no checkpoint (looked for {BEST} and {LAST})")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"


def default_run_name(config: Config) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{config.run.method}-{config.data.dataset}-{config.run.profile}-{stamp}"


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(f"{path} is not a run folder (no {CONFIG}); list runs with workbench.runs.list_runs()")
    return Run(path)


_DISPLAY_ONLY = {("run", "name"), ("run", "live_plot"), ("run", "tensorboard")}


def same_recipe(a: Config, b: Config) -> bool:
    """True when two configs train the same thing (they may differ in run name and display options)."""
    da, db = a.to_dict(), b.to_dict()
    for section, key in _DISPLAY_ONLY:
        da[section].pop(key, None)
        db[section].pop(key, None)
    return json.dumps(da, sort_keys=True, default=str) == json.dumps(db, sort_keys=True, default=str)


def find_run(config: Config) -> Run | None:
    """The most recent finished run under `config.run.out_dir` trained with the same recipe as `config`, or None."""
    found = []
    for cfg_path in Path(config.run.out_dir).glob(f"*/{CONFIG}"):
        run = Run(cfg_path.parent)
        try:
            if run.results.get("status") == "finished" and same_recipe(run.config, config):
                found.append((cfg_path.stat().st_mtime, run))
        except (ValueError, json.JSONDecodeError, KeyError):
            continue
    return max(found, key=lambda t: t[0])[1] if found else None


def list_runs(root: str | Path = "runs") -> pd.DataFrame:
    """One row per run under `root`: name, method, dataset, profile, status, best validation, test metrics."""
    rows = []
    for cfg_path in sorted(Path(root).glob(f"*/{CONFIG}")):
        run = Run(cfg_path.parent)
        try:
            cfg = run.config
        except (ValueError, json.JSONDecodeError) as exc:
            rows.append({"name": run.name, "status": f"unreadable config: {exc}"})
            continue
        res = run.results
        row = {"name": run.name, "method": cfg.run.method, "dataset": cfg.data.dataset, "profile": cfg.run.profile,
               "model": cfg.model.name, "status": res.get("status", "running or interrupted"),
               "best_epoch": res.get("best_epoch"), "train_time_s": res.get("train_time_s")}
        for key, value in (res.get("val") or {}).items():
            row[f"val_{key}"] = value
        for key, value in ((res.get("test") or {}).get("mean") or {}).items():
            row[f"test_{key}"] = value
        rows.append(row)
    return pd.DataFrame(rows)
