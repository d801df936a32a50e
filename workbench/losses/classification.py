"""Identity classification loss: cross-entropy with label smoothing.

Label smoothing (Szegedy et al., CVPR 2016) with target `(1 - eps) * onehot(y) + eps / C`, as TransReID / TOP-ReID's
`CrossEntropyLabelSmooth` (eps = 0.1) [CODE: damo-cv/TransReID, loss/softmax_loss.py]; AGW and DAKD use plain CE
(eps = 0). METHODS.md 1.3.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cross_entropy_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.1) -> Tensor:
    """Mean label-smoothed cross-entropy.

    `loss = mean_i [ -(1 - eps) log p_i[y_i] - (eps / C) sum_c log p_i[c] ]`, p = softmax(logits).

    Args:
        logits: (N, C) unnormalised class scores.
        labels: (N,) class indices in [0, C).
        label_smoothing: eps in [0, 1); 0 is plain cross-entropy.

    Returns:
        Scalar loss.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D (N, C), got shape {tuple(logits.shape)}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be (N,) = ({logits.shape[0]},), got shape {tuple(labels.shape)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must be in [0, num_classes={logits.shape[1]}), got range "
                         f"[{labels.min().item()}, {labels.max().item()}]; remap identity ids to 0..C-1")
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
