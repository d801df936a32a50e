"""The run store: one folder per run, never silently overwritten, written by one process at a time.

    runs/<name>/
        config.json        the full Config (updated when a resume moves the stopping point)
        environment.json   python, torch, device, platform, git commit (and whether the tree was dirty)
        metrics.jsonl      one JSON object per logged step or evaluation
        results.json       status and final results: best validation score and epoch, test protocol
        checkpoints/last.pt   full training state (model, optimiser, scheduler, sampler, RNG, method state)
        checkpoints/best.safetensors   model weights of the epoch picked on validation identities
        .workbench-run     marks a folder the run store created (only such folders are ever replaced)
        .lock              held (flock) by the process writing the run; names that process

A run's status moves through an explicit state machine (`TRANSITIONS`):

    created -> running -> finished | stopped (run.max_steps) | interrupted (SIGINT/SIGTERM) | failed (an error)
    stopped | interrupted | failed -> running (resume)

`finished` is final: to train longer, start a new run from it (`model.pretrained=runs/<name>`). A run whose
results say "running" while no process holds its lock was killed without saving; `Run.status` reports it as
"interrupted" and a resume continues from its last checkpoint.

`list_runs()` tabulates runs for comparison, `load_run()` opens one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from workbench.config import Config

CONFIG, ENV, METRICS, RESULTS = "config.json", "environment.json", "metrics.jsonl", "results.json"
LAST, BEST = "checkpoints/last.pt", "checkpoints/best.safetensors"
MARKER, LOCK = ".workbench-run", ".lock"

STATUSES = ("created", "running", "stopped", "interrupted", "failed", "finished")
TRANSITIONS: dict[str | None, tuple[str, ...]] = {
    None: ("created",),
    "created": ("running", "failed", "interrupted"),
    "running": ("finished", "stopped", "interrupted", "failed"),
    "stopped": ("running",),
    "interrupted": ("running",),
    "failed": ("running",),
    "finished": (),
}
RESUMABLE = ("created", "stopped", "interrupted", "failed")


class RunLockedError(RuntimeError):
    """Another process is writing the run folder."""


class CheckpointError(RuntimeError):
    """A checkpoint or weights file is damaged or is not what the run store wrote."""


def _file_mode() -> int:
    """The mode `open()` gives new files under the current umask (0o644 under the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_file(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _file_mode())  # mkstemp makes 0600 files; the run's files are as readable as config.json
    return fd, tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers never see a partial one: temp file in the same folder, fsync, rename."""
    fd, tmp = _temp_file(path)
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
    fd, tmp = _temp_file(path)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the `.<name>.*.tmp` files that an atomic save killed by SIGKILL left behind; return them.

    Only call this while holding the folder's lock: a live writer's temp file looks the same.
    """
    stale = [p for p in folder.rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_weights(state_dict: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Model weights as safetensors, written atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def _damaged(path: Path, what: str, exc: BaseException) -> CheckpointError:
    # Our words only: torch's own message may advise loading with code execution enabled, which we never do.
    return CheckpointError(
        f"{what} {path} is damaged or was not written by the workbench ({type(exc).__name__}); it was not loaded. "
        "Delete it and use another copy: for a run's last.pt, remove it and resume (the run restarts from its "
        "first step) or start a new run; for weights, re-export them from the run that made them.")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training state (`checkpoints/last.pt`) safely (`weights_only=True`); `CheckpointError` if damaged."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, wrong format: all mean "do not trust this file"
        raise _damaged(path, "checkpoint", exc) from None
    needed = {"model", "optimizer", "scheduler", "epoch", "step", "consumed", "sampler", "rng"}
    if not isinstance(state, dict) or not needed <= set(state):
        raise _damaged(path, "checkpoint", ValueError("missing training-state entries"))
    return state


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load model weights from safetensors, or from a torch file with `weights_only=True` (never executes code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _damaged(path, "weights file", exc) from None
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


def run_path(config: Config) -> Path:
    """The folder `config.run.name` names inside `config.run.out_dir`; a name that would leave it is refused."""
    out_dir = Path(config.run.out_dir)
    name = config.run.name
    if name is None:
        return out_dir / default_run_name(config)
    if (not isinstance(name, str) or not name.strip() or name in (".", "..") or "/" in name or "\\" in name
            or os.sep in name or Path(name).is_absolute() or name.startswith(".")):
        raise ValueError(f"run.name must be a plain folder name inside run.out_dir ({out_dir}), got {name!r}: no "
                         "'/', no '..', not absolute, not hidden. To write elsewhere set run.out_dir instead.")
    path = out_dir / name
    if path.is_symlink() or path.resolve().parent != out_dir.resolve():
        raise ValueError(f"run folder {path} resolves outside run.out_dir ({out_dir.resolve()}); choose another "
                         "run.name")
    return path


def is_run_folder(path: Path) -> bool:
    """A folder the run store created (its marker; or, for runs made before the marker, config + environment)."""
    path = Path(path)
    return path.is_dir() and not path.is_symlink() and (
        (path / MARKER).is_file() or ((path / CONFIG).is_file() and (path / ENV).is_file()))


@dataclass
class Run:
    """A run folder. Create with `Run.create` (refuses to overwrite), open with `load_run`."""

    path: Path
    _lock_fd: int | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def check_target(cls, config: Config, *, overwrite: bool = False) -> Path:
        """The folder a new run of `config` would use, checked before any work: raises if it may not be used.

        Raises:
            ValueError: the name escapes `run.out_dir`, or `overwrite` would replace a folder that is not a run.
            FileExistsError: the run exists and `overwrite` is False.
            RunLockedError: `overwrite` of a run another process is writing.
        """
        path = run_path(config)
        if config.run.name is None:  # an automatic name never collides: two runs can start within one second
            base, n = path, 2
            while path.exists():
                path = base.with_name(f"{base.name}-{n}")
                n += 1
            return path
        if path.exists() and not (path.is_dir() and not any(path.iterdir())):
            if not overwrite:
                raise FileExistsError(
                    f"run folder {path} already exists. Resume it with resume=True (CLI: --resume {path}), choose "
                    "another run.name, or pass overwrite=True (CLI: --overwrite) to replace it.")
            if not is_run_folder(path):
                raise ValueError(f"{path} exists and is not a run folder (the run store did not create it); "
                                 "overwrite only replaces runs. Choose another run.name.")
            Run(path).check_unlocked()
        return path

    @classmethod
    def create(cls, config: Config, *, overwrite: bool = False) -> Run:
        """Make the run folder (status "created"); with `overwrite`, replace an existing run of that name."""
        path = cls.check_target(config, overwrite=overwrite)
        if path.exists() and any(path.iterdir()):  # check_target allowed it: an unlocked run folder
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        atomic_write_bytes(path / MARKER, json.dumps({"created": _now(), "pid": os.getpid()}).encode())
        config.save(path / CONFIG)
        atomic_write_bytes(path / ENV, json.dumps(environment_info(), indent=2).encode())
        run.save_results({"status": "created"})
        return run

    # ---------------------------------------------------------------------------------------------------- lock

    def lock(self) -> Run:
        """Take the run's write lock (released by `unlock()` or when the process ends); `RunLockedError` if held.

        Also deletes temp files that an atomic save killed by SIGKILL left behind (safe now: no other writer).
        """
        import fcntl

        if self._lock_fd is not None:
            return self
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, _file_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(self._locked_message()) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now(), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        os.fsync(fd)
        self._lock_fd = fd
        stale = remove_stale_temp_files(self.path)
        if stale:
            print(f"removed {len(stale)} unfinished temp file(s) of an interrupted save in {self.path}")
        return self

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def locked_by_other(self) -> bool:
        """Whether another process (or another `Run` object) holds the write lock now."""
        import fcntl

        if self._lock_fd is not None or not (self.path / LOCK).exists():
            return False
        fd = os.open(self.path / LOCK, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def check_unlocked(self) -> None:
        if self.locked_by_other():
            raise RunLockedError(self._locked_message())

    def _locked_message(self) -> str:
        try:
            h = json.loads((self.path / LOCK).read_text())
            who = f"process {h['pid']} on {h['host']} (since {h['since']}: {h['command']})"
        except (OSError, ValueError, KeyError):
            who = "another process"
        return (f"run {self.path} is being written by {who}. Two writers would mix their metrics and checkpoints: "
                "wait for that process to end (or stop it) and retry.")

    # ------------------------------------------------------------------------------------------------- status

    @property
    def status(self) -> str:
        """The recorded status; "interrupted" for a run recorded as running that no process is writing (killed)."""
        status = self.results.get("status", "created" if (self.path / CONFIG).exists() else "missing")
        if status == "running" and not self.locked_by_other() and self._lock_fd is None:
            return "interrupted"
        return status

    def set_status(self, status: str, **fields: Any) -> None:
        """Move to `status` (a legal transition of `TRANSITIONS`), merging `fields` into results.json."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}; statuses are {STATUSES}")
        current = self.results.get("status")
        current = {"stopped at run.max_steps": "stopped"}.get(current, current)  # runs written before the states
        if current == "running" and status == "running" and self._lock_fd is not None:
            current = "interrupted"  # we hold the lock: the previous writer died while running
        if status not in TRANSITIONS.get(current, ()):
            raise ValueError(f"run {self.path} cannot go from {current!r} to {status!r} (allowed: "
                             f"{TRANSITIONS.get(current, ())})")
        if status == "running":  # a new attempt: results of an earlier one (a stopped run's test) no longer hold
            keep = {k: v for k, v in self.results.items() if k in ("num_classes", "attempts")}
            fields = {"attempts": int(keep.get("attempts", 0)) + 1, **fields}
        else:
            keep = {k: v for k, v in self.results.items() if k not in ("error", "signal", "stop_reason")}
        self.save_results({**keep, "status": status, **fields, "updated": _now()})

    # ------------------------------------------------------------------------------------------------- files

    @property
    def config(self) -> Config:
        try:
            return Config.load(self.path / CONFIG)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{self.path / CONFIG} cannot be read as a workbench config: {exc}") from None

    def log(self, **values: Any) -> None:
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(values, default=float) + "\n")

    @property
    def metrics(self) -> pd.DataFrame:
        path = self.path / METRICS
        if not path.exists():
            return pd.DataFrame()
        return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])

    def truncate_metrics(self, step: int, *, drop_val_at_step: bool = False) -> None:
        """Drop logged lines after `step` and every test line (a resumed run re-logs what follows its checkpoint).

        Args:
            drop_val_at_step: also drop validation lines of `step` (a checkpoint taken before that validation).
        """
        path = self.path / METRICS
        if not path.exists():
            return

        def keep(record: dict) -> bool:
            s = record.get("step", 0)
            if s > step or any(k.startswith("test/") for k in record):
                return False
            return not (drop_val_at_step and s == step and any(k.startswith("val/") for k in record))

        kept = [ln for ln in path.read_text().splitlines() if ln.strip() and keep(json.loads(ln))]
        atomic_write_bytes(path, ("\n".join(kept) + "\n" if kept else "").encode())

    @property
    def results(self) -> dict:
        path = self.path / RESULTS
        try:
            return json.loads(path.read_text()) if path.exists() else {}
        except ValueError as exc:
            raise ValueError(f"{path} is damaged ({exc}); it is rewritten when the run is resumed") from None

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


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


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
    """The most recent finished run under `config.run.out_dir` trained with the same recipe as `config`, or None.

    "Finished" means the status says so and the run trained every epoch its config asks for.
    """
    found = []
    for cfg_path in Path(config.run.out_dir).glob(f"*/{CONFIG}"):
        run = Run(cfg_path.parent)
        try:
            res = run.results
            done = res.get("epochs_done", config.optim.epochs)  # runs written before epochs_done was recorded
            if res.get("status") == "finished" and done == config.optim.epochs and same_recipe(run.config, config):
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
            res = run.results
        except (ValueError, json.JSONDecodeError) as exc:
            rows.append({"name": run.name, "status": f"unreadable: {exc}"})
            continue
        row = {"name": run.name, "method": cfg.run.method, "dataset": cfg.data.dataset, "profile": cfg.run.profile,
               "model": cfg.model.name, "status": run.status,
               "best_epoch": res.get("best_epoch"), "train_time_s": res.get("train_time_s")}
        for key, value in (res.get("val") or {}).items():
            row[f"val_{key}"] = value
        for key, value in ((res.get("test") or {}).get("mean") or {}).items():
            row[f"test_{key}"] = value
        rows.append(row)
    return pd.DataFrame(rows)
