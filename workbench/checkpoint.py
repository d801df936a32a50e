"""Everything an exact resume needs, captured into and restored from a run's `checkpoints/last.pt`.

A checkpoint is taken only at a consistent point of training: after a step (mid-epoch) or at an epoch boundary
(then `pending_validation` says whether that boundary's validation is still to run). It holds

    model, optimizer, scheduler, scaler     their state_dicts
    epoch, step, consumed                   epochs completed, optimiser steps taken, batches of the current epoch
    best, train_time, pending_validation    the selection so far, seconds trained, a validation still owed
    sampler                                 the PK sampler's position (`state_dict(consumed=...)`)
    method                                  the method's per-epoch state (e.g. DAKD's teacher memories)
    rng                                     torch, Python, NumPy (and CUDA) random states

so that a run resumed from it logs the same losses, learning rates and validation scores as one never stopped (on a
CPU, exactly). Files are written atomically through the run store and read with `weights_only=True`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from workbench.runs import atomic_torch_save, damaged_file_error, read_torch_file
from workbench.utils import unwrap_model

NEEDED = ("model", "optimizer", "scheduler", "epoch", "step", "consumed", "sampler", "rng")


def _no_best() -> dict[str, Any]:
    return {"score": -1.0, "epoch": None, "metrics": {}}


@dataclass
class TrainState:
    """Where training stands: the counters a checkpoint saves besides the modules, and two flags of the loop."""

    epoch: int = 0                    # epochs completed (the 0-based index of the epoch being trained)
    step: int = 0                     # optimiser steps taken
    consumed: int = 0                 # batches of the current epoch already trained (> 0: mid-epoch)
    best: dict[str, Any] = field(default_factory=_no_best)   # {"score": val mAP, "epoch": 1-based, "metrics": {...}}
    train_time: float = 0.0           # seconds in training steps, over every attempt
    pending_validation: bool = False  # at an epoch boundary whose validation has not run yet
    rng: dict[str, Any] | None = None  # the RNG of this point while the live one moves on (during validation)
    stopped: bool = False             # run.max_steps reached (not saved: a resume may move the stopping point)
    unsaved: bool = False             # progress since the last checkpoint (not saved)


class Trainables(Protocol):
    """What a checkpoint captures besides the TrainState (`workbench.train.Prepared` has these)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    sampler: Any
    method: Any


# -------------------------------------------------------------------------------------------------------------- RNG

def rng_state() -> dict[str, Any]:
    """The torch, Python, NumPy (and CUDA) random states, as plain lists and tensors (loadable weights_only)."""
    py = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": list(py[1]) + [py[2] or 0], "python_version": py[0],
             "numpy": np.random.get_state()[1].tolist(), "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore `rng_state()` output."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((state["python_version"], tuple(int(x) for x in py[:-1]), None))
    np.random.set_state(("MT19937", np.asarray(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------------ capture / restore

def capture(state: TrainState, parts: Trainables) -> dict[str, Any]:
    """The checkpoint of `state` (tensors are the live ones: save it before training goes on)."""
    return {
        "model": unwrap_model(parts.model).state_dict(), "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(), "scaler": parts.scaler.state_dict(),
        "epoch": state.epoch, "step": state.step, "consumed": state.consumed,
        "best": state.best, "pending_validation": state.pending_validation,
        "sampler": parts.sampler.state_dict(consumed=state.consumed) | {"epoch": state.epoch},
        "method": parts.method.state_dict(), "train_time": state.train_time, "rng": state.rng or rng_state(),
    }


def restore(saved: dict[str, Any], parts: Trainables, *, source: Path) -> TrainState:
    """Load a checkpoint into `parts` and return its TrainState. The RNG is set last: call this right before
    training continues (nothing may draw random numbers in between).

    Raises:
        ValueError: the checkpoint does not fit the model or optimiser (`source` names it).
    """
    try:
        parts.model.load_state_dict(saved["model"])
        parts.optimizer.load_state_dict(saved["optimizer"])
        parts.scheduler.load_state_dict(saved["scheduler"])
        parts.scaler.load_state_dict(saved["scaler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ValueError(f"checkpoint {source} does not fit this run's model and optimiser "
                         f"({str(exc).splitlines()[0][:200]}); was config.json edited?") from None
    state = TrainState(epoch=saved["epoch"], step=saved["step"], consumed=saved["consumed"], best=saved["best"],
                       train_time=saved["train_time"],
                       pending_validation=bool(saved.get("pending_validation", False)))
    if state.consumed:  # mid-epoch: the sampler's position and the method's per-epoch state (else rebuilt)
        parts.sampler.load_state_dict(saved["sampler"])
        parts.method.load_state_dict(saved.get("method") or {})
    set_rng_state(saved["rng"])
    return state


# ---------------------------------------------------------------------------------------------------------- files

def save(checkpoint: dict[str, Any], path: Path) -> None:
    """Write a checkpoint atomically: a reader (or a kill) never sees a partial file."""
    atomic_torch_save(checkpoint, path)


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (`weights_only=True`); `CheckpointError` if damaged or not a training state."""
    state = read_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or not set(NEEDED) <= set(state):
        raise damaged_file_error(Path(path), "checkpoint", ValueError("missing training-state entries"))
    return state
