"""Metric losses on a PK batch: batch-hard triplet (margin or soft margin) and weighted-regularisation triplet (WRT).

* Batch-hard triplet: Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification", 2017;
  margin form `[d_ap - d_an + m]_+` (AGW `OriTripletLoss`, margin 0.3) [CODE: mangye16/Cross-Modal-Re-ID-baseline,
  loss.py]; soft-margin form `log(1 + exp(d_ap - d_an))` (TransReID / TOP-ReID `NO_MARGIN: True`)
  [CODE: damo-cv/TransReID, loss/triplet_loss.py].
* WRT: Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021 (AGW)
  [CODE: mangye16/Cross-Modal-Re-ID-baseline, loss.py::TripletLoss_WRT]. METHODS.md 1.1.

Distances are Euclidean, `sqrt(max(||x_i||^2 + ||x_j||^2 - 2 x_i.x_j, 1e-12))` as in the reference code. The positive
set of an anchor contains the anchor itself (distance ~1e-6), as in the reference code.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._checks import check_feats_labels


def euclidean_dist(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise Euclidean distances with the reference code's 1e-12 floor (finite gradients on the diagonal).

    Args:
        x: (M, D).
        y: (N, D).

    Returns:
        (M, N) distances.
    """
    sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1, keepdim=True).t() - 2.0 * x @ y.t()
    return sq.clamp(min=1e-12).sqrt()


def _pairwise(feats: Tensor, labels: Tensor, normalize: bool) -> tuple[Tensor, Tensor, Tensor]:
    check_feats_labels(feats, labels)
    if feats.shape[0] < 2:
        raise ValueError(f"a triplet loss needs at least 2 samples, got {feats.shape[0]}")
    if normalize:
        feats = F.normalize(feats, dim=1)
    dist = euclidean_dist(feats, feats)  # (N, N)
    is_pos = labels[:, None] == labels[None, :]  # (N, N), diagonal included
    is_neg = ~is_pos
    lonely = (~is_neg.any(dim=1)).nonzero(as_tuple=True)[0]
    if lonely.numel():
        raise ValueError("every anchor needs a negative (a sample of another identity) in the batch; the batch holds "
                         f"a single identity ({labels[lonely[0]].item()}); use a PK sampler with P >= 2")
    return dist, is_pos, is_neg


def batch_hard_triplet_loss(feats: Tensor, labels: Tensor, margin: float | None = 0.3,
                            normalize: bool = False) -> Tensor:
    """Batch-hard triplet loss: for each anchor the farthest positive and the closest negative in the batch.

    `d_ap(i) = max_{j: y_j = y_i} d_ij`, `d_an(i) = min_{j: y_j != y_i} d_ij`;
    margin: `mean_i [d_ap - d_an + margin]_+`; soft margin (`margin=None`): `mean_i log(1 + exp(d_ap - d_an))`.

    Args:
        feats: (N, D) embeddings (AGW / TransReID: the pre-BN pooled feature).
        labels: (N,) identity ids.
        margin: hinge margin (0.3 in AGW), or None for the soft margin (TransReID / TOP-ReID).
        normalize: L2-normalise `feats` first.

    Returns:
        Scalar loss (>= 0; exactly 0 with a margin once every negative is farther than every positive + margin).
    """
    dist, is_pos, is_neg = _pairwise(feats, labels, normalize)
    d_ap = dist.masked_fill(~is_pos, float("-inf")).amax(dim=1)  # (N,)
    d_an = dist.masked_fill(~is_neg, float("inf")).amin(dim=1)  # (N,)
    if margin is None:
        return F.softplus(d_ap - d_an).mean()
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (or None for the soft margin), got {margin}")
    return F.relu(d_ap - d_an + margin).mean()


def weighted_regularized_triplet_loss(feats: Tensor, labels: Tensor, normalize: bool = False) -> Tensor:
    """Weighted-regularisation triplet (WRT, AGW): softmax-weighted positives and negatives, soft margin, no margin.

    `w_ij = exp(d_ij) / sum_{k in P(i)} exp(d_ik)` over positives P(i) (anchor included), `v_ij = exp(-d_ij) /
    sum_{k in N(i)} exp(-d_ik)` over negatives N(i); `loss = mean_i log(1 + exp(sum_{P(i)} w_ij d_ij -
    sum_{N(i)} v_ij d_ij))`. The reference code adds 1e-6 to the softmax denominators (numerical guard); this
    implementation uses the exact masked softmax.

    Args:
        feats: (N, D) embeddings (pre-BN pooled feature in AGW).
        labels: (N,) identity ids.
        normalize: L2-normalise `feats` first (off in AGW).

    Returns:
        Scalar loss (> 0, tends to 0 as identities separate).
    """
    dist, is_pos, is_neg = _pairwise(feats, labels, normalize)
    w_pos = dist.masked_fill(~is_pos, float("-inf")).softmax(dim=1)  # (N, N), rows sum to 1 over positives
    w_neg = (-dist).masked_fill(~is_neg, float("-inf")).softmax(dim=1)  # (N, N), rows sum to 1 over negatives
    furthest_pos = (w_pos * dist).sum(dim=1)
    closest_neg = (w_neg * dist).sum(dim=1)
    return F.softplus(furthest_pos - closest_neg).mean()


