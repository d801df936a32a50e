"""Round trip: each real loader reads a synthetic export of its own layout.

Expected pools, counts, labels and factors are computed from what the generator wrote
(`synthetic_factors.jsonl`, one line per image or triplet, and `synthetic_manifest.json`), never from the loader.
Also covers the synthetic presets of `load_dataset` (cache, reuse, interrupted exports).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from workbench.data import TRIPLET, load_dataset
from workbench.data import registry as registry_mod

synthetic = pytest.importorskip("workbench.data.synthetic")

TINY = synthetic.SyntheticConfig(height=32, width=16)
TINY_VEHICLES = synthetic.VehicleConfig(height=32, width=64)  # rgbnt100 and msvr310 render vehicles
IDS = {"sysu-mm01": 9, "regdb": 8, "llcm": 8, "rgbnt201": 8, "rgbnt100": 6, "msvr310": 8}


def _lines(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "synthetic_factors.jsonl").read_text().splitlines() if line]


def _key_line(root: Path, line: dict) -> tuple:
    rel = sorted(set(line["paths"].values()))
    return (tuple(str((root / r).resolve()) for r in rel), line["pid"], line["camid"], line["modality"])


def _key_sample(s) -> tuple:
    return (tuple(sorted({str(Path(p).resolve()) for p in s.paths.values()})), s.pid, s.camid, s.modality)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, tuple[Path, dict, list[dict]]]:
    out = {}
    for layout, ids in IDS.items():
        root = tmp_path_factory.mktemp(layout.replace("-", "_"))
        config = TINY_VEHICLES if layout in synthetic.VEHICLE_LAYOUTS else TINY
        manifest = synthetic.export(
            layout, root, ids=ids, seed=3, config=config, images_per_id_cam=3, progress=False
        )
        out[layout] = (root, manifest, _lines(root))
    return out


def _check_train(ds, lines, root, train_ids):
    expected = Counter(_key_line(root, ln) for ln in lines if ln["pid"] in set(train_ids))
    assert Counter(_key_sample(s) for s in ds.train) == expected
    order = sorted(train_ids)
    assert all(s.label == order.index(s.pid) for s in ds.train)
    assert ds.num_train_ids == len(order)


def _check_factors(ds, lines, root, pools):
    by_key = {_key_line(root, ln): ln["factors"] for ln in lines}
    for pool in pools:
        for s in pool:
            assert s.factors == by_key[_key_sample(s)]


def test_sysu_round_trip(exports):
    root, manifest, lines = exports["sysu-mm01"]
    ds = load_dataset("sysu-mm01", root)
    sp = manifest["splits"]
    _check_train(ds, lines, root, sp["train"] + sp["val"])
    test = set(sp["test"])
    q_expected = Counter(_key_line(root, ln) for ln in lines if ln["pid"] in test and ln["camid"] in (3, 6))
    assert Counter(_key_sample(s) for s in ds.query) == q_expected
    for mode, cams in (("all", {1, 2, 4, 5}), ("indoor", {1, 2})):
        groups = {(ln["pid"], ln["camid"]) for ln in lines if ln["pid"] in test and ln["camid"] in cams}
        for split in ds.eval_splits(mode=mode, trials=range(3)):
            assert Counter((s.pid, s.camid) for s in split.gallery) == Counter(groups)
    n_train = sum(
        v for s in ("train", "val") for m in manifest["counts"].get(s, {}).values() for v in m.values()
    )
    assert len(ds.train) == n_train
    _check_factors(ds, lines, root, [ds.train, ds.query, ds.gallery])


@pytest.mark.parametrize("trial", [1, 7])
def test_regdb_round_trip(exports, trial):
    root, manifest, lines = exports["regdb"]
    ds = load_dataset("regdb", root, trial=trial)
    sp = manifest["trials"][str(trial)]
    _check_train(ds, lines, root, sp["train"])
    test = set(sp["test"])
    (v2t,) = ds.eval_splits("v2t")
    vis = Counter(_key_line(root, ln) for ln in lines if ln["pid"] in test and ln["modality"] == "rgb")
    th = Counter(_key_line(root, ln) for ln in lines if ln["pid"] in test and ln["modality"] == "ir")
    assert Counter(map(_key_sample, v2t.query)) == vis and Counter(map(_key_sample, v2t.gallery)) == th
    assert len(v2t.query) == manifest["index_files"][f"idx/test_visible_{trial}.txt"]
    _check_factors(ds, lines, root, [ds.train, ds.query, ds.gallery])


def test_llcm_round_trip(exports):
    root, manifest, lines = exports["llcm"]
    ds = load_dataset("llcm", root)
    sp = manifest["splits"]
    _check_train(ds, lines, root, sp["train"])
    assert (
        len(ds.train)
        == manifest["index_files"]["idx/train_vis.txt"] + manifest["index_files"]["idx/train_nir.txt"]
    )
    test = [ln for ln in lines if ln["split"] == "test"]
    assert Counter(map(_key_sample, ds.query)) == Counter(
        _key_line(root, ln) for ln in test if ln["modality"] == "ir"
    )
    groups = Counter({(ln["pid"], ln["camid"]) for ln in test if ln["modality"] == "rgb"})
    for split in ds.eval_splits("ir->rgb", trials=range(3)):
        assert Counter((s.pid, s.camid) for s in split.gallery) == groups
    _check_factors(ds, lines, root, [ds.train, ds.query, ds.gallery])


def test_rgbnt201_round_trip(exports):
    root, manifest, lines = exports["rgbnt201"]
    ds = load_dataset("rgbnt201", root)
    _check_train(ds, lines, root, manifest["splits"]["train"])
    test = Counter(_key_line(root, ln) for ln in lines if ln["split"] == "test")
    assert Counter(map(_key_sample, ds.query)) == test and ds.gallery == ds.query
    assert len(ds.train) == sum(manifest["counts"]["train"][TRIPLET].values())
    _check_factors(ds, lines, root, [ds.train, ds.query])


def test_rgbnt100_round_trip(exports):
    root, manifest, lines = exports["rgbnt100"]
    ds = load_dataset("rgbnt100", root)
    _check_train(ds, lines, root, manifest["splits"]["train"])
    for pool, split in ((ds.query, "query"), (ds.gallery, "gallery")):
        assert Counter(map(_key_sample, pool)) == Counter(
            _key_line(root, ln) for ln in lines if ln["split"] == split
        )
    panels = {ln["paths"]["rgb"]: ln["panel"] for ln in lines}
    for s in ds.train + ds.query:
        assert dict(s.panel) == panels[Path(s.paths["rgb"]).relative_to(root).as_posix()]
        assert s.load_image("tir").size == (256, 128)  # real panel geometry, whatever the render size
    _check_factors(ds, lines, root, [ds.train, ds.query, ds.gallery])


def test_rgbnt100_files_have_the_real_geometry_for_the_reference_readers(exports):
    """TOP-ReID / DeMo `bases.read_image` crop fixed 256-pixel panels at x = 0, 256, 512 of a 768x128 file: with the
    real geometry every crop is a full, non-black panel equal to what the workbench loader reads."""
    import numpy as np
    from PIL import Image

    root, manifest, lines = exports["rgbnt100"]
    assert manifest["panel_hw"] == [128, 256]
    ds = load_dataset("rgbnt100", root)
    for s in ds.train[:4]:
        im = Image.open(s.paths["rgb"]).convert("RGB")
        assert im.size == (768, 128)
        for i, m in enumerate(("rgb", "nir", "tir")):
            crop = np.asarray(im.crop((256 * i, 0, 256 * (i + 1), 128)))
            assert crop.shape == (128, 256, 3) and crop.mean() > 5  # not the black area past a 192-pixel file
            assert np.array_equal(crop, np.asarray(s.load_image(m)))


def test_rgbnt100_render_size_export_is_still_possible(tmp_path):
    from PIL import Image

    synthetic.export("rgbnt100", tmp_path, ids=4, seed=1, config=TINY_VEHICLES, images_per_id_cam=1,
                     progress=False, panel_hw=None)
    files = sorted(tmp_path.glob("rgbir/*/*.jpg"))
    assert files and all(Image.open(f).size == (3 * TINY_VEHICLES.width, TINY_VEHICLES.height) for f in files)


def test_msvr310_round_trip(exports):
    root, manifest, lines = exports["msvr310"]
    ds = load_dataset("msvr310", root)
    _check_train(ds, lines, root, manifest["splits"]["train"])
    for pool, split in ((ds.query, "query"), (ds.gallery, "gallery")):
        expected = Counter((*_key_line(root, ln), ln["scene"]) for ln in lines if ln["split"] == split)
        assert Counter((*_key_sample(s), s.scene) for s in pool) == expected
    assert {s.pid for s in ds.query} == set(manifest["splits"]["query"])
    _check_factors(ds, lines, root, [ds.train, ds.query, ds.gallery])


# ----------------------------------------------------------------------------------------------- presets


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "synthetic"


def test_preset_exports_once_and_reuses(cache, monkeypatch):
    ds = load_dataset("synthetic-vi", ids=6, seed=1, config=TINY)
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]  # hidden: the build lock
    assert folder.name.startswith("sysu-mm01-") and ds.name == "synthetic-vi" and ds.protocol == "sysu"
    assert all(s.factors for s in ds.train)
    assert Path(ds.root) == folder

    def fail(*args, **kwargs):
        raise AssertionError("export called again for a cached preset")

    monkeypatch.setattr(synthetic, "export", fail)
    again = load_dataset("synthetic-vi", ids=6, seed=1, config=TINY, mode="indoor")
    assert [s.paths for s in again.train] == [s.paths for s in ds.train]
    assert {s.camid for s in again.gallery} <= {1, 2}


def test_preset_arguments_change_the_folder(cache):
    a = load_dataset("synthetic-rgbnt", ids=4, seed=0, config=TINY)
    b = load_dataset("synthetic-rgbnt", ids=4, seed=1, config=TINY)
    assert a.root != b.root and a.kind == "mm" and a.query is a.gallery
    assert sorted(p.name.split("-")[0] for p in cache.iterdir() if not p.name.startswith(".")) == ["rgbnt201", "rgbnt201"]


def test_preset_interrupted_export_is_not_reused(cache, monkeypatch):
    real_export = synthetic.export

    def crash(layout, out, **kwargs):
        (Path(out) / "cam1").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "export", crash)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("synthetic-msvr310", ids=4, seed=0, config=TINY_VEHICLES)
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.endswith(".lock")]  # nothing renamed
    monkeypatch.setattr(synthetic, "export", real_export)
    ds = load_dataset("synthetic-msvr310", ids=4, seed=0, config=TINY_VEHICLES)
    assert len(ds.train) > 0 and all(s.scene is not None for s in ds.gallery)


def test_preset_incomplete_folder_under_final_name_is_replaced(cache):
    ds = load_dataset("synthetic-regdb", ids=4, seed=0, config=TINY, images_per_id_cam=2)
    (Path(ds.root) / "synthetic_manifest.json").unlink()
    again = load_dataset("synthetic-regdb", ids=4, seed=0, config=TINY, images_per_id_cam=2)
    assert (Path(again.root) / "synthetic_manifest.json").is_file() and len(again.train) == len(ds.train)


def test_preset_difficulty_and_errors(cache):
    ds = load_dataset("synthetic-rgbnt100", ids=4, seed=0, difficulty="easy")
    manifest = json.loads((Path(ds.root) / "synthetic_manifest.json").read_text())
    assert manifest["config"] == dataclasses.asdict(synthetic.VehicleConfig.easy())  # the vehicle world's preset
    assert ds.name == "synthetic-rgbnt100" and ds.train[0].load_image("tir").size == (256, 128)
    with pytest.raises(ValueError, match="root= must be None"):
        load_dataset("synthetic-vi", root="/tmp/x")
    with pytest.raises(ValueError, match="difficulty"):
        load_dataset("synthetic-vi", ids=4, difficulty="extreme")
    with pytest.raises(ValueError, match="synthetic presets"):
        load_dataset("sysu-mm01", "/tmp/x", ids=4)
    assert registry_mod.PRESETS["synthetic-vi"] == "sysu-mm01"


def test_difficulty_dict_overrides_knobs_of_a_preset(tmp_path, monkeypatch):
    from workbench.data import registry, synthetic

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    seen = {}
    real_export = synthetic.export

    def spy(layout, out, **kwargs):
        seen["config"] = kwargs["config"]
        return real_export(layout, out, **kwargs)

    monkeypatch.setattr(synthetic, "export", spy)
    registry.synthetic_root("rgbnt201", ids=4, seed=0, difficulty={"preset": "easy", "viewpoint_spread": 0.6})
    assert seen["config"] == synthetic.SyntheticConfig.easy(viewpoint_spread=0.6)
    registry.synthetic_root("msvr310", ids=4, seed=0, difficulty={"preset": "medium", "model_sharing": 0.1})
    assert seen["config"] == synthetic.VehicleConfig.medium(model_sharing=0.1)
    with pytest.raises(TypeError):
        registry.synthetic_root("rgbnt201", ids=4, seed=0, difficulty={"preset": "easy", "no_such_knob": 1})
