"""The dataset type every loader returns, the seeded gallery draw, and the checks shared by the loaders.

A `ReIDDataset` holds the training pool (relabelled 0..N-1 by sorted original identity) and the default
evaluation pools of one dataset, and knows how to produce the evaluation splits of its protocol
(`eval_splits`): per-trial gallery draws for SYSU-MM01 and LLCM, one split for RegDB and the multi-modal
datasets. Protocols follow METHODS.md section 5 and PROTOCOLS.md.

Loaders parse with `pathlib` components and regular expressions (never fixed string offsets, the trap of
`int(path[-15])` in mangye16/Cross-Modal-Re-ID-baseline), sort every directory listing (the TOP-ReID family uses
unsorted `glob`/`listdir`), and validate the root at load time: a missing folder raises `FileNotFoundError`,
a malformed split file, an unreadable image or an identity without images raises `DatasetFormatError`
(a `ValueError`); every message names the offending path and what was expected.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from PIL import Image

from workbench.data.samples import Sample

T = TypeVar("T")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

# Junk-rule names the evaluator understands (PROTOCOLS.md section 5.3).
JUNK_RULES = ("sysu", "llcm", "regdb", "market", "msvr310")


class DatasetFormatError(ValueError):
    """A dataset root exists but does not have the expected content (malformed split file, unreadable image,
    identity without images, unparsable file name)."""


@dataclass(frozen=True)
class EvalSplit:
    """One evaluation round: a query list and a gallery list.

    Attributes:
        trial: gallery-draw index (SYSU-MM01, LLCM: 0..9, the seed of the draw), RegDB: the loaded split 1..10,
            otherwise 0.
        name: human-readable setting, e.g. "all-search/single-shot".
        query: query samples, in the reference code's order.
        gallery: gallery samples, in the reference code's order.
    """

    trial: int
    name: str
    query: list[Sample]
    gallery: list[Sample]


@dataclass
class ReIDDataset:
    """A loaded dataset: the training pool and the evaluation pools of its protocol.

    Attributes:
        name: registry name ("sysu-mm01", "regdb", ...).
        root: dataset root folder.
        kind: "vi" (visible-infrared, one image per sample) or "mm" (aligned RGB/NIR/TIR triplets).
        modalities: modality names present ("rgb", "ir") or ("rgb", "nir", "tir").
        train: training samples, `label` = rank of the original pid among the sorted training pids.
        query: default query pool.
        gallery: default gallery pool (SYSU-MM01 / LLCM: the trial-0 single-shot draw of the default setting).
        protocol: junk rule for the evaluator: "sysu" (cam3 probes skip cam2), "llcm" and "market" (same pid and
            same camera), "regdb" (nothing removed), "msvr310" (same pid and same scene).
        options: the loader options used (trial, mode, ...), for the record.
    """

    name: str
    root: Path
    kind: str
    modalities: tuple[str, ...]
    train: list[Sample]
    query: list[Sample]
    gallery: list[Sample]
    protocol: str = "market"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def num_train_ids(self) -> int:
        """Number of training identities (= max label + 1)."""
        return len({s.pid for s in self.train})

    def eval_splits(self) -> list[EvalSplit]:
        """Evaluation splits of the protocol; for datasets with a fixed query/gallery, one split."""
        return [EvalSplit(trial=0, name="default", query=self.query, gallery=self.gallery)]

    def split_table(self) -> pd.DataFrame:
        """Identities and images per split x modality x camera.

        Returns:
            DataFrame with columns split, modality, camid, ids, images (images = triplets for "mm" data),
            one row per (split, modality, camera) plus an "all" camera row per (split, modality).
        """
        return summarize({"train": self.train, "query": self.query, "gallery": self.gallery})

    def summary(self) -> str:
        """The dataset in words: name, root, training identities, then `split_table` as text (print it)."""
        return (f"{self.name} ({self.root}): {self.num_train_ids} training identities\n"
                f"{self.split_table().to_string(index=False)}")


def summarize(pools: dict[str, Sequence[Sample]]) -> pd.DataFrame:
    """Count identities and images per pool, modality and camera (see `ReIDDataset.split_table`)."""
    rows = []
    for split, samples in pools.items():
        by_mod: dict[str, list[Sample]] = {}
        for s in samples:
            by_mod.setdefault(s.modality, []).append(s)
        for modality in sorted(by_mod):
            group = by_mod[modality]
            for cam in sorted({s.camid for s in group}):
                sub = [s for s in group if s.camid == cam]
                rows.append((split, modality, str(cam), len({s.pid for s in sub}), len(sub)))
            rows.append((split, modality, "all", len({s.pid for s in group}), len(group)))
    return pd.DataFrame(rows, columns=["split", "modality", "camid", "ids", "images"])


# --------------------------------------------------------------------------------------------- gallery draw


def draw_gallery(
    groups: Sequence[Sequence[T]], trial: int, shot: int = 1, *, on_short: str = "error"
) -> list[T]:
    """Draw the per-trial gallery of SYSU-MM01 / LLCM: `shot` random items from each group.

    Reproduces the loop of `process_gallery_sysu` / `process_gallery_llcm`
    [CODE: Fouroy4/DAKD, data_manager.py; mangye16/Cross-Modal-Re-ID-baseline, data_manager.py;
    ZYK100/LLCM, DEEN/data_manager.py]: `random.seed(trial)`, then for each (identity, camera) folder in
    the order sorted ids x camera list, `random.choice(sorted files)` (single-shot) or
    `random.sample(sorted files, 10)` (multi-shot, DAKD's `shot=10`; the drawn files are kept in the order
    `random.sample` returns them). A private `random.Random(trial)` gives the same stream as the reference's
    global `random.seed(trial)` without touching the global state.

    Args:
        groups: one sequence per (identity, camera) folder, in the reference iteration order (sorted identities,
            then the camera list), each sorted by file name. Empty groups are not allowed (the reference would
            crash on them; loaders leave empty folders out).
        trial: the seed of the draw (0..9 in the reference test loops).
        shot: items per group. The reference accepts 1 and 10 only; any shot >= 1 works here (1 uses
            `choice`, more uses `sample`).
        on_short: what to do when a group has fewer than `shot` items. "error" (reference behaviour:
            `random.sample` raises "Sample larger than population") raises a `ValueError` naming the group;
            "all" draws `random.sample(group, len(group))`, i.e. keeps every item (not in the reference).

    Returns:
        The drawn items, group by group.
    """
    if shot < 1:
        raise ValueError(f"shot must be >= 1 (1 = single-shot, 10 = multi-shot), got {shot}")
    if on_short not in ("error", "all"):
        raise ValueError(f"on_short must be 'error' or 'all', got {on_short!r}")
    rng = random.Random(trial)
    drawn: list[T] = []
    for i, items in enumerate(groups):
        if len(items) == 0:
            raise ValueError(
                f"group {i} of the gallery draw is empty; every (identity, camera) group needs items"
            )
        if shot == 1:
            drawn.append(rng.choice(items))
            continue
        k = shot
        if len(items) < shot:
            if on_short == "error":
                raise ValueError(
                    f"multi-shot draw needs {shot} images per (identity, camera), but group {i} "
                    f"(first item {_describe(items[0])}) has {len(items)}; the reference code crashes here. "
                    "Pass on_short='all' to keep all images of such groups, or use shot=1."
                )
            k = len(items)
        drawn.extend(rng.sample(list(items), k))
    return drawn


def _describe(item: Any) -> str:
    if isinstance(item, Sample):
        return str(next(iter(item.paths.values())))
    return str(item)


# --------------------------------------------------------------------------------------------- relabelling


def relabel(samples: Iterable[Sample]) -> list[Sample]:
    """Set `label` to the rank of `pid` among the sorted distinct pids (0..N-1), keeping the order."""
    samples = list(samples)
    pid2label = {pid: i for i, pid in enumerate(sorted({s.pid for s in samples}))}
    return [replace(s, label=pid2label[s.pid]) for s in samples]


def unlabel(samples: Iterable[Sample]) -> list[Sample]:
    """Set `label = -1` (samples outside the training split)."""
    return [replace(s, label=-1) for s in samples]


# --------------------------------------------------------------------------------------------- file checks


def missing_root_message(name: str, root: Path) -> str:
    """The message for a dataset root that does not exist."""
    return (
        f"{name} root {root} does not exist. Download the dataset (see data_cards/{name}.md for how to obtain it) "
        f"and pass its folder as root=, or use a synthetic preset such as load_dataset('synthetic-{name}')."
    )


def require_root(name: str, root: str | Path) -> Path:
    """`root` as an absolute path; FileNotFoundError saying how to obtain dataset `name` when it does not exist."""
    path = Path(root).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{name} root {path} is a file, not a folder; pass the dataset's folder as root= "
                                 f"(the one holding its original layout, see data_cards/{name}.md)")
    if not path.is_dir():
        raise FileNotFoundError(missing_root_message(name, path))
    return path


def require_dir(path: Path, what: str) -> Path:
    """Raise `FileNotFoundError` naming `path` unless it is a directory."""
    if not path.is_dir():
        raise FileNotFoundError(
            f"expected {what} at {path}, but that folder does not exist. Check the dataset root."
        )
    return path


def require_file(path: Path, what: str) -> Path:
    """Raise `FileNotFoundError` naming `path` unless it is a file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"expected {what} at {path}, but that file does not exist. Check the dataset root."
        )
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files in `folder`, sorted by name (hidden files and other extensions ignored)."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def list_subdirs(folder: Path, pattern: re.Pattern[str]) -> list[tuple[re.Match[str], Path]]:
    """Sub-folders of `folder` whose name fully matches `pattern`, sorted by name."""
    out = []
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        m = pattern.fullmatch(p.name)
        if m is not None and p.is_dir():
            out.append((m, p))
    return out


def read_id_line(path: Path) -> list[int]:
    """Read a SYSU/LLCM identity file: ONE line of comma-separated integers (`exp/test_id.txt`).

    The reference reads the first line and splits on commas [CODE: mangye16/Cross-Modal-Re-ID-baseline,
    data_manager.py]. Whitespace around ids and a trailing comma are tolerated; anything else is an error.
    """
    require_file(path, "a split file (one line of comma-separated integer ids)")
    text = path.read_text()
    if text.startswith("\ufeff"):  # a byte-order mark (saved by some Windows editors): say so, not "bad number"
        raise DatasetFormatError(f"{path}: starts with a byte-order mark (U+FEFF); save it as plain UTF-8 or ASCII "
                                 "without a BOM")
    lines = text.splitlines()
    content = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not content:
        raise DatasetFormatError(
            f"{path}: line 1: expected one line of comma-separated integer ids, the file is empty"
        )
    if len(content) > 1:
        lineno, line = content[1]
        raise DatasetFormatError(
            f"{path}: line {lineno}: expected ONE line of comma-separated integer ids, found a second line {line!r}"
        )
    lineno, line = content[0]
    tokens = [t.strip() for t in line.split(",")]
    if tokens and tokens[-1] == "":
        tokens = tokens[:-1]
    ids = []
    for tok in tokens:
        if not re.fullmatch(r"\d+", tok):
            raise DatasetFormatError(
                f"{path}: line {lineno}: expected comma-separated integer ids, got {tok!r} in {line.strip()[:80]!r}"
            )
        ids.append(int(tok))
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise DatasetFormatError(f"{path}: line {lineno}: identity ids listed more than once: {dup[:10]}")
    return ids


def read_index_file(path: Path) -> list[tuple[int, str, int]]:
    """Read a RegDB/LLCM index file: `<relative path> <integer label>` per line.

    Returns:
        (line number, relative path, label) per non-empty line.
    """
    require_file(path, "an index file ('<relative path> <integer label>' per line)")
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            raise DatasetFormatError(
                f"{path}: line {i + 1}: expected '<relative path> <integer label>', got {line!r}. "
                "Fix the line or re-create the index file."
            )
        out.append((i + 1, parts[0], int(parts[1])))
    if not out:
        raise DatasetFormatError(
            f"{path}: expected '<relative path> <integer label>' lines, the file is empty"
        )
    return out


def verify_images(samples: Iterable[Sample], n_panels: int = 1) -> None:
    """Open the header of every image file with PIL (cheap); raise `DatasetFormatError` naming a bad file.

    Args:
        samples: samples whose `paths` are checked (each file once).
        n_panels: for multi-panel files (RGBNT100: 3), also check that the width divides into panels.
    """
    _check_image_files(samples, decode=False, n_panels=n_panels)


def decode_images(samples: Iterable[Sample]) -> None:
    """Fully decode every image file of `samples` (each once); raise `DatasetFormatError` naming a bad one.

    Stricter than `verify_images` (a header check): a truncated or corrupt body is found too. Costs a full decode
    (about 1-2 ms per small image), so `fit` runs it on the test images before training rather than at load time.
    """
    _check_image_files(samples, decode=True)


def _check_image_files(samples: Iterable[Sample], *, decode: bool, n_panels: int = 1) -> None:
    seen: set[str] = set()
    for s in samples:
        for path in s.paths.values():
            if path in seen:
                continue
            seen.add(path)
            try:
                with Image.open(path) as im:
                    width, height = im.size
                    if decode:
                        im.load()
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"image {path} does not exist; re-copy the dataset") from exc
            except (OSError, ValueError, SyntaxError) as exc:
                fix = "Re-copy the file." if decode else \
                    "Re-copy the file, or pass verify=False to skip this check."
                raise DatasetFormatError(f"unreadable image {path}: {exc}. {fix}") from exc
            if n_panels > 1 and width % n_panels:
                raise DatasetFormatError(
                    f"image {path} is {width}x{height}; expected a width divisible into {n_panels} equal panels"
                )


def check_eval_splits(dataset: ReIDDataset, **split_options: Any) -> None:
    """Check a dataset's test protocol before any training: every split has a query and a gallery, and every test
    image decodes. Raises `DatasetFormatError` naming the split and the fix."""
    splits = dataset.eval_splits(**split_options)
    if not splits:
        raise DatasetFormatError(f"{dataset.name} ({dataset.root}): the test protocol has no evaluation split")
    for split in splits:
        for pool, samples in (("query", split.query), ("gallery", split.gallery)):
            if not samples:
                raise DatasetFormatError(
                    f"{dataset.name} ({dataset.root}): the {pool} of test split {split.name!r} (trial {split.trial}) "
                    f"is empty; the test identities have no {pool} images of the modality the protocol needs "
                    "(e.g. no infrared or no visible images). Check the dataset's test folders.")
    decode_images(s for split in splits for s in list(split.query) + list(split.gallery))


def check_labels_consistent(entries: Sequence[tuple[Path, int, int, int]]) -> None:
    """Check that index-file labels and path identities correspond one to one.

    Args:
        entries: (index file, line number, pid parsed from the path, label from the file).
    """
    pid2 = {}
    label2 = {}
    for index, lineno, pid, label in entries:
        if pid2.setdefault(pid, (label, index, lineno))[0] != label:
            first = pid2[pid]
            raise DatasetFormatError(
                f"{index}: line {lineno}: identity {pid} has label {label}, but {first[1]} line {first[2]} "
                f"gives it label {first[0]}; one identity must have one label"
            )
        if label2.setdefault(label, (pid, index, lineno))[0] != pid:
            first = label2[label]
            raise DatasetFormatError(
                f"{index}: line {lineno}: label {label} names identity {pid}, but {first[1]} line {first[2]} "
                f"uses it for identity {first[0]}; one label must name one identity"
            )
