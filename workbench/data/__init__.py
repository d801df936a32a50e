"""Datasets: one sample record, six real loaders, synthetic presets, gallery draws and held-out identities.

    from workbench import data
    ds = data.load_dataset("synthetic-vi", ids=24, seed=0)      # or data.load_dataset("sysu-mm01", root=...)
    print(ds.summary())                                          # ds.split_table(): the same counts as a table
    for split in ds.eval_splits(mode="all", shot=1):            # SYSU-MM01: ten seeded gallery draws
        ...

Submodules that are not imported here (`synthetic`, `samplers`, `transforms`, `torch_datasets`, `loaders`) load on
first attribute access, e.g. `data.synthetic.export(...)`; so do the training loader's `build_train_loader` and
`train_recipe_kinds` (from `loaders`).
"""

from __future__ import annotations

import importlib
from typing import Any

from workbench.data.base import DatasetFormatError, EvalSplit, ReIDDataset, draw_gallery
from workbench.data.registry import list_datasets, load_dataset
from workbench.data.samples import MM_MODALITIES, TRIPLET, VI_MODALITIES, Sample
from workbench.data.validation import holdout_identities

__all__ = [
    "MM_MODALITIES",
    "TRIPLET",
    "VI_MODALITIES",
    "DatasetFormatError",
    "EvalSplit",
    "ReIDDataset",
    "Sample",
    "draw_gallery",
    "holdout_identities",
    "list_datasets",
    "load_dataset",
]

_LAZY = ("synthetic", "samplers", "transforms", "torch_datasets", "loaders")
_LAZY_NAMES = {"build_train_loader": "loaders", "train_recipe_kinds": "loaders"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
