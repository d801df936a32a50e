"""Loaders on small hand-made fake trees (METHODS.md section 6): parsing, protocol pools, draws, errors.

Expected values are computed here from what the fixtures wrote (or by an independent re-implementation of the
reference loops), never from the loaders' own output.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.data import (
    TRIPLET,
    DatasetFormatError,
    draw_gallery,
    holdout_identities,
    list_datasets,
    load_dataset,
)

# ----------------------------------------------------------------------------------------------- helpers


def _write_img(path: Path, color=(128, 64, 32), size=(4, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _norm(paths) -> list[str]:
    return [os.path.normpath(str(p)) for p in paths]


def _paths(samples) -> list[str]:
    return _norm(next(iter(s.paths.values())) for s in samples)


# SYSU fake: ids in files deliberately unsorted; (pid, cam) pairs with (pid + cam) % 5 == 0 are missing.
SYSU_TRAIN, SYSU_VAL, SYSU_TEST = [10, 2, 3], [7], [15, 5, 11]


def _sysu_count(pid: int, cam: int) -> int:
    if (pid + cam) % 5 == 0:
        return 0
    if pid in SYSU_TEST and cam in (1, 2, 4, 5):
        return 10 + (pid + cam) % 3  # >= 10 so multi-shot works
    return 3 + (pid * cam) % 6


@pytest.fixture
def sysu_root(tmp_path: Path) -> Path:
    root = tmp_path / "SYSU-MM01"
    for pid in SYSU_TRAIN + SYSU_VAL + SYSU_TEST + [99]:  # 99: a folder in no split file, ignored
        for cam in range(1, 7):
            for f in range(_sysu_count(pid, cam)):
                _write_img(root / f"cam{cam}" / f"{pid:04d}" / f"{f + 1:04d}.jpg")
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    (root / "exp").mkdir()
    for name, ids in (("train", SYSU_TRAIN), ("val", SYSU_VAL), ("test", SYSU_TEST)):
        (root / "exp" / f"{name}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    return root


def _ref_query_sysu(data_path: str) -> list[str]:
    """Independent re-implementation of `process_query_sysu` (mangye16/Cross-Modal-Re-ID-baseline)."""
    with open(os.path.join(data_path, "exp/test_id.txt")) as f:
        ids = [f"{int(y):04d}" for y in f.read().splitlines()[0].split(",")]
    files = []
    for pid in sorted(ids):
        for cam in ["cam3", "cam6"]:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                files.extend(sorted([img_dir + "/" + i for i in os.listdir(img_dir)]))
    return files


def _ref_gallery_sysu(data_path: str, mode: str, trial: int, shot: int) -> list[str]:
    """Independent re-implementation of `process_gallery_sysu` (Fouroy4/DAKD data_manager.py)."""
    random.seed(trial)
    cams = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
    with open(os.path.join(data_path, "exp/test_id.txt")) as f:
        ids = [f"{int(y):04d}" for y in f.read().splitlines()[0].split(",")]
    files = []
    for pid in sorted(ids):
        for cam in cams:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                new_files = sorted([img_dir + "/" + i for i in os.listdir(img_dir)])
                if shot == 1:
                    files.append(random.choice(new_files))
                else:
                    files.extend(random.sample(new_files, 10))
    return files


# ----------------------------------------------------------------------------------------------- registry


def test_list_datasets_names():
    names = list_datasets()
    for n in (
        "sysu-mm01",
        "regdb",
        "llcm",
        "rgbnt201",
        "rgbnt100",
        "msvr310",
        "synthetic-vi",
        "synthetic-rgbnt",
    ):
        assert n in names
    assert all(
        f"synthetic-{n}" in names for n in ("sysu-mm01", "regdb", "llcm", "rgbnt201", "rgbnt100", "msvr310")
    )


@pytest.mark.parametrize("name", ["sysu-mm01", "regdb", "llcm", "rgbnt201", "rgbnt100", "msvr310"])
def test_real_dataset_without_root_points_to_data_card(name):
    with pytest.raises(FileNotFoundError, match=re.escape(f"data_cards/{name}.md")):
        load_dataset(name)


@pytest.mark.parametrize("name", ["sysu-mm01", "regdb", "llcm", "rgbnt201", "rgbnt100", "msvr310"])
def test_missing_root_names_the_path(tmp_path, name):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_dataset(name, missing)


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset 'market'"):
        load_dataset("market", "/tmp")


# ----------------------------------------------------------------------------------------------- SYSU-MM01


def test_sysu_train_counts_and_relabel(sysu_root):
    ds = load_dataset("sysu-mm01", sysu_root)
    train_ids = sorted(SYSU_TRAIN + SYSU_VAL)
    assert ds.kind == "vi" and ds.protocol == "sysu" and ds.num_train_ids == len(train_ids)
    expected = Counter()
    for pid in train_ids:
        for cam in range(1, 7):
            expected[(pid, cam)] = _sysu_count(pid, cam)
    got = Counter((s.pid, s.camid) for s in ds.train)
    assert got == +expected
    for s in ds.train:
        assert s.label == train_ids.index(s.pid)  # sorted, contiguous
        assert s.modality == ("ir" if s.camid in (3, 6) else "rgb")
        m = re.search(r"cam(\d)/(\d{4})/\d{4}\.jpg$", Path(s.paths[s.modality]).as_posix())
        assert (int(m.group(1)), int(m.group(2))) == (s.camid, s.pid)
    assert sorted({s.label for s in ds.train}) == list(range(len(train_ids)))


def test_sysu_without_val(sysu_root):
    ds = load_dataset("sysu-mm01", sysu_root, merge_val=False)
    assert sorted({s.pid for s in ds.train}) == sorted(SYSU_TRAIN)


def test_sysu_query_matches_reference_loop(sysu_root):
    ds = load_dataset("sysu-mm01", str(sysu_root))
    ref = _ref_query_sysu(str(sysu_root))
    assert _paths(ds.query) == _norm(ref)
    assert {s.camid for s in ds.query} == {3, 6} and all(s.modality == "ir" for s in ds.query)
    assert {s.pid for s in ds.query} <= set(SYSU_TEST) and all(s.label == -1 for s in ds.query)


@pytest.mark.parametrize("mode", ["all", "indoor"])
@pytest.mark.parametrize("shot", [1, 10])
def test_sysu_gallery_draws_match_reference_loop(sysu_root, mode, shot):
    ds = load_dataset("sysu-mm01", str(sysu_root))
    splits = ds.eval_splits(mode=mode, shot=shot, trials=range(4))
    assert [s.trial for s in splits] == [0, 1, 2, 3]
    for split in splits:
        ref = _ref_gallery_sysu(str(sysu_root), mode, split.trial, shot)
        assert _paths(split.gallery) == _norm(ref)
        allowed = {1, 2} if mode == "indoor" else {1, 2, 4, 5}
        assert {s.camid for s in split.gallery} <= allowed
        per_group = Counter((s.pid, s.camid) for s in split.gallery)
        n_groups = sum(1 for p in SYSU_TEST for c in allowed if _sysu_count(p, c))
        assert len(per_group) == n_groups and set(per_group.values()) == {shot}
    # reproducible, and different across trials
    again = ds.eval_splits(mode=mode, shot=shot, trials=[0])[0]
    assert _paths(again.gallery) == _paths(splits[0].gallery)
    assert len({tuple(_paths(s.gallery)) for s in splits}) > 1


def test_sysu_default_gallery_is_trial0_single_shot(sysu_root):
    ds = load_dataset("sysu-mm01", sysu_root, mode="indoor")
    assert _paths(ds.gallery) == _norm(_ref_gallery_sysu(str(sysu_root), "indoor", 0, 1))


def test_sysu_draw_leaves_global_random_state_alone(sysu_root):
    ds = load_dataset("sysu-mm01", sysu_root)
    random.seed(123)
    before = random.getstate()
    ds.eval_splits(trials=range(3))
    assert random.getstate() == before


def test_sysu_multishot_short_folder(sysu_root):
    folder = sysu_root / "cam1" / "0005"
    for f in sorted(folder.iterdir())[4:]:
        f.unlink()
    ds = load_dataset("sysu-mm01", sysu_root)
    with pytest.raises(ValueError, match="cam1/0005"):
        ds.eval_splits(shot=10, trials=[0])
    split = ds.eval_splits(shot=10, trials=[0], on_short="all")[0]
    assert Counter((s.pid, s.camid) for s in split.gallery)[(5, 1)] == 4


def test_sysu_summary_counts(sysu_root):
    ds = load_dataset("sysu-mm01", sysu_root)
    df = ds.split_table()
    text = ds.summary()
    assert isinstance(text, str) and text.startswith("sysu-mm01") and df.to_string(index=False) in text
    row = df[(df.split == "train") & (df.modality == "ir") & (df.camid == "3")].iloc[0]
    ids3 = [p for p in SYSU_TRAIN + SYSU_VAL if _sysu_count(p, 3)]
    assert row.ids == len(ids3) and row.images == sum(_sysu_count(p, 3) for p in ids3)
    allrow = df[(df.split == "query") & (df.camid == "all")].iloc[0]
    assert allrow.images == sum(_sysu_count(p, c) for p in SYSU_TEST for c in (3, 6))
    gal = df[(df.split == "gallery") & (df.camid == "all")].iloc[0]
    assert gal.images == sum(1 for p in SYSU_TEST for c in (1, 2, 4, 5) if _sysu_count(p, c))


# --- SYSU errors


def test_sysu_missing_cam_folder(sysu_root):
    import shutil

    shutil.rmtree(sysu_root / "cam4")
    with pytest.raises(FileNotFoundError, match=re.escape(str(sysu_root / "cam4"))):
        load_dataset("sysu-mm01", sysu_root)


def test_sysu_missing_split_file(sysu_root):
    (sysu_root / "exp" / "test_id.txt").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(sysu_root / "exp" / "test_id.txt"))):
        load_dataset("sysu-mm01", sysu_root)


@pytest.mark.parametrize(
    ("content", "line"), [("15,5,x11\n", 1), ("15,5\n11\n", 2), ("", 1), ("\n\n", 1), ("5,5,11\n", 1)]
)
def test_sysu_malformed_split_file(sysu_root, content, line):
    path = sysu_root / "exp" / "test_id.txt"
    path.write_text(content)
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: line {line}")):
        load_dataset("sysu-mm01", sysu_root)


def test_sysu_pid_without_images(sysu_root):
    path = sysu_root / "exp" / "test_id.txt"
    path.write_text("15,5,11,42\n")
    with pytest.raises(DatasetFormatError, match=re.escape(str(path)) + r".*identity 42"):
        load_dataset("sysu-mm01", sysu_root)


def test_sysu_overlapping_splits(sysu_root):
    (sysu_root / "exp" / "val_id.txt").write_text("7,5\n")
    with pytest.raises(DatasetFormatError, match="val_id.txt.*test_id.txt.*\\[5\\]"):
        load_dataset("sysu-mm01", sysu_root)


def test_sysu_unreadable_image(sysu_root):
    bad = sysu_root / "cam2" / "0010" / "0002.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(DatasetFormatError, match=re.escape(str(bad))):
        load_dataset("sysu-mm01", sysu_root)
    ds = load_dataset("sysu-mm01", sysu_root, verify=False)  # the cheap check can be skipped
    assert str(bad) in {s.paths[s.modality] for s in ds.train}


@pytest.mark.parametrize("name,fixture", [("sysu-mm01", "sysu_root"), ("llcm", "llcm_root"),
                                          ("regdb", "regdb_root"), ("rgbnt201", "rgbnt201_root")])
def test_unreadable_test_image_is_reported(name, fixture, request):
    """A corrupt image in the test split (not only in training) fails the load with its path."""
    root = request.getfixturevalue(fixture)
    root = root[0] if isinstance(root, tuple) else root
    ds = load_dataset(name, root, verify=False)
    sample = ds.gallery[0]
    bad = Path(sorted(sample.paths.values())[0])
    assert str(bad) not in {p for s in ds.train for p in s.paths.values()}
    bad.write_bytes(b"this is not an image")
    with pytest.raises(DatasetFormatError, match=re.escape(str(bad))):
        load_dataset(name, root)


# ----------------------------------------------------------------------------------------------- draw oracle


def _ref_draw(groups, trial, shot):
    """The reference loop body, with the module-level random functions."""
    random.seed(trial)
    out = []
    for g in groups:
        if shot == 1:
            out.append(random.choice(g))
        elif shot == 10:
            out.extend(random.sample(g, 10))
    return out


@pytest.mark.parametrize("shot", [1, 10])
def test_draw_gallery_equals_reference_loop(shot):
    rng = np.random.default_rng(0)
    groups = [
        [f"g{i}/{j:04d}.jpg" for j in range(int(n))] for i, n in enumerate(rng.integers(10, 40, size=50))
    ]
    for trial in range(10):
        assert draw_gallery(groups, trial, shot) == _ref_draw(groups, trial, shot)


def test_draw_gallery_bad_arguments():
    with pytest.raises(ValueError, match="shot must be >= 1"):
        draw_gallery([["a"]], 0, 0)
    with pytest.raises(ValueError, match="fewer than|has 2"):
        draw_gallery([["a", "b"]], 0, 10)
    with pytest.raises(ValueError, match="empty"):
        draw_gallery([[]], 0, 1)
    assert sorted(draw_gallery([["a", "b"]], 0, 10, on_short="all")) == ["a", "b"]


# ----------------------------------------------------------------------------------------------- RegDB


REGDB_PIDS = [3, 8, 12, 20, 21, 30, 33, 41]  # folder ids


@pytest.fixture
def regdb_root(tmp_path: Path) -> Path:
    root = tmp_path / "RegDB"
    for pid in REGDB_PIDS:
        for k in range(2):
            _write_img(root / "Visible" / str(pid) / f"v_{pid}_{k}.bmp")
            _write_img(root / "Thermal" / str(pid) / f"t_{pid}_{k}.bmp")
    (root / "idx").mkdir()
    for trial in (1, 2):
        perm = random.Random(trial).sample(REGDB_PIDS, len(REGDB_PIDS))
        splits = {"train": perm[:4], "test": perm[4:]}
        for split, pids in splits.items():
            for mod, folder, pre in (("visible", "Visible", "v"), ("thermal", "Thermal", "t")):
                lines = [f"{folder}/{p}/{pre}_{p}_{k}.bmp {i}" for i, p in enumerate(pids) for k in range(2)]
                (root / "idx" / f"{split}_{mod}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("trial", [1, 2])
def test_regdb_splits(regdb_root, trial):
    ds = load_dataset("regdb", regdb_root, trial=trial)
    perm = random.Random(trial).sample(REGDB_PIDS, len(REGDB_PIDS))
    train_ids, test_ids = sorted(perm[:4]), sorted(perm[4:])
    assert ds.num_train_ids == 4 and sorted({s.pid for s in ds.train}) == train_ids
    assert all(s.label == train_ids.index(s.pid) for s in ds.train)
    assert Counter(s.modality for s in ds.train) == {"rgb": 8, "ir": 8}
    assert ds.protocol == "regdb"
    (v2t,) = ds.eval_splits("v2t")
    (t2v,) = ds.eval_splits("t2v")
    assert v2t.trial == trial and all(s.modality == "rgb" and s.camid == 1 for s in v2t.query)
    assert all(s.modality == "ir" and s.camid == 2 for s in v2t.gallery)
    assert _paths(t2v.query) == _paths(v2t.gallery) and _paths(ds.query) == _paths(v2t.query)
    assert sorted({s.pid for s in v2t.query}) == test_ids and len(v2t.query) == 8
    for s in ds.train + ds.query + ds.gallery:
        assert Path(s.paths[s.modality]).parent.name == str(s.pid)


def test_regdb_bad_trial(regdb_root):
    with pytest.raises(ValueError, match="trial must be an integer 1..10"):
        load_dataset("regdb", regdb_root, trial=0)
    with pytest.raises(FileNotFoundError, match=re.escape(str(regdb_root / "idx" / "train_visible_3.txt"))):
        load_dataset("regdb", regdb_root, trial=3)


def test_regdb_malformed_line(regdb_root):
    path = regdb_root / "idx" / "test_thermal_1.txt"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(" ", "\t", 1) + " extra"
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: line 3")):
        load_dataset("regdb", regdb_root)


def test_regdb_missing_image(regdb_root):
    path = regdb_root / "idx" / "train_visible_1.txt"
    rel = path.read_text().splitlines()[1].split()[0]
    (regdb_root / rel).unlink()
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"{path}: line 2") + ".*" + re.escape(str(regdb_root / rel))
    ):
        load_dataset("regdb", regdb_root)


def test_regdb_pid_without_thermal_images(regdb_root):
    path = regdb_root / "idx" / "test_thermal_1.txt"
    lines = path.read_text().splitlines()
    pid = int(lines[0].split("/")[1])
    path.write_text("\n".join(line for line in lines if f"/{pid}/" not in line))
    with pytest.raises(DatasetFormatError, match=f"identity {pid}.*" + re.escape(str(path))):
        load_dataset("regdb", regdb_root)


def test_regdb_inconsistent_labels(regdb_root):
    path = regdb_root / "idx" / "train_thermal_1.txt"
    lines = path.read_text().splitlines()
    rel, label = lines[0].split()
    lines[0] = f"{rel} {int(label) + 1}"
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: line 1")):
        load_dataset("regdb", regdb_root)


# ----------------------------------------------------------------------------------------------- LLCM


LLCM_TRAIN, LLCM_TEST = [1, 4, 6], [2, 9, 13]
LLCM_VIS_CAMS, LLCM_NIR_CAMS = range(1, 10), (1, 2, 4, 5, 6, 7, 8, 9)


def _llcm_count(pid: int, cam: int, mod: str) -> int:
    if (pid + cam + (mod == "nir")) % 4 == 0:
        return 0
    return 2 + (pid * cam) % 4


@pytest.fixture
def llcm_root(tmp_path: Path) -> Path:
    root = tmp_path / "LLCM"
    lines = {"vis": [], "nir": []}
    for label, pid in enumerate(LLCM_TRAIN):
        for mod, cams in (("vis", LLCM_VIS_CAMS), ("nir", LLCM_NIR_CAMS)):
            for cam in cams:
                for k in range(_llcm_count(pid, cam, mod)):
                    rel = f"{mod}/{pid:04d}/{pid:04d}_c{cam:02d}_s{k:06d}_f{k}_{mod}.jpg"
                    _write_img(root / rel)
                    lines[mod].append(f"{rel} {label}")
    for mod, top, cams in (("vis", "test_vis", LLCM_VIS_CAMS), ("nir", "test_nir", LLCM_NIR_CAMS)):
        for cam in cams:
            (root / top / f"cam{cam}").mkdir(parents=True, exist_ok=True)
            for pid in LLCM_TEST:
                for k in range(_llcm_count(pid, cam, mod)):
                    _write_img(root / top / f"cam{cam}" / f"{pid:04d}" / f"{pid:04d}_c{cam:02d}_{k:03d}.jpg")
    # decoys outside the protocol's camera lists (NIR has no cam 3; there is no cam 10): never read
    for top, cam in (("test_nir", 3), ("test_vis", 10)):
        for pid in LLCM_TEST:
            _write_img(root / top / f"cam{cam}" / f"{pid:04d}" / f"{pid:04d}_c{cam:02d}_decoy.jpg")
    (root / "idx").mkdir()
    (root / "idx" / "train_vis.txt").write_text("\n".join(lines["vis"]) + "\n")
    (root / "idx" / "train_nir.txt").write_text("\n".join(lines["nir"]) + "\n")
    (root / "idx" / "test_id.txt").write_text("13,2,9\n")
    return root


def _ref_llcm(data_path: str, mode: int, trial: int | None) -> list[str]:
    """Independent re-implementation of DEEN's process_query_llcm (trial None) / process_gallery_llcm."""
    if trial is not None:
        random.seed(trial)
    if mode == 1:
        cams = [f"test_vis/cam{c}" for c in range(1, 10)]
    else:
        cams = [f"test_nir/cam{c}" for c in (1, 2, 4, 5, 6, 7, 8, 9)]
    with open(os.path.join(data_path, "idx/test_id.txt")) as f:
        ids = [f"{int(y):04d}" for y in f.read().splitlines()[0].split(",")]
    files = []
    for pid in sorted(ids):
        for cam in cams:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                new_files = sorted([img_dir + "/" + i for i in os.listdir(img_dir)])
                if trial is None:
                    files.extend(new_files)
                else:
                    files.append(random.choice(new_files))
    return files


def test_llcm_ignores_camera_folders_outside_the_protocol(llcm_root):
    ds = load_dataset("llcm", llcm_root)
    cams = {(m, cam) for (m, _, cam) in ds.test_images}
    assert {cam for m, cam in cams if m == "rgb"} <= set(LLCM_VIS_CAMS) and ("ir", 3) not in cams
    for split in ds.eval_splits("ir->rgb", trials=range(3)) + ds.eval_splits("rgb->ir", trials=range(3)):
        assert not any("decoy" in p for p in _paths(split.query) + _paths(split.gallery))


def test_llcm_train(llcm_root):
    ds = load_dataset("llcm", llcm_root)
    expected = Counter()
    for pid in LLCM_TRAIN:
        for cam in LLCM_VIS_CAMS:
            expected[(pid, cam, "rgb")] += _llcm_count(pid, cam, "vis")
        for cam in LLCM_NIR_CAMS:
            expected[(pid, cam, "ir")] += _llcm_count(pid, cam, "nir")
    assert Counter((s.pid, s.camid, s.modality) for s in ds.train) == +expected
    assert all(s.label == LLCM_TRAIN.index(s.pid) for s in ds.train) and ds.protocol == "llcm"


def test_llcm_ir_to_rgb_matches_reference(llcm_root):
    ds = load_dataset("llcm", str(llcm_root))
    splits = ds.eval_splits("ir->rgb", trials=range(3))
    for split in splits:
        assert _paths(split.query) == _norm(_ref_llcm(str(llcm_root), 2, None))
        assert _paths(split.gallery) == _norm(_ref_llcm(str(llcm_root), 1, split.trial))
        assert all(s.modality == "ir" for s in split.query) and all(
            s.modality == "rgb" for s in split.gallery
        )
        assert 3 not in {s.camid for s in split.query}
    assert _paths(ds.gallery) == _paths(splits[0].gallery)
    assert len({tuple(_paths(s.gallery)) for s in splits}) > 1


def test_llcm_rgb_to_ir_symmetric_and_deen(llcm_root):
    ds = load_dataset("llcm", str(llcm_root))
    sym = ds.eval_splits("rgb->ir", trials=[1])[0]
    deen = ds.eval_splits("rgb->ir", trials=[1], deen_faithful=True)[0]
    all_vis = _norm(_ref_llcm(str(llcm_root), 1, None))
    drawn_nir = _norm(_ref_llcm(str(llcm_root), 2, 1))
    assert _paths(sym.query) == all_vis and _paths(sym.gallery) == drawn_nir
    assert _paths(deen.query) == drawn_nir and _paths(deen.gallery) == all_vis


def test_llcm_unparsable_train_path(llcm_root):
    path = llcm_root / "idx" / "train_vis.txt"
    _write_img(llcm_root / "misc" / "image.jpg")
    path.write_text(path.read_text() + "misc/image.jpg 0\n")
    with pytest.raises(DatasetFormatError, match=re.escape(str(path)) + r": line \d+: cannot parse"):
        load_dataset("llcm", llcm_root)


def test_llcm_missing_test_folder(llcm_root):
    import shutil

    shutil.rmtree(llcm_root / "test_nir")
    with pytest.raises(FileNotFoundError, match=re.escape(str(llcm_root / "test_nir"))):
        load_dataset("llcm", llcm_root)


def test_llcm_test_pid_without_images(llcm_root):
    (llcm_root / "idx" / "test_id.txt").write_text("13,2,9,77\n")
    with pytest.raises(DatasetFormatError, match="test_id.txt lists identity 77"):
        load_dataset("llcm", llcm_root)


# ----------------------------------------------------------------------------------------------- RGBNT201


def _rgbnt201_tree(root: Path, split: str, pids: list[int]) -> list[tuple[int, int]]:
    written = []
    for pid in pids:
        for cam in (1, 2, 3, 4):
            if (pid + cam) % 3 == 0:
                continue
            for k in range(2):
                name = f"{pid:06d}_cam{cam}_{k}_0{k}.jpg"
                for folder in ("RGB", "NI", "TI"):
                    _write_img(root / split / folder / name)
                written.append((pid, cam))
    return written


@pytest.fixture
def rgbnt201_root(tmp_path: Path) -> tuple[Path, list, list]:
    root = tmp_path / "RGBNT201"
    train = _rgbnt201_tree(root, "train_171", [7, 1, 20])
    test = _rgbnt201_tree(root, "test", [3, 50])
    return root, train, test


def test_rgbnt201(rgbnt201_root):
    root, train, test = rgbnt201_root
    ds = load_dataset("rgbnt201", root)
    assert ds.kind == "mm" and ds.modalities == ("rgb", "nir", "tir")
    assert Counter((s.pid, s.camid + 1) for s in ds.train) == Counter(train)
    assert Counter((s.pid, s.camid + 1) for s in ds.query) == Counter(test)
    assert ds.query is ds.gallery and len(ds.eval_splits()) == 1
    assert all(s.label == [1, 7, 20].index(s.pid) for s in ds.train)
    for s in ds.train + ds.query:
        assert s.modality == TRIPLET and {Path(p).name for p in s.paths.values()} == {
            Path(s.paths["rgb"]).name
        }
        assert [Path(s.paths[m]).parent.name for m in ("rgb", "nir", "tir")] == ["RGB", "NI", "TI"]
        assert 0 <= s.camid <= 3


def test_rgbnt201_missing_modality_file(rgbnt201_root):
    root, _, _ = rgbnt201_root
    victim = sorted((root / "test" / "TI").iterdir())[0]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(victim))):
        load_dataset("rgbnt201", root)


def test_rgbnt201_bad_name_and_missing_folder(rgbnt201_root):
    root, _, _ = rgbnt201_root
    for folder in ("RGB", "NI", "TI"):
        _write_img(root / "train_171" / folder / "person7.jpg")
    with pytest.raises(DatasetFormatError, match=re.escape(str(root / "train_171" / "RGB" / "person7.jpg"))):
        load_dataset("rgbnt201", root)
    for folder in ("RGB", "NI", "TI"):
        (root / "train_171" / folder / "person7.jpg").unlink()
    import shutil

    shutil.rmtree(root / "test" / "NI")
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / "test" / "NI"))):
        load_dataset("rgbnt201", root)


# ----------------------------------------------------------------------------------------------- RGBNT100


PANEL_COLORS = ((200, 10, 10), (10, 200, 10), (10, 10, 200))


def _panel_img(path: Path, width: int = 24) -> None:
    arr = np.zeros((8, width, 3), np.uint8)
    w = width // 3
    for i, c in enumerate(PANEL_COLORS):
        arr[:, i * w : (i + 1) * w] = c
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def rgbnt100_root(tmp_path: Path) -> Path:
    root = tmp_path / "RGBNT100"
    for split, pids in (("bounding_box_train", [5, 2]), ("query", [9]), ("bounding_box_test", [9, 11])):
        for pid in pids:
            for cam in (1, 8):
                _panel_img(root / "rgbir" / split / f"{pid:04d}_c{cam:03d}_{pid}{cam}.jpg")
    return root


def test_rgbnt100_panels(rgbnt100_root):
    ds = load_dataset("rgbnt100", rgbnt100_root)
    assert sorted({s.pid for s in ds.train}) == [2, 5] and all(
        s.label == [2, 5].index(s.pid) for s in ds.train
    )
    assert len(ds.query) == 2 and len(ds.gallery) == 4 and {s.camid for s in ds.gallery} == {0, 7}
    s = ds.train[0]
    assert s.panel == {"rgb": 0, "nir": 1, "tir": 2} and len(set(s.paths.values())) == 1
    for i, m in enumerate(("rgb", "nir", "tir")):
        arr = np.asarray(s.load_image(m))
        assert arr.shape == (8, 8, 3)
        assert np.abs(arr[2:6, 2:6].astype(int) - PANEL_COLORS[i]).max() < 40  # JPEG tolerance


def test_rgbnt100_root_may_be_rgbir(rgbnt100_root):
    assert len(load_dataset("rgbnt100", rgbnt100_root / "rgbir").train) == 4


def test_rgbnt100_bad_width_and_camera(rgbnt100_root):
    bad = rgbnt100_root / "rgbir" / "query" / "0009_c002_x.jpg"
    _panel_img(bad, width=25)
    with pytest.raises(
        DatasetFormatError, match=re.escape(str(bad)) + ".*three|" + re.escape(str(bad)) + ".*3 equal"
    ):
        load_dataset("rgbnt100", rgbnt100_root)
    bad.unlink()
    bad = rgbnt100_root / "rgbir" / "query" / "0009_c009_x.jpg"
    _panel_img(bad)
    with pytest.raises(DatasetFormatError, match=re.escape(str(bad)) + ".*cameras 1..8"):
        load_dataset("rgbnt100", rgbnt100_root)


def test_rgbnt100_missing_query(rgbnt100_root):
    import shutil

    shutil.rmtree(rgbnt100_root / "rgbir" / "query")
    with pytest.raises(FileNotFoundError, match=re.escape(str(rgbnt100_root / "rgbir" / "query"))):
        load_dataset("rgbnt100", rgbnt100_root)


# ----------------------------------------------------------------------------------------------- MSVR310


@pytest.fixture
def msvr_root(tmp_path: Path) -> Path:
    root = tmp_path / "MSVR310"
    layout = {"bounding_box_train": [4, 1], "query3": [8], "bounding_box_test": [8, 9]}
    for split, vids in layout.items():
        for vid in vids:
            for scene, cam in ((1, 0), (1, 3), (2, 7)):
                name = f"{vid:04d}_s{scene:03d}_v{cam}_{scene}{cam}.jpg"
                for folder in ("vis", "ni", "th"):
                    _write_img(root / split / f"{vid:04d}" / folder / name)
    return root


def test_msvr310(msvr_root):
    ds = load_dataset("msvr310", msvr_root)
    assert ds.protocol == "msvr310" and ds.modalities == ("rgb", "nir", "tir")
    assert sorted({s.pid for s in ds.train}) == [1, 4] and all(
        s.label == [1, 4].index(s.pid) for s in ds.train
    )
    assert Counter((s.scene, s.camid) for s in ds.gallery) == {(1, 0): 2, (1, 3): 2, (2, 7): 2}
    assert {s.pid for s in ds.query} == {8} and len(ds.query) == 3
    for s in ds.train + ds.query + ds.gallery:
        m = re.fullmatch(r"(\d{4})_s(\d{3})_v(\d)_\d+\.jpg", Path(s.paths["tir"]).name)
        assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (s.pid, s.scene, s.camid)
        assert Path(s.paths["nir"]).parent.name == "ni"


def test_msvr310_errors(msvr_root):
    bad = msvr_root / "query3" / "0008" / "vis" / "0009_s001_v0_x.jpg"
    for folder in ("vis", "ni", "th"):
        _write_img(bad.parent.parent / folder / bad.name)
    with pytest.raises(DatasetFormatError, match=re.escape(str(bad)) + ".*folder"):
        load_dataset("msvr310", msvr_root)
    for folder in ("vis", "ni", "th"):
        (bad.parent.parent / folder / bad.name).unlink()
    (msvr_root / "query3" / "0008" / "th" / "0008_s001_v0_10.jpg").unlink()
    with pytest.raises(
        FileNotFoundError, match=re.escape(str(msvr_root / "query3" / "0008" / "th" / "0008_s001_v0_10.jpg"))
    ):
        load_dataset("msvr310", msvr_root)


# ----------------------------------------------------------------------------------------------- validation


def test_holdout_vi(sysu_root):
    ds = load_dataset("sysu-mm01", sysu_root)
    kept, q, g = holdout_identities(ds.train, 2, seed=3)
    ids = sorted({s.pid for s in ds.train})
    held = set(random.Random(3).sample(ids, 2))
    assert {s.pid for s in q} <= held and {s.pid for s in g} == held
    assert {s.pid for s in kept} == set(ids) - held
    rest = sorted(set(ids) - held)
    assert all(s.label == rest.index(s.pid) for s in kept)
    assert all(s.modality == "ir" for s in q) and len(q) == sum(
        1 for s in ds.train if s.pid in held and s.modality == "ir"
    )
    groups = {(s.pid, s.camid) for s in ds.train if s.pid in held and s.modality == "rgb"}
    assert Counter((s.pid, s.camid) for s in g) == Counter(groups)  # one RGB image per (id, camera)
    assert all(s.label == -1 for s in q + g)
    again = holdout_identities(ds.train, 2, seed=3)
    assert _paths(again[2]) == _paths(g)


def test_holdout_triplets_and_arguments(rgbnt201_root):
    root, _, _ = rgbnt201_root
    ds = load_dataset("rgbnt201", root)
    kept, q, g = holdout_identities(ds.train, fraction=0.34, seed=0)
    assert q == g and len({s.pid for s in q}) == 1 and {s.label for s in kept} == {0, 1}
    with pytest.raises(ValueError, match="exactly one"):
        holdout_identities(ds.train)
    with pytest.raises(ValueError, match="num_ids must be between 1 and 2"):
        holdout_identities(ds.train, 3)
