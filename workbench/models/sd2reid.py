"""SD2-ReID network: HMFE (the multi-modal ViT with shared shallow blocks) + DDM heads + HSLM masking.

SD2-ReID (Yan et al., Neural Networks 198, 108719, 2026): only the abstract is public. Everything here follows the
INFERRED design of METHODS.md 4.1:

    images {m: (B,3,H,W)} -> MultiModalViT (blocks 1..L_s shared, L_s+1..depth per modality) -> CLS f_m (B, D)
        DDM semantic head  s_m = g_sem^m(f_m)                           (Linear-BN-GELU-Linear, D -> D)
        DDM style head     u_m = g_sty^m([f_m, mean patch token])       (2D -> D)             [training only]
        style decoder      dec(u_m) -> (B, 2D) shallow token statistics; modality classifier h(u_m) -> (B, M)
        HSLM               a learnable [MASK] token replaces the masked patch tokens (+ their position embedding,
                           as in SimMIM) before the first block; the second pass shares every weight
    retrieval feature: [BN(s_R), BN(s_N), BN(s_T)]  (no fusion module; the style branch is not run at test time)

With `ddm=False` there are no heads and the retrieval feature is the backbone's (the concatenated CLS features).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .layers import BNNeck, bias_free_classifier
from .mm_vit import MultiModalViT
from .output import ReIDOutput
from .registry import create_model

MASKING_MODES = ("none", "random", "attention")


def num_masked(num_patches: int, ratio: float) -> int:
    """Patches masked per image: `round(ratio * num_patches)` (Python rounding), ratio in [0, 1)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    return int(round(ratio * num_patches))


def sample_patch_mask(attn: Tensor, ratio: float, mode: str = "attention", *, shared: bool = False,
                      gamma: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Choose the patches to hide: exactly `round(ratio * N)` per image and modality.

    "attention": drawn without replacement with probability proportional to `a^gamma` (successive sampling, so the
    most attended, most identity-salient patches are hidden most often, simulating occlusion of what the model
    relies on); "random": uniform, attention ignored (the ablation of the guidance at the same ratio); "none": no
    patch. `shared=True` draws one mask per sample from the modality-averaged attention and applies it to every
    modality (the three images are pixel-aligned). [INFERRED, METHODS.md 4.1: r = 0.3, gamma = 1]

    Args:
        attn: (B, M, N) CLS-to-patch attention of the last block (head-averaged), one row per modality.
        ratio: masking ratio r.
        mode: one of `MASKING_MODES`.
        shared: one mask for all M modalities.
        gamma: sharpening exponent of the attention distribution.
        generator: torch RNG for reproducible draws.

    Returns:
        (B, M, N) bool, True = masked. The CLS token is never part of it.
    """
    if mode not in MASKING_MODES:
        raise ValueError(f"masking mode must be one of {MASKING_MODES}, got {mode!r}")
    if attn.dim() != 3:
        raise ValueError(f"attn must be (B, M, N) CLS-to-patch attention, got shape {tuple(attn.shape)}")
    b, m, n = attn.shape
    k = num_masked(n, ratio)
    mask = torch.zeros(b, m, n, dtype=torch.bool, device=attn.device)
    if mode == "none" or k == 0:
        return mask
    weights = attn.detach().float().clamp(min=0)
    if mode == "random":
        weights = torch.ones_like(weights)
    else:
        weights = weights.pow(gamma) + 1e-12  # strictly positive: multinomial needs k non-zero entries
    rows = m
    if shared:
        weights = weights.mean(dim=1, keepdim=True)  # (B, 1, N)
        rows = 1
    flat = weights.reshape(b * rows, n)
    idx = torch.multinomial(flat.cpu(), k, replacement=False, generator=generator).to(attn.device)  # (B*rows, k)
    chosen = torch.zeros(b * rows, n, dtype=torch.bool, device=attn.device).scatter_(1, idx, True)
    chosen = chosen.reshape(b, rows, n)
    return chosen.expand(b, m, n).clone() if shared else chosen


class SD2ReIDNet(nn.Module):
    """HMFE backbone + DDM heads + HSLM mask token; returns a `ReIDOutput`.

    Args:
        backbone: a `MultiModalViT` (its `shared_depth` is HMFE's L_s; `num_classes` > 0 for the base heads).
        num_classes: identities of the semantic classifier (shared by the modalities, so their logits can be
            averaged into a consensus).
        ddm: build the semantic and style heads; False: retrieval = the backbone's CLS concatenation.

    Output (`forward`): the backbone's `ReIDOutput` (`pooled` = concatenated CLS, `logits` and `parts["cls_<m>"]`,
    `parts["logits_<m>"]` for the base losses) with `feats` = concatenated BN(semantic codes) when `ddm`, and
    `parts["sem_<m>"]` (B, D) semantic code, `parts["sem_logits_<m>"]` (B, C) (training); with the style branch
    `parts["sty_<m>"]` (B, D), `parts["sty_pred_<m>"]` (B, 2D), `parts["mod_logits_<m>"]` (B, M),
    `parts["shared_tokens_<m>"]` (B, 1+N, D) the tokens after block L_s (the style target's source);
    with attention `attn` (B, M, N).
    """

    def __init__(self, backbone: MultiModalViT, num_classes: int = 0, ddm: bool = True) -> None:
        super().__init__()
        if not isinstance(backbone, MultiModalViT):
            raise ValueError(f"backbone must be a MultiModalViT, got {type(backbone).__name__}")
        self.backbone = backbone
        self.modalities = backbone.modalities
        self.ddm = ddm
        d, n_mod = backbone.embed_dim, len(self.modalities)
        self.embed_dim = d
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        if ddm:
            def mlp(d_in: int, d_out: int) -> nn.Sequential:
                return nn.Sequential(nn.Linear(d_in, d), nn.BatchNorm1d(d), nn.GELU(), nn.Linear(d, d_out))

            self.sem_heads = nn.ModuleList([mlp(d, d) for _ in range(n_mod)])
            self.sem_bnnecks = nn.ModuleList([BNNeck(d) for _ in range(n_mod)])
            self.sem_classifier = bias_free_classifier(d, num_classes) if num_classes > 0 else None
            self.sty_heads = nn.ModuleList([mlp(2 * d, d) for _ in range(n_mod)])
            self.style_decoder = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 2 * d))
            self.modality_classifier = nn.Linear(d, n_mod)
        self.feat_dim = backbone.feat_dim

    # ------------------------------------------------------------------------------------------------ encoder
    def encode(self, images: Mapping[str, Tensor], camids: Tensor | None = None, *,
               patch_mask: Tensor | None = None, with_attention: bool = False) -> ReIDOutput:
        """The backbone's forward with SD2-ReID's [MASK] token for the masked patches.

        Args:
            images: {modality: (B, 3, H, W)}.
            camids: (B,) or None.
            patch_mask: (B, M, N) bool, True = replace that patch token by the [MASK] token (+ position embedding).
            with_attention: also `attn` (B, M, N), the last block's CLS-to-patch attention (head mean).

        Returns:
            `MultiModalViT.forward`'s ReIDOutput (feats = pooled = concatenated CLS; `parts["final_tokens_<m>"]`
            (B, 1+N, D) the normalised last-block tokens).
        """
        return self.backbone(images, camids, patch_mask=patch_mask, mask_token=self.mask_token,
                             with_attention=with_attention)

    # ------------------------------------------------------------------------------------------------ heads
    def forward(self, images: Mapping[str, Tensor], camids: Tensor | None = None, *,
                patch_mask: Tensor | None = None, with_attention: bool = False,
                with_style: bool | None = None) -> ReIDOutput:
        """Embed aligned samples; see the class docstring for the output keys.

        Args:
            patch_mask: (B, M, N) bool masked patches (HSLM's second pass), or None.
            with_attention: also return the last block's CLS-to-patch attention `attn` (B, M, N).
            with_style: run the style branch; None = in training mode only (inference is the backbone plus the
                semantic heads).
        """
        with_style = self.training if with_style is None else with_style
        out = self.encode(images, camids, patch_mask=patch_mask, with_attention=with_attention)
        if not self.ddm:
            return out
        parts = out.parts
        sem_feats = []
        for i, m in enumerate(self.modalities):
            s = self.sem_heads[i](parts[f"cls_{m}"])
            parts[f"sem_{m}"] = s
            bn = self.sem_bnnecks[i](s)
            sem_feats.append(bn)
            if self.sem_classifier is not None and (self.training or with_style):  # not on the inference path
                parts[f"sem_logits_{m}"] = self.sem_classifier(bn)
            if with_style:
                tokens = parts[f"final_tokens_{m}"]
                u = self.sty_heads[i](torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1))
                parts[f"sty_{m}"] = u
                parts[f"sty_pred_{m}"] = self.style_decoder(u)
                parts[f"mod_logits_{m}"] = self.modality_classifier(u)
        out.feats = torch.cat(sem_feats, dim=1)
        return out


def build_sd2reid(backbone_name: str = "test_mm_vit", *, num_classes: int = 0, ddm: bool = True,
                  **backbone_kwargs) -> SD2ReIDNet:
    """An `SD2ReIDNet` around a registered multi-modal ViT (`mm_vit_b16` for the paper, `test_mm_vit` for tests)."""
    backbone = create_model(backbone_name, num_classes=num_classes, **backbone_kwargs)
    return SD2ReIDNet(backbone, num_classes=num_classes, ddm=ddm)


def grid_from_patches(n: int, img_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) patch grid with h * w = n and h / w closest to the image's aspect (for drawing masks)."""
    aspect = img_hw[0] / img_hw[1]
    best = min((abs(math.log((h / (n // h)) / aspect)), h) for h in range(1, n + 1) if n % h == 0)[1]
    return best, n // best
