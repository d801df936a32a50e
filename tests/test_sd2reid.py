"""SD2-ReID: every loss term against an independent formula, the HSLM masks, every switch, the reduction to the
baseline, the inference graph, training from the command line on the three multi-modal layouts, the test-time
corruptions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from workbench.config import get_config
from workbench.data.occlusion import night, occlude, occlusion_boxes, style_shift
from workbench.losses import sd2reid as L
from workbench.methods import get_method
from workbench.methods.baseline import Baseline
from workbench.methods.sd2reid import SD2Options
from workbench.models import create_model
from workbench.models.sd2reid import SD2ReIDNet, num_masked, sample_patch_mask

MODS = ("rgb", "nir", "tir")


# ------------------------------------------------------------------------------------------------ loss oracles
def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * (np.log(p) - np.log(q))))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def test_semantic_distillation_is_tau_squared_kl_to_the_mean_logits():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(5, 7, generator=g, dtype=torch.float64) * 3 for _ in MODS]
    tau = 4.0
    z = [x.numpy() for x in logits]
    bar = sum(z) / 3
    expected = sum(tau**2 * np.mean([_kl(_softmax(bar[i] / tau), _softmax(zm[i] / tau)) for i in range(5)])
                   for zm in z)
    assert float(L.semantic_distillation_loss(logits, tau)) == pytest.approx(expected, rel=1e-10)
    assert float(L.semantic_distillation_loss([logits[0]] * 3, tau)) == pytest.approx(0, abs=1e-12)
    # the consensus is a stop-gradient target
    x = [t.clone().requires_grad_(True) for t in logits]
    L.semantic_distillation_loss(x, tau).backward()
    eps_grad = torch.autograd.grad(L.semantic_distillation_loss([x[0]], tau), x[0], allow_unused=True)[0]
    assert eps_grad is not None and torch.allclose(eps_grad, torch.zeros_like(eps_grad))  # one modality: no signal
    with pytest.raises(ValueError, match="tau"):
        L.semantic_distillation_loss(logits, 0)


def test_batch_relation_loss_against_loops():
    g = torch.Generator().manual_seed(1)
    codes = [torch.randn(4, 6, generator=g, dtype=torch.float64) for _ in MODS]
    b = 4
    mats = []
    for c in codes:
        x = c.numpy()
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        mats.append(x @ x.T)
    expected = sum(np.sum((mats[i] - mats[j]) ** 2) / b**2 for i in range(3) for j in range(3) if i != j)
    assert float(L.batch_relation_loss(codes)) == pytest.approx(expected, rel=1e-10)


def test_token_statistics_are_the_population_mean_and_std_per_channel():
    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(3, 9, 5, generator=g, dtype=torch.float64)
    stats = L.token_statistics(tokens, eps=0.0).numpy()
    x = tokens.numpy()
    np.testing.assert_allclose(stats[:, :5], x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(stats[:, 5:], x.std(axis=1, ddof=0), rtol=1e-12)
    pred = torch.zeros(3, 10, dtype=torch.float64)
    assert float(L.style_distillation_loss(pred, L.token_statistics(tokens, eps=0.0))) == pytest.approx(
        float(np.mean(stats**2)), rel=1e-12)
    with pytest.raises(ValueError, match="tokens"):
        L.token_statistics(tokens[0])


def test_orthogonality_loss_is_the_mean_squared_cosine():
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    u = torch.tensor([[0.0, 3.0], [1.0, 1.0], [1.0, 1.0]])
    expected = (0.0 + 1.0 + 0.5) / 3  # cos^2 = 0, 1, 1/2
    assert float(L.orthogonality_loss(s, u)) == pytest.approx(expected, rel=1e-6)


def _info_nce_loop(a, c, ya, yc, tau):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    losses = []
    for i in range(len(a)):
        sims = np.array([a[i] @ c[j] / tau for j in range(len(c))])
        denom = np.log(np.sum(np.exp(sims)))
        pos = [j for j in range(len(c)) if yc[j] == ya[i]]
        if pos:
            losses.append(-np.mean([sims[j] - denom for j in pos]))
    return float(np.mean(losses))


def test_supervised_info_nce_with_several_positives_per_anchor():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 4, generator=g, dtype=torch.float64)
    c = torch.randn(8, 4, generator=g, dtype=torch.float64)
    ya = torch.tensor([0, 0, 1, 2, 2, 9])  # identity 9 has no positive: skipped
    yc = torch.tensor([0, 1, 0, 2, 2, 2, 1, 0])
    got = float(L.supervised_info_nce_loss(a, c, ya, yc, tau=0.1))
    assert got == pytest.approx(_info_nce_loop(a.numpy(), c.numpy(), ya.numpy(), yc.numpy(), 0.1), rel=1e-10)
    labels = torch.tensor([0, 0, 1, 1])
    f = [torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in MODS]
    h = [torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in MODS]
    y = labels.numpy()
    intra = sum(0.5 * (_info_nce_loop(h[i].numpy(), f[i].numpy(), y, y, 0.1)
                       + _info_nce_loop(f[i].numpy(), h[i].numpy(), y, y, 0.1)) for i in range(3))
    assert float(L.intra_modal_contrastive_loss(f, h, labels, 0.1)) == pytest.approx(intra, rel=1e-10)
    cross = np.mean([_info_nce_loop(f[i].numpy(), f[j].numpy(), y, y, 0.1)
                     for i in range(3) for j in range(3) if i != j])
    assert float(L.cross_modal_contrastive_loss(f, labels, 0.1)) == pytest.approx(cross, rel=1e-10)


# ------------------------------------------------------------------------------------------------ masks
@pytest.mark.parametrize("mode", ["attention", "random"])
@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5])
def test_exactly_round_r_n_patches_are_masked(mode, ratio):
    attn = torch.rand(4, 3, 32).softmax(-1)
    mask = sample_patch_mask(attn, ratio, mode, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (4, 3, 32) and mask.dtype == torch.bool
    assert (mask.sum(-1) == round(ratio * 32)).all() and num_masked(32, ratio) == round(ratio * 32)
    assert not sample_patch_mask(attn, ratio, "none").any()


def test_attention_mode_draws_from_the_attention_distribution():
    weights = torch.tensor([0.5, 0.25, 0.15, 0.1])
    attn = weights.expand(20000, 1, 4).clone()
    gen = torch.Generator().manual_seed(0)
    one = sample_patch_mask(attn, 0.25, "attention", generator=gen)  # k = 1: frequencies = weights
    freq = one.float().mean(dim=(0, 1))
    assert torch.allclose(freq, weights, atol=0.012)
    two = sample_patch_mask(attn, 0.5, "attention", generator=gen)  # k = 2: successive sampling, exact inclusion
    w = weights.tolist()
    incl = [sum(w[i] * (w[j] / (1 - w[i])) + w[j] * (w[i] / (1 - w[j])) for j in range(4) if j != i)
            for i in range(4)]
    assert torch.allclose(two.float().mean(dim=(0, 1)), torch.tensor(incl), atol=0.012)
    sharp = sample_patch_mask(attn, 0.25, "attention", gamma=2.0, generator=gen).float().mean(dim=(0, 1))
    assert torch.allclose(sharp, weights**2 / (weights**2).sum(), atol=0.012)


def test_random_mode_ignores_attention_and_is_uniform():
    a1 = torch.rand(500, 3, 8)
    a2 = torch.rand(500, 3, 8) ** 8
    m1 = sample_patch_mask(a1, 0.25, "random", generator=torch.Generator().manual_seed(5))
    m2 = sample_patch_mask(a2, 0.25, "random", generator=torch.Generator().manual_seed(5))
    assert torch.equal(m1, m2)
    assert torch.allclose(m1.float().mean(dim=(0, 1)), torch.full((8,), 0.25), atol=0.03)


def test_shared_mask_hides_the_same_patches_in_every_modality():
    attn = torch.rand(6, 3, 16)
    mask = sample_patch_mask(attn, 0.4, "attention", shared=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask[:, 0], mask[:, 1]) and torch.equal(mask[:, 0], mask[:, 2])
    own = sample_patch_mask(attn, 0.4, "attention", shared=False, generator=torch.Generator().manual_seed(0))
    assert not (torch.equal(own[:, 0], own[:, 1]) and torch.equal(own[:, 0], own[:, 2]))


# ------------------------------------------------------------------------------------------------ model
def _net(shared_depth: int = 2, ddm: bool = True, num_classes: int = 5) -> SD2ReIDNet:
    torch.manual_seed(0)
    return SD2ReIDNet(create_model("test_mm_vit", num_classes=num_classes, shared_depth=shared_depth),
                      num_classes=num_classes, ddm=ddm)


def _images(b: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(b, 3, 64, 32, generator=g) for m in MODS}


def _explicit_block(block, x):
    """A timm ViT block with its attention written out: softmax(q k^T / sqrt(d)) (the oracle of the capture)."""
    attn = block.attn
    y = block.norm1(x)
    b, t, _ = y.shape
    q, k, v = attn.qkv(y).reshape(b, t, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    probs = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, heads, T, T)
    out = attn.proj((probs @ v).transpose(1, 2).reshape(b, t, attn.num_heads * attn.head_dim))
    x = x + out
    return x + block.mlp(block.norm2(x)), probs


def _reference_encode(net, images, patch_mask=None, with_attention=True):
    """SD2-ReID's encoder written out block by block: masked tokens, the last block's attention explicit."""
    bb, mods = net.backbone, net.modalities
    b = next(iter(images.values())).shape[0]
    x = torch.cat([bb.embed[0 if bb.share_embed else i](images[m]) for i, m in enumerate(mods)])
    if patch_mask is not None:
        n = x.shape[1] - 1
        pos = torch.cat([bb.embed[0 if bb.share_embed else i].pos_embed[:, 1:].expand(b, -1, -1)
                         for i in range(len(mods))])
        flat = patch_mask.transpose(0, 1).reshape(len(mods) * b, n, 1)
        x = torch.cat([x[:, :1], torch.where(flat, net.mask_token + pos, x[:, 1:])], dim=1)
    last_shared = len(bb.branches[0]) == 0
    shared_attn = None
    for j, block in enumerate(bb.shared_blocks):
        if with_attention and last_shared and j == len(bb.shared_blocks) - 1:
            x, probs = _explicit_block(block, x)
            shared_attn = probs[:, :, 0, 1:].mean(dim=1)
        else:
            x = block(x)
    feats, attn = {}, []
    for i, m in enumerate(mods):
        h = x[i * b:(i + 1) * b]
        for j, block in enumerate(bb.branches[i]):
            if with_attention and j == len(bb.branches[i]) - 1:
                h, probs = _explicit_block(block, h)
                attn.append(probs[:, :, 0, 1:].mean(dim=1))
            else:
                h = block(h)
        if shared_attn is not None:
            attn.append(shared_attn[i * b:(i + 1) * b])
        feats[m] = bb.norms[0 if len(bb.norms) == 1 else i](h)
    return feats, torch.stack(attn, dim=1) if with_attention else None


@pytest.mark.parametrize("shared_depth", [0, 2, 4])
def test_encode_is_the_backbone_forward_with_masking_and_the_last_attention(shared_depth):
    """One forward: SD2-ReID's encoder is `MultiModalViT.forward` with a patch mask and the last block's attention
    captured by a hook, bit for bit the block-by-block reference (with the attention written out)."""
    net = _net(shared_depth).eval()
    x = _images()
    with torch.no_grad():
        plain = net.backbone(x)
        own = net.encode(x)
        assert torch.equal(own.feats, plain.feats) and torch.equal(own.logits, plain.logits)
        with_attn = net.encode(x, with_attention=True)
        ref_tokens, ref_attn = _reference_encode(net, x)
        assert torch.equal(with_attn.attn, ref_attn)
        mask = sample_patch_mask(ref_attn, 0.3, generator=torch.Generator().manual_seed(0))
        masked = net.encode(x, patch_mask=mask)
        ref_masked, _ = _reference_encode(net, x, mask, with_attention=False)
        for m in MODS:
            assert torch.equal(with_attn.parts[f"final_tokens_{m}"], ref_tokens[m])
            assert torch.equal(masked.parts[f"final_tokens_{m}"], ref_masked[m])
            assert torch.equal(masked.parts[f"cls_{m}"], ref_masked[m][:, 0])
        every = net.backbone(x, with_attention=True, attention_blocks="all")
        assert torch.allclose(with_attn.attn, every.attn, atol=1e-6)
        assert torch.allclose(with_attn.feats, plain.feats, atol=1e-5)


def test_masking_replaces_only_patch_tokens_never_the_cls_token():
    net = _net().eval()
    x = _images(2)
    mask = sample_patch_mask(torch.rand(2, 3, 32), 0.5, "attention", generator=torch.Generator().manual_seed(0))
    tokens = torch.cat([net.backbone.embed[0](x[m]) for m in MODS])  # (3*2, 33, 64) modality-major
    out = net.backbone.mask_patches(tokens, mask, net.mask_token, 2)
    assert torch.equal(out[:, 0], tokens[:, 0])  # CLS untouched
    flat = mask.transpose(0, 1).reshape(6, 32)
    pos = net.backbone.embed[0].pos_embed[0, 1:]
    for r in range(6):
        assert torch.equal(out[r, 1:][~flat[r]], tokens[r, 1:][~flat[r]])
        assert torch.allclose(out[r, 1:][flat[r]], (net.mask_token[0, 0] + pos)[flat[r]])
    masked_out = net(x, patch_mask=mask)
    assert not torch.allclose(masked_out.parts["cls_rgb"], net(x).parts["cls_rgb"])
    with pytest.raises(ValueError, match="patch_mask"):
        net(x, patch_mask=mask[:, :2])
    with pytest.raises(ValueError, match="mask_token"):
        net.backbone(x, patch_mask=mask)


def test_inference_path_is_the_baseline_graph_plus_the_semantic_heads():
    net = _net().eval()
    called: set[str] = set()
    hooks = [m.register_forward_hook(lambda mod, i, o, n=name: called.add(n)) for name, m in net.named_modules()
             if name and not list(m.children())]
    method = get_method("sd2reid")
    out = method.forward_eval(net, _images(), None)
    inference_called = set(called)
    called.clear()
    net.backbone(_images())  # the multi-modal baseline's forward
    for h in hooks:
        h.remove()
    assert called <= inference_called
    assert {n.split(".")[0] for n in inference_called - called} == {"sem_heads", "sem_bnnecks"}
    assert out.feats.shape == (4, 3 * 64)
    assert set(method.retrieval_branches(out)) == {"feats", *MODS}


# ------------------------------------------------------------------------------------------------ switches
def _cfg(**options):
    cfg = get_config("sd2reid", "synthetic-rgbnt", "smoke")
    return cfg.override(**{f"method_options.{k}": v for k, v in options.items()})


def _batch(b_ids: int = 3, k: int = 2, seed: int = 0) -> dict:
    x = _images(b_ids * k, seed)
    return {**x, "label": torch.arange(b_ids).repeat_interleave(k), "camid": torch.zeros(b_ids * k, dtype=torch.long)}


def _terms(options: dict, model=None) -> dict[str, float]:
    cfg = _cfg(**options)
    method = get_method("sd2reid")
    if model is None:
        torch.manual_seed(0)
        model = method.build_model(cfg, num_classes=3)
    model.train()
    return {k: float(v.detach()) for k, v in method.training_losses(model, _batch(), cfg).items()}


FULL = {"id", "triplet", "sem_id", "sem_kd", "style", "modality", "orth", "intra", "cross"}


@pytest.mark.parametrize("switch, removed", [
    ("semantic_id", {"sem_id"}), ("semantic", {"sem_kd"}), ("style", {"style"}), ("modality", {"modality"}),
    ("orth", {"orth"}), ("intra", {"intra"}), ("cross", {"cross"}),
    ("hslm", {"intra", "cross"}), ("ddm", {"sem_id", "sem_kd", "style", "modality", "orth"}),
])
def test_every_switch_removes_exactly_the_terms_it_names(switch, removed):
    full = _terms({})
    assert set(full) == FULL
    off = _terms({switch: False})
    assert set(off) == FULL - removed
    if switch != "ddm":  # the same network: every other term keeps its value (up to the float error of the
        for k in off:    # explicit last-block attention that attention-guided masking computes)
            assert off[k] == pytest.approx(full[k], rel=1e-4, abs=1e-6), k


def test_optional_relation_term_and_weights_scale_only_their_term():
    full = _terms({})
    rel = _terms({"relation": True})
    assert set(rel) == FULL | {"relation"} and rel["relation"] > 0
    for weight, term in (("orth_weight", "orth"), ("style_weight", "style"), ("cross_weight", "cross"),
                         ("intra_weight", "intra"), ("semantic_weight", "sem_kd")):
        scaled = _terms({weight: 3.0 * getattr(SD2Options(), weight)})
        for k in full:
            expected = 3 * full[k] if k == term else full[k]
            assert scaled[k] == pytest.approx(expected, rel=1e-5, abs=1e-7), (weight, k)


def test_masking_mode_and_ratio_change_only_the_intra_term():
    full = _terms({})
    for change in ({"masking": "random"}, {"mask_ratio": 0.5}, {"shared_mask": False}):
        t = _terms(change)
        assert t["intra"] != pytest.approx(full["intra"], rel=1e-6), change
        assert all(t[k] == pytest.approx(full[k], rel=1e-4, abs=1e-6) for k in full if k != "intra"), change
    assert set(_terms({"masking": "none"})) == FULL - {"intra"}
    with pytest.raises(ValueError, match="masking"):
        _terms({"masking": "salient"})
    with pytest.raises(ValueError, match=r"'sd2reid' has no method_options 'mask_raito' \(did you mean 'mask_ratio'"):
        SD2Options.from_config({"mask_raito": 0.3})


def _one_forward(seed: int = 0):
    """A DDM model, its method, config (no HSLM: one forward, no masks), a batch, the method's loss terms and the
    model's output on the same batch (deterministic: the same graph as the method's forward)."""
    cfg = _cfg(hslm=False)
    method = get_method("sd2reid")
    torch.manual_seed(seed)
    net = method.build_model(cfg, num_classes=3).train()
    batch = _batch()
    terms = method.training_losses(net, batch, cfg)
    out = net({m: batch[m] for m in MODS}, batch["camid"], with_style=True)
    return net, batch, terms, out


def _token_stats(tokens: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, 2D): per-channel mean and sqrt(population variance + 1e-6) over the tokens."""
    return torch.cat([tokens.mean(1), (tokens.var(1, unbiased=False) + 1e-6).sqrt()], dim=1)


def _style_mse(out, tokens: dict) -> float:
    """sum over modalities of mean((decoded style - token statistics of `tokens[m]`)^2)."""
    return float(sum((out.parts[f"sty_pred_{m}"] - _token_stats(tokens[m])).pow(2).mean() for m in MODS))


def test_style_target_is_the_token_statistics_of_the_shared_shallow_layer():
    """DDM's style distillation predicts the statistics of the patch tokens right after HMFE's shared blocks (the
    shallow shared layer, L_s), recomputed here from the embedding and the shared blocks alone; the last block's
    tokens would give another value."""
    net, batch, terms, out = _one_forward()
    bb = net.backbone
    assert 0 < bb.shared_depth < bb.depth  # the shallow layer is not the last one
    b, x = bb.embed_tokens({m: batch[m] for m in MODS}, batch["camid"])
    for block in bb.shared_blocks:
        x = block(x)
    shallow = {m: x[i * b:(i + 1) * b, 1:] for i, m in enumerate(MODS)}  # patch tokens, CLS dropped
    want = SD2Options().style_weight * _style_mse(out, shallow)
    assert float(terms["style"]) == pytest.approx(want, rel=1e-5)
    last = _style_mse(out, {m: out.parts[f"final_tokens_{m}"][:, 1:] for m in MODS})
    assert last != pytest.approx(want, rel=1e-3)  # the test tells the two layers apart


def test_semantic_distillation_acts_on_the_ddm_semantic_heads_not_the_modality_classifiers():
    """`sem_kd` is the tau^2 KL to the modality consensus of the logits of DDM's semantic codes (semantic head ->
    BN -> shared classifier); its gradient reaches the semantic heads and never the backbone's per-modality
    classifiers."""
    net, batch, terms, out = _one_forward()
    opts = SD2Options()
    with torch.no_grad():  # the semantic logits, recomputed from the backbone's CLS features through DDM's heads
        sem = [net.sem_classifier(net.sem_bnnecks[i](net.sem_heads[i](out.parts[f"cls_{m}"])))
               for i, m in enumerate(MODS)]
        per_modality = [out.parts[f"logits_{m}"] for m in MODS]  # the backbone's own heads
        want = opts.semantic_weight * float(L.semantic_distillation_loss(sem, opts.semantic_tau))
        other = opts.semantic_weight * float(L.semantic_distillation_loss(per_modality, opts.semantic_tau))
    assert float(terms["sem_kd"]) == pytest.approx(want, rel=1e-5)
    assert other != pytest.approx(want, rel=0.1)  # the test tells the two sets of logits apart
    net.zero_grad()
    terms["sem_kd"].backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for k, g in grads.items() if k.startswith("sem_heads."))
    assert all(g is None or g.abs().sum() == 0 for k, g in grads.items() if k.startswith("backbone.classifiers."))


def test_reduces_to_the_multimodal_baseline_losses_without_sharing_ddm_and_hslm():
    cfg = _cfg(shared_depth=0, ddm=False, hslm=False)
    method = get_method("sd2reid")
    torch.manual_seed(0)
    model = method.build_model(cfg, num_classes=3).train()
    assert model.backbone.shared_depth == 0 and not model.ddm
    batch = _batch()
    ours = method.training_losses(model, batch, cfg)
    base = Baseline().training_losses(model.backbone, batch, get_config("baseline", "synthetic-rgbnt", "smoke"))
    assert set(ours) == set(base) == {"id", "triplet"}
    for k in base:
        assert torch.equal(ours[k], base[k]), k


def test_shared_depth_option_and_default_half_depth():
    method = get_method("sd2reid")
    assert method.build_model(_cfg(), 3).backbone.shared_depth == 2  # half of test_mm_vit's 4 blocks
    assert method.build_model(_cfg(shared_depth=4), 3).backbone.shared_depth == 4
    paper = get_config("sd2reid", "rgbnt201", "paper")
    assert paper.data.sync_geometry and paper.model.name == "mm_vit_b16"
    with pytest.raises(ValueError, match="multi-modal"):
        get_config("sd2reid", "synthetic-vi", "smoke")


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    cfg = _cfg()
    method = get_method("sd2reid")
    torch.manual_seed(0)
    model = method.build_model(cfg, num_classes=3).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = _batch()
    losses = []
    for _ in range(8):
        method.generator = torch.Generator().manual_seed(0)  # the same masks every step
        loss = sum(method.training_losses(model, batch, cfg).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


# ------------------------------------------------------------------------------------------------ corruptions
def test_occlusion_covers_the_requested_area_in_all_modalities_alike():
    boxes = occlusion_boxes(2000, 64, 32, 0.3, torch.Generator().manual_seed(0)).float()
    assert (boxes[:, 2] * boxes[:, 3]).mean() / (64 * 32) == pytest.approx(0.3, abs=0.01)
    assert (boxes[:, 0] + boxes[:, 2] <= 64).all() and (boxes[:, 1] + boxes[:, 3] <= 32).all()
    x = _images(8)
    out = occlude(x, 0.25, torch.Generator().manual_seed(1))
    changed = [(out[m] != x[m]).any(1) for m in MODS]  # (B, H, W) per modality
    assert torch.equal(changed[0], changed[1]) and torch.equal(changed[0], changed[2])
    assert all(torch.equal(a, b) for a, b in zip(occlude(x, 0.0).values(), x.values(), strict=True))


def test_style_shift_changes_only_the_named_modality():
    x = {m: torch.rand(2, 3, 8, 4) * 2 - 1 for m in MODS}
    out = style_shift(x, "tir", 0.5, "gain")
    assert torch.equal(out["rgb"], x["rgb"]) and torch.equal(out["nir"], x["nir"])
    expected = ((x["tir"] * 0.5 + 0.5) * 1.5).clamp(0, 1) * 2 - 1
    assert torch.allclose(out["tir"], expected, atol=1e-6)
    assert torch.allclose(style_shift(x, "tir", 0.0, "mixed")["tir"], x["tir"], atol=1e-6)
    with pytest.raises(ValueError, match="modality"):
        style_shift(x, "ir", 0.5)


def test_night_darkens_the_visible_images_alone_by_the_stated_factor():
    """In pixel units the visible image keeps 1 - 0.9 s of its light, plus N(0, (0.05 s)^2) noise drawn from the
    generator; NIR and TIR are the same tensors; s = 0 changes nothing."""
    x = {m: torch.rand(4, 3, 16, 8) * 2 - 1 for m in MODS}
    out = night(x, 0.5, torch.Generator().manual_seed(3))
    assert out["nir"] is x["nir"] and out["tir"] is x["tir"]
    noise = torch.randn(x["rgb"].shape, generator=torch.Generator().manual_seed(3))
    expected = ((x["rgb"] * 0.5 + 0.5) * 0.55 + 0.025 * noise).clamp(0, 1) * 2 - 1
    torch.testing.assert_close(out["rgb"], expected)
    assert (out["rgb"] * 0.5 + 0.5).mean() < 0.6 * (x["rgb"] * 0.5 + 0.5).mean()
    assert torch.equal(night(x, 0.0)["rgb"], x["rgb"])
    for bad, match in ((1.5, "strength"), (-0.1, "strength")):
        with pytest.raises(ValueError, match=match):
            night(x, bad)
    with pytest.raises(ValueError, match="'vis'"):
        night(x, 0.5, modality="vis")


def test_night_corruption_is_seeded_and_named():
    from workbench.viz.sd2 import corruption

    x = {m: torch.rand(2, 3, 8, 4) * 2 - 1 for m in MODS}
    a, b = corruption("night", 0.7, seed=5)(x), corruption("night", 0.7, seed=5)(x)
    assert torch.equal(a["rgb"], b["rgb"]) and not torch.equal(a["rgb"], corruption("night", 0.7, seed=6)(x)["rgb"])
    assert torch.equal(a["tir"], x["tir"])
    with pytest.raises(ValueError, match="night"):
        corruption("fog", 0.5)


# ------------------------------------------------------------------------------------------------ CLI, layouts
@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["synthetic-rgbnt", "synthetic-rgbnt100", "synthetic-msvr310"])
def test_cli_trains_and_evaluates_sd2reid_on_each_multimodal_layout(tmp_path, dataset, capsys):
    from workbench.__main__ import main

    args = ["train", "--method", "sd2reid", "--dataset", dataset, "--profile", "smoke", "--name", "sd2",
            f"run.out_dir={tmp_path}", "run.device=cpu", "optim.epochs=1", "data.batches_per_epoch=2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    summary = json.loads(text[text.index("{"):])
    assert summary["status"] == "finished"
    assert all(0 <= summary["test"][k] <= 1 for k in ("rank1", "mAP"))
    metrics = (tmp_path / "sd2" / "metrics.jsonl").read_text()
    assert all(f'"loss/{t}"' in metrics for t in FULL)
    assert math.isfinite(summary["test"]["mAP"])



# ------------------------------------------------------------------------------------------------ analysis
@pytest.mark.slow
def test_codes_and_robustness_curves_on_a_tiny_model():
    from workbench.data import load_dataset
    from workbench.evaluate import evaluate_splits
    from workbench.viz import sd2 as sd2_analysis

    cfg = _cfg()
    ds = load_dataset(cfg.data.dataset, **cfg.data.options)
    torch.manual_seed(0)
    model = get_method("sd2reid").build_model(cfg, num_classes=4).eval()
    samples = list(ds.query)[:5]
    codes = sd2_analysis.extract_codes(model, samples, cfg)
    assert codes.sem.shape == codes.sty.shape == codes.cls.shape == (15, 64)
    assert list(codes.modality) == ["rgb"] * 5 + ["nir"] * 5 + ["tir"] * 5
    assert list(codes.pids[:5]) == [s.pid for s in samples] == list(codes.pids[10:])
    model_input = {m: torch.stack([_test_image(cfg, s, m) for s in samples]) for m in MODS}
    with torch.no_grad():  # row i * N + j is modality i of sample j
        ref = model(model_input, torch.tensor([s.camid for s in samples]), with_style=True)  # SIE: the cameras
    np.testing.assert_allclose(codes.sty[5:10], ref.parts["sty_nir"].numpy(), atol=1e-5)
    base_codes = sd2_analysis.extract_codes(create_model("test_mm_vit", num_classes=4).eval(), samples, cfg)
    assert base_codes.sem is None and base_codes.sty is None and base_codes.cls.shape == (15, 64)

    curve = sd2_analysis.robustness_curve(model, cfg, ds, "occlusion", [0.0, 0.5], seed=0)
    clean = evaluate_splits(model, ds.eval_splits(), cfg, method=get_method("sd2reid"), progress=False)
    assert curve.loc[0.0, "mAP"] == pytest.approx(clean.mean["mAP"], abs=1e-9)
    assert curve.loc[0.5, "mAP"] != pytest.approx(clean.mean["mAP"], abs=1e-9)
    style = sd2_analysis.robustness_curve(model, cfg, ds, "style", [0.0], seed=0)
    assert style.loc[0.0, "mAP"] == pytest.approx(clean.mean["mAP"], abs=1e-6)


def _test_image(cfg, sample, modality):
    from workbench.features import test_transform

    return test_transform(cfg)(sample.load_image(modality))
