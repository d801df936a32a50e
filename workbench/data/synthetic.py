"""Synthetic multi-modal ReID data: procedural people and vehicles in visible, near-infrared and thermal light.

The embedded default dataset of the workbench (issue 2, section 2; vehicles: issue 21). This module is the third
stage of the generator, world -> render -> export: it writes the six real on-disk layouts of METHODS.md section 6
(sysu-mm01, regdb, llcm, rgbnt201: people; rgbnt100, msvr310: vehicles) so the real loaders read synthetic data
through the code path used for real data. It imports both earlier stages and re-exports their public names:

* people: `workbench.data.synthetic_world` (config, identities, cameras) and `workbench.data.synthetic_render`;
* vehicles: `workbench.data.synthetic_vehicle_world` (config, vehicles, road cameras, scenes, driving state) and
  `workbench.data.synthetic_vehicle_render`.

An identity is a frozen set of latent attributes (a person's build, skin, hair, garments and accessories; a
vehicle's body type, proportions, paint, lights, wheels and marks); an image adds nuisance (camera, light,
viewpoint, pose, occluder, noise; for vehicles also day or night and how long the vehicle has been driving, which
its thermal image shows). Identity is shared across modalities, style is modality-specific: NIR reflectance is drawn
independently of visible hue, so colour does not identify a person across modalities, while shape, pattern and
accessories do; most vehicle paints look alike in NIR, while body shape, glass, lights, wheels and marks do not.
This is the structure DAKD, ICRE and SD2-ReID exploit (METHODS.md sections 1.1, 2.6, 4).

Camera presets: visible-infrared, as SYSU-MM01 (visible cams 1, 2, 4, 5; near-infrared cams 3, 6; cam 3 at the
location of cam 2) [CODE: wuancong/SYSU-MM01 README]; aligned RGB/NIR/TIR triplets, as RGBNT201 (4 cams); eight road
cameras for RGBNT100 (one viewpoint each) and MSVR310 (whose captures happen in day or night scenes).

Next to the layout, an export writes `synthetic_factors.jsonl` (one JSON line per image, or per triplet for the
multi-modal layouts: relative paths, pid, camid in the `Sample` convention the loaders parse, modality, split,
scene, ground-truth factors) and, last, `synthetic_manifest.json` (its presence marks a complete export).

    python -m workbench.data.synthetic --layout sysu-mm01 --out /tmp/sysu --ids 40 --seed 0
    python -m workbench.data.synthetic --layout msvr310 --out /tmp/msvr --difficulty medium
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workbench.data.samples import TRIPLET
from workbench.data.synthetic_render import (
    PART_NAMES,
    render,
    render_parts,
    render_spectra,
    render_triplet,
)
from workbench.data.synthetic_vehicle_render import VEHICLE_PARTS, render_vehicle, render_vehicle_parts
from workbench.data.synthetic_vehicle_world import (
    VEHICLE_VIEWPOINTS,
    RoadCamera,
    RoadScene,
    Vehicle,
    VehicleConfig,
    VehicleState,
    draw_scene,
    draw_state,
    make_vehicles,
    msvr310_cameras,
    rgbnt100_cameras,
)
from workbench.data.synthetic_world import (
    VIEWPOINTS,
    Accessory,
    Camera,
    Garment,
    Identity,
    SyntheticConfig,
    llcm_cameras,
    make_identities,
    regdb_cameras,
    rgbnt201_cameras,
    sysu_cameras,
)

__all__ = [
    "LAYOUTS", "PART_NAMES", "VEHICLE_LAYOUTS", "VEHICLE_PARTS", "VEHICLE_VIEWPOINTS", "VIEWPOINTS", "Accessory",
    "Camera", "Garment", "Identity", "RoadCamera", "RoadScene", "SyntheticConfig", "Vehicle", "VehicleConfig",
    "VehicleState", "config_for", "draw_scene", "draw_state", "export", "is_complete_export", "layout_cameras",
    "make_identities", "make_vehicles", "msvr310_cameras", "render", "render_parts", "render_triplet",
    "render_vehicle", "render_vehicle_parts", "rgbnt100_cameras", "rgbnt201_cameras", "sysu_cameras",
    "vehicle_sheet",
]  # fmt: skip

LAYOUTS = ("sysu-mm01", "regdb", "llcm", "rgbnt201", "rgbnt100", "msvr310")
VEHICLE_LAYOUTS = ("rgbnt100", "msvr310")  # rendered with the vehicle world; the others with people
DIFFICULTIES = ("easy", "default", "medium", "hard", "smoke")
MANIFEST = "synthetic_manifest.json"
FACTORS = "synthetic_factors.jsonl"
INCOMPLETE = ".synthetic_export_incomplete"  # present while an export is being written



def layout_cameras(layout: str) -> dict[int, Camera] | dict[int, RoadCamera]:
    """The cameras of a layout, keyed by the number the dataset uses (RGBNT100 1..8, MSVR310 0..7): `Camera`s for
    the person layouts, `RoadCamera`s for the vehicle layouts."""
    table: dict[str, Callable[[], Any]] = {
        "sysu-mm01": sysu_cameras, "regdb": regdb_cameras, "llcm": llcm_cameras, "rgbnt201": rgbnt201_cameras,
        "rgbnt100": rgbnt100_cameras, "msvr310": msvr310_cameras,
    }
    if layout not in table:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return table[layout]()


def config_for(layout: str, difficulty: str = "default", **overrides: Any) -> SyntheticConfig | VehicleConfig:
    """The config of a difficulty preset for a layout: a `VehicleConfig` for rgbnt100 / msvr310, else a
    `SyntheticConfig`. `difficulty` is one of `DIFFICULTIES`; `overrides` set knobs (e.g. height=, width=)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES} (or a dict {{'preset': ..., '<knob>': value}}), "
                         f"got {difficulty!r}")
    cls = VehicleConfig if layout in VEHICLE_LAYOUTS else SyntheticConfig
    return getattr(cls, difficulty)(**overrides)



# ===================================================================================================== export plans
@dataclass
class _Item:
    """One render job: one pose of one identity, written as one or more files and one or more factor lines."""

    pid: int
    camera: Camera | RoadCamera
    kind: str  # "single" | "pair" (RegDB visible + thermal) | "triplet" | "panel" (RGBNT100)
    files: dict[str, str]  # spectrum -> relative path ("panel" -> path for RGBNT100)
    modality: str  # line modality for "single" ("rgb" | "ir"), TRIPLET otherwise
    camid: int  # camid in the Sample convention (what the loader parses)
    split: str
    key: tuple[int, ...]
    scene: int | None = None
    viewpoint: str | None = None
    conditions: RoadScene | None = None  # vehicles: the capture's light and temperatures
    state: VehicleState | None = None  # vehicles: driving time, braking, headlights


@dataclass
class _Plan:
    items: list[_Item] = field(default_factory=list)
    index_files: dict[str, list[str]] = field(default_factory=dict)  # relative path -> lines
    splits: dict[str, list[int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# RGBNT100 file geometry [CODE: 924973292/DeMo, data/datasets/bases.py::read_image crops fixed 256-pixel panels at
# x = 0/256/512 of a 768x128 file]: each rendered panel is resized to 128x256 (H x W) so the reference readers work.
RGBNT100_PANEL_HW = (128, 256)
# Vehicle defaults keep the real identity counts (RGBNT100 100, MSVR310 310) with fewer images per identity, so a
# baseline trains on a CPU in minutes: RGBNT100 ~20 triplets per training identity (real ~174), MSVR310 ~7 (real
# ~6.7); data_cards/synthetic.md compares them with the real statistics.
_DEFAULT_IDS = {"sysu-mm01": 100, "regdb": 100, "llcm": 100, "rgbnt201": 60, "rgbnt100": 100, "msvr310": 310}
_DEFAULT_K = {"sysu-mm01": 6, "regdb": 10, "llcm": 4, "rgbnt201": 6, "rgbnt100": 3, "msvr310": 2}
_RGBNT100_QUERY_SHARE = 1715 / 8575  # query / gallery triplets of the real test split [METHODS.md 5.5, verify]
_MSVR310_QUERIES = 52 / 155  # query identities per test identity, one query triplet each [METHODS.md 5.6, verify]
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


def _plan_rgbnt100(pids: list[int], k: int, rng: np.random.Generator, seed: int, config: VehicleConfig) -> _Plan:
    # [CODE: 924973292/DeMo data/datasets/RGBNT100.py] rgbir/{bounding_box_train,query,bounding_box_test}/
    # <pid>_c<cam>_<rest>.jpg, one file = [RGB | NIR | TIR] panels side by side; cameras 1..8 (0-based in Sample).
    # Each vehicle passes most of the 8 cameras (viewpoints); per camera one session (a scene: time of day, air
    # temperature, light) with 1 or more captures, each with its own driving state. Test identities get separate
    # query captures at random cameras, about a fifth of their gallery count as in the real split.
    if max(pids) > 600:
        raise ValueError(f"rgbnt100 pids must be in 1..600 (the reference loader asserts it); got ids={max(pids)}")
    cams = rgbnt100_cameras()
    train, test = _split_ids(pids, _split_counts(len(pids), _PROPORTIONS["rgbnt100"], (1, 1)), rng)
    plan = _Plan(splits={"train": train, "test": test, "query": test, "gallery": test})
    for pid in pids:
        seq = 0
        is_train = pid in train
        folder, split = ("bounding_box_train", "train") if is_train else ("bounding_box_test", "gallery")
        sessions = {cam: draw_scene(rng, config) for cam in _subset(rng, list(range(1, 9)), 0.85, 4)}
        for cam, scene in sessions.items():
            for _ in range(_count(rng, k)):
                seq += 1
                plan.items.append(_Item(pid, cams[cam], "panel", {"panel": f"rgbir/{folder}/{pid:04d}_c{cam}_{seq:04d}.jpg"},
                                        TRIPLET, cam - 1, split, (seed, 5, pid, cam, seq), conditions=scene,
                                        state=draw_state(rng, config, scene)))
        if not is_train:
            n_query = max(1, round(seq * _RGBNT100_QUERY_SHARE))
            for cam in sorted(int(c) for c in rng.choice(sorted(sessions), min(n_query, len(sessions)), replace=False)):
                seq += 1
                scene = draw_scene(rng, config)  # another passage: its own light and temperatures
                plan.items.append(_Item(pid, cams[cam], "panel", {"panel": f"rgbir/query/{pid:04d}_c{cam}_{seq:04d}.jpg"},
                                        TRIPLET, cam - 1, "query", (seed, 5, pid, cam, seq), conditions=scene,
                                        state=draw_state(rng, config, scene)))
    return plan


def _plan_msvr310(pids: list[int], k: int, rng: np.random.Generator, seed: int, config: VehicleConfig) -> _Plan:
    # [CODE: 924973292/DeMo data/datasets/msvr310.py] {bounding_box_train,query3,bounding_box_test}/<vid:04d>/
    # {vis,ni,th}/<vid:04d>_s<scene:03d>_v<cam>_<rest>.jpg; several scenes per identity (junk: same id, same scene).
    # A scene is a place at a time (background, day / dusk / night, temperatures, street light) shared by all the
    # vehicles in it; each vehicle appears in 2 or 3 scenes, seen by 1 to 3 cameras per scene. Queries come from a
    # scene that also holds gallery captures of the same vehicle, so the junk rule has work to do.
    if max(pids) > 9999:
        raise ValueError(f"msvr310 vehicle ids have 4 digits; ids must be <= 9999, got {max(pids)}")
    cams = msvr310_cameras()
    train, test = _split_ids(pids, _split_counts(len(pids), _PROPORTIONS["msvr310"], (1, 1)), rng)
    n_query = min(len(test), max(1, round(len(test) * _MSVR310_QUERIES)))
    query_ids = sorted(int(p) for p in rng.choice(test, n_query, replace=False))
    n_scenes = min(max(4, round(len(pids) / 6)), 999)
    scenes = {s: draw_scene(rng, config, scene=s, location=f"msvr310-scene-{s:03d}") for s in range(1, n_scenes + 1)}
    plan = _Plan(splits={"train": train, "test": test, "query": query_ids, "gallery": test})
    scenes_of: dict[str, list[int]] = {}
    for pid in pids:
        visited = sorted(int(s) for s in rng.choice(np.arange(1, n_scenes + 1), int(rng.integers(2, 4)), replace=False))
        scenes_of[str(pid)] = visited
        folder, split = ("bounding_box_train", "train") if pid in train else ("bounding_box_test", "gallery")
        seq = 0
        for scene in visited:
            for cam in sorted(int(c) for c in rng.choice(8, int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2])),
                                                         replace=False)):
                for _ in range(_count(rng, k)):
                    seq += 1
                    name = f"{pid:04d}_s{scene:03d}_v{cam}_{seq:03d}.jpg"
                    files = _triplet_files(tuple(f"{folder}/{pid:04d}/{m}" for m in ("vis", "ni", "th")), name)
                    plan.items.append(_Item(pid, cams[cam], "triplet", files, TRIPLET, cam, split,
                                            (seed, 6, pid, cam, seq), scene=scene, conditions=scenes[scene],
                                            state=draw_state(rng, config, scenes[scene])))
        if pid in query_ids:
            scene, cam = visited[0], int(rng.integers(8))
            seq += 1
            name = f"{pid:04d}_s{scene:03d}_v{cam}_{seq:03d}.jpg"
            files = _triplet_files(tuple(f"query3/{pid:04d}/{m}" for m in ("vis", "ni", "th")), name)
            plan.items.append(_Item(pid, cams[cam], "triplet", files, TRIPLET, cam, "query", (seed, 6, pid, cam, seq),
                                    scene=scene, conditions=scenes[scene], state=draw_state(rng, config, scenes[scene])))
    plan.extra["scenes"] = scenes_of
    plan.extra["scene_conditions"] = {str(sid): {"time_of_day": sc.time_of_day, "ambient": sc.ambient, "sun": sc.sun,
                                                 "street_light": sc.street_light} for sid, sc in scenes.items()}
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
           config: SyntheticConfig | VehicleConfig | None = None, images_per_id_cam: int | None = None,
           progress: bool = True,
           overwrite: bool = False, panel_hw: tuple[int, int] | None = RGBNT100_PANEL_HW) -> dict[str, Any]:
    """Write a synthetic dataset in the on-disk layout of a real one (METHODS.md section 6).

    Args:
        layout: one of `LAYOUTS`.
        out: target directory; must be empty, absent, or a previous export of the same layout (replaced).
        ids: number of identities (default per layout, e.g. 100 for sysu-mm01, 310 for msvr310); split in the
            real proportions.
        seed: everything (identities, splits, images) is a deterministic function of it.
        config: a `SyntheticConfig` for the person layouts, a `VehicleConfig` for rgbnt100 and msvr310 (default:
            the layout's `config_for(layout)`).
        images_per_id_cam: images (or triplets) per identity and camera; SYSU/LLCM/RGBNT201/RGBNT100 draw between
            half of it and it, MSVR310 per (scene, camera); RegDB: images per modality per identity (10 in the real
            dataset).
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
    config = config_for(layout) if config is None else config
    wanted = VehicleConfig if layout in VEHICLE_LAYOUTS else SyntheticConfig
    if not isinstance(config, wanted):
        raise ValueError(f"the {layout} layout renders {'vehicles' if wanted is VehicleConfig else 'people'} and "
                         f"needs a {wanted.__name__}, got a {type(config).__name__}; pass "
                         f"config=config_for({layout!r}, difficulty) or a {wanted.__name__}(...)")
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

    if isinstance(config, VehicleConfig):
        identities: dict[int, Identity | Vehicle] = {v.pid: v for v in make_vehicles(ids, seed, config)}
    else:
        identities = {ident.pid: ident for ident in make_identities(ids, seed, config)}
    pids = sorted(identities)
    rng = np.random.default_rng([seed, LAYOUTS.index(layout), 0x5EED])
    if layout == "regdb":
        plan = _plan_regdb(pids, k, rng, seed, identities)
    elif layout in VEHICLE_LAYOUTS:
        plan = {"rgbnt100": _plan_rgbnt100, "msvr310": _plan_msvr310}[layout](pids, k, rng, seed, config)
    else:
        planner = {"sysu-mm01": _plan_sysu, "llcm": _plan_llcm, "rgbnt201": _plan_rgbnt201}[layout]
        plan = planner(pids, k, rng, seed)

    from tqdm import tqdm

    counts: dict[str, dict[str, dict[str, int]]] = {}
    time_of_day: dict[str, dict[str, int]] = {}  # vehicles: captures per split and time of day
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
                if "time_of_day" in line["factors"]:
                    tod = time_of_day.setdefault(line["split"], {})
                    tod[line["factors"]["time_of_day"]] = tod.get(line["factors"]["time_of_day"], 0) + 1
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
        **({"time_of_day": time_of_day} if layout in VEHICLE_LAYOUTS else {}),
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


def _render_item(item: _Item, identity: Identity | Vehicle, config: SyntheticConfig | VehicleConfig, out: Path,
                 made_dirs: set[Path], panel_hw: tuple[int, int] | None = None) -> tuple[list[dict[str, Any]], int]:
    rng = np.random.default_rng(list(item.key))
    spectra = ("rgb", "nir", "tir") if item.kind in ("triplet", "panel") else tuple(item.files)
    if isinstance(identity, Vehicle):
        assert isinstance(config, VehicleConfig) and isinstance(item.camera, RoadCamera)
        assert item.conditions is not None and item.state is not None
        images, factors = render_vehicle(identity, camera=item.camera, scene=item.conditions, state=item.state,
                                         viewpoint=item.viewpoint, rng=rng, config=config)
    else:
        assert isinstance(config, SyntheticConfig) and isinstance(item.camera, Camera)
        images, factors = render_spectra(identity, spectra, camera=item.camera, viewpoint=item.viewpoint, rng=rng,
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


# ===================================================================================================== figure
def vehicle_sheet(body_types: Sequence[str] = ("sedan", "suv", "truck"), cameras: Sequence[int] = (1, 5, 3, 7),
                  *, seed: int = 0, config: VehicleConfig | None = None, minutes: float = 20.0,
                  ) -> tuple[list[list[np.ndarray]], list[str], list[str]]:
    """Images for a figure of vehicles across RGBNT100-like cameras and modalities, by day and by night.

    One vehicle of each body type (the first of `make_vehicles(60, seed)`), seen from each camera's own viewpoint, each
    capture rendered twice with the same pose: a sunny day and a night under a street lamp with headlights on
    (driving for `minutes` both times).

    Returns:
        rows (vehicle x [day, night]) of images (H, W, 3) uint8, in column order camera x (RGB, NIR, TIR); the row
        labels; the column labels.
    """
    config = config or VehicleConfig(occlusion_rate=0.0)
    fleet = make_vehicles(60, seed, config)
    cams = rgbnt100_cameras()
    picked = []
    for body in body_types:
        match = [v for v in fleet if v.body_type == body]
        if not match:
            raise ValueError(f"no {body!r} among the first 60 vehicles of seed {seed}; body_types must be among "
                             f"{sorted({v.body_type for v in fleet})}")
        picked.append(match[0])
    scenes = {"day": RoadScene(time_of_day="day", ambient=22.0, sun=0.8, sky_drop=20.0, light=1.0,
                               street_light="none", light_x=0.5),
              "night": RoadScene(time_of_day="night", ambient=12.0, sun=0.0, sky_drop=15.0, light=0.11,
                                 street_light="sodium", light_x=0.35)}
    rows, labels = [], []
    for v in picked:
        for tod, scene in scenes.items():
            state = VehicleState(driving_minutes=minutes, braking=0.6, headlights=tod == "night")
            row = []
            for cam in cameras:
                view = VEHICLE_VIEWPOINTS[int(np.argmax(cams[cam].viewpoint_bias))]  # the camera's own viewpoint
                images, _ = render_vehicle(v, camera=cams[cam], scene=scene, state=state, viewpoint=view,
                                           rng=np.random.default_rng([seed, v.pid, cam]), config=config)
                row += [images[m] for m in ("rgb", "nir", "tir")]
            rows.append(row)
            labels.append(f"{v.body_type} #{v.pid} ({v.paint}), {tod}")
    names = {1: "front", 2: "rear", 3: "left", 4: "right", 5: "front-left", 6: "rear-left", 7: "rear-right",
             8: "front-right"}
    columns = [f"cam {c} ({names[c]}) {m}" for c in cameras for m in ("RGB", "NIR", "TIR")]
    return rows, labels, columns


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
        config = config_for(args.layout, args.difficulty, **size)
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
