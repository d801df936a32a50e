"""torch Dataset wrappers: shapes, labels, pair alignment, panels, collate, cache, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from workbench.data.samplers import TripletIdentitySampler, VIIdentitySampler
from workbench.data.samples import TRIPLET, Sample
from workbench.data.torch_datasets import ImageDataset, TripletDataset, VIPairDataset, collate
from workbench.data.transforms import build_test_transform, build_train_transform

H, W = 16, 8
# Identity transform up to scale: output = pixel / 255, so tests can read back the colour they wrote.
RAW = build_test_transform(H, W, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="nearest")


def _write(path, colour, size=(W, H)) -> str:
    Image.new("RGB", size, tuple(int(c) for c in colour)).save(path)
    return str(path)


def _decode(img: torch.Tensor) -> tuple[int, int, int]:
    """The constant colour of a RAW-transformed image."""
    rgb = (img[:, 0, 0] * 255).round().to(torch.int64)
    assert torch.equal(img, img[:, :1, :1].expand_as(img)), "expected a constant image"
    return tuple(rgb.tolist())


@pytest.fixture
def vi_samples(tmp_path):
    """5 identities; visible sample i has colour (i, 10 + label, 1), infrared sample j (j, 100 + label, 2)."""
    rgb, ir = [], []
    for label in range(5):
        for c in range(3):
            i = len(rgb)
            rgb.append(
                Sample(
                    {"rgb": _write(tmp_path / f"v{i}.png", (i, 10 + label, 1))},
                    pid=100 + label,
                    camid=1 + c % 2,
                    modality="rgb",
                    label=label,
                )
            )
        for c in range(2):
            j = len(ir)
            ir.append(
                Sample(
                    {"ir": _write(tmp_path / f"t{j}.png", (j, 100 + label, 2))},
                    pid=100 + label,
                    camid=3 + 3 * c,
                    modality="ir",
                    label=label,
                )
            )
    return rgb, ir


@pytest.fixture
def triplets(tmp_path):
    """4 identities x 3 triplets with separate files, plus one RGBNT100-style 3-panel sample (label 0)."""
    samples = []
    for label in range(4):
        for _ in range(3):
            n = len(samples)
            paths = {
                m: _write(tmp_path / f"{m}{n}.png", (n, 40 * k + label, 7))
                for k, m in enumerate(("rgb", "nir", "tir"))
            }
            samples.append(Sample(paths, pid=label, camid=n % 4, modality=TRIPLET, label=label))
    panel = np.zeros((H, 3 * W, 3), dtype=np.uint8)
    for k in range(3):
        panel[:, k * W : (k + 1) * W] = (200, 40 * k, 9)
    Image.fromarray(panel).save(tmp_path / "panel.png")
    path = str(tmp_path / "panel.png")
    samples.append(
        Sample(
            {m: path for m in ("rgb", "nir", "tir")},
            pid=0,
            camid=2,
            modality=TRIPLET,
            label=0,
            panel={"rgb": 0, "nir": 1, "tir": 2},
        )
    )
    return samples


# --- VIPairDataset -------------------------------------------------------------------------------------------------


def test_vi_pair_item(vi_samples):
    rgb, ir = vi_samples
    ds = VIPairDataset(rgb, ir, RAW, RAW)
    item = ds[(4, 3)]  # visible 4 and infrared 3 both have label 1
    assert set(item) == {"rgb", "ir", "label", "rgb_camid", "ir_camid"}
    assert item["rgb"].shape == item["ir"].shape == (3, H, W)
    assert _decode(item["rgb"]) == (4, 11, 1) and _decode(item["ir"]) == (3, 101, 2)
    assert item["label"] == 1 and item["rgb_camid"] == rgb[4].camid and item["ir_camid"] == ir[3].camid


def test_vi_pair_loader_with_sampler_is_aligned(vi_samples):
    rgb, ir = vi_samples
    ds = VIPairDataset(rgb, ir, build_train_transform("vi_rgb", H, W), build_train_transform("vi_ir", H, W))
    p, k = 3, 2
    sampler = VIIdentitySampler(ds.rgb_labels, ds.ir_labels, p, k, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == len(sampler) == max(len(rgb), len(ir)) // (p * k) + 1
    for batch, pairs in zip(batches, sampler.plan(0)):
        assert batch["rgb"].shape == batch["ir"].shape == (p * k, 3, H, W)
        assert batch["label"].dtype == torch.int64
        assert batch["label"].tolist() == [rgb[i].label for i, _ in pairs] == [ir[j].label for _, j in pairs]
        assert batch["ir_camid"].tolist() == [ir[j].camid for _, j in pairs]


def test_vi_pair_errors(vi_samples):
    rgb, ir = vi_samples
    ds = VIPairDataset(rgb, ir, RAW, RAW)
    with pytest.raises(ValueError, match="pairs must share the label"):
        ds[(0, 9)]
    with pytest.raises(ValueError, match=r"\(rgb_index, ir_index\) pairs"):
        ds[3]
    with pytest.raises(IndexError, match="rgb_index=99"):
        ds[(99, 0)]
    unlabelled = [Sample(rgb[0].paths, pid=1, camid=1, modality="rgb")]
    with pytest.raises(ValueError, match=r"rgb_samples\[0\].*label -1"):
        VIPairDataset(unlabelled, ir, RAW, RAW)
    with pytest.raises(ValueError, match="ir_samples is empty"):
        VIPairDataset(rgb, [], RAW, RAW)
    with pytest.raises(FileNotFoundError, match=r"rgb_samples\[0\] \(pid 1, rgb\).*/nonexistent/x.png"):
        VIPairDataset([Sample({"rgb": "/nonexistent/x.png"}, 1, 1, "rgb", label=0)], ir, RAW, RAW)[(0, 0)]


# --- TripletDataset ------------------------------------------------------------------------------------------------


def test_triplet_item_and_panels(triplets):
    ds = TripletDataset(triplets, RAW)
    assert len(ds) == 13 and ds.labels == [s.label for s in triplets]
    item = ds[5]
    assert set(item) == {"rgb", "nir", "tir", "label", "camid"}
    assert [_decode(item[m]) for m in ("rgb", "nir", "tir")] == [(5, 1, 7), (5, 41, 7), (5, 81, 7)]
    assert item["label"] == 1 and item["camid"] == triplets[5].camid
    panel = ds[12]  # RGBNT100 layout: one file, three side-by-side panels
    assert [_decode(panel[m]) for m in ("rgb", "nir", "tir")] == [(200, 0, 9), (200, 40, 9), (200, 80, 9)]


def test_triplet_loader_with_sampler(triplets):
    ds = TripletDataset(triplets, build_train_transform("reid", H, W))
    sampler = TripletIdentitySampler(ds.labels, 2, 2, seed=0)
    for batch, idx in zip(DataLoader(ds, batch_sampler=sampler, collate_fn=collate), sampler.plan(0)):
        for m in ("rgb", "nir", "tir"):
            assert batch[m].shape == (4, 3, H, W)
        assert batch["label"].tolist() == [triplets[i].label for i in idx]


def test_triplet_sync_geometry(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (H + 6, W + 4, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "same.png")
    path = str(tmp_path / "same.png")
    samples = [Sample({m: path for m in ("rgb", "nir", "tir")}, pid=0, camid=0, modality=TRIPLET, label=0)]
    tf = build_train_transform("reid", H, W, erasing_p=0.0)
    synced, independent = TripletDataset(samples, tf, sync_geometry=True), TripletDataset(samples, tf)
    torch.manual_seed(0)
    differs = 0
    for _ in range(10):
        a = synced[0]
        assert torch.equal(a["rgb"], a["nir"]) and torch.equal(a["rgb"], a["tir"])
        b = independent[0]
        differs += not (torch.equal(b["rgb"], b["nir"]) and torch.equal(b["rgb"], b["tir"]))
    assert differs >= 8
    with pytest.raises(ValueError, match="needs a ReIDTransform"):
        TripletDataset(samples, lambda im: im, sync_geometry=True)


def test_triplet_errors(vi_samples, triplets):
    rgb, _ = vi_samples
    with pytest.raises(ValueError, match=r"samples\[0\].*lacks modalities \['nir', 'tir'\]"):
        TripletDataset(rgb, RAW)
    with pytest.raises(IndexError):
        TripletDataset(triplets, RAW)[13]


# --- ImageDataset and collate ----------------------------------------------------------------------------------------


def test_image_dataset_vi_and_triplets(vi_samples, triplets):
    _, ir = vi_samples
    ds = ImageDataset(ir, RAW)
    assert ds.modalities == ("ir",) and len(ds) == len(ir)
    item = ds[7]
    assert set(item) == {"images", "index", "pid", "camid"}
    assert set(item["images"]) == {"ir"} and _decode(item["images"]["ir"]) == (7, 100 + ir[7].label, 2)
    assert (item["index"], item["pid"], item["camid"]) == (7, ir[7].pid, ir[7].camid)

    mm = ImageDataset(triplets, {"rgb": RAW, "nir": RAW, "tir": RAW})
    batch = collate([mm[i] for i in (0, 3, 12)])
    assert set(batch["images"]) == {"rgb", "nir", "tir"}
    assert all(batch["images"][m].shape == (3, 3, H, W) for m in ("rgb", "nir", "tir"))
    assert batch["index"].tolist() == [0, 3, 12] and batch["index"].dtype == torch.int64
    assert batch["pid"].tolist() == [triplets[i].pid for i in (0, 3, 12)]
    assert _decode(batch["images"]["nir"][2]) == (200, 40, 9)

    only_rgb = ImageDataset(triplets, RAW, modalities=["rgb"])
    assert set(only_rgb[0]["images"]) == {"rgb"}


def test_image_dataset_loader_order(vi_samples):
    rgb, _ = vi_samples
    ds = ImageDataset(rgb, RAW)
    batches = list(DataLoader(ds, batch_size=4, shuffle=False, collate_fn=collate))
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(len(rgb)))
    decoded = [_decode(img)[0] for b in batches for img in b["images"]["rgb"]]
    assert decoded == list(range(len(rgb)))


def test_image_dataset_errors(vi_samples, triplets):
    rgb, ir = vi_samples
    with pytest.raises(ValueError, match="mix modality sets"):
        ImageDataset(rgb + ir, RAW)
    with pytest.raises(ValueError, match="no entry for modalities"):
        ImageDataset(triplets, {"rgb": RAW})
    with pytest.raises(ValueError, match="lacks modalities"):
        ImageDataset(rgb, RAW, modalities=["ir"])


def test_collate_values_and_errors():
    batch = collate(
        [
            {"x": torch.zeros(2), "n": 1, "f": 0.5, "s": "a", "d": {"y": torch.ones(1, 2)}},
            {"x": torch.ones(2), "n": 2, "f": 1.5, "s": "b", "d": {"y": torch.ones(1, 2)}},
        ]
    )
    assert torch.equal(batch["x"], torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert batch["n"].dtype == torch.int64 and batch["n"].tolist() == [1, 2]
    assert batch["f"].dtype == torch.float32 and batch["f"].tolist() == [0.5, 1.5]
    assert batch["s"] == ["a", "b"] and batch["d"]["y"].shape == (2, 1, 2)
    with pytest.raises(ValueError, match="different keys"):
        collate([{"a": 1}, {"b": 1}])
    with pytest.raises(ValueError, match=r"batch\['x'\]: tensors have shapes"):
        collate([{"x": torch.zeros(2)}, {"x": torch.zeros(3)}])
    with pytest.raises(ValueError, match="empty batch"):
        collate([])


# --- cache -----------------------------------------------------------------------------------------------------------


def test_cache_equals_no_cache(vi_samples, triplets):
    rgb, ir = vi_samples
    tf_rgb, tf_ir = build_train_transform("vi_rgb", H, W), build_train_transform("vi_ir", H, W)
    pairs = VIIdentitySampler([s.label for s in rgb], [s.label for s in ir], 2, 2, seed=0).plan(0)[0]
    outs = []
    for cache in (False, True, True):
        ds = VIPairDataset(rgb, ir, tf_rgb, tf_ir, cache=cache)
        torch.manual_seed(0)
        outs.append(collate([ds[pair] for pair in pairs]))
    for key in ("rgb", "ir", "label"):
        assert torch.equal(outs[0][key], outs[1][key]) and torch.equal(outs[0][key], outs[2][key])

    tf = build_train_transform("reid", H, W)
    results = []
    for cache in (False, True):
        ds = TripletDataset(triplets, tf, sync_geometry=True, cache=cache)
        torch.manual_seed(1)
        results.append(collate([ds[i] for i in range(len(ds))] + [ds[i] for i in range(len(ds))]))
    assert all(torch.equal(results[0][m], results[1][m]) for m in ("rgb", "nir", "tir"))


def test_preload_serves_images_from_memory(tmp_path):
    path = _write(tmp_path / "a.png", (5, 6, 7))
    samples = [Sample({"rgb": path}, pid=0, camid=1, modality="rgb", label=0)]
    ds = ImageDataset(samples, RAW, cache=True)
    ds.preload()
    (tmp_path / "a.png").unlink()  # the decoded image is in memory now
    assert _decode(ds[0]["images"]["rgb"]) == (5, 6, 7)
    with pytest.raises(ValueError, match="cache=True"):
        ImageDataset(samples, RAW).preload()
