"""Losses against brute-force oracles written as loops, plus the properties every loss must have on a PK batch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from workbench import losses

P, K, D = 4, 4, 16  # identities, images per identity (2 visible + 2 infrared), feature dim


def pk_batch(seed: int = 0, spread: float = 1.0, sep: float = 0.0, dtype=torch.float64):
    """feats (P*K, D), labels (P*K,), modality (P*K,) with K/2 visible and K/2 infrared images per identity."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(P).repeat_interleave(K)
    modality = torch.tensor([0, 1]).repeat(P * K // 2)
    centres = sep * torch.eye(P, D, dtype=dtype)
    feats = centres[labels] + spread * torch.randn(P * K, D, generator=g, dtype=dtype)
    return feats, labels, modality


# ---------------------------------------------------------------- oracles (loops, float64)

def dist(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.sqrt(max(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)), 1e-12))


def triplet_oracle(feats, labels, margin):
    n, total = len(labels), 0.0
    for i in range(n):
        d_ap = max(dist(feats[i], feats[j]) for j in range(n) if labels[j] == labels[i])
        d_an = min(dist(feats[i], feats[j]) for j in range(n) if labels[j] != labels[i])
        total += math.log1p(math.exp(d_ap - d_an)) if margin is None else max(0.0, d_ap - d_an + margin)
    return total / n


def wrt_oracle(feats, labels):
    n, total = len(labels), 0.0
    for i in range(n):
        pos = [dist(feats[i], feats[j]) for j in range(n) if labels[j] == labels[i]]
        neg = [dist(feats[i], feats[j]) for j in range(n) if labels[j] != labels[i]]
        zp, zn = sum(math.exp(d) for d in pos), sum(math.exp(-d) for d in neg)
        furthest = sum(math.exp(d) / zp * d for d in pos)
        closest = sum(math.exp(-d) / zn * d for d in neg)
        total += math.log1p(math.exp(furthest - closest))
    return total / n


def ce_oracle(logits, labels, eps):
    total = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        m = max(row)
        log_z = m + math.log(sum(math.exp(v - m) for v in row))
        logp = [v - log_z for v in row]
        total += -(1 - eps) * logp[y] - eps / len(row) * sum(logp)
    return total / len(labels)


def hetero_oracle(feats, labels, modality, margin=0.0):
    total = 0.0
    for y in sorted(set(labels.tolist())):
        vis = [feats[i] for i in range(len(labels)) if labels[i] == y and modality[i] == 0]
        ir = [feats[i] for i in range(len(labels)) if labels[i] == y and modality[i] == 1]
        if not vis or not ir:
            continue
        cv, cr = sum(vis) / len(vis), sum(ir) / len(ir)
        total += max(0.0, float(((cv - cr) ** 2).sum()) - margin)
    return total


# ---------------------------------------------------------------- oracle tests

@pytest.mark.parametrize("margin", [0.3, 1.0, None])
def test_batch_hard_triplet_matches_brute_force(margin):
    feats, labels, _ = pk_batch(1)
    got = losses.batch_hard_triplet_loss(feats, labels, margin=margin)
    assert got.item() == pytest.approx(triplet_oracle(feats, labels, margin), rel=1e-9, abs=1e-12)


def test_batch_hard_triplet_normalize_equals_normalised_input():
    feats, labels, _ = pk_batch(2)
    a = losses.batch_hard_triplet_loss(feats, labels, normalize=True)
    b = losses.batch_hard_triplet_loss(F.normalize(feats, dim=1), labels)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)
    assert a.item() == pytest.approx(triplet_oracle(F.normalize(feats, dim=1), labels, 0.3), rel=1e-9)


def test_wrt_matches_softmax_weight_formula():
    feats, labels, _ = pk_batch(3)
    got = losses.weighted_regularized_triplet_loss(feats, labels)
    assert got.item() == pytest.approx(wrt_oracle(feats, labels), rel=1e-9)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_cross_entropy_matches_manual_formula(eps):
    g = torch.Generator().manual_seed(4)
    logits = 3 * torch.randn(P * K, 7, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 7, (P * K,), generator=g)
    got = losses.cross_entropy_loss(logits, labels, label_smoothing=eps)
    assert got.item() == pytest.approx(ce_oracle(logits, labels, eps), rel=1e-9)


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_hetero_center_matches_loop(margin):
    feats, labels, modality = pk_batch(5)
    got = losses.hetero_center_loss(feats, labels, modality, margin=margin)
    assert got.item() == pytest.approx(hetero_oracle(feats, labels, modality, margin), rel=1e-9)
    mean = losses.hetero_center_loss(feats, labels, modality, margin=margin, reduction="mean")
    assert mean.item() == pytest.approx(got.item() / P, rel=1e-9)


def test_hetero_center_skips_identities_seen_in_one_modality():
    feats, labels, modality = pk_batch(6)
    modality = modality.clone()
    modality[labels == 0] = 0  # identity 0: visible only
    got = losses.hetero_center_loss(feats, labels, modality)
    assert got.item() == pytest.approx(hetero_oracle(feats, labels, modality), rel=1e-9)
    # the mean runs over the identities seen in both modalities only (P - 1 of them), not over all P
    mean = losses.hetero_center_loss(feats, labels, modality, reduction="mean")
    assert mean.item() == pytest.approx(hetero_oracle(feats, labels, modality) / (P - 1), rel=1e-9)
    with pytest.raises(ValueError, match="both visible"):
        losses.hetero_center_loss(feats, labels, torch.zeros_like(modality))


@pytest.mark.parametrize("reduction", ["mean", "paper"])
def test_center_loss_matches_loop(reduction):
    torch.manual_seed(7)
    crit = losses.CenterLoss(P, D, reduction=reduction).double()
    feats, labels, _ = pk_batch(7)
    sq = [float(((feats[i] - crit.centers.detach()[labels[i]]) ** 2).sum()) for i in range(len(labels))]
    expected = sum(sq) / len(sq) if reduction == "mean" else 0.5 * sum(sq)
    assert crit(feats, labels).item() == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- zero where it must be

def test_triplet_with_margin_is_zero_for_separated_clusters():
    feats, labels, _ = pk_batch(8, spread=0.01, sep=10.0)
    assert losses.batch_hard_triplet_loss(feats, labels, margin=0.3).item() == 0.0
    # the soft margin never reaches zero but vanishes (exp(-14) ~ 1e-6)
    assert 0 < losses.batch_hard_triplet_loss(feats, labels, margin=None).item() < 1e-5
    assert 0 < losses.weighted_regularized_triplet_loss(feats, labels).item() < 1e-5


def test_triplet_with_margin_is_positive_when_clusters_overlap():
    feats, labels, _ = pk_batch(9, spread=1.0, sep=0.0)
    assert losses.batch_hard_triplet_loss(feats, labels, margin=0.3).item() > 0.3 * 0.5


def test_center_loss_zero_at_centres():
    crit = losses.CenterLoss(P, D).double()
    labels = torch.arange(P).repeat_interleave(K)
    assert crit(crit.centers.detach()[labels], labels).item() == 0.0


def test_hetero_center_zero_when_modality_centres_coincide():
    g = torch.Generator().manual_seed(10)
    base = torch.randn(P, D, generator=g, dtype=torch.float64)
    offset = torch.randn(P, D, generator=g, dtype=torch.float64)
    labels = torch.arange(P).repeat_interleave(K)
    modality = torch.tensor([0, 0, 1, 1]).repeat(P)
    sign = torch.tensor([1.0, -1.0, 2.0, -2.0], dtype=torch.float64).repeat(P)[:, None]
    feats = base[labels] + sign * offset[labels]  # spread around the centre, same centre in both modalities
    assert losses.hetero_center_loss(feats, labels, modality).item() == pytest.approx(0.0, abs=1e-20)
    # the spread around the centres is not zero: the triplet loss of the same batch is its brute-force value
    assert losses.batch_hard_triplet_loss(feats, labels).item() == pytest.approx(triplet_oracle(feats, labels, 0.3),
                                                                                rel=1e-9, abs=1e-12)


def test_cross_entropy_near_zero_for_confident_correct_logits():
    labels = torch.arange(5)
    logits = 50.0 * F.one_hot(labels, 5).double()
    assert losses.cross_entropy_loss(logits, labels, label_smoothing=0.0).item() < 1e-12
    # with smoothing the optimum is not a one-hot, so the loss stays above the smoothed target's entropy
    assert losses.cross_entropy_loss(logits, labels, label_smoothing=0.1).item() > 0.1


# ---------------------------------------------------------------- properties of every loss (sklearn test_common style)

def _center(feats, labels, modality):
    torch.manual_seed(0)
    return losses.CenterLoss(P, D).double()(feats, labels)


ALL_LOSSES = {
    "triplet_margin": lambda f, y, m: losses.batch_hard_triplet_loss(f, y, margin=0.3),
    "triplet_soft": lambda f, y, m: losses.batch_hard_triplet_loss(f, y, margin=None),
    "triplet_normalized": lambda f, y, m: losses.batch_hard_triplet_loss(f, y, normalize=True),
    "wrt": lambda f, y, m: losses.weighted_regularized_triplet_loss(f, y),
    "center": _center,
    "hetero_center": lambda f, y, m: losses.hetero_center_loss(f, y, m),
    "hetero_center_margin": lambda f, y, m: losses.hetero_center_loss(f, y, m, margin=0.1),
    "cross_entropy": lambda f, y, m: losses.cross_entropy_loss(f[:, :P], y),
}


@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
def test_loss_gradient_equals_finite_differences(name):
    """The analytic gradient of every loss matches central finite differences (float64, tie-free batch)."""
    feats, labels, modality = pk_batch(11)
    feats = feats.clone().requires_grad_(True)
    loss = ALL_LOSSES[name](feats, labels, modality)
    assert loss.dim() == 0 and loss.item() > 0
    assert torch.autograd.gradcheck(lambda f: ALL_LOSSES[name](f, labels, modality), (feats,), eps=1e-6, atol=1e-6)
    loss.backward()
    assert feats.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
def test_loss_invariant_to_batch_order(name):
    feats, labels, modality = pk_batch(12)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    a = ALL_LOSSES[name](feats, labels, modality)
    b = ALL_LOSSES[name](feats[perm], labels[perm], modality[perm])
    assert a.item() == pytest.approx(b.item(), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
def test_loss_finite_in_float32_with_duplicates(name):
    feats, labels, modality = pk_batch(13, dtype=torch.float32)
    feats = feats.clone()
    feats[1] = feats[0]  # zero distance between two samples: the sqrt floor must keep gradients finite
    feats.requires_grad_(True)
    loss = ALL_LOSSES[name](feats, labels, modality)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(feats.grad).all()


def test_center_loss_trains_its_centres():
    crit = losses.CenterLoss(P, D)
    feats, labels, _ = pk_batch(14, dtype=torch.float32)
    crit(feats, labels).backward()
    assert crit.centers.grad is not None
    used = crit.centers.grad.abs().sum(dim=1)
    assert (used > 0).all()  # every identity of the batch moves its centre


# ---------------------------------------------------------------- errors

def test_errors_name_the_argument():
    feats, labels, modality = pk_batch(15)
    with pytest.raises(ValueError, match="feats must be 2-D"):
        losses.batch_hard_triplet_loss(feats[0], labels)
    with pytest.raises(ValueError, match="labels must be"):
        losses.weighted_regularized_triplet_loss(feats, labels[:-1])
    with pytest.raises(ValueError, match="negative"):
        losses.batch_hard_triplet_loss(feats[:K], labels[:K])
    with pytest.raises(ValueError, match="labels must be in"):
        losses.cross_entropy_loss(torch.zeros(3, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="modality values"):
        losses.hetero_center_loss(feats, labels, modality + 1)
    with pytest.raises(ValueError, match="feat_dim"):
        losses.CenterLoss(P, D + 1).double()(feats, labels)
    with pytest.raises(ValueError, match="margin"):
        losses.batch_hard_triplet_loss(feats, labels, margin=-1.0)


def test_every_loss_taking_a_modality_index_checks_it_one_way():
    """Hetero-centre, ICG and DAKD's prototypes refuse a bad `modality` (N,) tensor with the same message (the one
    check of `losses._checks`, indices of `workbench.data.samples`: 0 visible, 1 infrared)."""
    from workbench.data.samples import INFRARED, VI_MODALITIES, VISIBLE, vi_modality_index
    from workbench.losses.icre import icg_centre_loss, icg_margin_loss
    from workbench.losses.kd import compute_prototypes

    assert (VISIBLE, INFRARED) == (0, 1) and [vi_modality_index(m) for m in VI_MODALITIES] == [0, 1]
    with pytest.raises(ValueError, match="'nir'"):
        vi_modality_index("nir")
    feats, labels = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    calls = {"hetero_center": lambda m: losses.hetero_center_loss(feats, labels, m),
             "icg_centre": lambda m: icg_centre_loss(feats, labels, m),
             "icg_margin": lambda m: icg_margin_loss(feats, labels, m),
             "prototypes": lambda m: compute_prototypes(feats, labels, m, 2)}
    for name, call in calls.items():
        out = call(torch.tensor([0, 1, 0, 1]))
        assert all(torch.isfinite(t).all() for t in (out if isinstance(out, tuple) else (out,))), name
        with pytest.raises(ValueError, match=r"modality values must be 0 \(visible, rgb\) or 1 \(infrared, ir\), "
                                             r"got \[0, 2\]"):
            call(torch.tensor([0, 2, 0, 2]))
        with pytest.raises(ValueError, match=r"modality must be \(N,\) = \(4,\), got shape \(3,\)"):
            call(torch.tensor([0, 1, 0]))
