"""MSVR310 loader (Zheng et al., "Multi-spectral Vehicle Re-identification with Cross-directional Consistency
Network and a High-quality Benchmark", 2022): 310 vehicles, RGB / NIR / TIR triplets, several scenes.

Layout (METHODS.md 6.6): `{bounding_box_train,query3,bounding_box_test}/<vid>/{vis,ni,th}/<file>`, the same file
name in the three modality folders, file name `<vid>_s<scene>_v<cam>_<rest>.jpg`. The reference reads
`vid = int(f[0:4])`, `scene = int(f[6:9])`, `cam = int(f[11])` (0..7 asserted) [CODE: 924973292/TOP-ReID,
data/datasets/msvr310.py]; we parse the same fields with a regular expression and check that the identity in the
name equals the identity folder.

Protocol (METHODS.md 5.6, PROTOCOLS.md 5.3, `eval_func_msrv`): query = `query3`, gallery = `bounding_box_test`;
junk rule = same identity and same scene (`Sample.scene`), whatever the camera.
"""

from __future__ import annotations

import re
from pathlib import Path

from workbench.data.base import (
    DatasetFormatError,
    ReIDDataset,
    list_images,
    list_subdirs,
    relabel,
    require_dir,
    require_root,
    unlabel,
    verify_images,
)
from workbench.data.samples import MM_MODALITIES, TRIPLET, Sample

FOLDERS = {"rgb": "vis", "nir": "ni", "tir": "th"}
SPLITS = {"train": "bounding_box_train", "query": "query3", "gallery": "bounding_box_test"}
_NAME = re.compile(r"(\d+)_s(\d+)_v(\d+)(?:_.*)?")
_VID_DIR = re.compile(r"\d+")


def _split(folder: Path) -> list[Sample]:
    samples = []
    for m_dir, vid_dir in list_subdirs(folder, _VID_DIR):
        vid = int(m_dir.group(0))
        mods = {
            m: require_dir(vid_dir / name, f"the {name}/ folder of vehicle {vid}")
            for m, name in FOLDERS.items()
        }
        names = {m: {p.name for p in list_images(d)} for m, d in mods.items()}
        for m in ("nir", "tir"):
            for have, lacking in (("rgb", m), (m, "rgb")):
                if names[have] - names[lacking]:
                    name = min(names[have] - names[lacking])
                    raise FileNotFoundError(
                        f"{mods[lacking] / name} is missing; expected the same file names in vis/, ni/ and th/ "
                        f"({mods[have] / name} exists). Re-copy the dataset."
                    )
        if not names["rgb"]:
            raise DatasetFormatError(
                f"{mods['rgb']} holds no images; expected '<vid>_s<scene>_v<cam>_<rest>.jpg' files"
            )
        for name in sorted(names["rgb"]):
            m = _NAME.fullmatch(Path(name).stem)
            if m is None:
                raise DatasetFormatError(
                    f"cannot parse {mods['rgb'] / name}: expected '<vid>_s<scene>_v<cam>_<rest>.jpg' (e.g. 0001_s001_v3_0.jpg)"
                )
            pid, scene, cam = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if pid != vid:
                raise DatasetFormatError(
                    f"{mods['rgb'] / name}: identity {pid} in the name, but it is in folder {vid_dir}"
                )
            if not 0 <= cam <= 7:
                raise DatasetFormatError(f"{mods['rgb'] / name}: camera {cam}; expected 0..7 (MSVR310)")
            paths = {mod: str(mods[mod] / name) for mod in MM_MODALITIES}
            samples.append(Sample(paths=paths, pid=pid, camid=cam, modality=TRIPLET, scene=scene))
    if not samples:
        raise DatasetFormatError(f"{folder} holds no identity folders; expected <vid>/{{vis,ni,th}}/<file>")
    return samples


def load_msvr310(root: str | Path, *, verify: bool = True) -> ReIDDataset:
    """Load MSVR310 from `root` (the folder holding bounding_box_train/, query3/, bounding_box_test/).

    Args:
        root: dataset root.
        verify: open every image's header with PIL.
    """
    root = require_root("msvr310", root)
    pools = {k: _split(require_dir(root / v, f"the {k} folder {v}/ of MSVR310")) for k, v in SPLITS.items()}
    train, query, gallery = relabel(pools["train"]), unlabel(pools["query"]), unlabel(pools["gallery"])
    if verify:
        for pool in (train, query, gallery):
            verify_images(pool)
    return ReIDDataset(
        name="msvr310",
        root=root,
        kind="mm",
        modalities=MM_MODALITIES,
        train=train,
        query=query,
        gallery=gallery,
        protocol="msvr310",
        options={},
    )
