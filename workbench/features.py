"""Features of a model on samples, cached.

One place below the methods, the evaluation and the analysis instruments: `extract_features` runs any model over
samples with the eval forward it is given (a `workbench.methods.Method`, or any object with the same two methods,
`forward_eval` and `retrieval_branches`), so a method such as DAKD can build its memories with it and
`workbench.evaluate` scores runs with it. The result is a `workbench.metrics.EvalSet` (features by branch and
labels), the record the protocols score. Nothing here imports a method, the engine or the run store.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from workbench.config import Config, dataset_kind
from workbench.metrics.protocols import EvalSet
from workbench.models.output import ReIDOutput
from workbench.utils import build_lock, cache_dir


class EvalForward(Protocol):
    """What feature extraction needs of a method: its eval forward and the names of its retrieval features."""

    def forward_eval(self, model: nn.Module, images: dict[str, Tensor], modality: str | None,
                     camids: Tensor | None = None) -> ReIDOutput: ...

    def retrieval_branches(self, out: ReIDOutput) -> dict[str, Tensor]: ...


def test_transform(cfg: Config):
    """The test-time transform of a config: resize with `data.test_resize` (Lanczos for AGW, MCE and DAKD, bilinear
    for TOP-ReID) and normalise (ImageNet statistics for the visible-infrared CNNs, 0.5 / 0.5 for the ViT family)."""
    from workbench.data import transforms

    if cfg.data.test_resize not in ("lanczos", "bilinear", "bicubic", "nearest"):
        raise ValueError(f"data.test_resize must be 'lanczos', 'bilinear', 'bicubic' or 'nearest', got "
                         f"{cfg.data.test_resize!r}")
    if dataset_kind(cfg.data.dataset) == "vi":
        mean, std = transforms.IMAGENET_MEAN, transforms.IMAGENET_STD
    else:
        mean, std = transforms.VIT_MEAN, transforms.VIT_STD
    return transforms.build_test_transform(cfg.data.height, cfg.data.width, mean, std,
                                           interpolation=cfg.data.test_resize)


def state_fingerprint(model: nn.Module) -> str:
    """SHA-1 of a model's state dict (names and exact values)."""
    h = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def samples_fingerprint(samples: Sequence) -> str:
    """SHA-1 of a sample list (paths, identity, camera, modality, in order)."""
    h = hashlib.sha1()
    for s in samples:
        h.update(repr((sorted(s.paths.items()), s.pid, s.camid, s.modality)).encode())
    return h.hexdigest()


def data_fingerprint(dataset, *, content_files: int = 64) -> str:
    """SHA-1 of what a run reads from a dataset: every training and test sample (its paths relative to the dataset
    root, identity, camera, modality and the file sizes) and the bytes of `content_files` of them spread evenly
    over the list. Relative paths keep a moved dataset the same; sizes and sampled bytes catch re-exported or
    replaced images (a synthetic export of a changed generator) without reading every file."""
    root = Path(dataset.root)
    samples = [*dataset.train, *dataset.query, *dataset.gallery]
    h = hashlib.sha1(json.dumps([dataset.name, dataset.options], sort_keys=True, default=str).encode())
    files = []
    for s in samples:
        paths = sorted((m, Path(p)) for m, p in s.paths.items())
        rel = [(m, str(p.relative_to(root)) if p.is_relative_to(root) else str(p)) for m, p in paths]
        sizes = [p.stat().st_size if p.is_file() else -1 for _, p in paths]
        h.update(repr((rel, sizes, s.pid, s.camid, s.modality)).encode())
        files.extend(p for _, p in paths)
    unique = sorted(set(files))
    step = max(1, len(unique) // max(1, content_files))
    for p in unique[::step][:content_files]:
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-1 of the workbench package's source. Features depend on the model code, the transforms and the methods'
    eval forwards, so cached features computed by other code are never reused."""
    h = hashlib.sha1()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def feature_cache_key(model: nn.Module, samples: Sequence, cfg: Config, method: EvalForward) -> str:
    """The cache key of `extract_features`: everything that determines the features (weights, samples, the test
    transform, the eval forward, the code)."""
    parts = [state_fingerprint(model), samples_fingerprint(samples), repr(test_transform(cfg)),
             type(model).__qualname__, type(method).__module__ + "." + type(method).__qualname__, code_fingerprint()]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def _load_cached(path: Path) -> EvalSet | None:
    try:
        with np.load(path) as z:
            branches = {k.removeprefix("b_"): z[k] for k in z.files if k.startswith("b_")}
            return EvalSet(branches, z["pids"], z["camids"], z["scenes"] if "scenes" in z.files else None)
    except (OSError, ValueError, KeyError, EOFError) as exc:  # damaged file: recompute (and say so)
        print(f"feature cache file {path} is unreadable ({exc}); recomputing it")
        return None


@torch.no_grad()
def extract_features(model: nn.Module, samples: Sequence, cfg: Config, *, method: EvalForward,
                     batch_size: int | None = None, device: torch.device | str | None = None,
                     cache: bool = False, progress: bool = True) -> EvalSet:
    """Eval-mode features of `samples` (test transform), one row per sample, in order: an `EvalSet` whose branches
    are the method's retrieval branches ("feats", the retrieval embedding; multi-modal models add "rgb", "nir",
    "tir").

    Args:
        model: any model; it is put in eval mode for the extraction and restored afterwards.
        samples: `workbench.data.Sample` records (one modality each for visible-infrared data, aligned triplets
            for multi-modal data).
        cfg: the config the model was trained with (image size, dataset kind, test batch size, workers).
        method: the eval forward (`workbench.methods.get_method(cfg.run.method)` for a run's model).
        cache: store / reuse the result under `cache_dir()/features/`, keyed by `feature_cache_key`.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if cache:
        path = cache_dir() / "features" / f"{feature_cache_key(model, samples, cfg, method)}.npz"
        cached = _load_cached(path) if path.exists() else None
        if cached is None:
            with build_lock(path, "cached features"):  # another process extracting the same features: wait, read
                cached = _load_cached(path) if path.exists() else None
                if cached is None:
                    cached = _extract(model, samples, cfg, method, batch_size, device, progress)
                    _save_cached(path, cached)
        return cached
    return _extract(model, samples, cfg, method, batch_size, device, progress)


@torch.no_grad()
def _extract(model: nn.Module, samples: Sequence, cfg: Config, method: EvalForward, batch_size: int | None,
             device: torch.device, progress: bool) -> EvalSet:
    """The eval forward of `method` over `samples`, batched per modality, rows in the samples' order."""
    from tqdm.auto import tqdm

    from workbench.data import torch_datasets

    was_training = model.training
    model.eval()
    transform = test_transform(cfg)
    batch_size = batch_size or cfg.run.test_batch_size
    out_rows: dict[str, list[np.ndarray]] = defaultdict(list)
    order: list[int] = []
    # A VI batch holds one modality; a triplet batch all three. Group rows by modality to keep batches uniform.
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        groups[s.modality].append(i)
    bar = tqdm(total=len(samples), desc="features", disable=not progress, leave=False)
    for modality, rows in groups.items():
        ds = torch_datasets.ImageDataset([samples[i] for i in rows], transform)
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=cfg.data.num_workers,
                            collate_fn=torch_datasets.collate, generator=torch.Generator())  # global RNG untouched
        for batch in loader:
            images = {m: x.to(device) for m, x in batch["images"].items()}
            camids = batch["camid"].to(device) if "camid" in batch else None
            vi_modality = modality if modality in ("rgb", "ir") else None
            out = method.forward_eval(model, images, vi_modality, camids)
            for name, value in method.retrieval_branches(out).items():
                out_rows[name].append(value.float().cpu().numpy())
            bar.update(len(next(iter(images.values()))))
        order.extend(rows)
    bar.close()
    model.train(was_training)
    inverse = np.argsort(np.asarray(order))
    branches = {k: np.concatenate(v)[inverse] for k, v in out_rows.items()}
    pids = np.asarray([s.pid for s in samples])
    camids = np.asarray([s.camid for s in samples])
    scenes = np.asarray([s.scene for s in samples]) if samples and samples[0].scene is not None else None
    return EvalSet(branches, pids, camids, scenes)


def _save_cached(path: Path, feats: EvalSet) -> None:
    """Write features atomically (temp file, rename) for `_load_cached`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"b_{k}": v for k, v in feats.branches.items()} | {"pids": feats.pids, "camids": feats.camids}
    if feats.scenes is not None:
        arrays["scenes"] = feats.scenes
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
