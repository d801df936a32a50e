"""Visible-infrared CNN re-identification network in the AGW convention, on a timm ResNet.

AGW (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021)
[CODE: mangye16/Cross-Modal-Re-ID-baseline, model.py::embed_net]: ResNet-50 with last stride 1, a visible and an
infrared copy of the stem (conv1..maxpool), shared layer1-4, non-local blocks after the last 2 bottlenecks of layer2
and the last 3 of layer3, GeM (p=3), BN-neck, bias-free classifier on the BN feature. METHODS.md section 1.1.

DAKD's network (`vi_r50`, METHODS.md 2.3) [CODE: Fouroy4/DAKD, model.py + resnet.py] is the same trunk as one
stream (no modality-specific stem; the modality argument is ignored), with a learnable GeM exponent and no classifier.

Data flow (shapes for ResNet-50 at 288x144, see METHODS.md 1.1):

    images (B,3,288,144), modality (B,) 0=rgb 1=ir
      -> stages up to `modality_specific` : one copy per modality, each sample routed through its own copy
      -> remaining stages (shared)         : stem 64x72x36, layer1 256x72x36, layer2 512x36x18 (+NL),
                                             layer3 1024x18x9 (+NL), layer4 2048x18x9 (last stride 1)
      -> GeM -> pooled (B,2048) -> BN-neck -> feats (B,2048) -> classifier -> logits (B,num_classes)
"""

from __future__ import annotations

import copy

import timm
import torch
from torch import Tensor, nn

from .layers import BNNeck, GeM, NonLocal, bias_free_classifier
from .output import ReIDOutput
from .pretrained import finish_pretrained, load_state_dict_into, resolve_pretrained
from .registry import register_model

STAGES: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4")
SPLIT_POINTS: tuple[str, ...] = ("none",) + STAGES
NUM_MODALITIES = 2  # 0 = rgb (visible), 1 = ir (infrared)


class Stage(nn.Module):
    """A ResNet stage (timm `layerK`) with optional non-local blocks after chosen residual blocks.

    Args:
        blocks: the stage's residual blocks (timm's `nn.Sequential`; keeps timm's parameter names).
        non_local_after: 0-indexed block positions followed by a `NonLocal`.
        channels: output channels of the stage.
        quirk: `NonLocal` one-channel quirk (see `NonLocal`).
    """

    def __init__(self, blocks: nn.Sequential, non_local_after: tuple[int, ...] = (), channels: int = 0,
                 quirk: bool = True) -> None:
        super().__init__()
        self.blocks = blocks
        self.non_local = nn.ModuleDict({str(i): NonLocal(channels, quirk=quirk) for i in non_local_after})

    def forward(self, x: Tensor) -> Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if str(i) in self.non_local:
                x = self.non_local[str(i)](x)
        return x


def _remove_last_stride(layer: nn.Sequential) -> None:
    """Make the first block of `layer` stride 1 (conv and shortcut), AGW's `last_conv_stride=1` (no dilation)."""
    for module in layer[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)
    downsample = getattr(layer[0], "downsample", None)
    if isinstance(downsample, nn.Sequential):  # timm avg_down shortcut: AvgPool2d(2, 2) before the 1x1 conv
        for i, module in enumerate(downsample):
            if isinstance(module, nn.AvgPool2d):
                downsample[i] = nn.Identity()


def _check_resnet(backbone: nn.Module, arch: str) -> None:
    needed = ("conv1", "bn1", "act1", "maxpool", *STAGES[1:])
    absent = [n for n in needed if not hasattr(backbone, n)]
    if absent:
        raise ValueError(f"arch={arch!r} is not a timm ResNet-family model (missing {absent}); use e.g. "
                         "'resnet50', 'resnet18' or 'test_resnet'")


class VIReIDNet(nn.Module):
    """AGW-style visible-infrared network; returns a `ReIDOutput` in training and in evaluation.

    Args:
        arch: timm ResNet-family name, optionally with a weight tag ("resnet50.tv_in1k" = AGW's torchvision weights).
        num_classes: identities of the bias-free classifier; 0 builds no classifier (`logits` is None).
        modality_specific: last stage that has one copy per modality: "none" (single stream, DAKD), "stem" (AGW),
            "layer1", ..., "layer4" (two separate networks). Later stages are shared.
        non_local: insert non-local blocks (AGW placement, `non_local_layers`).
        non_local_quirk: True = `inter_channels = 1` as in the AGW/DAKD code; False = `in_channels // 2` (paper).
        non_local_layers: how many non-local blocks after the *last* blocks of layer1..layer4; AGW uses (0, 2, 3, 0)
            (clipped to the number of blocks of tiny models).
        gem_p: GeM exponent (AGW and DAKD: 3).
        learn_gem_p: learnable exponent (DAKD) instead of a constant (AGW).
        last_stride: stride of layer4 (1 in AGW/DAKD, 2 = plain ResNet).
        bnneck: BN-neck after pooling; False makes `feats` the pooled feature.
        pretrained: None, True (timm weights for `arch`, online only) or a path to a .safetensors/.pth file with
            timm/torchvision ResNet keys; loaded before the stem is duplicated, so both stems start equal (AGW).
        timm_kwargs: extra arguments for `timm.create_model` (e.g. `layers=(1, 1, 1, 1)` for a small ResNet).

    Output keys (`forward`): `feats` (B, D) BN feature, `pooled` (B, D) GeM feature, `logits` (B, num_classes) or
    None, `parts["bn"]` (B, D); with `return_stages=True` also `parts["stem"]`, `parts["layer1"]`..`["layer4"]`
    (B, C_k, h_k, w_k).
    """

    # The pre-trained trunk for `optim.backbone_lr_mult` (workbench.optim.param_groups): both stems, the shared
    # stages and the non-local blocks inside them. AGW trains all of it at 0.1 x lr and only the BN-neck
    # (`bottleneck`) and the classifier at lr [CODE: mangye16/Cross-Modal-Re-ID-baseline, train.py, `ignored_params`].
    # The GeM exponent (a parameter only when learnable, DAKD, whose Adam uses one lr) counts as a new layer.
    backbone_prefixes: tuple[str, ...] = ("specific.", "shared.")

    def __init__(self, arch: str = "resnet50", num_classes: int = 0, modality_specific: str = "stem",
                 non_local: bool = True, non_local_quirk: bool = True,
                 non_local_layers: tuple[int, int, int, int] = (0, 2, 3, 0), gem_p: float = 3.0,
                 learn_gem_p: bool = False, last_stride: int = 1, bnneck: bool = True,
                 pretrained: bool | str | None = None, timm_kwargs: dict | None = None) -> None:
        super().__init__()
        if modality_specific not in SPLIT_POINTS:
            raise ValueError(f"modality_specific must be one of {SPLIT_POINTS}, got {modality_specific!r}")
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 (AGW) or 2 (plain ResNet), got {last_stride}")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 = no classifier), got {num_classes}")
        if len(non_local_layers) != 4:
            raise ValueError(f"non_local_layers must give a count for each of layer1..layer4, got {non_local_layers}")
        self.arch = arch
        self.timm_kwargs = dict(timm_kwargs or {})
        self.modality_specific = modality_specific
        self.num_classes = num_classes

        backbone = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="", **self.timm_kwargs)
        _check_resnet(backbone, arch)
        resolved = resolve_pretrained(pretrained, arch, backbone)
        backbone_report = load_state_dict_into(backbone, *resolved, warn=False) if resolved else None
        if last_stride == 1:
            _remove_last_stride(backbone.layer4)
        channels = [info["num_chs"] for info in backbone.feature_info]  # act1, layer1..layer4

        stages: dict[str, nn.Module] = {
            "stem": nn.Sequential(backbone.conv1, backbone.bn1, backbone.act1, backbone.maxpool)}
        for k in range(4):
            layer = getattr(backbone, f"layer{k + 1}")
            n_nl = min(non_local_layers[k], len(layer)) if non_local else 0
            after = tuple(range(len(layer) - n_nl, len(layer)))  # AGW: the last n blocks
            stages[f"layer{k + 1}"] = Stage(layer, after, channels[k + 1], quirk=non_local_quirk)

        n_specific = SPLIT_POINTS.index(modality_specific)
        specific = STAGES[:n_specific]
        self.specific = nn.ModuleList(
            [nn.ModuleDict({s: (stages[s] if m == 0 else copy.deepcopy(stages[s])) for s in specific})
             for m in range(NUM_MODALITIES)] if specific else [])
        self.shared = nn.ModuleDict({s: stages[s] for s in STAGES[n_specific:]})

        self.feat_dim = channels[-1]
        self.pool = GeM(gem_p, learn_p=learn_gem_p)
        self.bnneck = BNNeck(self.feat_dim) if bnneck else None
        self.classifier = bias_free_classifier(self.feat_dim, num_classes) if num_classes > 0 else None
        self.load_report = finish_pretrained(self, resolved, backbone_report)  # checks how much was filled

    @property
    def two_stream(self) -> bool:
        """Whether some stages have one copy per modality."""
        return len(self.specific) > 0

    def _check_inputs(self, images: Tensor, modality: Tensor | None) -> Tensor | None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        if modality is None:
            if self.two_stream:
                raise ValueError(
                    f"modality is required when modality_specific={self.modality_specific!r}: pass a (B,) long "
                    "tensor with 0 for visible (rgb) and 1 for infrared samples")
            return None
        if modality.dim() != 1 or modality.shape[0] != images.shape[0]:
            raise ValueError(f"modality must be (B,) = ({images.shape[0]},), got shape {tuple(modality.shape)}")
        if modality.dtype.is_floating_point or modality.dtype == torch.bool:
            raise ValueError(f"modality must be an integer tensor (0=rgb, 1=ir), got dtype {modality.dtype}")
        if modality.numel() and (modality.min() < 0 or modality.max() >= NUM_MODALITIES):
            raise ValueError(f"modality values must be 0 (rgb) or 1 (ir), got {modality.unique().tolist()}")
        return modality

    def _forward_stages(self, images: Tensor, modality: Tensor | None) -> dict[str, Tensor]:
        """Run all stages; returns {stage: (B, C, h, w)} in input order."""
        maps: dict[str, Tensor] = {}
        x = images
        if self.two_stream:
            names = list(self.specific[0].keys())
            per_mod: list[tuple[Tensor, list[Tensor]]] = []
            for m in range(NUM_MODALITIES):
                idx = (modality == m).nonzero(as_tuple=True)[0]
                if idx.numel() == 0:
                    continue
                h, outs = images.index_select(0, idx), []
                for name in names:
                    h = self.specific[m][name](h)
                    outs.append(h)
                per_mod.append((idx, outs))
            for j, name in enumerate(names):
                if len(per_mod) == 1:  # one modality in the batch: already in input order
                    maps[name] = per_mod[0][1][j]
                    continue
                first = per_mod[0][1][j]
                merged = first.new_zeros((images.shape[0], *first.shape[1:]))
                for idx, outs in per_mod:
                    merged = merged.index_copy(0, idx, outs[j])
                maps[name] = merged
            x = maps[names[-1]]
        for name, stage in self.shared.items():
            x = stage(x)
            maps[name] = x
        return maps

    def forward_features(self, images: Tensor, modality: Tensor | None = None) -> Tensor:
        """Last-stage map, the Grad-CAM target.

        Args:
            images: (B, 3, H, W).
            modality: (B,) long, 0 = rgb, 1 = ir (optional for single-stream models).

        Returns:
            (B, C, h, w) layer4 map (C=2048, h=H/16, w=W/16 for ResNet-50 with last stride 1).
        """
        return self._forward_stages(images, self._check_inputs(images, modality))["layer4"]

    def forward(self, images: Tensor, modality: Tensor | None = None, *, return_stages: bool = False) -> ReIDOutput:
        """Embed a batch, each sample through the stem of its own modality.

        Args:
            images: (B, 3, H, W).
            modality: (B,) long, 0 = rgb, 1 = ir; mixed batches are fine (optional for single-stream models).
            return_stages: also return every stage's map in `parts` ("stem", "layer1".."layer4").

        Returns:
            ReIDOutput with feats (B, D) BN feature, pooled (B, D) GeM feature, logits (B, num_classes) or None,
            parts {"bn": (B, D), [stage maps]}.
        """
        maps = self._forward_stages(images, self._check_inputs(images, modality))
        pooled = self.pool(maps["layer4"])  # (B, D)
        bn = self.bnneck(pooled) if self.bnneck is not None else pooled
        logits = self.classifier(bn) if self.classifier is not None else None
        parts = {"bn": bn}
        if return_stages:
            parts.update(maps)
        return ReIDOutput(feats=bn, pooled=pooled, logits=logits, parts=parts)


@register_model
def agw_r50(**kwargs) -> VIReIDNet:
    """AGW baseline: ResNet-50 (torchvision ImageNet weights when pretrained=True), two stems, shared layer1-4,
    non-local (quirk), GeM p=3, BN-neck, bias-free classifier (METHODS.md 1.1)."""
    args = dict(arch="resnet50.tv_in1k", modality_specific="stem", non_local=True, non_local_quirk=True,
                gem_p=3.0, learn_gem_p=False, last_stride=1, bnneck=True)
    return VIReIDNet(**{**args, **kwargs})


@register_model
def vi_r50(**kwargs) -> VIReIDNet:
    """DAKD's single-stream ResNet-50: non-local (quirk), learnable GeM (init 3), BN-neck, no classifier by default
    (METHODS.md 2.3)."""
    args = dict(arch="resnet50.tv_in1k", modality_specific="none", non_local=True, non_local_quirk=True,
                gem_p=3.0, learn_gem_p=True, last_stride=1, bnneck=True, num_classes=0)
    return VIReIDNet(**{**args, **kwargs})


@register_model
def test_vi_resnet(**kwargs) -> VIReIDNet:
    """Tiny two-stem VI network on timm's `test_resnet` (one block per stage, 96-d output) with one non-local block
    in layer2 and layer3; for tests and CPU smoke runs (no pretrained weights exist)."""
    args = dict(arch="test_resnet", modality_specific="stem", non_local=True, non_local_quirk=True,
                gem_p=3.0, last_stride=1, bnneck=True)
    return VIReIDNet(**{**args, **kwargs})
