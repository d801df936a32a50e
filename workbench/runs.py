"""The run store: one folder per run, never silently overwritten, written by one process at a time.

    runs/<name>/
        config.json        the full Config (updated when a resume moves the stopping point)
        environment.json   python, torch, device, platform, git commit (and whether the tree was dirty)
        metrics.jsonl      one JSON object per logged step or evaluation
        status.json        the status record (`RunStatus`): status, attempts, pid, updated, and why it stopped
        results.json       what the run measured: best validation score and epoch, test protocol, steps, time
        checkpoints/last.pt   full training state (`workbench.checkpoint`: model, optimiser, scheduler, sampler, RNG)
        checkpoints/best.safetensors   model weights of the epoch picked on validation identities
        .workbench-run     marks a folder the run store created (only such folders are ever replaced)
        .lock              held (flock) by the process writing the run; names that process

A run's status moves through an explicit state machine (`TRANSITIONS`):

    created -> running -> finished | stopped (run.max_steps) | interrupted (SIGINT/SIGTERM) | failed (an error)
    stopped | interrupted | failed -> running (resume)

`finished` is final: to train longer, start a new run from it (`model.pretrained=runs/<name>`). A run whose
status says "running" while no process holds its lock was killed without saving; `Run.status` reports it as
"interrupted" and a resume continues from its last checkpoint. Runs written before status.json kept their status
fields in results.json; they are read from there until the run's next status change writes status.json.

`Run.create(config)` makes a run folder, `load_run(path)` opens one (the one way, for every caller), `list_runs()`
tabulates runs for comparison. A relative `run.out_dir` is taken from the project folder (`workbench.utils.runs_dir`,
as the dashboard and the notebooks do), not from the working directory.
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
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from workbench.config import Config
from workbench.utils import runs_dir

CONFIG, ENV, METRICS, RESULTS = "config.json", "environment.json", "metrics.jsonl", "results.json"
STATUS = "status.json"
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
_LEGACY_STATUS = {"stopped at run.max_steps": "stopped"}  # a status written before the state machine


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


def damaged_file_error(path: Path, what: str, exc: BaseException) -> CheckpointError:
    """The error for a file that cannot be trusted, in our words only: torch's own message may advise loading with
    code execution enabled, which we never do."""
    return CheckpointError(
        f"{what} {path} is damaged or was not written by the workbench ({type(exc).__name__}); it was not loaded. "
        "Delete it and use another copy: for a run's last.pt, remove it and resume (the run restarts from its "
        "first step) or start a new run; for weights, re-export them from the run that made them.")


def read_torch_file(path: str | Path, what: str) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU (never executes code); `CheckpointError` if damaged.

    Args:
        what: the kind of file, for the messages ("checkpoint", "weights file").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, wrong format: all mean "do not trust this file"
        raise damaged_file_error(path, what, exc) from None


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Load model weights from safetensors, or from a torch file with `weights_only=True` (never executes code)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        state = read_torch_file(path, "weights file")
        return state.get("model", state) if isinstance(state, dict) else state
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise damaged_file_error(path, "weights file", exc) from None


def environment_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),  # intra-op threads: the float sums' order, so the trained numbers, depend on it
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


# ------------------------------------------------------------------------------------------------ where runs live

def run_path(config: Config) -> Path:
    """The folder `config.run.name` names inside `config.run.out_dir`; a name that would leave it is refused.

    A relative `run.out_dir` is taken from the project folder (`workbench.utils.runs_dir`), not the working directory.
    """
    out_dir = runs_dir(config.run.out_dir)
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


def default_run_name(config: Config) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{config.run.method}-{config.data.dataset}-{config.run.profile}-{stamp}"


def is_run_folder(path: Path) -> bool:
    """A folder the run store created (its marker; or, for runs made before the marker, config + environment)."""
    path = Path(path)
    return path.is_dir() and not path.is_symlink() and (
        (path / MARKER).is_file() or ((path / CONFIG).is_file() and (path / ENV).is_file()))


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _read_json(path: Path, fix: str) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is damaged ({exc}); {fix}") from None


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, default=float).encode())


# ------------------------------------------------------------------------------------------------- the status record

@dataclass(frozen=True)
class RunStatus:
    """A run's status record (status.json): where it stands in `TRANSITIONS`, and why it got there."""

    status: str = "created"
    attempts: int = 0                 # how many times training started (1 + resumes)
    pid: int | None = None            # the process of the latest attempt
    updated: str | None = None        # when the status last changed (ISO time)
    error: str | None = None          # "failed": the exception
    signal: str | None = None         # "interrupted": SIGINT or SIGTERM
    stop_reason: str | None = None    # "stopped": the option that stopped it, e.g. "run.max_steps=4"

    FIELDS = ("status", "attempts", "pid", "updated", "error", "signal", "stop_reason")

    @classmethod
    def read(cls, folder: Path) -> RunStatus:
        """The record of the run in `folder`: status.json; for a run written before it, the status fields of
        results.json; with neither, "created" (or "missing" when the folder has no config.json)."""
        if (folder / STATUS).exists():
            data = _read_json(folder / STATUS, "delete it and resume the run, or start a new run")
        elif (folder / RESULTS).exists():
            data = _read_json(folder / RESULTS, "it is rewritten when the run is resumed")
        else:
            data = {}
        values = {k: data[k] for k in cls.FIELDS if k in data} if isinstance(data, dict) else {}
        values.setdefault("status", "created" if (folder / CONFIG).exists() else "missing")
        values["status"] = _LEGACY_STATUS.get(values["status"], values["status"])
        values["attempts"] = int(values.get("attempts") or 0)
        return cls(**values)

    def advance(self, status: str, *, error: str | None = None, signal: str | None = None,
                stop_reason: str | None = None, writer_died: bool = False) -> RunStatus:
        """The record after moving to `status`; `ValueError` if `TRANSITIONS` does not allow the move.

        Args:
            writer_died: the caller holds the lock of a run recorded as running (its writer was killed): the move
                is judged from "interrupted".
        """
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}; statuses are {STATUSES}")
        current = "interrupted" if (self.status == "running" and status == "running" and writer_died) else self.status
        if status not in TRANSITIONS.get(current, ()):
            raise ValueError(f"cannot go from {current!r} to {status!r} (allowed: {TRANSITIONS.get(current, ())})")
        starting = status == "running"
        return RunStatus(status, self.attempts + starting, os.getpid() if starting else self.pid, _now(),
                         error, signal, stop_reason)

    def to_dict(self) -> dict[str, Any]:
        """The record as written: fields that are None are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}


# ------------------------------------------------------------------------------------------------- typed results

@dataclass(frozen=True)
class ProtocolScores:
    """A test protocol's numbers as `fit` recorded them in results.json (the same as `ProtocolResult` holds)."""

    mean: Mapping[str, float]           # metric -> mean over the gallery draws (rank1, rank5, ..., mAP, mINP)
    std: Mapping[str, float]            # metric -> population std over the draws (0 for one draw)
    per_trial: tuple[dict, ...] = ()    # one dict per draw: the metrics and the query / gallery counts

    @classmethod
    def from_dict(cls, d: Mapping | None) -> ProtocolScores | None:
        if not d:
            return None
        return cls(dict(d.get("mean") or {}), dict(d.get("std") or {}), tuple(d.get("per_trial") or ()))

    def table(self) -> pd.DataFrame:
        """One row per gallery draw."""
        return pd.DataFrame(list(self.per_trial))


# ---------------------------------------------------------------------------------------------------------- the run

@dataclass
class Run:
    """A run folder. Make one with `Run.create(config)`, open one with `load_run(path)`."""

    path: Path
    _lock_fd: int | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

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
            cls(path).check_unlocked()
        return path

    @classmethod
    def create(cls, config: Config, *, overwrite: bool = False, start: dict[str, str] | None = None) -> Run:
        """Make the run folder (status "created"); with `overwrite`, replace an existing run of that name.

        Args:
            start: fingerprints of what the run starts from (`{"weights": ..., "data": ...}`), kept in
                environment.json so that a resume can refuse a changed start (`check_start`).
        """
        path = cls.check_target(config, overwrite=overwrite)
        if path.exists() and any(path.iterdir()):  # check_target allowed it: an unlocked run folder
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        atomic_write_bytes(path / MARKER, json.dumps({"created": _now(), "pid": os.getpid()}).encode())
        run.save_config(config)
        env = environment_info() | ({"start": dict(start)} if start else {})
        atomic_write_bytes(path / ENV, json.dumps(env, indent=2).encode())
        _write_json(path / STATUS, RunStatus(updated=_now()).to_dict())
        return run

    @property
    def environment(self) -> dict[str, Any]:
        """environment.json: python, torch, device, git commit, and `start` (what the run started from)."""
        path = self.path / ENV
        return json.loads(path.read_text()) if path.is_file() else {}

    def check_start(self, start: dict[str, str]) -> None:
        """Refuse to continue the run from a different start than it was created with: other initial weights (a
        rebuilt stand-in, other pretrained weights) or other data. Runs made before the record pass."""
        recorded = self.environment.get("start")
        if not recorded:
            return
        changed = [k for k in sorted(set(recorded) | set(start)) if recorded.get(k) != start.get(k)]
        if changed:
            what = {"weights": "initial weights (pretrained file, stand-in or seed)", "data": "dataset files"}
            raise ValueError(
                f"cannot resume {self.path}: its {', '.join(what.get(k, k) for k in changed)} differ from those it "
                f"started with (recorded {', '.join(f'{k}={recorded.get(k)}' for k in changed)}; now "
                f"{', '.join(f'{k}={start.get(k)}' for k in changed)}). The checkpoint would continue another "
                "run. Restore the original weights or data, or start a new run.")

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

    # -------------------------------------------------------------------------------------------------- status

    @property
    def status_record(self) -> RunStatus:
        """The status record as written (status.json; older runs: the status fields of results.json)."""
        return RunStatus.read(self.path)

    @property
    def status(self) -> str:
        """The recorded status; "interrupted" for a run recorded as running that no process is writing (killed)."""
        status = self.status_record.status
        if status == "running" and not self.locked_by_other() and self._lock_fd is None:
            return "interrupted"
        return status

    def start_attempt(self, **results: Any) -> None:
        """Move to "running" for a new attempt (the first, or a resume); results.json restarts from `results`
        (e.g. num_classes): the numbers of an earlier attempt, such as a stopped run's test, no longer hold."""
        record = self._advance("running")
        self.save_results(results)
        _write_json(self.path / STATUS, record.to_dict())

    def set_status(self, status: str, *, error: str | None = None, signal: str | None = None,
                   stop_reason: str | None = None) -> None:
        """Move to `status` (a legal transition of `TRANSITIONS`), recording why: the exception of a failed run,
        the signal of an interrupted one, the reason a run stopped. A new attempt starts with `start_attempt`."""
        if status == "running":
            raise ValueError("a new attempt starts with run.start_attempt(...), which also clears the results of "
                             "the previous one")
        record = self._advance(status, error=error, signal=signal, stop_reason=stop_reason)
        _write_json(self.path / STATUS, record.to_dict())

    def _advance(self, status: str, **reason: str | None) -> RunStatus:
        try:
            return self.status_record.advance(status, writer_died=self._lock_fd is not None, **reason)
        except ValueError as exc:
            raise ValueError(f"run {self.path} {exc}") from None

    # --------------------------------------------------------------------------------------------------- files

    @property
    def config(self) -> Config:
        try:
            return Config.load(self.path / CONFIG)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{self.path / CONFIG} cannot be read as a workbench config: {exc}") from None

    def save_config(self, config: Config) -> None:
        """Write config.json (at creation; again when a resume moves the stopping point)."""
        atomic_write_bytes(self.path / CONFIG, json.dumps(config.to_dict(), indent=2, default=str).encode())

    def log(self, **values: Any) -> None:
        """Append one record to metrics.jsonl."""
        self.log_records([values])

    def log_records(self, records: Iterable[dict]) -> None:
        """Append records to metrics.jsonl, one JSON line each, in one write."""
        lines = "".join(json.dumps(r, default=float) + "\n" for r in records)
        if lines:
            with open(self.path / METRICS, "a") as f:
                f.write(lines)

    @property
    def metrics(self) -> pd.DataFrame:
        """metrics.jsonl as a table: one row per logged step (loss/*, lr), validation (val/*) or test (test/*)."""
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
        """results.json: what the run measured (num_classes, best_epoch, val, test, steps, train_time_s, ...)."""
        path = self.path / RESULTS
        data = _read_json(path, "it is rewritten when the run is resumed") if path.exists() else {}
        return {k: v for k, v in data.items() if k not in RunStatus.FIELDS}  # older runs kept their status here

    def save_results(self, results: dict) -> None:
        """Replace results.json. The status is not a result: it moves with `start_attempt` / `set_status`."""
        mixed = sorted(set(results) & set(RunStatus.FIELDS))
        if mixed:
            raise ValueError(f"results.json holds results only, got the status field(s) {mixed}; the status moves "
                             "with run.start_attempt() / run.set_status()")
        _write_json(self.path / RESULTS, results)

    # ------------------------------------------------------------------------------------- typed result access

    @property
    def test(self) -> ProtocolScores | None:
        """The test protocol on the selected weights (None until the run has been tested)."""
        return ProtocolScores.from_dict(self.results.get("test"))

    @property
    def test_rerank(self) -> ProtocolScores | None:
        """The test protocol with k-reciprocal re-ranking (runs with run.test_rerank=True)."""
        return ProtocolScores.from_dict(self.results.get("test_rerank"))

    @property
    def val(self) -> dict[str, float]:
        """The validation metrics of the selected epoch ({} without validation)."""
        return dict(self.results.get("val") or {})

    @property
    def best_epoch(self) -> int | None:
        """The epoch (1-based) whose weights validation selected; None without validation."""
        return self.results.get("best_epoch")

    @property
    def train_time_s(self) -> float | None:
        """Seconds spent in training steps (validation and test excluded), over every attempt."""
        return self.results.get("train_time_s")

    @property
    def num_classes(self) -> int:
        """Training identities of the classifier (0 for a run that never started)."""
        return int(self.results.get("num_classes", 0))

    # ------------------------------------------------------------------------------------------------- weights

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


def load_run(path: str | Path) -> Run:
    """Open the run folder `path` (the one way to open a run); `FileNotFoundError` if it is not one."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(f"{path} is not a run folder (no {CONFIG}); list runs with workbench.runs.list_runs()")
    return Run(path)


# ------------------------------------------------------------------------------------------- finding and listing

_DISPLAY_ONLY = {("run", "name"), ("run", "live_plot"), ("run", "tensorboard"), ("run", "log_every")}


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
    for cfg_path in runs_dir(config.run.out_dir).glob(f"*/{CONFIG}"):
        run = load_run(cfg_path.parent)
        try:
            done = run.results.get("epochs_done", config.optim.epochs)  # runs written before epochs_done existed
            if (run.status_record.status == "finished" and done == config.optim.epochs
                    and same_recipe(run.config, config)):
                found.append((cfg_path.stat().st_mtime, run))
        except (ValueError, TypeError, KeyError):
            continue
    return max(found, key=lambda t: t[0])[1] if found else None


def list_runs(root: str | Path | None = None) -> pd.DataFrame:
    """One row per run under `root` (default: the project's runs/): name, method, dataset, profile, status, best
    validation, test metrics."""
    rows = []
    for cfg_path in sorted(runs_dir(root).glob(f"*/{CONFIG}")):
        run = load_run(cfg_path.parent)
        try:
            cfg, res, status = run.config, run.results, run.status
        except (ValueError, TypeError) as exc:
            rows.append({"name": run.name, "status": f"unreadable: {exc}"})
            continue
        row = {"name": run.name, "method": cfg.run.method, "dataset": cfg.data.dataset, "profile": cfg.run.profile,
               "model": cfg.model.name, "status": status,
               "best_epoch": res.get("best_epoch"), "train_time_s": res.get("train_time_s")}
        for key, value in (res.get("val") or {}).items():
            row[f"val_{key}"] = value
        for key, value in ((res.get("test") or {}).get("mean") or {}).items():
            row[f"test_{key}"] = value
        rows.append(row)
    return pd.DataFrame(rows)
