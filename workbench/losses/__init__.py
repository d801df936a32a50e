"""Re-identification losses, functions first (`*_loss`), `nn.Module` only when stateful (`CenterLoss`)."""

from .center import CenterLoss, hetero_center_loss
from .classification import cross_entropy_loss
from .triplet import batch_hard_triplet_loss, euclidean_dist, weighted_regularized_triplet_loss

__all__ = [
    "CenterLoss",
    "batch_hard_triplet_loss",
    "cross_entropy_loss",
    "euclidean_dist",
    "hetero_center_loss",
    "weighted_regularized_triplet_loss",
]
