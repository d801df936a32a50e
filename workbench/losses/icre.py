"""ICRE's losses: semantic distillation from the shallow-clue head, and the identity-clue-guided (ICG) loss.

ICRE (arXiv 2512.04522) publishes only that SDCE "distills identity-aware knowledge from the aggregated shallow
features" and that the ICG loss "alleviate[s] the modality discrepancies within the enhanced features and
promote[s] the learning of a diverse representation space" [PAPER-ABS], with "modality-aware centres" aligning
cross-modal representations [SECONDARY: emergentmind ICRE topic page]. The formulas below are INFERRED
(METHODS.md 3.2) and every term can be switched off on its own:

    L_sd      = T^2 KL( softmax(sg(z_s)/T) || softmax(z_e/T) )                      one-way (default), T = 4
              = T^2 [KL(sg(p_s) || p_e) + KL(sg(p_e) || p_s)]                         mutual, as IDKL's `Bg_kl`
                                                                                     [BASELINE: 1KK077/IDKL]
    c_y^m     = mean{ f_i : y_i = y, m_i = m }      modality-aware centres of the batch (f L2-normalised)
    L_centre  = (1/|Y_2|) sum_{y in Y_2} ||c_y^0 - c_y^1||^2        Y_2: identities with both modalities
    L_margin  = (1/|I|) sum_{i in I} [ ||f_i - c_{y_i}^{1-m_i}|| - min_{(k, m'), k != y_i} ||f_i - c_k^{m'}|| + rho ]_+
                I: samples whose identity has the other modality in the batch and at least one other identity

Defined behaviour for incomplete batches: identities seen in one modality only are left out of `L_centre`, their
samples out of `L_margin` (they have no cross-modal centre to be pulled to); when nothing is left the term is an
exact zero that still carries a (zero) gradient, never NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_feats_labels, check_modality

SD_DIRECTIONS = ("one_way", "mutual")


def semantic_distillation_loss(enhanced_logits: Tensor, shallow_logits: Tensor, temperature: float = 4.0,
                               direction: str = "one_way") -> Tensor:
    """Logit distillation between the shallow-clue head (teacher) and the enhanced head (student).

    One-way: `T^2 (1/B) sum_i KL(softmax(sg(z_s,i)/T) || softmax(z_e,i/T))`, gradients reach only `enhanced_logits`.
    Mutual: the same plus the reverse direction `KL(sg(p_e) || p_s)`, each side's target detached. INFERRED
    (METHODS.md 3.2): Hinton-style KD with the T^2 factor, T = 4 by default (sweep {1, 2, 4}).

    Args:
        enhanced_logits: z_e (B, C).
        shallow_logits: z_s (B, C).
        temperature: T > 0.
        direction: "one_way" (shallow teaches enhanced) or "mutual".

    Returns:
        Scalar loss (0 when the two heads agree).
    """
    if enhanced_logits.dim() != 2 or enhanced_logits.shape != shallow_logits.shape:
        raise ValueError(f"enhanced_logits and shallow_logits must both be (B, C), got {tuple(enhanced_logits.shape)} "
                         f"and {tuple(shallow_logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if direction not in SD_DIRECTIONS:
        raise ValueError(f"direction must be one of {SD_DIRECTIONS}, got {direction!r}")
    t = float(temperature)

    def kd(student: Tensor, teacher: Tensor) -> Tensor:
        target = F.softmax(teacher.detach() / t, dim=1)
        return F.kl_div(F.log_softmax(student / t, dim=1), target, reduction="batchmean") * t * t

    loss = kd(enhanced_logits, shallow_logits)
    if direction == "mutual":
        loss = loss + kd(shallow_logits, enhanced_logits)
    return loss


def modality_centres(feats: Tensor, labels: Tensor, modality: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-identity, per-modality batch means.

    Args:
        feats: (N, D).
        labels: (N,) identity ids.
        modality: (N,) 0 = visible, 1 = infrared.

    Returns:
        ids (U,) the distinct labels, centres (U, 2, D) (zeros where absent), present (U, 2) bool.
    """
    check_feats_labels(feats, labels)
    check_modality(modality, feats.shape[0])
    ids, inverse = labels.unique(return_inverse=True)  # (U,), (N,)
    slot = inverse * 2 + modality.long()  # (N,) row of (identity, modality) in a (U*2) table
    sums = feats.new_zeros(ids.numel() * 2, feats.shape[1]).index_add(0, slot, feats)
    counts = feats.new_zeros(ids.numel() * 2).index_add(0, slot, torch.ones_like(slot, dtype=feats.dtype))
    centres = (sums / counts.clamp(min=1.0)[:, None]).view(ids.numel(), 2, -1)
    return ids, centres, (counts > 0).view(ids.numel(), 2)


def icg_centre_loss(feats: Tensor, labels: Tensor, modality: Tensor, normalize: bool = True) -> Tensor:
    """Cross-modal centre alignment `(1/|Y_2|) sum_y ||c_y^0 - c_y^1||^2` over identities with both modalities.

    Args:
        feats: (N, D) enhanced features f_e (L2-normalised first when `normalize`).
        labels: (N,).
        modality: (N,) 0 / 1.
        normalize: L2-normalise the features (METHODS.md 3.2: "on L2-normalised f_e").

    Returns:
        Scalar; an exact zero (with a graph) when no identity has both modalities.
    """
    f = F.normalize(feats, dim=1) if normalize else feats
    _, centres, present = modality_centres(f, labels, modality)
    both = present.all(dim=1)  # (U,)
    if not bool(both.any()):
        return f.sum() * 0.0
    return (centres[both, 0] - centres[both, 1]).pow(2).sum(dim=1).mean()


def icg_margin_loss(feats: Tensor, labels: Tensor, modality: Tensor, margin: float = 0.3,
                    normalize: bool = True) -> Tensor:
    """Pull each sample to its identity's other-modality centre, push it from the nearest other-identity centre.

    `(1/|I|) sum_{i in I} [ d(f_i, c_{y_i}^{1-m_i}) - min_{k != y_i, m'} d(f_i, c_k^{m'}) + margin ]_+`, Euclidean
    `d = sqrt(max(sq, 1e-12))`; I = samples whose identity has the other modality in the batch, in a batch with at
    least two identities.

    Args:
        feats: (N, D) enhanced features.
        labels: (N,).
        modality: (N,) 0 / 1.
        margin: rho (METHODS.md 3.2: 0.3).
        normalize: L2-normalise the features first.

    Returns:
        Scalar; an exact zero (with a graph) when I is empty.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    f = F.normalize(feats, dim=1) if normalize else feats
    ids, centres, present = modality_centres(f, labels, modality)
    u = ids.numel()
    inverse = torch.searchsorted(ids, labels)  # (N,) row of each sample's identity
    m = modality.long()
    flat = centres.view(u * 2, -1)  # (U*2, D), row = identity * 2 + modality
    # (N, U*2) Euclidean distances with the triplet code's 1e-12 floor: finite gradients when f_i is a centre.
    dist = (f[:, None, :] - flat[None, :, :]).pow(2).sum(dim=2).clamp(min=1e-12).sqrt()
    d_pos = dist.gather(1, (inverse * 2 + (1 - m))[:, None]).squeeze(1)  # (N,)
    valid_col = present.view(-1)[None, :] & (torch.arange(u, device=f.device).repeat_interleave(2)[None, :]
                                              != inverse[:, None])  # (N, U*2): other identities' existing centres
    d_neg = dist.masked_fill(~valid_col, float("inf")).min(dim=1).values  # (N,)
    keep = present[inverse, 1 - m] & valid_col.any(dim=1)  # (N,)
    if not bool(keep.any()):
        return f.sum() * 0.0
    return (d_pos[keep] - d_neg[keep] + margin).clamp(min=0.0).mean()
