"""Argument checks shared by the loss functions (clear ValueErrors naming the argument)."""

from __future__ import annotations

from torch import Tensor

from workbench.data.samples import INFRARED, VISIBLE


def check_feats_labels(feats: Tensor, labels: Tensor, feats_name: str = "feats") -> None:
    """feats (N, D) float, labels (N,) integer."""
    if feats.dim() != 2:
        raise ValueError(f"{feats_name} must be 2-D (N, D), got shape {tuple(feats.shape)}")
    if labels.dim() != 1 or labels.shape[0] != feats.shape[0]:
        raise ValueError(f"labels must be (N,) = ({feats.shape[0]},) to match {feats_name}, "
                         f"got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point:
        raise ValueError(f"labels must be an integer tensor of identity ids, got dtype {labels.dtype}")


def check_modality(modality: Tensor, n: int) -> None:
    """modality (N,) of visible-infrared indices: VISIBLE (0) or INFRARED (1) (`workbench.data.samples`)."""
    if modality.dim() != 1 or modality.shape[0] != n:
        raise ValueError(f"modality must be (N,) = ({n},), got shape {tuple(modality.shape)}")
    if modality.numel() and not bool(((modality == VISIBLE) | (modality == INFRARED)).all()):
        raise ValueError(f"modality values must be {VISIBLE} (visible, rgb) or {INFRARED} (infrared, ir), got "
                         f"{modality.unique().tolist()}")
