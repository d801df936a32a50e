"""Synthetic vehicle world: vehicles, road cameras, scenes and driving state. Pure data, seeded; no pixels.

The vehicle half of the generator's first stage (world -> render -> export), the counterpart of
`workbench.data.synthetic_world` for RGBNT100 and MSVR310 (METHODS.md 5.5, 5.6):

* `VehicleConfig`: render size (128 x 256, H x W, as vehicles are fed to the ViTs, METHODS.md 1.3) and difficulty.
* `Vehicle` and `make_vehicles`: the identity. Body type (sedan, hatchback, SUV, van, box truck, bus) with its
  proportions, paint colour, finish and near-infrared reflectance, glass tint, light shapes, wheels, roof items and
  marks (a plate-like tag with an abstract glyph code, a side stripe, a door decal, stickers), and the drivetrain
  (combustion or electric, engine at the front or the rear). All of it is constant across cameras and modalities.
* The style, which changes from image to image: `RoadCamera` (mounting height and pitch, viewpoint bias, exposure,
  white balance, sensor gains), `RoadScene` (time of day, ambient and sky temperature, sun, street lighting, place)
  and `VehicleState` (how long the vehicle has been driving, braking, headlights) that drives its thermal image.

Proportions, paint shares and material values are plausible ranges, INFERRED (not measured); the data card
(`data_cards/synthetic.md`) lists them with what the physics simplifies. `workbench.data.synthetic_vehicle_render`
draws these objects; `workbench.data.synthetic` writes the layouts.
"""

from __future__ import annotations

import colorsys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "BODY_TYPES", "PAINTS", "VEHICLE_VIEWPOINTS", "VIEWPOINT_YAW", "RoadCamera", "RoadScene", "Vehicle",
    "VehicleConfig", "VehicleState", "draw_scene", "draw_state", "make_vehicles", "msvr310_cameras",
    "rgbnt100_cameras",
]  # fmt: skip

# Viewpoints: the side of the vehicle that faces the camera ("left" = the vehicle's left side, as for people), with
# the camera's azimuth around the vehicle in degrees (0: in front of it, 90: on its left, 180: behind it).
VEHICLE_VIEWPOINTS = ("front", "front-left", "left", "rear-left", "rear", "rear-right", "right", "front-right")
VIEWPOINT_YAW = {"front": 0.0, "front-left": 45.0, "left": 90.0, "rear-left": 135.0, "rear": 180.0,
                 "rear-right": -135.0, "right": -90.0, "front-right": -45.0}
BODY_TYPES = ("sedan", "hatchback", "suv", "van", "truck", "bus")
_BODY_SHARE = (0.3, 0.2, 0.25, 0.1, 0.08, 0.07)  # INFERRED road mix; trucks and buses rarer than cars
TIMES_OF_DAY = ("day", "dusk", "night")


# ===================================================================================================== config
@dataclass(frozen=True)
class VehicleConfig:
    """Render size and difficulty knobs of the vehicle world (continuous, so difficulty can be calibrated)."""

    height: int = 128  # render size (H x W); vehicles are wider than tall (METHODS.md 1.3: 128 x 256)
    width: int = 256
    occlusion_rate: float = 0.2  # probability of an occluder (pole, sign, bush, a passing car) over the vehicle
    noise: float = 0.03  # sensor noise std in [0, 1] intensity units (x camera gain; x2 at night in RGB)
    viewpoint_spread: float = 0.4  # 0: always the camera's viewpoint bias, 1: uniform over the 8 viewpoints
    pose_jitter: float = 0.6  # scale of yaw, pitch, crop margin and position variation
    illumination_jitter: float = 0.3  # per-image exposure, tint, face shading and thermal gain variation
    model_sharing: float = 0.3  # fraction of vehicles copied from a pool of popular models (same body and paint)
    model_pool: int = 8  # number of popular models (fewer = more look-alikes, told apart only by their marks)
    paint_jitter: float = 0.03  # colour jitter of a copied model's paint (0 = identical paint)
    mark_rate: float = 0.45  # probability of each optional mark (side stripe, door decal, screen / bumper sticker)
    roof_rate: float = 0.2  # probability of a roof item (rack, box, light bar, ladder)
    night_rate: float = 0.3  # share of night captures (MSVR310: of scenes)
    dusk_rate: float = 0.15  # share of dusk captures
    parked_rate: float = 0.15  # share of captures of a cold, parked vehicle (engine off for hours)

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 64:
            raise ValueError(f"height x width must be at least 32 x 64, got {self.height} x {self.width}")
        for name in ("occlusion_rate", "viewpoint_spread", "model_sharing", "mark_rate", "roof_rate",
                     "night_rate", "dusk_rate", "parked_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.night_rate + self.dusk_rate > 1.0:
            raise ValueError(f"night_rate + dusk_rate must be <= 1, got {self.night_rate} + {self.dusk_rate}")
        for name in ("noise", "pose_jitter", "illumination_jitter", "paint_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.model_pool < 1:
            raise ValueError(f"model_pool must be >= 1, got {self.model_pool}")

    @classmethod
    def easy(cls, **overrides: Any) -> VehicleConfig:
        """No occluders, little noise, cameras keep their viewpoint, no look-alike models."""
        base = dict(occlusion_rate=0.0, noise=0.01, viewpoint_spread=0.15, pose_jitter=0.3, illumination_jitter=0.1,
                    model_sharing=0.0)
        return cls(**{**base, **overrides})

    @classmethod
    def default(cls, **overrides: Any) -> VehicleConfig:
        """Plausibly hard (calibration pending: the lead tunes it with training runs)."""
        return cls(**overrides)

    @classmethod
    def medium(cls, **overrides: Any) -> VehicleConfig:
        """Halfway between `default` and `hard` on every knob."""
        d, h = cls.default(), cls.hard()
        base: dict[str, Any] = {f: (getattr(d, f) + getattr(h, f)) / 2 for f in (
            "occlusion_rate", "noise", "viewpoint_spread", "pose_jitter", "illumination_jitter", "model_sharing",
            "paint_jitter")}
        base["model_pool"] = (d.model_pool + h.model_pool) // 2
        return cls(**{**base, **overrides})

    @classmethod
    def hard(cls, **overrides: Any) -> VehicleConfig:
        """Frequent occluders, strong noise, any viewpoint anywhere, most vehicles popular look-alike models."""
        base = dict(occlusion_rate=0.4, noise=0.06, viewpoint_spread=0.8, pose_jitter=1.0, illumination_jitter=0.5,
                    model_sharing=0.6, model_pool=5, paint_jitter=0.015)
        return cls(**{**base, **overrides})

    @classmethod
    def smoke(cls, **overrides: Any) -> VehicleConfig:
        """Small images for fast tests (64 x 128)."""
        return cls(**{"height": 64, "width": 128, **overrides})

    @classmethod
    def from_difficulty(cls, difficulty: str, **overrides: Any) -> VehicleConfig:
        presets: dict[str, Callable[..., VehicleConfig]] = {"easy": cls.easy, "default": cls.default,
                                                             "medium": cls.medium, "hard": cls.hard}
        if difficulty not in presets:
            raise ValueError(f"difficulty must be one of {sorted(presets)}, got {difficulty!r}")
        return presets[difficulty](**overrides)


# ===================================================================================================== identity
RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Vehicle:
    """Latent attributes of one synthetic vehicle (lengths in metres; JSON-serialisable with `to_dict`).

    Model coordinates: x along the vehicle (front at +length/2), y across (its left side at +width/2), z up from the
    road. The side profile is a lower body (bumpers to the beltline) and a cabin (beltline to roof) on top of it."""

    pid: int
    body_type: str  # one of BODY_TYPES
    model: int  # index of the shared popular model, -1 for a vehicle of its own
    length: float
    width: float
    height: float  # to the roof (to the top of the cargo box for a truck)
    cab_height: float  # truck: roof of the cab (lower than the cargo box); the roof height otherwise
    clearance: float  # underside above the road
    front_height: float  # top of the front face (bonnet edge)
    belt: float  # beltline: the base of the side windows
    tail_height: float  # top of the rear face
    hood: float  # x of the windscreen base
    deck: float  # x of the rear window base
    roof_front: float  # x where the roof starts (windscreen top)
    roof_rear: float  # x where the roof ends
    cabin_width: float  # cabin width / body width (tumblehome)
    cab_rear: float  # truck: x of the back of the cab (the cargo box starts behind it); other types: unused (0)
    cargo_floor: float  # truck: z of the cargo box floor; 0 otherwise
    wheel_radius: float
    axles: tuple[float, ...]  # x of each axle
    paint: str  # colour name (PAINTS)
    paint_rgb: RGB
    paint_nir: float  # near-infrared reflectance of the paint: most pigments alike, carbon black dark
    finish: str  # "solid" | "metallic" | "pearl" | "matte"
    gloss: float  # strength of the sky reflection on the paint
    cargo_rgb: RGB  # truck cargo box (a body panel colour for the other types)
    cargo_nir: float
    glass_tint: float  # 0 clear .. 1 dark privacy glass (visible light only; glass is dark in NIR anyway)
    bumpers: str  # "black" plastic | "body" coloured
    headlight: str  # "round" | "rect" | "slim"
    taillight: str  # "bar" | "corner" | "vertical"
    rim: str  # "silver" | "black" | "chrome" | "steel"
    rim_spokes: int  # 0 for a plain steel wheel or hubcap
    plate: str  # "blue" (cars) | "yellow" (trucks, buses) | "green" (electric)
    plate_code: tuple[int, ...]  # 7 abstract glyphs 0..15 (not characters): the identity's tag
    stripe: tuple[float, float, RGB, float] | None  # (bottom, top) as fractions of the side, colour, NIR
    decal: tuple[str, RGB, float, float] | None  # door decal: (shape, colour, NIR, position along the side 0..1)
    screen_sticker: float | None  # windscreen sticker position across the screen (0..1), None without one
    bumper_sticker: tuple[RGB, float] | None  # rear bumper sticker: colour, NIR
    roof_item: str  # "none" | "rack" | "box" | "lightbar" | "ladder"
    roof_rgb: RGB
    electric: bool  # no exhaust, little drivetrain heat
    engine: str  # "front" | "rear" (buses): where the engine heat shows
    exhaust_side: str  # "left" | "right"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples as lists after JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Paint palette: (name, share, base colour or HSV ranges, NIR reflectance range, finishes with shares). Shares follow
# the usual world car-colour surveys (white, black, grey and silver most of the road); INFERRED, approximate.
# NIR: pigments in common automotive paints reflect NIR strongly whatever their hue, so most paints look alike in
# NIR; carbon-black paint absorbs it, IR-reflective blacks do not [INFERRED from the cool-paint literature].
PAINTS = ("white", "black", "grey", "silver", "blue", "red", "beige", "green", "yellow")
_PAINT_SHARE = (0.28, 0.18, 0.15, 0.12, 0.09, 0.09, 0.04, 0.02, 0.03)
_PAINT_FINISH = {
    "white": (("solid", 0.6), ("pearl", 0.4)), "black": (("solid", 0.45), ("metallic", 0.5), ("matte", 0.05)),
    "grey": (("metallic", 0.7), ("solid", 0.25), ("matte", 0.05)), "silver": (("metallic", 1.0),),
    "blue": (("metallic", 0.6), ("solid", 0.4)), "red": (("solid", 0.55), ("metallic", 0.45)),
    "beige": (("metallic", 0.5), ("solid", 0.5)), "green": (("metallic", 0.5), ("solid", 0.5)),
    "yellow": (("solid", 1.0),),
}
_GLOSS = {"solid": (0.12, 0.2), "metallic": (0.22, 0.32), "pearl": (0.2, 0.28), "matte": (0.02, 0.05)}


def _paint(rng: np.random.Generator, name: str | None = None) -> tuple[str, RGB, float, str, float]:
    """(name, rgb, nir, finish, gloss) of one paint, drawn from the palette (or of the named colour)."""
    if name is None:
        name = PAINTS[int(rng.choice(len(PAINTS), p=_PAINT_SHARE))]
    j = rng.uniform(-1, 1, 3)
    if name == "white":
        rgb, nir = np.array([0.9, 0.9, 0.88]) + 0.03 * j, rng.uniform(0.72, 0.86)
    elif name == "black":
        rgb = np.array([0.05, 0.05, 0.06]) + 0.015 * j
        nir = rng.uniform(0.04, 0.12) if rng.random() < 0.6 else rng.uniform(0.35, 0.55)  # carbon black or not
    elif name == "grey":
        rgb, nir = np.full(3, rng.uniform(0.3, 0.48)) + 0.02 * j, rng.uniform(0.48, 0.64)
    elif name == "silver":
        rgb, nir = np.full(3, rng.uniform(0.62, 0.74)) + 0.015 * j, rng.uniform(0.58, 0.72)
    elif name == "beige":
        rgb, nir = np.array([0.62, 0.54, 0.42]) + 0.05 * j, rng.uniform(0.55, 0.72)
    else:
        hue = {"blue": (0.56, 0.67), "red": (-0.02, 0.02), "green": (0.27, 0.42), "yellow": (0.1, 0.15)}[name]
        sat = (0.55, 0.85) if name != "yellow" else (0.75, 0.9)
        val = (0.3, 0.75) if name != "yellow" else (0.8, 0.92)
        rgb = np.array(colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val)))
        nir = rng.uniform(0.5, 0.72)
    finishes, shares = zip(*_PAINT_FINISH[name])
    finish = finishes[int(rng.choice(len(finishes), p=shares))]
    return (name, _rgb(rgb), round(float(nir), 4), finish, round(float(rng.uniform(*_GLOSS[finish])), 4))


def _rgb(c: Any) -> RGB:
    return tuple(round(float(v), 4) for v in np.clip(np.asarray(c, float), 0.02, 0.98))  # type: ignore[return-value]


# Body proportions per type, in metres (INFERRED typical ranges): length, width, height, clearance, front-face
# height, beltline, wheel radius, hood (front to windscreen base, fraction of length), deck (rear window base to the
# rear, fraction), windscreen and rear-window rake (horizontal run, metres), cabin width fraction.
_BODY: dict[str, dict[str, tuple[float, float]]] = {
    "sedan": dict(L=(4.4, 5.0), W=(1.75, 1.9), H=(1.4, 1.5), c=(0.14, 0.17), fh=(0.64, 0.72), belt=(0.88, 0.97),
                  R=(0.31, 0.34), hood=(0.27, 0.32), deck=(0.17, 0.23), rf=(0.5, 0.62), rr=(0.4, 0.52), cw=(0.84, 0.88)),
    "hatchback": dict(L=(3.8, 4.3), W=(1.68, 1.8), H=(1.42, 1.55), c=(0.13, 0.16), fh=(0.66, 0.75),
                      belt=(0.9, 0.99), R=(0.29, 0.32), hood=(0.23, 0.27), deck=(0.02, 0.05), rf=(0.48, 0.58),
                      rr=(0.18, 0.3), cw=(0.85, 0.89)),
    "suv": dict(L=(4.4, 4.9), W=(1.84, 1.95), H=(1.65, 1.8), c=(0.19, 0.23), fh=(0.86, 0.96), belt=(1.06, 1.16),
                R=(0.35, 0.39), hood=(0.24, 0.28), deck=(0.01, 0.03), rf=(0.45, 0.56), rr=(0.08, 0.16), cw=(0.88, 0.92)),
    "van": dict(L=(4.8, 5.3), W=(1.9, 2.0), H=(1.9, 2.15), c=(0.16, 0.19), fh=(0.82, 0.92), belt=(1.02, 1.1),
                R=(0.32, 0.35), hood=(0.09, 0.13), deck=(0.0, 0.01), rf=(0.28, 0.42), rr=(0.02, 0.06), cw=(0.93, 0.96)),
    "truck": dict(L=(5.8, 7.0), W=(2.0, 2.3), H=(2.7, 3.2), c=(0.24, 0.28), fh=(1.1, 1.25), belt=(1.42, 1.55),
                  R=(0.4, 0.45), hood=(0.04, 0.07), deck=(0.0, 0.0), rf=(0.12, 0.2), rr=(0.0, 0.02), cw=(0.95, 0.97)),
    "bus": dict(L=(10.0, 12.0), W=(2.45, 2.55), H=(3.0, 3.2), c=(0.28, 0.32), fh=(1.0, 1.1), belt=(1.12, 1.25),
                R=(0.48, 0.52), hood=(0.0, 0.01), deck=(0.0, 0.01), rf=(0.08, 0.16), rr=(0.0, 0.03), cw=(1.0, 1.0)),
}


def _body(rng: np.random.Generator, body_type: str) -> dict[str, Any]:
    """Proportions of one model of `body_type` (metres, model coordinates of `Vehicle`)."""
    p = {k: float(rng.uniform(*v)) for k, v in _BODY[body_type].items()}
    L, H, belt = p["L"], p["H"], p["belt"]
    front, rear = L / 2, -L / 2
    hood_x = front - p["hood"] * L
    deck_x = rear + p["deck"] * L
    if body_type == "truck":  # a cab-over cab in front of a tall cargo box
        cab_h = float(rng.uniform(2.2, 2.45))
        cab_rear = front - float(rng.uniform(0.27, 0.32)) * L
        roof_front, roof_rear = hood_x - p["rf"], cab_rear + 0.05
        deck_x = cab_rear
        cargo_floor = float(rng.uniform(0.95, 1.1))
        axles = (front - 0.2 * L, rear + 0.22 * L)
        tail = p["fh"]
    else:
        cab_h, cab_rear, cargo_floor = H, 0.0, 0.0
        roof_front, roof_rear = hood_x - p["rf"], deck_x + p["rr"]
        tail = belt - (0.03 if body_type == "sedan" else 0.0)  # the sedan's boot lid sits a little lower
        if body_type == "bus":
            axles = (front - 0.22 * L, rear + 0.28 * L)
            tail = belt
        else:
            axles = (front - float(rng.uniform(0.17, 0.21)) * L, rear + float(rng.uniform(0.18, 0.24)) * L)
    return dict(length=L, width=p["W"], height=cab_h if body_type != "truck" else H, clearance=p["c"],
                front_height=p["fh"], belt=belt, tail_height=tail, hood=hood_x, deck=deck_x,
                roof_front=roof_front, roof_rear=roof_rear, cabin_width=p["cw"], cab_rear=cab_rear,
                cargo_floor=cargo_floor, wheel_radius=p["R"], axles=axles, cab_height=cab_h)


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else tuple(round(x, 4) for x in v) if isinstance(v, tuple)
                else v) for k, v in d.items()}


def _model(rng: np.random.Generator, config: VehicleConfig) -> dict[str, Any]:
    """What a make-and-model fixes: body, paint, lights, wheels, bumpers (shared by look-alike vehicles)."""
    body_type = BODY_TYPES[int(rng.choice(len(BODY_TYPES), p=_BODY_SHARE))]
    geo = _body(rng, body_type)
    paint, rgb, nir, finish, gloss = _paint(rng)
    if body_type == "bus" and rng.random() < 0.6:  # liveries: white, yellow or green buses are common
        paint, rgb, nir, finish, gloss = _paint(rng, ("white", "yellow", "green")[int(rng.integers(3))])
    cargo = _paint(rng, "white" if rng.random() < 0.6 else None)
    return dict(
        body_type=body_type, **_round(geo), paint=paint, paint_rgb=rgb, paint_nir=nir, finish=finish, gloss=gloss,
        cargo_rgb=cargo[1] if body_type == "truck" else rgb, cargo_nir=cargo[2] if body_type == "truck" else nir,
        bumpers="black" if body_type in ("truck", "van") or rng.random() < 0.35 else "body",
        headlight=("round", "rect", "slim")[int(rng.choice(3, p=[0.2, 0.45, 0.35]))],
        taillight=("bar", "corner", "vertical")[int(rng.choice(3, p=[0.3, 0.5, 0.2]))],
        rim=("silver", "black", "chrome", "steel")[int(rng.choice(4, p=[0.5, 0.2, 0.1, 0.2]))],
        rim_spokes=int(rng.choice([0, 5, 6, 10])),
        electric=bool(rng.random() < (0.12 if body_type in ("sedan", "hatchback", "suv") else 0.05)),
        engine="rear" if body_type == "bus" else "front",
    )


def _marks(rng: np.random.Generator, body_type: str, config: VehicleConfig) -> dict[str, Any]:
    """What tells two vehicles of the same model apart: tag code, tint, stripes, decals, stickers, roof items."""
    rate = config.mark_rate
    stripe_p = 0.85 if body_type == "bus" else rate * 0.6
    decal_p = 0.7 if body_type == "truck" else rate * 0.7
    stripe_lo = float(rng.uniform(0.2, 0.55))
    stripe = (round(stripe_lo, 4), round(stripe_lo + float(rng.uniform(0.06, 0.16)), 4), _paint(rng)[1],
              round(float(rng.uniform(0.1, 0.9)), 4))
    decal = (("circle", "square", "diamond", "bar")[int(rng.integers(4))], _paint(rng)[1],
             round(float(rng.uniform(0.1, 0.9)), 4), round(float(rng.uniform(0.25, 0.7)), 4))
    sticker = round(float(rng.uniform(0.05, 0.95)), 4)
    bumper = (_paint(rng)[1], round(float(rng.uniform(0.1, 0.9)), 4))
    roof_kinds = ("rack", "box", "lightbar", "ladder") if body_type != "bus" else ("box",)
    roof_item = roof_kinds[int(rng.integers(len(roof_kinds)))]
    has_roof = rng.random() < (0.7 if body_type == "bus" else config.roof_rate * (0.3 if body_type == "truck" else 1))
    present = rng.random(4)  # drawn whatever the rates, so attributes stay aligned across rates
    return dict(
        plate_code=tuple(int(v) for v in rng.integers(0, 16, 7)),
        glass_tint=round(float(rng.beta(1.5, 3.0)), 4),
        stripe=stripe if present[0] < stripe_p else None,
        decal=decal if present[1] < decal_p else None,
        screen_sticker=sticker if present[2] < rate else None,
        bumper_sticker=bumper if present[3] < rate * 0.5 else None,
        roof_item=roof_item if has_roof else "none",
        roof_rgb=_rgb(rng.uniform(0.05, 0.25, 3)) if roof_item != "lightbar" else _rgb((0.9, 0.85, 0.3)),
        exhaust_side="left" if rng.random() < 0.5 else "right",
    )


def make_vehicles(n: int, seed: int = 0, config: VehicleConfig | None = None) -> list[Vehicle]:
    """Draw `n` vehicles with pids 1..n, deterministically from `seed`.

    A fraction `config.model_sharing` of them are copies of one of `config.model_pool` popular models (same body,
    proportions, paint up to `paint_jitter`, lights and wheels): look-alikes that only their marks (tag code,
    stripes, decals, stickers, roof items, glass tint) tell apart, as same-make-same-colour cars in real data.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 vehicles, got {n}")
    config = config or VehicleConfig()
    rng = np.random.default_rng([seed, 0x7E1])
    pool = [_model(rng, config) for _ in range(config.model_pool)]
    out = []
    for pid in range(1, n + 1):
        r = np.random.default_rng([seed, 0x7E1, pid])
        own = _model(r, config)
        shared = r.random() < config.model_sharing
        t_idx = int(r.integers(config.model_pool))
        model = -1
        if shared:
            model = t_idx
            own = dict(pool[t_idx])
            own["paint_rgb"] = _rgb(np.asarray(own["paint_rgb"]) + r.normal(0, config.paint_jitter, 3))
        marks = _marks(r, own["body_type"], config)
        plate = "green" if own["electric"] else "yellow" if own["body_type"] in ("truck", "bus") else "blue"
        out.append(Vehicle(pid=pid, model=model, plate=plate, **own, **marks))
    return out


# ===================================================================================================== cameras
@dataclass(frozen=True)
class RoadCamera:
    """A road camera: where it is (background), how it looks at traffic, and its sensors (the style).

    `viewpoint_bias` is a probability per `VEHICLE_VIEWPOINTS` entry (a camera facing oncoming traffic mostly sees
    fronts). All cameras record aligned RGB / NIR / TIR triplets."""

    camid: int  # the number the dataset gives it (RGBNT100 1..8, MSVR310 0..7)
    location: str  # seeds the background scene
    viewpoint_bias: tuple[float, ...]  # 8 probabilities, VEHICLE_VIEWPOINTS order
    mount_height: float = 5.0  # metres above the road
    pitch: float = 20.0  # degrees the camera looks down (a higher mount sees more roof and bonnet)
    exposure: float = 1.0  # overall gain of the visible sensor
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise_gain: float = 1.0  # multiplies VehicleConfig.noise
    nir_falloff: float = 1.0  # active NIR illuminator fall-off strength (at night)
    nir_gain: float = 1.0
    tir_span: float = 40.0  # degrees C mapped from black to white by the thermal camera's gain
    spectra: tuple[str, ...] = ("rgb", "nir", "tir")


def _rig(prefix: str, camids: range, views: dict[int, tuple[str, ...]]) -> dict[int, RoadCamera]:
    """One camera per id, each looking at the viewpoints `views[camid]`, with its own mount and sensors."""
    rng = np.random.default_rng(zlib.crc32(prefix.encode()))
    cams = {}
    for c in camids:
        bias = np.full(len(VEHICLE_VIEWPOINTS), 0.01)
        for v in views[c]:
            bias[VEHICLE_VIEWPOINTS.index(v)] += 1.0
        bias /= bias.sum()
        height = float(rng.uniform(3.0, 8.0))
        cams[c] = RoadCamera(
            camid=c, location=f"{prefix}-{c}", viewpoint_bias=tuple(round(float(b), 4) for b in bias),
            mount_height=round(height, 2), pitch=round(float(np.degrees(np.arctan2(height, rng.uniform(9, 20)))), 2),
            exposure=round(float(rng.uniform(0.85, 1.15)), 3),
            white_balance=tuple(round(float(v), 3) for v in (rng.uniform(0.92, 1.08), 1.0, rng.uniform(0.9, 1.1))),
            noise_gain=round(float(rng.uniform(0.8, 1.4)), 3), nir_falloff=round(float(rng.uniform(0.8, 1.8)), 3),
            nir_gain=round(float(rng.uniform(0.85, 1.15)), 3), tir_span=round(float(rng.uniform(32, 48)), 2))
    return cams


def rgbnt100_cameras() -> dict[int, RoadCamera]:
    """RGBNT100-like cameras 1..8. A public RGBNT100 loader's comment labels the cameras by viewpoint: 1 front,
    2 back, 3 and 4 side, 5 and 8 front-side, 6 and 7 back-side (data_cards/rgbnt100.md; not confirmed against the
    paper); each camera's viewpoint bias follows it (sides and obliques split into left and right)."""
    views = {1: ("front",), 2: ("rear",), 3: ("left",), 4: ("right",), 5: ("front-left",), 6: ("rear-left",),
             7: ("rear-right",), 8: ("front-right",)}
    return _rig("rgbnt100", range(1, 9), views)


def msvr310_cameras() -> dict[int, RoadCamera]:
    """MSVR310-like cameras 0..7 ("v<cam>" in the file names, perhaps a viewpoint: not confirmed); each sees two
    neighbouring viewpoints. Where a capture happens (its background and light) is the scene's, not the camera's."""
    views = {i: (VEHICLE_VIEWPOINTS[i], VEHICLE_VIEWPOINTS[(i + 1) % 8]) for i in range(8)}
    return _rig("msvr310", range(0, 8), views)


# ===================================================================================================== scenes, state
@dataclass(frozen=True)
class RoadScene:
    """Light and weather of a capture (shared by every vehicle of an MSVR310 scene)."""

    time_of_day: str  # "day" | "dusk" | "night"
    ambient: float  # air temperature, deg C
    sun: float  # 0 overcast .. 1 full sun (solar heating of the paint, hard shading); 0 at night
    sky_drop: float  # how much colder the sky is than the air, deg C (clear sky: 20+); glass reflects it in TIR
    light: float  # visible light level (day 1, dusk ~0.45, night ~0.12 before street lights)
    street_light: str  # "none" | "sodium" (orange) | "led" (white); dusk and night only
    light_x: float  # where the street lamp's pool of light falls across the image, 0..1
    scene: int | None = None  # MSVR310 scene id
    location: str | None = None  # background location; None: the camera's own


@dataclass(frozen=True)
class VehicleState:
    """What the vehicle is doing at capture time: its thermal image follows it."""

    driving_minutes: float  # 0: parked for hours, engine cold
    braking: float = 0.0  # 0..1, how hard it braked recently (brake discs heat the wheel hubs)
    headlights: bool = False


def draw_scene(rng: np.random.Generator, config: VehicleConfig, *, scene: int | None = None,
               location: str | None = None) -> RoadScene:
    """A time of day (shares `night_rate`, `dusk_rate`), air and sky temperature, sun and street lighting."""
    u = rng.random(8)
    tod = "night" if u[0] < config.night_rate else "dusk" if u[0] < config.night_rate + config.dusk_rate else "day"
    ambient = float(5.0 + 27.0 * u[1]) if tod == "day" else float(24.0 * u[1])
    sun = float(u[2] ** 0.7) if tod == "day" else 0.1 * float(u[2]) if tod == "dusk" else 0.0
    light = {"day": 0.85 + 0.3 * float(u[3]), "dusk": 0.35 + 0.2 * float(u[3]), "night": 0.08 + 0.06 * float(u[3])}[tod]
    lamp = "none" if tod == "day" else ("sodium", "led", "none")[min(int(u[4] * 2.2), 2)]
    return RoadScene(time_of_day=tod, ambient=round(ambient, 2), sun=round(sun, 3),
                     sky_drop=round(8.0 + 17.0 * (sun if tod == "day" else float(u[5])), 2), light=round(light, 3),
                     street_light=lamp, light_x=round(0.1 + 0.8 * float(u[6]), 3), scene=scene, location=location)


def draw_state(rng: np.random.Generator, config: VehicleConfig, scene: RoadScene) -> VehicleState:
    """Parked and cold with probability `parked_rate`; otherwise driving for 1 to 60 minutes (log-uniform), with
    headlights on at dusk and night."""
    u = rng.random(4)
    if u[0] < config.parked_rate:
        return VehicleState(driving_minutes=0.0, braking=0.0, headlights=False)
    minutes = float(np.exp(np.log(60.0) * u[1]))
    lights = bool(scene.time_of_day != "day" and u[3] < 0.95)
    return VehicleState(driving_minutes=round(minutes, 2), braking=round(0.2 + 0.8 * float(u[2]), 3), headlights=lights)
