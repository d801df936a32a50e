"""ICRE: network shapes under every switch, the distillation and ICG losses against written-out oracles, invariants
(permutation of the shallow tokens, reduction to the AGW baseline, masks in [0, 1]), which loss terms each switch
touches, a few optimisation steps, and the command line (METHODS.md 3.2, 3.3, 7)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.config import get_config
from workbench.losses.icre import (
    icg_centre_loss,
    icg_margin_loss,
    modality_centres,
    semantic_distillation_loss,
)
from workbench.methods import get_method, load_run_model
from workbench.methods.icre import ICRE, icre_loss_terms, icre_options
from workbench.models import ICRENet, VIReIDNet, create_model
from workbench.models.icre import SDCE, CrossAttentionBlock

N_IDS = 4

# ------------------------------------------------------------------------------------------------ oracles


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def np_sd(z_e: np.ndarray, z_s: np.ndarray, t: float, mutual: bool) -> float:
    """T^2 mean_i KL(softmax(z_s/T) || softmax(z_e/T)) [+ the reverse], explicit loops."""
    total = 0.0
    for i in range(len(z_e)):
        p_s, p_e = np_softmax(z_s[i] / t), np_softmax(z_e[i] / t)
        total += sum(p_s[k] * (np.log(p_s[k]) - np.log(p_e[k])) for k in range(len(p_s)))
        if mutual:
            total += sum(p_e[k] * (np.log(p_e[k]) - np.log(p_s[k])) for k in range(len(p_s)))
    return t * t * total / len(z_e)


def loop_centres(f: np.ndarray, y: np.ndarray, m: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """{(identity, modality): mean feature} over the pairs present."""
    out = {}
    for ident in sorted(set(y.tolist())):
        for mod in (0, 1):
            rows = [i for i in range(len(y)) if y[i] == ident and m[i] == mod]
            if rows:
                out[(ident, mod)] = f[rows].mean(axis=0)
    return out


def loop_icg_centre(f: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    c = loop_centres(f, y, m)
    per_id = [np.sum((c[(k, 0)] - c[(k, 1)]) ** 2) for k in sorted(set(y.tolist())) if (k, 0) in c and (k, 1) in c]
    return float(np.mean(per_id)) if per_id else 0.0


def loop_icg_margin(f: np.ndarray, y: np.ndarray, m: np.ndarray, rho: float) -> float:
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    c = loop_centres(f, y, m)
    values = []
    for i in range(len(y)):
        own = (int(y[i]), 1 - int(m[i]))
        others = [key for key in c if key[0] != y[i]]
        if own not in c or not others:
            continue
        d_pos = np.linalg.norm(f[i] - c[own])
        d_neg = min(np.linalg.norm(f[i] - c[key]) for key in others)
        values.append(max(d_pos - d_neg + rho, 0.0))
    return float(np.mean(values)) if values else 0.0


# ------------------------------------------------------------------------------------------------ helpers


def smoke_cfg(**options):
    return get_config("icre", "synthetic-vi", "smoke").override(**{"run.device": "cpu", "method_options": options})


def fixed_batch(seed=0, n=8, h=64, w=32):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(N_IDS).repeat_interleave(n // N_IDS)
    return {"rgb": torch.randn(n, 3, h, w, generator=g), "ir": torch.randn(n, 3, h, w, generator=g), "label": labels}


def model_switches():
    """Every valid combination of the model switches."""
    combos = []
    for stage_set, masks, sdce, glob in itertools.product(("layer1-3", "layer2-4"), (True, False), (0, 1, 2),
                                                          (False, True)):
        combos.append(dict(mpfr=True, stage_set=stage_set, mpfr_masks=masks, sdce_stages=sdce, global_head=glob))
    combos += [dict(mpfr=False, sdce_stages=0, global_head=g) for g in (False, True)]
    return combos


def switch_id(kw):
    return "-".join(f"{k}={v}" for k, v in kw.items())


# ------------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("size,grid", [((384, 144), (24, 9)), ((128, 64), (8, 4))], ids=["paper", "cpu-demo"])
@pytest.mark.parametrize("switches", model_switches(), ids=switch_id)
def test_shapes_for_every_switch_combination(switches, size, grid):
    torch.manual_seed(0)
    model = create_model("test_icre_resnet", num_classes=N_IDS, **switches).eval()
    x, m = torch.randn(2, 3, *size), torch.tensor([0, 1])
    with torch.no_grad():
        out = model(x, m, return_stages=True, with_attention=True)
    d = model.feat_dim
    assert out.feats.shape == (2, d) and out.pooled.shape == (2, d) and out.logits.shape == (2, N_IDS)
    assert out.parts["enhanced"].shape == (2, d, *grid) == out.parts["layer4"].shape
    if switches["mpfr"]:
        assert out.parts["shallow"].shape == (2, d, *grid) and out.parts["masks"].shape == (2, 3, *grid)
        assert out.parts["logits_s"].shape == (2, N_IDS)
    else:
        assert not {"shallow", "masks", "logits_s"} & set(out.parts)
    assert ("logits_g" in out.parts) == switches["global_head"]
    n = grid[0] * grid[1]
    assert (out.attn is None) == (switches["sdce_stages"] == 0)
    if out.attn is not None:
        assert out.attn.shape == (2, n, n)
        torch.testing.assert_close(out.attn.sum(-1), torch.ones(2, n))
    if switches["global_head"]:
        cat = create_model("test_icre_resnet", num_classes=N_IDS, inference="enhanced+global", **switches).eval()
        cat.load_state_dict(model.state_dict())
        with torch.no_grad():
            both = cat(x, m)
        torch.testing.assert_close(both.feats, torch.cat([out.parts["bn"], out.parts["bn_g"]], dim=1))
    assert all(torch.isfinite(v).all() for v in out.parts.values())


def test_paper_size_resnet50_maps_are_24_by_9():
    torch.manual_seed(0)
    model = create_model("icre_r50", num_classes=N_IDS, global_head=True).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 384, 144), torch.tensor([0, 1]), return_stages=True, with_attention=True)
    assert out.parts["layer3"].shape == (2, 1024, 24, 9) and out.parts["layer4"].shape == (2, 2048, 24, 9)
    assert out.parts["shallow"].shape == out.parts["enhanced"].shape == (2, 2048, 24, 9)
    assert out.parts["masks"].shape == (2, 3, 24, 9) and out.attn.shape == (2, 216, 216)
    assert out.feats.shape == (2, 2048) and model.mpfr.align[2][0].out_channels == 1024  # METHODS.md 3.2: C=1024
    assert model.sdce.q_proj.out_features == 768 and model.sdce.cross.attn.num_heads == 8


def test_stage_sets_feed_the_named_stages():
    for name, channels in (("layer1-3", (32, 48, 192)), ("layer2-4", (48, 192, 96))):
        model = create_model("test_icre_resnet", num_classes=N_IDS, stage_set=name)
        assert tuple(block[0].in_channels for block in model.mpfr.align) == channels


def test_icre_lite0_reads_the_stride_4_8_16_stages_and_enhances_the_last():
    torch.manual_seed(0)
    model = create_model("icre_lite0", num_classes=N_IDS).eval()
    assert tuple(block[0].in_channels for block in model.mpfr.align) == (24, 40, 112)  # strides 4, 8, 16
    assert model.mpfr.align[0][0].out_channels == 112 and model.mpfr.fuse[0].out_channels == 1280
    assert model.sdce.q_proj.in_features == 1280 and model.sdce.q_proj.out_features == 256
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 64), torch.tensor([0, 1]), return_stages=True, with_attention=True)
    assert out.parts["layer4"].shape == out.parts["shallow"].shape == out.parts["enhanced"].shape == (2, 1280, 8, 4)
    assert out.attn.shape == (2, 32, 32) and out.logits.shape == (2, N_IDS)
    names = [n for n, p in model.named_parameters()]
    trunk = [n for n in names if n.startswith(model.backbone_prefixes)]
    assert trunk and all(n.startswith(("specific.", "shared.")) for n in trunk)
    assert not any(n.startswith(model.backbone_prefixes) for n in names if n.startswith(("mpfr.", "sdce.")))


# ------------------------------------------------------------------------------------------------ invariants


def test_cross_attention_is_invariant_to_permuting_the_shallow_tokens():
    torch.manual_seed(0)
    block = CrossAttentionBlock(16, 4).eval()
    q, kv = torch.randn(3, 10, 16), torch.randn(3, 7, 16)
    perm = torch.randperm(7)
    torch.testing.assert_close(block(q, kv), block(q, kv[:, perm]))
    # the whole cascade too: shuffle the shallow map's spatial positions
    sdce = SDCE(12, 20, dim=16, heads=4, stages=2).eval()
    torch.nn.init.normal_(sdce.out_proj.weight)  # leave the zero initialisation, else the output is trivially F4
    deep, shallow = torch.randn(2, 12, 4, 3), torch.randn(2, 20, 4, 3)
    flat = shallow.flatten(2)[:, :, torch.randperm(12)].reshape_as(shallow)
    torch.testing.assert_close(sdce(deep, shallow), sdce(deep, flat))
    assert not torch.allclose(sdce(deep, shallow), sdce(deep, torch.randn_like(shallow)))  # it does use S


def test_sdce_starts_as_the_identity_on_the_deep_map():
    sdce = SDCE(12, 20, dim=16, heads=4, stages=2)
    deep = torch.randn(2, 12, 4, 3)
    torch.testing.assert_close(sdce(deep, torch.randn(2, 20, 4, 3)), deep)


def test_without_mpfr_and_sdce_the_network_is_the_baseline():
    torch.manual_seed(0)
    baseline = create_model("test_vi_resnet", num_classes=N_IDS)
    icre = create_model("test_icre_resnet", num_classes=N_IDS, mpfr=False, sdce_stages=0)
    assert set(icre.state_dict()) == set(baseline.state_dict())
    icre.load_state_dict(baseline.state_dict(), strict=True)
    batch = fixed_batch()
    x, m = torch.cat([batch["rgb"], batch["ir"]]), torch.tensor([0] * 8 + [1] * 8)
    for mode in ("train", "eval"):
        getattr(baseline, mode)()
        getattr(icre, mode)()
        a, b = baseline(x, m), icre(x, m)
        torch.testing.assert_close(a.feats, b.feats, rtol=0, atol=0)
        torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
    # ... and the "baseline" ablation's loss is the baseline method's loss
    cfg = smoke_cfg(ablation="baseline")
    icre.train()
    baseline.train()
    base_cfg = get_config("baseline", "synthetic-vi", "smoke")
    want = get_method("baseline").training_losses(baseline, batch, base_cfg)
    got = ICRE().training_losses(icre, batch, cfg)
    assert set(got) == set(want) == {"id", "triplet"}
    for k in want:
        torch.testing.assert_close(got[k], want[k])


@pytest.mark.parametrize("masks", [True, False])
def test_mpfr_masks_lie_in_unit_interval(masks):
    torch.manual_seed(0)
    model = create_model("test_icre_resnet", num_classes=N_IDS, mpfr_masks=masks)
    for p in model.mpfr.mask.parameters() if masks else ():
        torch.nn.init.normal_(p, std=5.0)  # push the logits far out: sigmoid must still stay in [0, 1]
    out = model(torch.randn(4, 3, 64, 32) * 10, torch.tensor([0, 1, 0, 1]))
    masks_t = out.parts["masks"]
    masks_t = masks_t.detach()
    assert float(masks_t.min()) >= 0.0 and float(masks_t.max()) <= 1.0
    if masks:
        assert float(masks_t.std()) > 0.05  # learned, not constant
    else:
        assert torch.equal(masks_t, torch.ones_like(masks_t))


# ------------------------------------------------------------------------------------------------ losses vs oracles


@pytest.mark.parametrize("t", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("direction", ["one_way", "mutual"])
def test_semantic_distillation_equals_numpy_formula(t, direction):
    g = torch.Generator().manual_seed(1)
    z_e, z_s = torch.randn(6, 5, generator=g) * 3, torch.randn(6, 5, generator=g) * 3
    got = semantic_distillation_loss(z_e, z_s, t, direction)
    want = np_sd(z_e.double().numpy(), z_s.double().numpy(), t, direction == "mutual")
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(semantic_distillation_loss(z_e, z_e.clone(), t, direction)) == pytest.approx(0.0, abs=1e-6)


def test_one_way_distillation_only_moves_the_enhanced_head():
    z_e = torch.randn(4, 5, requires_grad=True)
    z_s = torch.randn(4, 5, requires_grad=True)
    semantic_distillation_loss(z_e, z_s, 4.0, "one_way").backward()
    assert z_s.grad is None and float(z_e.grad.abs().sum()) > 0
    z_e.grad = None
    semantic_distillation_loss(z_e, z_s, 4.0, "mutual").backward()
    assert float(z_s.grad.abs().sum()) > 0 and float(z_e.grad.abs().sum()) > 0


def icg_batches():
    """(name, labels, modality): complete, one identity missing infrared, one missing visible, two incomplete,
    every identity single-modality, a single identity."""
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 3])
    m = torch.tensor([0] * 8 + [1] * 4)
    return [
        ("complete", y, m),
        ("id3 visible only", torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 3]), torch.tensor([0] * 8 + [1, 1, 1, 0])),
        ("id0 infrared only", torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2]), torch.tensor([1, 1, 0, 0, 0, 0, 1, 1, 1])),
        ("two incomplete", torch.tensor([0, 0, 1, 1, 2, 2, 3]), torch.tensor([0, 1, 0, 1, 0, 0, 1])),
        ("no identity has both", torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 0, 1, 1, 0])),
        ("one identity", torch.tensor([5, 5, 5, 5]), torch.tensor([0, 1, 0, 1])),
    ]


@pytest.mark.parametrize("name,labels,modality", icg_batches(), ids=[b[0] for b in icg_batches()])
def test_icg_terms_equal_brute_force_loops(name, labels, modality):
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(len(labels), 6, generator=g, dtype=torch.float64, requires_grad=True)
    f, y, m = feats.detach().numpy(), labels.numpy(), modality.numpy()
    centre = icg_centre_loss(feats, labels, modality)
    margin = icg_margin_loss(feats, labels, modality, margin=0.3)
    assert centre.item() == pytest.approx(loop_icg_centre(f, y, m), rel=1e-9, abs=1e-12)
    assert margin.item() == pytest.approx(loop_icg_margin(f, y, m, 0.3), rel=1e-9, abs=1e-12)
    (centre + margin).backward()
    assert torch.isfinite(feats.grad).all()
    if name in ("no identity has both",):
        assert centre.item() == 0.0 and margin.item() == 0.0
    if name == "one identity":  # no other identity to push from: the margin term has no sample
        assert margin.item() == 0.0 and centre.item() > 0


def test_icg_is_finite_when_a_sample_sits_on_a_centre():
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    labels, modality = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    loss = icg_margin_loss(feats, labels, modality) + icg_centre_loss(feats, labels, modality)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and torch.isfinite(feats.grad).all()


def test_modality_centres_match_loops():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(7, 3, generator=g)
    labels, modality = torch.tensor([4, 4, 9, 9, 2, 4, 9]), torch.tensor([0, 1, 0, 0, 1, 0, 1])
    ids, centres, present = modality_centres(feats, labels, modality)
    want = loop_centres(feats.numpy(), labels.numpy(), modality.numpy())
    assert ids.tolist() == [2, 4, 9]
    for u, ident in enumerate(ids.tolist()):
        for mod in (0, 1):
            assert bool(present[u, mod]) == ((ident, mod) in want)
            if (ident, mod) in want:
                np.testing.assert_allclose(centres[u, mod].numpy(), want[(ident, mod)], rtol=1e-6)


def test_loss_arguments_are_checked():
    with pytest.raises(ValueError, match="temperature"):
        semantic_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="direction"):
        semantic_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), 4.0, "backwards")
    with pytest.raises(ValueError, match="modality values"):
        icg_centre_loss(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="margin"):
        icg_margin_loss(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 1]), margin=-1)


# ------------------------------------------------------------------------------------------------ the method


def terms_for(options, seed=0):
    torch.manual_seed(seed)
    cfg = smoke_cfg(**options)
    method = ICRE()
    model = method.build_model(cfg, N_IDS).train()
    return {k: v.item() for k, v in method.training_losses(model, fixed_batch(), cfg).items()}


ALL_TERMS = {"id", "triplet", "id_s", "triplet_s", "sd", "icg_centre", "icg_margin"}


@pytest.mark.parametrize("switch,removed", [
    ({"distill": False}, {"sd"}),
    ({"icg_centre": False}, {"icg_centre"}),
    ({"icg_margin": False}, {"icg_margin"}),
    ({"icg_weight": 0}, {"icg_centre", "icg_margin"}),
    ({"sd_weight": 0}, {"sd"}),
])
def test_loss_switches_remove_exactly_the_terms_they_name(switch, removed):
    full = terms_for({})
    assert set(full) == ALL_TERMS
    off = terms_for(switch)
    assert set(off) == ALL_TERMS - removed
    for k in off:
        assert off[k] == pytest.approx(full[k], rel=1e-6), k


@pytest.mark.parametrize("switch,changed", [
    ({"temperature": 2.0}, {"sd"}),
    ({"distill_direction": "mutual"}, {"sd"}),
    ({"icg_rho": 0.8}, {"icg_margin"}),
    ({"icg_weight": 2.0}, {"icg_centre", "icg_margin"}),
])
def test_loss_constants_change_exactly_the_terms_they_name(switch, changed):
    full, other = terms_for({}), terms_for(switch)
    assert set(full) == set(other)
    for k in full:
        assert (other[k] != pytest.approx(full[k], rel=1e-6)) == (k in changed), k


@pytest.mark.parametrize("ablation,terms", [
    ("baseline", {"id", "triplet"}),
    ("mpfr", {"id", "triplet", "id_s", "triplet_s"}),
    ("mpfr_sdce", {"id", "triplet", "id_s", "triplet_s", "sd"}),
    ("icg", {"id", "triplet", "icg_centre", "icg_margin"}),
    ("full", ALL_TERMS),
])
def test_ablation_presets_build_the_named_modules_and_terms(ablation, terms):
    cfg = smoke_cfg(ablation=ablation)
    model = ICRE().build_model(cfg, N_IDS)
    assert (model.mpfr is not None) == (ablation in ("mpfr", "mpfr_sdce", "full"))
    assert (model.sdce is not None) == (ablation in ("mpfr_sdce", "full"))
    assert set(terms_for({"ablation": ablation})) == terms


def test_model_switches_reach_the_network_and_global_head_adds_its_terms():
    cfg = smoke_cfg(sdce_stages="1", mpfr_masks="false", stage_set="layer2-4", global_head="true",
                    inference="enhanced+global")
    model = ICRE().build_model(cfg, N_IDS)
    assert model.sdce.self_attn is None and model.mpfr.mask is None and model.stage_set == ("layer2", "layer3", "layer4")
    assert model.inference == "enhanced+global"
    assert set(terms_for({"global_head": True})) == ALL_TERMS | {"id_g", "triplet_g"}


def test_misspelt_options_are_refused_not_ignored():
    """Issue 22: `temprature` used to train with the default temperature; every key is now checked."""
    with pytest.raises(ValueError) as info:
        icre_options({"mpfr_mask": False, "temprature": 1.0})
    msg = str(info.value)
    assert "'mpfr_mask' (did you mean 'mpfr_masks'" in msg and "'temprature' (did you mean 'temperature'?)" in msg
    assert "its method_options are: ablation, distill, distill_direction, global_head" in msg
    with pytest.raises(ValueError, match="'icre' has no method_options 'temprature'"):
        ICRE().build_model(smoke_cfg(temprature=2), N_IDS)


@pytest.mark.parametrize("key, value, says", [
    ("temperature", "0", "> 0"), ("temperature", "warm", "cannot be parsed"), ("sdce_stages", "3", "(0, 1, 2)"),
    ("mpfr", "yes", "not a boolean"), ("icg_rho", "-0.1", ">= 0"), ("sd_weight", "-1", ">= 0"),
    ("inference", "global", "'enhanced+global'"), ("stage_set", "layer3-5", "'layer2-4'"),
    ("distill_direction", "sideways", "'mutual'"), ("ablation", "everything", "'mpfr_sdce'"),
])
def test_option_values_are_checked_against_type_and_range(key, value, says):
    with pytest.raises(ValueError) as info:
        icre_options({key: value})
    assert f"method_options.{key}={value!r}" in str(info.value) and says in str(info.value)


def test_options_from_the_command_line_are_parsed_and_override_the_preset():
    cfg = smoke_cfg().override(**{"method_options.temperature": "2", "method_options.mpfr_masks": "false",
                                  "method_options.sdce_stages": "1", "method_options.ablation": "mpfr"})
    opts = ICRE().options(cfg)
    assert opts == icre_options({"ablation": "mpfr", "temperature": 2.0, "mpfr_masks": False, "sdce_stages": 1})
    assert (opts.temperature, opts.mpfr_masks, opts.sdce_stages, opts.distill) == (2.0, False, 1, False)
    assert type(opts.temperature) is float


def test_options_that_contradict_each_other_are_refused():
    assert icre_options({"mpfr": "false"}).sdce_stages == 0 and not icre_options({"mpfr": False}).distill
    with pytest.raises(ValueError, match="needs mpfr=True"):
        icre_options({"mpfr": False, "sdce_stages": 2})
    with pytest.raises(ValueError, match="ablation"):
        icre_options({"ablation": "everything"})
    with pytest.raises(ValueError, match="distill_direction"):
        icre_options({"distill_direction": "sideways"})
    with pytest.raises(ValueError, match="enhanced\\+global"):
        create_model("test_icre_resnet", num_classes=2, inference="enhanced+global")
    with pytest.raises(ValueError, match="needs mpfr=True"):
        create_model("test_icre_resnet", num_classes=2, mpfr=False, sdce_stages=1)
    with pytest.raises(ValueError, match="needs an ICRE network"):
        ICRE().build_model(smoke_cfg().override(**{"model.name": "test_vi_resnet"}), N_IDS)
    with pytest.raises(ValueError, match="visible-infrared"):
        get_config("icre", "synthetic-rgbnt", "smoke")


def test_profiles():
    paper = get_config("icre", "sysu-mm01", "paper")
    assert (paper.data.height, paper.data.width, paper.model.name) == (384, 144, "icre_r50")
    assert (paper.optim.milestones, paper.optim.epochs, paper.data.p, paper.data.k) == ((20, 80), 151, 6, 4)
    demo = get_config("icre", "synthetic-vi", "cpu-demo")
    assert demo.model.name == "test_icre_resnet" and demo.data.height == 128
    assert get_config("icre", "synthetic-vi", "smoke").model.name == "test_icre_resnet"


def test_new_modules_train_at_head_lr_and_the_trunk_at_backbone_lr():
    from workbench.train import param_groups

    cfg = get_config("icre", "sysu-mm01", "paper").optim
    model = create_model("test_icre_resnet", num_classes=N_IDS)
    lr_of = {}
    for group in param_groups(model, cfg):
        for p in group["params"]:
            lr_of[id(p)] = group["lr"]
    named = dict(model.named_parameters())
    assert lr_of[id(named["shared.layer4.blocks.0.conv1.weight"])] == pytest.approx(0.01)
    assert lr_of[id(named["sdce.q_proj.weight"])] == pytest.approx(0.1)
    assert lr_of[id(named["mpfr.fuse.0.weight"])] == pytest.approx(0.1)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(1)
    cfg = smoke_cfg()
    method = ICRE()
    model = method.build_model(cfg, N_IDS).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = fixed_batch(seed=3)
    losses = []
    for _ in range(6):
        total = sum(method.training_losses(model, batch, cfg).values())
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < 0.9 * losses[0], losses


def test_retrieval_branches_and_loss_terms_from_a_forward():
    torch.manual_seed(0)
    cfg = smoke_cfg(global_head=True)
    model = ICRE().build_model(cfg, N_IDS).eval()
    out = model(torch.randn(2, 3, 64, 32), torch.tensor([0, 1]))
    branches = ICRE().retrieval_branches(out)
    assert set(branches) == {"feats", "enhanced", "shallow", "global"}
    torch.testing.assert_close(branches["feats"], out.parts["bn"])
    cfg = cfg.override(**{"loss.triplet": "none"})  # two samples of one identity: no triplet
    terms = icre_loss_terms(out, torch.tensor([0, 0]), torch.tensor([0, 1]), cfg, icre_options({}))
    assert set(terms) == {"id", "id_s", "id_g", "sd", "icg_centre", "icg_margin"}
    assert terms["icg_margin"].item() == 0.0  # no other identity to push from: an exact zero
    assert float(terms["icg_centre"]) == pytest.approx(
        float((F.normalize(out.pooled, dim=1)[0] - F.normalize(out.pooled, dim=1)[1]).pow(2).sum()), rel=1e-5)


def test_isinstance_of_baseline_network():
    assert issubclass(ICRENet, VIReIDNet)


# ------------------------------------------------------------------------------------------------ command line


@pytest.mark.slow
def test_cli_trains_and_evaluates(tmp_path):
    from workbench.runs import load_run

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "workbench", "train", "--method", "icre", "--dataset", "synthetic-vi",
                          "--profile", "smoke", "--name", "icre", f"run.out_dir={tmp_path}", "run.device=cpu",
                          "optim.epochs=1", "method_options.sdce_stages=1"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout[out.stdout.index("{"):])["status"] == "finished"
    run = load_run(tmp_path / "icre")
    assert 0 < run.results["test"]["mean"]["mAP"] <= 1
    terms = {c.removeprefix("loss/") for c in run.metrics.columns if c.startswith("loss/")}
    assert terms == ALL_TERMS | {"total"}
    model = load_run_model(run)
    assert isinstance(model, ICRENet) and model.sdce.self_attn is None
