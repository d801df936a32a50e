"""The one output type every model in the workbench returns, in training and in evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ReIDOutput:
    """What a ReID model returns, whatever the framework and whatever the mode.

    Attributes:
        feats: (B, D) retrieval embedding, not L2-normalised (the evaluator normalises as its protocol says).
            For AGW-style CNNs this is the BN-neck feature; for multi-modal ViTs the concatenation of the
            per-modality features.
        pooled: (B, D') pre-BN pooled feature, the input of metric losses (triplet, centre), or None.
        logits: (B, num_classes) identity logits (bias-free classifier on the BN feature), or None when the
            model has no classifier.
        parts: named extra tensors a framework needs, e.g. {"rgb": (B, 768), "nir": ..., "tir": ...} per-modality
            features, {"bn": (B, D)} BN-neck output, {"layer3": (B, C, h, w)} stage maps. Keys are documented by
            each model.
        attn: head-averaged CLS-to-patch attention of the last block when the model was asked for it:
            (B, N) for single-modality models, (B, M, N) for multi-modal ones (one row per modality).
    """

    feats: Tensor
    pooled: Tensor | None = None
    logits: Tensor | None = None
    parts: dict[str, Tensor] = field(default_factory=dict)
    attn: Tensor | None = None
