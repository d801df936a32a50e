"""Centre losses: the centre loss with learnable class centres and the hetero-centre loss between modalities.

* Centre loss: Wen et al., "A Discriminative Feature Learning Approach for Deep Face Recognition", ECCV 2016. The paper
  writes `L_C = 1/2 sum_i ||x_i - c_{y_i}||^2` over the mini-batch; the ReID code (TransReID / deep-person-reid
  `CenterLoss`) averages the squared distance over the batch without the 1/2 [CODE: damo-cv/TransReID,
  loss/center_loss.py]. Both are offered (`reduction="mean"` code, `reduction="paper"`); centres start ~ N(0, 1) as
  in that code and are trained by the optimiser (TransReID uses a separate SGD with lr 0.5 for them).
* Hetero-centre loss: Zhu et al., "Hetero-Center Loss for Cross-Modality Person Re-Identification",
  Neurocomputing 2020: `L_HC = sum_{y} ||c_y^v - c_y^r||_2^2`, with `c_y^v` / `c_y^r` the mean visible / infrared
  feature of identity y in the batch. The authors' code subtracts a margin inside a hinge,
  `sum_y max(0, ||c_y^v - c_y^r||^2 - margin)` with margin 0.1 by default
  [CODE: 98zyx/Hetero-center-loss-for-cross-modality-person-re-id,
  heterogeneity_loss.py::hetero_loss]; margin=0 (default here) is the
  paper's formula.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from workbench.data.samples import INFRARED, VISIBLE

from ._checks import check_feats_labels, check_modality


class CenterLoss(nn.Module):
    """Centre loss with one learnable centre per class.

    Args:
        num_classes: number of identities C.
        feat_dim: feature dimension D.
        reduction: "mean" = `mean_i ||x_i - c_{y_i}||^2` (ReID code); "paper" = `1/2 sum_i ||x_i - c_{y_i}||^2`.

    Shapes: `forward(feats (N, D), labels (N,)) -> scalar`; `centers` is (C, D).
    """

    def __init__(self, num_classes: int, feat_dim: int, reduction: str = "mean") -> None:
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(f"num_classes and feat_dim must be >= 1, got {num_classes}, {feat_dim}")
        if reduction not in ("mean", "paper"):
            raise ValueError(f"reduction must be 'mean' (ReID code) or 'paper' (1/2 sum), got {reduction!r}")
        self.reduction = reduction
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, feats: Tensor, labels: Tensor) -> Tensor:
        check_feats_labels(feats, labels)
        num_classes, dim = self.centers.shape
        if feats.shape[1] != dim:
            raise ValueError(f"feats must have feat_dim={dim} columns, got {feats.shape[1]}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must be in [0, num_classes={num_classes}), got range "
                             f"[{labels.min().item()}, {labels.max().item()}]")
        sq = (feats - self.centers[labels]).pow(2).sum(dim=1)  # (N,)
        return sq.mean() if self.reduction == "mean" else 0.5 * sq.sum()


def hetero_center_loss(feats: Tensor, labels: Tensor, modality: Tensor, margin: float = 0.0,
                       reduction: str = "sum") -> Tensor:
    """Hetero-centre loss: squared distance between the visible and the infrared centre of each identity.

    `L = sum_y max(0, ||c_y^0 - c_y^1||^2 - margin)` over identities y present in both modalities, with `c_y^m` the
    batch mean of the features of identity y in modality m. Identities seen in only one modality are skipped.

    Args:
        feats: (N, D) features.
        labels: (N,) identity ids.
        modality: (N,) 0 = visible (rgb), 1 = infrared.
        margin: hinge margin (0 = the paper's formula; the authors' code defaults to 0.1).
        reduction: "sum" over identities (paper and code) or "mean".

    Returns:
        Scalar loss (>= 0; 0 when both centres of every identity coincide, whatever the spread around them).
    """
    check_feats_labels(feats, labels)
    check_modality(modality, feats.shape[0])
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' (paper) or 'mean', got {reduction!r}")
    ids, inverse = labels.unique(return_inverse=True)  # (U,), (N,)
    onehot = torch.zeros(ids.numel(), feats.shape[0], dtype=feats.dtype, device=feats.device)
    onehot[inverse, torch.arange(feats.shape[0], device=feats.device)] = 1.0  # (U, N)
    centres, counts = [], []
    for m in (VISIBLE, INFRARED):
        member = onehot * (modality == m).to(feats.dtype)[None, :]  # (U, N)
        count = member.sum(dim=1)  # (U,)
        centres.append(member @ feats / count.clamp(min=1.0)[:, None])  # (U, D)
        counts.append(count)
    both = (counts[0] > 0) & (counts[1] > 0)
    if not bool(both.any()):
        raise ValueError("hetero_center_loss needs at least one identity with both visible (0) and infrared (1) "
                         "samples in the batch; use a cross-modality PK sampler")
    per_id = (centres[0][both] - centres[1][both]).pow(2).sum(dim=1)  # (U',)
    per_id = (per_id - margin).clamp(min=0.0) if margin > 0 else per_id
    return per_id.sum() if reduction == "sum" else per_id.mean()
