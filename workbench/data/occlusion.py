"""Test-time corruptions of aligned multi-modal batches: synthetic occlusion and a style shift of one modality.

SD2-ReID claims robustness "to local occlusion and style variation" (Neural Networks 198, 2026, abstract); these
functions turn the claim into a measurement (`workbench.viz.sd2.robustness_curve`). They act on normalised
test tensors (`(x - mean) / std`, the ViT family's mean = std = 0.5 by default), are deterministic given a
`torch.Generator`, and leave the input untouched (they return new tensors). The corruption models are ours
[INFERRED]: one rectangular occluder hiding the same region of the three pixel-aligned images (a physical object
is in front of all three cameras), a sensor change of one modality (gain, contrast, noise), and nightfall on the
visible camera alone (`night`: less light, more noise; near-infrared and thermal cameras do not need daylight).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

STYLE_SHIFTS = ("gain", "contrast", "noise", "mixed")


def _check(images: Mapping[str, Tensor]) -> tuple[int, int, int]:
    if not isinstance(images, Mapping) or not images:
        raise ValueError("images must be a non-empty dict {modality: (B, 3, H, W)}")
    shapes = {tuple(x.shape) for x in images.values()}
    first = next(iter(images.values()))
    if len(shapes) != 1 or first.dim() != 4:
        raise ValueError(f"every modality must be (B, C, H, W) with one shape, got {sorted(shapes)}")
    return first.shape[0], first.shape[2], first.shape[3]


def occlusion_boxes(n: int, height: int, width: int, level: float, generator: torch.Generator | None = None
                    ) -> Tensor:
    """One occluder box per image covering `level` of the image area (up to pixel rounding).

    The aspect ratio (h/w) is drawn log-uniformly in [1/2, 2], then clipped to the image; the position is uniform.

    Args:
        n: images.
        height, width: image size.
        level: occluded area fraction in [0, 1].

    Returns:
        (n, 4) long tensor of (top, left, box_height, box_width); zero-size boxes for level 0.
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"occlusion level must be in [0, 1] (fraction of the image area), got {level}")
    area = level * height * width
    log_aspect = (torch.rand(n, generator=generator) * 2 - 1) * torch.log(torch.tensor(2.0))
    aspect = log_aspect.exp()
    bh = (area * aspect).sqrt().clamp(max=height)
    bw = (area / bh.clamp(min=1e-9)).clamp(max=width)
    bh = (area / bw.clamp(min=1e-9)).clamp(max=height)  # re-fit the height when the width was clipped
    bh, bw = bh.round(), bw.round()
    if area == 0:
        bh, bw = torch.zeros(n), torch.zeros(n)
    top = (torch.rand(n, generator=generator) * (height - bh + 1)).floor().clamp(0, height - 1)
    left = (torch.rand(n, generator=generator) * (width - bw + 1)).floor().clamp(0, width - 1)
    return torch.stack([top, left, bh, bw], dim=1).long()


def occlude(images: Mapping[str, Tensor], level: float, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Hide `level` of each image's area behind a box of one random grey, the same box in every modality.

    Args:
        images: {modality: (B, 3, H, W)} normalised tensors.
        level: occluded area fraction in [0, 1]; 0 returns copies.
        generator: RNG for boxes and fill values.

    Returns:
        {modality: (B, 3, H, W)} occluded copies.
    """
    b, h, w = _check(images)
    boxes = occlusion_boxes(b, h, w, level, generator)
    fill = torch.rand(b, generator=generator) * 2 - 1  # a grey in normalised units ([-1, 1] = pixel [0, 1])
    rows = torch.arange(h)[None, :, None]
    cols = torch.arange(w)[None, None, :]
    t, lft, bh, bw = (boxes[:, i, None, None] for i in range(4))
    inside = (rows >= t) & (rows < t + bh) & (cols >= lft) & (cols < lft + bw)  # (B, H, W)
    out = {}
    for m, x in images.items():
        keep = inside.to(x.device)[:, None]
        out[m] = torch.where(keep, fill.to(x.device, x.dtype)[:, None, None, None], x)
    return out


def style_shift(images: Mapping[str, Tensor], modality: str, strength: float, kind: str = "mixed",
                generator: torch.Generator | None = None, mean: float = 0.5, std: float = 0.5) -> dict[str, Tensor]:
    """Change the sensor "style" of one modality, the others untouched.

    In pixel units p = x * std + mean (clipped to [0, 1] after the change), with strength s >= 0:
    "gain": p * (1 + s); "contrast": mu + (p - mu) * (1 - s / 2) with mu the image mean (s <= 2);
    "noise": p + N(0, (0.1 s)^2); "mixed": contrast, then gain, then noise. s = 0 is the identity.

    Args:
        images: {modality: (B, 3, H, W)} normalised tensors.
        modality: the modality to shift (e.g. "tir").
        strength: s.
        kind: one of `STYLE_SHIFTS`.
        mean, std: the normalisation of the tensors.
    """
    _check(images)
    if modality not in images:
        raise ValueError(f"modality {modality!r} is not in images {sorted(images)}")
    if kind not in STYLE_SHIFTS:
        raise ValueError(f"kind must be one of {STYLE_SHIFTS}, got {kind!r}")
    if strength < 0 or (kind in ("contrast", "mixed") and strength > 2):
        raise ValueError(f"strength must be >= 0 (<= 2 for contrast), got {strength}")
    out = dict(images)
    p = images[modality] * std + mean
    if kind in ("contrast", "mixed"):
        mu = p.mean(dim=(1, 2, 3), keepdim=True)
        p = mu + (p - mu) * (1 - strength / 2)
    if kind in ("gain", "mixed"):
        p = p * (1 + strength)
    if kind in ("noise", "mixed") and strength > 0:
        noise = torch.randn(p.shape, generator=generator).to(p.device, p.dtype)
        p = p + 0.1 * strength * noise
    out[modality] = (p.clamp(0, 1) - mean) / std
    return out


def night(images: Mapping[str, Tensor], strength: float, generator: torch.Generator | None = None,
          modality: str = "rgb", mean: float = 0.5, std: float = 0.5) -> dict[str, Tensor]:
    """Nightfall on the visible camera: less light and more sensor noise in `modality`, the others untouched.

    In pixel units p = x * std + mean, with strength s in [0, 1]: p * (1 - 0.9 s) + N(0, (0.05 s)^2), clipped to
    [0, 1]. At s = 1 a tenth of the light is left, about the synthetic vehicles' night level before street lamps
    (`synthetic_vehicle_world.draw_scene`: light 0.08-0.14 at night), with the noise a camera shows when it raises its
    gain. NIR and TIR stay as they are: the NIR camera has its own illuminator and a thermal camera sees emitted heat
    [INFERRED model, ours: no street lamps, headlights or glare, which the rendered night scenes have].

    Args:
        images: {modality: (B, 3, H, W)} normalised tensors.
        strength: s; 0 returns the images unchanged.
        generator: RNG of the noise.
        modality: the visible modality's key.
        mean, std: the normalisation of the tensors.
    """
    _check(images)
    if modality not in images:
        raise ValueError(f"modality {modality!r} is not in images {sorted(images)}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"night strength must be in [0, 1] (1: a tenth of the light left), got {strength}")
    out = dict(images)
    if strength == 0:
        return out
    p = (images[modality] * std + mean) * (1 - 0.9 * strength)
    noise = torch.randn(p.shape, generator=generator).to(p.device, p.dtype)
    out[modality] = ((p + 0.05 * strength * noise).clamp(0, 1) - mean) / std
    return out
