"""Attention views for ViTs: CLS-to-patch attention per head and averaged, attention rollout, and masks.

* `AttentionRecorder(model)`: a context manager that records the attention probabilities of every timm
  `Attention` module the model runs (`models.mm_vit.AttentionCapture`: timm's explicit path while recording, a
  hook on the module's `attn_drop`, which receives the probabilities; hooks removed and kernels restored on exit).
  `MultiModalViT(..., with_attention=True, attention_blocks="all")` records the same maps per modality
  (`vit_attention`).
* `cls_attention(maps)`: the CLS row of a block's attention, over patch tokens, per head.
* `attention_rollout(maps)`: Abnar & Zuidema (2020): per layer, average the heads, add the identity for the
  residual path (0.5 A + 0.5 I), renormalise rows, multiply the layers from the input up. With identity
  attention in every block the rollout is the identity.
* `plot_token_map` / `plot_attention_heads` / `plot_mask`: any per-patch map (attention, rollout, or the
  attention-guided mask a method draws, e.g. SD2-ReID's HSLM) over the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.models.mm_vit import AttentionCapture, is_timm_attention


class AttentionRecorder(AttentionCapture):
    """Record attention probabilities of every timm attention module of `model` during forward passes.

    `with AttentionRecorder(model) as rec: model(images)`; then `rec.per_call` is the list of (B, heads, T, T)
    tensors (detached) in call order, and `rec.maps` stacks them as (B, layers, heads, T, T) (when every call has
    the same shape; a `MultiModalViT` with shared blocks runs those on the batch-concatenation of its modalities:
    use `vit_attention` there).
    """

    def __init__(self, model: nn.Module) -> None:
        modules = [m for m in model.modules() if is_timm_attention(m)]
        if not modules:
            raise ValueError(f"{type(model).__name__} has no timm attention modules (with fused_attn and attn_drop)")
        super().__init__(modules, detach=True)
        self.model = model

    @property
    def maps(self) -> Tensor:
        """(B, layers, heads, T, T)."""
        if not self.per_call:
            raise ValueError("nothing recorded; run the model inside the `with` block")
        shapes = {tuple(a.shape) for a in self.per_call}
        if len(shapes) != 1:
            raise ValueError(f"recorded maps have different shapes {sorted(shapes)}; use per_call")
        return torch.stack(self.per_call, dim=1)


@torch.no_grad()
def vit_attention(model: nn.Module, images: Mapping[str, Tensor], camids: Tensor | None = None) -> dict[str, Tensor]:
    """{modality: (B, depth, heads, 1+N, 1+N)} attention of a `MultiModalViT` (its explicit attention path)."""
    was = model.training
    model.eval()
    out = model(images, camids, with_attention=True, attention_blocks="all")
    model.train(was)
    return {m: out.parts[f"attn_maps_{m}"] for m in model.modalities}


def cls_attention(maps: Tensor, layer: int = -1, prefix: int = 1) -> Tensor:
    """CLS-to-patch attention of one block: (..., layers, heads, T, T) -> (..., heads, N) (N = T - prefix)."""
    if maps.dim() < 4:
        raise ValueError(f"maps must be (..., layers, heads, T, T), got shape {tuple(maps.shape)}")
    return maps[..., layer, :, 0, prefix:]


def attention_rollout(maps: Tensor, *, head_fusion: str = "mean", residual: bool = True) -> Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): (..., layers, heads, T, T) -> (..., T, T).

    Args:
        head_fusion: "mean", "max" or "min" over heads.
        residual: add the identity for the skip connection (0.5 A + 0.5 I) before renormalising rows.
    """
    if maps.dim() < 4:
        raise ValueError(f"maps must be (..., layers, heads, T, T), got shape {tuple(maps.shape)}")
    fuse = {"mean": lambda a: a.mean(-3), "max": lambda a: a.amax(-3), "min": lambda a: a.amin(-3)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {sorted(fuse)}, got {head_fusion!r}")
    a = fuse[head_fusion](maps.float())  # (..., layers, T, T)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    if residual:
        a = 0.5 * a + 0.5 * eye
    a = a / a.sum(-1, keepdim=True)
    result = eye.expand(*a.shape[:-3], *eye.shape).clone()
    for layer in range(a.shape[-3]):
        result = a[..., layer, :, :] @ result  # later layers act on the rollout of the earlier ones
    return result


def token_map(values: Tensor | np.ndarray, grid: tuple[int, int], size: tuple[int, int] | None = None) -> np.ndarray:
    """Per-patch values (N,) or (h, w) as an (h, w) map, or upsampled (bilinear) to the image `size` (H, W)."""
    v = torch.as_tensor(np.asarray(values) if not isinstance(values, Tensor) else values.detach().cpu()).float()
    h, w = grid
    if v.numel() != h * w:
        raise ValueError(f"values have {v.numel()} entries, the grid {h}x{w} needs {h * w}")
    v = v.reshape(1, 1, h, w)
    if size is not None:
        v = F.interpolate(v, size=size, mode="bilinear", align_corners=False)
    return v[0, 0].numpy()


def plot_token_map(image: np.ndarray, values, grid: tuple[int, int], *, ax=None, title: str = "", alpha: float = 0.55,
                   cmap: str = "inferno", normalise: bool = True):
    """Draw per-patch values over an (H, W, 3) image in [0, 1]. Returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.4, 2.6))
    heat = token_map(values, grid, image.shape[:2])
    if normalise:
        heat = (heat - heat.min()) / (heat.max() - heat.min() + 1e-12)
    ax.imshow(image)
    ax.imshow(heat, cmap=cmap, alpha=alpha)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_attention_heads(image: np.ndarray, cls_attn: Tensor, grid: tuple[int, int], *, axes=None,
                         rollout: Tensor | None = None, size: float = 1.2):
    """CLS-to-patch attention per head (heads, N), the head average and optionally the rollout's CLS row
    (1+N,) or (N,), each over the image. Returns the Axes."""
    heads = cls_attn.shape[0]
    n_panels = heads + 1 + (rollout is not None)
    if axes is None:
        _, axes = plt.subplots(1, n_panels, figsize=(size * n_panels, 2.2 * size), squeeze=False)
        axes = axes[0]
    for h in range(heads):
        plot_token_map(image, cls_attn[h], grid, ax=axes[h], title=f"head {h}")
    plot_token_map(image, cls_attn.mean(0), grid, ax=axes[heads], title="mean of heads")
    if rollout is not None:
        r = rollout[-grid[0] * grid[1]:]
        plot_token_map(image, r, grid, ax=axes[heads + 1], title="rollout")
    return axes


def plot_mask(image: np.ndarray, mask, grid: tuple[int, int] | None = None, *, ax=None, title: str = "mask",
              threshold: float | None = None):
    """An attention-guided mask a method draws (per patch (N,) / (h, w), or per pixel (H, W)) over the image;
    with `threshold`, the binary mask it induces is outlined. Returns the Axes."""
    m = np.asarray(mask.detach().cpu() if isinstance(mask, Tensor) else mask, dtype=np.float32)
    if grid is not None:
        m = token_map(m, grid, image.shape[:2])
    elif m.shape != image.shape[:2]:
        raise ValueError(f"a per-pixel mask must have the image size {image.shape[:2]}, got {m.shape}; pass grid= "
                         "for a per-patch mask")
    ax = plot_token_map(image, m, (m.shape[0], m.shape[1]), ax=ax, title=title, cmap="viridis", normalise=False)
    if threshold is not None:
        ax.contour(m >= threshold, levels=[0.5], colors="w", linewidths=0.8)
    return ax


def patch_grid_of(model: nn.Module) -> tuple[int, int]:
    """The patch grid (h, w) of a `MultiModalViT` (or any model exposing `grid_size`)."""
    grid = getattr(model, "grid_size", None)
    if grid is None:
        raise ValueError(f"{type(model).__name__} exposes no grid_size; pass grid=(h, w)")
    return tuple(grid)


def cls_rows(maps: Mapping[str, Tensor], index: int = 0, layer: int = -1) -> dict[str, Tensor]:
    """{modality: (heads, N)} CLS-to-patch attention of one sample from `vit_attention`'s output."""
    return {m: cls_attention(a[index], layer) for m, a in maps.items()}


def rollout_rows(maps: Mapping[str, Tensor], index: int = 0) -> dict[str, Tensor]:
    """{modality: (N,)} CLS row of the attention rollout (patch tokens only) of one sample."""
    return {m: attention_rollout(a[index])[0, 1:] for m, a in maps.items()}


__all__: Sequence[str] = ("AttentionRecorder", "attention_rollout", "cls_attention", "cls_rows", "patch_grid_of",
                          "plot_attention_heads", "plot_mask", "plot_token_map", "rollout_rows", "token_map",
                          "vit_attention")
