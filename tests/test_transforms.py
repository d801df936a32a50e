"""Transforms: channel augmentations, CutSwap modes, erasing boxes, geometry, synced triplets, reproducibility."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.data.transforms import (
    CAJ_ERASE_MEAN,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LUMA,
    ChannelAdapGray,
    ChannelExchange,
    ChannelRandomErasing,
    CutSwap,
    Geometry,
    RandomErasing,
    ReIDTransform,
    SyncedTransform,
    build_test_transform,
    build_train_transform,
)

H, W = 48, 24


def _noise(seed: int = 0, h: int = H, w: int = W) -> torch.Tensor:
    """(3, H, W) float tensor whose channels differ at every pixel (almost surely)."""
    return torch.randn(3, h, w, generator=torch.Generator().manual_seed(seed))


def _noise_pil(seed: int = 0, h: int = 40, w: int = 20) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def _changed_box(before: torch.Tensor, after: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(top, left, h, w) of the changed pixels, asserting they form exactly one filled rectangle."""
    changed = (before != after).any(dim=0)
    if not changed.any():
        return None
    rows = torch.nonzero(changed.any(dim=1)).flatten()
    cols = torch.nonzero(changed.any(dim=0)).flatten()
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    assert changed[top:bottom, left:right].all(), "changed pixels do not fill their bounding box"
    assert int(changed.sum()) == (bottom - top) * (right - left)
    return top, left, bottom - top, right - left


def _single_channel_source(before: torch.Tensor, after: torch.Tensor, box=None) -> int | None:
    """The original channel that all three output channels equal inside `box` (whole image if None), or None."""
    t, left, h, w = box if box is not None else (0, 0, before.shape[1], before.shape[2])
    region = after[:, t : t + h, left : left + w]
    for c in range(3):
        if torch.equal(region, before[c, t : t + h, left : left + w].expand(3, h, w)):
            return c
    return None


def _binomial_ok(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


# --- CutSwap -------------------------------------------------------------------------------------------------------


def test_cutswap_code_faithful_is_whole_image_channel_exchange():
    g = torch.Generator().manual_seed(0)
    op = CutSwap(p=1.0, mode="code_faithful", generator=g)
    channels = []
    for seed in range(60):
        img = _noise(seed)
        out = op(img)
        c = _single_channel_source(img, out)
        assert c is not None, "all three output channels must equal one original channel everywhere"
        channels.append(c)
    assert set(channels) == {0, 1, 2}


def test_cutswap_probability():
    g = torch.Generator().manual_seed(1)
    op = CutSwap(p=0.5, mode="code_faithful", generator=g)
    img = _noise()
    n = 400
    applied = sum(not torch.equal(op(img), img) for _ in range(n))
    assert _binomial_ok(applied, n, 0.5)


def test_cutswap_intended_pastes_one_single_channel_rectangle():
    g = torch.Generator().manual_seed(2)
    lo, hi = 0.3, 0.6
    op = CutSwap(p=1.0, ratio=(lo, hi), mode="intended", generator=g)
    heights, widths, tops, lefts, ratio_gaps = set(), set(), set(), set(), []
    for seed in range(200):
        img = _noise(seed)
        out = op(img)
        box = _changed_box(img, out)
        assert box is not None
        top, left, h, w = box
        # region floor(H r_h) x floor(W r_w), r ~ U[0.3, 0.6]
        assert math.floor(H * lo) <= h <= math.floor(H * hi)
        assert math.floor(W * lo) <= w <= math.floor(W * hi)
        assert top + h <= H and left + w <= W
        assert _single_channel_source(img, out, box) is not None  # an "IR-like" rectangle
        heights.add(h), widths.add(w), tops.add(top), lefts.add(left)
        ratio_gaps.append(abs(h / H - w / W))
    # the ratios span their range, the position is spread, and r_h, r_w are drawn independently
    assert min(heights) <= math.floor(H * lo) + 1 and max(heights) >= math.floor(H * hi) - 1
    assert min(tops) == 0 and len(tops) > 10 and len(lefts) > 5
    assert max(ratio_gaps) > 0.15


def test_cutswap_intended_position_and_channel_are_uniform():
    """With fixed ratios the box is h x w; its top-left corner is uniform on [0, H - h] x [0, W - w] (both ends
    included, so the box reaches every edge) and the source channel is uniform on R, G, B."""
    g = torch.Generator().manual_seed(5)
    op = CutSwap(p=1.0, ratio=(0.5, 0.5), mode="intended", generator=g)
    h, w = H // 2, W // 2
    img = _noise(7)
    n = 1500
    tops, lefts, channels = Counter(), Counter(), Counter()
    for _ in range(n):
        out = op(img)
        box = _changed_box(img, out)
        assert box is not None and box[2:] == (h, w)
        tops[box[0]] += 1
        lefts[box[1]] += 1
        channels[_single_channel_source(img, out, box)] += 1
    for counts, k in ((tops, H - h + 1), (lefts, W - w + 1), (channels, 3)):
        assert set(counts) == set(range(k)), sorted(counts)  # every position, edges included; every channel
        assert all(_binomial_ok(counts[v], n, 1 / k) for v in range(k)), counts


def test_cutswap_off_is_identity_and_input_untouched():
    img = _noise()
    keep = img.clone()
    assert torch.equal(CutSwap(p=1.0, mode="off")(img), keep)
    for mode in ("code_faithful", "intended"):
        CutSwap(p=1.0, mode=mode)(img)
        assert torch.equal(img, keep), f"{mode} modified its input in place"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="whole"), "mode must be one of"),
        (dict(ratio=(0.6, 0.3)), "ratio must be"),
        (dict(p=1.5), "p must be a probability"),
    ],
)
def test_cutswap_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CutSwap(**kwargs)


def test_channel_ops_reject_wrong_shapes():
    for op in (CutSwap(), ChannelExchange(), ChannelAdapGray(), ChannelRandomErasing(), RandomErasing()):
        with pytest.raises(ValueError, match=r"\(3, H, W\)"):
            op(torch.zeros(1, 8, 8))
        with pytest.raises(ValueError, match=r"\(3, H, W\)"):
            op(torch.zeros(3, 8, 8, dtype=torch.uint8))


# --- ChannelExchange / ChannelAdapGray -------------------------------------------------------------------------------


def _luma(img: torch.Tensor) -> torch.Tensor:
    return LUMA[0] * img[0] + LUMA[1] * img[1] + LUMA[2] * img[2]


def test_channel_exchange_gray2_always_copies_a_channel():
    g = torch.Generator().manual_seed(3)
    op = ChannelExchange(gray=2, generator=g)
    img = _noise()
    picks = [_single_channel_source(img, op(img)) for _ in range(300)]
    assert None not in picks
    counts = np.bincount(picks, minlength=3)
    assert all(_binomial_ok(c, 300, 1 / 3) for c in counts)


def test_channel_exchange_gray3_greys_a_quarter():
    g = torch.Generator().manual_seed(4)
    op = ChannelExchange(gray=3, generator=g)
    img = _noise()
    luma = _luma(img)
    n, grey = 400, 0
    for _ in range(n):
        out = op(img)
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
        if _single_channel_source(img, out) is None:
            assert torch.allclose(out[0], luma)
            grey += 1
    assert _binomial_ok(grey, n, 0.25)


def test_channel_adap_gray_outcome_frequencies():
    p = 0.5
    g = torch.Generator().manual_seed(5)
    op = ChannelAdapGray(p=p, generator=g)
    img = _noise()
    luma = _luma(img)
    n = 800
    counts = {"copy": 0, "grey": 0, "same": 0}
    for _ in range(n):
        out = op(img)
        if torch.equal(out, img):
            counts["same"] += 1
        elif _single_channel_source(img, out) is not None:
            counts["copy"] += 1
        else:
            assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
            assert torch.allclose(out[0], luma)
            counts["grey"] += 1
    # k ~ U{0..3}: copy with prob 3/4; k = 3: grey with prob p, unchanged otherwise
    assert _binomial_ok(counts["copy"], n, 0.75)
    assert _binomial_ok(counts["grey"], n, 0.25 * p)
    assert _binomial_ok(counts["same"], n, 0.25 * (1 - p))


# --- erasing -------------------------------------------------------------------------------------------------------


def _check_erase_box(h: int, w: int, sl: float, sh: float, r1: float) -> None:
    """Invert the rounding of h = round(sqrt(A a)), w = round(sqrt(A / a)), A / HW in [sl, sh], a in [r1, 1 / r1]."""
    area_lo, area_hi = (h - 0.5) * (w - 0.5), (h + 0.5) * (w + 0.5)
    assert area_lo <= sh * H * W and area_hi >= sl * H * W
    aspect_lo, aspect_hi = (h - 0.5) / (w + 0.5), (h + 0.5) / max(w - 0.5, 1e-9)
    assert aspect_lo <= 1 / r1 and aspect_hi >= r1
    assert h < H and w < W


def test_channel_random_erasing_box_and_fill():
    g = torch.Generator().manual_seed(6)
    sl, sh, r1 = 0.02, 0.4, 0.3
    op = ChannelRandomErasing(p=1.0, sl=sl, sh=sh, r1=r1, generator=g)
    img = torch.full((3, H, W), 7.0)
    areas = []
    for _ in range(200):
        out = op(img)
        box = _changed_box(img, out)
        assert box is not None
        top, left, h, w = box
        _check_erase_box(h, w, sl, sh, r1)
        fill = out[:, top : top + h, left : left + w]
        # the CAJ quirk: [0, 1]-unit CIFAR means written into the normalised tensor
        assert torch.equal(fill, torch.tensor(CAJ_ERASE_MEAN).view(3, 1, 1).expand_as(fill))
        areas.append(h * w / (H * W))
    assert min(areas) < 0.06 and max(areas) > 0.3


def test_channel_random_erasing_probability():
    g = torch.Generator().manual_seed(7)
    op = ChannelRandomErasing(p=0.5, generator=g)
    img = torch.full((3, H, W), 7.0)
    n = 400
    erased = sum(not torch.equal(op(img), img) for _ in range(n))
    assert _binomial_ok(erased, n, 0.5)
    assert torch.equal(ChannelRandomErasing(p=0.0)(img), img)


@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
def test_random_erasing_box_and_modes(mode):
    g = torch.Generator().manual_seed(8)
    op = RandomErasing(p=1.0, mode=mode, value=-3.0, generator=g)
    img = torch.full((3, H, W), 7.0)
    for _ in range(100):
        out = op(img)
        box = _changed_box(img, out)
        assert box is not None
        top, left, h, w = box
        _check_erase_box(h, w, 0.02, 1 / 3, 0.3)
        fill = out[:, top : top + h, left : left + w]
        if mode == "const":
            assert torch.equal(fill, torch.full_like(fill, -3.0))
        elif mode == "rand":  # one value per channel
            assert torch.equal(fill, fill[:, :1, :1].expand_as(fill))
        elif h * w > 1:  # per-pixel values
            assert fill[0].flatten().unique().numel() > 1


def _reference_erasing(img: torch.Tensor, g: torch.Generator, *, p: float, sl: float, sh: float, r1: float,
                       log_aspect: bool, attempts: int, fill: str, value) -> torch.Tensor:
    """Random Erasing written out as the two reference codes do it, one draw at a time from `g`: CAJ/DAKD
    `ChannelRandomErasing` (uniform aspect, 100 attempts, per-channel constants) and timm's `RandomErasing` as
    TOP-ReID uses it (log-uniform aspect, 10 attempts, pixel / rand / const fill)."""
    out = img.clone()
    if torch.rand((), generator=g).item() >= p:
        return out
    _, h_img, w_img = img.shape
    for _ in range(attempts):
        target = (sl + (sh - sl) * torch.rand((), generator=g).item()) * h_img * w_img
        if log_aspect:
            lo, hi = math.log(r1), math.log(1 / r1)
            aspect = math.exp(lo + (hi - lo) * torch.rand((), generator=g).item())
        else:
            aspect = r1 + (1 / r1 - r1) * torch.rand((), generator=g).item()
        h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if w < w_img and h < h_img:
            top = int(torch.randint(0, h_img - h + 1, (), generator=g).item())
            left = int(torch.randint(0, w_img - w + 1, (), generator=g).item())
            if fill == "pixel":
                out[:, top : top + h, left : left + w] = torch.randn((3, h, w), generator=g, dtype=img.dtype)
            elif fill == "rand":
                out[:, top : top + h, left : left + w] = torch.randn((3, 1, 1), generator=g, dtype=img.dtype)
            else:
                for c in range(3):
                    out[c, top : top + h, left : left + w] = value[c]
            return out
    return out


@pytest.mark.parametrize("flavour", ["channel", "channel_custom", "pixel", "rand", "const"])
def test_both_erasing_flavours_equal_the_reference_draw_for_draw(flavour):
    """One implementation, both behaviours: the same generator state gives bit-identical images to the reference
    algorithm of each flavour (box draws, attempts, aspect law, fill), across sizes where attempts fail too."""
    if flavour.startswith("channel"):
        kw = dict(p=0.7, sl=0.02, sh=0.4, r1=0.3, mean=CAJ_ERASE_MEAN) if flavour == "channel" else \
            dict(p=1.0, sl=0.3, sh=0.95, r1=0.5, mean=(0.1, -2.0, 3.0))
        make = lambda g: ChannelRandomErasing(**kw, generator=g)  # noqa: E731
        ref = dict(p=kw["p"], sl=kw["sl"], sh=kw["sh"], r1=kw["r1"], log_aspect=False, attempts=100, fill="const",
                   value=kw["mean"])
    else:
        make = lambda g: RandomErasing(p=0.8, mode=flavour, value=-1.5, generator=g)  # noqa: E731
        ref = dict(p=0.8, sl=0.02, sh=1 / 3, r1=0.3, log_aspect=True, attempts=10, fill=flavour, value=(-1.5,) * 3)
    for seed in range(40):
        for h, w in ((48, 24), (5, 3)):  # 5x3: boxes often fail every attempt
            img = _noise(seed, h, w)
            op, g_ref = make(torch.Generator().manual_seed(seed)), torch.Generator().manual_seed(seed)
            for _ in range(3):  # successive calls continue the same stream
                got, want = op(img), _reference_erasing(img, g_ref, **ref)
                assert torch.equal(got, want), (flavour, seed, h, w)


def test_erasing_errors():
    with pytest.raises(ValueError, match="sl <= sh"):
        ChannelRandomErasing(sl=0.5, sh=0.4)
    with pytest.raises(ValueError, match="r1"):
        RandomErasing(r1=2.0)
    with pytest.raises(ValueError, match="mode must be"):
        RandomErasing(mode="zeros")
    with pytest.raises(ValueError, match="3 fill values"):
        ChannelRandomErasing(mean=(0.1, 0.2))


# --- reproducibility -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["reid", "vi_rgb", "vi_ir", "vi_rgb_ca", "vi_regdb"])
def test_reproducible_under_manual_seed(kind):
    tf = build_train_transform(kind, 32, 16, cutswap="intended" if kind == "vi_rgb" else None)
    img = _noise_pil()
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outs.append(torch.stack([tf(img) for _ in range(6)]))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_reproducible_with_explicit_generator():
    img = _noise_pil()

    def run(seed):
        tf = build_train_transform("vi_rgb", 32, 16, generator=torch.Generator().manual_seed(seed))
        return torch.stack([tf(img) for _ in range(6)])

    torch.manual_seed(0)
    a = run(11)
    torch.manual_seed(99)  # the global state is irrelevant with an explicit generator
    assert torch.equal(a, run(11))
    assert not torch.equal(a, run(12))


# --- geometry, normalisation, pipelines ------------------------------------------------------------------------------


def test_test_transform_normalises_exactly():
    value = 200
    img = Image.new("RGB", (30, 70), (value, value, value))
    out = build_test_transform(64, 32)(img)
    assert out.shape == (3, 64, 32) and out.dtype == torch.float32
    expected = (value / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out, expected.view(3, 1, 1).expand(3, 64, 32), atol=1e-6)


@pytest.mark.parametrize("kind, mean, fill", [("reid", 0.5, 0), ("vi_rgb", None, 0), ("vi_regdb", None, 127)])
def test_pad_and_crop_shift_the_image(kind, mean, fill):
    """White image, pad 10, random crop: the white part is the image shifted by (10 - top, 10 - left)."""
    h, w, pad = 32, 16, 10
    tf = build_train_transform(
        kind,
        h,
        w,
        flip_p=0.0,
        erasing_p=0.0,
        cutswap="off" if kind == "vi_rgb" else None,
        generator=torch.Generator().manual_seed(0),
    )
    img = Image.new("RGB", (w, h), (255, 255, 255))
    mean_t = torch.tensor([0.5] * 3 if mean else IMAGENET_MEAN).view(3, 1, 1)
    std_t = torch.tensor([0.5] * 3 if mean else IMAGENET_STD).view(3, 1, 1)
    shifts = set()
    for _ in range(40):
        out = tf(img) * std_t + mean_t  # back to [0, 1]
        white = (out > 0.999).all(dim=0)
        rows = torch.nonzero(white.any(dim=1)).flatten()
        cols = torch.nonzero(white.any(dim=0)).flatten()
        top_shift = int(rows[0]) if rows[0] > 0 else -(h - 1 - int(rows[-1]))  # >0: border on top
        left_shift = int(cols[0]) if cols[0] > 0 else -(w - 1 - int(cols[-1]))
        assert abs(top_shift) <= pad and abs(left_shift) <= pad
        assert int(white.sum()) == (h - abs(top_shift)) * (w - abs(left_shift))
        border = out[:, ~white]
        if border.numel():
            assert torch.allclose(border, torch.full_like(border, fill / 255), atol=1e-5)
        shifts.add((top_shift, left_shift))
    assert len(shifts) > 10


def test_flip():
    arr = np.zeros((8, 4, 3), dtype=np.uint8)
    arr[:, :2, 0] = 255  # red left half
    arr[:, 2:, 2] = 255  # blue right half
    tf = ReIDTransform(Geometry((8, 4), "nearest", flip_p=1.0), (0, 0, 0), (1, 1, 1))
    out = tf(arr)
    assert torch.equal(out[2, :, :2], torch.ones(8, 2)) and torch.equal(out[0, :, 2:], torch.ones(8, 2))
    assert torch.equal(out[0, :, :2], torch.zeros(8, 2))


def test_pipeline_composition_follows_dakd_and_topreid():
    def ops(tf):
        return [type(op).__name__ for op in tf.ops]

    assert ops(build_train_transform("reid", 32, 16)) == ["RandomErasing"]
    assert ops(build_train_transform("vi_rgb", 32, 16)) == ["CutSwap", "ChannelRandomErasing"]
    assert build_train_transform("vi_rgb", 32, 16).ops[0].mode == "code_faithful"
    assert build_train_transform("vi_rgb", 32, 16, cutswap="intended").ops[0].mode == "intended"
    assert ops(build_train_transform("vi_ir", 32, 16)) == ["ChannelRandomErasing", "ChannelAdapGray"]
    assert ops(build_train_transform("vi_rgb_ca", 32, 16)) == ["ChannelRandomErasing", "ChannelExchange"]
    assert ops(build_train_transform("vi_regdb", 32, 16)) == ["ChannelRandomErasing"]
    assert build_train_transform("reid", 32, 16).geometry.interpolation == "bicubic"
    assert build_train_transform("vi_regdb", 32, 16).geometry.pad_fill == 127


def test_vi_rgb_ca_view_has_equal_channels():
    tf = build_train_transform("vi_rgb_ca", 32, 16, erasing_p=0.0)
    torch.manual_seed(0)
    for _ in range(10):
        out = tf(_noise_pil())
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_builder_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        build_train_transform("sysu", 32, 16)
    with pytest.raises(ValueError, match="has no CutSwap"):
        build_train_transform("vi_ir", 32, 16, cutswap="intended")
    with pytest.raises(ValueError, match="cutswap must be"):
        build_train_transform("vi_rgb", 32, 16, cutswap="yes")
    with pytest.raises(ValueError, match="interpolation"):
        build_test_transform(32, 16, interpolation="cubic")
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        build_test_transform(32, 16)(np.zeros((4, 4), dtype=np.uint8))


# --- synced geometry for aligned triplets ----------------------------------------------------------------------------


def test_synced_geometry_identical_inputs_give_identical_outputs():
    tf = build_train_transform("reid", 32, 16, erasing_p=0.0)
    synced, independent = SyncedTransform(tf, sync_geometry=True), SyncedTransform(tf, sync_geometry=False)
    img = _noise_pil()
    torch.manual_seed(0)
    n_differ = 0
    for _ in range(20):
        out = synced({"rgb": img, "nir": img, "tir": img})
        assert torch.equal(out["rgb"], out["nir"]) and torch.equal(out["rgb"], out["tir"])
        ind = independent({"rgb": img, "nir": img, "tir": img})
        n_differ += not (torch.equal(ind["rgb"], ind["nir"]) and torch.equal(ind["rgb"], ind["tir"]))
    assert n_differ >= 15  # independent draws almost never coincide (21 x 21 crops x 2 flips)


def test_synced_geometry_aligns_different_images():
    """NIR = RGB with channels reversed: with a shared draw the outputs are the same pixels, channels reversed."""
    tf = build_train_transform("reid", 32, 16, erasing_p=0.0)
    arr = np.random.default_rng(3).integers(0, 256, (40, 20, 3), dtype=np.uint8)
    rgb, nir = Image.fromarray(arr), Image.fromarray(np.ascontiguousarray(arr[:, :, ::-1]))
    torch.manual_seed(1)
    for _ in range(10):
        out = SyncedTransform(tf)({"rgb": rgb, "nir": nir})
        assert torch.equal(out["nir"], out["rgb"].flip(0))


def test_synced_geometry_keeps_erasing_per_modality():
    sentinel = 1e3
    tf = ReIDTransform(
        Geometry((32, 16), "bilinear", flip_p=0.5, pad=10, crop=True),
        (0.5,) * 3,
        (0.5,) * 3,
        [RandomErasing(p=1.0, mode="const", value=sentinel)],
    )
    img = _noise_pil()
    torch.manual_seed(2)
    differs = 0
    for _ in range(10):
        out = SyncedTransform(tf)({"rgb": img, "nir": img, "tir": img})
        kept = [(o != sentinel).all(dim=0) for o in out.values()]
        both = kept[0] & kept[1] & kept[2]
        assert torch.equal(out["rgb"][:, both], out["nir"][:, both])
        assert torch.equal(out["rgb"][:, both], out["tir"][:, both])
        differs += not (torch.equal(kept[0], kept[1]) and torch.equal(kept[1], kept[2]))
    assert differs >= 8  # erasing boxes are drawn per modality


def test_synced_errors():
    with pytest.raises(ValueError, match="needs a ReIDTransform"):
        SyncedTransform(lambda im: im, sync_geometry=True)
    tf = build_train_transform("reid", 32, 16)
    with pytest.raises(ValueError, match="same size"):
        SyncedTransform(tf)({"rgb": _noise_pil(h=40), "nir": _noise_pil(h=30)})
