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


def test_robustness_view_draws_one_line_per_model_and_corruption():
    from workbench.viz import sd2

    level = pd.Index([0.0, 0.5], name="occluded area")
    curves = {(name, kind): pd.DataFrame({"mAP": [0.5, 0.3 + i / 10]}, index=level)
              for i, name in enumerate(("baseline", "SD2-ReID")) for kind in ("occlusion", "style")}
    axes = sd2.plot_robustness(curves)
    assert len(axes) == 2 and [len(ax.lines) for ax in axes] == [2, 2]
    assert axes[1].get_title() == "test-time style" and list(axes[0].lines[1].get_ydata()) == [0.5, 0.4]


def test_identity_draw_is_seeded_and_only_takes_identities_seen_in_every_modality():
    from workbench.viz.embedding import pick_identities

    # ids 0-5, two samples each; id 3's samples are never complete (sample 6: rgb + nir only, sample 7: tir only)
    rows = [(p, 2 * p + j, m) for p in range(6) for j in range(2) for m in ("rgb", "nir", "tir")
            if not (p == 3 and (j, m) in {(0, "tir"), (1, "rgb"), (1, "nir")})]
    pids, samples, mods = (np.array(c) for c in zip(*rows))
    draws = [pick_identities(pids, mods, samples, 3, seed=s) for s in range(40)]
    assert all(len(d) == 3 and list(d) == sorted(set(d)) for d in draws)
    assert 3 not in np.concatenate(draws) and set(np.concatenate(draws)) == {0, 1, 2, 4, 5}
    assert np.array_equal(pick_identities(pids, mods, samples, 3, seed=7), draws[7])
    assert list(pick_identities(pids, mods, samples, 10, seed=0)) == [0, 1, 2, 4, 5]
    with pytest.raises(ValueError, match="same length"):
        pick_identities(pids, mods[:-1], samples, 3)


def test_sample_links_join_each_point_to_its_samples_centre():
    from workbench.viz.embedding import sample_links

    coords = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [9.0, 9.0], [5.0, 5.0], [7.0, 5.0]])
    pids = np.array([1, 1, 1, 1, 2, 2])
    samples = np.array([0, 0, 0, 1, 2, 2])  # sample 1 has one point: nothing to join
    segments, owners = sample_links(coords, pids, samples, [1, 2])
    assert segments.shape == (5, 2, 2) and list(owners) == [1, 1, 1, 2, 2]
    np.testing.assert_allclose(segments[:, 0], coords[[0, 1, 2, 4, 5]])
    np.testing.assert_allclose(segments[:, 1], [[1, 1]] * 3 + [[6, 5]] * 2)
    assert sample_links(coords, pids, samples, [2])[0].shape == (2, 2, 2)


@pytest.mark.slow
def test_code_maps_draw_a_trained_sd2_runs_codes(tmp_path):
    import re

    from matplotlib.collections import LineCollection

    from workbench.evaluate import open_run
    from workbench.train import fit
    from workbench.viz import embedding, sd2

    cfg = get_config("sd2reid", "synthetic-rgbnt", "smoke").override(
        **{"run.out_dir": str(tmp_path), "run.device": "cpu", "run.name": "sd2", "optim.epochs": 1,
           "data.batches_per_epoch": 2})
    run = open_run(fit(cfg, progress=False))
    ds = load_dataset(cfg.data.dataset, **cfg.data.options)
    codes = sd2.extract_codes(run.model(), list(ds.query), run.config)
    views = {"CLS": codes.view("cls"), "semantic": codes.view("sem"), "style": codes.view("sty")}
    report = sd2.code_reports(views)
    maps = sd2.code_maps(views, seed=0)
    axes = maps.plot(report, highlight=1, seed=0)
    assert axes.shape == (2, 3) and [ax.get_title() for ax in axes[0]] == list(views)

    ids = embedding.pick_identities(codes.pids, codes.modality, codes.samples, 1, seed=0)
    shown = np.isin(codes.pids, ids)
    assert 0 < shown.sum() < len(shown), "the smoke test set has identities left faint"
    faint = mcolors.to_rgba(embedding.FAINT, 0.6)
    for c, name in enumerate(views):
        xy = maps.coords[name]
        top, low = axes[:, c]
        # under each panel, the report's numbers for what its row shows: modality on top, identity below
        for ax, keys in ((top, ["modality_probe_acc", "modality_probe_chance", "silhouette_modality"]),
                         (low, ["identity_probe_acc", "identity_probe_chance", "silhouette_identity",
                                "cross_modal_purity"])):
            assert re.findall(r"-?\d+\.\d\d", ax.get_xlabel()) == [f"{v:.2f}" for v in report.loc[name, keys]]
            assert ax.get_xlabel().startswith(keys[0].split("_")[0] + " probe")
        # top: one colour and one marker shape per modality, every point once
        assert sum(len(pc.get_offsets()) for pc in top.collections) == len(xy)
        assert len({mcolors.to_hex(pc.get_facecolor()[0]) for pc in top.collections}) == 3
        assert len({pc.get_paths()[0].vertices.tobytes() for pc in top.collections}) == 3
        # bottom: one line from each point of the followed identity to its sample's centre
        (lines,) = [col for col in low.collections if isinstance(col, LineCollection)]
        segments = lines.get_segments()
        assert len(segments) == shown.sum() == (np.isin(codes.pids, ids) & (codes.modality == "rgb")).sum() * 3
        for seg in segments:
            row = np.flatnonzero(np.all(np.isclose(xy, seg[0]), axis=1) & shown)[0]
            np.testing.assert_allclose(seg[1], xy[codes.samples == codes.samples[row]].mean(0), rtol=1e-5)
        # faint points: small and grey; followed points: larger, in the identity's colour
        dots = {pc.get_label(): pc for pc in low.collections if not isinstance(pc, LineCollection)}
        grey = dots.pop("other identities")
        assert len(grey.get_offsets()) == (~shown).sum() and np.allclose(grey.get_facecolor(), faint)
        assert sorted(dots) == ["NIR", "RGB", "TIR"]
        for pc in dots.values():
            assert pc.get_sizes()[0] > 2 * grey.get_sizes()[0]
            assert np.allclose(pc.get_facecolor(), mcolors.to_rgba(embedding.IDENTITY_COLOURS[0]))
    with pytest.raises(ValueError, match="same samples"):
        sd2.code_maps({"a": codes.view("sem"), "b": (codes.sty, codes.pids[::-1], codes.modality, codes.samples)})


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


def test_sample_factor_reads_each_stored_row_from_its_own_sample():
    """Rows are matched by their file paths, not by position: a shuffled sample list gives the same answer; a row
    that is missing, or a factor no sample has, is an error that names it."""
    import json
    from types import SimpleNamespace

    from workbench.data.samples import Sample
    from workbench.viz import sd2

    samples = [Sample({m: f"/d/{i}.jpg" for m in ("rgb", "nir", "tir")}, i % 3, 0, "rgb+nir+tir",
                      factors={"time_of_day": ("day", "dusk", "night")[i % 3], "pid": i % 3}) for i in range(6)]
    stored = SimpleNamespace(samples=pd.DataFrame({"row": [0, 1, 2], "paths": [json.dumps(samples[i].paths)
                                                                              for i in (4, 0, 5)]}))
    got = sd2.sample_factor(stored, samples[::-1], "time_of_day")
    assert got.to_dict() == {0: "dusk", 1: "day", 2: "night"} and got.index.name == "sample"
    with pytest.raises(ValueError, match="row 2"):
        sd2.sample_factor(stored, samples[:5], "time_of_day")
    with pytest.raises(ValueError, match="'weather'.*pid"):
        sd2.sample_factor(stored, samples, "weather")
