"""Synthetic vehicles, rendered: (vehicle, camera, scene, state, random state) -> aligned RGB / NIR / TIR images.

The vehicle half of the generator's second stage (world -> render -> export); it imports the vehicle world
(`workbench.data.synthetic_vehicle_world`) and nothing else of the generator. Three steps:

1. **Geometry** (cached per vehicle). The body is a few extruded side profiles (lower body, cabin; a cab and a
   cargo box for trucks) whose faces carry their details as planar polygons, parallelograms and ellipses: windows
   and pillars, lights, grille, bumpers, the plate-like tag with its glyph code, stripes, decals, stickers, wheel
   arches, roof items. Wheels are discs (tyre, rim, spokes, brake disc).
2. **Layout.** A pinhole camera at the road camera's mount height, at the capture's azimuth (viewpoint), aimed at
   the vehicle, projects the geometry; back faces are culled and solids painted far to near (PIL's polygon filler)
   into a *part label map* `(H, W) uint8` (`VEHICLE_PARTS`). The vehicle's box is fitted into the image with
   margins, like a detector crop resized to the dataset's fixed size (so a front view is stretched, a bus side
   squeezed, within limits). Occluders come last.
3. **Sensors**, from per-part tables (vectorised NumPy, channel-planar): visible colour x face shading x sky reflection x daylight or street light,
   plus lamp emission and glare at night; near-infrared reflectance (most paints alike, glass, tyres and carbon-black
   trim dark, the retro-reflective tag bright) under sunlight or the camera's active illuminator; thermal apparent
   temperature `eps * T_surface + (1 - eps) * T_reflected` with surface heat from the engine bay, radiator,
   exhaust, tyres and brakes growing as `dT_max * (1 - exp(-t / tau))` with driving time t (`HEAT`), solar heating
   of dark paint by day and the cold sky reflected by glass and roofs; rendered at half resolution (thermal sensors
   are coarser) and upsampled. NIR and TIR are returned as 3-channel images with equal channels.

Simplifications (see the data card): flat faces without curvature, no shadows cast on the vehicle, sensor noise
drawn as a random crop of a fixed Gaussian field (speed), INFERRED material constants.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from workbench.data.synthetic_vehicle_world import (
    VEHICLE_VIEWPOINTS,
    VIEWPOINT_YAW,
    RoadCamera,
    RoadScene,
    Vehicle,
    VehicleConfig,
    VehicleState,
)

__all__ = ["EMISSIVITY", "HEAT", "SOLAR_RISE", "VEHICLE_PARTS", "part_temperatures", "render_vehicle",
           "render_vehicle_parts"]

VEHICLE_PARTS = (
    "background", "shadow", "paint_side", "paint_end", "paint_top", "engine_side", "engine_end", "engine_top",
    "glass_side", "glass_screen", "trim", "grille", "headlight", "taillight", "plate", "plate_glyph", "tyre", "rim",
    "brake", "exhaust", "stripe", "decal", "sticker", "roof_item", "arch", "cargo_side", "cargo_end", "cargo_top",
    "occluder",
)  # fmt: skip
(BG, SHADOW, PAINT_SIDE, PAINT_END, PAINT_TOP, ENGINE_SIDE, ENGINE_END, ENGINE_TOP, GLASS_SIDE, GLASS_SCREEN, TRIM,
 GRILLE, HEADLIGHT, TAILLIGHT, PLATE, GLYPH, TYRE, RIM, BRAKE, EXHAUST, STRIPE, DECAL, STICKER, ROOF_ITEM, ARCH,
 CARGO_SIDE, CARGO_END, CARGO_TOP, OCCLUDER) = range(len(VEHICLE_PARTS))
N_VPARTS = len(VEHICLE_PARTS)
OCCLUDER_KINDS = ("pole", "sign", "bush", "car")

# Driving heat (INFERRED magnitudes): part -> (surface rise in deg C after long driving, time constant in minutes).
# A part's surface is `T_ambient + dT_max * (1 - exp(-minutes / tau))` (+ solar heating); brakes scale with the
# capture's braking, electric vehicles keep a quarter of the drivetrain heat and have no exhaust.
HEAT = {
    "engine_top": (22.0, 10.0), "engine_end": (14.0, 8.0), "engine_side": (8.0, 12.0), "grille": (30.0, 6.0),
    "exhaust": (110.0, 2.0), "tyre": (14.0, 15.0), "brake": (50.0, 4.0),
}
_LAMP_HEAT = {"headlight": 6.0, "taillight": 3.0}  # lit lamps
SOLAR_RISE = 14.0  # deg C over ambient of a fully absorbing roof in full sun (sides get 40 % of it)
EMISSIVITY = {  # long-wave infrared emissivity per part (INFERRED typical values)
    "paint": 0.9, "glass": 0.85, "trim": 0.92, "grille": 0.9, "lamp": 0.85, "plate": 0.85, "tyre": 0.95,
    "brake": 0.6, "exhaust": 0.8, "mark": 0.9, "arch": 0.95, "shadow": 0.95,
}
_RIM_EMISSIVITY = {"silver": 0.85, "black": 0.9, "chrome": 0.2, "steel": 0.8}
_RIM_RGB = {"silver": (0.72, 0.73, 0.75), "black": (0.07, 0.07, 0.08), "chrome": (0.86, 0.87, 0.9),
            "steel": (0.55, 0.56, 0.58)}
_PLATE = {"blue": ((0.1, 0.22, 0.7), (0.93, 0.93, 0.93)), "yellow": ((0.9, 0.74, 0.1), (0.05, 0.05, 0.05)),
          "green": ((0.45, 0.8, 0.5), (0.05, 0.05, 0.05))}  # (plate, glyphs)
PAINTED = (PAINT_SIDE, PAINT_END, PAINT_TOP, ENGINE_SIDE, ENGINE_END, ENGINE_TOP)
_TOP_PARTS = (PAINT_TOP, ENGINE_TOP, CARGO_TOP)
_SIDE_PARTS = (PAINT_SIDE, ENGINE_SIDE, CARGO_SIDE)
_END_PARTS = (PAINT_END, ENGINE_END, CARGO_END)


# ===================================================================================================== geometry
@dataclass
class _Geometry:
    """Everything of a vehicle that does not depend on the capture: 3D points and what to draw with them."""

    points: list[tuple[float, float, float]] = field(default_factory=list)
    prims: list[tuple] = field(default_factory=list)  # (kind, label, first point, n points, face, extra)
    normals: list[tuple[float, float, float]] = field(default_factory=list)
    anchors: list[tuple[float, float, float]] = field(default_factory=list)  # a point on each face's plane
    # groups of solids drawn in a fixed order (lower body, cabin, roof item); groups (a truck's cab and its cargo
    # box) are painted far to near by their centre's depth
    solids: list[tuple[tuple[float, float, float], list[int]]] = field(default_factory=list)  # (centre, prims)
    wheels: list[tuple[int, int, float]] = field(default_factory=list)  # (first of 4 points, side, spokes)
    lamps: list[tuple[str, int, int, float]] = field(default_factory=list)  # (kind, face, centre point, radius m)
    silhouette: list[int] = field(default_factory=list)  # point indices whose projection bounds the vehicle
    shadow: list[int] = field(default_factory=list)  # the ground footprint's corners
    engine_face: str = "front"
    P: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # points (n, 3), filled when complete
    N: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # face normals (F, 3)
    A: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # face anchors (F, 3)
    solid_centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (S, 3), for depth order

    def point(self, p: tuple[float, float, float], silhouette: bool = False) -> int:
        self.points.append(tuple(float(v) for v in p))  # type: ignore[arg-type]
        if silhouette:
            self.silhouette.append(len(self.points) - 1)
        return len(self.points) - 1

    def face(self, normal: tuple[float, float, float], anchor: tuple[float, float, float]) -> int:
        n = np.asarray(normal, float)
        self.normals.append(tuple(n / np.linalg.norm(n)))
        self.anchors.append(anchor)
        return len(self.normals) - 1

    def poly(self, label: int, pts: list, face: int, out: list[int], silhouette: bool = False) -> None:
        first = len(self.points)
        for p in pts:
            self.point(p, silhouette)
        self.prims.append(("poly", label, first, len(pts), face, None))
        out.append(len(self.prims) - 1)

    def para(self, label: int, origin, a, b, face: int, out: list[int], tex: np.ndarray | None = None) -> int:
        """The parallelogram origin + [0, 1] a + [0, 1] b; with `tex` (labels, row 0 at the end of b, 0 = keep),
        the texture's runs of equal labels are added as parallelograms of their own, drawn over it."""
        o, a, b = (np.asarray(x, float) for x in (origin, a, b))
        first = len(self.points)
        for q in (o, o + a, o + a + b, o + b):
            self.point(q)
        self.prims.append(("poly", label, first, 4, face, None))
        out.append(len(self.prims) - 1)
        if tex is not None:
            th, tw = tex.shape
            for value, r0, r1, c0, c1 in _rectangles(tex, skip=(0, label)):
                t0, t1 = 1 - r1 / th, 1 - r0 / th
                self.para(value, o + a * (c0 / tw) + b * t0, a * ((c1 - c0) / tw), b * (t1 - t0), face, out)
        return first

    def ellipse(self, label: int, centre, a, b, face: int, out: list[int], extra: Any = None) -> int:
        c = np.asarray(centre, float)
        first = self.point(c)
        self.point(c + np.asarray(a, float))
        self.point(c + np.asarray(b, float))
        self.prims.append(("ellipse", label, first, 3, face, extra))
        out.append(len(self.prims) - 1)
        return first


def _rectangles(tex: np.ndarray, skip: tuple[int, ...]) -> list[tuple[int, int, int, int, int]]:
    """Cover a label texture by rectangles (value, row0, row1, col0, col1), half-open: runs of equal labels in each
    row, merged down the rows while they repeat exactly. Labels in `skip` are left out."""
    out: list[tuple[int, int, int, int, int]] = []
    open_runs: dict[tuple[int, int, int], int] = {}  # (value, c0, c1) -> first row
    th, tw = tex.shape
    for r in range(th + 1):
        runs = set()
        c = 0
        while r < th and c < tw:
            value, start = int(tex[r, c]), c
            while c < tw and tex[r, c] == value:
                c += 1
            if value not in skip:
                runs.add((value, start, c))
        for run in [k for k in open_runs if k not in runs]:
            out.append((run[0], open_runs.pop(run), r, run[1], run[2]))
        for run in runs:
            open_runs.setdefault(run, r)
    return out


def _prism(g: _Geometry, profile: list[tuple[float, float]], y0: float, y1: float, side_label: int,
           cap_labels: list[int], out: list[int]) -> tuple[int, int, list[int]]:
    """An extruded side profile (counter-clockwise (x, z) points) between y0 and y1: two side faces and one cap face
    per profile edge, labelled `cap_labels[i]` (edge i from point i to i + 1). Returns (left face, right face, cap
    faces); the drawing order within a convex prism does not matter (its visible faces never overlap)."""
    x0, z0 = profile[0]
    left, right = g.face((0, 1, 0), (x0, y1, z0)), g.face((0, -1, 0), (x0, y0, z0))
    g.poly(side_label, [(x, y1, z) for x, z in profile], left, out, silhouette=True)
    g.poly(side_label, [(x, y0, z) for x, z in profile], right, out, silhouette=True)
    caps = []
    n = len(profile)
    for i in range(n):
        (xa, za), (xb, zb) = profile[i], profile[(i + 1) % n]
        face = g.face((zb - za, 0, -(xb - xa)), (xa, y0, za))  # outward normal of a counter-clockwise edge
        caps.append(face)
        if cap_labels[i] >= 0:
            g.poly(cap_labels[i], [(xa, y0, za), (xb, y0, zb), (xb, y1, zb), (xa, y1, za)], face, out)
    return left, right, caps


def _on_cap(bottom: tuple[float, float], top: tuple[float, float], y0: float, y1: float, s0: float, s1: float,
            t0: float, t1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin, a, b) of the rectangle [s0, s1] x [t0, t1] on a cap face: s across the width (y0 -> y1), t from the
    `bottom` profile point to the `top` one."""
    (xb, zb), (xt, zt) = bottom, top
    o = np.array([xb + t0 * (xt - xb), y0 + s0 * (y1 - y0), zb + t0 * (zt - zb)])
    a = np.array([0.0, (s1 - s0) * (y1 - y0), 0.0])
    b = np.array([(t1 - t0) * (xt - xb), 0.0, (t1 - t0) * (zt - zb)])
    return o, a, b


def _on_side(y: float, x0: float, x1: float, z0: float, z1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin, a, b) of the rectangle [x0, x1] x [z0, z1] on the side face at `y`."""
    return np.array([x0, y, z0]), np.array([x1 - x0, 0.0, 0.0]), np.array([0.0, 0.0, z1 - z0])


def _glyph_texture(code: tuple[int, ...]) -> np.ndarray:
    """The tag (10 x 44 cells): a border, then 7 abstract glyphs of 4 bits each (a bar pattern, not characters)."""
    tex = np.full((10, 44), PLATE, np.uint8)
    for i, c in enumerate(code):
        x = 3 + i * 6
        tex[2:8, x] = GLYPH  # every glyph has a stem
        if c & 1:
            tex[2, x:x + 4] = GLYPH
        if c & 2:
            tex[4:6, x + 3] = GLYPH
        if c & 4:
            tex[7, x:x + 4] = GLYPH
        if c & 8:
            tex[2:5, x + 2] = GLYPH
    return tex


_GRILLE_TEX = np.array([[GRILLE], [TRIM]] * 3, np.uint8).repeat(4, axis=1)  # horizontal slats


def _side_limits(profile: list[tuple[float, float]], z: float) -> tuple[float, float]:
    """x range of a convex profile at height z (for marks that must stay on the side panel)."""
    xs = []
    n = len(profile)
    for i in range(n):
        (xa, za), (xb, zb) = profile[i], profile[(i + 1) % n]
        if (za - z) * (zb - z) <= 0 and za != zb:
            xs.append(xa + (z - za) * (xb - xa) / (zb - za))
    return (min(xs), max(xs)) if xs else (0.0, 0.0)


@functools.lru_cache(maxsize=4096)
def _geometry(v: Vehicle) -> _Geometry:
    """Faces, details and wheels of a vehicle, in model coordinates (metres)."""
    g = _Geometry(engine_face=v.engine)
    L, W = v.length, v.width
    front, rear = L / 2, -L / 2
    c, fh, belt = v.clearance, v.front_height, v.belt
    tail = min(v.tail_height, belt)  # keeps the lower profile convex
    y0, y1 = -W / 2, W / 2
    truck, bus = v.body_type == "truck", v.body_type == "bus"
    black_bumpers = v.bumpers == "black"
    bumper_end = TRIM if black_bumpers else PAINT_END
    engine_front = v.engine == "front"
    lower: list[int] = []

    # ---- lower body (for a truck: the cab's lower part only)
    body_rear = v.cab_rear if truck else rear
    chamfer = min(0.18, 0.3 * (fh - c))
    profile = [(body_rear + 0.06, c), (front - 0.1, c), (front, c + chamfer), (front, fh), (v.hood, belt),
               (v.deck, belt), (body_rear, tail), (body_rear, c + 0.6 * chamfer)]
    if truck:
        profile[4] = (v.hood, belt)
        profile[5] = (body_rear, belt)
        profile[6] = (body_rear, belt - 0.001)
    front_end = ENGINE_END if engine_front else PAINT_END
    hood_top = ENGINE_TOP if engine_front else PAINT_TOP
    rear_end = PAINT_END if engine_front else ENGINE_END
    caps = [-1, bumper_end, front_end, hood_top, PAINT_TOP, PAINT_TOP, rear_end, bumper_end]
    left, right, cap = _prism(g, profile, y0, y1, PAINT_SIDE, caps, lower)
    front_face, rear_face = cap[2], cap[6]
    sides = ((left, y1 + 0.002, 1.0), (right, y0 - 0.002, -1.0))

    # engine bay on the sides (front, or the rear third of a bus)
    for face, y, _ in sides:
        if engine_front:
            g.poly(ENGINE_SIDE, [(v.hood, y, c), (front - 0.1, y, c), (front, y, c + chamfer), (front, y, fh),
                                 (v.hood, y, belt)], face, lower)
        else:
            xe = rear + 0.22 * L
            g.poly(ENGINE_SIDE, [(rear + 0.06, y, c), (xe, y, c), (xe, y, tail), (rear, y, tail),
                                 (rear, y, c + 0.6 * chamfer)], face, lower)
    # side marks: rocker trim, stripe, door seams, decal, wheel arches
    for face, y, _ in sides:
        if black_bumpers:
            g.para(TRIM, *_on_side(y, body_rear + 0.12, front - 0.14, c, c + 0.07), face, lower)
        if v.stripe is not None and not truck:
            z_lo = c + v.stripe[0] * (belt - c)
            z_hi = c + v.stripe[1] * (belt - c)
            xa, xb = _side_limits(profile, z_hi)
            xc, xd = _side_limits(profile, z_lo)
            g.para(STRIPE, *_on_side(y, max(xa, xc) + 0.04, min(xb, xd) - 0.04, z_lo, z_hi), face, lower)
        if not truck and not bus:
            xs = 0.5 * (v.hood + v.deck) + 0.1  # the seam between the doors, under the B-pillar
            g.para(TRIM, *_on_side(y, xs, xs + 0.018, c + 0.1, belt - 0.02), face, lower)
        if v.decal is not None and not truck:
            shape, _, _, pos = v.decal
            xd = rear + 0.15 * L + pos * 0.55 * L
            zd = c + 0.55 * (belt - c)
            size = 0.16 * (belt - c) if not bus else 0.25
            _mark(g, DECAL, shape, np.array([xd, y, zd]), np.array([size, 0, 0]), np.array([0, 0, size]), face, lower)
        for ax in v.axles:
            r = v.wheel_radius * 1.12
            arc = [(ax + r * math.cos(a), y, v.wheel_radius + r * math.sin(a)) for a in np.linspace(0, math.pi, 7)]
            g.poly(ARCH, [(ax + r, y, c)] + arc + [(ax - r, y, c)], face, lower)

    # front face: bumper, grille, lights, tag
    wb = (y0, y1)
    bottom, top = (front, c + chamfer), (front, fh)
    if black_bumpers:
        g.para(TRIM, *_on_cap(bottom, top, *wb, 0.0, 1.0, 0.0, 0.36), front_face, lower)
    if engine_front and not v.electric:
        g.para(GRILLE, *_on_cap(bottom, top, *wb, 0.3, 0.7, 0.36, 0.78), front_face, lower, tex=_GRILLE_TEX)
    elif engine_front:  # electric: a closed nose with a thin intake
        g.para(GRILLE, *_on_cap(bottom, top, *wb, 0.36, 0.64, 0.2, 0.3), front_face, lower)
    else:  # bus front: a dark lower panel
        g.para(TRIM, *_on_cap(bottom, top, *wb, 0.05, 0.95, 0.0, 0.25), front_face, lower)
    shape = v.headlight
    lamp_s = {"round": (0.05, 0.22, 0.5, 0.9), "rect": (0.04, 0.25, 0.58, 0.9), "slim": (0.03, 0.3, 0.76, 0.93)}
    s0, s1, t0, t1 = lamp_s[shape]
    for lo, hi in ((s0, s1), (1 - s1, 1 - s0)):
        o, a, b = _on_cap(bottom, top, *wb, lo, hi, t0, t1)
        if shape == "round":
            centre = g.ellipse(HEADLIGHT, o + (a + b) / 2, a / 2, b / 2, front_face, lower)
        else:
            g.para(HEADLIGHT, o, a, b, front_face, lower)
            centre = g.point(o + (a + b) / 2)
        g.lamps.append(("head", front_face, centre, 0.5 * (hi - lo) * W))
    plate_w = min(0.44 / W, 0.3)
    o, a, b = _on_cap(bottom, top, *wb, 0.5 - plate_w / 2, 0.5 + plate_w / 2, 0.06, 0.06 + 0.14 / max(fh - c - chamfer, 0.3))
    g.para(PLATE, o, a, b, front_face, lower, tex=_glyph_texture(v.plate_code))

    # rear face: bumper, lights, tag, sticker, exhaust (a truck's rear is its cargo box, below)
    if not truck:
        bottom, top = (rear, c + 0.6 * chamfer), (rear, tail)
        _rear_details(g, v, rear_face, bottom, top, wb, lower, bumper=black_bumpers)
    if bus:  # the rear engine's grille
        g.para(GRILLE, *_on_cap(bottom, top, *wb, 0.25, 0.75, 0.4, 0.75), rear_face, lower, tex=_GRILLE_TEX)

    # ---- cabin
    cabin: list[int] = []
    cab_h = v.cab_height
    cw = v.cabin_width * W
    cy0, cy1 = -cw / 2, cw / 2
    cprofile = [(v.deck, belt), (v.hood, belt), (v.roof_front, cab_h), (v.roof_rear, cab_h)]
    cleft, cright, ccap = _prism(g, cprofile, cy0, cy1, PAINT_SIDE, [-1, PAINT_END, PAINT_TOP, PAINT_END], cabin)
    screen_face, back_face = ccap[1], ccap[3]
    # windscreen and rear window (inset pillars), windscreen sticker
    frame = 0.07 / cw
    o, a, b = _on_cap((v.hood, belt), (v.roof_front, cab_h), cy0, cy1, frame, 1 - frame, 0.04, 0.93)
    g.para(GLASS_SCREEN, o, a, b, screen_face, cabin)
    if v.screen_sticker is not None:
        s = frame + v.screen_sticker * (1 - 2 * frame - 0.12)
        o, a, b = _on_cap((v.hood, belt), (v.roof_front, cab_h), cy0, cy1, s, s + 0.1, 0.8, 0.9)
        g.para(STICKER, o, a, b, screen_face, cabin)
    if not truck:
        o, a, b = _on_cap((v.deck, belt), (v.roof_rear, cab_h), cy0, cy1, frame, 1 - frame, 0.08, 0.92)
        g.para(GLASS_SCREEN, o, a, b, back_face, cabin)
    # side windows between the pillars
    zb, zt = belt + 0.04, cab_h - 0.06 * (cab_h - belt) - 0.03

    def pillar_x(z: float, x_base: float, x_top: float) -> float:
        return x_base + (x_top - x_base) * (z - belt) / max(cab_h - belt, 1e-6)

    for face, y in ((cleft, cy1 + 0.002), (cright, cy0 - 0.002)):
        fa = (pillar_x(zb, v.hood, v.roof_front) - 0.08, pillar_x(zt, v.hood, v.roof_front) - 0.08)
        ra = (pillar_x(zb, v.deck, v.roof_rear) + 0.12, pillar_x(zt, v.deck, v.roof_rear) + 0.12)
        if truck:  # the cab's door window only
            ra = (max(v.cab_rear + 0.45, fa[0] - 1.0), max(v.cab_rear + 0.45, fa[1] - 1.0))
        g.poly(GLASS_SIDE, [(ra[0], y, zb), (fa[0], y, zb), (fa[1], y, zt), (ra[1], y, zt)], face, cabin)
        span = fa[0] - ra[0]
        n_pillars = 0 if truck else max(1, int(span / 1.3)) if bus or v.body_type == "van" else 1
        for k in range(1, n_pillars + 1):
            xp = ra[0] + span * k / (n_pillars + 1) + (0.1 if n_pillars == 1 else 0.0)
            g.para(TRIM, *_on_side(y, xp - 0.05, xp + 0.05, zb - 0.01, zt + 0.01), face, cabin)
    # door mirrors at the base of the A-pillars: a forward- and a sideways-facing plate each
    mx = v.hood - (0.12 if not (truck or bus) else 0.05)
    mz0, mz1 = belt + 0.04, belt + (0.2 if not (truck or bus) else 0.45)
    reach = 0.14 if not (truck or bus) else 0.22
    for sgn in (1.0, -1.0):
        y_in, y_out = sgn * cw / 2, sgn * (W / 2 + reach)
        fwd = g.face((1, 0, 0), (mx, y_in, mz0))
        g.poly(bumper_end, [(mx, y_in, mz0), (mx, y_out, mz0), (mx, y_out, mz1), (mx, y_in, mz1)], fwd, cabin)
        out_face = g.face((0, sgn, 0), (mx, y_out, mz0))
        g.poly(TRIM, [(mx - 0.1, y_out, mz0), (mx, y_out, mz0), (mx, y_out, mz1), (mx - 0.1, y_out, mz1)], out_face,
               cabin)
    g.solids.append(((0.5 * (front + body_rear), 0.0, (c + cab_h) / 2), lower + cabin))  # the cabin sits on it

    # ---- truck: chassis and cargo box
    if truck:
        chassis: list[int] = []
        x_end = v.cab_rear - 0.12
        _prism(g, [(rear + 0.3, c), (v.cab_rear, c), (v.cab_rear, v.cargo_floor),
                                 (rear + 0.3, v.cargo_floor)], -0.4 * W, 0.4 * W, TRIM, [-1, TRIM, TRIM, TRIM], chassis)
        cargo: list[int] = []
        box = [(rear, v.cargo_floor), (x_end, v.cargo_floor), (x_end, v.height), (rear, v.height)]
        bl, br, bcap = _prism(g, box, y0, y1, CARGO_SIDE, [-1, CARGO_END, CARGO_TOP, CARGO_END], cargo)
        bottom, top = (rear, v.cargo_floor), (rear, v.height)
        g.para(TRIM, *_on_cap(bottom, top, *wb, 0.497, 0.503, 0.0, 1.0), bcap[3], cargo)  # the doors' seam
        _rear_details(g, v, bcap[3], bottom, top, wb, cargo, bumper=True, scale=(v.height - v.cargo_floor))
        for face, y in ((bl, y1 + 0.002), (br, y0 - 0.002)):
            if v.decal is not None:
                shape = v.decal[0]
                xd = rear + 0.2 * L + v.decal[3] * 0.25 * L
                zd = v.cargo_floor + 0.55 * (v.height - v.cargo_floor)
                size = 0.3 * (v.height - v.cargo_floor)
                _mark(g, DECAL, shape, np.array([xd, y, zd]), np.array([size, 0, 0]), np.array([0, 0, size]), face,
                      cargo)
            if v.stripe is not None:
                z_lo = v.cargo_floor + v.stripe[0] * (v.height - v.cargo_floor)
                z_hi = v.cargo_floor + v.stripe[1] * (v.height - v.cargo_floor)
                g.para(STRIPE, *_on_side(y, rear + 0.05, x_end - 0.05, z_lo, z_hi), face, cargo)
        g.solids.append(((0.5 * (rear + x_end), 0.0, (c + v.height) / 2), chassis + cargo))

    # ---- roof item
    if v.roof_item != "none":
        item: list[int] = []
        top_z = v.height if truck else cab_h
        rx0, rx1 = (v.roof_rear, v.roof_front) if not truck else (rear, x_end)
        mid = 0.5 * (rx0 + rx1)
        span = rx1 - rx0
        dims = {"rack": (0.8 * span, 0.9 * cw, 0.07), "box": (min(0.6 * span, 1.8), 0.7 * cw, 0.38),
                "lightbar": (0.3, 0.6 * cw, 0.28), "ladder": (0.9 * span, 0.35 * cw, 0.1)}[v.roof_item]
        lx, wy, hz = dims
        _prism(g, [(mid - lx / 2, top_z), (mid + lx / 2, top_z), (mid + lx / 2, top_z + hz), (mid - lx / 2, top_z + hz)],
               -wy / 2, wy / 2, ROOF_ITEM, [-1, ROOF_ITEM, ROOF_ITEM, ROOF_ITEM], item)
        g.solids[-1][1].extend(item)  # on the roof of the last group: the cabin, or a truck's cargo box

    # ---- wheels: the outer face's centre, the inner face's centre, and the ends of two radii (projected with the
    # rest, so perspective applies), the side (+1 left) and the number of spokes
    tyre_w = 0.3 if truck or bus else 0.22
    r = v.wheel_radius
    for ax in v.axles:
        for sgn in (1, -1):
            yo = sgn * W / 2
            first = g.point((ax, yo, r))
            g.point((ax, yo - sgn * tyre_w, r))
            g.point((ax + r, yo, r))
            g.point((ax, yo, 2 * r))
            g.wheels.append((first, sgn, float(v.rim_spokes)))
            for dx in (-r, r):
                g.point((ax + dx, yo, 0.0), silhouette=True)
    # ground shadow: the footprint, a little larger
    g.shadow = [g.point((x, y, 0.0)) for x, y in ((rear - 0.15, y0 - 0.12), (front + 0.15, y0 - 0.12),
                                                  (front + 0.15, y1 + 0.12), (rear - 0.15, y1 + 0.12))]
    g.P = np.asarray(g.points, float)
    g.N = np.asarray(g.normals, float)
    g.A = np.asarray(g.anchors, float)
    g.solid_centres = np.asarray([s[0] for s in g.solids], float)
    return g


def _rear_details(g: _Geometry, v: Vehicle, face: int, bottom, top, wb, out: list[int], bumper: bool,
                  scale: float | None = None) -> None:
    """Tail lights, tag, bumper and its sticker, exhaust on a rear face (t from `bottom` to `top`)."""
    height = scale or (top[1] - bottom[1])
    truck = v.body_type == "truck"
    if bumper and not truck:
        g.para(TRIM, *_on_cap(bottom, top, *wb, 0.0, 1.0, 0.0, 0.32), face, out)
    if truck:
        g.para(TRIM, *_on_cap(bottom, top, *wb, 0.0, 1.0, 0.0, 0.07), face, out)  # under-run bar
        lights = [(0.02, 0.16, 0.08, 0.16), (0.84, 0.98, 0.08, 0.16)]
    else:
        lights = {"bar": [(0.04, 0.96, 0.74, 0.86)], "corner": [(0.02, 0.22, 0.58, 0.9), (0.78, 0.98, 0.58, 0.9)],
                  "vertical": [(0.02, 0.1, 0.35, 0.95), (0.9, 0.98, 0.35, 0.95)]}[v.taillight]
    for s0, s1, t0, t1 in lights:
        o, a, b = _on_cap(bottom, top, *wb, s0, s1, t0, t1)
        g.para(TAILLIGHT, o, a, b, face, out)
        g.lamps.append(("tail", face, g.point(o + (a + b) / 2), 0.3 * (s1 - s0) * v.width + 0.1))
    pw = min(0.44 / v.width, 0.3)
    th = 0.14 / max(height, 0.3)
    t_plate = 0.1 if truck else 0.38
    g.para(PLATE, *_on_cap(bottom, top, *wb, 0.5 - pw / 2, 0.5 + pw / 2, t_plate, t_plate + th), face, out,
           tex=_glyph_texture(v.plate_code))
    if v.bumper_sticker is not None:
        g.para(STICKER, *_on_cap(bottom, top, *wb, 0.68, 0.84, t_plate, t_plate + th * 0.8), face, out)
    if not v.electric:
        s = 0.8 if v.exhaust_side == "left" else 0.2
        o, a, b = _on_cap(bottom, top, *wb, s - 0.035, s + 0.035, 0.0, 0.05 / max(height, 0.3))
        g.ellipse(EXHAUST, o + (a + b) / 2, a * 0.6, b * 0.8, face, out)


def _mark(g: _Geometry, label: int, shape: str, centre: np.ndarray, a: np.ndarray, b: np.ndarray, face: int,
          out: list[int]) -> None:
    """A decal of a given shape centred on a face, a and b its half-axes."""
    if shape == "circle":
        g.ellipse(label, centre, a, b, face, out)
    elif shape == "square":
        g.para(label, centre - a - b, 2 * a, 2 * b, face, out)
    elif shape == "diamond":
        g.para(label, centre - b, a + b, b - a, face, out)
    else:  # a bar (lettering)
        g.para(label, centre - 2.2 * a - 0.35 * b, 4.4 * a, 0.7 * b, face, out)


# ===================================================================================================== rasterisers
@functools.lru_cache(maxsize=16)
def _centres(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32) + 0.5


@functools.lru_cache(maxsize=8)
def _circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.cos(t)[:, None], np.sin(t)[:, None]


class _Canvas:
    """The part label map being painted (PIL's polygon filler: C speed). Coordinates are PIL's: pixel centres at
    integers (x right, y down); later shapes paint over earlier ones."""

    def __init__(self, h: int, w: int) -> None:
        self.image = Image.new("L", (w, h))
        self.draw = ImageDraw.Draw(self.image)

    def poly(self, xy: np.ndarray, value: int) -> None:
        """A convex or simple polygon (n, 2)."""
        self.draw.polygon(xy.ravel().tolist(), fill=value)

    def ellipse(self, c: np.ndarray, a: np.ndarray, b: np.ndarray, value: int) -> None:
        """The ellipse c + cos(u) a + sin(u) b (any orientation), as a polygon fine enough for its size."""
        size = math.hypot(float(a[0]), float(a[1])) + math.hypot(float(b[0]), float(b[1]))
        n = 8 if size < 4 else 16 if size < 16 else 28
        cos, sin = _circle(n)
        self.poly(c + cos * a + sin * b, value)

    def wheel_face(self, c: np.ndarray, a: np.ndarray, b: np.ndarray, spokes: int) -> None:
        """A wheel seen from outside: tyre, brake disc behind the rim, spokes (or a plain steel rim), hub."""
        self.ellipse(c, a, b, TYRE)
        if spokes:
            self.ellipse(c, a * 0.62, b * 0.62, BRAKE)
            through = spokes % 2 == 0  # an even number: bars through the centre, two spokes each
            for k in range(spokes // 2 if through else spokes):
                t = 2.0 * math.pi * k / spokes
                d = a * math.cos(t) + b * math.sin(t)
                e = (-a * math.sin(t) + b * math.cos(t)) * (0.55 / spokes + 0.03)
                base = c - 0.6 * d if through else c
                self.poly(np.stack([base - e, base + e, c + 0.6 * d + e, c + 0.6 * d - e]), RIM)
            self.ellipse(c, a * 0.2, b * 0.2, RIM)
        else:
            self.ellipse(c, a * 0.62, b * 0.62, RIM)
            self.ellipse(c, a * 0.22, b * 0.22, BRAKE)

    def labels(self) -> np.ndarray:
        return np.array(self.image)


# ===================================================================================================== layout
_N_UNIFORM, _N_NORMAL = 24, 8  # fixed per-image draws (keeps random streams aligned across vehicles)


def _choose_viewpoint(camera: RoadCamera, config: VehicleConfig, u: float) -> str:
    bias = np.asarray(camera.viewpoint_bias, np.float64)
    p = (1.0 - config.viewpoint_spread) * bias / bias.sum() + config.viewpoint_spread / len(VEHICLE_VIEWPOINTS)
    i = int(np.searchsorted(np.cumsum(p), u * p.sum(), side="right"))
    return VEHICLE_VIEWPOINTS[min(i, len(VEHICLE_VIEWPOINTS) - 1)]


def _projection(yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """(3, 2) matrix onto the image plane (x right, y up) and the unit vector towards the camera (3,)."""
    t, p = math.radians(yaw), math.radians(pitch)
    right = (-math.sin(t), math.cos(t), 0.0)
    up = (-math.cos(t) * math.sin(p), -math.sin(t) * math.sin(p), math.cos(p))
    towards = np.array([math.cos(t) * math.cos(p), math.sin(t) * math.cos(p), math.sin(p)])
    return np.array([right, up]).T, towards


def _layout(v: Vehicle, camera: RoadCamera, viewpoint: str | None, rng: np.random.Generator,
            config: VehicleConfig) -> dict[str, Any]:
    """Project and paint the part label map. Returns labels (H, W) uint8, lamp positions, the per-image draws and
    the geometric factors."""
    u, gn = rng.random(_N_UNIFORM), rng.standard_normal(_N_NORMAL)
    if viewpoint is None:
        viewpoint = _choose_viewpoint(camera, config, float(u[0]))
    elif viewpoint not in VEHICLE_VIEWPOINTS:
        raise ValueError(f"viewpoint must be one of {VEHICLE_VIEWPOINTS} or None (camera bias), got {viewpoint!r}")
    h, w = config.height, config.width
    pj = config.pose_jitter
    yaw = VIEWPOINT_YAW[viewpoint] + 12.0 * pj * float(np.clip(gn[0], -1.8, 1.8))
    # a pinhole camera at its mount height, at the ground distance where its axis meets the road (farther for long
    # vehicles, which are detected farther away), aimed at the vehicle's centre: tall vehicles are seen flatter
    ground = max(camera.mount_height / math.tan(math.radians(max(camera.pitch, 3.0))), 2.0 * v.length)
    rise = max(camera.mount_height - v.height / 2, 0.3)
    pitch = math.degrees(math.atan2(rise, ground)) + 4.0 * pj * float(np.clip(gn[1], -2, 2))
    pitch = float(np.clip(pitch, 2.0, 60.0))
    dist = math.hypot(ground, rise)
    g = _geometry(v)
    proj, towards = _projection(yaw, pitch)
    screen = (g.P @ proj) * (dist / (dist - g.P @ towards))[:, None]  # (n, 2) metres on the image plane, y up
    sil = screen[g.silhouette]
    x_lo, y_lo = sil.min(0)
    x_hi, y_hi = sil.max(0)
    # crop margins (a detector's box, loosened at random), then the box resized to the image: anisotropic within
    # [0.55, 2.2] so front views are widened and long sides squeezed, as crops resized to a fixed size are
    ml, mr = 0.015 + 0.05 * pj * u[1], 0.015 + 0.05 * pj * u[2]
    mt, mb = 0.03 + 0.07 * pj * u[3], 0.04 + 0.07 * pj * u[4]
    sx = w * (1 - ml - mr) / max(float(x_hi - x_lo), 1e-6)
    sy = h * (1 - mt - mb) / max(float(y_hi - y_lo), 1e-6)
    ratio = sx / sy
    if ratio > 2.2:
        sx = 2.2 * sy
    elif ratio < 0.55:
        sy = sx / 0.55
    used_w, used_h = sx * float(x_hi - x_lo), sy * float(y_hi - y_lo)
    ox = ml * w + (w * (1 - ml - mr) - used_w) * 0.5
    oy = mt * h + (h * (1 - mt - mb) - used_h) * 0.5
    # pixel coordinates, PIL's convention (pixel centres at integers, so a box [0, w] x [0, h] fills the image)
    pix = (screen - np.array([x_lo, y_hi])) * np.array([sx, -sy]) + np.array([ox - 0.5, oy - 0.5])
    visible = ((dist * towards - g.A) * g.N).sum(1) > 1e-3  # the camera is in front of the face's plane
    canvas = _Canvas(h, w)
    canvas.poly(pix[g.shadow], SHADOW)

    def draw(idx: int) -> None:
        kind, label, first, n, face, _ = g.prims[idx]
        if face >= 0 and not visible[face]:
            return
        if kind == "poly":
            canvas.poly(pix[first:first + n], label)
        else:  # an ellipse, locally affine: centre and the ends of its two half-axes
            canvas.ellipse(pix[first], pix[first + 1] - pix[first], pix[first + 2] - pix[first], label)

    def wheel(first: int, sgn: int, spokes: float, near: bool, behind: bool = True) -> None:
        """Behind the body: the tyre's tread and (for the far side) its outer face, what shows below the body. In
        front of it: the near side's outer face, flush with the body's side, with the rim, its spokes and the brake
        disc between them."""
        c_out, c_in = pix[first], pix[first + 1]
        a, b = pix[first + 2] - c_out, pix[first + 3] - c_out
        if not behind:
            canvas.wheel_face(c_out, a, b, int(spokes))
            return
        d = c_in - c_out
        length = math.hypot(float(d[0]), float(d[1]))
        if length > 0.5:  # the tread: the band between the tyre's two faces
            nx, ny = -float(d[1]) / length, float(d[0]) / length
            ang = math.atan2(nx * float(b[0]) + ny * float(b[1]), nx * float(a[0]) + ny * float(a[1]))
            e = a * math.cos(ang) + b * math.sin(ang)
            canvas.poly(np.stack([c_out - e, c_out + e, c_in + e, c_in - e]), TYRE)
        if not near:  # a near wheel's face is drawn over the body later
            canvas.ellipse(c_out, a, b, TYRE)

    side_towards = float(towards[1])
    near_wheels = [wh for wh in g.wheels if wh[1] * side_towards > 0.05]
    for wh in g.wheels:
        wheel(*wh, near=wh in near_wheels)
    depth = g.solid_centres @ towards
    for i in np.argsort(depth, kind="stable"):
        for idx in g.solids[i][1]:
            draw(idx)
    for wh in near_wheels:
        wheel(*wh, near=True, behind=False)
    lab = canvas.labels()

    lamps = [(kind, pix[ci], rad * sx) for kind, face, ci, rad in g.lamps if visible[face]]
    occluder, occ, mask = _occluder(h, w, u, config)
    occlusion = 0.0
    if mask is not None:  # the fraction of the vehicle's pixels it hides
        body = lab > SHADOW
        occlusion = float(np.count_nonzero(mask & body)) / max(int(np.count_nonzero(body)), 1)
        np.putmask(lab, mask, OCCLUDER)
    factors = {
        "viewpoint": viewpoint, "yaw": round(yaw, 2), "pitch": round(pitch, 2),
        "occluder": occluder, "occlusion": round(occlusion, 4),
        "box": [round(float(v_), 4) for v_ in (ox / w, oy / h, used_w / w, used_h / h)],
    }
    return {"labels": lab, "u": u, "g": gn, "lamps": lamps, "occ": occ, "factors": factors,
            "box_rows": (oy, oy + used_h)}


def _occluder(h: int, w: int, u: np.ndarray, config: VehicleConfig) -> tuple[str | None, tuple, np.ndarray | None]:
    """With probability `occlusion_rate`, an occluder: its kind, (rgb, nir, temperature offset) and mask (H, W)."""
    if u[5] >= config.occlusion_rate:
        return None, ((0.0, 0.0, 0.0), 0.0, 0.0), None
    canvas = _Canvas(h, w)
    kind = OCCLUDER_KINDS[int(u[6] * len(OCCLUDER_KINDS)) % len(OCCLUDER_KINDS)]
    x = w * (0.1 + 0.8 * u[7])
    if kind in ("pole", "sign"):
        pw = max(w * (0.012 + 0.016 * u[8]), 1.5)
        canvas.poly(np.array([[x - pw, -1], [x + pw, -1], [x + pw, h + 1], [x - pw, h + 1]]), 1)
        if kind == "sign":
            sw, sh = w * (0.07 + 0.05 * u[9]), h * (0.14 + 0.1 * u[10])
            y0 = h * 0.05 * u[11]
            canvas.poly(np.array([[x - sw, y0], [x + sw, y0], [x + sw, y0 + 2 * sh], [x - sw, y0 + 2 * sh]]), 1)
        colours = ((0.1, 0.3, 0.7), (0.8, 0.1, 0.1), (0.9, 0.9, 0.9))
        rgb = (0.5, 0.5, 0.52) if kind == "pole" else colours[int(u[12] * 3)]
        occ = (rgb, 0.35 + 0.3 * float(u[13]), -1.0)
    elif kind == "bush":
        canvas.ellipse(np.array([x, h * 1.02]), np.array([w * (0.12 + 0.12 * u[8]), 0]),
                       np.array([0, h * (0.25 + 0.25 * u[9])]), 1)
        occ = ((0.16, 0.34 + 0.1 * float(u[10]), 0.1), 0.8, -2.0)
    else:  # another vehicle's corner entering from one edge: warm from driving
        ex = -w * 0.05 if u[8] < 0.5 else w * 1.05
        canvas.ellipse(np.array([ex, h * (0.75 + 0.1 * u[9])]), np.array([w * (0.12 + 0.15 * u[10]), 0]),
                       np.array([0, h * (0.35 + 0.2 * u[11])]), 1)
        hue = float(u[12])
        occ = ((0.2 + 0.6 * hue, 0.2 + 0.6 * (1 - hue), 0.3 + 0.3 * float(u[13])), 0.6, 3.0)
    return kind, occ, canvas.labels() > 0


# ===================================================================================================== scene
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    coarse = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    return ndimage.zoom(coarse, (h / coarse.shape[0], w / coarse.shape[1]), order=1)[:h, :w]


@functools.lru_cache(maxsize=128)
def _road(location: str, h: int, w: int) -> dict[str, Any]:
    """A road scene seen by a camera: reflectance rgb (3, h, w), NIR (h, w), thermal offset from ambient at night
    and its solar heating weight (both at half resolution); deterministic from the location name."""
    rng = np.random.default_rng(zlib.crc32(f"road|{location}".encode()))
    ys = _centres(h)[:, None]
    xs = _centres(w)[None, :]
    tone = rng.uniform(0.26, 0.42)
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = np.array([tone, tone, tone * 1.02], np.float32)
    nir = np.full((h, w), rng.uniform(0.14, 0.22), np.float32)
    tir = np.full((h, w), 1.5, np.float32)  # asphalt keeps some of the day's heat
    solar = np.ones((h, w), np.float32)
    horizon = int(h * rng.uniform(-0.1, 0.3))
    if horizon > 0:  # the roadside above the kerb: a wall, hedge or fence
        kind = int(rng.integers(3))
        top = slice(0, horizon)
        col = ([0.6, 0.57, 0.52], [0.22, 0.34, 0.18], [0.45, 0.45, 0.47])[kind]
        rgb[top] = np.clip(np.asarray(col) * rng.uniform(0.8, 1.15) + rng.uniform(-0.03, 0.03, 3), 0.03, 0.95)
        nir[top] = (0.45, 0.82, 0.4)[kind]
        tir[top] = (0.5, -2.0, -0.5)[kind]
        solar[top] = (0.5, 0.3, 0.6)[kind]
        if kind == 0:  # windows in the wall: dark in NIR, cold sky reflections in TIR
            for x0 in range(int(rng.integers(0, w // 6)), w, max(w // 5, 8)):
                wy = slice(int(horizon * 0.2), int(horizon * 0.75))
                wx = slice(x0, min(x0 + max(w // 12, 2), w))
                rgb[wy, wx] = (0.25, 0.3, 0.38)
                nir[wy, wx] = 0.1
                tir[wy, wx] = -4.0
        kerb = slice(horizon, min(horizon + max(h // 40, 1), h))
        rgb[kerb], nir[kerb], tir[kerb] = 0.65, 0.5, 0.5
    # lane markings: slanted dashes (perspective) and sometimes a stop line
    slant = rng.uniform(-0.6, 0.6)
    for _ in range(int(rng.integers(1, 3))):
        x0 = rng.uniform(0.05, 0.95) * w
        line = np.abs(xs - x0 - slant * (ys - h / 2)) < max(w / 120, 0.8)
        dash = (np.mod(ys + rng.uniform(0, h), h * 0.5) < h * 0.3) & (ys > max(horizon, 0))
        m = line & dash
        paint = np.array([0.86, 0.86, 0.8] if rng.random() < 0.7 else [0.85, 0.7, 0.15], np.float32)
        rgb[m], nir[m], tir[m] = paint, 0.7, 1.0
    if rng.random() < 0.3:
        y0 = int(h * rng.uniform(0.8, 0.95))
        stop = slice(y0, min(y0 + max(h // 30, 1), h))
        rgb[stop], nir[stop], tir[stop] = 0.85, 0.7, 1.0
    texture = 0.82 + 0.36 * _smooth_noise(rng, h, w, max(h // 12, 2))
    grain = 0.93 + 0.14 * rng.random((h, w)).astype(np.float32)
    rgb *= (texture * grain)[..., None]
    nir *= texture * grain
    tir += 1.5 * (texture - 1.0)
    mean_road = rgb[max(horizon, 0):].reshape(-1, 3).mean(0) if horizon < h else rgb.reshape(-1, 3).mean(0)
    out = {"rgb": np.ascontiguousarray(rgb.transpose(2, 0, 1)), "nir": nir, "tir": tir[::2, ::2].copy(),
           "solar": solar[::2, ::2].copy(), "road_rgb": mean_road.astype(np.float32), "road_nir": float(nir.mean())}
    for a in out.values():
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    return out  # rgb planar (3, h, w): the sensors work channel by channel


_LAMP_COLOUR = {"sodium": (1.0, 0.68, 0.32), "led": (0.92, 0.95, 1.0), "none": (0.8, 0.8, 0.85)}


@functools.lru_cache(maxsize=64)
def _night_light(h: int, w: int, lamp: str, light_x: float) -> np.ndarray:
    """Street lighting (3, h, w): a pool of light from a lamp above `light_x`, on a dim ambient floor of 1."""
    ys, xs = _centres(h)[:, None], _centres(w)[None, :]
    pool = np.exp(-(((xs - light_x * w) / (0.45 * w)) ** 2) - ((ys + 0.2 * h) / (1.1 * h)) ** 2)
    strength = 0.0 if lamp == "none" else 5.0
    colour = np.asarray(_LAMP_COLOUR[lamp], np.float32)[:, None, None]
    out = (1.0 + strength * pool[None] * colour).astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=32)
def _falloff(h: int, w: int, strength: float) -> np.ndarray:
    """Active NIR illuminator fall-off (h, w): 1 at the centre, 1 / (1 + k r^2), r in image heights."""
    ys, xs = _centres(h)[:, None], _centres(w)[None, :]
    r2 = ((ys - h / 2) / h) ** 2 + ((xs - w / 2) / h) ** 2
    out = (1.0 / (1.0 + strength * 3.0 * r2)).astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=8)
def _noise_field(h: int, w: int, channels: int) -> np.ndarray:
    """A fixed Gaussian field ([c,] 2h, 2w) whose random crops serve as sensor noise (much cheaper than drawing it)."""
    shape = ((channels,) if channels > 1 else ()) + (2 * h, 2 * w)
    out = np.random.default_rng(0xA015E).standard_normal(shape, dtype=np.float32)
    out.setflags(write=False)
    return out


def _noise(h: int, w: int, channels: int, u1: float, u2: float) -> np.ndarray:
    field_ = _noise_field(h, w, channels)
    oy, ox = int(u1 * h), int(u2 * w)
    return field_[..., oy:oy + h, ox:ox + w]


@functools.lru_cache(maxsize=16)
def _glare_kernel(radius: int) -> np.ndarray:
    r = np.arange(-2 * radius, 2 * radius + 1, dtype=np.float32)
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * radius * radius))
    k.setflags(write=False)
    return k


def _add_glare(img: np.ndarray, x: float, y: float, radius: float, colour: np.ndarray) -> None:
    """Add a Gaussian bloom of `radius` pixels centred at (x, y), in place; img (H, W) or planar (C, H, W)."""
    rad = max(int(round(radius)), 1)
    k = _glare_kernel(rad)
    h, w = img.shape[-2:]
    x0, y0 = int(round(x)) - 2 * rad, int(round(y)) - 2 * rad
    ky0, kx0 = max(-y0, 0), max(-x0, 0)
    y1, x1 = min(y0 + k.shape[0], h), min(x0 + k.shape[1], w)
    if y1 <= max(y0, 0) or x1 <= max(x0, 0):
        return
    sub = k[ky0:ky0 + y1 - max(y0, 0), kx0:kx0 + x1 - max(x0, 0)]
    if img.ndim == 3:
        img[:, max(y0, 0):y1, max(x0, 0):x1] += sub[None] * np.asarray(colour, np.float32)[:, None, None]
    else:
        img[max(y0, 0):y1, max(x0, 0):x1] += sub * float(colour)


# ===================================================================================================== materials
@functools.lru_cache(maxsize=4096)
def _tables(v: Vehicle) -> dict[str, np.ndarray]:
    """Per-part visible colour (P, 3), NIR reflectance (P,), emissivity (P,), solar absorptance (P,) and gloss (P,)."""
    rgb = np.zeros((N_VPARTS, 3), np.float32)
    nir = np.zeros(N_VPARTS, np.float32)
    eps = np.full(N_VPARTS, 0.9, np.float32)
    paint, pn = v.paint_rgb, v.paint_nir
    glass = np.array([0.1, 0.12, 0.15]) * (1.0 - 0.6 * v.glass_tint)
    plate, glyph = _PLATE[v.plate]
    rows: dict[int, tuple[Any, float, float]] = {
        SHADOW: ((0.0, 0.0, 0.0), 0.0, EMISSIVITY["shadow"]),  # set per scene (the road's colour, darkened)
        GLASS_SIDE: (glass, 0.06, EMISSIVITY["glass"]), GLASS_SCREEN: (glass * 1.15, 0.06, EMISSIVITY["glass"]),
        TRIM: ((0.06, 0.06, 0.065), 0.1, EMISSIVITY["trim"]), GRILLE: ((0.04, 0.04, 0.045), 0.12, EMISSIVITY["grille"]),
        HEADLIGHT: ((0.78, 0.8, 0.83), 0.65, EMISSIVITY["lamp"]), TAILLIGHT: ((0.62, 0.05, 0.06), 0.55, EMISSIVITY["lamp"]),
        PLATE: (plate, 0.95, EMISSIVITY["plate"]), GLYPH: (glyph, 0.08, EMISSIVITY["plate"]),
        TYRE: ((0.05, 0.05, 0.05), 0.05, EMISSIVITY["tyre"]), RIM: (_RIM_RGB[v.rim], 0.6, _RIM_EMISSIVITY[v.rim]),
        BRAKE: ((0.28, 0.27, 0.26), 0.3, EMISSIVITY["brake"]), EXHAUST: ((0.2, 0.19, 0.18), 0.25, EMISSIVITY["exhaust"]),
        STRIPE: (v.stripe[2], v.stripe[3], EMISSIVITY["mark"]) if v.stripe else ((0, 0, 0), 0.0, 0.9),
        DECAL: (v.decal[1], v.decal[2], EMISSIVITY["mark"]) if v.decal else ((0, 0, 0), 0.0, 0.9),
        # windscreen and bumper stickers share one colour: the bumper sticker's, or a toll-tag yellow
        STICKER: (*(v.bumper_sticker or ((0.9, 0.86, 0.25), 0.5)), EMISSIVITY["mark"]),
        ROOF_ITEM: (v.roof_rgb, 0.3, 0.9), ARCH: ((0.03, 0.03, 0.03), 0.05, EMISSIVITY["arch"]),
        CARGO_SIDE: (v.cargo_rgb, v.cargo_nir, EMISSIVITY["paint"]), CARGO_END: (v.cargo_rgb, v.cargo_nir, 0.9),
        CARGO_TOP: (v.cargo_rgb, v.cargo_nir, EMISSIVITY["paint"]),
    }
    for part in PAINTED:
        rows[part] = (paint, pn, EMISSIVITY["paint"])
    for part, (c, n, e) in rows.items():
        rgb[part], nir[part], eps[part] = c, n, e
    absorb = np.clip(1.0 - (0.5 * rgb.mean(1) + 0.5 * nir), 0.0, 1.0)  # solar: about half visible, half NIR
    gloss = np.zeros(N_VPARTS, np.float32)  # strength of the sky's reflection (visible light)
    gloss[list(PAINTED)] = v.gloss
    gloss[[CARGO_SIDE, CARGO_END, CARGO_TOP]] = 0.1
    gloss[[GLASS_SIDE, GLASS_SCREEN]] = 0.3
    gloss[list(_TOP_PARTS)] *= 1.3
    out = {"rgb": rgb, "nir": nir, "eps": eps, "absorb": absorb.astype(np.float32), "gloss": gloss}
    for a in out.values():
        a.setflags(write=False)
    return out


def part_temperatures(v: Vehicle, scene: RoadScene, state: VehicleState) -> np.ndarray:
    """Apparent temperature of every part (P,) in deg C: `eps * T_surface + (1 - eps) * T_reflected`.

    T_surface = ambient + solar heating (`SOLAR_RISE * sun * absorptance`, 40 % of it on vertical faces) + driving
    heat (`HEAT`). Horizontal faces and windscreens reflect the sky (`ambient - sky_drop`), side glass half sky,
    half ground, everything else the ground at ambient temperature."""
    amb, t = scene.ambient, state.driving_minutes
    tab = _tables(v)

    def rise(name: str) -> float:
        d, tau = HEAT[name]
        return d * (1.0 - math.exp(-t / tau))

    drive = 0.25 if v.electric else 1.0
    brake = state.braking * rise("brake")
    heat = {ENGINE_TOP: drive * rise("engine_top"), ENGINE_END: drive * rise("engine_end"),
            ENGINE_SIDE: drive * rise("engine_side"), GRILLE: drive * rise("grille"),
            EXHAUST: 0.0 if v.electric else rise("exhaust"), TYRE: rise("tyre"), BRAKE: brake,
            RIM: 0.35 * brake}  # the rim: conducted from the disc
    if state.headlights:
        heat[HEADLIGHT], heat[TAILLIGHT] = _LAMP_HEAT["headlight"], _LAMP_HEAT["taillight"]
    surface = amb + (SOLAR_RISE * scene.sun) * tab["absorb"] * _SOLAR_FACING
    surface[list(heat)] += list(heat.values())
    return tab["eps"] * surface + (1.0 - tab["eps"]) * (amb - scene.sky_drop * _SKY_SEEN)


_SOLAR_FACING = np.full(N_VPARTS, 0.4)  # share of full sun a part's faces get: 1 for roofs and bonnets
_SOLAR_FACING[list(_TOP_PARTS) + [ROOF_ITEM]] = 1.0
_SKY_SEEN = np.zeros(N_VPARTS)  # share of the (cold) sky in what a part reflects; the rest is ground at ambient
_SKY_SEEN[list(_TOP_PARTS) + [GLASS_SCREEN, ROOF_ITEM]] = 1.0
_SKY_SEEN[GLASS_SIDE] = 0.5


# ===================================================================================================== sensors
def _to_uint8(img: np.ndarray, scale: float = 255.0) -> np.ndarray:
    """Floats in [0, 255 / scale] -> uint8 (rounded), in place on `img`."""
    if scale != 1.0:
        np.multiply(img, scale, out=img)
    np.add(img, 0.5, out=img)
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def _blur(img: np.ndarray) -> np.ndarray:
    """Optical blur: separable [1, 2, 1] over the last two axes (edges repeated), NOT normalised: the result is 16
    times the blurred image (the caller's uint8 conversion divides). img (..., H, W) float32."""
    v = np.empty_like(img)
    np.add(img[..., :-2, :], img[..., 2:, :], out=v[..., 1:-1, :])
    v[..., 1:-1, :] += img[..., 1:-1, :] * 2
    v[..., 0, :] = img[..., 0, :] * 3 + img[..., 1, :]
    v[..., -1, :] = img[..., -1, :] * 3 + img[..., -2, :]
    out = np.empty_like(img)
    np.add(v[..., :-2], v[..., 2:], out=out[..., 1:-1])
    out[..., 1:-1] += v[..., 1:-1] * 2
    out[..., 0] = v[..., 0] * 3 + v[..., 1]
    out[..., -1] = v[..., -1] * 3 + v[..., -2]
    return out


def _interleave(planes: np.ndarray) -> np.ndarray:
    """(3, H, W) or (H, W) uint8 -> (H, W, 3) uint8 (grey repeated)."""
    h, w = planes.shape[-2:]
    out = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        out[:, :, c] = planes[c] if planes.ndim == 3 else planes
    return out


_ZONES = 8  # levels of the sky-reflection band, folded into the colour table (one lookup instead of a pass)


def _sensor_rgb(lay: dict[str, Any], v: Vehicle, camera: RoadCamera, scene: RoadScene, state: VehicleState,
                config: VehicleConfig, bg: dict[str, Any]) -> np.ndarray:
    """Visible light, channel-planar: per-part colour x face shading, plus the sky reflected by paint and glass in a
    band strongest near the shoulder line (by day and dusk), the road behind, daylight or street light x exposure x
    white balance, lamp emission and glare at night, noise, blur. Works in 0..255 units."""
    h, w = config.height, config.width
    lab, u, gn = lay["labels"], lay["u"], lay["g"]
    ij = config.illumination_jitter
    night = scene.time_of_day != "day"
    table = _tables(v)["rgb"].copy()
    side = 0.82 + 0.1 * ij * float(np.clip(gn[2], -2, 2)) + (0.05 if night else 0.0)
    end = 0.72 + 0.1 * ij * float(np.clip(gn[3], -2, 2)) + (0.1 if night else 0.0)
    table[list(_SIDE_PARTS)] *= side
    table[list(_END_PARTS)] *= end
    table[list(_TOP_PARTS)] *= 1.05 + 0.12 * scene.sun
    table[SHADOW] = bg["road_rgb"] * (0.45 + 0.25 * (1.0 - scene.sun))
    table[OCCLUDER] = lay["occ"][0]
    if scene.time_of_day != "night":  # (zone, part) -> colour + gloss x band level x sky
        r0, r1 = lay["box_rows"]
        band = np.exp(-(((_centres(h) - (r0 + 0.3 * (r1 - r0))) / (0.22 * (r1 - r0) + 1.0)) ** 2))
        zone = np.rint(band * (_ZONES - 1)).astype(np.uint8)  # (H,)
        level = 0.35 + 0.65 * np.linspace(0.0, 1.0, _ZONES, dtype=np.float32)
        sky = np.array([0.85, 0.9, 1.0], np.float32) * (1.0 if not night else 0.4)
        zoned = table[None] + _tables(v)["gloss"][None, :, None] * level[:, None, None] * sky
        img = np.take(np.ascontiguousarray(zoned.reshape(-1, 3).T), lab + (zone * N_VPARTS)[:, None], axis=1)
    else:
        img = np.take(np.ascontiguousarray(table.T), lab, axis=1)  # (3, H, W)
    np.copyto(img, bg["rgb"], where=lab == 0)
    tint = np.exp(0.12 * ij * np.array([gn[4], 0.0, -gn[4]], np.float32))
    exposure = 255.0 * camera.exposure * scene.light * float(np.exp(0.2 * ij * np.clip(gn[5], -2.5, 2.5)))
    gain = np.asarray(camera.white_balance, np.float32) * tint * np.float32(exposure)
    if scene.time_of_day == "day":
        img *= (gain * np.array([1.0, 0.99, 0.97], np.float32))[:, None, None]
    else:
        if scene.time_of_day == "dusk":
            gain = gain * np.array([1.0, 0.85, 0.7], np.float32)
        img *= _night_light(h, w, scene.street_light, round(scene.light_x * 20) / 20)
        img *= gain[:, None, None]
        if state.headlights:  # lamps emit; glare blooms around them
            img += np.take(_EMISSION, lab, axis=1)
            for kind, (x, y), rad in lay["lamps"]:
                colour = np.array([0.7, 0.66, 0.55] if kind == "head" else [0.45, 0.03, 0.02], np.float32) * 255
                _add_glare(img, float(x), float(y), max(rad * (1.3 if kind == "head" else 1.0), 1.0), colour)
    sigma = 255.0 * config.noise * camera.noise_gain * (2.0 if night else 1.0)
    if sigma > 0:
        img += _noise(h, w, 3, float(u[14]), float(u[15])) * np.float32(sigma)
    return _interleave(_to_uint8(_blur(img), scale=1.0 / 16.0))


_EMISSION = np.zeros((3, N_VPARTS), np.float32)  # lit lamps, 0..255 units
_EMISSION[:, HEADLIGHT] = (330.0, 320.0, 280.0)
_EMISSION[:, TAILLIGHT] = (230.0, 13.0, 8.0)


def _sensor_nir(lay: dict[str, Any], v: Vehicle, camera: RoadCamera, scene: RoadScene, state: VehicleState,
                config: VehicleConfig, bg: dict[str, Any]) -> np.ndarray:
    """Near infrared: per-part reflectance x face shading; sunlight by day, the camera's illuminator (fall-off
    from the centre) and NIR-emitting headlights at night; noise, blur; three equal channels."""
    h, w = config.height, config.width
    lab, u, gn = lay["labels"], lay["u"], lay["g"]
    ij = config.illumination_jitter
    table = _tables(v)["nir"].copy()
    table[list(_SIDE_PARTS)] *= 0.9
    table[list(_END_PARTS)] *= 0.85
    table[SHADOW] = bg["road_nir"] * 0.4
    table[OCCLUDER] = lay["occ"][1]
    img = np.take(table, lab)
    np.copyto(img, bg["nir"], where=lab == 0)
    gain = camera.nir_gain * float(np.exp(0.2 * ij * np.clip(gn[6], -2.5, 2.5)))
    if scene.time_of_day == "day":  # sunlight carries NIR: even light
        img *= np.float32(gain * (0.95 + 0.3 * scene.sun))
    else:  # the camera's own illuminator, brighter in the middle
        img *= _falloff(h, w, camera.nir_falloff)
        img *= np.float32(gain * (1.05 if scene.time_of_day == "night" else 1.0))
        if state.headlights:
            for kind, (x, y), rad in lay["lamps"]:
                if kind == "head":  # halogen and xenon lamps emit NIR too
                    _add_glare(img, float(x), float(y), max(rad * 1.5, 1.0), np.float32(0.5))
    sigma = 1.4 * config.noise * camera.noise_gain
    if sigma > 0:
        img += _noise(h, w, 1, float(u[16]), float(u[17])) * np.float32(sigma)
    return _interleave(_to_uint8(_blur(img), scale=255.0 / 16.0))


def _sensor_tir(lay: dict[str, Any], v: Vehicle, camera: RoadCamera, scene: RoadScene, state: VehicleState,
                config: VehicleConfig, bg: dict[str, Any]) -> np.ndarray:
    """Thermal at half resolution (labels sampled every other pixel): apparent temperatures, automatic gain over
    `camera.tir_span` deg C from `ambient - 0.25 span` (jittered) to grey 0.1..0.9, noise, upsampled bilinearly."""
    h, w = config.height, config.width
    lab, u, gn = lay["labels"][::2, ::2], lay["u"], lay["g"]
    ij = config.illumination_jitter
    temps = part_temperatures(v, scene, state).astype(np.float32)
    temps[SHADOW] = scene.ambient + 1.0
    temps[OCCLUDER] = scene.ambient + lay["occ"][2]
    img = np.take(temps, lab)
    background = bg["tir"] + np.float32(scene.ambient)
    if scene.sun > 0:
        background += np.float32(8.0 * scene.sun) * bg["solar"]
    np.copyto(img, background, where=lab == 0)
    lo = scene.ambient - 0.25 * camera.tir_span + 2.0 * ij * float(np.clip(gn[7], -2, 2))
    img -= np.float32(lo)
    img *= np.float32(0.8 / camera.tir_span)
    img += np.float32(0.1)
    sigma = 0.5 * config.noise * camera.noise_gain
    if sigma > 0:
        hh, ww = img.shape
        img += _noise(hh, ww, 1, float(u[18]), float(u[19])) * np.float32(sigma)
    small = Image.fromarray(_to_uint8(img), mode="L")
    return _interleave(np.asarray(small.resize((w, h), Image.BILINEAR)))


_SENSORS = {"rgb": _sensor_rgb, "nir": _sensor_nir, "tir": _sensor_tir}


# ===================================================================================================== public
def _check(spectra: tuple[str, ...]) -> None:
    for s in spectra:
        if s not in _SENSORS:
            raise ValueError(f"spectrum must be one of {tuple(_SENSORS)}, got {s!r}")


def render_vehicle(vehicle: Vehicle, *, camera: RoadCamera, scene: RoadScene, state: VehicleState,
                   viewpoint: str | None = None, rng: np.random.Generator, config: VehicleConfig | None = None,
                   spectra: tuple[str, ...] = ("rgb", "nir", "tir")) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Render one capture of `vehicle` (one pose, one occluder) in several spectra, pixel-aligned.

    Args:
        camera: the road camera (viewpoint bias, pitch, sensors); scene: light and temperatures (its `location`,
            when set, replaces the camera's background); state: driving time, braking, headlights.
        viewpoint: one of `VEHICLE_VIEWPOINTS`, or None to draw it from the camera's bias and `viewpoint_spread`.
        rng: the capture's random state (same state, same images).

    Returns:
        spectrum -> image (H, W, 3) uint8 (NIR and TIR with equal channels), and the capture's factors (camera,
        location, scene, time of day, ambient, sun, street light, driving minutes, braking, headlights, viewpoint,
        yaw, pitch, occluder, occlusion fraction, the vehicle's box in the image).
    """
    config = config or VehicleConfig()
    _check(spectra)
    lay = _layout(vehicle, camera, viewpoint, rng, config)
    location = scene.location or camera.location
    bg = _road(location, config.height, config.width)
    images = {s: _SENSORS[s](lay, vehicle, camera, scene, state, config, bg) for s in spectra}
    return images, _factors(lay, camera, scene, state, location)


def render_vehicle_parts(vehicle: Vehicle, *, camera: RoadCamera, scene: RoadScene, state: VehicleState,
                         viewpoint: str | None = None, rng: np.random.Generator,
                         config: VehicleConfig | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The part label map (H, W) uint8 indexing `VEHICLE_PARTS` of the capture the same arguments render: the
    ground-truth segmentation of `render_vehicle`'s images."""
    lay = _layout(vehicle, camera, viewpoint, rng, config or VehicleConfig())
    return lay["labels"], _factors(lay, camera, scene, state, scene.location or camera.location)


def _factors(lay: dict[str, Any], camera: RoadCamera, scene: RoadScene, state: VehicleState,
             location: str) -> dict[str, Any]:
    return {
        "camera": camera.camid, "location": location, "scene": scene.scene, "time_of_day": scene.time_of_day,
        "ambient": scene.ambient, "sun": scene.sun, "street_light": scene.street_light,
        "driving_minutes": state.driving_minutes, "parked": state.driving_minutes == 0.0,
        "braking": state.braking, "headlights": state.headlights, "mount_height": camera.mount_height,
        "exposure": camera.exposure, **lay["factors"],
    }
