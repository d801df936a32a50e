"""RGBNT201 and RGBNT100 loaders: aligned RGB / near-infrared / thermal-infrared triplets.

RGBNT201 (Zheng et al., "Robust Multi-Modality Person Re-identification", AAAI 2021): 201 people, 4 cameras.
Layout (METHODS.md 6.4): `train_171/{RGB,NI,TI}/<pid>_cam<c>_<rest>.jpg` and `test/...`, the same file name in
the three folders. Identity = the leading digits, camera = the digits after "cam", stored 0-based
(`camid - 1`) as in [CODE: 924973292/TOP-ReID, data/datasets/RGBNT201.py]. Protocol (METHODS.md 5.4): query =
gallery = the whole test set, Market-style junk rule (same id and camera, which also drops the self-match).

RGBNT100 (Li et al., "Multi-Spectral Vehicle Re-Identification: A Challenge", AAAI 2020): 100 vehicles,
8 cameras. Layout (METHODS.md 6.5): `rgbir/{bounding_box_train,query,bounding_box_test}/*.jpg`, each file one
image of three equal panels side by side [RGB | NIR | TIR] (768x128 for the real data). Identity and camera
from the regex `([-\\d]+)_c([-\\d]+)` on the file name, camera stored 0-based, identities 1..600 and cameras
1..8 required [CODE: 924973292/TOP-ReID, data/datasets/RGBNT100.py asserts them]. One file per triplet:
`Sample.paths` maps the three modalities to the same file and `Sample.panel = {"rgb": 0, "nir": 1, "tir": 2}`.
Protocol (METHODS.md 5.5): query folder against bounding_box_test, Market-style junk rule.

Both loaders sort the listings (the reference uses unsorted `glob`) and relabel training ids by sorted id (the
reference enumerates a Python set).
"""

from __future__ import annotations

import re
from pathlib import Path

from workbench.data.base import (
    DatasetFormatError,
    ReIDDataset,
    list_images,
    relabel,
    require_dir,
    require_root,
    unlabel,
    verify_images,
)
from workbench.data.samples import MM_MODALITIES, TRIPLET, Sample

RGBNT201_FOLDERS = {"rgb": "RGB", "nir": "NI", "tir": "TI"}
RGBNT100_PANELS = {"rgb": 0, "nir": 1, "tir": 2}
_RGBNT201_NAME = re.compile(r"(\d+)_cam(\d+)(?:_.*)?")
_RGBNT100_NAME = re.compile(r"([-\d]+)_c([-\d]+)")  # [CODE: TOP-ReID, RGBNT100.py, pattern]


def _rgbnt201_split(split_dir: Path) -> list[Sample]:
    folders = {
        m: require_dir(split_dir / name, f"the {m.upper()} folder {name}/ of RGBNT201")
        for m, name in RGBNT201_FOLDERS.items()
    }
    names = {m: [p.name for p in list_images(d)] for m, d in folders.items()}
    sets = {m: set(v) for m, v in names.items()}
    for m in ("nir", "tir"):
        for have, lacking in (("rgb", m), (m, "rgb")):
            if sets[have] - sets[lacking]:
                name = min(sets[have] - sets[lacking])
                raise FileNotFoundError(
                    f"{folders[lacking] / name} is missing; expected the same file names in RGB/, NI/ and TI/ "
                    f"({folders[have] / name} exists). Re-copy the dataset."
                )
    samples = []
    for name in names["rgb"]:
        m = _RGBNT201_NAME.fullmatch(Path(name).stem)
        if m is None:
            raise DatasetFormatError(
                f"cannot parse {folders['rgb'] / name}: expected '<pid>_cam<c>_<rest>.jpg' (e.g. 000001_cam1_0_00.jpg)"
            )
        pid, cam = int(m.group(1)), int(m.group(2))
        if cam < 1:
            raise DatasetFormatError(
                f"{folders['rgb'] / name}: camera {cam} in the file name; expected cam1..cam4"
            )
        paths = {mod: str(folders[mod] / name) for mod in MM_MODALITIES}
        samples.append(Sample(paths=paths, pid=pid, camid=cam - 1, modality=TRIPLET))
    if not samples:
        raise DatasetFormatError(
            f"{folders['rgb']} holds no images; expected '<pid>_cam<c>_<rest>.jpg' files"
        )
    return samples


def load_rgbnt201(root: str | Path, *, verify: bool = True) -> ReIDDataset:
    """Load RGBNT201 from `root` (the folder holding train_171/ and test/).

    Args:
        root: dataset root.
        verify: open every image's header with PIL.
    """
    root = require_root("rgbnt201", root)
    train = relabel(_rgbnt201_split(require_dir(root / "train_171", "the training folder train_171/")))
    test = unlabel(_rgbnt201_split(require_dir(root / "test", "the test folder test/ (query = gallery)")))
    overlap = sorted({s.pid for s in train} & {s.pid for s in test})
    if overlap:
        raise DatasetFormatError(f"{root / 'train_171'} and {root / 'test'} share identities {overlap[:10]}")
    if verify:
        verify_images(train)
        verify_images(test)
    return ReIDDataset(
        name="rgbnt201",
        root=root,
        kind="mm",
        modalities=MM_MODALITIES,
        train=train,
        query=test,
        gallery=test,
        protocol="market",
        options={},
    )


def _rgbnt100_split(folder: Path) -> list[Sample]:
    samples = []
    for path in list_images(folder):
        m = _RGBNT100_NAME.search(path.name)
        if m is None or not re.fullmatch(r"-?\d+", m.group(1)) or not re.fullmatch(r"-?\d+", m.group(2)):
            raise DatasetFormatError(
                f"cannot parse {path}: expected '<pid>_c<cam>_<rest>.jpg' (e.g. 0001_c003_...)"
            )
        pid, cam = int(m.group(1)), int(m.group(2))
        if not 1 <= pid <= 600 or not 1 <= cam <= 8:
            raise DatasetFormatError(
                f"{path}: identity {pid} / camera {cam}; expected identities 1..600 and cameras 1..8 (RGBNT100)"
            )
        samples.append(
            Sample(
                paths={m_: str(path) for m_ in MM_MODALITIES},
                pid=pid,
                camid=cam - 1,
                modality=TRIPLET,
                panel=dict(RGBNT100_PANELS),
            )
        )
    if not samples:
        raise DatasetFormatError(
            f"{folder} holds no images; expected '<pid>_c<cam>_<rest>.jpg' three-panel files"
        )
    return samples


def load_rgbnt100(root: str | Path, *, verify: bool = True) -> ReIDDataset:
    """Load RGBNT100 from `root` (the folder holding rgbir/, or rgbir/ itself).

    Args:
        root: dataset root.
        verify: open every image's header with PIL and check the width divides into three panels.
    """
    root = require_root("rgbnt100", root)
    base = root / "rgbir" if (root / "rgbir").is_dir() or not (root / "bounding_box_train").is_dir() else root
    what = "the {} folder rgbir/{}/ of RGBNT100"
    train = relabel(
        _rgbnt100_split(
            require_dir(base / "bounding_box_train", what.format("training", "bounding_box_train"))
        )
    )
    query = unlabel(_rgbnt100_split(require_dir(base / "query", what.format("query", "query"))))
    gallery = unlabel(
        _rgbnt100_split(require_dir(base / "bounding_box_test", what.format("gallery", "bounding_box_test")))
    )
    if verify:
        for pool in (train, query, gallery):
            verify_images(pool, n_panels=3)
    return ReIDDataset(
        name="rgbnt100",
        root=root,
        kind="mm",
        modalities=MM_MODALITIES,
        train=train,
        query=query,
        gallery=gallery,
        protocol="market",
        options={},
    )
