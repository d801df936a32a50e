"""The one sample record every dataset loader returns.

A sample is one training or test item: a single image for visible-infrared datasets (SYSU-MM01, RegDB, LLCM), or
an aligned RGB/NIR/TIR triplet for multi-modal object ReID (RGBNT201, RGBNT100, MSVR310). The record stores paths,
not pixels; `load_image` reads one modality as an RGB PIL image (NIR and TIR are stored as 3-channel images by
every real dataset, and we keep them that way).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

# Canonical modality names. Visible-infrared datasets use "rgb" and "ir" (SYSU-MM01 and LLCM infrared is
# near-infrared, RegDB's is thermal); multi-modal datasets use "rgb", "nir" and "tir".
VI_MODALITIES = ("rgb", "ir")
MM_MODALITIES = ("rgb", "nir", "tir")
TRIPLET = "rgb+nir+tir"  # Sample.modality of an aligned triplet
# The modality index visible-infrared networks and losses take, `modality (B,)`: a name's position in VI_MODALITIES.
VISIBLE, INFRARED = VI_MODALITIES.index("rgb"), VI_MODALITIES.index("ir")  # 0, 1


def vi_modality_index(name: str) -> int:
    """The modality index of a visible-infrared modality name: "rgb" -> VISIBLE (0), "ir" -> INFRARED (1)."""
    if name not in VI_MODALITIES:
        raise ValueError(f"visible-infrared modality must be one of {VI_MODALITIES}, got {name!r}")
    return VI_MODALITIES.index(name)


@dataclass(frozen=True)
class Sample:
    """One image (VI datasets) or one aligned triplet (multi-modal datasets).

    Attributes:
        paths: modality name -> image file. One entry for VI samples, three for triplets.
        pid: original identity id as the dataset names it (never relabelled).
        camid: camera id as the dataset numbers it (SYSU: 1..6, RGBNT201: 0..3, ...).
        modality: "rgb" or "ir" for VI samples, `TRIPLET` for aligned triplets.
        label: training label, 0..num_train_ids-1 (sorted original ids), or -1 outside the training split.
        scene: scene id (MSVR310 only; its junk rule is same identity and same scene), else None.
        panel: for files that hold several modalities side by side (RGBNT100: 768x128 = [RGB | NIR | TIR]),
            modality name -> panel index; empty when each modality has its own file.
        factors: ground-truth generative factors (synthetic data only): identity attributes, viewpoint,
            occlusion fraction, ...; empty for real data.
    """

    paths: Mapping[str, str]
    pid: int
    camid: int
    modality: str
    label: int = -1
    scene: int | None = None
    panel: Mapping[str, int] = field(default_factory=dict)
    factors: Mapping[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.paths)

    def load_image(self, modality: str | None = None) -> Image.Image:
        """Read one modality as an RGB PIL image (the only one, if `modality` is None)."""
        if modality is None:
            if len(self.paths) != 1:
                raise ValueError(f"this sample has modalities {list(self.paths)}; pass modality= to choose one")
            modality = next(iter(self.paths))
        if modality not in self.paths:
            raise KeyError(f"sample has no modality {modality!r}; it has {list(self.paths)}")
        return load_rgb(self.paths[modality], panel=self.panel.get(modality), n_panels=len(self.panel) or 1)


def load_rgb(path: str | Path, panel: int | None = None, n_panels: int = 1) -> Image.Image:
    """Open an image file as RGB, optionally cropping panel `panel` of `n_panels` equal-width panels."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot read image {path}: {exc}. Re-copy the file or remove it from the split files.") from exc
    if panel is not None:
        w, h = im.size
        if w % n_panels:
            raise ValueError(f"{path}: width {w} is not divisible into {n_panels} panels")
        pw = w // n_panels
        im = im.crop((panel * pw, 0, (panel + 1) * pw, h))
    return im
