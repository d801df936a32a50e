"""The baselines every framework is compared against.

Visible-infrared (AGW, Ye et al. TPAMI 2021; METHODS.md 1.1): two modality-specific stems, shared ResNet stages,
GeM, BN-neck; loss = CE on the BN feature + weighted-regularisation triplet on the pooled feature.
Multi-modal (TOP-ReID baseline, Wang et al. AAAI 2024; METHODS.md 1.3): one ViT per modality (or shared blocks),
CE (label smoothing 0.1) + soft-margin triplet, by `loss.mm_heads` [CODE: 924973292/TOP-ReID, modeling/make_model.py
::BASELINE.forward, engine/processor.py]:

* "direct" (`MODEL.DIRECT: 1`, shipped in configs/RGBNT201/TOP-ReID.yml): on the concatenated pre-BN CLS feature
  and the direct head's logits only;
* "per_modality" (`DIRECT: 0`, the vehicle configs): the sum over modalities of each CLS feature's terms;
* "both": the sum of the two (no reference configuration; what the workbench did before the option existed).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from workbench.config import Config, LossConfig
from workbench.data.samples import INFRARED, VISIBLE
from workbench.losses import (
    batch_hard_triplet_loss,
    cross_entropy_loss,
    weighted_regularized_triplet_loss,
)
from workbench.methods.base import Method, register_method
from workbench.models.output import ReIDOutput

MM_HEADS = ("direct", "per_modality", "both")


def metric_loss(feats: Tensor, labels: Tensor, cfg: LossConfig) -> Tensor | None:
    """The configured triplet variant on `feats (B, D)`, or None when disabled."""
    if cfg.triplet == "none" or cfg.triplet_weight == 0:
        return None
    if cfg.triplet == "wrt":
        return weighted_regularized_triplet_loss(feats, labels)
    if cfg.triplet == "hard":
        return batch_hard_triplet_loss(feats, labels, margin=cfg.margin)
    if cfg.triplet == "soft":
        return batch_hard_triplet_loss(feats, labels, margin=None)
    raise ValueError(f"loss.triplet must be 'wrt', 'hard', 'soft' or 'none', got {cfg.triplet!r}")


def vi_batch(batch: dict[str, Any], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Stack a visible-infrared pair batch as [rgb; ir]: images (2B, 3, H, W), modality (2B,), labels (2B,)."""
    rgb, ir = batch["rgb"].to(device, non_blocking=True), batch["ir"].to(device, non_blocking=True)
    labels = batch["label"].to(device)
    modality = torch.cat([torch.full((len(rgb),), VISIBLE, dtype=torch.long),
                          torch.full((len(ir),), INFRARED, dtype=torch.long)]).to(device)
    return torch.cat([rgb, ir]), modality, torch.cat([labels, labels])


@register_method("baseline")
class Baseline(Method):
    def training_losses(self, model: nn.Module, batch: dict[str, Any], cfg: Config) -> dict[str, Tensor]:
        device = next(model.parameters()).device
        lc = cfg.loss
        terms: dict[str, Tensor] = {}
        if "ir" in batch:
            images, modality, labels = vi_batch(batch, device)
            out = model(images, modality)
            terms["id"] = lc.id_weight * cross_entropy_loss(out.logits, labels, label_smoothing=lc.label_smoothing)
            tri = metric_loss(out.pooled, labels, lc)
            if tri is not None:
                terms["triplet"] = lc.triplet_weight * tri
            return terms
        labels = batch["label"].to(device)
        mods = [m for m in ("rgb", "nir", "tir") if m in batch]
        camids = batch.get("camid")
        out = model({m: batch[m].to(device, non_blocking=True) for m in mods},
                    camids=camids.to(device) if camids is not None else None)
        return terms | multimodal_identity_terms(out, labels, mods, lc)


def multimodal_identity_terms(out: ReIDOutput, labels: Tensor, mods: list[str], lc: LossConfig) -> dict[str, Tensor]:
    """The TOP-ReID baseline's `id` and `triplet` terms of a triplet batch, on the heads `lc.mm_heads` names:
    "direct" (the concatenated feature), "per_modality" (each modality's CLS feature) or "both" (summed).

    Args:
        out: the model's output; `logits`/`pooled` for the direct head, `parts["logits_<m>"]`/`parts["cls_<m>"]`
            for the per-modality heads.
        labels: (B,) identity labels.
        mods: the modalities of the batch.
    """
    if lc.mm_heads not in MM_HEADS:
        raise ValueError(f"loss.mm_heads must be one of {MM_HEADS}, got {lc.mm_heads!r}")
    heads = []  # (logits, feature) pairs, each contributing CE + triplet
    if lc.mm_heads in ("direct", "both"):
        heads.append((out.logits, out.pooled))
    if lc.mm_heads in ("per_modality", "both"):
        heads += [(out.parts[f"logits_{m}"], out.parts[f"cls_{m}"]) for m in mods]
    id_terms = [cross_entropy_loss(lg, labels, label_smoothing=lc.label_smoothing) for lg, _ in heads]
    tri_terms = [metric_loss(f, labels, lc) for _, f in heads]
    terms = {"id": lc.id_weight * torch.stack(id_terms).sum()}
    if tri_terms[0] is not None:
        terms["triplet"] = lc.triplet_weight * torch.stack(tri_terms).sum()
    return terms
