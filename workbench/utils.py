"""Small helpers shared by the library, the notebooks and the tests."""

from __future__ import annotations

import json
import os
import random
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


def record(name: str, value: Any) -> Any:
    """Record a value for the notebook tests and print it as one JSON line (`WORKBENCH_RECORD {...}`)."""
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    _RECORDS[name] = value
    print("WORKBENCH_RECORD " + json.dumps({name: value}))
    return value


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (the model itself otherwise)."""
    return model.module if hasattr(model, "module") else model


def cache_dir() -> Path:
    """Where derived data (synthetic exports, feature caches) live: `$WORKBENCH_CACHE` or ~/.cache/reid-workbench."""
    root = os.environ.get("WORKBENCH_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "reid-workbench"
