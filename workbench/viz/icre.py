"""ICRE instruments: what MPFR's spatial masks look at on visible and infrared test images.

    masks = icre.mpfr_masks(model, samples, cfg)      # compute once
    icre.plot_mpfr_masks(masks)                       # one row per image: the image, then each scale's mask over it

The masks are the trained network's sigmoid outputs at the deep grid (one per fused stage), upsampled to the image.
The modality-aware centres of a feature are `workbench.viz.embedding.plot_modality_centres`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.config import Config
from workbench.utils import unwrap_model


@dataclass
class MPFRMasks:
    """MPFR's masks on a few images.

    Attributes:
        images: (B, H, W, 3) the de-normalised images in [0, 1].
        masks: (B, K, H, W) the K masks, upsampled to the image size, in [0, 1].
        stages: the K stage names (e.g. "layer1", "layer2", "layer3").
        labels: one title per image (identity and modality).
    """

    images: np.ndarray
    masks: np.ndarray
    stages: tuple[str, ...]
    labels: list[str]


@torch.no_grad()
def mpfr_masks(model: nn.Module, samples: Sequence, cfg: Config) -> MPFRMasks:
    """The spatial masks of a trained ICRE network (`workbench.models.icre`, with MPFR) on single-modality samples
    (visible "rgb" or infrared "ir"), test-transformed as evaluation does."""
    from workbench.features import test_transform

    net = unwrap_model(model)
    if getattr(net, "mpfr", None) is None:
        raise ValueError("the model has no MPFR (an ICRE network built with ablation 'baseline' or 'icg'?)")
    tf = test_transform(cfg)
    x = torch.stack([tf(s.load_image()) for s in samples])
    mod = torch.tensor([0 if s.modality == "rgb" else 1 for s in samples])
    maps = model(x, mod).parts["masks"]
    maps = F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)
    pixels = (x * tf.std.reshape(1, 3, 1, 1) + tf.mean.reshape(1, 3, 1, 1)).clamp(0, 1)
    return MPFRMasks(pixels.permute(0, 2, 3, 1).numpy(), maps.numpy(), tuple(net.stage_set),
                     [f"id {s.pid} {s.modality}" for s in samples])


def plot_mpfr_masks(masks: MPFRMasks, *, axes=None):
    """One row per image: the image, then each mask over it (bright = kept, dark = suppressed), titled with the
    mask's mean. Returns the Axes (B, K + 1)."""
    b, k = masks.masks.shape[:2]
    if axes is None:
        _, axes = plt.subplots(b, k + 1, figsize=(1.6 * (k + 1), 2.2 * b), squeeze=False)
    for i in range(b):
        axes[i, 0].imshow(masks.images[i])
        axes[i, 0].set_title(masks.labels[i], fontsize=8)
        for j, stage in enumerate(masks.stages):
            axes[i, j + 1].imshow(masks.images[i])
            axes[i, j + 1].imshow(masks.masks[i, j], cmap="magma", alpha=0.6, vmin=0, vmax=1)
            axes[i, j + 1].set_title(f"mask {stage}: {float(masks.masks[i, j].mean()):.2f}", fontsize=8)
    for ax in np.ravel(axes):
        ax.axis("off")
    return axes
