"""Synthetic people, rendered: a request (identity, camera, viewpoint, random state) becomes pixel-aligned images.

The second stage of the generator (world -> render -> export): it imports the world
(`workbench.data.synthetic_world`) and nothing else of the generator; `workbench.data.synthetic` writes the layouts.

One request (identity, camera, viewpoint, random state) is drawn in three steps, all vectorised NumPy:

1. **Layout.** Every per-image nuisance (viewpoint, scale, pose, occluder, background shift, illumination) is drawn
   from the random state in a fixed order, independent of the identity's attributes, so two identities rendered with
   the same random state differ only where their attributes differ (the accessory-visibility tests rely on this).
   The person is painted as a *part label map* `(H, W) uint8` (skin, hair, upper garment, its pattern, lower garment,
   shoes, hat, backpack, bag, eyes, occluder) from ellipses, capsules and trapezoids.
2. **Materials.** Each label has a visible colour, a near-infrared reflectance and a thermal behaviour (skin
   temperature, garment insulation and emissivity). NIR reflectance of a dye is drawn independently of its visible hue
   (real textile dyes are largely transparent in NIR), so colour does not carry over to NIR; shape, pattern and
   accessories do.
3. **Sensor.** Visible: colour under the camera's illuminant. Near-infrared: grey reflectance times an active
   illuminator's radial fall-off, stronger noise. Thermal: apparent temperature (emissivity-weighted surface
   temperature plus reflected ambient), automatic gain between a cold background and warm skin, low contrast, blur.
   NIR and TIR are returned as 3-channel images with equal channels, as real datasets store them.

Backgrounds are per camera *location* (cameras sharing a location, such as SYSU-MM01 cams 2 and 3, share the scene)
and cached per size. Vehicles have their own renderer (`workbench.data.synthetic_vehicle_render`).
"""

from __future__ import annotations

import functools
import math
import zlib
from typing import Any

import numpy as np
from scipy import ndimage

from workbench.data.samples import TRIPLET
from workbench.data.synthetic_world import (
    SPECTRA,
    SPECTRUM_OF,
    VIEWPOINTS,
    Camera,
    Identity,
    SyntheticConfig,
)

__all__ = [
    "N_PARTS", "OCCLUDER_KINDS", "PART_NAMES", "SPECTRA", "SPECTRUM_OF", "VIEWPOINTS", "render", "render_parts",
    "render_spectra", "render_triplet",
]  # fmt: skip

# Part labels of the layout map.
BG, SKIN, HAIR, UPPER, UPPER_PAT, LOWER, LOWER_PAT, SHOES, HAT, BACKPACK, BAG, EYES, OCCLUDER = range(13)
PART_NAMES = (
    "background", "skin", "hair", "upper", "upper_pattern", "lower", "lower_pattern",
    "shoes", "hat", "backpack", "bag", "eyes", "occluder",
)  # fmt: skip
N_PARTS = len(PART_NAMES)

OCCLUDER_KINDS = ("box", "pole", "bush")
_N_UNIFORM, _N_NORMAL = 16, 8  # fixed per-image draws (keeps random streams aligned across identities)


# ----------------------------------------------------------------------------------------------------- primitives
@functools.lru_cache(maxsize=16)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Open pixel-centre grids: ys (h, 1), xs (1, w), float32."""
    ys = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(w, dtype=np.float32) + 0.5)[None, :]
    return ys, xs


def _window(lab: np.ndarray, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice] | None:
    h, w = lab.shape
    iy0, iy1 = max(int(math.floor(y0)), 0), min(int(math.ceil(y1)) + 1, h)
    ix0, ix1 = max(int(math.floor(x0)), 0), min(int(math.ceil(x1)) + 1, w)
    if iy0 >= iy1 or ix0 >= ix1:
        return None
    return slice(iy0, iy1), slice(ix0, ix1)


def _put(lab: np.ndarray, win: tuple[slice, slice], mask: np.ndarray, value: int, only: tuple[int, ...] | None) -> None:
    sub = lab[win]
    if only is not None:
        mask = mask & np.isin(sub, only)
    sub[mask] = value


def _ellipse(lab, cy, cx, ry, rx, value, only=None, power: float = 2.0, y_max: float | None = None) -> None:
    """Fill an ellipse (power 2), a diamond (power 1) or a rounded rectangle (power 4) centred at (cy, cx),
    optionally only above row y_max."""
    ry, rx = max(ry, 0.6), max(rx, 0.6)
    win = _window(lab, cy - ry, cy + ry if y_max is None else min(cy + ry, y_max), cx - rx, cx + rx)
    if win is None:
        return
    ys, xs = _grid(*lab.shape)
    dy, dx = np.abs((ys[win[0]] - cy) / ry), np.abs((xs[:, win[1]] - cx) / rx)
    m = (dy * dy + dx * dx <= 1.0) if power == 2.0 else (dy**power + dx**power <= 1.0)
    if y_max is not None:
        m = m & (ys[win[0]] < y_max)
    _put(lab, win, m, value, only)


def _capsule(lab, y0, x0, y1, x1, r, value, only=None) -> None:
    """Fill the set of pixels within distance r of the segment (y0, x0)-(y1, x1): a limb or a strap."""
    r = max(r, 0.55)
    win = _window(lab, min(y0, y1) - r, max(y0, y1) + r, min(x0, x1) - r, max(x0, x1) + r)
    if win is None:
        return
    ys, xs = _grid(*lab.shape)
    py, px = ys[win[0]] - y0, xs[:, win[1]] - x0
    dy, dx = y1 - y0, x1 - x0
    t = np.clip((py * dy + px * dx) / max(dy * dy + dx * dx, 1e-6), 0.0, 1.0)
    ey, ex = py - t * dy, px - t * dx
    _put(lab, win, ey * ey + ex * ex <= r * r, value, only)


def _trapezoid(lab, y0, y1, cx, hw0, hw1, value, lean: float = 0.0, only=None) -> None:
    """Fill rows y0..y1 between cx +- half-width, the half-width going linearly from hw0 to hw1; lean shifts x by
    lean * (y - y1)."""
    hw = max(hw0, hw1)
    win = _window(lab, y0, y1, cx - hw - abs(lean) * (y1 - y0), cx + hw + abs(lean) * (y1 - y0))
    if win is None:
        return
    ys, xs = _grid(*lab.shape)
    y = ys[win[0]]
    t = np.clip((y - y0) / max(y1 - y0, 1e-6), 0.0, 1.0)
    m = (np.abs(xs[:, win[1]] - cx - lean * (y - y1)) <= hw0 + t * (hw1 - hw0)) & (y >= y0) & (y <= y1)
    _put(lab, win, m, value, only)


def _rect(lab, y0, y1, x0, x1, value, only=None) -> None:
    win = _window(lab, y0, y1 - 1, x0, x1 - 1)
    if win is None:
        return
    ys, xs = _grid(*lab.shape)
    m = (ys[win[0]] >= y0) & (ys[win[0]] <= y1) & (xs[:, win[1]] >= x0) & (xs[:, win[1]] <= x1)
    _put(lab, win, m, value, only)


def _pattern(lab, y0, y1, base: int, target: int, kind: str, period: float, oy: float, ox: float,
             vertical: bool = False) -> None:
    """Recolour `base` pixels of rows y0..y1 to `target` where a stripe/check pattern is on. The pattern lives in
    body coordinates (offsets oy, ox), so it is the same in every modality of one pose."""
    if kind not in ("stripes", "checks"):
        return
    win = _window(lab, y0, y1, 0, lab.shape[1])
    if win is None:
        return
    ys, xs = _grid(*lab.shape)
    period = max(period, 2.0)
    on_y = np.mod(ys[win[0]] - oy, period) < period / 2
    on_x = np.mod(xs[:, win[1]] - ox, period) < period / 2
    if kind == "stripes":
        m = np.broadcast_to(on_x if vertical else on_y, (win[0].stop - win[0].start, win[1].stop - win[1].start))
    else:
        m = on_y ^ on_x
    sub = lab[win]
    sub[m & (sub == base)] = target


# ----------------------------------------------------------------------------------------------------- backgrounds
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    coarse = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    return ndimage.zoom(coarse, (h / coarse.shape[0], w / coarse.shape[1]), order=1)[:h, :w]


@functools.lru_cache(maxsize=96)
def _background(location: str, kind: str, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scene of one camera location: reflectance rgb (h, w, 3), NIR reflectance (h, w) and thermal offset from
    ambient in degrees (h, w). Deterministic from the location name."""
    rng = np.random.default_rng(zlib.crc32(f"{location}|{kind}".encode()))
    rgb = np.empty((h, w, 3), np.float32)
    nir = np.empty((h, w), np.float32)
    tir = np.zeros((h, w), np.float32)

    def paint(ys: slice, xs: slice, colour, refl: float, temp: float, mask: np.ndarray | None = None) -> None:
        if mask is None:
            rgb[ys, xs], nir[ys, xs], tir[ys, xs] = colour, refl, temp
        else:
            rgb[ys, xs][mask], nir[ys, xs][mask], tir[ys, xs][mask] = colour, refl, temp

    def colour(base, spread: float = 0.08):
        return np.clip(np.asarray(base, np.float32) + rng.uniform(-spread, spread, 3), 0.02, 0.98)

    horizon = int(h * rng.uniform(0.5, 0.68))
    if kind == "indoor":
        paint(slice(0, horizon), slice(0, w), colour(rng.choice([[0.8, 0.78, 0.7], [0.7, 0.75, 0.8], [0.85, 0.85, 0.85],
                                                                 [0.75, 0.65, 0.55]])), rng.uniform(0.5, 0.85), 0.0)
        paint(slice(horizon, h), slice(0, w), colour([0.45, 0.4, 0.35], 0.15), rng.uniform(0.3, 0.6), -1.0)
        for _ in range(rng.integers(1, 3)):  # doors, windows, posters
            x0 = int(rng.uniform(-0.1, 0.8) * w)
            x1 = x0 + int(rng.uniform(0.15, 0.4) * w)
            y0 = int(rng.uniform(0.05, 0.3) * h)
            item = rng.integers(3)
            cols = ([0.35, 0.22, 0.12], [0.75, 0.85, 0.95], [0.8, 0.2, 0.2])
            temps = (0.0, -3.0, 0.0)  # a window is cold glass in thermal
            paint(slice(max(y0, 0), horizon), slice(max(x0, 0), max(min(x1, w), 0)), colour(cols[item], 0.15),
                  rng.uniform(0.2, 0.9), temps[item])
        if rng.random() < 0.5:  # a radiator: a warm distractor in thermal
            x0 = int(rng.uniform(0, 0.7) * w)
            paint(slice(horizon - h // 10, horizon), slice(x0, min(x0 + w // 4, w)), colour([0.9, 0.9, 0.9]),
                  0.7, 10.0)
        paint(slice(horizon, min(horizon + max(h // 60, 1), h)), slice(0, w), colour([0.3, 0.3, 0.3]), 0.3, -1.0)
        tiles = max(h // 12, 3)
        for y in range(horizon + tiles, h, tiles):  # floor tile seams
            rgb[y] *= 0.85
    else:  # outdoor scenes and roads
        ground = [0.5, 0.5, 0.5] if kind == "road" else [0.55, 0.5, 0.45]
        paint(slice(0, horizon), slice(0, w), colour(rng.choice([[0.6, 0.55, 0.5], [0.5, 0.55, 0.6], [0.7, 0.68, 0.6]])),
              rng.uniform(0.35, 0.7), 2.0 if kind == "road" else 1.0)
        paint(slice(horizon, h), slice(0, w), colour([g * 0.7 for g in ground], 0.06), rng.uniform(0.15, 0.35), 1.5)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        for _ in range(rng.integers(1, 4)):  # trees and hedges: green, bright in NIR, cool in thermal
            cy, cx = rng.uniform(0.05, 0.55) * h, rng.uniform(0, 1) * w
            ry, rx = rng.uniform(0.1, 0.25) * h, rng.uniform(0.2, 0.5) * w
            m = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
            paint(slice(0, h), slice(0, w), colour([0.2, 0.42, 0.15], 0.08), rng.uniform(0.75, 0.9), -2.0, m)
        if kind == "road" or rng.random() < 0.5:  # lane / kerb markings
            for y in range(horizon + h // 8, h, h // 5):
                paint(slice(y, min(y + max(h // 60, 1), h)), slice(0, w), colour([0.9, 0.9, 0.85]), 0.8, 1.0)
    texture = 0.85 + 0.3 * _smooth_noise(rng, h, w, max(h // 10, 2))
    rgb *= texture[..., None]
    nir *= texture
    tir += 2.0 * (texture - 1.0)
    return rgb, nir, tir


@functools.lru_cache(maxsize=32)
def _falloff(h: int, w: int, strength: float) -> np.ndarray:
    """Active-NIR illuminator fall-off (h, w): 1 at the centre, 1 / (1 + k r^2) with r the distance in heights."""
    ys, xs = _grid(h, w)
    r2 = ((ys - h / 2) / h) ** 2 + ((xs - w / 2) / h) ** 2
    return (1.0 / (1.0 + strength * 8.0 * r2)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------- identity
@functools.lru_cache(maxsize=4096)
def _identity_tables(identity: Identity) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-part visible colour (P, 3), NIR reflectance (P,), thermal insulation (P,) and emissivity (P,).

    Insulation 0 means the part is at skin temperature, 1 means it is at ambient temperature (accessories)."""
    rgb = np.zeros((N_PARTS, 3), np.float32)
    nir = np.zeros(N_PARTS, np.float32)
    ins = np.ones(N_PARTS, np.float32)
    eps = np.full(N_PARTS, 0.95, np.float32)
    up, lo = identity.upper, identity.lower
    rows = {
        SKIN: (identity.skin_rgb, identity.skin_nir, 0.0, 0.98),
        HAIR: (identity.hair_rgb, identity.hair_nir, 0.55, 0.95),
        UPPER: (up.rgb, up.nir, up.insulation, up.emissivity),
        UPPER_PAT: (up.pattern_rgb, up.pattern_nir, up.insulation, up.pattern_emissivity),
        LOWER: (lo.rgb, lo.nir, lo.insulation, lo.emissivity),
        LOWER_PAT: (lo.pattern_rgb, lo.pattern_nir, lo.insulation, lo.pattern_emissivity),
        SHOES: (identity.shoes_rgb, identity.shoes_nir, 0.8, 0.9),
        EYES: ((0.08, 0.06, 0.05), 0.15, 0.15, 0.98),
    }
    for acc, part, insulation in ((identity.hat, HAT, 0.6), (identity.backpack, BACKPACK, 0.9), (identity.bag, BAG, 0.95)):
        if acc is not None:
            rows[part] = (acc.rgb, acc.nir, insulation, acc.emissivity)
    for part, (c, n, i, e) in rows.items():
        rgb[part], nir[part], ins[part], eps[part] = c, n, i, e
    for a in (rgb, nir, ins, eps):
        a.setflags(write=False)
    return rgb, nir, ins, eps


# ----------------------------------------------------------------------------------------------------- layout
def _draw_uniforms(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.random(_N_UNIFORM), rng.standard_normal(_N_NORMAL)


def _choose_viewpoint(camera: Camera, config: SyntheticConfig, u: float) -> str:
    bias = np.asarray(camera.viewpoint_bias, np.float64)
    p = (1.0 - config.viewpoint_spread) * bias / bias.sum() + config.viewpoint_spread * 0.25
    return VIEWPOINTS[min(int(np.searchsorted(np.cumsum(p), u * p.sum(), side="right")), 3)]


def _layout(identity: Identity, camera: Camera, viewpoint: str | None, rng: np.random.Generator,
            config: SyntheticConfig) -> dict[str, Any]:
    """Draw the nuisance and paint the part label map. Returns a dict with `labels (H, W) uint8`, `shade (W,)`,
    the occluder material, background offsets, illumination draws and the factors."""
    u, g = _draw_uniforms(rng)
    if viewpoint is None:
        viewpoint = _choose_viewpoint(camera, config, float(u[0]))
    elif viewpoint not in VIEWPOINTS:
        raise ValueError(f"viewpoint must be one of {VIEWPOINTS} or None (camera bias), got {viewpoint!r}")
    h, w = config.height, config.width
    pj = config.pose_jitter
    lab = np.zeros((h, w), np.uint8)

    ph = min(h * camera.scale * identity.height * (1.0 + 0.06 * pj * float(np.clip(g[0], -2, 2))), 0.98 * h)
    top = float(np.clip((h - ph) / 2 + 0.03 * h * pj * g[2], 0.0, h - ph))
    cx = w / 2 + 0.07 * w * pj * float(np.clip(g[1], -2, 2))
    b = identity.build
    side = viewpoint in ("left", "right")
    d = -1.0 if viewpoint == "left" else 1.0  # image direction the person faces in a side view
    female = identity.gender == "female"
    hr = 0.062 * ph * identity.head
    hy = top + 1.05 * hr
    sh_y, hip_y, foot_y = top + 0.175 * ph, top + 0.5 * ph, top + ph
    knee_y, ank_y = top + 0.73 * ph, top + 0.955 * ph
    if side:
        sw = hw = 0.078 * ph * b
    else:
        sw, hw = 0.125 * ph * b * (0.92 if female else 1.0), 0.1 * ph * b * (1.08 if female else 1.0)
    lean = 0.06 * pj * float(np.clip(g[5], -2, 2)) * (1.0 if side else 0.4)
    ar, lr = 0.03 * ph * b, 0.047 * ph * b
    hcx = cx + lean * (hy - hip_y) + (0.12 * hr * d if side else 0.0)
    hrx = hr * (0.85 if side else 0.8)
    up, lo = identity.upper, identity.lower

    # long hair behind the head/shoulders (front and side views)
    if identity.hair_style == "long" and viewpoint != "back":
        _trapezoid(lab, hy - 0.3 * hr, sh_y + 0.07 * ph, hcx - (0.2 * hr * d if side else 0), hrx * 1.05,
                   hrx * 1.25, HAIR)

    # legs (far leg first in a side view)
    stride = (0.07 + 0.09 * abs(float(g[4])) * pj) * ph if side else 0.0
    swing = 0.35 * pj * float(np.clip(g[3], -2, 2)) if side else 0.08 * pj * float(g[3])
    if side:
        legs = [(cx, cx - d * stride / 2), (cx, cx + d * stride / 2)]
    else:
        legs = [(cx - hw * 0.48, cx - hw * 0.55), (cx + hw * 0.48, cx + hw * 0.55)]
    for hx, ax in legs:
        kx = (hx + ax) / 2 + (d * 0.01 * ph if side else 0.0)
        leg_part = LOWER if lo.kind == "trousers" else SKIN
        _capsule(lab, hip_y, hx, knee_y, kx, lr, leg_part)
        _capsule(lab, knee_y, kx, ank_y, ax, lr * 0.85, leg_part)
        if lo.kind == "shorts":
            _capsule(lab, hip_y, hx, hip_y + 0.45 * (knee_y - hip_y) + 0.02 * ph, hx + 0.45 * (kx - hx), lr * 1.08, LOWER)
        _ellipse(lab, ank_y + 0.012 * ph, ax + (d * lr * 0.5 if side else 0.0), 0.03 * ph,
                 lr * (1.5 if side else 1.05), SHOES)
    _trapezoid(lab, hip_y - 0.03 * ph, hip_y + 0.06 * ph, cx, hw, hw * 1.02, LOWER)  # pelvis
    if lo.kind == "skirt":
        _trapezoid(lab, hip_y - 0.03 * ph, knee_y + 0.02 * ph, cx, hw, hw * 1.45 + (stride * 0.3), LOWER)

    # arms: far arm (side view) behind the torso
    upper_len, fore_len = 0.16 * ph, 0.16 * ph
    long_sleeves = up.kind in ("longsleeve", "coat")

    def arm(sx: float, sy: float, angle: float, bend: float) -> None:
        ex, ey = sx + upper_len * math.sin(angle), sy + upper_len * math.cos(angle)
        hx2, hy2 = ex + fore_len * math.sin(angle + bend), ey + fore_len * math.cos(angle + bend)
        _capsule(lab, sy, sx, ey, ex, ar, UPPER)
        _capsule(lab, ey, ex, hy2, hx2, ar * 0.85, UPPER if long_sleeves else SKIN)
        if not long_sleeves:  # short sleeve ends halfway down the upper arm
            _capsule(lab, sy + 0.55 * (ey - sy), sx + 0.55 * (ex - sx), ey, ex, ar * 0.9, SKIN)
        _ellipse(lab, hy2 + 0.01 * ph, hx2, ar * 1.1, ar * 0.95, SKIN)

    if side:
        arm(cx + lean * (sh_y - hip_y), sh_y + ar, -d * swing, d * 0.25)
    # torso
    torso_bottom = hip_y + (0.13 * ph if up.kind == "coat" else 0.02 * ph)
    _trapezoid(lab, sh_y + 0.02 * ph, torso_bottom, cx, sw, hw * (1.08 if up.kind == "coat" else 1.0), UPPER, lean)
    _ellipse(lab, sh_y + 0.035 * ph, cx + lean * (sh_y - hip_y), 0.045 * ph, sw, UPPER)
    if identity.hair_style == "long" and viewpoint == "back":
        _trapezoid(lab, hy, sh_y + 0.09 * ph, hcx, hrx * 1.05, hrx * 1.2, HAIR)
    if side:
        arm(cx + lean * (sh_y - hip_y), sh_y + ar, d * swing, d * 0.25)
    else:
        for s in (-1.0, 1.0):
            sx = cx + lean * (sh_y - hip_y) + s * (sw - 0.3 * ar)
            arm(sx, sh_y + ar, s * (0.1 + abs(swing)), -s * 0.05)
    # garment patterns and the chest logo (front only)
    pat_period = up.pattern_scale * 0.07 * ph
    _pattern(lab, sh_y - 0.05 * ph, torso_bottom + 0.2 * ph, UPPER, UPPER_PAT, up.pattern, pat_period, sh_y, cx)
    _pattern(lab, hip_y - 0.05 * ph, foot_y, LOWER, LOWER_PAT, lo.pattern, lo.pattern_scale * 0.06 * ph, hip_y, cx,
             vertical=True)
    if up.pattern == "logo" and viewpoint == "front":
        ly, lx, ls = sh_y + 0.1 * ph, cx + lean * (sh_y + 0.1 * ph - hip_y), 0.045 * ph * up.pattern_scale
        if up.logo_shape == "circle":
            _ellipse(lab, ly, lx, ls, ls, UPPER_PAT, only=(UPPER,))
        elif up.logo_shape == "square":
            _rect(lab, ly - ls, ly + ls, lx - ls, lx + ls, UPPER_PAT, only=(UPPER,))
        elif up.logo_shape == "diamond":
            _ellipse(lab, ly, lx, ls * 1.3, ls * 1.3, UPPER_PAT, only=(UPPER,), power=1.0)
        else:  # "bar": a horizontal band of text
            _rect(lab, ly - 0.4 * ls, ly + 0.4 * ls, lx - 1.6 * ls, lx + 1.6 * ls, UPPER_PAT, only=(UPPER,))
    # neck, head, hair, eyes, hat
    _rect(lab, hy + 0.6 * hr, sh_y + 0.03 * ph, hcx - 0.38 * hr, hcx + 0.38 * hr, SKIN)
    _ellipse(lab, hy, hcx, hr, hrx, SKIN)
    if viewpoint == "back":
        _ellipse(lab, hy - 0.05 * hr, hcx, hr * 1.05, hrx * 1.08, HAIR)
    else:
        win = _window(lab, hy - 1.2 * hr, hy + 1.2 * hr, hcx - 1.2 * hrx, hcx + 1.2 * hrx)
        if win is not None:
            ys, xs = _grid(h, w)
            yy, xx = ys[win[0]] - hy, xs[:, win[1]] - hcx
            in_head = (yy / (hr * 1.08)) ** 2 + (xx / (hrx * 1.08)) ** 2 <= 1
            hair = in_head & (yy < -0.3 * hr)
            if side:
                hair |= in_head & (xx * d < -0.05 * hrx)
            _put(lab, win, hair, HAIR, None)
        eye_r = max(0.09 * hr, 0.5)
        eye_y = hy - 0.02 * hr
        for ex in ([hcx + d * 0.5 * hrx] if side else [hcx - 0.38 * hrx, hcx + 0.38 * hrx]):
            _ellipse(lab, eye_y, ex, eye_r, eye_r, EYES, only=(SKIN,))
    visible: list[str] = []
    if identity.hat is not None:
        visible.append("hat")
        _ellipse(lab, hy - 0.15 * hr, hcx, hr * 1.02, hrx * 1.12, HAT, y_max=hy - 0.15 * hr)  # the crown
        if viewpoint != "back":
            bx0, bx1 = (hcx - 1.25 * hrx, hcx + 1.25 * hrx) if not side else sorted((hcx, hcx + d * 1.8 * hrx))
            _rect(lab, hy - 0.32 * hr, hy - 0.12 * hr, bx0, bx1, HAT)
    if identity.backpack is not None and viewpoint != "front":  # hidden behind the body from the front
        visible.append("backpack")
        py = (sh_y + 0.03 * ph + hip_y - 0.02 * ph) / 2
        pry = (hip_y - sh_y - 0.05 * ph) / 2
        if side:
            _ellipse(lab, py, cx - d * (sw + 0.045 * ph * b) + lean * (py - hip_y), pry, 0.06 * ph * b, BACKPACK,
                     power=4.0)
        else:
            _ellipse(lab, py, cx + lean * (py - hip_y), pry, sw * 0.72, BACKPACK, power=4.0)
    if identity.bag is not None:
        # the person's right side appears on the image's left in a front view
        on_left_of_image = (identity.bag_side == "right") == (viewpoint == "front")
        bag_visible = viewpoint in ("front", "back") or viewpoint == identity.bag_side
        if bag_visible:
            visible.append("bag")
            by = hip_y + 0.02 * ph
            bx = cx + d * 0.03 * ph if side else cx + (-1 if on_left_of_image else 1) * (hw + 0.06 * ph)
            sx = cx if side else cx - (-1 if on_left_of_image else 1) * sw * 0.6
            _capsule(lab, sh_y + 0.01 * ph, sx, by - 0.04 * ph, bx, max(0.009 * ph, 0.5), BAG)
            _ellipse(lab, by, bx, 0.055 * ph, 0.055 * ph, BAG, power=4.0)

    # occluder (drawn last; records the fraction of person pixels it hides)
    person_pixels = int(np.count_nonzero(lab))
    occluder = None
    occ_rgb, occ_nir, occ_temp = (0.0, 0.0, 0.0), 0.0, 0.0
    if u[1] < config.occlusion_rate:
        occluder = OCCLUDER_KINDS[int(u[2] * len(OCCLUDER_KINDS)) % len(OCCLUDER_KINDS)]
        frac = 0.15 + 0.4 * u[3]
        ox = cx + (u[4] - 0.5) * 2 * sw
        if occluder == "box":
            y0 = foot_y - frac * ph
            width = w * (0.5 + 0.5 * u[7])
            _rect(lab, y0, h + 1, ox - width / 2, ox + width / 2, OCCLUDER)
            hue = u[9]
            occ_rgb = tuple(float(c) for c in _hsv_to_rgb(hue, 0.5, 0.35 + 0.4 * u[10]))
            occ_nir, occ_temp = 0.2 + 0.6 * u[8], 0.0
        elif occluder == "pole":
            pw = ph * (0.06 + 0.12 * frac)
            _rect(lab, -1, h + 1, ox - pw / 2, ox + pw / 2, OCCLUDER)
            occ_rgb, occ_nir, occ_temp = (0.45, 0.45, 0.47), 0.35 + 0.2 * u[8], -1.0
        else:
            _ellipse(lab, foot_y + 0.1 * ph, ox, (frac + 0.1) * ph, w * (0.35 + 0.3 * u[7]), OCCLUDER)
            occ_rgb, occ_nir, occ_temp = (0.18, 0.38 + 0.1 * u[9], 0.12), 0.8 + 0.1 * u[8], -1.5
    hidden = int(np.count_nonzero(lab == OCCLUDER)) if occluder else 0
    outside = int(np.count_nonzero(lab)) - person_pixels if occluder else 0  # occluder pixels on background
    occlusion = (hidden - outside) / person_pixels if person_pixels else 0.0

    # column shading: a lit cylinder, the light direction jittered
    ys, xs = _grid(h, w)
    rel = (xs[0] - cx) / max(sw * 1.6, 1.0)
    light = (u[10] - 0.5) * config.illumination_jitter
    shade = np.clip(1.0 - 0.3 * rel * rel + light * rel, 0.6, 1.15).astype(np.float32)
    factors = {
        "camera": camera.camid,
        "location": camera.location,
        "viewpoint": viewpoint,
        "occlusion": round(float(max(occlusion, 0.0)), 4),
        "occluder": occluder,
        "visible_accessories": visible,
        "scale": round(ph / h, 4),
        "pose": {"shift_x": round((cx - w / 2) / w, 4), "lean": round(lean, 4), "arm_swing": round(swing, 4),
                 "stride": round(stride / ph, 4)},
    }
    return {"labels": lab, "shade": shade, "u": u, "g": g, "factors": factors,
            "occ": (occ_rgb, occ_nir, occ_temp), "cx": cx}


def _hsv_to_rgb(hh: float, s: float, v: float) -> np.ndarray:
    """Vectorised-free HSV -> RGB for one colour, hue in [0, 1)."""
    i = int(hh * 6.0) % 6
    f = hh * 6.0 - math.floor(hh * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32)


# ----------------------------------------------------------------------------------------------------- sensors
def _to_uint8(img: np.ndarray) -> np.ndarray:
    out = np.clip(img * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)  # grey stored as 3 equal channels, like real NIR/TIR files
    return out


def _smooth(img: np.ndarray, size: int, mix: float) -> np.ndarray:
    """Optical blur: blend with a box-filtered copy (`size` x `size`, per channel)."""
    if size <= 1 or mix <= 0:
        return img
    filt = ndimage.uniform_filter(img, size=(size, size) + (1,) * (img.ndim - 2), mode="nearest")
    return filt if mix >= 1 else img + mix * (filt - img)


def _sensor(spectrum: str, lay: dict[str, Any], identity: Identity, camera: Camera, config: SyntheticConfig,
            rng: np.random.Generator) -> np.ndarray:
    """Turn the part map into one modality's image (H, W, 3) uint8."""
    h, w = config.height, config.width
    pad_y, pad_x = max(int(0.06 * h), 1), max(int(0.06 * w), 1)
    bg_rgb, bg_nir, bg_tir = _background(camera.location, camera.kind, h + 2 * pad_y, w + 2 * pad_x)
    u, g = lay["u"], lay["g"]
    oy, ox = int(u[5] * 2 * pad_y), int(u[6] * 2 * pad_x)
    lab = lay["labels"]
    person = lab > 0
    t_rgb, t_nir, t_ins, t_eps = _identity_tables(identity)
    occ_rgb, occ_nir, occ_temp = lay["occ"]
    ij = config.illumination_jitter
    brightness = camera.brightness * float(np.exp(0.25 * ij * np.clip(g[6], -2.5, 2.5)))
    blur = max(int(round(w / 48)), 1) * 2 + 1  # 3 px at 64 wide, 7 px at 256
    if spectrum == "rgb":
        table = t_rgb.copy()
        table[OCCLUDER] = occ_rgb
        vals = table[lab] * lay["shade"][None, :, None]
        img = np.where(person[..., None], vals, bg_rgb[oy:oy + h, ox:ox + w])
        tint = np.exp(0.15 * ij * np.array([g[7], 0.0, -g[7]], np.float32))
        img = img * (np.asarray(camera.illumination, np.float32) * tint * brightness)
        img = _smooth(img, 3, 0.5)
        sigma = config.noise * camera.noise_gain
        if sigma > 0:
            img = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
        return _to_uint8(img)
    if spectrum == "nir":
        table = t_nir.copy()
        table[OCCLUDER] = occ_nir
        vals = table[lab] * lay["shade"][None, :]
        img = np.where(person, vals, bg_nir[oy:oy + h, ox:ox + w])
        img = img * _falloff(h, w, camera.nir_falloff) * (brightness * camera.nir_gain)
        img = _smooth(img, 3, 0.6)
        sigma = 1.5 * config.noise * camera.noise_gain
        if sigma > 0:
            img = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
        return _to_uint8(img)
    if spectrum == "tir":
        amb = camera.ambient
        skin = identity.skin_temp
        surface = amb + (skin - amb) * (1.0 - t_ins)  # insulation pulls a part from skin to ambient temperature
        temps = t_eps * surface + (1.0 - t_eps) * amb  # low emissivity reflects the (cold) surroundings
        temps = temps.astype(np.float32)
        temps[OCCLUDER] = amb + occ_temp
        img = np.where(person, temps[lab] + 0.6 * (lay["shade"][None, :] - 1.0), amb + bg_tir[oy:oy + h, ox:ox + w])
        lo_t = amb - 4.0 + 1.5 * ij * float(np.clip(g[6], -2, 2))  # automatic gain control, jittered
        hi_t = 37.0 + 1.5 * ij * float(np.clip(g[7], -2, 2))
        img = 0.12 + 0.72 * (img - lo_t) / (hi_t - lo_t)  # low contrast: never pure black or white
        img = _smooth(img, blur, 1.0)
        sigma = 0.8 * config.noise * camera.noise_gain
        if sigma > 0:
            img = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
        return _to_uint8(img)
    raise ValueError(f"spectrum must be one of {SPECTRA}, got {spectrum!r}")


# ----------------------------------------------------------------------------------------------------- public
def _config_or_default(config: SyntheticConfig | None) -> SyntheticConfig:
    return SyntheticConfig() if config is None else config


def render_spectra(identity: Identity, spectra: tuple[str, ...], *, camera: Camera, viewpoint: str | None,
                   rng: np.random.Generator, config: SyntheticConfig | None = None,
                   ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Render one pose (one layout, one occluder) in several spectra ("rgb", "nir", "tir"), pixel-aligned.

    Returns:
        spectrum -> image (H, W, 3) uint8, and the factors dict (without modality keys).
    """
    config = _config_or_default(config)
    for s in spectra:
        if s not in SPECTRA:
            raise ValueError(f"spectrum must be one of {SPECTRA}, got {s!r}")
    lay = _layout(identity, camera, viewpoint, rng, config)
    images = {s: _sensor(s, lay, identity, camera, config, rng) for s in spectra}
    return images, lay["factors"]


def render_parts(identity: Identity, *, camera: Camera, viewpoint: str | None, rng: np.random.Generator,
                 config: SyntheticConfig | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The part label map of a request: labels (H, W) uint8 indexing `PART_NAMES` (0 = background).

    The same random state gives the same pose as `render`/`render_triplet`, so this is the ground-truth
    segmentation of the rendered images (useful for attention and disentanglement scoring).
    """
    lay = _layout(identity, camera, viewpoint, rng, _config_or_default(config))
    return lay["labels"], lay["factors"]


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
