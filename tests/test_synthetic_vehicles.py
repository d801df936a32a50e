"""Tests for the synthetic vehicle world and renderer (workbench/data/synthetic_vehicle_world.py,
synthetic_vehicle_render.py) and their RGBNT100 / MSVR310 exports.

Ground truth comes from the world (the vehicle's attributes, the capture's scene and state) and from the part label
map of the same capture (`render_vehicle_parts`); thermal checks run with noise, occluders and gain jitter off and
compare grey levels with the physics written out here: apparent temperature `eps * T_surface + (1 - eps) *
T_reflected`, surface heat `dT_max * (1 - exp(-t / tau))`, automatic gain `grey = 255 * (0.1 + 0.8 * (T - lo) /
span)` with `lo = ambient - span / 4`.
"""

from __future__ import annotations

import dataclasses as dc
import json
import math
from collections import defaultdict

import numpy as np
import pytest
from scipy import ndimage

from workbench.data import load_dataset
from workbench.data import synthetic as syn
from workbench.data import synthetic_vehicle_render as vr
from workbench.data.synthetic_vehicle_world import (
    BODY_TYPES,
    VEHICLE_VIEWPOINTS,
    RoadScene,
    VehicleConfig,
    VehicleState,
    _paint,
    draw_scene,
    make_vehicles,
    msvr310_cameras,
    rgbnt100_cameras,
)

CLEAN = VehicleConfig(noise=0.0, occlusion_rate=0.0, illumination_jitter=0.0)
CAMS = rgbnt100_cameras()
NIGHT = RoadScene(time_of_day="night", ambient=10.0, sun=0.0, sky_drop=18.0, light=0.1, street_light="sodium",
                  light_x=0.4)
DAY = RoadScene(time_of_day="day", ambient=20.0, sun=0.5, sky_drop=15.0, light=1.0, street_light="none", light_x=0.5)
PARKED = VehicleState(driving_minutes=0.0)


def rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def first(body: str, config: VehicleConfig = CLEAN, n: int = 80, seed: int = 0, **fields):
    v = next(v for v in make_vehicles(n, seed, config) if v.body_type == body)
    return dc.replace(v, **fields) if fields else v


def capture(v, scene, state, viewpoint="front-left", cam=5, config=CLEAN, key=1):
    """Images and the part labels of one capture (same random state, so pixel-aligned)."""
    images, factors = vr.render_vehicle(v, camera=CAMS[cam], scene=scene, state=state, viewpoint=viewpoint,
                                        rng=rng(key), config=config)
    labels, _ = vr.render_vehicle_parts(v, camera=CAMS[cam], scene=scene, state=state, viewpoint=viewpoint,
                                        rng=rng(key), config=config)
    return images, labels, factors


def interior(labels: np.ndarray, *parts: int, reach: int = 4) -> np.ndarray:
    """Pixels of the parts at least `reach` pixels from any other part (away from blur and the half-resolution
    thermal grid)."""
    return ndimage.binary_erosion(np.isin(labels, parts), np.ones((2 * reach + 1, 2 * reach + 1), bool))


def grey_of(temperature: float, ambient: float, span: float) -> float:
    return 255.0 * (0.1 + 0.8 * (temperature - (ambient - span / 4)) / span)


# ----------------------------------------------------------------------------------------------------- world
def test_vehicles_deterministic_seed_dependent_and_json():
    a, b, c = make_vehicles(20, 3), make_vehicles(20, 3), make_vehicles(20, 4)
    assert a == b and a != c
    assert [v.pid for v in a] == list(range(1, 21))
    again = json.loads(json.dumps(a[0].to_dict()))
    assert again["plate_code"] == list(a[0].plate_code) and again["body_type"] == a[0].body_type
    assert {v.body_type for v in make_vehicles(200, 0)} == set(BODY_TYPES)


def test_body_types_keep_their_proportions():
    fleet = make_vehicles(400, 1)
    by = defaultdict(list)
    for v in fleet:
        by[v.body_type].append(v)
    mean = {b: {k: np.mean([getattr(v, k) for v in vs]) for k in ("length", "height", "clearance")}
            for b, vs in by.items()}
    assert mean["bus"]["length"] > mean["truck"]["length"] > mean["van"]["length"] > mean["hatchback"]["length"]
    assert mean["sedan"]["length"] > mean["hatchback"]["length"]
    assert mean["bus"]["height"] > mean["van"]["height"] > mean["suv"]["height"] > mean["sedan"]["height"]
    assert mean["truck"]["height"] > mean["van"]["height"]
    assert mean["suv"]["clearance"] > mean["sedan"]["clearance"]
    for v in fleet:
        assert -v.length / 2 < v.deck < v.hood < v.length / 2 and v.clearance < v.belt <= v.cab_height <= v.height
        assert all(-v.length / 2 < x < v.length / 2 for x in v.axles)
        assert v.plate == ("green" if v.electric else "yellow" if v.body_type in ("truck", "bus") else "blue")
        assert v.engine == ("rear" if v.body_type == "bus" else "front")


def test_model_sharing_makes_look_alikes_that_only_marks_tell_apart():
    own = make_vehicles(40, 0, VehicleConfig(model_sharing=0.0))
    shared = make_vehicles(40, 0, VehicleConfig(model_sharing=1.0, model_pool=3, paint_jitter=0.0))
    assert all(v.model == -1 for v in own) and {v.model for v in shared} <= {0, 1, 2}
    model_fields = ("body_type", "length", "width", "height", "hood", "axles", "paint_rgb", "paint_nir", "finish",
                    "headlight", "taillight", "rim", "rim_spokes")
    by_model = defaultdict(set)
    for v in shared:
        by_model[v.model].add(tuple(getattr(v, f) for f in model_fields))
    assert all(len(group) == 1 for group in by_model.values())  # the same make, model and paint
    assert len({v.plate_code for v in shared}) == 40  # but every vehicle has its own tag
    assert len({tuple(getattr(v, f) for f in model_fields) for v in own}) == 40


@pytest.mark.parametrize("bad", [dict(occlusion_rate=1.5), dict(noise=-0.1), dict(width=32), dict(model_pool=0),
                                 dict(night_rate=0.7, dusk_rate=0.5)])
def test_vehicle_config_rejects_bad_values(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name if name not in ("width",) else "height x width"):
        VehicleConfig(**bad)


def test_vehicle_difficulty_presets():
    e, d, m, h = (VehicleConfig.from_difficulty(x) for x in ("easy", "default", "medium", "hard"))
    for knob in ("occlusion_rate", "noise", "viewpoint_spread", "model_sharing"):
        assert getattr(e, knob) <= getattr(d, knob) <= getattr(m, knob) <= getattr(h, knob)
        assert getattr(m, knob) == pytest.approx((getattr(d, knob) + getattr(h, knob)) / 2)
    assert (d.height, d.width) == (128, 256) and VehicleConfig.smoke().width == 128
    with pytest.raises(ValueError, match="difficulty"):
        VehicleConfig.from_difficulty("extreme")
    assert syn.config_for("msvr310", "hard") == h and syn.config_for("rgbnt201", "hard") == syn.SyntheticConfig.hard()


def test_scene_shares_follow_the_config():
    rates = VehicleConfig(night_rate=0.3, dusk_rate=0.2)
    r = rng(0)
    tods = [draw_scene(r, rates).time_of_day for _ in range(3000)]
    assert tods.count("night") / 3000 == pytest.approx(0.3, abs=0.03)
    assert tods.count("dusk") / 3000 == pytest.approx(0.2, abs=0.03)
    nights = [s for s in (draw_scene(r, rates) for _ in range(300)) if s.time_of_day == "night"]
    assert all(s.sun == 0.0 and s.light < 0.2 for s in nights)


# ----------------------------------------------------------------------------------------------------- render
@pytest.mark.parametrize("size", [(32, 64), (64, 128), (128, 256)])
def test_render_sizes_and_grey_infrared(size):
    cfg = VehicleConfig(height=size[0], width=size[1])
    for i, v in enumerate(make_vehicles(6, 2, cfg)):
        images, factors = vr.render_vehicle(v, camera=CAMS[1 + i], scene=DAY, state=VehicleState(5.0),
                                            rng=rng(i), config=cfg)
        assert all(im.shape == (*size, 3) and im.dtype == np.uint8 for im in images.values())
        for m in ("nir", "tir"):
            assert np.array_equal(images[m][..., 0], images[m][..., 1])
            assert np.array_equal(images[m][..., 0], images[m][..., 2])
        assert factors["viewpoint"] in VEHICLE_VIEWPOINTS and factors["camera"] == 1 + i


def test_render_deterministic_and_the_parts_are_its_segmentation():
    v = first("suv")
    a, labels, _ = capture(v, DAY, VehicleState(12.0, 0.5))
    b, labels2, _ = capture(v, DAY, VehicleState(12.0, 0.5))
    assert all(np.array_equal(a[m], b[m]) for m in a) and np.array_equal(labels, labels2)
    c, _, _ = capture(v, DAY, VehicleState(12.0, 0.5), key=2)
    assert not np.array_equal(a["rgb"], c["rgb"])
    # aligned: the NIR image is dark exactly where the labels say glass and tyres are, bright on the tag
    glass = interior(labels, vr.GLASS_SIDE, vr.GLASS_SCREEN, reach=2)
    paint = interior(labels, *vr.PAINTED, reach=2)
    assert glass.sum() > 100 and paint.sum() > 500
    nir = a["nir"][..., 0].astype(float)
    assert nir[glass].max() < nir[paint].min() or v.paint_nir < 0.2


def test_viewpoint_follows_camera_bias_and_spread():
    v = first("sedan")
    for spread, expect_own in ((0.0, True), (1.0, False)):
        cfg = dc.replace(CLEAN, viewpoint_spread=spread)
        views = [vr.render_vehicle_parts(v, camera=CAMS[3], scene=DAY, state=PARKED, rng=rng(k),
                                         config=cfg)[1]["viewpoint"] for k in range(160)]
        if expect_own:  # the camera's bias is 93 % "left": nearly always its own viewpoint
            assert views.count("left") / len(views) > 0.85
        else:
            assert len(set(views)) == len(VEHICLE_VIEWPOINTS) and views.count("left") / len(views) < 0.3
    with pytest.raises(ValueError, match="viewpoint"):
        vr.render_vehicle(v, camera=CAMS[1], scene=DAY, state=PARKED, viewpoint="above", rng=rng(0))
    with pytest.raises(ValueError, match="spectrum"):
        vr.render_vehicle(v, camera=CAMS[1], scene=DAY, state=PARKED, rng=rng(0), spectra=("uv",))


def test_visible_faces_follow_the_viewpoint():
    """Seen from the front, the headlights and the front tag show and the tail lights do not; from behind, the
    reverse; from the side, the near wheels show their rims."""
    v = first("sedan")
    parts = {vp: vr.render_vehicle_parts(v, camera=CAMS[1], scene=DAY, state=PARKED, viewpoint=vp, rng=rng(0),
                                         config=CLEAN)[0] for vp in ("front", "rear", "left")}
    present = {vp: set(np.unique(lab).tolist()) for vp, lab in parts.items()}
    assert vr.HEADLIGHT in present["front"] and vr.TAILLIGHT not in present["front"]
    assert vr.TAILLIGHT in present["rear"] and vr.HEADLIGHT not in present["rear"]
    assert vr.PLATE in present["front"] and vr.PLATE in present["rear"] and vr.PLATE not in present["left"]
    assert vr.RIM in present["left"] and vr.GLASS_SIDE in present["left"]


def test_occluder_fraction_matches_the_part_maps():
    v = first("van")
    cfg = dc.replace(CLEAN, occlusion_rate=1.0)
    seen = set()
    for k in range(40):
        occluded, f = vr.render_vehicle_parts(v, camera=CAMS[5], scene=DAY, state=PARKED, rng=rng(k), config=cfg)
        clear, _ = vr.render_vehicle_parts(v, camera=CAMS[5], scene=DAY, state=PARKED, rng=rng(k), config=CLEAN)
        body = clear > vr.SHADOW
        expected = np.count_nonzero(body & (occluded == vr.OCCLUDER)) / np.count_nonzero(body)
        assert f["occlusion"] == pytest.approx(expected, abs=1e-4)
        assert np.array_equal(occluded[occluded != vr.OCCLUDER], clear[occluded != vr.OCCLUDER])
        seen.add(f["occluder"])
    assert seen == set(vr.OCCLUDER_KINDS)


# ----------------------------------------------------------------------------------------------------- NIR
def test_nir_makes_distinct_paints_alike_and_glass_dark():
    """The same vehicle and pose in eight paints: their NIR levels spread far less than their colours, and the
    glass stays dark in NIR whatever the paint (carbon-black paint is left out: it is dark in NIR too)."""
    v = dc.replace(first("sedan"), gloss=0.0)
    r = rng(5)
    colours, nirs = [], []
    for name in ("white", "grey", "silver", "blue", "red", "green", "yellow", "beige"):
        _, rgb, nir, _, _ = _paint(r, name)
        images, labels, _ = capture(dc.replace(v, paint_rgb=rgb, paint_nir=nir), DAY, PARKED, "left", cam=3)
        side, glass = interior(labels, vr.PAINT_SIDE, reach=2), interior(labels, vr.GLASS_SIDE, reach=2)
        colours.append(images["rgb"][side].mean(0) / 255)
        nirs.append(images["nir"][side][:, 0].mean() / 255)
        assert images["nir"][glass][:, 0].mean() / 255 < 0.4 * nirs[-1]
    pairs = [(i, j) for i in range(8) for j in range(i + 1, 8)]
    rgb_spread = np.mean([np.linalg.norm(colours[i] - colours[j]) / math.sqrt(3) for i, j in pairs])
    nir_spread = np.mean([abs(nirs[i] - nirs[j]) for i, j in pairs])
    assert nir_spread < 0.5 * rgb_spread


def test_night_darkens_visible_light_but_not_thermal():
    """Same capture, day without sun vs night (same air and sky): visible light collapses, the thermal image does
    not change at all (it sees heat, not light)."""
    v = first("hatchback")
    overcast = dc.replace(DAY, sun=0.0, ambient=NIGHT.ambient, sky_drop=NIGHT.sky_drop)
    day, _, _ = capture(v, overcast, VehicleState(15.0, 0.4))
    night, labels, _ = capture(v, NIGHT, VehicleState(15.0, 0.4))
    assert np.array_equal(day["tir"], night["tir"])
    assert night["rgb"].mean() < 0.4 * day["rgb"].mean()
    lit, _, _ = capture(v, NIGHT, VehicleState(15.0, 0.4, headlights=True))
    head = np.isin(labels, [vr.HEADLIGHT])
    assert lit["rgb"][head].mean() > night["rgb"][head].mean() + 60  # the lamps are on
    assert lit["rgb"].mean() > night["rgb"].mean()  # and bloom around them


# ----------------------------------------------------------------------------------------------------- TIR
def test_cold_parked_vehicle_is_nearly_uniform_at_ambient():
    """Parked for hours at night: every surface is at air temperature, so the side panels, bumpers, tyres and lamps
    read exactly the grey of ambient; only the parts that reflect the cold sky (glass, roof, bonnet) are a little
    colder. After half an hour of driving the same capture is far from uniform."""
    v = first("sedan")
    span = CAMS[5].tir_span
    cold, labels, _ = capture(v, NIGHT, PARKED)
    tir = cold["tir"][..., 0].astype(float)
    sides = interior(labels, vr.PAINT_SIDE, vr.ENGINE_SIDE, vr.TRIM, vr.PAINT_END, vr.ENGINE_END, reach=4)
    assert sides.sum() > 200
    assert np.abs(tir[sides] - math.floor(grey_of(NIGHT.ambient, NIGHT.ambient, span) + 0.5)).max() <= 1
    body = labels > vr.SHADOW
    warm, _, _ = capture(v, NIGHT, VehicleState(30.0, 0.8))
    assert tir[body].std() < 0.35 * warm["tir"][..., 0].astype(float)[body].std()


def test_driving_heats_the_engine_bay_by_the_time_constant():
    """Bonnet (a top face: it reflects the sky) after 5 and 30 minutes: it warms by
    eps * dT_max * (exp(-5 / tau) - exp(-30 / tau)); radiator, tyres and brakes warm too; an electric twin keeps a
    quarter of the drivetrain heat and has no exhaust."""
    v = first("sedan", electric=False)
    span, (d_max, tau), eps = CAMS[5].tir_span, vr.HEAT["engine_top"], vr.EMISSIVITY["paint"]
    early, labels, _ = capture(v, NIGHT, VehicleState(5.0, 0.8))
    late, _, _ = capture(v, NIGHT, VehicleState(30.0, 0.8))
    hood = interior(labels, vr.ENGINE_TOP, reach=4)
    assert hood.sum() > 30
    shift = late["tir"][..., 0][hood].astype(float) - early["tir"][..., 0][hood].astype(float)
    expected = 255 * 0.8 / span * eps * d_max * (math.exp(-5 / tau) - math.exp(-30 / tau))
    assert np.abs(shift - expected).max() <= 1.5
    for part in (vr.GRILLE, vr.TYRE, vr.BRAKE):
        where = labels == part
        assert where.any(), vr.VEHICLE_PARTS[part]
        assert late["tir"][..., 0][where].mean() > early["tir"][..., 0][where].mean() + 3, vr.VEHICLE_PARTS[part]
    ev_late, ev_labels, _ = capture(dc.replace(v, electric=True), NIGHT, VehicleState(30.0, 0.8))
    ev_shift = ev_late["tir"][..., 0][hood].astype(float) - early["tir"][..., 0][hood].astype(float)
    ev_expected = 255 * 0.8 / span * eps * d_max * (0.25 * (1 - math.exp(-30 / tau)) - (1 - math.exp(-5 / tau)))
    assert np.abs(ev_shift - ev_expected).max() <= 1.5
    rear, rear_labels, _ = capture(v, NIGHT, VehicleState(30.0, 0.8), viewpoint="rear-left", cam=6)
    ev_rear, ev_rear_labels, _ = capture(dc.replace(v, electric=True), NIGHT, VehicleState(30.0, 0.8),
                                         viewpoint="rear-left", cam=6)
    exhaust = rear_labels == vr.EXHAUST
    assert exhaust.any() and not (ev_rear_labels == vr.EXHAUST).any()
    assert rear["tir"][..., 0][exhaust].max() > rear["tir"][..., 0][rear_labels == vr.PAINT_END].mean() + 40


def test_sun_heats_dark_paint_more_than_white():
    """Parked in full sun: the roof's surface rises by SOLAR_RISE * sun * absorptance, absorptance being one minus
    the mean of the visible and NIR reflectances; black minus white paint, seen through emissivity eps."""
    sunny = dc.replace(DAY, sun=1.0)
    v = first("suv")
    black = dc.replace(v, paint_rgb=(0.05, 0.05, 0.06), paint_nir=0.08)
    white = dc.replace(v, paint_rgb=(0.9, 0.9, 0.88), paint_nir=0.8)
    b, labels, _ = capture(black, sunny, PARKED)
    w, _, _ = capture(white, sunny, PARKED)
    roof = interior(labels, vr.PAINT_TOP, reach=4)
    assert roof.sum() > 30

    def absorb(p):
        return 1 - (0.5 * np.mean(np.float32(p.paint_rgb)) + 0.5 * p.paint_nir)

    expected = 255 * 0.8 / CAMS[5].tir_span * vr.EMISSIVITY["paint"] * vr.SOLAR_RISE * (absorb(black) - absorb(white))
    shift = b["tir"][..., 0][roof].astype(float) - w["tir"][..., 0][roof].astype(float)
    assert np.abs(shift - expected).max() <= 1.5 and expected > 20


# ----------------------------------------------------------------------------------------------------- exports
@pytest.fixture(scope="module")
def vehicle_exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("vehicles")
    cfg = VehicleConfig.smoke()
    return {layout: (root / layout, syn.export(layout, root / layout, ids=12, seed=1, config=cfg, progress=False))
            for layout in syn.VEHICLE_LAYOUTS}


def _lines(out):
    return [json.loads(line) for line in (out / syn.FACTORS).read_text().splitlines()]


@pytest.mark.parametrize("layout", syn.VEHICLE_LAYOUTS)
def test_identity_factors_constant_and_style_factors_vary(vehicle_exports, layout):
    out, manifest = vehicle_exports[layout]
    lines = _lines(out)
    by_pid = defaultdict(list)
    for line in lines:
        by_pid[line["pid"]].append(line["factors"])
    truth = {v.pid: v.to_dict() for v in make_vehicles(12, 1, VehicleConfig.smoke())}
    for pid, factors in by_pid.items():
        assert all(f["identity"] == json.loads(json.dumps(truth[pid])) for f in factors)  # the vehicle, everywhere
    several = [fs for fs in by_pid.values() if len(fs) >= 4]
    assert len(several) >= 10
    for key in ("camera", "viewpoint", "driving_minutes", "yaw"):
        varied = [len({json.dumps(f[key]) for f in fs}) > 1 for fs in several]
        assert np.mean(varied) > 0.8, key
    if layout == "rgbnt100":  # a session (time of day, light) per camera passage
        assert {f["time_of_day"] for fs in by_pid.values() for f in fs} == {"day", "dusk", "night"}
        assert sum(len({f["time_of_day"] for f in fs}) > 1 for fs in several) >= len(several) // 2
    else:  # the light is the scene's, and every vehicle is seen in several scenes
        assert all(len({f["scene"] for f in fs}) >= 2 for fs in by_pid.values())
    per_split = defaultdict(lambda: defaultdict(int))
    for line in lines:
        per_split[line["split"]][line["factors"]["time_of_day"]] += 1
    assert manifest["time_of_day"] == json.loads(json.dumps(per_split))


def test_export_needs_the_config_of_its_world(tmp_path):
    with pytest.raises(ValueError, match="VehicleConfig"):
        syn.export("msvr310", tmp_path / "a", ids=4, config=syn.SyntheticConfig.smoke(), progress=False)
    with pytest.raises(ValueError, match="SyntheticConfig"):
        syn.export("rgbnt201", tmp_path / "b", ids=4, config=VehicleConfig.smoke(), progress=False)


def test_rgbnt100_export_has_real_proportions_and_viewpoint_cameras(vehicle_exports):
    out, manifest = vehicle_exports["rgbnt100"]
    lines = _lines(out)
    n = {s: sum(1 for ln in lines if ln["split"] == s) for s in ("train", "query", "gallery")}
    assert len(manifest["splits"]["train"]) == len(manifest["splits"]["test"]) == 6  # 50 / 50
    assert n["query"] / n["gallery"] == pytest.approx(1715 / 8575, abs=0.08)
    cams = rgbnt100_cameras()
    own_view = {c: VEHICLE_VIEWPOINTS[int(np.argmax(cam.viewpoint_bias))] for c, cam in cams.items()}
    assert own_view == {1: "front", 2: "rear", 3: "left", 4: "right", 5: "front-left", 6: "rear-left",
                        7: "rear-right", 8: "front-right"}
    assert all(ln["factors"]["camera"] == ln["camid"] + 1 for ln in lines)  # file name c1..c8, Sample 0..7
    # cameras are viewpoints: with viewpoint_spread 0.4 a capture shows its camera's own view about 61 % of the time
    own = np.mean([ln["factors"]["viewpoint"] == own_view[ln["camid"] + 1] for ln in lines])
    assert 0.5 < own < 0.8


def test_msvr310_scene_junk_rule_has_work_to_do(vehicle_exports):
    from workbench.metrics.ranking import junk_mask

    out, manifest = vehicle_exports["msvr310"]
    ds = load_dataset("msvr310", root=out)
    assert ds.protocol == "msvr310" and ds.query and all(s.scene is not None for s in ds.gallery)
    g_pids = np.array([s.pid for s in ds.gallery])
    g_cams = np.array([s.camid for s in ds.gallery])
    g_scenes = np.array([s.scene for s in ds.gallery])
    removed = sum(int(junk_mask("msvr310", q.pid, q.camid, g_pids, g_cams, q.scene, g_scenes).sum()) for q in ds.query)
    kept = sum(int(((g_pids == q.pid) & (g_scenes != q.scene)).sum()) for q in ds.query)
    assert removed > 0 and kept > 0  # same-scene positives are junk, other-scene positives remain
    scenes = manifest["scene_conditions"]
    for s in ds.gallery + ds.query:  # each capture carries its scene's light
        assert s.factors["time_of_day"] == scenes[str(s.scene)]["time_of_day"]
        assert s.factors["ambient"] == scenes[str(s.scene)]["ambient"]
    assert len(msvr310_cameras()) == 8


def test_vehicle_sheet_rows_and_labels():
    rows, labels, columns = syn.vehicle_sheet(("sedan", "bus"), (1, 3), config=VehicleConfig.smoke(occlusion_rate=0))
    assert len(rows) == len(labels) == 4 and len(columns) == 6 and all(len(r) == 6 for r in rows)
    assert labels[0].startswith("sedan") and labels[1].endswith("night") and labels[2].startswith("bus")
    assert columns[:3] == ["cam 1 (front) RGB", "cam 1 (front) NIR", "cam 1 (front) TIR"]
    assert np.array_equal(rows[0][2], rows[0][2]) and rows[1][0].mean() < rows[0][0].mean()  # night is darker
    with pytest.raises(ValueError, match="body_types"):
        syn.vehicle_sheet(("tank",))
