"""Plotting helpers and analysis instruments. Plot functions take `ax=None`/`axes=None`, return the Axes and never
call `plt.show()`.

Instruments (one module each): `embedding` (UMAP maps of feature branches with disentanglement numbers, modality
centres), `cam` (similarity Grad-CAM for the CNNs and ViTs), `attention` (CLS attention, rollout, masks), `ranked`
(ranked lists, per-query tables, failure browser), `distances` (positive / negative distances per modality pair);
per framework, `dakd` (the confidence mask), `icre` (MPFR's masks) and `sd2` (semantic / style codes, robustness
curves, HSLM masks). They read runs through `workbench.evaluate`. Heavy dependencies (umap-learn, pytorch-grad-cam)
are imported when first used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def savefig(fig, name: str, directory: str | Path | None = None) -> Path:
    """Save a figure as PNG under `directory`, `$WORKBENCH_FIGURES`, or the project's outputs/figures (found from
    any working directory, `workbench.utils.outputs_dir`); return the path.

    `make demo` and the notebook tests set `WORKBENCH_FIGURES` so every executed notebook leaves its figures behind.
    """
    from workbench.utils import outputs_dir

    directory = Path(directory or os.environ.get("WORKBENCH_FIGURES") or outputs_dir() / "figures")
    directory.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "figure"
    path = directory / f"{safe}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def __getattr__(name: str):
    """`viz.cam`, `viz.embedding`, ... import on first access (the engine imports `viz.curves` alone)."""
    import importlib

    if name in ("attention", "cam", "curves", "dakd", "data", "distances", "embedding", "icre", "ranked", "sd2"):
        return importlib.import_module(f"workbench.viz.{name}")
    raise AttributeError(f"module 'workbench.viz' has no attribute {name!r}")
