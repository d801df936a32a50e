"""Synthetic people world: who exists and who films them. Pure data, seeded; no pixels.

The first of the three stages of the synthetic generator (world -> render -> export):

* `SyntheticConfig`: render size and the difficulty knobs (frozen, continuous, with presets);
* `Identity` (with its `Garment`s and `Accessory`s) and `make_identities`: the latent attributes of each person,
  a deterministic function of the seed. Identity is what stays the same across cameras and modalities;
* `Camera` and the camera rigs of the person layouts (SYSU-MM01, RGBNT201, RegDB, LLCM): where each camera is,
  what it records and its nuisance biases (the style).

`workbench.data.synthetic_render` turns a request (identity, camera, random state) into images and imports only this
module; `workbench.data.synthetic` writes the real on-disk layouts and imports both. The vehicle world lives in
`workbench.data.synthetic_vehicle_world`.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

__all__ = [
    "SPECTRA", "SPECTRUM_OF", "VIEWPOINTS", "Accessory", "Camera", "Garment", "Identity", "SyntheticConfig",
    "llcm_cameras", "make_identities", "regdb_cameras", "rgbnt201_cameras", "sysu_cameras",
]  # fmt: skip

# Viewpoints: "left"/"right" name the side of the person that faces the camera (the two "side" views);
# `Camera.viewpoint_bias` is a probability per entry, in this order.
VIEWPOINTS = ("front", "back", "left", "right")
SPECTRA = ("rgb", "nir", "tir")
SPECTRUM_OF = {"rgb": "rgb", "nir": "nir", "tir": "tir", "ir": "nir"}  # "ir" (VI preset) is near-infrared


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
