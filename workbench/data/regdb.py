"""RegDB loader (Nguyen et al., "Person Recognition System Based on a Combination of Body Images from Visible
Light and Thermal Cameras", Sensors 2017).

Layout (METHODS.md section 6.2): `Visible/<pid>/<name>.bmp`, `Thermal/<pid>/<name>.bmp` and ten identity splits
`idx/{train,test}_{visible,thermal}_{1..10}.txt`, each line `<path relative to the root> <integer label>`
[CODE: mangye16/Cross-Modal-Re-ID-baseline, data_manager.py::process_test_regdb, data_loader.py::RegDBData].

Protocol (METHODS.md 5.2, PROTOCOLS.md 5.3, `eval_regdb`): one model per split (`trial=1..10`);
visible->thermal ("v2t"): query = all test visible images, gallery = all test thermal images; "t2v" swaps them.
Visible images get camid 1 and thermal images camid 2 (the reference forces `q_camids=1`, `g_camids=2`), so
no gallery item is ever removed.

Identities: the reference uses the index-file label as the identity. We use the numeric folder that holds the
image (the dataset's own identity number) when there is one, and check that folders and labels correspond one
to one within a split (visible and thermal files together), so label equality and identity equality agree;
without a numeric folder the label is the identity.
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
    read_index_file,
    relabel,
    require_dir,
    require_root,
    unlabel,
    verify_images,
)
from workbench.data.samples import VI_MODALITIES, Sample

CAMID = {"rgb": 1, "ir": 2}  # [CODE: eval_metrics.py::eval_regdb forces q_camids=1, g_camids=2]
DIRECTIONS = ("v2t", "t2v")
_PID_DIR = re.compile(r"\d+")


@dataclass
class RegDBDataset(ReIDDataset):
    """RegDB, one train/test split.

    Attributes:
        test: all test samples of the split, visible then thermal, in index-file order.
    """

    test: list[Sample] = field(default_factory=list)

    def eval_splits(self, direction: str = "v2t") -> list[EvalSplit]:
        """The one evaluation split of the loaded trial.

        Args:
            direction: "v2t" (visible queries, thermal gallery) or "t2v".
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'v2t' or 't2v', got {direction!r}")
        vis = [s for s in self.test if s.modality == "rgb"]
        th = [s for s in self.test if s.modality == "ir"]
        q, g = (vis, th) if direction == "v2t" else (th, vis)
        return [EvalSplit(trial=self.options["trial"], name=direction, query=q, gallery=g)]


def _read_split(
    root: Path, index: Path, modality: str
) -> tuple[list[Sample], list[tuple[Path, int, int, int]]]:
    samples, entries = [], []
    for lineno, rel, label in read_index_file(index):
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(
                f"{index}: line {lineno}: image {path} does not exist; expected the file the index names. "
                "Re-copy the dataset or fix the index file."
            )
        parent = Path(rel).parent.name
        pid = int(parent) if _PID_DIR.fullmatch(parent) else label
        samples.append(Sample(paths={modality: str(path)}, pid=pid, camid=CAMID[modality], modality=modality))
        entries.append((index, lineno, pid, label))
    return samples, entries


def _check_both_modalities(vis: list[Sample], th: list[Sample], vis_index: Path, th_index: Path) -> None:
    v_ids, t_ids = {s.pid for s in vis}, {s.pid for s in th}
    if v_ids - t_ids:
        pid = min(v_ids - t_ids)
        raise DatasetFormatError(
            f"{vis_index} lists identity {pid}, but {th_index} has no images of it; expected every identity in both"
        )
    if t_ids - v_ids:
        pid = min(t_ids - v_ids)
        raise DatasetFormatError(
            f"{th_index} lists identity {pid}, but {vis_index} has no images of it; expected every identity in both"
        )


def load_regdb(
    root: str | Path, *, trial: int = 1, direction: str = "v2t", verify: bool = True
) -> RegDBDataset:
    """Load split `trial` of RegDB from `root`.

    Args:
        root: folder holding Visible/, Thermal/ and idx/.
        trial: identity split 1..10 (each split trains its own model; report the mean over splits).
        direction: default query/gallery direction ("v2t" or "t2v").
        verify: open every image's header with PIL.
    """
    if not isinstance(trial, int) or not 1 <= trial <= 10:
        raise ValueError(f"trial must be an integer 1..10 (RegDB's ten identity splits), got {trial!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'v2t' or 't2v', got {direction!r}")
    root = require_root("regdb", root)
    idx = require_dir(root / "idx", "the index folder idx/ ({train,test}_{visible,thermal}_<trial>.txt)")
    pools = {}
    for split in ("train", "test"):
        files = {
            m: idx / f"{split}_{name}_{trial}.txt" for m, name in (("rgb", "visible"), ("ir", "thermal"))
        }
        vis, e_vis = _read_split(root, files["rgb"], "rgb")
        th, e_th = _read_split(root, files["ir"], "ir")
        check_labels_consistent(e_vis + e_th)
        _check_both_modalities(vis, th, files["rgb"], files["ir"])
        pools[split] = (vis, th)
    from_folders = all(
        _PID_DIR.fullmatch(Path(s.paths[s.modality]).parent.name) for v in pools.values() for s in v[0]
    )
    overlap = sorted({s.pid for s in pools["train"][0]} & {s.pid for s in pools["test"][0]})
    if from_folders and overlap:  # with label identities, train and test labels both start at 0
        raise DatasetFormatError(
            f"{idx}/train_visible_{trial}.txt and test_visible_{trial}.txt share identities {overlap[:10]}; "
            "splits must be disjoint"
        )
    train = relabel(pools["train"][0] + pools["train"][1])
    test = unlabel(pools["test"][0] + pools["test"][1])
    if verify:
        verify_images(train)
        verify_images(test)
    ds = RegDBDataset(
        name="regdb",
        root=root,
        kind="vi",
        modalities=VI_MODALITIES,
        train=train,
        query=[],
        gallery=[],
        protocol="regdb",
        options={"trial": trial, "direction": direction},
        test=test,
    )
    split = ds.eval_splits(direction)[0]
    ds.query, ds.gallery = split.query, split.gallery
    return ds
