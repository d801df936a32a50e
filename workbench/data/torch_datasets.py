"""torch `Dataset` wrappers around lists of `Sample`, and the dict collate function.

* `VIPairDataset`: visible-infrared training, indexed by the `(rgb_index, ir_index)` pairs `VIIdentitySampler`
  yields (the AGW/DAKD convention, METHODS.md 1.2: position i of the visible and the infrared half of a batch share
  the label).
* `TripletDataset`: aligned RGB/NIR/TIR training triplets (TOP-ReID family, METHODS.md 1.3), optionally with one
  geometric draw for the three modalities (`sync_geometry=True`, METHODS.md 4.2).
* `ImageDataset`: evaluation and feature extraction, one item per sample, all of the sample's modalities.

All three accept `cache=True`: decoded images are kept in memory (keyed by sample and modality), since small
synthetic datasets fit in RAM and PIL decoding dominates the CPU cost. The cache lives in the dataset object: with
DataLoader workers, call `preload()` before building the loader (forked workers then share the decoded images), or
use `persistent_workers=True`; otherwise each worker fills its own copy and loses it at the end of the epoch.
Images are read with `Sample.load_image(modality)`, which also crops RGBNT100's side-by-side panels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from workbench.data.samples import MM_MODALITIES, Sample
from workbench.data.transforms import SyncedTransform

ImageTransform = Callable[[Image.Image], Tensor]


class _ImageStore:
    """Reads `Sample` images, optionally keeping the decoded PIL images in memory."""

    def __init__(self, samples: Sequence[Sample], cache: bool, name: str) -> None:
        self.samples = list(samples)
        self.cache = bool(cache)
        self.name = name  # argument name, for error messages
        self._images: dict[tuple[int, str], Image.Image] = {}

    def _read(self, index: int, modality: str) -> Image.Image:
        sample = self.samples[index]
        try:
            return sample.load_image(modality)
        except OSError as exc:
            path = Path(sample.paths[modality])
            if not path.exists():
                raise FileNotFoundError(
                    f"{self.name}[{index}] (pid {sample.pid}, {modality}): image file {path} does not exist; "
                    "check the dataset root or re-run the loader"
                ) from exc
            raise

    def load(self, index: int, modality: str) -> Image.Image:
        if not self.cache:
            return self._read(index, modality)
        key = (index, modality)
        if key not in self._images:
            self._images[key] = self._read(index, modality)
        return self._images[key]

    def preload(self, modalities: Callable[[Sample], Sequence[str]]) -> None:
        if not self.cache:
            raise ValueError("preload() needs cache=True; build the dataset with cache=True")
        for i, sample in enumerate(self.samples):
            for m in modalities(sample):
                self.load(i, m)


def _check_samples(samples: Sequence[Sample], name: str, *, training: bool) -> list[Sample]:
    samples = list(samples)
    if not samples:
        raise ValueError(f"{name} is empty; pass the list of Sample a loader returned")
    for i, s in enumerate(samples):
        if not isinstance(s, Sample):
            raise ValueError(f"{name}[{i}] is a {type(s).__name__}, expected workbench.data.samples.Sample")
        if training and s.label < 0:
            raise ValueError(
                f"{name}[{i}] (pid {s.pid}) has label {s.label}; training datasets need labels >= 0, pass the "
                "training split (loaders set label only there)"
            )
    return samples


def _check_index(index: Any, n: int, name: str) -> int:
    if isinstance(index, bool) or not hasattr(index, "__index__"):
        raise ValueError(f"{name} must be an integer index, got {index!r}")
    index = int(index)
    if not -n <= index < n:
        raise IndexError(f"{name}={index} is out of range for {n} samples")
    return index % n


class VIPairDataset(Dataset):
    """Visible-infrared training pairs; `dataset[(i, j)]` is visible sample i with infrared sample j.

    Args:
        rgb_samples: visible training samples (label >= 0).
        ir_samples: infrared training samples (label >= 0).
        rgb_transform: PIL image -> (3, H, W) for the visible image.
        ir_transform: PIL image -> (3, H, W) for the infrared image.
        cache: keep decoded images in memory.

    Item: `{"rgb": (3, H, W), "ir": (3, H, W), "label": int, "rgb_camid": int, "ir_camid": int}`. The two samples
    must share the label (a ValueError otherwise): index it with `VIIdentitySampler(ds.rgb_labels, ds.ir_labels, ...)`.
    """

    def __init__(
        self,
        rgb_samples: Sequence[Sample],
        ir_samples: Sequence[Sample],
        rgb_transform: ImageTransform,
        ir_transform: ImageTransform,
        *,
        cache: bool = False,
    ) -> None:
        self.rgb = _ImageStore(
            _check_samples(rgb_samples, "rgb_samples", training=True), cache, "rgb_samples"
        )
        self.ir = _ImageStore(_check_samples(ir_samples, "ir_samples", training=True), cache, "ir_samples")
        for name, store in (("rgb_samples", self.rgb), ("ir_samples", self.ir)):
            multi = [i for i, s in enumerate(store.samples) if len(s.paths) != 1]
            if multi:
                raise ValueError(
                    f"{name}[{multi[0]}] has modalities {list(store.samples[multi[0]].paths)}; "
                    "VIPairDataset needs single-modality samples (use TripletDataset for triplets)"
                )
        self.rgb_transform, self.ir_transform = rgb_transform, ir_transform

    @property
    def rgb_labels(self) -> list[int]:
        """(N_rgb,) training labels of the visible samples, for `VIIdentitySampler`."""
        return [s.label for s in self.rgb.samples]

    @property
    def ir_labels(self) -> list[int]:
        """(N_ir,) training labels of the infrared samples, for `VIIdentitySampler`."""
        return [s.label for s in self.ir.samples]

    def preload(self) -> None:
        """Decode every image into the cache now (needs `cache=True`)."""
        self.rgb.preload(lambda s: s.modalities)
        self.ir.preload(lambda s: s.modalities)

    def __getitem__(self, index: tuple[int, int]) -> dict[str, Any]:
        if not isinstance(index, (tuple, list)) or len(index) != 2:
            raise ValueError(
                f"VIPairDataset is indexed by (rgb_index, ir_index) pairs, got {index!r}; use it with "
                "DataLoader(dataset, batch_sampler=VIIdentitySampler(...))"
            )
        i = _check_index(index[0], len(self.rgb.samples), "rgb_index")
        j = _check_index(index[1], len(self.ir.samples), "ir_index")
        rgb, ir = self.rgb.samples[i], self.ir.samples[j]
        if rgb.label != ir.label:
            raise ValueError(
                f"pair ({i}, {j}) joins visible label {rgb.label} with infrared label {ir.label}; pairs must share "
                "the label (VIIdentitySampler yields such pairs)"
            )
        return {
            "rgb": self.rgb_transform(self.rgb.load(i, rgb.modalities[0])),
            "ir": self.ir_transform(self.ir.load(j, ir.modalities[0])),
            "label": rgb.label,
            "rgb_camid": rgb.camid,
            "ir_camid": ir.camid,
        }


class _StoredSamples(Dataset):
    """Shared by the datasets that read one `_ImageStore` (`self.store`) in fixed modalities (`self.modalities`)."""

    store: _ImageStore
    modalities: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.store.samples)

    def preload(self) -> None:
        """Decode every image into the cache now (needs `cache=True`)."""
        self.store.preload(lambda s: self.modalities)


class TripletDataset(_StoredSamples):
    """Aligned RGB/NIR/TIR training triplets.

    Args:
        samples: training triplets (`Sample.modality == TRIPLET`, label >= 0).
        transform: PIL image -> (3, H, W), applied to each modality (a `ReIDTransform` when `sync_geometry=True`).
        sync_geometry: one flip / crop draw for the three modalities (pixel-aligned outputs; erasing stays per
            modality); False transforms each modality independently, as the TOP-ReID / DeMo baselines do.
        cache: keep decoded images in memory.
        modalities: the modality keys to load and return.

    Item: `{"rgb": (3, H, W), "nir": (3, H, W), "tir": (3, H, W), "label": int, "camid": int}`.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: ImageTransform,
        *,
        sync_geometry: bool = False,
        cache: bool = False,
        modalities: Sequence[str] = MM_MODALITIES,
    ) -> None:
        self.store = _ImageStore(_check_samples(samples, "samples", training=True), cache, "samples")
        self.modalities = tuple(modalities)
        for i, s in enumerate(self.store.samples):
            missing = [m for m in self.modalities if m not in s.paths]
            if missing:
                raise ValueError(
                    f"samples[{i}] (pid {s.pid}) lacks modalities {missing}; it has {list(s.paths)}. "
                    "TripletDataset needs aligned triplets (a multi-modal loader's samples)"
                )
        self.transform = SyncedTransform(transform, sync_geometry=sync_geometry)

    @property
    def labels(self) -> list[int]:
        """(N,) training labels, for `TripletIdentitySampler`."""
        return [s.label for s in self.store.samples]


    def __getitem__(self, index: int) -> dict[str, Any]:
        i = _check_index(index, len(self), "index")
        sample = self.store.samples[i]
        item: dict[str, Any] = self.transform({m: self.store.load(i, m) for m in self.modalities})
        item.update(label=sample.label, camid=sample.camid)
        return item


class ImageDataset(_StoredSamples):
    """Evaluation / feature-extraction dataset: one item per sample with all its (selected) modalities.

    Args:
        samples: any samples (labels are not needed); all must have the selected modalities.
        transform: PIL image -> (3, H, W), or {modality: transform}.
        modalities: modality keys to load; None takes the samples' own (they must then agree, e.g. all "ir" for a
            VI query set, all of rgb/nir/tir for triplets).
        cache: keep decoded images in memory.

    Item: `{"images": {modality: (3, H, W)}, "index": i, "pid": int, "camid": int}`.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: ImageTransform | Mapping[str, ImageTransform],
        modalities: Sequence[str] | None = None,
        *,
        cache: bool = False,
    ) -> None:
        self.store = _ImageStore(_check_samples(samples, "samples", training=False), cache, "samples")
        if modalities is None:
            found = sorted({s.modalities for s in self.store.samples})
            if len(found) != 1:
                raise ValueError(
                    f"samples mix modality sets {found}; pass modalities= or build one ImageDataset per modality "
                    "(e.g. VI queries and gallery separately)"
                )
            modalities = found[0]
        self.modalities = tuple(modalities)
        for i, s in enumerate(self.store.samples):
            missing = [m for m in self.modalities if m not in s.paths]
            if missing:
                raise ValueError(
                    f"samples[{i}] (pid {s.pid}) lacks modalities {missing}; it has {list(s.paths)}"
                )
        if isinstance(transform, Mapping):
            missing = [m for m in self.modalities if m not in transform]
            if missing:
                raise ValueError(
                    f"transform dict has no entry for modalities {missing}; give one per modality"
                )
            self.transforms = dict(transform)
        else:
            self.transforms = {m: transform for m in self.modalities}

    @property
    def pids(self) -> list[int]:
        """(N,) identity ids as the dataset names them."""
        return [s.pid for s in self.store.samples]

    @property
    def camids(self) -> list[int]:
        """(N,) camera ids."""
        return [s.camid for s in self.store.samples]


    def __getitem__(self, index: int) -> dict[str, Any]:
        i = _check_index(index, len(self), "index")
        sample = self.store.samples[i]
        images = {m: self.transforms[m](self.store.load(i, m)) for m in self.modalities}
        return {"images": images, "index": i, "pid": sample.pid, "camid": sample.camid}


def collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack a list of dict items into one dict batch, recursing into nested dicts.

    Tensors are stacked along a new first dimension ((3, H, W) -> (B, 3, H, W)), ints become int64 (B,) tensors,
    floats float32 (B,) tensors, anything else (strings, None) a list.

    Args:
        batch: items with identical keys (nested dicts included).
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    return _collate_values(list(batch), "batch")


def _collate_values(values: list[Any], where: str) -> Any:
    first = values[0]
    if isinstance(first, Mapping):
        keys = list(first)
        for v in values[1:]:
            if not isinstance(v, Mapping) or set(v) != set(keys):
                got = sorted(v) if isinstance(v, Mapping) else type(v).__name__
                raise ValueError(
                    f"cannot collate {where}: items have different keys ({sorted(keys)} vs {got}); "
                    "every item of a batch must have the same keys"
                )
        return {k: _collate_values([v[k] for v in values], f"{where}[{k!r}]") for k in keys}
    if isinstance(first, Tensor):
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) != 1:
            raise ValueError(
                f"cannot stack {where}: tensors have shapes {sorted(shapes)}; resize to one size"
            )
        return torch.stack(values)
    if isinstance(first, bool):
        return torch.tensor(values, dtype=torch.bool)
    if isinstance(first, int):
        return torch.tensor(values, dtype=torch.int64)
    if isinstance(first, float):
        return torch.tensor(values, dtype=torch.float32)
    return list(values)
