"""LLCM loader (Zhang and Wang, "Diverse Embedding Expansion Network and Low-Light Cross-Modality Benchmark for
Visible-Infrared Person Re-identification", CVPR 2023).

Layout (METHODS.md section 6.3): `idx/train_vis.txt`, `idx/train_nir.txt` (`<relative path> <label>` lines),
`idx/test_id.txt` (one comma-separated line), `test_vis/cam1..cam9/<pid>/*.jpg`,
`test_nir/cam{1,2,4..9}/<pid>/*.jpg` (no NIR cam 3).

Protocol (METHODS.md 5.3) as in ZYK100/LLCM `DEEN/data_manager.py` and `DEEN/test.py`:

* IR->VIS (`test_mode=[1, 2]`, the default): query = all test NIR images (sorted ids x NIR camera list x sorted
  files, `process_query_llcm`); gallery per trial = one random VIS image per (id, camera), `random.seed(trial)`
  (`process_gallery_llcm`, the same loop as SYSU, see `draw_gallery`).
* VIS->IR (`test_mode=[2, 1]`): by default the symmetric definition, query = all VIS images, gallery = one random
  NIR image per (id, camera). With `deen_faithful=True`, what DEEN's test code actually evaluates: it draws the NIR
  set, takes all VIS images, then evaluates the transposed distance matrix, so the *drawn NIR images are the
  queries* and all VIS images the gallery.
* Junk rule: same identity and same camera number (cameras are shared between modalities).

Training identities and cameras are parsed from the index paths: the identity is the numeric folder that holds
the image (real paths look like `nir/0351/0351_c06_s200656_f4830_nir.jpg`), the camera a `cam<k>` folder or,
failing that, the `_c<k>_` field of the file name (INFERRED from public code that reads LLCM file names). The
index-file labels must correspond one to one with the identities; training labels are re-derived by sorted id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from workbench.data.base import (
    DatasetFormatError,
    EvalSplit,
    ReIDDataset,
    check_labels_consistent,
    draw_gallery,
    list_images,
    list_subdirs,
    read_id_line,
    read_index_file,
    relabel,
    require_dir,
    require_root,
    unlabel,
    verify_images,
)
from workbench.data.samples import VI_MODALITIES, Sample

VIS_CAMS = (1, 2, 3, 4, 5, 6, 7, 8, 9)  # [CODE: ZYK100/LLCM, DEEN/data_manager.py, process_*_llcm mode 1]
NIR_CAMS = (1, 2, 4, 5, 6, 7, 8, 9)  # mode 2: no NIR cam 3
DIRECTIONS = ("ir->rgb", "rgb->ir")
_PID_DIR = re.compile(r"\d+")
_CAM_DIR = re.compile(r"cam(\d+)")
_CAM_IN_NAME = re.compile(r"(?:^|_)c(\d+)(?=_|\.|$)")
_PID_IN_NAME = re.compile(r"^(\d+)_")


@dataclass
class LLCMDataset(ReIDDataset):
    """LLCM with its per-trial gallery draws.

    Attributes:
        test_images: (modality, pid, camid) -> sorted images of that test folder.
        test_ids: sorted test identity ids.
    """

    test_images: dict[tuple[str, int, int], list[Sample]] = field(default_factory=dict)
    test_ids: list[int] = field(default_factory=list)

    def pool(self, modality: str) -> list[Sample]:
        """All test images of one modality ("rgb" or "ir"), ordered by sorted id, camera list, file name."""
        return [s for group in self.groups(modality) for s in group]

    def groups(self, modality: str) -> list[list[Sample]]:
        """The (id, camera) groups of one modality, in the reference order."""
        cams = VIS_CAMS if modality == "rgb" else NIR_CAMS
        return [
            self.test_images[(modality, pid, cam)]
            for pid in self.test_ids
            for cam in cams
            if (modality, pid, cam) in self.test_images
        ]

    def eval_splits(
        self,
        direction: str = "ir->rgb",
        trials: range | list[int] = range(10),
        deen_faithful: bool = False,
        shot: int = 1,
    ) -> list[EvalSplit]:
        """Query and per-trial galleries of the LLCM protocol.

        Args:
            direction: "ir->rgb" (NIR queries, VIS gallery) or "rgb->ir".
            trials: draw seeds (the reference averages 0..9).
            deen_faithful: for "rgb->ir", reproduce DEEN's transposed evaluation (drawn NIR images as queries,
                all VIS images as gallery). No effect on "ir->rgb".
            shot: images drawn per (id, camera); the reference uses 1 only.

        Returns:
            One `EvalSplit` per trial.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        q_mod, g_mod = ("ir", "rgb") if direction == "ir->rgb" else ("rgb", "ir")
        full, groups = self.pool(q_mod), self.groups(g_mod)
        splits = []
        for t in trials:
            drawn = draw_gallery(groups, t, shot)
            if direction == "rgb->ir" and deen_faithful:
                splits.append(
                    EvalSplit(trial=t, name=f"{direction} (DEEN transposed)", query=drawn, gallery=full)
                )
            else:
                splits.append(EvalSplit(trial=t, name=direction, query=full, gallery=drawn))
        return splits


def _parse_train_path(index: Path, lineno: int, rel: str) -> tuple[int, int]:
    """(pid, camid) of a training image path, from path components and regular expressions."""
    p = Path(rel)
    pid = None
    if _PID_DIR.fullmatch(p.parent.name):
        pid = int(p.parent.name)
    elif (m := _PID_IN_NAME.match(p.name)) is not None:
        pid = int(m.group(1))
    cam = None
    for part in p.parts[:-1]:
        if (m := _CAM_DIR.fullmatch(part)) is not None:
            cam = int(m.group(1))
    if cam is None and (m := _CAM_IN_NAME.search(p.stem)) is not None:
        cam = int(m.group(1))
    if pid is None or cam is None:
        raise DatasetFormatError(
            f"{index}: line {lineno}: cannot parse identity and camera from {rel!r}; expected a path like "
            "'nir/0351/0351_c06_s200656_f4830_nir.jpg' (identity folder, camera as _c<k>_ or a cam<k> folder)"
        )
    return pid, cam


def _read_train(
    root: Path, modality: str, index: Path
) -> tuple[list[Sample], list[tuple[Path, int, int, int]]]:
    samples, entries = [], []
    for lineno, rel, label in read_index_file(index):
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(
                f"{index}: line {lineno}: image {path} does not exist; re-copy the dataset"
            )
        pid, cam = _parse_train_path(index, lineno, rel)
        samples.append(Sample(paths={modality: str(path)}, pid=pid, camid=cam, modality=modality))
        entries.append((index, lineno, pid, label))
    return samples, entries


def load_llcm(
    root: str | Path, *, direction: str = "ir->rgb", deen_faithful: bool = False, verify: bool = True
) -> LLCMDataset:
    """Load LLCM from `root`.

    Args:
        root: folder holding idx/, test_vis/, test_nir/ and the training folders named by the index files.
        direction: direction of the default query/gallery ("ir->rgb" or "rgb->ir").
        deen_faithful: see `LLCMDataset.eval_splits`.
        verify: open every image's header with PIL.

    Returns:
        LLCMDataset whose `query`/`gallery` are the trial-0 split of `direction`.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    root = require_root("llcm", root)
    idx = require_dir(root / "idx", "the index folder idx/ (train_vis.txt, train_nir.txt, test_id.txt)")
    vis_dir = require_dir(root / "test_vis", "the visible test folder test_vis/cam1..cam9")
    nir_dir = require_dir(root / "test_nir", "the near-infrared test folder test_nir/cam1..cam9 (no cam3)")
    train_rgb, e_rgb = _read_train(root, "rgb", idx / "train_vis.txt")
    train_ir, e_ir = _read_train(root, "ir", idx / "train_nir.txt")
    check_labels_consistent(e_rgb + e_ir)
    test_ids = sorted(read_id_line(idx / "test_id.txt"))
    test_set = set(test_ids)
    overlap = sorted(test_set & {s.pid for s in train_rgb + train_ir})
    if overlap:
        raise DatasetFormatError(
            f"{idx / 'test_id.txt'} lists identities {overlap[:10]} that are also training identities"
        )

    test_images: dict[tuple[str, int, int], list[Sample]] = {}
    for modality, top, cams in (("rgb", vis_dir, VIS_CAMS), ("ir", nir_dir, NIR_CAMS)):
        for m, cam_dir in list_subdirs(top, _CAM_DIR):
            cam = int(m.group(1))
            if cam not in cams:
                continue
            for mp, pid_dir in list_subdirs(cam_dir, _PID_DIR):
                pid = int(mp.group(0))
                files = list_images(pid_dir) if pid in test_set else []
                if files:
                    test_images[(modality, pid, cam)] = [
                        Sample(paths={modality: str(f)}, pid=pid, camid=cam, modality=modality) for f in files
                    ]
    have = {pid for (_, pid, _) in test_images}
    for pid in test_ids:
        if pid not in have:
            raise DatasetFormatError(
                f"{idx / 'test_id.txt'} lists identity {pid}, but no images were found in "
                f"{vis_dir}/cam*/{pid:04d}/ or {nir_dir}/cam*/{pid:04d}/; expected at least one image"
            )

    train = relabel(train_rgb + train_ir)
    ds = LLCMDataset(
        name="llcm",
        root=root,
        kind="vi",
        modalities=VI_MODALITIES,
        train=train,
        query=[],
        gallery=[],
        protocol="llcm",
        options={"direction": direction, "deen_faithful": deen_faithful},
        test_images={k: unlabel(v) for k, v in test_images.items()},
        test_ids=test_ids,
    )
    if verify:
        verify_images(train)
        verify_images(s for v in ds.test_images.values() for s in v)
    default = ds.eval_splits(direction=direction, trials=[0], deen_faithful=deen_faithful)[0]
    ds.query, ds.gallery = default.query, default.gallery
    return ds
