"""SD2-ReID losses: semantic and style distillation (DDM) and hierarchical contrast (HSLM).

SD2-ReID (Yan et al., "Semantic-Stylistic Decoupled Distillation", Neural Networks 198, 108719, 2026) has only its
abstract public: DDM separates semantic (identity) from stylistic (modality) features with a semantic and a style
distillation; HSLM adds intra-modal and cross-modal contrastive learning. Every formula below is the design
INFERRED in METHODS.md 4.1 (with its reasons), not the paper's:

    semantic distillation  L_sem   = sum_m tau^2 KL( softmax(sg(z_bar)/tau) || softmax(z_m/tau) ),  z_bar = mean_m z_m
    batch relation         L_rel   = sum_{m != n} || A(s_m) - sg(A(s_n)) ||_F^2 / B^2,  A = cosine-similarity matrix
    style distillation     L_sty   = || dec(u_m) - sg(sigma_m) ||^2 / dim(sigma),  sigma = [mean_tok, std_tok]
    decoupling             L_orth  = sum_m mean_b (s_hat_m . u_hat_m)^2
    intra / cross contrast L_nce   = supervised InfoNCE (Khosla et al., NeurIPS 2020, "SupCon" L_out form)

Functions take per-modality tensors and return scalars; `workbench.methods.sd2reid` weights and switches them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_feats_labels


def _check_same_shape(tensors: Sequence[Tensor], name: str, dims: int = 2) -> None:
    if len(tensors) == 0:
        raise ValueError(f"{name} must hold one tensor per modality, got none")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1 or tensors[0].dim() != dims:
        raise ValueError(f"{name} must be {dims}-D tensors of one shape, got shapes {sorted(shapes)}")


def semantic_distillation_loss(logits: Sequence[Tensor], tau: float = 4.0) -> Tensor:
    """Each modality's identity logits distilled towards the stop-gradient modality consensus.

    `L = sum_m tau^2 * mean_b KL( softmax(sg(z_bar_b) / tau) || softmax(z_{m,b} / tau) )` with `z_bar = mean_m z_m`.
    With a bias-free classifier W shared by the modalities, `z_bar = W . mean_m BN(s_m)` (METHODS.md 4.1), so the
    consensus is the mean of the logits. The tau^2 factor keeps gradients comparable across temperatures (Hinton
    et al., 2015). [INFERRED]

    Args:
        logits: one (B, C) tensor per modality.
        tau: distillation temperature (> 0).

    Returns:
        Scalar loss (0 when all modalities agree).
    """
    _check_same_shape(logits, "logits")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    consensus = torch.stack(list(logits)).mean(0).detach()  # (B, C)
    target = F.log_softmax(consensus / tau, dim=1)
    total = logits[0].new_zeros(())
    for z in logits:
        total = total + F.kl_div(F.log_softmax(z / tau, dim=1), target, reduction="batchmean", log_target=True)
    return tau**2 * total


def cosine_similarity_matrix(feats: Tensor) -> Tensor:
    """feats (B, D) -> (B, B) cosine similarities."""
    x = F.normalize(feats, dim=1)
    return x @ x.t()


def batch_relation_loss(codes: Sequence[Tensor]) -> Tensor:
    """Align the batch's pairwise structure across modalities.

    `L = sum_{m != n} ||A(s_m) - sg(A(s_n))||_F^2 / B^2`, A the (B, B) cosine-similarity matrix (ordered pairs, so
    each modality is pulled towards every other one). [INFERRED, METHODS.md 4.1, optional]

    Args:
        codes: one (B, D) semantic code per modality.
    """
    _check_same_shape(codes, "codes")
    b = codes[0].shape[0]
    mats = [cosine_similarity_matrix(s) for s in codes]
    total = codes[0].new_zeros(())
    for i, a in enumerate(mats):
        for j, c in enumerate(mats):
            if i != j:
                total = total + (a - c.detach()).pow(2).sum() / b**2
    return total


def token_statistics(tokens: Tensor, eps: float = 1e-6) -> Tensor:
    """AdaIN-style style statistics of a token sequence: per-channel mean and standard deviation over tokens.

    Args:
        tokens: (B, T, D) tokens (the caller drops the CLS token).
        eps: added to the variance before the square root (finite gradients at zero spread).

    Returns:
        (B, 2D) `[mean_t x_{b,t,:}, sqrt(var_t x_{b,t,:} + eps)]` (population variance).
    """
    if tokens.dim() != 3:
        raise ValueError(f"tokens must be (B, T, D), got shape {tuple(tokens.shape)}")
    mean = tokens.mean(dim=1)
    std = (tokens.var(dim=1, unbiased=False) + eps).sqrt()
    return torch.cat([mean, std], dim=1)


def style_distillation_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between the decoded style code and the detached token statistics.

    `L = mean_b ||pred_b - sg(target_b)||^2 / dim`: predicting a fixed target (not a learned projection of it)
    cannot collapse. [INFERRED, METHODS.md 4.1]

    Args:
        pred: (B, 2D) decoder output.
        target: (B, 2D) `token_statistics` of the shallow shared layer.
    """
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f"pred and target must both be (B, 2D), got {tuple(pred.shape)} and {tuple(target.shape)}")
    return F.mse_loss(pred, target.detach())


def orthogonality_loss(semantic: Tensor, style: Tensor) -> Tensor:
    """Decoupling term `mean_b (s_hat_b . u_hat_b)^2` on L2-normalised semantic and style codes of one modality.

    0 when the two codes are orthogonal, 1 when parallel. [INFERRED, METHODS.md 4.1]

    Args:
        semantic: (B, D) semantic code.
        style: (B, D) style code (same D).
    """
    if semantic.shape != style.shape or semantic.dim() != 2:
        raise ValueError(f"semantic and style must both be (B, D), got {tuple(semantic.shape)} and "
                         f"{tuple(style.shape)}")
    return (F.normalize(semantic, dim=1) * F.normalize(style, dim=1)).sum(1).pow(2).mean()


def supervised_info_nce_loss(anchors: Tensor, candidates: Tensor, anchor_labels: Tensor, candidate_labels: Tensor,
                             tau: float = 0.1) -> Tensor:
    """Supervised InfoNCE from anchors to a candidate set, several positives per anchor.

    For anchor i with positives P(i) = {j : y_j = y_i} among the candidates,
    `l_i = -1/|P(i)| sum_{p in P(i)} log( exp(c_ip / tau) / sum_j exp(c_ij / tau) )`, c the cosine similarity;
    the loss is the mean of l_i over anchors that have a positive (Khosla et al., NeurIPS 2020, L_out). Anchors and
    candidates are different views (masked vs unmasked, or two modalities), so no self-pair is excluded.

    Args:
        anchors: (N, D).
        candidates: (M, D).
        anchor_labels: (N,) identities; candidate_labels: (M,).
        tau: temperature (0.1, METHODS.md 4.1).

    Returns:
        Scalar loss; 0 (with a gradient path) when no anchor has a positive.
    """
    check_feats_labels(anchors, anchor_labels, "anchors")
    check_feats_labels(candidates, candidate_labels, "candidates")
    if anchors.shape[1] != candidates.shape[1]:
        raise ValueError(f"anchors and candidates must share D, got {anchors.shape[1]} and {candidates.shape[1]}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    sim = F.normalize(anchors, dim=1) @ F.normalize(candidates, dim=1).t() / tau  # (N, M)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (anchor_labels[:, None] == candidate_labels[None, :]).to(sim.dtype)  # (N, M)
    n_pos = pos.sum(1)
    valid = n_pos > 0
    if not bool(valid.any()):
        return sim.sum() * 0.0
    per_anchor = -(pos * log_prob).sum(1)[valid] / n_pos[valid]
    return per_anchor.mean()


def intra_modal_contrastive_loss(full: Sequence[Tensor], masked: Sequence[Tensor], labels: Tensor,
                                 tau: float = 0.1) -> Tensor:
    """HSLM level 1: within each modality, masked view vs unmasked view, symmetric, summed over modalities.

    `L = sum_m (NCE(f~_m -> f_m) + NCE(f_m -> f~_m)) / 2`, positives = same identity. [INFERRED, METHODS.md 4.1]

    Args:
        full, masked: one (B, D) feature per modality each (CLS of the unmasked and of the masked pass).
        labels: (B,) identities.
    """
    _check_same_shape(list(full) + list(masked), "full and masked")
    total = full[0].new_zeros(())
    for f, g in zip(full, masked, strict=True):
        total = total + 0.5 * (supervised_info_nce_loss(g, f, labels, labels, tau)
                               + supervised_info_nce_loss(f, g, labels, labels, tau))
    return total


def cross_modal_contrastive_loss(codes: Sequence[Tensor], labels: Tensor, tau: float = 0.1) -> Tensor:
    """HSLM level 2: semantic codes of each modality against every other modality's, mean over ordered pairs.

    `L = mean_{m != n} NCE(s_m -> s_n)`, positives = same identity (the aligned sample included).
    [INFERRED, METHODS.md 4.1]

    Args:
        codes: one (B, D) semantic code per modality (at least two).
        labels: (B,) identities.
    """
    _check_same_shape(codes, "codes")
    if len(codes) < 2:
        raise ValueError(f"cross-modal contrast needs at least 2 modalities, got {len(codes)}")
    terms = [supervised_info_nce_loss(a, c, labels, labels, tau)
             for i, a in enumerate(codes) for j, c in enumerate(codes) if i != j]
    return torch.stack(terms).mean()
