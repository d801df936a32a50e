"""DAKD: distillation losses, MCE teacher memories and the two training methods.

Oracles are written independently here with numpy and explicit loops (METHODS.md 2.4, 2.5).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from workbench.config import get_config
from workbench.data.samples import Sample
from workbench.losses.kd import (
    DAKDLossConfig,
    compute_prototypes,
    confidence_mask,
    dakd_loss,
    kd_loss,
    logit_standardize,
    masked_kd,
)
from workbench.losses.memory import (
    ClassMemory,
    MCELossConfig,
    MCEMemories,
    cross_modal_kl,
    global_center_triplet,
    mce_teacher_loss,
    memory_ce,
)
from workbench.methods.dakd import DAKD, DAKDTeacher, load_teacher

# ------------------------------------------------------------------------------------------------ numpy oracles


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def np_ls(z: np.ndarray) -> np.ndarray:
    """Per-row z-score with the unbiased standard deviation (ddof=1) + 1e-7."""
    return (z - z.mean()) / (z.std(ddof=1) + 1e-7)


def np_kl_rows(a: np.ndarray, b: np.ndarray, t: float, standardize: bool) -> np.ndarray:
    """T^2 KL(softmax(b/T) || softmax(a/T)) for each row, with explicit loops."""
    out = np.zeros(a.shape[0])
    for i in range(a.shape[0]):
        ai, bi = (np_ls(a[i]), np_ls(b[i])) if standardize else (a[i], b[i])
        p, q = np_softmax(bi / t), np_softmax(ai / t)
        out[i] = t * t * sum(p[k] * (np.log(p[k]) - np.log(q[k])) for k in range(len(p)))
    return out


def np_mask(b: np.ndarray, mode: str) -> np.ndarray:
    conf = np.array([np_softmax(row).max() for row in b])
    thr = np.percentile(conf, 50)
    if mode == "none":
        return np.ones(len(conf))
    return (conf <= thr).astype(float) if mode == "le" else (conf > thr).astype(float)


def np_dakd(a_v, a_r, b_v, b_r, C_v, C_r, *, temps=(4, 3, 5, 2, 6), w=0.9, lam=0.5, tau=0.05, mode="le",
            per_sample=False, quirk=True, standardize=True) -> dict[str, float]:
    """The whole DAKD student loss written out from METHODS.md 2.5."""

    def level(av, ar, bv, br):
        mask = np_mask(br, mode)
        weak = 0.0
        for t in temps:
            kl = np_kl_rows(ar, br, t, standardize)
            weak += w * ((kl * mask).mean() if per_sample else kl.mean() * mask.mean())
        strong = 0.0
        for t in temps:
            pair = (ar, br) if quirk and t in (2, 6) else (av, bv)
            strong += w * np_kl_rows(*pair, t, standardize).mean()
        return weak, strong

    iw, is_ = level(a_v, a_r, b_v, b_r)
    cw, cs = level(a_v @ C_v.T / tau, a_r @ C_r.T / tau, b_v @ C_v.T / tau, b_r @ C_r.T / tau)
    return {"inst_weak": lam * iw, "inst_strong": lam * is_, "cls_weak": (1 - lam) * cw, "cls_strong": (1 - lam) * cs}


def _double(*xs):
    return [torch.as_tensor(x, dtype=torch.float64) for x in xs]


@pytest.fixture
def batch():
    """A small instance-level batch: student raw features, teacher normalised features, prototypes."""
    rng = np.random.default_rng(0)
    b, d, c = 8, 6, 5
    a_v, a_r = rng.normal(size=(b, d)), rng.normal(size=(b, d))
    b_v = rng.normal(size=(b, d)) * 3
    b_r = rng.normal(size=(b, d)) * np.linspace(0.5, 4, b)[:, None]  # spread of confidences
    b_v /= np.linalg.norm(b_v, axis=1, keepdims=True)
    b_r /= np.linalg.norm(b_r, axis=1, keepdims=True)
    C_v, C_r = rng.normal(size=(c, d)), rng.normal(size=(c, d))
    C_v /= np.linalg.norm(C_v, axis=1, keepdims=True)
    C_r /= np.linalg.norm(C_r, axis=1, keepdims=True)
    return a_v, a_r, b_v, b_r, C_v, C_r


# ------------------------------------------------------------------------------------------------ kd.py


def test_logit_standardize_uses_unbiased_std():
    z = np.array([[1.0, 2.0, 4.0, 8.0], [0.5, -1.0, 3.0, 0.0]])
    got = logit_standardize(torch.tensor(z, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, np.stack([np_ls(r) for r in z]), rtol=1e-12)
    with pytest.raises(ValueError, match="2-D"):
        logit_standardize(torch.zeros(3))


@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("t", [1.0, 4.0, 6.0])
def test_kd_loss_equals_hand_formula(batch, standardize, t):
    a, b = batch[0] * 2, batch[2] * 5
    want = np_kl_rows(a, b, t, standardize)
    ta, tb = _double(a, b)
    vec = kd_loss(ta, tb, t, standardize=standardize, reduce=False)
    np.testing.assert_allclose(vec.numpy(), want, rtol=1e-10)
    np.testing.assert_allclose(float(kd_loss(ta, tb, t, standardize=standardize)), want.mean(), rtol=1e-10)


def test_kd_loss_is_zero_for_identical_logits_and_invariant_to_shift_and_scale_with_ls(batch):
    a = torch.tensor(batch[0])
    assert float(kd_loss(a, a.clone(), 4.0)) == pytest.approx(0.0, abs=1e-12)
    # LS removes per-row affine changes of the teacher: 3 b + 2 gives the same loss as b
    b = torch.tensor(batch[2])
    assert float(kd_loss(a, 3 * b + 2, 4.0)) == pytest.approx(float(kd_loss(a, b, 4.0)), rel=1e-6)
    assert float(kd_loss(a, 3 * b + 2, 4.0, standardize=False)) != pytest.approx(
        float(kd_loss(a, b, 4.0, standardize=False)), rel=1e-3)


def test_confidence_mask_selects_exactly_the_named_half():
    # rows with increasing confidence: row k has one logit equal to k
    b = torch.zeros(6, 4)
    b[:, 0] = torch.tensor([0.0, 5.0, 1.0, 4.0, 2.0, 3.0])
    le = confidence_mask(b, "le")
    gt = confidence_mask(b, "gt")
    assert le.tolist() == [1, 0, 1, 0, 1, 0]  # the three least confident rows (values 0, 1, 2)
    assert gt.tolist() == [0, 1, 0, 1, 0, 1]
    assert confidence_mask(b, "none").tolist() == [1] * 6
    # odd batch: the median sample itself is kept by "le" and dropped by "gt"
    b5 = b[:5]
    assert confidence_mask(b5, "le").tolist() == [1, 0, 1, 0, 1]
    assert confidence_mask(b5, "gt").tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="mode"):
        confidence_mask(b, "lt")


def test_confidence_mask_matches_numpy_percentile(batch):
    b_r = batch[3]
    for mode in ("le", "gt", "none"):
        np.testing.assert_array_equal(confidence_mask(torch.tensor(b_r), mode).numpy(), np_mask(b_r, mode))


def test_masked_kd_scalar_is_batch_mean_times_mask_mean_and_per_sample_selects(batch):
    a, b = _double(batch[1], batch[3] * 7)
    mask = torch.tensor([1, 0, 0, 1, 1, 0, 0, 0], dtype=torch.float64)
    kl = np_kl_rows(a.numpy(), b.numpy(), 3.0, True)
    scalar = masked_kd(a, b, 3.0, mask, granularity="scalar")
    assert float(scalar) == pytest.approx(kl.mean() * 3 / 8, rel=1e-10)
    per = masked_kd(a, b, 3.0, mask, granularity="per_sample")
    assert float(per) == pytest.approx((kl[0] + kl[3] + kl[4]) / 8, rel=1e-10)
    # per-sample depends only on the kept rows: changing a dropped row's student logits leaves it unchanged
    a2 = a.clone()
    a2[1, 0] += 5.0  # (a constant shift of the row would be undone by LS)
    assert float(masked_kd(a2, b, 3.0, mask, granularity="per_sample")) == pytest.approx(float(per), rel=1e-12)
    assert float(masked_kd(a2, b, 3.0, mask, granularity="scalar")) != pytest.approx(float(scalar), rel=1e-6)


@pytest.mark.parametrize("mode,per_sample,quirk", [("le", False, True), ("gt", True, False), ("none", True, True)])
def test_dakd_loss_equals_written_out_formula(batch, mode, per_sample, quirk):
    cfg = DAKDLossConfig(mask_mode=mode, mask_granularity="per_sample" if per_sample else "scalar",
                         strong_uses_weak_for_T26=quirk)
    terms = dakd_loss(*_double(*batch), cfg=cfg)
    want = np_dakd(*batch, mode=mode, per_sample=per_sample, quirk=quirk)
    assert set(terms) == set(want)
    for k in want:
        assert float(terms[k]) == pytest.approx(want[k], rel=1e-9), k


def test_defaults_reproduce_the_public_code():
    cfg = DAKDLossConfig()
    assert cfg.temperatures == (4.0, 3.0, 5.0, 2.0, 6.0)
    assert (cfg.kd_weight, cfg.instance_weight, cfg.class_weight, cfg.tau_c) == (0.9, 0.5, 0.5, 0.05)
    assert (cfg.mask_mode, cfg.mask_granularity, cfg.strong_uses_weak_for_T26, cfg.ablation) == (
        "le", "scalar", True, "full")
    assert DAKDLossConfig(ablation="mlkd_no_class").ablation == "no_class"
    with pytest.raises(ValueError, match="ablation"):
        DAKDLossConfig(ablation="everything")


def test_ablation_switches_change_exactly_the_terms_they_name(batch):
    x = _double(*batch)
    full = dakd_loss(*x, cfg=DAKDLossConfig())
    no_inst = dakd_loss(*x, cfg=DAKDLossConfig(ablation="no_instance"))
    no_cls = dakd_loss(*x, cfg=DAKDLossConfig(ablation="no_class"))
    only = dakd_loss(*x, cfg=DAKDLossConfig(ablation="only_kd"))
    assert set(full) == {"inst_weak", "inst_strong", "cls_weak", "cls_strong"}
    assert set(no_inst) == {"cls_weak", "cls_strong"}
    assert set(no_cls) == {"inst_weak", "inst_strong"}
    for k in no_inst:
        assert torch.equal(no_inst[k], full[k])
    for k in no_cls:
        assert torch.equal(no_cls[k], full[k])
    a_v, a_r, b_v, b_r = batch[:4]
    want = 0.9 * (np_kl_rows(a_v, b_v, 4.0, True).mean() + np_kl_rows(a_r, b_r, 4.0, True).mean())
    assert set(only) == {"kd"} and float(only["kd"]) == pytest.approx(want, rel=1e-10)


def test_t26_switch_changes_only_the_strong_terms(batch):
    x = _double(*batch)
    code = dakd_loss(*x, cfg=DAKDLossConfig())
    clean = dakd_loss(*x, cfg=DAKDLossConfig(strong_uses_weak_for_T26=False))
    for k in ("inst_weak", "cls_weak"):
        assert torch.equal(code[k], clean[k])
    for k in ("inst_strong", "cls_strong"):
        assert float(code[k]) != pytest.approx(float(clean[k]), rel=1e-6)
    a_v, _, b_v, _ = batch[:4]
    want = 0.5 * 0.9 * sum(np_kl_rows(a_v, b_v, t, True).mean() for t in (4, 3, 5, 2, 6))
    assert float(clean["inst_strong"]) == pytest.approx(want, rel=1e-10)


def test_mask_switches_change_only_the_weak_terms(batch):
    x = _double(*batch)
    code = dakd_loss(*x, cfg=DAKDLossConfig())
    changes = ({"mask_mode": "gt"}, {"mask_granularity": "per_sample"}, {"mask_mode": "none"},
               {"mask_mode": "gt", "mask_granularity": "per_sample"})
    outs = [dakd_loss(*x, cfg=DAKDLossConfig(**change)) for change in changes]
    for other in outs:
        for k in ("inst_strong", "cls_strong"):
            assert torch.equal(code[k], other[k]), k
    # As shipped (scalar granularity) the direction is irrelevant: half the batch passes either way (B even)
    for k in ("inst_weak", "cls_weak"):
        assert float(outs[0][k]) == pytest.approx(float(code[k]), rel=1e-12)
    # ... "none" doubles the weak terms, and per-sample masking makes le and gt select different samples
    for k in ("inst_weak", "cls_weak"):
        assert float(outs[2][k]) == pytest.approx(2 * float(code[k]), rel=1e-12)
        assert float(outs[1][k]) != pytest.approx(float(outs[3][k]), rel=1e-6)
        assert float(outs[1][k] + outs[3][k]) == pytest.approx(float(outs[2][k]), rel=1e-10)


def test_dakd_gradients_reach_only_the_student(batch):
    a_v, a_r, b_v, b_r, C_v, C_r = _double(*batch)
    a_v.requires_grad_(True)
    a_r.requires_grad_(True)
    b_v.requires_grad_(True)
    sum(dakd_loss(a_v, a_r, b_v, b_r, C_v, C_r).values()).backward()
    assert a_v.grad is not None and a_r.grad is not None and b_v.grad is None


def test_prototypes_are_normalised_means_of_normalised_features():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(20, 4))
    labels = np.array([0, 1, 2] * 6 + [0, 1])
    modality = np.array([0, 1] * 10)
    C_v, C_r = compute_prototypes(torch.tensor(feats), torch.tensor(labels), torch.tensor(modality), 3)
    for c in range(3):
        for m, C in ((0, C_v), (1, C_r)):
            rows = [feats[i] / np.linalg.norm(feats[i]) for i in range(20) if labels[i] == c and modality[i] == m]
            mean = np.mean(rows, axis=0)
            np.testing.assert_allclose(C[c].numpy(), mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"identities \[3\] have no infrared"):
        compute_prototypes(torch.tensor(np.concatenate([feats, feats[:1]])), torch.tensor([*labels, 3]),
                           torch.tensor([*modality, 0]), 4)


# ------------------------------------------------------------------------------------------------ memory.py


def test_memory_mean_and_hard_updates_follow_their_formulas():
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(3, 4))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    f = rng.normal(size=(5, 4))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    y = np.array([0, 2, 0, 0, 2])
    for rule, m in (("mean", 0.25), ("hard", 0.1)):
        mem = ClassMemory(torch.tensor(rows), m, rule)
        mem.update(torch.tensor(f), torch.tensor(y))
        want = rows.copy()
        for c in (0, 2):
            members = [i for i in range(5) if y[i] == c]
            if rule == "mean":
                x = f[members].mean(0)
            else:
                sims = [f[i] @ rows[c] for i in members]
                x = f[members[int(np.argmin(sims))]]
            r = m * rows[c] + (1 - m) * x
            want[c] = r / np.linalg.norm(r)
        np.testing.assert_allclose(mem.features.numpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mem.centers.numpy(), rows, rtol=1e-6)  # the frozen copy does not move


def test_memory_from_features_is_normalised_class_mean():
    feats = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    mem = ClassMemory.from_features(feats, torch.tensor([0, 0, 1, 1]), 2, 0.25)
    r0 = np.array([1.0, 1.0]) / 2
    r1 = (np.array([1, 1]) / np.sqrt(2) + np.array([1, 0])) / 2
    np.testing.assert_allclose(mem.features.numpy(), [r0 / np.linalg.norm(r0), r1 / np.linalg.norm(r1)], rtol=1e-6)
    with pytest.raises(ValueError, match="no sample"):
        ClassMemory.from_features(feats, torch.tensor([0, 0, 0, 0]), 2, 0.25)


def test_memory_ce_equals_hand_value_and_does_not_update():
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    mem = ClassMemory(rows, 0.25)
    f = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    y = torch.tensor([2, 1])
    logits = f.numpy() @ rows.numpy().T / 0.05
    want = np.mean([-np.log(np_softmax(logits[i])[y[i]]) for i in range(2)])
    assert float(memory_ce(mem, f, y)) == pytest.approx(want, rel=1e-5)
    assert torch.equal(mem.features, rows)


def test_global_center_triplet_equals_loop():
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(4, 3))
    f = rng.normal(size=(6, 3))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    y = np.array([0, 1, 3, 0, 1, 3])
    want = 0.0
    for i in range(6):
        d_ap = np.linalg.norm(f[i] - centers[y[i]])
        d_an = min(np.linalg.norm(f[i] - centers[y[j]]) for j in range(6) if y[j] != y[i])
        want += max(0.0, d_ap - d_an + 0.3) / 6
    got = global_center_triplet(*_double(f), torch.tensor(y), *_double(centers))
    assert float(got) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="two identities"):
        global_center_triplet(torch.ones(2, 3), torch.tensor([1, 1]), torch.ones(4, 3))


def test_cross_modal_kl_equals_hand_value_and_has_no_gradient_through_targets():
    rng = np.random.default_rng(4)
    f_v, f_r, f_ca = (rng.normal(size=(3, 4)) for _ in range(3))
    C_v, C_r, C_ca = (rng.normal(size=(5, 4)) for _ in range(3))
    tau = 0.05
    student = np.concatenate([f_v @ C_v.T, f_r @ C_r.T, f_ca @ C_ca.T]) / tau
    target = np.concatenate([f_r @ C_v.T, f_v @ C_r.T, f_ca @ C_r.T]) / tau
    want = 0.0
    for i in range(9):
        p, q = np_softmax(target[i]), np_softmax(student[i])
        want += np.sum(p * (np.log(p) - np.log(q))) / 9
    tv, tr, tca = _double(f_v, f_r, f_ca)
    tr.requires_grad_(True)
    got = cross_modal_kl(tv, tr, *_double(C_v, C_r), tca, *_double(C_ca), tau=tau)
    assert float(got.detach()) == pytest.approx(want, rel=1e-10)
    got.backward()
    # f_r enters the student block f_r C_r^T only; its gradient equals that of the student block alone
    tr2 = tr.detach().clone().requires_grad_(True)
    two = torch.cat([tv @ torch.tensor(C_v).T, tr2 @ torch.tensor(C_r).T, tca @ torch.tensor(C_ca).T]) / tau
    tgt = torch.tensor(target)
    F.kl_div(F.log_softmax(two, 1), F.softmax(tgt, 1), reduction="batchmean").backward()
    torch.testing.assert_close(tr.grad, tr2.grad)


# Non-unit weights and constants, so that a weight that does not reach its term, or two swapped constants, show.
ODD_MCE = dict(gc_weight=0.7, mem_weight=1.3, sid_weight=0.8, caid_weight=0.6, kl_weight=1.7, tau=0.07, margin=0.45,
               global_momentum=0.2, modality_momentum=0.35)


def np_unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def np_ce(logits_row: np.ndarray, y: int) -> float:
    return float(-np.log(np_softmax(logits_row)[y]))


def np_mce_terms(f_v, f_r, f_ca, y, rows, centers, w) -> dict[str, float]:
    """MCE teacher terms written out with loops over samples (METHODS.md 2.4, [CODE: IDLNL/MCE]).

    rows / centers: {"g", "v", "r", "ca"} -> (N_c, D) online rows and frozen epoch-start copies; w: ODD_MCE-like.
    """
    tau, views = w["tau"], {"v": np_unit(f_v), "r": np_unit(f_r), "ca": np_unit(f_ca)}
    samples = [(views[k][i], y[i]) for k in ("v", "r", "ca") for i in range(len(y))]  # the global memory sees all
    gc = 0.0
    for f, yi in samples:
        d_ap = np.linalg.norm(f - centers["g"][yi])
        d_an = min(np.linalg.norm(f - centers["g"][yj]) for _, yj in samples if yj != yi)
        gc += max(0.0, d_ap - d_an + w["margin"]) / len(samples)
    mem = np.mean([np_ce(rows["g"] @ f / tau, yi) for f, yi in samples])

    def ce(key):
        return np.mean([np_ce(rows[key] @ views[key][i] / tau, y[i]) for i in range(len(y))])

    kl, pairs = 0.0, []
    for i in range(len(y)):  # (student logits, target logits) rows against the frozen modality centres
        pairs.append((centers["v"] @ views["v"][i], centers["v"] @ views["r"][i]))
        pairs.append((centers["r"] @ views["r"][i], centers["r"] @ views["v"][i]))
        pairs.append((centers["ca"] @ views["ca"][i], centers["r"] @ views["ca"][i]))
    for student, target in pairs:
        p, q = np_softmax(target / tau), np_softmax(student / tau)
        kl += float(np.sum(p * (np.log(p) - np.log(q)))) / len(pairs)
    return {"gc": w["gc_weight"] * gc, "mem": w["mem_weight"] * mem,
            "sid": w["sid_weight"] * (ce("v") + ce("r")),
            "caid": w["sid_weight"] * w["caid_weight"] * ce("ca"), "kl": w["kl_weight"] * kl}


def np_mce_update(f_v, f_r, f_ca, y, rows, w) -> dict[str, np.ndarray]:
    """Rows after one batch: per identity, the global row moves to its least similar normalised sample of any view
    (m = global_momentum), each modality row to the mean of its view's normalised samples (m = modality_momentum)."""
    views = {"v": np_unit(f_v), "r": np_unit(f_r), "ca": np_unit(f_ca)}
    out = {k: v.copy() for k, v in rows.items()}
    for c in sorted(set(y.tolist())):
        idx = [i for i in range(len(y)) if y[i] == c]
        cands = [views[k][i] for k in ("v", "r", "ca") for i in idx]
        x = cands[int(np.argmin([rows["g"][c] @ f for f in cands]))]
        r = w["global_momentum"] * rows["g"][c] + (1 - w["global_momentum"]) * x
        out["g"][c] = r / np.linalg.norm(r)
        for k in ("v", "r", "ca"):
            r = w["modality_momentum"] * rows[k][c] + (1 - w["modality_momentum"]) * views[k][idx].mean(0)
            out[k][c] = r / np.linalg.norm(r)
    return out


def _rows(mems: MCEMemories, attr: str) -> dict[str, np.ndarray]:
    return {k: getattr(m, attr).double().numpy().copy()
            for k, m in (("g", mems.global_), ("v", mems.rgb), ("r", mems.ir), ("ca", mems.ca))}


def test_mce_teacher_loss_and_update_equal_the_loop_oracle():
    torch.manual_seed(0)
    b, d, c = 6, 8, 3
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    feats = {m: torch.randn(3 * c, d) for m in ("v", "r", "ca")}
    lab = torch.arange(c).repeat(3)
    cfg = MCELossConfig(**ODD_MCE)
    mems = MCEMemories.from_features(feats["v"], lab, feats["r"], lab, c, feats["ca"], lab, cfg)
    torch.testing.assert_close(mems.global_.features,
                               (mems.rgb.features + mems.ir.features + mems.ca.features) / 3)
    assert (mems.global_.rule, mems.global_.momentum) == ("hard", 0.2)
    assert (mems.rgb.rule, mems.rgb.momentum) == ("mean", 0.35)
    # two batches: the second reads updated rows for the memory CE and the frozen centres for gc and KL
    for step in range(2):
        f_v, f_r, f_ca = 3 * torch.randn(b, d), torch.randn(b, d), 0.5 * torch.randn(b, d)
        f_ca[step] = -mems.global_.features[y[step]]  # the least similar sample of its class: the hard update's pick
        rows, centers = _rows(mems, "features"), _rows(mems, "centers")
        terms = mce_teacher_loss(f_v, f_r, f_ca, y, mems, cfg)
        want = np_mce_terms(f_v.numpy(), f_r.numpy(), f_ca.numpy(), y.numpy(), rows, centers, ODD_MCE)
        assert set(terms) == set(want)
        for k in want:
            assert float(terms[k]) == pytest.approx(want[k], rel=1e-4), (step, k)
        mems.update(*(F.normalize(x, dim=1) for x in (f_v, f_r, f_ca)), y)
        after = np_mce_update(f_v.numpy(), f_r.numpy(), f_ca.numpy(), y.numpy(), rows, ODD_MCE)
        for k, got in _rows(mems, "features").items():
            np.testing.assert_allclose(got, after[k], rtol=1e-5, atol=1e-6, err_msg=f"step {step}, memory {k}")
        for k, got in _rows(mems, "centers").items():
            np.testing.assert_array_equal(got, centers[k])  # frozen for the epoch
    # switches: no CA view, zero KL weight, the online rows for the KL (MCE --gx)
    no_ca = mce_teacher_loss(f_v, f_r, None, y, mems, cfg)
    assert set(no_ca) == {"gc", "mem", "sid", "kl"}
    assert float(mce_teacher_loss(f_v, f_r, f_ca, y, mems, MCELossConfig(kl_weight=0.0))["kl"]) == 0.0
    online = mce_teacher_loss(f_v, f_r, f_ca, y, mems, MCELossConfig(**ODD_MCE, kl_uses_online_memory=True))
    rows = _rows(mems, "features")
    want = np_mce_terms(f_v.numpy(), f_r.numpy(), f_ca.numpy(), y.numpy(), rows, {**rows, "g": centers["g"]}, ODD_MCE)
    assert float(online["kl"]) == pytest.approx(want["kl"], rel=1e-4)


# ------------------------------------------------------------------------------------------------ methods/dakd.py

N_IDS = 4


@pytest.fixture(scope="module")
def vi_samples(tmp_path_factory):
    """4 identities x (2 visible + 2 infrared) small PNG images, labels 0..3."""
    root = tmp_path_factory.mktemp("vi")
    rng = np.random.default_rng(0)
    samples = []
    for label in range(N_IDS):
        base = rng.integers(0, 255, size=3)
        for modality, camid in (("rgb", 1), ("ir", 3)):
            for k in range(2):
                arr = np.clip(base + rng.normal(0, 40, size=(64, 32, 3)), 0, 255)
                if modality == "ir":
                    arr = np.repeat(arr.mean(2, keepdims=True), 3, axis=2)
                path = root / f"{label}_{modality}_{k}.png"
                Image.fromarray(arr.astype(np.uint8)).save(path)
                samples.append(Sample(paths={modality: str(path)}, pid=100 + label, camid=camid, modality=modality,
                                      label=label))
    return samples


def smoke_cfg(method, **options):
    cfg = get_config(method, "synthetic-vi", "smoke")
    return cfg.override(**{"run.device": "cpu", "method_options": options})


def fixed_batch(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(N_IDS).repeat_interleave(n // N_IDS)
    return {"rgb": torch.randn(n, 3, 32, 16, generator=g), "ir": torch.randn(n, 3, 32, 16, generator=g),
            "label": labels}


@torch.no_grad()
def manual_eval_feats(model, samples, cfg, transform=None):
    """Oracle: eval-mode BN features one image at a time, without the engine's loader."""
    from workbench.train import test_transform

    tf = test_transform(cfg)
    model.eval()
    rows = []
    for s in samples:
        x = tf(s.load_image(s.modality)).unsqueeze(0)
        x = transform(x[0]).unsqueeze(0) if transform is not None else x
        rows.append(model(x, torch.tensor([0 if s.modality == "rgb" else 1])).feats[0])
    model.train()
    return torch.stack(rows)


def oracle_prototypes(feats, samples, modality):
    rows = []
    for c in range(N_IDS):
        sel = [i for i, s in enumerate(samples) if s.label == c and s.modality == modality]
        mean = F.normalize(feats[sel], dim=1).mean(0)
        rows.append(mean / mean.norm())
    return torch.stack(rows)


def test_dakd_models_are_single_stream_without_classifier():
    cfg = smoke_cfg("dakd")
    model = DAKD().build_model(cfg, N_IDS)
    assert model.classifier is None and not model.two_stream and model.pool.p.requires_grad
    two = DAKD().build_model(cfg.override(method_options={"single_stream": False}), N_IDS)
    assert two.two_stream


# The teacher features' normalisation is invisible under the defaults (standardised logits, a scalar mask whose mean
# is 1/2 whatever the confidences); the per-sample mask and raw logits show it.
@pytest.mark.parametrize("options", [{}, {"mask_granularity": "per_sample", "standardize": False}],
                         ids=["code", "per_sample_raw"])
def test_student_setup_prototypes_freezing_and_terms(vi_samples, options):
    torch.manual_seed(0)
    cfg = smoke_cfg("dakd")
    teacher = DAKDTeacher().build_model(cfg, N_IDS)
    cfg = cfg.override(method_options={"teacher_model": teacher, **options})
    method = DAKD()
    student = method.build_model(cfg, N_IDS)
    method.setup(student, cfg, vi_samples, torch.device("cpu"))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    feats = manual_eval_feats(teacher, vi_samples, cfg)
    teacher.eval()
    torch.testing.assert_close(method.C_v, oracle_prototypes(feats, vi_samples, "rgb"), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(method.C_r, oracle_prototypes(feats, vi_samples, "ir"), rtol=1e-4, atol=1e-5)
    # the terms are the written-out loss (np_dakd) of the student's train-mode BN outputs and the teacher's
    # normalised eval outputs
    batch = fixed_batch()
    student.train()
    terms = method.training_losses(student, batch, cfg)
    zeros, ones = torch.zeros(8, dtype=torch.long), torch.ones(8, dtype=torch.long)
    with torch.no_grad():
        b_v = F.normalize(teacher(batch["rgb"], zeros).feats, dim=1)
        b_r = F.normalize(teacher(batch["ir"], ones).feats, dim=1)
        a_v, a_r = student(batch["rgb"], zeros).feats, student(batch["ir"], ones).feats
    loss_cfg = DAKDLossConfig(**options)
    want = np_dakd(*(x.double().numpy() for x in (a_v, a_r, b_v, b_r, method.C_v, method.C_r)),
                   mode=loss_cfg.mask_mode, per_sample=loss_cfg.mask_granularity == "per_sample",
                   standardize=loss_cfg.standardize)
    assert set(terms) == set(want)
    for k in want:
        assert terms[k].item() == pytest.approx(want[k], rel=1e-4), k
    if options:  # the normalisation matters here: un-normalised teacher features give other terms
        with torch.no_grad():
            raw_v, raw_r = teacher(batch["rgb"], zeros).feats, teacher(batch["ir"], ones).feats
        assert not torch.allclose(raw_v.norm(dim=1), torch.ones(8), atol=0.1)
        for pair in ((raw_v, b_r), (b_v, raw_r)):
            other = dakd_loss(a_v, a_r, *pair, method.C_v, method.C_r, loss_cfg)
            assert any(abs(other[k].item() - want[k]) > 1e-3 * abs(want[k]) for k in want)


def test_distillation_steps_reduce_the_loss_and_never_touch_the_teacher(vi_samples):
    torch.manual_seed(1)
    cfg = smoke_cfg("dakd")
    teacher = DAKDTeacher().build_model(cfg, N_IDS).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    cfg = cfg.override(method_options={"teacher_model": teacher})
    method = DAKD()
    student = method.build_model(cfg, N_IDS)
    method.setup(student, cfg, vi_samples, torch.device("cpu"))
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    batch = fixed_batch(seed=2)
    losses = []
    student.train()
    for _ in range(4):
        total = sum(method.training_losses(student, batch, cfg).values())
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.95 * losses[0], losses
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_double_forward_updates_bn_statistics_twice(vi_samples):
    cfg = smoke_cfg("dakd")
    teacher = DAKDTeacher().build_model(cfg, N_IDS)
    stats = {}
    for flag in (False, True):
        torch.manual_seed(3)
        c = cfg.override(method_options={"teacher_model": teacher, "double_forward": flag})
        method = DAKD()
        student = method.build_model(c, N_IDS)
        method.setup(student, c, vi_samples, torch.device("cpu"))
        student.train()
        method.training_losses(student, fixed_batch(), c)
        stats[flag] = int(student.bnneck.num_batches_tracked)
    assert stats[True] == 2 * stats[False] == 4


def test_teacher_from_weights_file_and_from_a_baseline_run(vi_samples, tmp_path):
    from workbench.methods.baseline import Baseline
    from workbench.runs import Run, save_weights

    cfg = smoke_cfg("dakd")
    ref = DAKDTeacher().build_model(cfg, N_IDS)
    save_weights(ref.state_dict(), tmp_path / "teacher.safetensors")
    got = load_teacher(cfg.override(method_options={"teacher": str(tmp_path / "teacher.safetensors")}), "cpu")
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), got.state_dict().values()))
    # any saved run, e.g. the two-stem baseline with a classifier
    base_cfg = get_config("baseline", "synthetic-vi", "smoke").override(
        **{"run.out_dir": str(tmp_path), "run.name": "base", "run.device": "cpu"})
    run = Run.create(base_cfg)
    base = Baseline().build_model(base_cfg, N_IDS)
    save_weights(base.state_dict(), run.best_weights)
    run.save_results({"num_classes": N_IDS})
    c = cfg.override(method_options={"teacher": str(run.path)})
    method = DAKD()
    method.setup(method.build_model(c, N_IDS), c, vi_samples, torch.device("cpu"))
    assert method.teacher.two_stream and method.C_v.shape == (N_IDS, method.teacher.feat_dim)
    with pytest.raises(ValueError, match="needs a teacher"):
        DAKD().setup(ref, cfg, vi_samples, torch.device("cpu"))
    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        load_teacher(cfg.override(method_options={"teacher": str(tmp_path / "nope")}), "cpu")


@pytest.mark.parametrize("channels", [3, 2])
def test_teacher_memories_and_losses(vi_samples, channels):
    torch.manual_seed(4)
    cfg = smoke_cfg("dakd_teacher", channels=channels)
    method = DAKDTeacher()
    model = method.build_model(cfg, N_IDS)
    method.setup(model, cfg, vi_samples, torch.device("cpu"))
    method.on_epoch_start(model, 0)
    mem = method.memories
    rgb = [s for s in vi_samples if s.modality == "rgb"]
    ir = [s for s in vi_samples if s.modality == "ir"]
    torch.testing.assert_close(mem.rgb.centers, oracle_prototypes(manual_eval_feats(model, rgb, cfg), rgb, "rgb"),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mem.ir.centers, oracle_prototypes(manual_eval_feats(model, ir, cfg), ir, "ir"),
                               rtol=1e-4, atol=1e-5)
    views = [mem.rgb.centers, mem.ir.centers] + ([mem.ca.centers] if channels == 3 else [])
    torch.testing.assert_close(mem.global_.centers, torch.stack(views).mean(0))
    assert (mem.ca is None) == (channels == 2)
    if channels == 3:  # the CA rows come from single-channel copies: different from the RGB rows
        assert not torch.allclose(mem.ca.centers, mem.rgb.centers, atol=1e-3)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    terms = method.training_losses(model, fixed_batch(), cfg)
    want = {"gc", "mem", "sid", "kl"} | ({"caid"} if channels == 3 else set())
    assert set(terms) == want  # values and updates: test_teacher_training_losses_and_updates_equal_the_loop_oracle
    opt.zero_grad()
    sum(terms.values()).backward()
    opt.step()
    # the next epoch starts from fresh memories of the new weights
    method.on_epoch_start(model, 1)
    assert method.memories is not mem and torch.equal(method.memories.rgb.features, method.memories.rgb.centers)


def test_teacher_training_losses_and_updates_equal_the_loop_oracle(vi_samples):
    """Two steps of `DAKDTeacher.training_losses` with non-unit weights against the loop oracle: the terms of the
    train-mode features of the one [v; r; ca] forward, and the memory rows after each step."""
    torch.manual_seed(5)
    cfg = smoke_cfg("dakd_teacher", **ODD_MCE)
    method = DAKDTeacher()
    model = method.build_model(cfg, N_IDS)
    method.setup(model, cfg, vi_samples, torch.device("cpu"))
    assert method.loss_cfg == MCELossConfig(**ODD_MCE)
    method.on_epoch_start(model, 0)
    model.train()
    centers = _rows(method.memories, "centers")
    for step in range(2):
        batch = fixed_batch(seed=10 + step)
        g = torch.Generator().manual_seed(step)
        batch["rgb_ca"] = batch["rgb"][:, torch.randint(0, 3, (1,), generator=g)].expand(-1, 3, -1, -1).clone()
        n = len(batch["label"])
        with torch.no_grad():  # train mode: batch statistics, so this forward gives the method's features
            mods = torch.tensor([0] * n + [1] * n + [0] * n)
            f_v, f_r, f_ca = model(torch.cat([batch["rgb"], batch["ir"], batch["rgb_ca"]]), mods).feats.split(n)
        rows = _rows(method.memories, "features")
        terms = method.training_losses(model, batch, cfg)
        y = batch["label"].numpy()
        want = np_mce_terms(f_v.numpy(), f_r.numpy(), f_ca.numpy(), y, rows, centers, ODD_MCE)
        assert set(terms) == set(want)
        for k in want:
            assert float(terms[k].detach()) == pytest.approx(want[k], rel=1e-4, abs=1e-6), (step, k)
        after = np_mce_update(f_v.numpy(), f_r.numpy(), f_ca.numpy(), y, rows, ODD_MCE)
        for k, got in _rows(method.memories, "features").items():
            np.testing.assert_allclose(got, after[k], rtol=1e-4, atol=1e-5, err_msg=f"step {step}, memory {k}")


def test_method_options_from_the_command_line_are_parsed(vi_samples):
    cfg = smoke_cfg("dakd")
    teacher = DAKDTeacher().build_model(cfg, N_IDS)
    c = cfg.override(**{"method_options.teacher_model": teacher, "method_options.mask_mode": "gt",
                        "method_options.strong_uses_weak_for_T26": "false", "method_options.temperatures": "4,2",
                        "method_options.double_forward": "true", "method_options.ablation": "mlkd_no_class"})
    method = DAKD()
    method.setup(method.build_model(c, N_IDS), c, vi_samples, torch.device("cpu"))
    assert method.loss_cfg == DAKDLossConfig(mask_mode="gt", strong_uses_weak_for_T26=False, temperatures=(4, 2),
                                             ablation="no_class")
    assert method.double_forward is True


@pytest.mark.parametrize("method, options, says", [
    ("dakd_teacher", {"mask_mode": "gt"}, "'dakd_teacher' has no method_options 'mask_mode'"),
    ("dakd_teacher", {"teacher": "runs/t"}, "'dakd_teacher' has no method_options 'teacher'"),
    ("dakd", {"channels": 2}, "'dakd' has no method_options 'channels'"),
    ("dakd", {"temprature": 2}, "'temprature' (did you mean 'temperatures'?)"),
    ("dakd_teacher", {"kl_wieght": 1}, "'kl_wieght' (did you mean 'kl_weight'"),
    ("dakd", {"tau_c": "0"}, "method_options.tau_c=0: out of range"), ("dakd", {"instance_weight": "1.5"}, "[0, 1]"),
    ("dakd", {"mask_mode": "sometimes"}, "('le', 'gt', 'none')"), ("dakd", {"temperatures": "4,0"}, "positive"),
    ("dakd", {"double_forward": "twice"}, "not a boolean"), ("dakd", {"ablation": "all"}, "'mlkd_no_class'"),
    ("dakd_teacher", {"channels": "4"}, "one of (2, 3)"), ("dakd_teacher", {"global_momentum": "2"}, "[0, 1]"),
    ("dakd_teacher", {"tau": "-0.05"}, "> 0"),
])
def test_each_phase_refuses_misspelt_and_other_phase_options_and_bad_values(method, options, says):
    """Both phases parse their own keys only (the teacher's MCE constants, the student's KD switches): an unknown
    or out-of-range option stops `build_model`, before any training, where it used to be ignored."""
    cfg = smoke_cfg(method)
    cfg = cfg.override(**{f"method_options.{k}": v for k, v in options.items()})
    cls = DAKDTeacher if method == "dakd_teacher" else DAKD
    with pytest.raises(ValueError) as info:
        cls().build_model(cfg, N_IDS)
    assert says in str(info.value)


def test_option_values_keep_their_meaning():
    """Teacher paths, code ablation names, "none" masks and one temperature from the command line."""
    opts = DAKD().options(smoke_cfg("dakd").override(**{
        "method_options.teacher": "runs/t", "method_options.ablation": "mlkd_no_instance",
        "method_options.mask_mode": "none", "method_options.temperatures": "3"}))
    assert (opts.teacher, opts.ablation, opts.mask_mode, opts.temperatures) == ("runs/t", "no_instance", "none", (3.0,))
    assert DAKDTeacher().options({"channels": "2", "hard_global": "false"}).channels == 2


def test_teacher_memories_from_training_images_are_the_augmented_class_means_and_keep_the_run_rng(vi_samples):
    """`memory_images="train"` (issue 19's hypothesis test): each memory row is the normalised mean of eval-mode
    features of one draw of the training augmentation, seeded by (run seed, epoch), and building it leaves the
    run's random state alone; the default is MCE's resize-only images."""
    from torch.utils.data import DataLoader

    from workbench.data import torch_datasets
    from workbench.data.transforms import build_train_transform
    from workbench.utils import seed_everything

    torch.manual_seed(4)
    cfg = smoke_cfg("dakd_teacher", memory_images="train")
    assert DAKDTeacher().options(smoke_cfg("dakd_teacher")).memory_images == "test"
    method = DAKDTeacher()
    model = method.build_model(cfg, N_IDS)
    method.setup(model, cfg, vi_samples, torch.device("cpu"))
    state = torch.get_rng_state()
    mem0 = method.build_memories(model, 0)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(method.build_memories(model, 0).rgb.centers, mem0.rgb.centers)  # seeded per epoch
    assert not torch.allclose(method.build_memories(model, 1).rgb.centers, mem0.rgb.centers)
    # independent oracle: the same draw by hand, over the method's infrared list (its order fixes which image gets
    # which draw)
    ir = method.ir_samples
    seed_everything(cfg.run.seed * 100_003 + 1)
    loader = DataLoader(torch_datasets.ImageDataset(ir, build_train_transform("vi_ir", cfg.data.height, cfg.data.width)),
                        batch_size=len(ir), collate_fn=torch_datasets.collate, generator=torch.Generator())
    model.eval()
    with torch.no_grad():
        feats = model(next(iter(loader))["images"]["ir"], torch.ones(len(ir), dtype=torch.long)).feats
    torch.testing.assert_close(mem0.ir.centers, oracle_prototypes(feats, ir, "ir"), rtol=1e-4, atol=1e-5)
    test_mem = DAKDTeacher()
    test_mem.setup(model, smoke_cfg("dakd_teacher"), vi_samples, torch.device("cpu"))
    assert not torch.allclose(test_mem.build_memories(model, 0).ir.centers, mem0.ir.centers, atol=1e-4)
