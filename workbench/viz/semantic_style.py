"""Semantic vs style views for SD2-ReID: seeded UMAP maps coloured by identity and marked by modality, and the
HSLM masks drawn over the aligned images.

The projection is the instruments' own (`workbench.viz.embedding.umap_2d`, re-exported here). Compute once, plot
many: `emb = umap_2d(feats)`, then `scatter_codes(emb, ...)`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from workbench.viz.data import to_image
from workbench.viz.embedding import umap_2d  # noqa: F401  (re-exported: notebook 05 calls vss.umap_2d)

MARKERS = {"rgb": "o", "nir": "^", "tir": "s"}


def scatter_codes(emb: np.ndarray, pids: np.ndarray, modality: np.ndarray, *, ax=None, title: str = "",
                  max_ids: int = 20):
    """Scatter 2-D codes: colour = identity (the first `max_ids` identities in colour, the rest grey), marker =
    modality (o RGB, ^ NIR, s TIR). Returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    pids, modality = np.asarray(pids), np.asarray(modality)
    ids = np.unique(pids)
    coloured = {p: i for i, p in enumerate(ids[:max_ids])}
    cmap = plt.get_cmap("tab20")
    for mod in np.unique(modality):
        sel = modality == mod
        colours = [cmap(coloured[p] % 20) if p in coloured else (0.75, 0.75, 0.75, 0.5) for p in pids[sel]]
        ax.scatter(emb[sel, 0], emb[sel, 1], c=colours, marker=MARKERS.get(str(mod), "x"), s=14, lw=0,
                   label=str(mod).upper())
    ax.set(title=title, xticks=[], yticks=[])
    legend = ax.legend(fontsize=7, loc="best", markerscale=1.2)
    for handle in legend.legend_handles:
        handle.set_color("k")
    return ax


def mask_overlay(image: torch.Tensor, mask: torch.Tensor, grid: tuple[int, int], *, ax=None, title: str = "",
                 mean: float = 0.5, std: float = 0.5):
    """Draw a normalised image (3, H, W) with its masked patches (N,) bool on a (h, w) grid darkened and outlined."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6, 3))
    img = to_image(image, (mean,) * 3, (std,) * 3)
    h, w = grid
    ph, pw = img.shape[0] / h, img.shape[1] / w
    ax.imshow(img)
    for idx in np.flatnonzero(mask.detach().cpu().numpy()):
        r, c = divmod(int(idx), w)
        ax.add_patch(plt.Rectangle((c * pw - 0.5, r * ph - 0.5), pw, ph, color="k", alpha=0.55, lw=0))
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)
    return ax


def attention_overlay(image: torch.Tensor, attn: torch.Tensor, grid: tuple[int, int], *, ax=None, title: str = "",
                      mean: float = 0.5, std: float = 0.5):
    """Draw a normalised image (3, H, W) with its CLS-to-patch attention (N,) on a (h, w) grid as a heat map."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6, 3))
    img = to_image(image, (mean,) * 3, (std,) * 3)
    heat = attn.detach().cpu().float().reshape(grid).numpy()
    ax.imshow(img)
    ax.imshow(heat, cmap="inferno", alpha=0.55, extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5),
              interpolation="nearest")
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)
    return ax
