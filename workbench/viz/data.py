"""Figures of datasets and augmentations: who is in the data, how it splits, what a transform does to an image."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from PIL import Image

from workbench.data.samples import Sample


def to_image(x: torch.Tensor | np.ndarray | Image.Image, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None) -> np.ndarray:
    """A displayable (H, W, 3) float array in [0, 1] from a PIL image, a uint8 array or a (3, H, W) tensor
    (de-normalised with `mean`/`std` when given)."""
    if isinstance(x, Image.Image):
        return np.asarray(x.convert("RGB"), dtype=np.float32) / 255.0
    if isinstance(x, np.ndarray):
        return (x.astype(np.float32) / 255.0) if x.dtype == np.uint8 else x
    t = x.detach().float().cpu()
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(t.shape)}")
    if mean is not None and std is not None:
        t = t * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return t.clamp(0, 1).permute(1, 2, 0).numpy()


def image_grid(images: Sequence, *, titles: Sequence[str] | None = None, ncols: int = 8,
               mean: Sequence[float] | None = None, std: Sequence[float] | None = None, size: float = 1.1,
               axes=None):
    """Show images in a grid; returns the array of Axes."""
    n = len(images)
    if n == 0:
        raise ValueError("images is empty")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    if axes is None:
        _, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, 2 * size * nrows), squeeze=False)
    flat = np.asarray(axes).ravel()
    for i, ax in enumerate(flat):
        ax.axis("off")
        if i < n:
            ax.imshow(to_image(images[i], mean, std))
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    return axes


def identity_sheet(samples: Sequence[Sample], *, n_ids: int = 5, seed: int = 0, size: float = 1.0, axes=None):
    """Rows: identities; columns: cameras (visible-infrared data) or modalities x two cameras (triplets).

    Shows that identity (shape, pattern, accessories) survives the change of camera and modality while colour and
    style do not.
    """
    if not samples:
        raise ValueError("samples is empty")
    rng = np.random.default_rng(seed)
    by_pid: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_pid[s.pid].append(s)
    pids = sorted(by_pid)
    chosen = sorted(rng.choice(pids, size=min(n_ids, len(pids)), replace=False).tolist())
    triplets = len(samples[0].paths) > 1
    if triplets:
        columns = [(m, j) for j in range(2) for m in samples[0].modalities]
    else:
        columns = sorted({(s.modality, s.camid) for s in samples}, key=lambda mc: mc[1])
    if axes is None:
        _, axes = plt.subplots(len(chosen), len(columns), figsize=(size * len(columns), 2 * size * len(chosen)),
                               squeeze=False)
    for r, pid in enumerate(chosen):
        items = by_pid[pid]
        cams = sorted({s.camid for s in items})
        for c, (key, extra) in enumerate(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if triplets:
                sample = [s for s in items if s.camid == cams[min(extra, len(cams) - 1)]][0]
                ax.imshow(to_image(sample.load_image(key)))
                title = f"{key} cam{sample.camid}"
            else:
                match = [s for s in items if s.modality == key and s.camid == extra]
                if not match:
                    ax.set_facecolor("0.92")
                    title = f"cam{extra}: -"
                else:
                    ax.imshow(to_image(match[0].load_image()))
                    title = f"{key} cam{extra}"
            if r == 0:
                ax.set_title(title, fontsize=7)
            if c == 0:
                ax.set_ylabel(f"id {pid}", fontsize=8)
    return axes


def plot_split_summary(summary: pd.DataFrame, ax=None):
    """Bars of images per split and modality from `ReIDDataset.split_table()`, with identity counts in the labels."""
    required = {"split", "modality", "camid", "ids", "images"}
    if not required <= set(summary.columns):
        raise ValueError(f"summary needs columns {sorted(required)}, got {list(summary.columns)}")
    rows = summary[summary["camid"].astype(str) == "all"]
    if rows.empty:
        rows = summary.groupby(["split", "modality"], as_index=False)[["images", "ids"]].sum()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.8))
    labels = [f"{r.split}\n{r.modality}\n({r.ids} ids)" for r in rows.itertuples()]
    colours = {"rgb": "tab:red", "ir": "0.35", "nir": "0.35", "tir": "tab:orange"}
    ax.bar(range(len(rows)), rows["images"], color=[colours.get(m, "tab:blue") for m in rows["modality"]])
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("images")
    return ax


def augmentation_sheet(image: Image.Image | Mapping[str, Image.Image],
                       transforms: Mapping[str, Callable], *, draws: int = 6, seed: int = 0,
                       mean: Sequence[float] | None = None, std: Sequence[float] | None = None, size: float = 1.0,
                       axes=None):
    """Rows: named transforms; columns: the input, then `draws` random outcomes (seeded). Returns the Axes."""
    if not transforms:
        raise ValueError("transforms is empty")
    if axes is None:
        _, axes = plt.subplots(len(transforms), draws + 1, figsize=(size * (draws + 1), 2 * size * len(transforms)),
                               squeeze=False)
    torch.manual_seed(seed)
    for r, (name, tf) in enumerate(transforms.items()):
        axes[r][0].imshow(to_image(image))
        axes[r][0].set_ylabel(name, fontsize=8)
        axes[r][0].set_title("input" if r == 0 else "", fontsize=7)
        for c in range(1, draws + 1):
            axes[r][c].imshow(to_image(tf(image), mean, std))
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    return axes


def vehicle_sheet(body_types: Sequence[str] = ("sedan", "suv", "van", "truck"),
                  cameras: Sequence[int] = (1, 5, 3, 7), *, seed: int = 0, config=None, size: float = 1.55,
                  axes=None):
    """Synthetic vehicles across RGBNT100-like cameras and the three modalities, by day and by night.

    Rows: one vehicle per body type, each twice with the same pose (a sunny day; a night under a sodium street lamp,
    headlights on); columns: each camera's own viewpoint x RGB | NIR | TIR, as the real RGBNT100 files hold them
    (`workbench.data.synthetic.vehicle_sheet` renders them).

    Args:
        body_types: one vehicle of each (the first of its type in `make_vehicles(60, seed)`).
        cameras: RGBNT100 camera numbers (1..8), each a viewpoint.
        config: the `VehicleConfig` to render with (default: the default one without occluders, 128 x 256).
        size: width in inches of one image column.

    Returns:
        The (2 * len(body_types), 3 * len(cameras)) array of Axes.
    """
    from workbench.data.synthetic import vehicle_sheet as render_sheet

    rows, labels, columns = render_sheet(list(body_types), list(cameras), seed=seed, config=config)
    if axes is None:
        _, axes = plt.subplots(len(rows), len(columns), figsize=(size * len(columns), 0.54 * size * len(rows) + 0.3),
                               squeeze=False, gridspec_kw={"wspace": 0.03, "hspace": 0.06})
    axes = np.asarray(axes).reshape(len(rows), len(columns))
    for r, (row, label) in enumerate(zip(rows, labels)):
        for c, image in enumerate(row):
            ax = axes[r, c]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title(columns[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(label.replace(", ", "\n"), fontsize=7, rotation=0, ha="right", va="center")
    return axes
