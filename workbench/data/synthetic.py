"""Synthetic multi-modal ReID data: procedural people rendered in visible, near-infrared and thermal light.

The embedded default dataset of the workbench (issue 2, section 2). An identity is a frozen set of latent attributes
(build, skin, hair, garments with a visible colour, a pattern, a near-infrared reflectance, a thermal insulation and
emissivity, accessories); an image adds nuisance (camera scene and illumination, viewpoint, pose, occluder, noise).
Identity is shared across modalities, style is modality-specific: NIR reflectance is drawn independently of visible
hue, so colour does not identify a person across modalities, while shape, pattern and accessories do. This is the
structure DAKD, ICRE and SD2-ReID exploit (METHODS.md sections 1.1, 2.6, 4).

Two presets of cameras: visible-infrared, as SYSU-MM01 (visible cams 1, 2, 4, 5; near-infrared cams 3, 6; cam 3 at
the location of cam 2) [CODE: wuancong/SYSU-MM01 README], and aligned RGB/NIR/TIR triplets, as RGBNT201 (4 cams).
`export` writes any of the six real on-disk layouts of METHODS.md section 6 (sysu-mm01, regdb, llcm, rgbnt201,
rgbnt100, msvr310) so the real loaders read synthetic data through the code path used for real data. The vehicle
layouts (RGBNT100, MSVR310) reuse the person renderer on road scenes; only their file formats are vehicle-like.

Next to the layout, an export writes `synthetic_factors.jsonl` (one JSON line per image, or per triplet for the
multi-modal layouts: relative paths, pid, camid in the `Sample` convention the loaders parse, modality, split,
scene, ground-truth factors) and, last, `synthetic_manifest.json` (its presence marks a complete export).

    python -m workbench.data.synthetic --layout sysu-mm01 --out /tmp/sysu --ids 40 --seed 0
"""

from __future__ import annotations

import argparse
import colorsys
import json
import math
import os
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workbench.data.samples import TRIPLET
from workbench.data.synthetic_render import (
    PART_NAMES,
    SPECTRUM_OF,
    VIEWPOINTS,
    render_parts,
    render_spectra,
)

__all__ = [
    "LAYOUTS", "PART_NAMES", "VIEWPOINTS", "Accessory", "Camera", "Garment", "Identity", "SyntheticConfig",
    "export", "is_complete_export", "layout_cameras", "make_identities", "render", "render_parts",
    "render_triplet", "rgbnt201_cameras", "sysu_cameras",
]  # fmt: skip

LAYOUTS = ("sysu-mm01", "regdb", "llcm", "rgbnt201", "rgbnt100", "msvr310")
MANIFEST = "synthetic_manifest.json"
FACTORS = "synthetic_factors.jsonl"
INCOMPLETE = ".synthetic_export_incomplete"  # present while an export is being written


# ===================================================================================================== config
@dataclass(frozen=True)
class SyntheticConfig:
    """Render size and difficulty knobs (all continuous so difficulty can be calibrated)."""

    height: int = 128  # render size; loaders resize anyway (real crops are ~2:1, like 128x64)
    width: int = 64
    occlusion_rate: float = 0.3  # probability that an image has an occluder (box, pole, bush) over the person
    noise: float = 0.03  # sensor noise std in [0, 1] intensity units (NIR x1.5, TIR x0.8, x camera gain)
    viewpoint_spread: float = 0.6  # 0: always the camera's viewpoint bias, 1: uniform over front/back/left/right
    pose_jitter: float = 0.7  # scale of position, scale, lean, arm swing and stride variation
    illumination_jitter: float = 0.3  # per-image brightness, tint, light direction and thermal gain variation
    garment_sharing: float = 0.4  # fraction of identities dressed from a small pool of shared garment templates
    garment_pool: int = 6  # number of shared garment templates (fewer = more look-alikes)
    template_jitter: float = 0.04  # colour jitter applied to a shared template (0 = identical garments)
    accessory_rate: float = 0.3  # probability of each accessory (hat, backpack, bag)
    pattern_rate: float = 0.55  # probability that an upper garment has a pattern (stripes, checks, logo)

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 16:
            raise ValueError(f"height x width must be at least 32 x 16, got {self.height} x {self.width}")
        for name in ("occlusion_rate", "viewpoint_spread", "garment_sharing", "accessory_rate", "pattern_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        for name in ("noise", "pose_jitter", "illumination_jitter", "template_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.garment_pool < 1:
            raise ValueError(f"garment_pool must be >= 1, got {self.garment_pool}")

    @classmethod
    def easy(cls, **overrides: Any) -> SyntheticConfig:
        """No occluders, little noise, cameras keep their viewpoint bias, no shared garments."""
        base = dict(occlusion_rate=0.0, noise=0.01, viewpoint_spread=0.2, pose_jitter=0.3,
                    illumination_jitter=0.1, garment_sharing=0.0)
        return cls(**{**base, **overrides})

    @classmethod
    def default(cls, **overrides: Any) -> SyntheticConfig:
        """Plausibly hard: occluders, viewpoint changes and shared garments on (calibration pending)."""
        return cls(**overrides)

    @classmethod
    def medium(cls, **overrides: Any) -> SyntheticConfig:
        """Halfway between `default` and `hard` on every knob (the multi-modal demo calibration, README)."""
        d, h = cls.default(), cls.hard()
        base = {f: (getattr(d, f) + getattr(h, f)) / 2 for f in (
            "occlusion_rate", "noise", "viewpoint_spread", "pose_jitter", "illumination_jitter", "garment_sharing",
            "template_jitter")}
        base["garment_pool"] = (d.garment_pool + h.garment_pool) // 2
        return cls(**{**base, **overrides})

    @classmethod
    def hard(cls, **overrides: Any) -> SyntheticConfig:
        """Frequent occluders, strong noise, any viewpoint anywhere, most identities dressed alike."""
        base = dict(occlusion_rate=0.55, noise=0.06, viewpoint_spread=1.0, pose_jitter=1.0,
                    illumination_jitter=0.5, garment_sharing=0.75, garment_pool=4, template_jitter=0.02)
        return cls(**{**base, **overrides})

    @classmethod
    def smoke(cls, **overrides: Any) -> SyntheticConfig:
        """Tiny images for fast tests (64 x 32)."""
        return cls(**{"height": 64, "width": 32, **overrides})

    @classmethod
    def from_difficulty(cls, difficulty: str, **overrides: Any) -> SyntheticConfig:
        presets: dict[str, Callable[..., SyntheticConfig]] = {"easy": cls.easy, "default": cls.default,
                                                               "medium": cls.medium, "hard": cls.hard}
        if difficulty not in presets:
            raise ValueError(f"difficulty must be one of {sorted(presets)}, got {difficulty!r}")
        return presets[difficulty](**overrides)


# ===================================================================================================== identities
@dataclass(frozen=True)
class Garment:
    """One garment. Visible colour and NIR reflectance are independent draws (dyes are largely NIR-transparent)."""

    kind: str  # upper: "tshirt" | "longsleeve" | "coat"; lower: "trousers" | "shorts" | "skirt"
    material: str  # names the ranges NIR reflectance, emissivity and insulation were drawn from
    rgb: tuple[float, float, float]
    pattern: str  # "plain" | "stripes" | "checks" | "logo" (logo: upper only, on the chest, seen from the front)
    pattern_rgb: tuple[float, float, float]
    pattern_scale: float  # stripe period / logo size multiplier
    logo_shape: str  # "circle" | "square" | "diamond" | "bar" (used when pattern == "logo")
    nir: float  # near-infrared reflectance of the base dye, in [0, 1]
    pattern_nir: float  # NIR reflectance of the pattern ink (always contrasts with `nir`, so patterns show in NIR)
    emissivity: float  # thermal emissivity of the fabric
    pattern_emissivity: float  # of the print (a faint pattern in thermal)
    insulation: float  # 0: at skin temperature, 1: at ambient temperature


@dataclass(frozen=True)
class Accessory:
    kind: str  # "hat" | "backpack" | "bag"
    rgb: tuple[float, float, float]
    nir: float
    emissivity: float


@dataclass(frozen=True)
class Identity:
    """Latent attributes of one synthetic person (JSON-serialisable with `to_dict`)."""

    pid: int
    gender: str  # "female" | "male" (shapes body proportions, hair length and skirt prior)
    height: float  # relative body height (multiplies the camera's nominal scale)
    build: float  # body width multiplier
    head: float  # head size multiplier
    skin_rgb: tuple[float, float, float]
    skin_nir: float
    skin_temp: float  # skin surface temperature in deg C (the hottest part in thermal)
    hair_style: str  # "short" | "long"
    hair_rgb: tuple[float, float, float]
    hair_nir: float
    upper: Garment
    lower: Garment
    shoes_rgb: tuple[float, float, float]
    shoes_nir: float
    hat: Accessory | None
    backpack: Accessory | None  # visible from the back and the sides only
    bag: Accessory | None  # shoulder bag; hidden in the side view of the other side
    bag_side: str  # "left" | "right": the person's side the bag hangs on
    garment_template: int  # index of the shared garment template, -1 for own garments

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (garments and accessories as dicts); a shallow, fast `dataclasses.asdict`."""
        return {f.name: dict(vars(v)) if isinstance(v, (Garment, Accessory)) else v
                for f in fields(self) for v in (getattr(self, f.name),)}


_MATERIALS = {  # name: (NIR reflectance range, emissivity range, insulation range); INFERRED plausible ranges
    "cotton": ((0.45, 0.9), (0.88, 0.95), (0.25, 0.45)),
    "polyester": ((0.15, 0.7), (0.84, 0.92), (0.3, 0.5)),
    "denim": ((0.3, 0.7), (0.9, 0.95), (0.35, 0.55)),
    "wool": ((0.4, 0.85), (0.9, 0.97), (0.55, 0.8)),
    "leather": ((0.12, 0.45), (0.8, 0.9), (0.6, 0.8)),
    "nylon": ((0.2, 0.8), (0.75, 0.88), (0.7, 0.92)),
}
_NEUTRALS = ((0.08, 0.08, 0.09), (0.92, 0.92, 0.9), (0.5, 0.5, 0.52), (0.12, 0.15, 0.32), (0.78, 0.7, 0.55),
             (0.5, 0.48, 0.3), (0.3, 0.3, 0.32))
_HAIR = ((0.06, 0.05, 0.05), (0.22, 0.13, 0.08), (0.4, 0.26, 0.15), (0.78, 0.66, 0.4), (0.62, 0.62, 0.62),
         (0.55, 0.22, 0.1))


def _colour(rng: np.random.Generator) -> tuple[float, float, float]:
    if rng.random() < 0.45:
        base = np.asarray(_NEUTRALS[rng.integers(len(_NEUTRALS))]) + rng.uniform(-0.04, 0.04, 3)
    else:
        base = np.asarray(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.45, 0.9), rng.uniform(0.35, 0.92)))
    return tuple(round(float(c), 4) for c in np.clip(base, 0.02, 0.98))


def _contrast(rng: np.random.Generator, value: float, lo: float, hi: float, step: tuple[float, float]) -> float:
    """A value at least step[0] away from `value`, within [lo, hi]."""
    delta = rng.uniform(*step) * (1 if rng.random() < 0.5 else -1)
    if not lo <= value + delta <= hi:
        delta = -delta
    return round(float(np.clip(value + delta, lo, hi)), 4)


def _garment(rng: np.random.Generator, upper: bool, gender: str, config: SyntheticConfig) -> Garment:
    if upper:
        kind = ("tshirt", "longsleeve", "coat")[rng.choice(3, p=[0.4, 0.4, 0.2])]
        patterned = rng.random() < config.pattern_rate
        pattern = ("stripes", "checks", "logo")[rng.integers(3)] if patterned else "plain"
    else:
        p = [0.55, 0.15, 0.3] if gender == "female" else [0.8, 0.2, 0.0]
        kind = ("trousers", "shorts", "skirt")[rng.choice(3, p=p)]
        pattern = ("plain", "stripes", "checks")[rng.choice(3, p=[0.75, 0.15, 0.1])]
    material = list(_MATERIALS)[rng.integers(len(_MATERIALS))]
    nir_r, eps_r, ins_r = _MATERIALS[material]
    rgb = _colour(rng)
    pattern_rgb = _colour(rng)
    while sum(abs(a - b) for a, b in zip(rgb, pattern_rgb)) < 0.6:  # patterns must be visible in colour
        pattern_rgb = _colour(rng)
    nir = round(float(rng.uniform(*nir_r)), 4)
    eps = round(float(rng.uniform(*eps_r)), 4)
    return Garment(
        kind=kind, material=material, rgb=rgb, pattern=pattern, pattern_rgb=pattern_rgb,
        pattern_scale=round(float(rng.uniform(0.7, 1.4)), 4),
        logo_shape=("circle", "square", "diamond", "bar")[rng.integers(4)],
        nir=nir, pattern_nir=_contrast(rng, nir, 0.05, 0.95, (0.22, 0.4)), emissivity=eps,
        pattern_emissivity=_contrast(rng, eps, 0.6, 0.99, (0.06, 0.14)),
        insulation=round(float(rng.uniform(*ins_r)), 4),
    )  # fmt: skip


def _jitter_garment(g: Garment, rng: np.random.Generator, amount: float) -> Garment:
    def jit(c: tuple[float, float, float]) -> tuple[float, float, float]:
        return tuple(round(float(v), 4) for v in np.clip(np.asarray(c) + rng.normal(0, amount, 3), 0.02, 0.98))

    return replace(g, rgb=jit(g.rgb), pattern_rgb=jit(g.pattern_rgb))


def _accessory(rng: np.random.Generator, kind: str, rate: float) -> Accessory | None:
    present = rng.random() < rate
    acc = Accessory(kind=kind, rgb=_colour(rng), nir=round(float(rng.uniform(0.1, 0.85)), 4),
                    emissivity=round(float(rng.uniform(0.82, 0.95)), 4))
    return acc if present else None  # drawn either way: attributes stay aligned across rates


def make_identities(n: int, seed: int = 0, config: SyntheticConfig | None = None) -> list[Identity]:
    """Draw `n` identities with pids 1..n, deterministically from `seed`.

    A fraction `config.garment_sharing` of them wear upper and lower garments copied (with colour jitter) from a
    pool of `config.garment_pool` templates, so several people look alike and only build, skin, hair, shoes and
    accessories tell them apart.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 identities, got {n}")
    config = config or SyntheticConfig()
    rng = np.random.default_rng([seed, 0x1D])
    pool = [(_garment(rng, True, "male", config), _garment(rng, False, "male", config))
            for _ in range(config.garment_pool)]
    out = []
    for pid in range(1, n + 1):
        r = np.random.default_rng([seed, 0x1D, pid])
        gender = "female" if r.random() < 0.5 else "male"
        female = gender == "female"
        tone = r.random()
        skin = np.array([0.95, 0.8, 0.7]) * (1 - tone) + np.array([0.36, 0.23, 0.16]) * tone
        upper, lower = _garment(r, True, gender, config), _garment(r, False, gender, config)
        template = -1
        shared = r.random() < config.garment_sharing
        t_idx = int(r.integers(config.garment_pool))
        if shared:
            template = t_idx
            upper = _jitter_garment(pool[t_idx][0], r, config.template_jitter)
            lower = _jitter_garment(pool[t_idx][1], r, config.template_jitter)
        out.append(Identity(
            pid=pid, gender=gender,
            height=round(float(r.uniform(0.9, 1.02) if female else r.uniform(0.94, 1.06)), 4),
            build=round(float(r.uniform(0.82, 1.05) if female else r.uniform(0.9, 1.22)), 4),
            head=round(float(r.uniform(0.9, 1.12)), 4),
            skin_rgb=tuple(round(float(c), 4) for c in skin),
            skin_nir=round(float(0.62 - 0.1 * tone + r.uniform(-0.05, 0.05)), 4),
            skin_temp=round(float(r.uniform(33.5, 35.5)), 3),
            hair_style="long" if r.random() < (0.7 if female else 0.1) else "short",
            hair_rgb=_HAIR[r.integers(len(_HAIR))],
            hair_nir=round(float(r.uniform(0.25, 0.6)), 4),
            upper=upper, lower=lower,
            shoes_rgb=_colour(r), shoes_nir=round(float(r.uniform(0.1, 0.6)), 4),
            hat=_accessory(r, "hat", config.accessory_rate),
            backpack=_accessory(r, "backpack", config.accessory_rate),
            bag=_accessory(r, "bag", config.accessory_rate),
            bag_side="left" if r.random() < 0.5 else "right",
            garment_template=template,
        ))  # fmt: skip
    return out


# ===================================================================================================== cameras
@dataclass(frozen=True)
class Camera:
    """A camera: what it records, where (scene), and its nuisance biases.

    Cameras with the same `location` share the background scene (SYSU-MM01 cams 2 and 3)."""

    camid: int  # the number the dataset gives it (in folder or file names)
    spectra: tuple[str, ...]  # what it records: ("rgb",), ("nir",), ("rgb", "nir") or ("rgb", "nir", "tir")
    location: str  # scene name; seeds the background
    kind: str = "indoor"  # "indoor" | "outdoor" | "road"
    viewpoint_bias: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)  # P(front, back, left, right)
    scale: float = 0.85  # nominal person height / image height
    illumination: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB gain (colour temperature)
    brightness: float = 1.0  # overall exposure (low-light cameras < 1)
    nir_falloff: float = 1.0  # active NIR illuminator radial fall-off strength
    nir_gain: float = 1.0
    ambient: float = 20.0  # ambient temperature in deg C (thermal background)
    noise_gain: float = 1.0  # multiplies SyntheticConfig.noise


def sysu_cameras() -> dict[int, Camera]:
    """SYSU-MM01-like cameras [CODE: wuancong/SYSU-MM01 README]: visible 1, 2 (indoor), 4 (outdoor gate),
    5 (outdoor garden); near-infrared 3 (indoor, the location of cam 2) and 6 (outdoor passage)."""
    room2 = dict(location="indoor-room2", kind="indoor", viewpoint_bias=(0.15, 0.15, 0.35, 0.35), scale=0.84,
                 ambient=22.0)
    return {
        1: Camera(1, ("rgb",), "indoor-room1", "indoor", (0.5, 0.2, 0.15, 0.15), 0.86, (1.05, 1.0, 0.9), 1.0,
                  ambient=22.0),
        2: Camera(2, ("rgb",), illumination=(0.95, 1.0, 1.08), **room2),
        3: Camera(3, ("nir",), brightness=1.1, nir_falloff=1.2, noise_gain=1.2, **room2),
        4: Camera(4, ("rgb",), "outdoor-gate", "outdoor", (0.2, 0.5, 0.15, 0.15), 0.82, (1.1, 1.02, 0.85), 1.1,
                  ambient=17.0),
        5: Camera(5, ("rgb",), "outdoor-garden", "outdoor", (0.25, 0.25, 0.25, 0.25), 0.8, (0.95, 1.0, 1.05),
                  1.0, ambient=17.0),
        6: Camera(6, ("nir",), "outdoor-passage", "outdoor", (0.2, 0.3, 0.25, 0.25), 0.83, brightness=1.0,
                  nir_falloff=1.8, noise_gain=1.4, ambient=15.0),
    }  # fmt: skip


def rgbnt201_cameras() -> dict[int, Camera]:
    """RGBNT201-like cameras 1..4, each recording aligned RGB/NIR/TIR triplets on a campus."""
    specs = [("campus-a", "outdoor", (0.4, 0.2, 0.2, 0.2)), ("campus-b", "outdoor", (0.2, 0.4, 0.2, 0.2)),
             ("campus-c", "outdoor", (0.2, 0.2, 0.3, 0.3)), ("hall", "indoor", (0.3, 0.3, 0.2, 0.2))]
    return {c: Camera(c, ("rgb", "nir", "tir"), loc, kind, bias, 0.84 - 0.02 * c, ambient=16.0 + 2 * c)
            for c, (loc, kind, bias) in enumerate(specs, start=1)}


def regdb_cameras() -> dict[int, Camera]:
    """RegDB-like dual camera (visible + thermal, recorded together; front and back views only). Thermal images are
    numbered camid 2 in the factors, following the evaluation convention (q_cam=1, g_cam=2)."""
    return {1: Camera(1, ("rgb", "tir"), "regdb-street", "outdoor", (0.5, 0.5, 0.0, 0.0), 0.86, ambient=14.0)}


def llcm_cameras() -> dict[int, Camera]:
    """LLCM-like low-light cameras 1..9, each switching between visible and near-infrared (no NIR on cam 3)."""
    rng = np.random.default_rng(0x11C)
    cams = {}
    for c in range(1, 10):
        bias = tuple(float(v) for v in rng.dirichlet([2, 2, 2, 2]))
        cams[c] = Camera(c, ("rgb",) if c == 3 else ("rgb", "nir"), f"llcm-{c}", "outdoor" if c % 2 else "indoor",
                         bias, float(rng.uniform(0.78, 0.88)), brightness=float(rng.uniform(0.4, 0.7)),
                         nir_falloff=float(rng.uniform(1.0, 2.0)), noise_gain=1.6, ambient=float(rng.uniform(12, 20)))
    return cams


def _road_cameras(ids: Sequence[int], prefix: str) -> dict[int, Camera]:
    rng = np.random.default_rng(zlib.crc32(prefix.encode()))
    return {c: Camera(c, ("rgb", "nir", "tir"), f"{prefix}-{c}", "road",
                      tuple(float(v) for v in rng.dirichlet([2, 2, 2, 2])), float(rng.uniform(0.78, 0.88)),
                      ambient=float(rng.uniform(8, 20))) for c in ids}


def layout_cameras(layout: str) -> dict[int, Camera]:
    """The cameras of a layout, keyed by the number the dataset uses (RGBNT100 1..8, MSVR310 0..7)."""
    table: dict[str, Callable[[], dict[int, Camera]]] = {
        "sysu-mm01": sysu_cameras, "regdb": regdb_cameras, "llcm": llcm_cameras, "rgbnt201": rgbnt201_cameras,
        "rgbnt100": lambda: _road_cameras(range(1, 9), "rgbnt100"),
        "msvr310": lambda: _road_cameras(range(0, 8), "msvr310"),
    }
    if layout not in table:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return table[layout]()


# ===================================================================================================== render API
def render(identity: Identity, modality: str, *, camera: Camera, viewpoint: str | None = None,
           rng: np.random.Generator, config: SyntheticConfig | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one image of `identity` seen by `camera`.

    Args:
        modality: "rgb", "nir", "tir", or "ir" (the VI preset's infrared, rendered as near-infrared like SYSU-MM01).
        viewpoint: one of `VIEWPOINTS`, or None to draw it from the camera's bias and `config.viewpoint_spread`.
        rng: the image's random state (same state, same image).

    Returns:
        image (H, W, 3) uint8 (NIR and TIR with three equal channels), and the factors: pid, identity attributes,
        camera, location, viewpoint, occlusion fraction, occluder, visible accessories, scale, pose, modality.
    """
    if modality not in SPECTRUM_OF:
        raise ValueError(f"modality must be one of {sorted(SPECTRUM_OF)}, got {modality!r}")
    spectrum = SPECTRUM_OF[modality]
    images, factors = render_spectra(identity, (spectrum,), camera=camera, viewpoint=viewpoint, rng=rng,
                                     config=config)
    return images[spectrum], _full_factors(factors, identity, modality, spectrum)


def render_triplet(identity: Identity, *, camera: Camera, viewpoint: str | None = None, rng: np.random.Generator,
                   config: SyntheticConfig | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One pose, one occluder, rendered pixel-aligned in "rgb", "nir" and "tir" (as RGBNT201 triplets).

    Returns:
        {"rgb", "nir", "tir"} -> image (H, W, 3) uint8, and the factors (modality `TRIPLET`).
    """
    images, factors = render_spectra(identity, ("rgb", "nir", "tir"), camera=camera, viewpoint=viewpoint, rng=rng,
                                     config=config)
    return images, _full_factors(factors, identity, TRIPLET, TRIPLET)


def _full_factors(factors: dict[str, Any], identity: Identity, modality: str, spectrum: str) -> dict[str, Any]:
    return {**factors, "modality": modality, "spectrum": spectrum, "pid": identity.pid,
            "identity": identity.to_dict()}


# ===================================================================================================== export plans
@dataclass
class _Item:
    """One render job: one pose of one identity, written as one or more files and one or more factor lines."""

    pid: int
    camera: Camera
    kind: str  # "single" | "pair" (RegDB visible + thermal) | "triplet" | "panel" (RGBNT100)
    files: dict[str, str]  # spectrum -> relative path ("panel" -> path for RGBNT100)
    modality: str  # line modality for "single" ("rgb" | "ir"), TRIPLET otherwise
    camid: int  # camid in the Sample convention (what the loader parses)
    split: str
    key: tuple[int, ...]
    scene: int | None = None
    viewpoint: str | None = None
    camera_override: Camera | None = None  # MSVR310 scene illumination


@dataclass
class _Plan:
    items: list[_Item] = field(default_factory=list)
    index_files: dict[str, list[str]] = field(default_factory=dict)  # relative path -> lines
    splits: dict[str, list[int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# RGBNT100 file geometry [CODE: 924973292/DeMo, data/datasets/bases.py::read_image crops fixed 256-pixel panels at
# x = 0/256/512 of a 768x128 file]: each rendered panel is resized to 128x256 (H x W) so the reference readers work.
RGBNT100_PANEL_HW = (128, 256)
_DEFAULT_IDS = {"sysu-mm01": 100, "regdb": 100, "llcm": 100, "rgbnt201": 60, "rgbnt100": 40, "msvr310": 60}
_DEFAULT_K = {"sysu-mm01": 6, "regdb": 10, "llcm": 4, "rgbnt201": 6, "rgbnt100": 4, "msvr310": 2}
# real identity proportions [METHODS.md 5.x]: SYSU 296/99/96, LLCM 713/351, RGBNT201 171/30, RGBNT100 50/50,
# MSVR310 155/155 (52 query identities); RegDB 206/206 per trial
_PROPORTIONS = {"sysu-mm01": (296, 99, 96), "llcm": (713, 351), "rgbnt201": (171, 30), "rgbnt100": (50, 50),
                "msvr310": (155, 155), "regdb": (206, 206)}


def _split_counts(n: int, weights: Sequence[int], minimum: Sequence[int]) -> list[int]:
    """Largest-remainder apportionment of n identities to weights, each split at least its minimum."""
    raw = [n * w / sum(weights) for w in weights]
    counts = [int(math.floor(r)) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[: n - sum(counts)]:
        counts[i] += 1
    for i, m in enumerate(minimum):
        while counts[i] < m:
            counts[int(np.argmax(counts))] -= 1
            counts[i] += 1
    assert sum(counts) == n and all(c >= m for c, m in zip(counts, minimum))
    return counts


def _split_ids(pids: list[int], counts: list[int], rng: np.random.Generator) -> list[list[int]]:
    perm = [int(p) for p in rng.permutation(pids)]
    out, start = [], 0
    for c in counts:
        out.append(sorted(perm[start:start + c]))
        start += c
    return out


def _subset(rng: np.random.Generator, options: Sequence[int], p: float, at_least: int) -> list[int]:
    chosen = [o for o in options if rng.random() < p]
    if len(chosen) < at_least:
        rest = [o for o in options if o not in chosen]
        chosen += [int(o) for o in rng.choice(rest, at_least - len(chosen), replace=False)]
    return sorted(chosen)


def _count(rng: np.random.Generator, k: int) -> int:
    return int(rng.integers(max(1, (k + 1) // 2), k + 1))


def _comma_line(ids: Sequence[int]) -> list[str]:
    return [",".join(str(i) for i in ids)]


def _plan_sysu(pids: list[int], k: int, rng: np.random.Generator, seed: int) -> _Plan:
    # [CODE: wuancong/SYSU-MM01 README] cam<c>/<pid:04d>/<frame:04d>.jpg; exp/*_id.txt one comma-separated line
    cams = sysu_cameras()
    train, val, test = _split_ids(pids, _split_counts(len(pids), _PROPORTIONS["sysu-mm01"], (1, 1, 1)), rng)
    split_of = {p: s for s, ids in (("train", train), ("val", val), ("test", test)) for p in ids}
    plan = _Plan(splits={"train": train, "val": val, "test": test})
    for pid in pids:
        present = _subset(rng, [1, 2, 4, 5], 0.75, 1) + _subset(rng, [3, 6], 0.8, 1)  # not every pid in every cam
        for cam in sorted(present):
            modality = "rgb" if cams[cam].spectra == ("rgb",) else "ir"
            for frame in range(1, _count(rng, k) + 1):
                plan.items.append(_Item(pid, cams[cam], "single", {cams[cam].spectra[0]: f"cam{cam}/{pid:04d}/{frame:04d}.jpg"},
                                        modality, cam, split_of[pid], (seed, 1, pid, cam, frame)))
    for name, ids in (("train", train), ("val", val), ("test", test), ("available", sorted(pids))):
        plan.index_files[f"exp/{name}_id.txt"] = _comma_line(ids)
    return plan


def _plan_regdb(pids: list[int], k: int, rng: np.random.Generator, seed: int,
                identities: dict[int, Identity]) -> _Plan:
    # [CODE: AGW data_manager.py] idx/{train,test}_{visible,thermal}_{1..10}.txt "<relative path> <label>"; 10 random
    # half/half identity splits; labels 0..n-1 per file (INFERRED, METHODS.md 6.2); .bmp INFERRED
    cam = regdb_cameras()[1]
    plan = _Plan()
    files: dict[int, dict[str, list[str]]] = {p: {"rgb": [], "tir": []} for p in pids}
    frame = 0
    for pid in pids:
        ident = identities[pid]
        for _ in range(k):
            frame += 1
            view = ("front", "back")[int(rng.integers(2))]
            vis = f"Visible/{pid}/{ident.gender}_{view}_v_{frame:05d}_{pid}.bmp"
            thm = f"Thermal/{pid}/{ident.gender}_{view}_t_{frame:05d}_{pid}.bmp"
            files[pid]["rgb"].append(vis)
            files[pid]["tir"].append(thm)
            plan.items.append(_Item(pid, cam, "pair", {"rgb": vis, "tir": thm}, "rgb", 1, "all",
                                    (seed, 2, pid, frame), viewpoint=view))
    n_train = _split_counts(len(pids), _PROPORTIONS["regdb"], (1, 1))[0]
    trials = {}
    for trial in range(1, 11):
        train, test = _split_ids(pids, [n_train, len(pids) - n_train], rng)
        trials[str(trial)] = {"train": train, "test": test}
        for split, ids in (("train", train), ("test", test)):
            for mod, name in (("rgb", "visible"), ("tir", "thermal")):
                plan.index_files[f"idx/{split}_{name}_{trial}.txt"] = [
                    f"{path} {label}" for label, pid in enumerate(ids) for path in files[pid][mod]]
    plan.splits = dict(trials["1"])
    plan.extra["trials"] = trials
    return plan


def _plan_llcm(pids: list[int], k: int, rng: np.random.Generator, seed: int) -> _Plan:
    # [CODE: ZYK100/LLCM DEEN/data_manager.py] idx/train_{vis,nir}.txt "<relative path> <label>", idx/test_id.txt,
    # test_vis/cam1..9/<pid:04d>/, test_nir/cam{1,2,4..9}/<pid:04d>/ (no NIR cam 3); training folders our choice
    cams = llcm_cameras()
    train, test = _split_ids(pids, _split_counts(len(pids), _PROPORTIONS["llcm"], (1, 1)), rng)
    label = {p: i for i, p in enumerate(train)}
    plan = _Plan(splits={"train": train, "test": test})
    lines: dict[str, list[str]] = {"vis": [], "nir": []}
    for pid in pids:
        split = "train" if pid in label else "test"
        for tag, spectrum, modality, options, at_least in (("vis", "rgb", "rgb", range(1, 10), 2),
                                                          ("nir", "nir", "ir", [1, 2, 4, 5, 6, 7, 8, 9], 1)):
            for cam in _subset(rng, list(options), 0.55, at_least):
                for frame in range(1, _count(rng, k) + 1):
                    rel = f"{split}_{tag}/cam{cam}/{pid:04d}/{pid:04d}_c{cam:02d}_f{frame:04d}_{tag}.jpg"
                    plan.items.append(_Item(pid, cams[cam], "single", {spectrum: rel}, modality, cam, split,
                                            (seed, 3, pid, cam, frame, int(tag == "nir"))))
                    if split == "train":
                        lines[tag].append(f"{rel} {label[pid]}")
    plan.index_files["idx/train_vis.txt"] = lines["vis"]
    plan.index_files["idx/train_nir.txt"] = lines["nir"]
    plan.index_files["idx/test_id.txt"] = _comma_line(test)
    return plan


def _triplet_files(folders: tuple[str, str, str], name: str) -> dict[str, str]:
    return {s: f"{folder}/{name}" for s, folder in zip(("rgb", "nir", "tir"), folders)}


def _plan_rgbnt201(pids: list[int], k: int, rng: np.random.Generator, seed: int) -> _Plan:
    # [CODE: 924973292/TOP-ReID data/datasets/RGBNT201.py] {train_171,test}/{RGB,NI,TI}/<pid:06d>_cam<c>_<rest>.jpg
    cams = rgbnt201_cameras()
    train, test = _split_ids(pids, _split_counts(len(pids), _PROPORTIONS["rgbnt201"], (1, 1)), rng)
    plan = _Plan(splits={"train": train, "test": test})
    for pid in pids:
        split, root = ("train", "train_171") if pid in train else ("test", "test")
        seq = 0
        for cam in _subset(rng, [1, 2, 3, 4], 0.8, 2):
            for _ in range(_count(rng, k)):
                seq += 1
                files = _triplet_files((f"{root}/RGB", f"{root}/NI", f"{root}/TI"), f"{pid:06d}_cam{cam}_{seq:04d}.jpg")
                plan.items.append(_Item(pid, cams[cam], "triplet", files, TRIPLET, cam - 1, split,
                                        (seed, 4, pid, cam, seq)))
    return plan


def _plan_rgbnt100(pids: list[int], k: int, rng: np.random.Generator, seed: int) -> _Plan:
    # [CODE: 924973292/DeMo data/datasets/RGBNT100.py] rgbir/{bounding_box_train,query,bounding_box_test}/
    # <pid>_c<cam>_<rest>.jpg, one file = [RGB | NIR | TIR] panels side by side; cameras 1..8 (0-based in Sample)
    if max(pids) > 600:
        raise ValueError(f"rgbnt100 pids must be in 1..600 (the reference loader asserts it); got ids={max(pids)}")
    cams = layout_cameras("rgbnt100")
    train, test = _split_ids(pids, _split_counts(len(pids), _PROPORTIONS["rgbnt100"], (1, 1)), rng)
    plan = _Plan(splits={"train": train, "test": test, "query": test, "gallery": test})
    for pid in pids:
        seq = 0
        is_train = pid in train
        for cam in _subset(rng, list(range(1, 9)), 0.5, 2):
            for _ in range(_count(rng, k)):
                seq += 1
                folder, split = ("bounding_box_train", "train") if is_train else ("bounding_box_test", "gallery")
                plan.items.append(_Item(pid, cams[cam], "panel", {"panel": f"rgbir/{folder}/{pid:04d}_c{cam}_{seq:04d}.jpg"},
                                        TRIPLET, cam - 1, split, (seed, 5, pid, cam, seq)))
            if not is_train:  # one query per (test identity, camera), as a separate capture
                seq += 1
                plan.items.append(_Item(pid, cams[cam], "panel", {"panel": f"rgbir/query/{pid:04d}_c{cam}_{seq:04d}.jpg"},
                                        TRIPLET, cam - 1, "query", (seed, 5, pid, cam, seq)))
    return plan


def _plan_msvr310(pids: list[int], k: int, rng: np.random.Generator, seed: int) -> _Plan:
    # [CODE: 924973292/DeMo data/datasets/msvr310.py] {bounding_box_train,query3,bounding_box_test}/<vid:04d>/
    # {vis,ni,th}/<vid:04d>_s<scene:03d>_v<cam>_<rest>.jpg; several scenes per identity (junk: same id, same scene)
    if max(pids) > 9999:
        raise ValueError(f"msvr310 vehicle ids have 4 digits; ids must be <= 9999, got {max(pids)}")
    cams = layout_cameras("msvr310")
    train, test = _split_ids(pids, _split_counts(len(pids), _PROPORTIONS["msvr310"], (1, 1)), rng)
    n_query = min(len(test), max(1, round(len(test) * 52 / 155)))
    query_ids = sorted(int(p) for p in rng.choice(test, n_query, replace=False))
    n_scenes = min(max(4, len(pids)), 999)
    conditions = {}  # per scene: (brightness, ambient offset), a day / dusk / night capture
    for s in range(1, n_scenes + 1):
        conditions[s] = (float(rng.choice([1.0, 0.7, 0.4])), float(rng.uniform(-6, 6)))
    plan = _Plan(splits={"train": train, "test": test, "query": query_ids, "gallery": test})
    scenes_of: dict[str, list[int]] = {}
    for pid in pids:
        scenes = sorted(int(s) for s in rng.choice(np.arange(1, n_scenes + 1), int(rng.integers(2, 4)), replace=False))
        scenes_of[str(pid)] = scenes
        folder, split = ("bounding_box_train", "train") if pid in train else ("bounding_box_test", "gallery")
        seq = 0
        for scene in scenes:
            bright, dt = conditions[scene]
            for cam in sorted(int(c) for c in rng.choice(8, int(rng.integers(1, 4)), replace=False)):
                cam_s = replace(cams[cam], brightness=cams[cam].brightness * bright, ambient=cams[cam].ambient + dt)
                for _ in range(_count(rng, k)):
                    seq += 1
                    name = f"{pid:04d}_s{scene:03d}_v{cam}_{seq:03d}.jpg"
                    files = _triplet_files(tuple(f"{folder}/{pid:04d}/{m}" for m in ("vis", "ni", "th")), name)
                    plan.items.append(_Item(pid, cams[cam], "triplet", files, TRIPLET, cam, split,
                                            (seed, 6, pid, cam, seq), scene=scene, camera_override=cam_s))
        if pid in query_ids:
            scene = scenes[0]
            cam = int(rng.integers(8))
            bright, dt = conditions[scene]
            cam_s = replace(cams[cam], brightness=cams[cam].brightness * bright, ambient=cams[cam].ambient + dt)
            seq += 1
            name = f"{pid:04d}_s{scene:03d}_v{cam}_{seq:03d}.jpg"
            files = _triplet_files(tuple(f"query3/{pid:04d}/{m}" for m in ("vis", "ni", "th")), name)
            plan.items.append(_Item(pid, cams[cam], "triplet", files, TRIPLET, cam, "query",
                                    (seed, 6, pid, cam, seq), scene=scene, camera_override=cam_s))
    plan.extra["scenes"] = scenes_of
    return plan


# ===================================================================================================== export
def is_complete_export(out: str | Path, layout: str | None = None) -> bool:
    """True when `out` holds a finished export (manifest written, no in-progress marker), of `layout` if given."""
    out = Path(out)
    manifest = out / MANIFEST
    if not manifest.is_file() or (out / INCOMPLETE).exists():
        return False
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    return bool(data.get("complete")) and (layout is None or data.get("layout") == layout)


def _previous_layout(out: Path) -> str | None:
    for name in (MANIFEST, INCOMPLETE):
        try:
            return json.loads((out / name).read_text()).get("layout")
        except (OSError, ValueError, AttributeError):
            continue
    return None


def _prepare_out(out: Path, layout: str, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out={str(out)!r} is a file; pass a directory path for the {layout} export")
    if out.is_dir() and any(out.iterdir()):
        previous = _previous_layout(out)
        if previous != layout and not overwrite:
            what = f"a synthetic {previous} export" if previous else "not a synthetic export"
            raise FileExistsError(
                f"out={str(out)!r} is not empty and is {what}; refusing to write the {layout} layout there. "
                "Choose an empty or new directory, or pass overwrite=True (--overwrite) to replace its contents."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _save(arr: np.ndarray, path: Path) -> None:
    im = Image.fromarray(arr)
    if path.suffix == ".jpg":
        im.save(path, quality=92)
    else:
        im.save(path)


def export(layout: str, out: str | Path, *, ids: int | None = None, seed: int = 0,
           config: SyntheticConfig | None = None, images_per_id_cam: int | None = None, progress: bool = True,
           overwrite: bool = False, panel_hw: tuple[int, int] | None = RGBNT100_PANEL_HW) -> dict[str, Any]:
    """Write a synthetic dataset in the on-disk layout of a real one (METHODS.md section 6).

    Args:
        layout: one of `LAYOUTS`.
        out: target directory; must be empty, absent, or a previous export of the same layout (replaced).
        ids: number of identities (default per layout, e.g. 100 for sysu-mm01); split in the real proportions.
        seed: everything (identities, splits, images) is a deterministic function of it.
        images_per_id_cam: images (or triplets) per identity and camera; SYSU/LLCM/RGBNT draw between half of it and
            it, MSVR310 per (scene, camera); RegDB: images per modality per identity (10 in the real dataset).
        overwrite: replace a non-empty directory that is not a previous export of this layout.
        panel_hw: (H, W) of each RGBNT100 panel in the file; default the real 128x256 (768x128 files, what the
            reference readers crop); None keeps the render size (config.height x config.width).

    Files besides the layout: `synthetic_factors.jsonl`, one line per image (VI layouts) or triplet (multi-modal
    layouts): `{"paths": {modality: relative path}, "pid", "camid", "modality", "split", "scene", "factors"}`
    (+ `"panel": {"rgb": 0, "nir": 1, "tir": 2}` for RGBNT100, whose three paths are the same file). `camid` follows
    the `Sample` convention the loaders parse (SYSU 1..6, RegDB visible 1 / thermal 2, LLCM 1..9, RGBNT201 and
    RGBNT100 0-based, MSVR310 0..7); `factors["camera"]` is the number in the file name. `split` is the identity's
    split ("train", "val", "test"; "query"/"gallery" for RGBNT100 and MSVR310; "all" for RegDB, whose splits are
    per trial, listed in the manifest's "trials"). `synthetic_manifest.json`, written last, holds the layout, seed,
    ids, config, identity splits, counts[split][modality][camid], the image count, line counts of every index file
    and `files_written` (every file but the manifest).

    Returns:
        The manifest (also written to `out/synthetic_manifest.json`, last).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    config = config or SyntheticConfig()
    ids = _DEFAULT_IDS[layout] if ids is None else int(ids)
    minimum = 3 if layout == "sysu-mm01" else 2
    if ids < minimum:
        raise ValueError(f"ids must be >= {minimum} for the {layout} layout (one identity per split), got {ids}")
    k = _DEFAULT_K[layout] if images_per_id_cam is None else int(images_per_id_cam)
    if k < 1:
        raise ValueError(f"images_per_id_cam must be >= 1, got {k}")
    out = Path(out)
    _prepare_out(out, layout, overwrite)
    (out / INCOMPLETE).write_text(json.dumps({"layout": layout, "seed": seed}))

    identities = {ident.pid: ident for ident in make_identities(ids, seed, config)}
    pids = sorted(identities)
    rng = np.random.default_rng([seed, LAYOUTS.index(layout), 0x5EED])
    if layout == "regdb":
        plan = _plan_regdb(pids, k, rng, seed, identities)
    else:
        planner = {"sysu-mm01": _plan_sysu, "llcm": _plan_llcm, "rgbnt201": _plan_rgbnt201,
                   "rgbnt100": _plan_rgbnt100, "msvr310": _plan_msvr310}[layout]
        plan = planner(pids, k, rng, seed)

    from tqdm import tqdm

    counts: dict[str, dict[str, dict[str, int]]] = {}
    n_images, n_lines = 0, 0
    made_dirs: set[Path] = set()
    start = time.perf_counter()
    with open(out / FACTORS, "w") as fh:
        for item in tqdm(plan.items, desc=f"synthetic {layout}", unit="img", disable=not progress):
            lines, written = _render_item(item, identities[item.pid], config, out, made_dirs, panel_hw)
            n_images += written
            for line in lines:
                fh.write(json.dumps(line) + "\n")
                n_lines += 1
                cams = counts.setdefault(line["split"], {}).setdefault(line["modality"], {})
                cams[str(line["camid"])] = cams.get(str(line["camid"]), 0) + 1
    for rel, lines in plan.index_files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n" if lines else "")
    n_mat = 0
    if layout == "sysu-mm01":  # the .mat twins of exp/*.txt (variable name `id`: INFERRED from the MATLAB scripts)
        from scipy.io import savemat

        for rel, lines in plan.index_files.items():
            savemat(out / rel.replace(".txt", ".mat"), {"id": np.array([[int(v) for v in lines[0].split(",")]])})
            n_mat += 1
    manifest = {
        "generator": "workbench.data.synthetic",
        "version": 1,
        "layout": layout,
        "seed": seed,
        "ids": ids,
        "images_per_id_cam": k,
        **({"panel_hw": list(panel_hw) if panel_hw is not None else None} if layout == "rgbnt100" else {}),
        "config": asdict(config),
        "splits": plan.splits,
        **plan.extra,
        "counts": counts,
        "images": n_images,
        "factor_lines": n_lines,
        "index_files": {rel: len(lines) for rel, lines in plan.index_files.items()},
        "files_written": n_images + len(plan.index_files) + n_mat + 1,  # + the factors file; manifest excluded
        "factors_file": FACTORS,
        "seconds": round(time.perf_counter() - start, 2),
        "complete": True,
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)
    (out / INCOMPLETE).unlink()
    return manifest


def _render_item(item: _Item, identity: Identity, config: SyntheticConfig, out: Path,
                 made_dirs: set[Path], panel_hw: tuple[int, int] | None = None) -> tuple[list[dict[str, Any]], int]:
    rng = np.random.default_rng(list(item.key))
    camera = item.camera_override or item.camera
    spectra = ("rgb", "nir", "tir") if item.kind in ("triplet", "panel") else tuple(item.files)
    images, factors = render_spectra(identity, spectra, camera=camera, viewpoint=item.viewpoint, rng=rng,
                                     config=config)
    factors = {**factors, "pid": identity.pid, "identity": identity.to_dict()}
    if item.scene is not None:
        factors["scene"] = item.scene

    def write(rel: str, arr: np.ndarray) -> None:
        path = out / rel
        if path.parent not in made_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(path.parent)
        _save(arr, path)

    base = {"pid": item.pid, "split": item.split, "scene": item.scene}
    if item.kind == "panel":
        rel = item.files["panel"]
        panels = [images[m] for m in ("rgb", "nir", "tir")]
        if panel_hw is not None and panels[0].shape[:2] != tuple(panel_hw):
            size = (int(panel_hw[1]), int(panel_hw[0]))  # PIL: (W, H)
            panels = [np.asarray(Image.fromarray(p).resize(size, Image.BILINEAR)) for p in panels]
        write(rel, np.concatenate(panels, axis=1))
        line = {**base, "paths": {"rgb": rel, "nir": rel, "tir": rel}, "panel": {"rgb": 0, "nir": 1, "tir": 2},
                "camid": item.camid, "modality": TRIPLET,
                "factors": {**factors, "modality": TRIPLET, "spectrum": TRIPLET}}
        return [line], 1
    for s, rel in item.files.items():
        write(rel, images[s])
    if item.kind == "triplet":
        return [{**base, "paths": dict(item.files), "camid": item.camid, "modality": TRIPLET,
                 "factors": {**factors, "modality": TRIPLET, "spectrum": TRIPLET}}], 3
    if item.kind == "pair":  # RegDB: one dual-camera capture, visible (camid 1) and thermal (camid 2)
        return [{**base, "paths": {"rgb": item.files["rgb"]}, "camid": 1, "modality": "rgb",
                 "factors": {**factors, "modality": "rgb", "spectrum": "rgb"}},
                {**base, "paths": {"ir": item.files["tir"]}, "camid": 2, "modality": "ir",
                 "factors": {**factors, "modality": "ir", "spectrum": "tir", "camera": 2}}], 2
    (s, rel), = item.files.items()
    return [{**base, "paths": {item.modality: rel}, "camid": item.camid, "modality": item.modality,
             "factors": {**factors, "modality": item.modality, "spectrum": s}}], 1


# ===================================================================================================== CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.data.synthetic",
                                     description="Export synthetic ReID data in a real dataset's on-disk layout.")
    parser.add_argument("--layout", required=True, choices=LAYOUTS)
    parser.add_argument("--out", required=True, help="target directory (empty, new, or a previous export)")
    parser.add_argument("--ids", type=int, default=None, help="number of identities (default per layout)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", choices=("easy", "default", "medium", "hard"), default="default")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--images-per-id-cam", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty directory")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    size = {k: v for k, v in (("height", args.height), ("width", args.width)) if v is not None}
    try:
        config = SyntheticConfig.from_difficulty(args.difficulty, **size)
        manifest = export(args.layout, args.out, ids=args.ids, seed=args.seed, config=config,
                          images_per_id_cam=args.images_per_id_cam, progress=not args.no_progress,
                          overwrite=args.overwrite)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    splits = ", ".join(f"{name} {len(v)}" for name, v in manifest["splits"].items())
    print(f"{args.layout}: wrote {manifest['images']} images for {manifest['ids']} identities ({splits}) "
          f"to {args.out} in {manifest['seconds']:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
