"""The per-framework views (`viz.dakd`, `viz.icre`, `viz.sd2`) and the modality-centre map draw what they say they
draw: the right bars and colours, masks of the right size and count, one line per model or identity."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
import torch

from workbench.config import get_config
from workbench.data import load_dataset
from workbench.methods import get_method


def test_confidence_mask_bars_are_sorted_and_coloured_by_the_codes_mask():
    from workbench.losses import kd
    from workbench.viz import dakd

    logits = torch.randn(12, 30, generator=torch.Generator().manual_seed(0))
    ax = dakd.plot_confidence_mask(logits)
    bars = ax.patches
    confidence = torch.softmax(logits, dim=1).max(dim=1).values
    order = confidence.argsort()
    assert [b.get_height() for b in bars] == pytest.approx(confidence[order].tolist())
    keep = kd.confidence_mask(logits, "le")
    blue = mcolors.to_rgba("tab:blue")
    assert [b.get_facecolor() == blue for b in bars] == [bool(keep[i]) for i in order]
    assert ax.lines[0].get_ydata()[0] == pytest.approx(float(confidence.median()))


def test_mpfr_masks_are_the_networks_masks_upsampled():
    from workbench.viz import icre

    cfg = get_config("icre", "synthetic-vi", "smoke")
    ds = load_dataset(cfg.data.dataset, **cfg.data.options)
    split = ds.eval_splits()[0]
    samples = [split.query[0], split.gallery[0], split.query[1]]
    torch.manual_seed(0)
    model = get_method("icre").build_model(cfg, num_classes=4).eval()
    m = icre.mpfr_masks(model, samples, cfg)
    h, w = cfg.data.height, cfg.data.width
    assert m.masks.shape == (3, 3, h, w) and m.images.shape == (3, h, w, 3) and m.stages == tuple(model.stage_set)
    assert 0 <= m.masks.min() and m.masks.max() <= 1 and 0 <= m.images.min() and m.images.max() <= 1
    # the mean of a bilinear upsampling (align_corners=False, integer factor) is the mean of the grid's values
    from workbench.features import test_transform

    tf = test_transform(cfg)
    x = torch.stack([tf(s.load_image()) for s in samples])
    with torch.no_grad():
        grid = model(x, torch.tensor([0 if s.modality == "rgb" else 1 for s in samples])).parts["masks"]
    np.testing.assert_allclose(m.masks.mean(axis=(2, 3)), grid.mean(dim=(2, 3)).numpy(), atol=2e-2)
    assert m.labels[0] == f"id {samples[0].pid} {samples[0].modality}"
    axes = icre.plot_mpfr_masks(m)
    assert axes.shape == (3, 4) and axes[0, 1].get_title().startswith("mask layer")
    baseline = get_method("icre").build_model(cfg.override(**{"method_options.ablation": "baseline"}), num_classes=4)
    with pytest.raises(ValueError, match="no MPFR"):
        icre.mpfr_masks(baseline, samples, cfg)


def test_hslm_masks_hide_the_same_share_of_every_aligned_modality():
    from workbench.models.sd2reid import num_masked
    from workbench.viz import sd2

    cfg = get_config("sd2reid", "synthetic-rgbnt", "smoke")
    ds = load_dataset(cfg.data.dataset, **cfg.data.options)
    torch.manual_seed(0)
    model = get_method("sd2reid").build_model(cfg, num_classes=4).eval()
    m = sd2.hslm_masks(model, list(ds.query)[:2], cfg, ratio=0.3, seed=0)
    n = m.grid[0] * m.grid[1]
    assert m.attention.shape == (2, 3, n)
    for kind, mask in m.masks.items():
        assert mask.shape == (2, 3, n) and (mask.sum(-1) == num_masked(n, 0.3)).all(), kind
        assert (mask[:, 0] == mask[:, 1]).all() and (mask[:, 0] == mask[:, 2]).all(), "one mask per triplet"
    hidden = m.attention_hidden()
    expected = float((m.attention * m.masks["random"]).sum(-1).div(m.attention.sum(-1)).mean())
    assert hidden["random"] == pytest.approx(expected) and 0 < hidden["attention"] < 1
    again = sd2.hslm_masks(model, list(ds.query)[:2], cfg, ratio=0.3, seed=0)
    assert all(torch.equal(again.masks[k], m.masks[k]) for k in m.masks), "seeded"
    axes = sd2.plot_hslm_masks(m)
    assert axes.shape == (2, 9) and axes[1, 3].get_title() == "RGB guided" and axes[0, 8].get_title() == "TIR random"


def test_robustness_and_code_map_views():
    from workbench.viz import sd2

    level = pd.Index([0.0, 0.5], name="occluded area")
    curves = {(name, kind): pd.DataFrame({"mAP": [0.5, 0.3 + i / 10]}, index=level)
              for i, name in enumerate(("baseline", "SD2-ReID")) for kind in ("occlusion", "style")}
    axes = sd2.plot_robustness(curves)
    assert len(axes) == 2 and [len(ax.lines) for ax in axes] == [2, 2]
    assert axes[1].get_title() == "test-time style" and list(axes[0].lines[1].get_ydata()) == [0.5, 0.4]
    rng = np.random.default_rng(0)
    pids, mods = np.repeat(np.arange(6), 3), np.tile(np.array(["rgb", "nir", "tir"]), 6)
    codes = {"a": (rng.normal(size=(18, 8)), pids, mods), "b": (rng.normal(size=(18, 8)), pids, mods)}
    report = sd2.code_reports(codes)
    axes = sd2.plot_code_maps(codes, report, names=["b"])
    assert len(axes) == 1 and axes[0].get_title().startswith("b\nid probe")
    assert f"{report.loc['b', 'identity_probe_acc']:.2f}" in axes[0].get_title()


def test_modality_centres_draw_one_line_per_identity_between_its_centres():
    from workbench.viz import embedding

    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(3), 4)
    mods = np.tile(np.array(["rgb", "rgb", "ir", "ir"]), 3)
    feats = rng.normal(size=(12, 6))
    ax = embedding.plot_modality_centres(feats, pids, mods, title="t")
    assert len(ax.lines) == 3 and len(ax.collections) == 6 and ax.get_title() == "t"
    for line, p in zip(ax.lines, range(3)):  # each line joins the two centres of one identity's points
        rgb = ax.collections[2 * p].get_offsets().mean(axis=0)
        ir = ax.collections[2 * p + 1].get_offsets().mean(axis=0)
        np.testing.assert_allclose(np.c_[line.get_xdata(), line.get_ydata()], [rgb, ir], atol=1e-9)
