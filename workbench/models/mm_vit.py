"""Multi-modal (RGB / NIR / TIR) ViT for object re-identification, in the TransReID / TOP-ReID convention.

TransReID (He et al., ICCV 2021) [CODE: damo-cv/TransReID, model/backbones/vit_pytorch.py]: ViT-B/16 at 256x128
(16x8 patch grid + CLS = 129 tokens), optional overlapping patches (stride < patch), side-information (camera)
embedding `x = x + pos_embed + sie_coef * sie_embed[camid]` on every token, global feature = CLS token after the final
LayerNorm, BN-neck and bias-free classifier.
TOP-ReID (Wang et al., AAAI 2024) [CODE: 924973292/TOP-ReID, modeling/make_model.py::BASELINE]: one ViT per modality,
retrieval feature = concatenation [f_RGB, f_NIR, f_TIR] of the pre-BN CLS features, "direct" head = BN + classifier on
that concatenation. METHODS.md 1.3 and 4.1 (HMFE).

Sharing (`shared_depth` = L_s, METHODS.md 4.1): blocks 1..L_s run once on the batch-concatenation of all modalities
with one set of weights; blocks L_s+1..depth (and the final LayerNorm) have one copy per modality. L_s = 0 is
TOP-ReID's three separate ViTs (the patch/position/camera embedding is then per modality too unless `share_embed`);
L_s = depth is one shared ViT.

    images {m: (B,3,H,W)} -> embed (shared if L_s > 0): (M*B, 1+N, D) -> shared blocks -> split per modality
      -> per-modality blocks -> LayerNorm -> CLS f_m (B, D) -> feats = [f_m for m in modalities] (B, M*D)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import timm
import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from .layers import BNNeck, bias_free_classifier
from .output import ReIDOutput
from .pretrained import finish_pretrained, load_state_dict_into, resample_pos_embed, resolve_pretrained
from .registry import register_model


def _pair(x: int | Sequence[int]) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, int) else (int(x[0]), int(x[1]))


def patch_grid(img_size: tuple[int, int], patch_size: int, stride: int) -> tuple[int, int]:
    """Patch grid (h, w) for a conv patch embedding: `(H - patch) // stride + 1` per side (TransReID's
    `PatchEmbed_overlap`); 256x128, patch 16, stride 16 -> (16, 8); stride 12 -> (21, 10)."""
    return (img_size[0] - patch_size) // stride + 1, (img_size[1] - patch_size) // stride + 1


class TokenEmbedding(nn.Module):
    """Patch embedding (stride may be < patch size), CLS token, position embedding and optional camera embedding.

    Args:
        proj: the ViT's patch-embedding conv (weights are copied; its stride is replaced by `stride`).
        cls_token: (1, 1, D).
        pos_embed: (1, 1 + h0*w0, D) on grid `src_grid`; resampled to the grid of `img_size` / `stride`.
        src_grid: (h0, w0) grid of `pos_embed`; None = square.
        img_size: (H, W) the model is built for.
        stride: patch stride.
        num_cameras: SIE table size; 0 disables the camera embedding.
        sie_coef: SIE coefficient (3.0 in TransReID / TOP-ReID).
        norm_pre: timm's pre-block norm (Identity for standard ViTs).
    """

    def __init__(self, proj: nn.Conv2d, cls_token: Tensor, pos_embed: Tensor, src_grid: tuple[int, int] | None,
                 img_size: tuple[int, int], stride: int, num_cameras: int = 0, sie_coef: float = 3.0,
                 norm_pre: nn.Module | None = None) -> None:
        super().__init__()
        self.patch_size = proj.kernel_size[0]
        self.stride = stride
        self.proj = nn.Conv2d(proj.in_channels, proj.out_channels, kernel_size=proj.kernel_size, stride=stride,
                              bias=proj.bias is not None)
        self.proj.load_state_dict(proj.state_dict())
        self.grid_size = patch_grid(img_size, self.patch_size, stride)
        self.cls_token = nn.Parameter(cls_token.detach().clone())
        self.pos_embed = nn.Parameter(resample_pos_embed(pos_embed.detach(), self.grid_size, src_grid).clone())
        self.sie_coef = sie_coef
        self.sie_embed: nn.Parameter | None = None
        if num_cameras > 0:  # [CODE: damo-cv/TransReID, vit_pytorch.py]: zeros + trunc_normal(std=.02)
            self.sie_embed = nn.Parameter(torch.zeros(num_cameras, 1, proj.out_channels))
            nn.init.trunc_normal_(self.sie_embed, std=0.02)
        self.norm_pre = norm_pre if norm_pre is not None else nn.Identity()

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    def forward(self, images: Tensor, camids: Tensor | None = None) -> Tensor:
        """images (B, 3, H, W), camids (B,) or None -> tokens (B, 1 + h*w, D)."""
        x = self.proj(images)  # (B, D, h, w)
        grid = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)  # (B, h*w, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        pos = self.pos_embed if grid == self.grid_size else resample_pos_embed(self.pos_embed, grid, self.grid_size)
        x = x + pos
        if self.sie_embed is not None and camids is not None:
            x = x + self.sie_coef * self.sie_embed[camids]  # (B, 1, D) broadcast over tokens
        return self.norm_pre(x)


def is_timm_attention(module: nn.Module) -> bool:
    """A timm attention module with the switch between its fused kernel and its explicit path (`fused_attn`), whose
    explicit path passes the probabilities through `attn_drop`."""
    return hasattr(module, "fused_attn") and isinstance(getattr(module, "attn_drop", None), nn.Module)


class AttentionCapture:
    """Record the attention probabilities of timm attention modules: a context manager with forward hooks.

    Inside the `with` block each module runs timm's own explicit path (`fused_attn` off: `softmax(q k^T * d^-0.5)`,
    then `attn_drop`) and a forward hook on its `attn_drop` keeps the probabilities it receives; on exit the hooks
    are removed and the kernels restored, also after an error. The explicit path gives the fused kernel's output up
    to float error; the captured maps are what timm computes, not a copy of its attention.

    Args:
        modules: timm `Attention` modules (e.g. `block.attn`).
        detach: keep detached copies (for drawing) rather than the tensors of the autograd graph.

    Attributes:
        per_call: the (B, heads, T, T) probabilities in call order (rows sum to 1 over keys).
    """

    def __init__(self, modules, detach: bool = False) -> None:
        self.modules = list(modules)
        self.detach = detach
        bad = [type(m).__name__ for m in self.modules if not is_timm_attention(m)]
        if bad:
            raise ValueError(f"{bad} are not timm attention modules (with fused_attn and attn_drop)")
        self.per_call: list[Tensor] = []
        self._handles: list = []
        self._fused: list[bool] = []

    def __enter__(self) -> AttentionCapture:
        self.per_call = []
        for m in self.modules:
            self._fused.append(m.fused_attn)
            m.fused_attn = False
            self._handles.append(m.attn_drop.register_forward_hook(self._keep))
        return self

    def _keep(self, module: nn.Module, inputs, output) -> None:
        self.per_call.append(inputs[0].detach() if self.detach else inputs[0])

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        for m, fused in zip(self.modules, self._fused):
            m.fused_attn = fused
        self._handles, self._fused = [], []


def block_forward_with_attention(block: Block, x: Tensor) -> tuple[Tensor, Tensor]:
    """Run a timm ViT `Block` and capture its attention (`AttentionCapture` on `block.attn`).

    Args:
        block: a `timm.models.vision_transformer.Block`.
        x: (B, T, D) tokens.

    Returns:
        (B, T, D) block output (timm's explicit attention path: `block(x)` up to float error) and (B, heads, T, T)
        attention probabilities (rows sum to 1 over keys).
    """
    with AttentionCapture([block.attn]) as capture:
        x = block(x)
    return x, capture.per_call[-1]


ATTENTION_BLOCKS = ("last", "all")


class MultiModalViT(nn.Module):
    """ViT with shallow blocks shared across modalities and deep blocks per modality; returns a `ReIDOutput`.

    Args:
        arch: timm ViT name, optionally with a weight tag ("vit_base_patch16_224.orig_in21k_ft_in1k" is the
            `jx_vit_base_p16_224` checkpoint TransReID loads).
        embed_dim, depth, num_heads, mlp_ratio: overrides of the timm architecture (None = arch default).
        img_size: (H, W) input size; position embeddings are resampled for other sizes at load and at run time.
        patch_size: patch side (16).
        stride: patch stride; < patch_size gives overlapping patches (TransReID's stride 12: 21x10 at 256x128).
        shared_depth: L_s, number of leading blocks shared by all modalities (0 = separate ViTs, depth = one ViT).
        share_embed: share the patch/position/camera embedding; None = shared iff shared_depth > 0.
        num_cameras: size of the SIE camera table (0 = no SIE).
        sie_coef: SIE coefficient (3.0, TransReID / TOP-ReID default; DeMo uses 1.0).
        num_classes: identities; > 0 builds the direct head (BN on the concatenation + classifier) and a
            per-modality BN + classifier.
        modalities: modality names, the order of `feats` (the keys `forward` expects in `images`).
        drop_path_rate: stochastic depth (0.1 in TransReID / TOP-ReID configs).
        pretrained: None, True (timm weights, online) or a path to a .safetensors/.pth ViT state dict with timm keys.
        timm_kwargs: extra arguments for `timm.create_model`.

    Output (`forward`): `feats` = `pooled` (B, M*D) concatenated pre-BN CLS features, `logits` (B, num_classes) or
    None, `parts["cls_<m>"]` (B, D), `parts["logits_<m>"]` (B, num_classes), `parts["shared_tokens_<m>"]`
    (B, 1+N, D) tokens after block L_s (after the embedding when L_s = 0), `parts["final_tokens_<m>"]` (B, 1+N, D)
    the last block's tokens after the final LayerNorm; with `return_tokens` `parts["tokens_<m>"]`
    (B, depth, 1+N, D) every block's output; with `with_attention` `attn` (B, M, N) the head-averaged CLS->patch
    attention of the last block, one row per modality, and `parts["cls_attn_<m>"]` (B, N); with
    `attention_blocks="all"` also `parts["attn_maps_<m>"]` (B, depth, heads, 1+N, 1+N).
    """

    # The pre-trained ViT(s) for `optim.backbone_lr_mult` (workbench.optim.param_groups): embeddings (SIE included),
    # blocks and final norms; the BN-necks and classifiers are new layers. TOP-ReID trains everything at one lr
    # (bias x2) [CODE: 924973292/TOP-ReID, solver/make_optimizer.py], so its profile keeps backbone_lr_mult = 1.
    backbone_prefixes: tuple[str, ...] = ("embed.", "shared_blocks.", "branches.", "norms.")

    def __init__(self, arch: str = "vit_base_patch16_224", *, embed_dim: int | None = None, depth: int | None = None,
                 num_heads: int | None = None, mlp_ratio: float | None = None,
                 img_size: int | tuple[int, int] = (256, 128), patch_size: int = 16, stride: int = 16,
                 shared_depth: int = 0, share_embed: bool | None = None, num_cameras: int = 0, sie_coef: float = 3.0,
                 num_classes: int = 0, modalities: Sequence[str] = ("rgb", "nir", "tir"),
                 drop_path_rate: float = 0.1, pretrained: bool | str | None = None,
                 timm_kwargs: dict | None = None) -> None:
        super().__init__()
        self.img_size = _pair(img_size)
        if stride < 1 or stride > patch_size:
            raise ValueError(f"stride must be in [1, patch_size={patch_size}] (TransReID uses 16 or 12), got {stride}")
        if min(self.img_size) < patch_size:
            raise ValueError(f"img_size={self.img_size} is smaller than patch_size={patch_size}")
        self.modalities = tuple(modalities)
        if len(self.modalities) == 0 or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must be distinct names, got {modalities!r}")
        if num_classes < 0 or num_cameras < 0:
            raise ValueError(f"num_classes and num_cameras must be >= 0, got {num_classes}, {num_cameras}")
        overrides = {k: v for k, v in dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                                            mlp_ratio=mlp_ratio).items() if v is not None}
        self.arch = arch
        self.timm_kwargs = {**overrides, "patch_size": patch_size, "img_size": self.img_size,
                            "drop_path_rate": drop_path_rate, **(timm_kwargs or {})}
        vit = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="", **self.timm_kwargs)
        for name in ("patch_embed", "cls_token", "pos_embed", "blocks", "norm"):
            if getattr(vit, name, None) is None:
                raise ValueError(f"arch={arch!r} is not a timm VisionTransformer with a CLS token and absolute "
                                 f"position embedding (missing {name!r}); use e.g. 'vit_base_patch16_224'")
        if getattr(vit, "num_prefix_tokens", 1) != 1 or getattr(vit, "no_embed_class", False):
            raise ValueError(f"arch={arch!r} has register tokens or no CLS position; only plain ViTs are supported")
        vit_grid = tuple(vit.patch_embed.grid_size)
        pos_src, src_grid = vit.pos_embed, vit_grid
        resolved = resolve_pretrained(pretrained, arch, vit)
        self.load_report = None
        if resolved is not None:
            state, source = resolved
            self.load_report = load_state_dict_into(vit, state, source, warn=False)
            if "pos_embed" in state:  # resample once, checkpoint grid -> final grid (TransReID's resize_pos_embed)
                pos_src = state["pos_embed"]
                n_src = pos_src.shape[1] - 1
                src_grid = vit_grid if n_src == vit_grid[0] * vit_grid[1] else None  # None: square checkpoint grid

        self.depth = len(vit.blocks)
        if not 0 <= shared_depth <= self.depth:
            raise ValueError(f"shared_depth must be in [0, depth={self.depth}], got {shared_depth}")
        self.shared_depth = shared_depth
        self.share_embed = shared_depth > 0 if share_embed is None else bool(share_embed)
        self.embed_dim = vit.embed_dim
        self.num_heads = vit.blocks[0].attn.num_heads

        embed = TokenEmbedding(vit.patch_embed.proj, vit.cls_token, pos_src, src_grid, self.img_size, stride,
                               num_cameras, sie_coef, norm_pre=vit.norm_pre)
        n_mod = len(self.modalities)
        self.embed = nn.ModuleList([embed] if self.share_embed else
                                   [embed] + [copy.deepcopy(embed) for _ in range(n_mod - 1)])
        blocks = list(vit.blocks)
        self.shared_blocks = nn.ModuleList(blocks[:shared_depth])
        deep = nn.ModuleList(blocks[shared_depth:])
        self.branches = nn.ModuleList([deep] + [copy.deepcopy(deep) for _ in range(n_mod - 1)])
        shared_norm = shared_depth == self.depth  # one ViT: one final LayerNorm
        self.norms = nn.ModuleList([vit.norm] if shared_norm else
                                   [vit.norm] + [copy.deepcopy(vit.norm) for _ in range(n_mod - 1)])

        self.num_classes = num_classes
        self.feat_dim = n_mod * self.embed_dim
        if num_classes > 0:  # TOP-ReID BASELINE: direct head on the concatenation + one head per modality
            self.bnneck = BNNeck(self.feat_dim)
            self.classifier = bias_free_classifier(self.feat_dim, num_classes)
            self.bnnecks = nn.ModuleList([BNNeck(self.embed_dim) for _ in range(n_mod)])
            self.classifiers = nn.ModuleList([bias_free_classifier(self.embed_dim, num_classes)
                                              for _ in range(n_mod)])
        self.load_report = finish_pretrained(self, resolved, self.load_report)  # checks how much was filled

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid (h, w) at `img_size`."""
        return self.embed[0].grid_size

    def _check_inputs(self, images: Mapping[str, Tensor], camids: Tensor | None) -> int:
        if not isinstance(images, Mapping):
            raise ValueError(f"images must be a dict {{modality: (B, 3, H, W)}} with keys {self.modalities}, "
                             f"got {type(images).__name__}")
        missing = [m for m in self.modalities if m not in images]
        if missing:
            raise ValueError(f"images lacks modalities {missing}; this model expects {self.modalities} "
                             f"(got {sorted(images)}); pass all of them, or build the model with modalities=...")
        shapes = {m: tuple(images[m].shape) for m in self.modalities}
        first = shapes[self.modalities[0]]
        if len(first) != 4 or first[1] != 3 or any(s != first for s in shapes.values()):
            raise ValueError(f"every modality must be (B, 3, H, W) with the same shape, got {shapes}")
        if camids is not None:
            if camids.dim() != 1 or camids.shape[0] != first[0]:
                raise ValueError(f"camids must be (B,) = ({first[0]},), got shape {tuple(camids.shape)}")
            table = self.embed[0].sie_embed
            if table is not None and camids.numel() and (camids.min() < 0 or camids.max() >= table.shape[0]):
                raise ValueError(f"camids must be in [0, num_cameras={table.shape[0]}), got "
                                 f"{camids.unique().tolist()}")
        return first[0]

    def embed_tokens(self, images: dict[str, Tensor], camids: Tensor | None = None) -> tuple[int, Tensor]:
        """Check the inputs and embed every modality: (batch size B, tokens (M*B, 1+N, D) stacked by modality)."""
        b = self._check_inputs(images, camids)
        mods, n_mod = self.modalities, len(self.modalities)
        cams = camids if self.embed[0].sie_embed is not None else None
        if self.share_embed:
            x = self.embed[0](torch.cat([images[m] for m in mods]), cams.repeat(n_mod) if cams is not None else None)
        else:
            x = torch.cat([self.embed[i](images[m], cams) for i, m in enumerate(mods)])
        return b, x

    def mask_patches(self, x: Tensor, patch_mask: Tensor, mask_token: Tensor, b: int) -> Tensor:
        """Replace the masked patch tokens of x (M*B, 1+N, D) (modality-major, as `embed_tokens` stacks them) by
        `mask_token` (1, 1, D) + that position's embedding, as SimMIM does; the CLS token is never masked.

        Args:
            patch_mask: (B, M, N) bool, True = masked.
        """
        n_mod = len(self.modalities)
        n = x.shape[1] - 1
        if patch_mask.shape != (b, n_mod, n) or patch_mask.dtype != torch.bool:
            raise ValueError(f"patch_mask must be a bool (B, M, N) = ({b}, {n_mod}, {n}) tensor, got "
                             f"{patch_mask.dtype} {tuple(patch_mask.shape)}")
        if mask_token is None or mask_token.shape != (1, 1, self.embed_dim):
            raise ValueError(f"patch_mask needs mask_token, a (1, 1, {self.embed_dim}) tensor, got "
                             f"{None if mask_token is None else tuple(mask_token.shape)}")
        pos = []
        for i in range(n_mod):
            p = self.embed[0 if self.share_embed else i].pos_embed
            if p.shape[1] != n + 1:
                raise ValueError(f"masking needs images at the model's size {self.img_size}; got {n} patches")
            pos.append(p[:, 1:].expand(b, -1, -1))
        pos = torch.cat(pos)  # (M*B, N, D)
        m = patch_mask.transpose(0, 1).reshape(n_mod * b, n, 1)  # modality-major like x
        patches = torch.where(m, mask_token + pos, x[:, 1:])
        return torch.cat([x[:, :1], patches], dim=1)

    def _run(self, blocks: nn.ModuleList, x: Tensor, capture: set[int], keep: bool
             ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Run `blocks`; the attention of the blocks whose index is in `capture` is recorded (their explicit path)."""
        tokens, maps = [], []
        for j, block in enumerate(blocks):
            if j in capture:
                x, probs = block_forward_with_attention(block, x)
                maps.append(probs)
            else:
                x = block(x)
            if keep:
                tokens.append(x)
        return x, tokens, maps

    def forward(self, images: Mapping[str, Tensor], camids: Tensor | None = None, *,
                patch_mask: Tensor | None = None, mask_token: Tensor | None = None, with_attention: bool = False,
                attention_blocks: str = "last", return_tokens: bool = False) -> ReIDOutput:
        """Embed aligned multi-modal samples.

        Args:
            images: {modality: (B, 3, H, W)} for every name in `self.modalities` (extra keys are ignored).
            camids: (B,) camera ids for SIE (ignored when num_cameras = 0); the same id for all modalities of a sample.
            patch_mask: (B, M, N) bool: replace those patch tokens by `mask_token` + their position embedding before
                the first block (`mask_patches`; SD2-ReID's HSLM), or None.
            mask_token: (1, 1, D) the token that replaces masked patches (SD2-ReID's learnable [MASK]).
            with_attention: record attention (`AttentionCapture`) and return `attn` (B, M, N), the last block's
                head-averaged CLS-to-patch attention per modality, and `parts["cls_attn_<m>"]` (B, N).
            attention_blocks: which blocks run timm's explicit attention path when `with_attention`: "last" (the
                others keep the fused kernel) or "all" (also `parts["attn_maps_<m>"]` (B, depth, heads, 1+N, 1+N)).
            return_tokens: add every block's tokens, `parts["tokens_<m>"]` (B, depth, 1+N, D).

        Returns:
            ReIDOutput (see the class docstring for the keys).
        """
        if attention_blocks not in ATTENTION_BLOCKS:
            raise ValueError(f"attention_blocks must be one of {ATTENTION_BLOCKS}, got {attention_blocks!r}")
        b, x = self.embed_tokens(images, camids)
        if patch_mask is not None:
            x = self.mask_patches(x, patch_mask, mask_token, b)
        mods = self.modalities
        every = with_attention and attention_blocks == "all"
        last_shared = with_attention and len(self.branches[0]) == 0  # L_s = depth: the last block is shared
        shared_capture = set(range(len(self.shared_blocks))) if every else (
            {len(self.shared_blocks) - 1} if last_shared else set())
        branch_capture = set(range(len(self.branches[0]))) if every else (
            {len(self.branches[0]) - 1} if with_attention else set())
        x, shared_tokens, shared_maps = self._run(self.shared_blocks, x, shared_capture, return_tokens)

        parts: dict[str, Tensor] = {}
        cls_feats, last_maps = [], []
        for i, m in enumerate(mods):
            sl = slice(i * b, (i + 1) * b)
            h = x[sl]
            parts[f"shared_tokens_{m}"] = h
            h, tokens, maps = self._run(self.branches[i], h, branch_capture, return_tokens)
            h = self.norms[0 if len(self.norms) == 1 else i](h)
            cls_feats.append(h[:, 0])
            parts[f"cls_{m}"] = h[:, 0]
            parts[f"final_tokens_{m}"] = h
            if return_tokens:
                parts[f"tokens_{m}"] = torch.stack([t[sl] for t in shared_tokens] + tokens, dim=1)
            if with_attention:
                own = [a[sl] for a in shared_maps] + maps  # (B, heads, T, T) per recorded block
                if every:
                    parts[f"attn_maps_{m}"] = torch.stack(own, dim=1)  # (B, depth, heads, T, T)
                parts[f"cls_attn_{m}"] = own[-1][:, :, 0, 1:].mean(dim=1)  # (B, N)
                last_maps.append(parts[f"cls_attn_{m}"])

        feats = torch.cat(cls_feats, dim=1)  # (B, M*D)
        logits = None
        if self.num_classes > 0:
            logits = self.classifier(self.bnneck(feats))
            for i, m in enumerate(mods):
                parts[f"logits_{m}"] = self.classifiers[i](self.bnnecks[i](cls_feats[i]))
        attn = torch.stack(last_maps, dim=1) if with_attention else None
        return ReIDOutput(feats=feats, pooled=feats, logits=logits, parts=parts, attn=attn)

    def forward_features(self, images: Mapping[str, Tensor], camids: Tensor | None = None) -> Tensor:
        """Patch tokens of the last block of each modality as maps, concatenated on channels (the Grad-CAM target).

        Returns:
            (B, M*D, h, w) with (h, w) the patch grid.
        """
        out = self.forward(images, camids, return_tokens=True)
        b = out.feats.shape[0]
        maps = []
        for i, m in enumerate(self.modalities):
            tokens = self.norms[0 if len(self.norms) == 1 else i](out.parts[f"tokens_{m}"][:, -1, 1:])  # (B, N, D)
            n = tokens.shape[1]
            h, w = self._grid_for(n, images[m].shape[-2:])
            maps.append(tokens.transpose(1, 2).reshape(b, self.embed_dim, h, w))
        return torch.cat(maps, dim=1)

    def _grid_for(self, n: int, hw: Sequence[int]) -> tuple[int, int]:
        grid = patch_grid((int(hw[0]), int(hw[1])), self.embed[0].patch_size, self.embed[0].stride)
        assert grid[0] * grid[1] == n, "token count does not match the patch grid"
        return grid


@register_model
def mm_vit_b16(**kwargs) -> MultiModalViT:
    """TOP-ReID baseline: three separate ViT-B/16 (shared_depth=0) at 256x128, SIE off unless num_cameras > 0,
    direct head on the 2304-d concatenation. SD2-ReID's HMFE uses `shared_depth=6` (METHODS.md 4.1).
    pretrained=True fetches timm's `orig_in21k_ft_in1k` weights (TransReID's jx_vit_base_p16_224)."""
    args = dict(arch="vit_base_patch16_224.orig_in21k_ft_in1k", img_size=(256, 128), patch_size=16, stride=16,
                shared_depth=0, sie_coef=3.0, drop_path_rate=0.1)
    return MultiModalViT(**{**args, **kwargs})


@register_model
def test_mm_vit(**kwargs) -> MultiModalViT:
    """Tiny multi-modal ViT for tests: embed_dim 64, depth 4, 2 heads, patch 8 at 64x32 (8x4 grid), L_s = 2."""
    args = dict(arch="vit_tiny_patch16_224", embed_dim=64, depth=4, num_heads=2, mlp_ratio=2.0, img_size=(64, 32),
                patch_size=8, stride=8, shared_depth=2, drop_path_rate=0.0)
    return MultiModalViT(**{**args, **kwargs})
