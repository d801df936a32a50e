"""SYSU-MM01 loader (Wu et al., "RGB-Infrared Cross-Modality Person Re-Identification", ICCV 2017).

Layout (METHODS.md section 6.1): `cam1..cam6/<pid>/<frame>.jpg` (RGB cams 1, 2, 4, 5; near-infrared cams 3, 6)
and `exp/{train,val,test}_id.txt`, each ONE line of comma-separated integer ids.

Protocol (METHODS.md 5.1, PROTOCOLS.md 5.3) as in mangye16/Cross-Modal-Re-ID-baseline and Fouroy4/DAKD
`data_manager.py`:

* training identities = train + val ids (every pre-processing script does `id_train.extend(id_val)`),
  images of all six cameras, relabelled by sorted pid (the reference enumerates a Python set instead);
* query = all IR images of the test ids from cams 3 and 6, in both modes (`process_query_sysu`);
* gallery per trial = `random.seed(trial)`, sorted test ids x camera list (all-search: cam1, cam2, cam4, cam5;
  indoor-search: cam1, cam2), `random.choice` (single-shot) or `random.sample(files, 10)` (multi-shot) on the
  sorted file list of each existing (id, camera) folder (`process_gallery_sysu`; see `draw_gallery`).

Differences from the reference, all documented: files are parsed from path components, not `path[-15]`;
only image files are listed (the reference lists everything in the folder); empty (id, camera) folders are left
out of the draw (the reference would crash on them). The official MATLAB draws from `rand_perm_cam.mat` are not
reproduced (the Python draws are what VI-ReID papers report).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from workbench.data.base import (
    DatasetFormatError,
    EvalSplit,
    ReIDDataset,
    draw_gallery,
    list_images,
    list_subdirs,
    read_id_line,
    relabel,
    require_dir,
    require_root,
    unlabel,
    verify_images,
)
from workbench.data.samples import VI_MODALITIES, Sample

RGB_CAMS = (1, 2, 4, 5)
IR_CAMS = (3, 6)
GALLERY_CAMS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}  # [CODE: process_gallery_sysu, rgb_cameras]
QUERY_CAMS = (3, 6)  # both modes [CODE: process_query_sysu, ir_cameras]
_CAM_DIR = re.compile(r"cam(\d+)")
_PID_DIR = re.compile(r"\d+")


@dataclass
class SYSUDataset(ReIDDataset):
    """SYSU-MM01 with its per-trial gallery draws.

    Attributes:
        test_images: (pid, camid) -> sorted images of that test folder (all six cameras).
        test_ids: sorted test identity ids.
    """

    test_images: dict[tuple[int, int], list[Sample]] = field(default_factory=dict)
    test_ids: list[int] = field(default_factory=list)

    def query_pool(self) -> list[Sample]:
        """All IR images of the test ids from cams 3 and 6, ordered by sorted id, camera, file name."""
        return [
            s for pid in self.test_ids for cam in QUERY_CAMS for s in self.test_images.get((pid, cam), [])
        ]

    def gallery_groups(self, mode: str = "all") -> list[list[Sample]]:
        """The (id, RGB camera) groups the gallery is drawn from, in the reference order."""
        if mode not in GALLERY_CAMS:
            raise ValueError(f"mode must be 'all' or 'indoor', got {mode!r}")
        cams = GALLERY_CAMS[mode]
        return [
            self.test_images[(pid, cam)]
            for pid in self.test_ids
            for cam in cams
            if (pid, cam) in self.test_images
        ]

    def eval_splits(
        self, mode: str = "all", shot: int = 1, trials: range | list[int] = range(10), on_short: str = "error"
    ) -> list[EvalSplit]:
        """Query and per-trial galleries of the SYSU protocol.

        Args:
            mode: "all" (gallery cams 1, 2, 4, 5) or "indoor" (cams 1, 2).
            shot: 1 (single-shot) or 10 (multi-shot); see `draw_gallery` for other values.
            trials: draw seeds; the reference averages trials 0..9.
            on_short: multi-shot with a folder of fewer than `shot` images: "error" (the reference crashes)
                or "all" (keep all its images).

        Returns:
            One `EvalSplit` per trial; the query list is shared.
        """
        groups = self.gallery_groups(mode)
        query = self.query_pool()
        name = f"{mode}-search/{'single' if shot == 1 else f'{shot}'}-shot"
        return [
            EvalSplit(
                trial=t, name=name, query=query, gallery=draw_gallery(groups, t, shot, on_short=on_short)
            )
            for t in trials
        ]


def load_sysu(
    root: str | Path, *, mode: str = "all", merge_val: bool = True, verify: bool = True
) -> SYSUDataset:
    """Load SYSU-MM01 from `root`.

    Args:
        root: folder holding cam1..cam6 and exp/.
        mode: search mode of the default `gallery` ("all" or "indoor"); `eval_splits` takes its own.
        merge_val: train on train + val ids (395 ids, common practice) or on train ids only (296).
        verify: open every used image's header with PIL to catch unreadable files.

    Returns:
        SYSUDataset whose `gallery` is the trial-0 single-shot draw of `mode`.
    """
    if mode not in GALLERY_CAMS:
        raise ValueError(f"mode must be 'all' or 'indoor', got {mode!r}")
    root = require_root("sysu-mm01", root)
    cam_dirs = {
        cam: require_dir(root / f"cam{cam}", f"camera folder cam{cam} (SYSU-MM01 has cam1..cam6)")
        for cam in range(1, 7)
    }
    exp = require_dir(root / "exp", "the split folder exp/ (train_id.txt, val_id.txt, test_id.txt)")
    split_ids = {split: read_id_line(exp / f"{split}_id.txt") for split in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        common = sorted(set(split_ids[a]) & set(split_ids[b]))
        if common:
            raise DatasetFormatError(
                f"{exp / f'{a}_id.txt'} and {exp / f'{b}_id.txt'} share identities {common[:10]}; splits must be disjoint"
            )
    train_ids = sorted(split_ids["train"] + (split_ids["val"] if merge_val else []))
    test_ids = sorted(split_ids["test"])
    wanted = set(train_ids) | set(test_ids)

    # (pid, cam) -> sorted images; folders parsed as camX/<digits>, never by string offsets.
    images: dict[tuple[int, int], list[Sample]] = {}
    for cam, cam_dir in cam_dirs.items():
        modality = "rgb" if cam in RGB_CAMS else "ir"
        for m, pid_dir in list_subdirs(cam_dir, _PID_DIR):
            pid = int(m.group(0))
            if pid not in wanted:
                continue
            files = list_images(pid_dir)
            if files:  # empty folders are left out (the reference's random.choice would crash on them)
                images[(pid, cam)] = [
                    Sample(paths={modality: str(f)}, pid=pid, camid=cam, modality=modality) for f in files
                ]

    for split in ("train", "val", "test"):
        if split == "val" and not merge_val:
            continue
        for pid in split_ids[split]:
            if not any((pid, cam) in images for cam in cam_dirs):
                raise DatasetFormatError(
                    f"{exp / f'{split}_id.txt'} lists identity {pid}, but no images were found for it in "
                    f"{root}/cam1..cam6/{pid:04d}/; expected at least one image. Re-copy the dataset or fix the split file."
                )

    train = relabel(s for pid in train_ids for cam in cam_dirs for s in images.get((pid, cam), []))
    test_images = {key: unlabel(v) for key, v in images.items() if key[0] in set(test_ids)}
    ds = SYSUDataset(
        name="sysu-mm01",
        root=root,
        kind="vi",
        modalities=VI_MODALITIES,
        train=train,
        query=[],
        gallery=[],
        protocol="sysu",
        options={"mode": mode, "merge_val": merge_val},
        test_images=test_images,
        test_ids=test_ids,
    )
    if verify:
        verify_images(train)
        verify_images(s for v in test_images.values() for s in v)
    default = ds.eval_splits(mode=mode, shot=1, trials=[0])[0]
    ds.query, ds.gallery = default.query, default.gallery
    return ds
