"""ICRE network: shallow identity clues refined (MPFR) and distilled into the deep features (SDCE).

ICRE, "Identity Clue Refinement and Enhancement" (arXiv 2512.04522). No code is public; METHODS.md section 3 collects
what is published and the design implemented here. Published [PAPER-ABS]: MPFR "aggregates shallow features from
shared branches, aiming to capture modality-specific attributes that are easily overlooked"; SDCE "distills
identity-aware knowledge from the aggregated shallow features and guide[s] the learning of modality-invariant
features". Secondary digests [SECONDARY: sciencestack.ai/paper/2512.04522, emergentmind MPFR/SDCE topic pages]: MPFR
takes three stage outputs of the shared ResNet-50 ("stages 2-4"), aligns them to one scale and channel width, learns
one spatial importance mask per scale and fuses them into one map; SDCE is a two-stage transformer, cross-attention
then self-attention, followed by a non-linear refinement. Everything else below is INFERRED (METHODS.md 3.2) and says so.

Data flow (ResNet-50 at 384x144, METHODS.md 3.2; the trunk is the AGW network of `vi_cnn.VIReIDNet`):

    images (B,3,384,144), modality (B,)
      -> two stems, shared layer1 (256x96x36), layer2 (512x48x18), layer3 (1024x24x9), layer4 -> F4 (2048x24x9)
      -> MPFR over three stage maps  -> masks (B,3,24,9) in [0,1], S (B,2048,24,9)        shallow identity clues
      -> SDCE: tokens(F4) attend to tokens(S) (cross), then to themselves (self) -> E (B,2048,24,9)
      -> enhanced head  E  -> GeM -> pooled (B,2048) -> BN-neck -> feats -> classifier -> logits
      -> shallow head   S  -> GeM -> BN-neck -> classifier (the distillation teacher)     parts["logits_s"]
      -> global head    F4 -> GeM -> BN-neck -> classifier (optional, = the AGW baseline) parts["logits_g"]

With MPFR off and no SDCE stage the network computes exactly the AGW baseline (`VIReIDNet`): same parameters, same
state-dict keys, same outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import BNNeck, bias_free_classifier
from .output import ReIDOutput
from .registry import register_model
from .vi_cnn import LITE0_TRUNK, VIReIDNet

# The two readings of the digests' "stages 2-4" (METHODS.md 3.2, open question 4).
STAGE_SETS: dict[str, tuple[str, ...]] = {
    "layer1-3": ("layer1", "layer2", "layer3"),  # stem counted as stage 1 (METHODS.md default)
    "layer2-4": ("layer2", "layer3", "layer4"),  # torchvision's layer numbering
}
INFERENCE_FEATS = ("enhanced", "enhanced+global")


class MPFR(nn.Module):
    """Multi-perception feature refinement: align three stage maps, weight each by a learned spatial mask, fuse.

    INFERRED (METHODS.md 3.2; the digests only say "align scale and channels, learn spatial masks per scale, fuse
    into one map"): `F_k' = pool_to_grid(ReLU(BN(Conv1x1(F_k))))`, `m_k = sigmoid(Conv3x3(F_k'))` (one channel),
    `S = ReLU(BN(Conv1x1([m_1 F_1'; m_2 F_2'; m_3 F_3'])))`. Adaptive average pooling brings every map to the grid
    of the deep map (24x9 at 384x144), the cheapest alignment that keeps the deep stream's token grid for SDCE.

    Args:
        in_channels: channels of the three stage maps, shallow to deep.
        mid_channels: common width after alignment (METHODS.md: 1024 = layer3 of ResNet-50).
        out_channels: width of the fused map S (= the deep map's, 2048, so both heads look alike).
        masks: learn the spatial masks; False fixes every mask to 1 (plain aligned concatenation).
    """

    def __init__(self, in_channels: tuple[int, ...], mid_channels: int, out_channels: int, masks: bool = True) -> None:
        super().__init__()
        if len(in_channels) < 1:
            raise ValueError("MPFR needs at least one stage map (in_channels is empty)")
        self.use_masks = masks
        self.align = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, mid_channels, 1, bias=False), nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True))
            for c in in_channels)
        self.mask = nn.ModuleList(nn.Conv2d(mid_channels, 1, 3, padding=1) for _ in in_channels) if masks else None
        self.fuse = nn.Sequential(nn.Conv2d(len(in_channels) * mid_channels, out_channels, 1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, maps: list[Tensor], grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Fuse stage maps.

        Args:
            maps: the stage maps (B, C_k, h_k, w_k), as many as `in_channels`.
            grid: (h, w) of the output map.

        Returns:
            S (B, out_channels, h, w) and masks (B, K, h, w), each in [0, 1] (all ones when masks are off).
        """
        if len(maps) != len(self.align):
            raise ValueError(f"MPFR was built for {len(self.align)} stage maps, got {len(maps)}")
        aligned, masks = [], []
        for k, x in enumerate(maps):
            a = F.adaptive_avg_pool2d(self.align[k](x), grid)  # (B, mid, h, w)
            m = torch.sigmoid(self.mask[k](a)) if self.mask is not None else a.new_ones(a.shape[0], 1, *grid)
            aligned.append(a * m)
            masks.append(m)
        return self.fuse(torch.cat(aligned, dim=1)), torch.cat(masks, dim=1)


class FeedForward(nn.Sequential):
    """Pre-LN position-wise MLP `Linear(d, r d) -> GELU -> Linear(r d, d)` (the non-linear refinement; INFERRED)."""

    def __init__(self, dim: int, ratio: int = 4) -> None:
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))


class SelfAttentionBlock(nn.Module):
    """`x = x + MHA(LN(x)); x = x + FFN(x)` (the second SDCE stage; INFERRED pre-LN transformer block).

    Args:
        dim: token width d.
        heads: attention heads (d must be divisible by it).
        ffn_ratio: hidden width of the feed-forward part, as a multiple of d.
    """

    def __init__(self, dim: int, heads: int, ffn_ratio: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"sdce_dim={dim} must be divisible by sdce_heads={heads}")
        self.norm_q = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = FeedForward(dim, ffn_ratio)

    def _attend(self, x: Tensor, kv: Tensor, with_attention: bool) -> Tensor | tuple[Tensor, Tensor]:
        attended, weights = self.attn(self.norm_q(x), kv, kv, need_weights=with_attention)
        x = x + attended
        x = x + self.ffn(x)
        return (x, weights) if with_attention else x

    def forward(self, x: Tensor, with_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """x (B, N, d) -> (B, N, d) [and head-averaged weights (B, N, N)]."""
        return self._attend(x, self.norm_q(x), with_attention)


class CrossAttentionBlock(SelfAttentionBlock):
    """`x = x + MHA(LN(x), LN(ctx), LN(ctx)); x = x + FFN(x)`; queries from `x`, keys and values from `ctx`.

    No positional embedding is added to the context tokens, so the output is invariant to any permutation of them
    (keys and values move together). INFERRED: pre-LN transformer block (METHODS.md 3.2).
    """

    def __init__(self, dim: int, heads: int, ffn_ratio: int = 4) -> None:
        super().__init__(dim, heads, ffn_ratio)
        self.norm_kv = nn.LayerNorm(dim)

    def forward(self, x: Tensor, ctx: Tensor, with_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """x (B, N, d) queries, ctx (B, M, d) keys and values -> (B, N, d) [and weights (B, N, M)]."""
        return self._attend(x, self.norm_kv(ctx), with_attention)


class SDCE(nn.Module):
    """Semantic distillation cascade enhancement: deep tokens gather shallow clues (cross), then mix (self).

    The cascade order (cross-attention, then self-attention, then a feed-forward refinement) is [SECONDARY]. INFERRED
    (METHODS.md 3.2): queries from the deep map so the modality-invariant stream *receives* the clues; both maps
    projected to d tokens (768 at paper size, 8 heads, FFN ratio 4, one block per stage), projected back and added
    to the deep map. The back-projection starts at zero, so SDCE is the identity at initialisation (as the AGW
    non-local blocks are) and training starts from the baseline's computation.

    Args:
        deep_channels: channels of the deep map F4 (and of the output E).
        shallow_channels: channels of the fused shallow map S.
        dim: token width d.
        heads: attention heads.
        stages: 1 = cross-attention only, 2 = cross-attention then self-attention.
    """

    def __init__(self, deep_channels: int, shallow_channels: int, dim: int = 768, heads: int = 8,
                 stages: int = 2) -> None:
        super().__init__()
        if stages not in (1, 2):
            raise ValueError(f"SDCE stages must be 1 (cross) or 2 (cross + self), got {stages}; 0 = build no SDCE")
        self.q_proj = nn.Linear(deep_channels, dim)
        self.kv_proj = nn.Linear(shallow_channels, dim)
        self.cross = CrossAttentionBlock(dim, heads)
        self.self_attn = SelfAttentionBlock(dim, heads) if stages == 2 else None
        self.norm_out = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, deep_channels)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, deep: Tensor, shallow: Tensor, with_attention: bool = False):
        """Enhance the deep map with the shallow one.

        Args:
            deep: F4 (B, C, h, w).
            shallow: S (B, C_s, h', w') (any grid: its tokens are only keys and values).
            with_attention: also return the cross-attention weights (B, h*w, h'*w'), averaged over heads.

        Returns:
            E (B, C, h, w) [, attention].
        """
        b, c, h, w = deep.shape
        q = self.q_proj(deep.flatten(2).transpose(1, 2))  # (B, h*w, d)
        kv = self.kv_proj(shallow.flatten(2).transpose(1, 2))  # (B, h'*w', d)
        x, attn = self.cross(q, kv, with_attention=True) if with_attention else (self.cross(q, kv), None)
        if self.self_attn is not None:
            x = self.self_attn(x)
        delta = self.out_proj(self.norm_out(x)).transpose(1, 2).reshape(b, c, h, w)
        enhanced = deep + delta
        return (enhanced, attn) if with_attention else enhanced


class ICRENet(VIReIDNet):
    """ICRE on the AGW visible-infrared trunk; returns a `ReIDOutput` in training and in evaluation.

    The inherited GeM / BN-neck / classifier form the *enhanced* head (on E); MPFR, SDCE, the shallow-clue head and
    the optional plain global head are added. Trunk arguments are those of `VIReIDNet`.

    Args:
        mpfr: build MPFR and the shallow-clue head (False: no shallow map, no SDCE possible).
        stage_set: "layer1-3" (stem = stage 1; METHODS.md default) or "layer2-4" (the other reading of "stages 2-4").
        mpfr_masks: learned spatial masks (False: every mask is 1).
        mpfr_channels: MPFR's common width; None = layer3's channels (1024 for ResNet-50, METHODS.md 3.2).
        sdce_stages: 0 (no SDCE: E = F4), 1 (cross-attention) or 2 (cross then self-attention, METHODS.md default).
        sdce_dim, sdce_heads: token width and heads (METHODS.md 3.2: 768, 8; INFERRED).
        global_head: also a plain GeM/BN/classifier head on F4 (the AGW baseline inside ICRE).
        inference: "enhanced" (feats = BN(f_e)) or "enhanced+global" (concatenation with BN(f_g); needs
            global_head). METHODS.md 3.3, AGW convention.
        **trunk: `VIReIDNet` arguments (arch, num_classes, modality_specific, non_local, gem_p, pretrained, ...).

    Output: `feats` (B, D) or (B, 2D), `pooled` f_e (B, D), `logits` z_e; `parts`: "bn" (B, D) BN(f_e), "enhanced"
    E (B, D, h, w); with MPFR "shallow" S (B, D, h, w), "masks" (B, 3, h, w), "pooled_s", "bn_s", "logits_s"; with
    the global head "pooled_g", "bn_g", "logits_g"; with `return_stages` the stage maps as `VIReIDNet`; with
    `with_attention` `attn` = SDCE cross-attention weights (B, h*w, h*w).
    """

    def __init__(self, *, mpfr: bool = True, stage_set: str = "layer1-3", mpfr_masks: bool = True,
                 mpfr_channels: int | None = None, sdce_stages: int = 2, sdce_dim: int = 768, sdce_heads: int = 8,
                 global_head: bool = False, inference: str = "enhanced", **trunk) -> None:
        super().__init__(**trunk)
        if stage_set not in STAGE_SETS:
            raise ValueError(f"stage_set must be one of {sorted(STAGE_SETS)}, got {stage_set!r}")
        if sdce_stages not in (0, 1, 2):
            raise ValueError(f"sdce_stages must be 0, 1 or 2, got {sdce_stages!r}")
        if sdce_stages and not mpfr:
            raise ValueError("sdce_stages > 0 needs mpfr=True: SDCE attends to the fused shallow map MPFR builds; "
                             "set sdce_stages=0 to switch MPFR off")
        if inference not in INFERENCE_FEATS:
            raise ValueError(f"inference must be one of {INFERENCE_FEATS}, got {inference!r}")
        if inference == "enhanced+global" and not global_head:
            raise ValueError("inference='enhanced+global' needs global_head=True")
        self.stage_set = STAGE_SETS[stage_set]
        self.inference = inference
        channels = self.stage_channels
        self.mpfr = None
        if mpfr:
            mid = mpfr_channels or channels["layer3"]
            self.mpfr = MPFR(tuple(channels[s] for s in self.stage_set), mid, self.feat_dim, masks=mpfr_masks)
            self.bnneck_s = BNNeck(self.feat_dim)
            self.classifier_s = (bias_free_classifier(self.feat_dim, self.num_classes)
                                 if self.num_classes > 0 else None)
        self.sdce = SDCE(self.feat_dim, self.feat_dim, sdce_dim, sdce_heads, sdce_stages) if sdce_stages else None
        self.global_head = global_head
        if global_head:
            self.bnneck_g = BNNeck(self.feat_dim)
            self.classifier_g = bias_free_classifier(self.feat_dim, self.num_classes) if self.num_classes > 0 else None
        # Pre-trainable trunk for param_groups (backbone lr x backbone_lr_mult); MPFR, SDCE and the heads are new
        # layers (METHODS.md 3.3: "lr 0.1 head / 0.01 backbone and new modules at 0.1").
        self.backbone_prefixes = ("specific.", "shared.")

    def _heads(self, maps: dict[str, Tensor], with_attention: bool) -> tuple[dict[str, Tensor], Tensor | None]:
        deep = maps["layer4"]
        parts: dict[str, Tensor] = {}
        attn = None
        enhanced = deep
        if self.mpfr is not None:
            shallow, masks = self.mpfr([maps[s] for s in self.stage_set], tuple(deep.shape[-2:]))
            parts.update(shallow=shallow, masks=masks)
            pooled_s = self.pool(shallow)
            parts.update(pooled_s=pooled_s, bn_s=self.bnneck_s(pooled_s))
            if self.classifier_s is not None:
                parts["logits_s"] = self.classifier_s(parts["bn_s"])
            if self.sdce is not None:
                enhanced, attn = self.sdce(deep, shallow, with_attention=True) if with_attention else (
                    self.sdce(deep, shallow), None)
        parts["enhanced"] = enhanced
        if self.global_head:
            pooled_g = self.pool(deep)
            parts.update(pooled_g=pooled_g, bn_g=self.bnneck_g(pooled_g))
            if self.classifier_g is not None:
                parts["logits_g"] = self.classifier_g(parts["bn_g"])
        return parts, attn

    def forward_features(self, images: Tensor, modality: Tensor | None = None) -> Tensor:
        """The enhanced map E (B, C, h, w), the Grad-CAM target (F4 when SDCE is off)."""
        maps = self._forward_stages(images, self._check_inputs(images, modality))
        return self._heads(maps, with_attention=False)[0]["enhanced"]

    def forward(self, images: Tensor, modality: Tensor | None = None, *, return_stages: bool = False,
                with_attention: bool = False) -> ReIDOutput:
        """Embed a batch, each sample through the stem of its own modality.

        Args:
            images: (B, 3, H, W).
            modality: (B,) long, 0 = rgb, 1 = ir.
            return_stages: also return the stage maps in `parts`.
            with_attention: `attn` = SDCE cross-attention weights (B, h*w, h*w) (None without SDCE).

        Returns:
            ReIDOutput (see the class docstring for the keys).
        """
        maps = self._forward_stages(images, self._check_inputs(images, modality))
        parts, attn = self._heads(maps, with_attention)
        pooled = self.pool(parts["enhanced"])  # f_e (B, D)
        bn = self.bnneck(pooled) if self.bnneck is not None else pooled
        logits = self.classifier(bn) if self.classifier is not None else None
        parts["bn"] = bn
        if return_stages:
            parts.update(maps)
        feats = torch.cat([bn, parts["bn_g"]], dim=1) if self.inference == "enhanced+global" else bn
        return ReIDOutput(feats=feats, pooled=pooled, logits=logits, parts=parts, attn=attn)


@register_model
def icre_r50(**kwargs) -> ICRENet:
    """ICRE on the AGW ResNet-50 (torchvision weights when pretrained=True): two stems, shared layer1-4, last
    stride 1, non-local (quirk), GeM p=3; MPFR over layer1-3 at 1024 channels, SDCE 2 stages d=768 x 8 heads
    (METHODS.md 3.2, INFERRED)."""
    args = dict(arch="resnet50.tv_in1k", modality_specific="stem", non_local=True, non_local_quirk=True,
                gem_p=3.0, learn_gem_p=False, last_stride=1, bnneck=True, sdce_dim=768, sdce_heads=8)
    return ICRENet(**{**args, **kwargs})


@register_model
def test_icre_resnet(**kwargs) -> ICRENet:
    """Tiny ICRE on timm's `test_resnet` trunk (as `test_vi_resnet`, 96-d output): MPFR at layer3's 192 channels,
    SDCE d=64 x 4 heads; for tests and the cpu-demo profile."""
    args = dict(arch="test_resnet", modality_specific="stem", non_local=True, non_local_quirk=True,
                gem_p=3.0, last_stride=1, bnneck=True, sdce_dim=64, sdce_heads=4)
    return ICRENet(**{**args, **kwargs})


@register_model
def icre_lite0(**kwargs) -> ICRENet:
    """ICRE on the `agw_lite0` trunk (EfficientNet-Lite0, two stems, last stride 1, non-local, GeM p=3; ImageNet
    weights offline with pretrained="imagenet-lite0").

    MPFR reads layer1, layer2 and layer3 (the "layer1-3" reading of the digests' "stages 2-4", METHODS.md 3.2):
    on Lite0 these are blocks.1 (24 ch, stride 4), blocks.2 (40 ch, stride 8) and blocks.3-4 (112 ch, stride 16),
    the strides of ResNet-50's layer1-3, so the three maps play the parts they play in `icre_r50` (the shallow
    maps below the deep stage SDCE enhances); MPFR aligns them at layer3's width (112) and fuses them to the deep
    map's 1280 channels. SDCE on layer4 (1280 ch) with d=256 and 8 heads (INFERRED: ResNet-50's 768 of 2048 scaled
    to the narrower trunk, 32 channels per head)."""
    args = dict(**LITE0_TRUNK, modality_specific="stem", non_local=True, non_local_quirk=True, gem_p=3.0,
                learn_gem_p=False, last_stride=1, bnneck=True, sdce_dim=256, sdce_heads=8)
    return ICRENet(**{**args, **kwargs})
