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
        attn: the attention a model returns when asked (`with_attention=True`, the one flag name), else None. What
            it holds depends on the model:
            `MultiModalViT` and `SD2ReIDNet`: (B, M, N) the last block's CLS-to-patch attention averaged over heads,
            one row per modality (N patches; rows sum to at most 1, the CLS token's own share left out).
            `ICRENet`: (B, h*w, h*w) SDCE's cross-attention weights averaged over
            heads: for each position of the deep map F4 (query), its weights over the positions of the shallow-clue
            map S (keys); None without SDCE. A patch-to-patch map, not a CLS attention.
            The visible-infrared CNNs return None.
    """

    feats: Tensor
    pooled: Tensor | None = None
    logits: Tensor | None = None
    parts: dict[str, Tensor] = field(default_factory=dict)
    attn: Tensor | None = None
