"""Small helpers shared by the library, the notebooks and the tests."""

from __future__ import annotations

import json
import os
import random
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Values a notebook records with `record()`; the notebook tests read them back from the executed copy.
_RECORDS: dict[str, Any] = {}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_device(preference: str = "auto") -> torch.device:
    """Pick a device: "auto" tries CUDA, then Apple MPS, then CPU. `TORCH_DEVICE` overrides "auto"."""
    if preference == "auto":
        preference = os.environ.get("TORCH_DEVICE", "auto")
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={preference!r} was requested but CUDA is not available; use device='auto' or 'cpu'")
    return device


RECORD_MIME = "application/vnd.workbench.record+json"
RECORD_PREFIX = "WORKBENCH_RECORD "  # the older printed form of a record, still read back

# The profile whose numbers the notebooks' prose describes (`make demo` on a CPU), and the intra-op threads of that
# run. The thread count changes the order of float sums, and hundreds of training steps carry that to the size of the
# training noise: on two threads about half the statements miss their bounds although nothing is wrong (the VI
# baseline's test rank-1 is 0.186 there, 0.212 on one thread). `claims` checks records against them; `lab.setup`
# warns a notebook kernel on another count.
CLAIMED_PROFILE = "cpu-demo"
CLAIMED_THREADS = 1


def record(name: str, value: Any) -> Any:
    """Record a value for the notebook runner and the tests; returns it.

    Inside a notebook kernel the value goes out as a display message of its own MIME type (`RECORD_MIME`), which
    JupyterLab does not render, so the reader sees nothing; `read_records` reads it back from
    the executed notebook. Outside a kernel (scripts) one short line is printed.
    """
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    _RECORDS[name] = value
    payload = json.loads(json.dumps({name: value}))  # JSON-safe now, not when the notebook is saved
    if in_kernel():
        from IPython.display import display

        display({RECORD_MIME: payload}, raw=True)
    else:
        print(f"recorded {name} = {value!r}")
    return value


def read_records(executed: dict) -> dict:
    """Collect the `record()` values of an executed notebook (a dict loaded from the .ipynb JSON): the display
    outputs of MIME type `RECORD_MIME`, and `WORKBENCH_RECORD {...}` lines printed by older versions."""
    records: dict = {}
    for cell in executed.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "display_data" and RECORD_MIME in output.get("data", {}):
                value = output["data"][RECORD_MIME]
                records.update(json.loads(value) if isinstance(value, str) else value)
                continue
            if output.get("output_type") != "stream":
                continue
            text = output.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                if line.startswith(RECORD_PREFIX):
                    records.update(json.loads(line[len(RECORD_PREFIX):]))
    return records


def in_kernel() -> bool:
    """Whether this code runs inside a Jupyter kernel (a notebook, papermill), not a plain script or an IPython
    terminal. The one check the library makes before showing widgets, live plots or hidden display messages."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def to_numpy(x: Any, *, name: str = "x", ndim: int | None = None, shape: str = "") -> np.ndarray:
    """A numpy array of `x` (a tensor is detached and moved to the CPU first; anything else goes through
    `np.asarray`). The one tensor-to-numpy conversion of the package.

    Args:
        name: the argument's name, for the error message.
        ndim: the number of dimensions `x` must have (None: any).
        shape: how the error message writes the expected shape, e.g. "(Q, G)".

    Raises:
        ValueError: `x` does not have `ndim` dimensions.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D{' ' + shape if shape else ''}, got shape {x.shape}")
    return x


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (the model itself otherwise)."""
    return model.module if hasattr(model, "module") else model


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """Where derived data (synthetic exports, feature caches) live: `$WORKBENCH_CACHE` or ~/.cache/reid-workbench."""
    root = os.environ.get("WORKBENCH_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "reid-workbench"


def project_dir() -> Path:
    """The project folder that holds `runs/` and `outputs/`, the same from any working directory.

    `$WORKBENCH_HOME` when set; otherwise the repository this package was imported from (the folder above
    `workbench/` when it holds pyproject.toml: a source checkout or an editable install); otherwise the current
    directory. A notebook kernel that JupyterLab starts in `notebooks/` thus finds the runs `make demo` trained at
    the repository root.
    """
    env = os.environ.get("WORKBENCH_HOME")
    if env:
        return Path(env).expanduser().resolve()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file():
        return repo
    return Path.cwd()


def _project_path(path: str | Path | None, default: str) -> Path:
    if path is None or str(path) == "":
        return project_dir() / default
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_dir() / path


def runs_dir(path: str | Path | None = None) -> Path:
    """The runs folder: `project_dir()/runs` for None; a relative path is taken from the project folder, not the
    working directory (notebooks pass their `RUNS_DIR` parameter through this)."""
    return _project_path(path, "runs")


def outputs_dir(path: str | Path | None = None) -> Path:
    """The outputs folder (executed notebooks, figures, records, screenshots): `project_dir()/outputs` for None;
    a relative path is taken from the project folder."""
    return _project_path(path, "outputs")


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without touching the caller's random state.

    Python's `random`, NumPy's global generator and torch's CPU generator (and every CUDA generator) are saved before
    the block and restored after it, however much the block draws or re-seeds. Cache builds (the stand-in weights,
    the ImageNet conversion) run under it, so a run's numbers do not depend on whether its cache was warm: issue 22
    found a cold stand-in build re-seeding torch inside a run, after the run had seeded it.
    """
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextmanager
def build_lock(path: str | Path, what: str = "cache entry") -> Iterator[None]:
    """Hold the exclusive lock for building the cache entry `path` (an flock on the hidden `.<name>.lock` beside it).

    Two processes that find the same entry missing would both build it and the last writer would win; under this
    lock one builds and the others wait (told who holds it), then find the entry built. Use it as

        if not ready(path):
            with build_lock(path, "the stand-in weights"):
                if not ready(path):      # another process may have built it while we waited
                    build(path)          # atomically (temp file + rename)

    The lock is released when the block ends or the process dies; the lock file stays (it only names the last builder).
    flock may not hold across machines on NFS.
    """
    import fcntl

    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            print(f"waiting for {holder} to finish building {what} ({path.name})", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
