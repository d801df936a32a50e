"""Tests for the synthetic multi-modal ReID generator (people) and its layout exporters (workbench/data/synthetic.py).

The vehicle world and renderer have their own file, tests/test_synthetic_vehicles.py.
"""

from __future__ import annotations

import colorsys
import dataclasses as dc
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from workbench.data import synthetic as syn
from workbench.data.samples import TRIPLET
from workbench.data.synthetic import (
    LAYOUTS,
    PART_NAMES,
    SyntheticConfig,
    export,
    is_complete_export,
    make_identities,
    render,
    render_parts,
    render_triplet,
    rgbnt201_cameras,
    sysu_cameras,
)
from workbench.data.synthetic_render import OCCLUDER_KINDS

SMOKE = SyntheticConfig.smoke()
CLEAN = SyntheticConfig.smoke(noise=0.0, occlusion_rate=0.0)  # exact pixel comparisons
BOX = np.ones((3, 3), bool)  # the 3x3 optical blur's reach
UPPER, UPPER_PAT, EYES, OCCLUDER = (PART_NAMES.index(p) for p in ("upper", "upper_pattern", "eyes", "occluder"))


def rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def tree_digest(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


# ----------------------------------------------------------------------------------------------------- identities
def test_identities_deterministic_and_seed_dependent():
    a, b, c = make_identities(12, 3, SMOKE), make_identities(12, 3, SMOKE), make_identities(12, 4, SMOKE)
    assert a == b
    assert a != c
    assert [i.pid for i in a] == list(range(1, 13))
    assert json.loads(json.dumps(a[0].to_dict()))["upper"]["nir"] == a[0].upper.nir  # JSON round trip


def test_garment_sharing_knob():
    own = make_identities(40, 0, dc.replace(SMOKE, garment_sharing=0.0))
    shared = make_identities(40, 0, dc.replace(SMOKE, garment_sharing=1.0, garment_pool=3, template_jitter=0.0))
    assert all(i.garment_template == -1 for i in own)
    assert {i.garment_template for i in shared} <= {0, 1, 2}
    # with no jitter, everyone wearing template t wears exactly the same upper and lower garments
    by_template = {}
    for i in shared:
        by_template.setdefault(i.garment_template, set()).add((i.upper, i.lower))
    assert all(len(v) == 1 for v in by_template.values())
    assert len({(i.upper, i.lower) for i in own}) == 40


@pytest.mark.parametrize("bad", [dict(occlusion_rate=1.5), dict(noise=-0.1), dict(height=8), dict(garment_pool=0)])
def test_config_rejects_bad_values(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name if name != "height" else "height x width"):
        SyntheticConfig(**bad)


def test_difficulty_presets_are_ordered():
    easy, default, hard = SyntheticConfig.easy(), SyntheticConfig.default(), SyntheticConfig.hard()
    for knob in ("occlusion_rate", "noise", "viewpoint_spread", "garment_sharing", "pose_jitter"):
        assert getattr(easy, knob) <= getattr(default, knob) <= getattr(hard, knob), knob
    assert default.occlusion_rate > 0 and default.garment_sharing > 0 and default.viewpoint_spread > 0
    with pytest.raises(ValueError, match="difficulty"):
        SyntheticConfig.from_difficulty("extreme")


# ----------------------------------------------------------------------------------------------------- rendering
def test_render_deterministic_from_rng():
    ident = make_identities(3, 0, SMOKE)[1]
    cam = sysu_cameras()[1]
    a, fa = render(ident, "rgb", camera=cam, rng=rng(5), config=SMOKE)
    b, fb = render(ident, "rgb", camera=cam, rng=rng(5), config=SMOKE)
    c, _ = render(ident, "rgb", camera=cam, rng=rng(6), config=SMOKE)
    assert a.tobytes() == b.tobytes() and fa == fb
    assert a.tobytes() != c.tobytes()
    assert a.shape == (64, 32, 3) and a.dtype == np.uint8


@pytest.mark.parametrize("size", [(64, 32), (128, 64), (256, 128)])
def test_render_sizes(size):
    cfg = SyntheticConfig(height=size[0], width=size[1])
    ims, _ = render_triplet(make_identities(1, 0, cfg)[0], camera=rgbnt201_cameras()[2], rng=rng(1), config=cfg)
    assert all(im.shape == (*size, 3) for im in ims.values())


@pytest.mark.parametrize("viewpoint", syn.VIEWPOINTS)
@pytest.mark.parametrize("modality", ["rgb", "ir", "nir", "tir"])
def test_factors_match_request(viewpoint, modality):
    ident = make_identities(4, 1, SMOKE)[2]
    cam = sysu_cameras()[3]
    _, f = render(ident, modality, camera=cam, viewpoint=viewpoint, rng=rng(2), config=SMOKE)
    assert f["viewpoint"] == viewpoint and f["camera"] == 3 and f["location"] == cam.location
    assert f["modality"] == modality and f["spectrum"] == {"ir": "nir"}.get(modality, modality)
    assert f["pid"] == ident.pid and f["identity"] == ident.to_dict()
    json.dumps(f)  # JSON-serialisable


def test_render_rejects_bad_requests():
    ident, cam = make_identities(1, 0, SMOKE)[0], sysu_cameras()[1]
    with pytest.raises(ValueError, match="modality must be one of"):
        render(ident, "thermal", camera=cam, rng=rng(0), config=SMOKE)
    with pytest.raises(ValueError, match="viewpoint must be one of"):
        render(ident, "rgb", camera=cam, viewpoint="top", rng=rng(0), config=SMOKE)


def test_viewpoint_follows_camera_bias_and_spread():
    ident = make_identities(1, 0, SMOKE)[0]
    fixed = dc.replace(sysu_cameras()[1], viewpoint_bias=(0.0, 1.0, 0.0, 0.0))
    narrow = dc.replace(SMOKE, viewpoint_spread=0.0)
    views = [render_parts(ident, camera=fixed, viewpoint=None, rng=rng(i), config=narrow)[1]["viewpoint"]
             for i in range(30)]
    assert set(views) == {"back"}
    wide = dc.replace(SMOKE, viewpoint_spread=1.0)
    views = Counter(render_parts(ident, camera=fixed, viewpoint=None, rng=rng(i), config=wide)[1]["viewpoint"]
                    for i in range(400))
    assert set(views) == set(syn.VIEWPOINTS) and min(views.values()) > 60  # ~100 each when uniform


def test_occlusion_fraction_matches_part_maps():
    """The recorded fraction equals (person pixels under the occluder) / (person pixels), computed from the
    occluder-free part map of the same pose."""
    ident = make_identities(5, 2, SMOKE)[0]
    cam = rgbnt201_cameras()[1]
    seen = 0
    for i in range(30):
        free, f0 = render_parts(ident, camera=cam, viewpoint=None, rng=rng(i), config=dc.replace(SMOKE, occlusion_rate=0.0))
        occ, f1 = render_parts(ident, camera=cam, viewpoint=None, rng=rng(i), config=dc.replace(SMOKE, occlusion_rate=1.0))
        person = free > 0
        expected = np.count_nonzero(person & (occ == OCCLUDER)) / np.count_nonzero(person)
        assert f0["occlusion"] == 0.0 and f0["occluder"] is None
        assert f1["occluder"] in OCCLUDER_KINDS
        assert f1["occlusion"] == pytest.approx(expected, abs=1e-4)
        assert np.array_equal(np.where(occ == OCCLUDER, free, occ), free)  # occluder only replaces pixels
        seen += expected > 0.05
    assert seen >= 20  # occluders do hide the person


@pytest.mark.parametrize("modality", ["nir", "tir", "ir"])
def test_infrared_images_have_equal_channels(modality):
    for i, ident in enumerate(make_identities(5, 0, SMOKE)):
        im, _ = render(ident, modality, camera=sysu_cameras()[6], rng=rng(i), config=SMOKE)
        assert np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 1], im[..., 2])
    rgb, _ = render(ident, "rgb", camera=sysu_cameras()[1], rng=rng(0), config=SMOKE)
    assert not np.array_equal(rgb[..., 0], rgb[..., 2])


def _recoloured(ident: syn.Identity) -> syn.Identity:
    """The same body, every material (colour, NIR reflectance, insulation, skin temperature) changed."""
    def move(v: float) -> float:  # a value at least 0.35 away, inside [0, 1]
        return v + 0.4 if v < 0.5 else v - 0.4

    def g(x: syn.Garment) -> syn.Garment:
        return dc.replace(x, rgb=tuple(map(move, x.rgb)), pattern_rgb=tuple(map(move, x.pattern_rgb)),
                          nir=move(x.nir), pattern_nir=move(x.pattern_nir), insulation=move(x.insulation))

    def acc(a: syn.Accessory | None) -> syn.Accessory | None:
        return a and dc.replace(a, rgb=tuple(map(move, a.rgb)), nir=move(a.nir), emissivity=a.emissivity - 0.3)

    return dc.replace(ident, hat=acc(ident.hat), backpack=acc(ident.backpack), bag=acc(ident.bag),
                      skin_rgb=tuple(map(move, ident.skin_rgb)), skin_nir=move(ident.skin_nir),
                      skin_temp=25.0, hair_rgb=tuple(map(move, ident.hair_rgb)), hair_nir=move(ident.hair_nir),
                      upper=g(ident.upper), lower=g(ident.lower), shoes_rgb=tuple(map(move, ident.shoes_rgb)),
                      shoes_nir=move(ident.shoes_nir))


def test_triplet_is_pixel_aligned():
    """Changing only materials changes the same pixels (the silhouette) in all three modalities of a triplet."""
    cam = rgbnt201_cameras()[3]
    for i, ident in enumerate(make_identities(6, 7, CLEAN)):
        vp = syn.VIEWPOINTS[i % 4]
        a, _ = render_triplet(ident, camera=cam, viewpoint=vp, rng=rng(i), config=CLEAN)
        b, _ = render_triplet(_recoloured(ident), camera=cam, viewpoint=vp, rng=rng(i), config=CLEAN)
        labels = render_parts(ident, camera=cam, viewpoint=vp, rng=rng(i), config=CLEAN)[0]
        person, recoloured = labels > 0, (labels > 0) & (labels != EYES)  # eyes keep their colour
        other = render_parts(ident, camera=cam, viewpoint=vp, rng=rng(i + 50), config=CLEAN)[0] > 0
        changed = {m: (a[m] != b[m]).any(-1) for m in a}
        for m, reach in (("rgb", 1), ("nir", 1), ("tir", 1)):  # optical blur spreads at most `reach` pixels
            inner = ndimage.binary_erosion(recoloured, BOX, iterations=reach)
            outer = ndimage.binary_dilation(person, BOX, iterations=reach)
            assert not (changed[m] & ~outer).any(), m
            assert (changed[m] & inner).sum() >= 0.97 * inner.sum(), m
        inter = (changed["rgb"] & changed["nir"]).sum() / (changed["rgb"] | changed["nir"]).sum()
        assert inter > 0.95
        # control: a different pose does not satisfy the containment
        assert (changed["rgb"] & ~ndimage.binary_dilation(other, BOX)).any() or np.array_equal(person, other)


def test_colour_does_not_carry_over_to_nir():
    """Over many identities, the visible colour of the upper garment (hue, luminance) is uncorrelated with its NIR
    intensity, while NIR intensity tracks the latent NIR reflectance (positive control)."""
    cam = dc.replace(sysu_cameras()[3], spectra=("rgb", "nir"))
    cfg = dc.replace(CLEAN, height=128, width=64)
    hue_c, hue_s, lum, nir_px, nir_latent = [], [], [], [], []
    for i, ident in enumerate(make_identities(240, 11, dc.replace(cfg, garment_sharing=0.0))):
        ims, _ = syn.render_spectra(ident, ("rgb", "nir"), camera=cam, viewpoint="back", rng=rng(i), config=cfg)
        labels = render_parts(ident, camera=cam, viewpoint="back", rng=rng(i), config=cfg)[0]
        torso = ndimage.binary_erosion(labels == UPPER)
        if torso.sum() < 10:
            continue
        mean_rgb = ims["rgb"][torso].mean(0) / 255
        h, s, v = colorsys.rgb_to_hsv(*mean_rgb)
        hue_c.append(np.cos(2 * np.pi * h) * s)
        hue_s.append(np.sin(2 * np.pi * h) * s)
        lum.append(mean_rgb @ np.array([0.299, 0.587, 0.114]))
        nir_px.append(ims["nir"][torso][:, 0].mean())
        nir_latent.append(ident.upper.nir)
    assert len(nir_px) > 200
    for visible in (hue_c, hue_s, lum):
        assert abs(np.corrcoef(visible, nir_px)[0, 1]) < 0.2
    assert np.corrcoef(nir_latent, nir_px)[0, 1] > 0.8


def test_patterns_show_in_every_modality():
    """Pattern ink contrasts with the base fabric in NIR and (faintly) in thermal, so patterns carry identity."""
    cam = rgbnt201_cameras()[1]
    idents = [i for i in make_identities(60, 5, CLEAN) if i.upper.pattern in ("stripes", "checks")][:8]
    assert idents
    for i, ident in enumerate(idents):
        ims, _ = render_triplet(ident, camera=cam, viewpoint="back", rng=rng(i), config=CLEAN)
        labels = render_parts(ident, camera=cam, viewpoint="back", rng=rng(i), config=CLEAN)[0]
        base, pat = ndimage.binary_erosion(labels == UPPER), ndimage.binary_erosion(labels == UPPER_PAT)
        if base.sum() < 5 or pat.sum() < 5:
            continue
        assert abs(ims["nir"][base].mean() - ims["nir"][pat].mean()) > 15
        assert abs(float(ims["tir"][base].mean()) - float(ims["tir"][pat].mean())) > 1


def _with(ident: syn.Identity, **acc) -> syn.Identity:
    return dc.replace(ident, **{"hat": None, "backpack": None, "bag": None, **acc})


@pytest.mark.parametrize(
    "accessory, side, visible_from",
    [("hat", "left", {"front", "back", "left", "right"}), ("backpack", "left", {"back", "left", "right"}),
     ("bag", "left", {"front", "back", "left"}), ("bag", "right", {"front", "back", "right"})],
)
def test_accessory_visibility_by_viewpoint(accessory, side, visible_from):
    ident = make_identities(1, 0, CLEAN)[0]
    acc = syn.Accessory(kind=accessory, rgb=(0.9, 0.1, 0.1), nir=0.9, emissivity=0.9)
    bare = dc.replace(_with(ident), bag_side=side)
    worn = dc.replace(_with(ident, **{accessory: acc}), bag_side=side)
    cam = rgbnt201_cameras()[1]
    for vp in syn.VIEWPOINTS:
        a, _ = render_triplet(bare, camera=cam, viewpoint=vp, rng=rng(3), config=CLEAN)
        b, f = render_triplet(worn, camera=cam, viewpoint=vp, rng=rng(3), config=CLEAN)
        differs = any(not np.array_equal(a[m], b[m]) for m in a)
        assert differs == (vp in visible_from), vp
        assert (accessory in f["visible_accessories"]) == (vp in visible_from), vp


def test_logo_only_from_the_front():
    ident = make_identities(1, 0, CLEAN)[0]
    logo = dc.replace(ident, upper=dc.replace(ident.upper, pattern="logo"))
    plain = dc.replace(ident, upper=dc.replace(ident.upper, pattern="plain"))
    cam = rgbnt201_cameras()[1]
    for vp in syn.VIEWPOINTS:
        a, _ = render_parts(logo, camera=cam, viewpoint=vp, rng=rng(1), config=CLEAN)
        b, _ = render_parts(plain, camera=cam, viewpoint=vp, rng=rng(1), config=CLEAN)
        assert ((a == UPPER_PAT).any()) == (vp == "front")
        assert not (b == UPPER_PAT).any()


def test_sysu_cam3_shares_cam2_scene():
    cams = sysu_cameras()
    assert cams[3].location == cams[2].location and cams[3].viewpoint_bias == cams[2].viewpoint_bias
    assert {c for c, cam in cams.items() if cam.spectra == ("rgb",)} == {1, 2, 4, 5}
    assert {c for c, cam in cams.items() if cam.spectra == ("nir",)} == {3, 6}
    assert len({cam.location for cam in cams.values()}) == 5


# ----------------------------------------------------------------------------------------------------- export
EXPORT_KW = dict(ids=6, seed=0, config=SyntheticConfig.smoke(), images_per_id_cam=2, progress=False)
NAME_RULES = {  # relative image path -> (pid, camera number in the name), written from METHODS.md section 6
    "sysu-mm01": re.compile(r"^cam([1-6])/(\d{4})/\d{4}\.jpg$"),
    "regdb": re.compile(r"^(?:Visible|Thermal)/(\d+)/\w+_(?:v|t)_\d{5}_\1\.bmp$"),
    "llcm": re.compile(r"^(?:train|test)_(?:vis|nir)/cam([1-9])/(\d{4})/[^/]+\.jpg$"),
    "rgbnt201": re.compile(r"^(?:train_171|test)/(?:RGB|NI|TI)/(\d{6})_cam([1-4])_[^/]+\.jpg$"),
    "rgbnt100": re.compile(r"^rgbir/(?:bounding_box_train|query|bounding_box_test)/(\d+)_c([1-8])_[^/]+\.jpg$"),
    "msvr310": re.compile(
        r"^(?:bounding_box_train|query3|bounding_box_test)/(\d{4})/(?:vis|ni|th)/\1_s(\d{3})_v([0-7])_[^/]+\.jpg$"),
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return {layout: (root / layout, export(layout, root / layout, **{**EXPORT_KW,
                                                                      "config": syn.config_for(layout, "smoke")}))
            for layout in LAYOUTS}  # vehicles (rgbnt100, msvr310) take a VehicleConfig


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / syn.FACTORS).read_text().splitlines()]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_export_files_match_manifest(exports, layout):
    out, manifest = exports[layout]
    assert is_complete_export(out, layout) and not is_complete_export(out, "other")
    on_disk = [p for p in out.rglob("*") if p.is_file()]
    images = [p for p in on_disk if p.suffix in (".jpg", ".bmp")]
    assert len(on_disk) == manifest["files_written"] + 1  # + the manifest itself
    assert len(images) == manifest["images"]
    for rel, n in manifest["index_files"].items():
        text = (out / rel).read_text()
        assert len(text.splitlines()) == n
    lines = _lines(out)
    assert len(lines) == manifest["factor_lines"]
    referenced = {p for line in lines for p in line["paths"].values()}
    assert referenced == {str(p.relative_to(out)).replace(os.sep, "/") for p in images}
    counts = Counter((line["split"], line["modality"], str(line["camid"])) for line in lines)
    assert counts == Counter({(s, m, c): n for s, mods in manifest["counts"].items()
                              for m, cams in mods.items() for c, n in cams.items()})
    rule = NAME_RULES[layout]
    for line in lines:
        for rel in line["paths"].values():
            match = rule.match(rel)
            assert match, rel
            if layout in ("sysu-mm01", "llcm"):
                assert (int(match[2]), int(match[1])) == (line["pid"], line["camid"])
            elif layout == "regdb":
                assert int(match[1]) == line["pid"]
            elif layout in ("rgbnt201", "rgbnt100"):  # camera in the name is 1-based, Sample camid 0-based
                assert (int(match[1]), int(match[2]) - 1) == (line["pid"], line["camid"])
            else:
                assert (int(match[1]), int(match[2]), int(match[3])) == (line["pid"], line["scene"], line["camid"])
        assert line["factors"]["pid"] == line["pid"] and line["factors"]["modality"] == line["modality"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_export_identity_splits(exports, layout):
    out, manifest = exports[layout]
    splits = manifest["splits"]
    train, test = set(splits["train"]), set(splits["test"])
    assert not train & test and train | test | set(splits.get("val", [])) == set(range(1, 7))
    pids_by_split = {}
    for line in _lines(out):
        pids_by_split.setdefault(line["split"], set()).add(line["pid"])
    if layout == "sysu-mm01":
        assert [len(splits[s]) for s in ("train", "val", "test")] == [4, 1, 1]  # round(6 * (296, 99, 96) / 491)
        for name in ("train", "val", "test", "available"):
            text = (out / "exp" / f"{name}_id.txt").read_text()
            assert len(text.splitlines()) == 1
            ids = [int(v) for v in text.strip().split(",")]
            assert ids == (sorted(range(1, 7)) if name == "available" else splits[name])
            from scipy.io import loadmat
            assert loadmat(out / "exp" / f"{name}_id.mat")["id"].ravel().tolist() == ids
        assert pids_by_split == {s: set(splits[s]) for s in ("train", "val", "test")}
    elif layout == "regdb":
        assert len(manifest["trials"]) == 10
        for t, trial in manifest["trials"].items():
            assert len(trial["train"]) == 3 and sorted(trial["train"] + trial["test"]) == list(range(1, 7))
            for split in ("train", "test"):
                for mod, folder in (("visible", "Visible"), ("thermal", "Thermal")):
                    rows = [r.split(" ") for r in (out / f"idx/{split}_{mod}_{t}.txt").read_text().splitlines()]
                    assert all(len(r) == 2 and r[0].startswith(folder + "/") for r in rows)
                    pid_of = {int(r[0].split("/")[1]): int(r[1]) for r in rows}
                    assert pid_of == {p: i for i, p in enumerate(trial[split])}  # labels 0..n-1 by sorted pid
                    assert len(rows) == manifest["images_per_id_cam"] * len(trial[split])  # images per id
        assert len({tuple(t["train"]) for t in manifest["trials"].values()}) > 1
    elif layout == "llcm":
        assert (out / "idx/test_id.txt").read_text().strip() == ",".join(map(str, splits["test"]))
        assert not list(out.glob("test_nir/cam3")) and not list(out.glob("train_nir/cam3"))
        for tag in ("vis", "nir"):
            rows = [r.split(" ") for r in (out / f"idx/train_{tag}.txt").read_text().splitlines()]
            assert {int(r[1]) for r in rows} <= set(range(len(splits["train"])))
            assert all((out / r[0]).is_file() and r[0].startswith(f"train_{tag}/") for r in rows)
    elif layout == "rgbnt100":
        for line in _lines(out):
            w, h = Image.open(out / line["paths"]["rgb"]).size
            assert (w, h) == (768, 128) and line["panel"] == {"rgb": 0, "nir": 1, "tir": 2}  # the real geometry
        assert pids_by_split["query"] == test and pids_by_split["gallery"] == test
    elif layout == "msvr310":
        assert set(splits["query"]) <= test and pids_by_split["query"] == set(splits["query"])
        gallery_scenes = {(ln["pid"], ln["scene"]) for ln in _lines(out) if ln["split"] == "gallery"}
        for line in (ln for ln in _lines(out) if ln["split"] == "query"):  # some gallery match in another scene
            assert any(p == line["pid"] and s != line["scene"] for p, s in gallery_scenes)
    if layout in ("rgbnt201", "msvr310"):
        for line in _lines(out):  # one capture, same file name in the three modality folders
            names = {Path(p).name for p in line["paths"].values()}
            assert len(names) == 1 and line["modality"] == TRIPLET


def test_sysu_export_not_every_pid_in_every_cam(exports):
    out, _ = exports["sysu-mm01"]
    present = {(line["pid"], line["camid"]) for line in _lines(out)}
    assert len(present) < 6 * 6
    for pid in range(1, 7):  # but every identity has both modalities
        cams = {c for p, c in present if p == pid}
        assert cams & {1, 2, 4, 5} and cams & {3, 6}


def test_export_deterministic(tmp_path, exports):
    out, _ = exports["rgbnt201"]
    again = export("rgbnt201", tmp_path / "a", **EXPORT_KW)
    skip = (syn.MANIFEST,)
    assert tree_digest(out, skip) == tree_digest(tmp_path / "a", skip)
    assert again["counts"] == exports["rgbnt201"][1]["counts"]
    export("rgbnt201", tmp_path / "b", **{**EXPORT_KW, "seed": 1})
    assert tree_digest(out, skip) != tree_digest(tmp_path / "b", skip)


def test_export_refuses_foreign_nonempty_dir(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty") as err:
        export("regdb", tmp_path, **EXPORT_KW)
    assert str(tmp_path) in str(err.value) and "overwrite=True" in str(err.value)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    export("regdb", tmp_path, **EXPORT_KW, overwrite=True)
    assert not (tmp_path / "mine.txt").exists() and is_complete_export(tmp_path, "regdb")
    export("regdb", tmp_path, **EXPORT_KW)  # a previous export of the same layout is replaced
    with pytest.raises(FileExistsError, match="regdb export"):
        export("llcm", tmp_path, **EXPORT_KW)


def test_interrupted_export_is_detected(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_save = syn._save

    def failing_save(arr, path):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        real_save(arr, path)

    monkeypatch.setattr(syn, "_save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        export("sysu-mm01", tmp_path, **EXPORT_KW)
    assert not is_complete_export(tmp_path) and not (tmp_path / syn.MANIFEST).exists()
    monkeypatch.setattr(syn, "_save", real_save)
    export("sysu-mm01", tmp_path, **EXPORT_KW)  # a half-written export of the same layout is replaced
    assert is_complete_export(tmp_path, "sysu-mm01")


@pytest.mark.parametrize("kwargs, match", [(dict(ids=1), "ids must be"), (dict(images_per_id_cam=0), "images_per")])
def test_export_argument_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        export("rgbnt201", tmp_path, **{**EXPORT_KW, **kwargs})
    with pytest.raises(ValueError, match="layout must be one of"):
        export("market1501", tmp_path)


def test_split_counts_keep_real_proportions():
    assert syn._split_counts(491, (296, 99, 96), (1, 1, 1)) == [296, 99, 96]
    assert syn._split_counts(201, (171, 30), (1, 1)) == [171, 30]
    assert syn._split_counts(1064, (713, 351), (1, 1)) == [713, 351]
    assert syn._split_counts(3, (296, 99, 96), (1, 1, 1)) == [1, 1, 1]


def test_cli_tiny_export(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "workbench.data.synthetic", "--layout", "rgbnt201", "--out", str(out), "--ids", "6",
           "--seed", "3", "--height", "64", "--width", "32", "--images-per-id-cam", "1", "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / syn.MANIFEST).read_text())
    assert manifest["ids"] == 6 and manifest["seed"] == 3 and manifest["config"]["height"] == 64
    assert f"wrote {manifest['images']} images" in res.stdout
    (tmp_path / "x").write_text("")
    res = subprocess.run(cmd[:6] + [str(tmp_path)] + cmd[7:], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "not empty" in res.stderr


def test_medium_difficulty_lies_halfway_between_default_and_hard():
    from workbench.data.synthetic import SyntheticConfig

    d, m, h = SyntheticConfig.default(), SyntheticConfig.medium(), SyntheticConfig.hard()
    for name in ("occlusion_rate", "noise", "viewpoint_spread", "garment_sharing"):
        assert getattr(m, name) == pytest.approx((getattr(d, name) + getattr(h, name)) / 2)
    assert SyntheticConfig.from_difficulty("medium") == m


# ----------------------------------------------------------------------------------------------------- thermal physics
def test_thermal_follows_insulation_emissivity_and_skin_temperature():
    """Noise, occluders and gain jitter off: the automatic gain maps [ambient - 4, 37] deg C linearly onto grey
    0.12..0.84, so changing one material property of one part shifts that part's interior (away from the blur) by
    exactly `255 * 0.72 * dT / (41 - ambient)` grey levels, with the apparent temperature
    `T = eps * (amb + (skin - amb) * (1 - insulation)) + (1 - eps) * amb` (skin: insulation 0, eps 0.98)."""
    cfg = SyntheticConfig(noise=0.0, occlusion_rate=0.0, illumination_jitter=0.0)
    cam = rgbnt201_cameras()[1]
    skin_part = PART_NAMES.index("skin")
    ident = _with(make_identities(4, 0, cfg)[0])
    ident = dc.replace(ident, upper=dc.replace(ident.upper, pattern="plain", insulation=0.2, emissivity=0.95))
    amb, skin = cam.ambient, ident.skin_temp
    scale = 255 * 0.72 / (37.0 - (amb - 4.0))

    def tir(idn):
        ims, _ = render_triplet(idn, camera=cam, viewpoint="front", rng=rng(3), config=cfg)
        return ims["tir"][..., 0].astype(float)

    labels = render_parts(ident, camera=cam, viewpoint="front", rng=rng(3), config=cfg)[0]
    reach = np.ones((3, 3), bool)  # the 3 x 3 thermal blur at 64 pixels wide
    upper, face = (ndimage.binary_erosion(labels == p, reach) for p in (UPPER, skin_part))
    assert upper.sum() > 200 and face.sum() > 20
    base = tir(ident)
    assert base[face].mean() > base[upper].mean() + 10  # skin is warmer than insulated clothing

    def shift(**upper_fields):
        other = dc.replace(ident, upper=dc.replace(ident.upper, **upper_fields))
        return tir(other)[upper] - base[upper]

    # more insulation: colder by eps (skin - amb) d_insulation
    d = shift(insulation=0.7)
    assert np.abs(d - scale * 0.95 * (skin - amb) * (0.2 - 0.7)).max() <= 1.0
    # lower emissivity: the fabric reflects the colder surroundings
    d = shift(emissivity=0.6)
    assert np.abs(d - scale * (0.6 - 0.95) * (skin - amb) * (1 - 0.2)).max() <= 1.0
    # warmer skin: uninsulated skin follows it almost fully (eps 0.98), the garment by eps (1 - insulation)
    warm = tir(dc.replace(ident, skin_temp=skin + 2.0))
    assert np.abs(warm[face] - base[face] - scale * 0.98 * 2.0).max() <= 1.0
    assert np.abs(warm[upper] - base[upper] - scale * 0.95 * 0.8 * 2.0).max() <= 1.0
