"""Visible-infrared CNN re-identification network in the AGW convention, on a timm ResNet.

AGW (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021)
[CODE: mangye16/Cross-Modal-Re-ID-baseline, model.py::embed_net]: ResNet-50 with last stride 1, a visible and an
infrared copy of the stem (conv1..maxpool), shared layer1-4, non-local blocks after the last 2 bottlenecks of layer2
and the last 3 of layer3, GeM (p=3), BN-neck, bias-free classifier on the BN feature. METHODS.md section 1.1.

DAKD's network (`vi_r50`, METHODS.md 2.3) [CODE: Fouroy4/DAKD, model.py + resnet.py] is the same trunk as one
stream (no modality-specific stem; the modality argument is ignored), with a learnable GeM exponent and no classifier.

The same network runs on a timm EfficientNet trunk (`agw_lite0`, `vi_lite0`: EfficientNet-Lite0, whose ImageNet
weights install offline, `workbench.models.imagenet`): its blocks are grouped into five stages that end at timm's
feature levels, so "stem", "layer1".."layer4" keep their strides and their meaning (`efficientnet_stages`).
`modality_bn="per_modality"` gives every BatchNorm of the shared stages one set of statistics per modality
(`layers.ModalityBatchNorm2d`); the default "shared" is what the AGW, MCE and DAKD code do.

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

from .imagenet import LITE0_ARCH, LITE0_MEAN_STD
from .layers import (
    BNNeck,
    GeM,
    InputNorm,
    ModalityRouter,
    NonLocal,
    bias_free_classifier,
    convert_modality_bn,
)
from .output import ReIDOutput
from .pretrained import finish_pretrained, load_state_dict_into, resolve_pretrained
from .registry import register_model

STAGES: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4")
SPLIT_POINTS: tuple[str, ...] = ("none",) + STAGES
NUM_MODALITIES = 2  # 0 = rgb (visible), 1 = ir (infrared)
MODALITY_BN = ("shared", "per_modality")
# What the workbench's visible-infrared transforms feed every CNN (workbench.data.transforms.IMAGENET_MEAN/STD).
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class Stage(nn.Module):
    """A trunk stage (timm ResNet `layerK`, or a group of EfficientNet blocks) with optional non-local blocks after
    chosen blocks.

    Args:
        blocks: the stage's blocks (timm's `nn.Sequential` for a ResNet, keeping timm's parameter names).
        non_local_after: 0-indexed block positions followed by a `NonLocal`.
        channels: output channels of the stage (ResNet), or of each block (EfficientNet groups).
        quirk: `NonLocal` one-channel quirk (see `NonLocal`).
    """

    def __init__(self, blocks: nn.Sequential, non_local_after: tuple[int, ...] = (),
                 channels: int | tuple[int, ...] = 0, quirk: bool = True) -> None:
        super().__init__()
        self.blocks = blocks
        per_block = (channels,) * len(blocks) if isinstance(channels, int) else tuple(channels)
        self.non_local = nn.ModuleDict({str(i): NonLocal(per_block[i], quirk=quirk) for i in non_local_after})

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


def _trunk_family(backbone: nn.Module, arch: str) -> str:
    """"resnet" or "efficientnet" for a timm backbone; a clear error for anything else."""
    if all(hasattr(backbone, n) for n in ("conv1", "bn1", "act1", "maxpool", *STAGES[1:])):
        return "resnet"
    if all(hasattr(backbone, n) for n in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")):
        return "efficientnet"
    raise ValueError(f"arch={arch!r} is neither a timm ResNet-family nor an EfficientNet-family model; use e.g. "
                     f"'resnet50', 'resnet18', 'test_resnet' or {LITE0_ARCH!r}")


def _non_local_after(n_blocks: int, count: int, enabled: bool) -> tuple[int, ...]:
    """AGW's placement: non-local blocks after the last `count` blocks of a stage (clipped to its length)."""
    n = min(count, n_blocks) if enabled else 0
    return tuple(range(n_blocks - n, n_blocks))


def resnet_stages(backbone: nn.Module, non_local: bool, non_local_layers: tuple[int, ...], quirk: bool,
                  last_stride: int) -> tuple[dict[str, nn.Module], dict[str, int]]:
    """A timm ResNet as the five AGW stages: stem (conv1..maxpool), layer1..layer4 (+ non-local blocks).

    Returns:
        ({stage: module}, {stage: output channels}), in `STAGES` order.
    """
    if last_stride == 1:
        _remove_last_stride(backbone.layer4)
    channels = [info["num_chs"] for info in backbone.feature_info]  # act1, layer1..layer4
    stages: dict[str, nn.Module] = {
        "stem": nn.Sequential(backbone.conv1, backbone.bn1, backbone.act1, backbone.maxpool)}
    for k in range(4):
        layer = getattr(backbone, f"layer{k + 1}")
        after = _non_local_after(len(layer), non_local_layers[k], non_local)
        stages[f"layer{k + 1}"] = Stage(layer, after, channels[k + 1], quirk=quirk)
    return stages, dict(zip(STAGES, channels))


def _out_channels(block: nn.Module) -> int:
    """Output channels of an EfficientNet block: those of its last convolution."""
    return [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def efficientnet_stages(backbone: nn.Module, non_local: bool, non_local_layers: tuple[int, ...], quirk: bool,
                        last_stride: int) -> tuple[dict[str, nn.Module], dict[str, int]]:
    """A timm EfficientNet as five stages that end where timm's feature pyramid reads its levels.

    timm reads EfficientNet-Lite0's features after block groups 0, 1, 2, 4 and 6 (strides 2, 4, 8, 16, 32); the
    stages end there, so "layer1".."layer4" sit at the strides of a ResNet's layer1..layer4 and keep their names:

        stem   conv_stem + bn1 + blocks.0   16 ch, stride 2  (everything before the first expanded block)
        layer1 blocks.1                     24 ch, stride 4
        layer2 blocks.2                     40 ch, stride 8
        layer3 blocks.3 + blocks.4         112 ch, stride 16
        layer4 blocks.5 + blocks.6 + head 1280 ch, stride 32 (16 with last_stride=1); head = conv_head + bn2

    Non-local blocks follow the last `non_local_layers[k]` blocks of layer k+1 (AGW's (0, 2, 3, 0): both blocks
    of layer2, the three blocks of blocks.4 in layer3). last_stride=1 makes the first block of blocks.5 stride 1,
    as AGW does for ResNet-50's layer4 (no dilation).

    Returns:
        ({stage: module}, {stage: output channels}), in `STAGES` order.
    """
    ends = [int(info["module"].split(".")[1]) for info in backbone.feature_info]
    if len(ends) != len(STAGES):
        raise ValueError(f"expected {len(STAGES)} feature levels in the EfficientNet, got {backbone.feature_info}")
    groups = [list(range(0, ends[0] + 1))] + [list(range(ends[k - 1] + 1, ends[k] + 1)) for k in range(1, 5)]
    if last_stride == 1:
        _remove_last_stride(backbone.blocks[groups[4][0]])
    flat = [[block for g in group for block in backbone.blocks[g]] for group in groups]
    stages: dict[str, nn.Module] = {"stem": nn.Sequential(backbone.conv_stem, backbone.bn1, *flat[0])}
    channels = {"stem": _out_channels(flat[0][-1])}
    for k in range(1, 5):
        blocks = flat[k] + ([nn.Sequential(backbone.conv_head, backbone.bn2)] if k == 4 else [])
        per_block = tuple(_out_channels(b) for b in blocks)
        after = _non_local_after(len(blocks), non_local_layers[k - 1], non_local)
        stages[STAGES[k]] = Stage(nn.Sequential(*blocks), after, per_block, quirk=quirk)
        channels[STAGES[k]] = per_block[-1]
    return stages, channels


TRUNKS = {"resnet": resnet_stages, "efficientnet": efficientnet_stages}


class VIReIDNet(nn.Module):
    """AGW-style visible-infrared network; returns a `ReIDOutput` in training and in evaluation.

    Args:
        arch: timm ResNet-family name, optionally with a weight tag ("resnet50.tv_in1k" = AGW's torchvision weights),
            or an EfficientNet ("tf_efficientnet_lite0"; stages as `efficientnet_stages` lists them).
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
        pretrained: None, True (timm weights for `arch`, online only), "imagenet-lite0" (offline ImageNet weights
            of the Lite0 models, `workbench.models.imagenet`) or a path to a .safetensors/.pth file with timm keys;
            loaded before the stem is duplicated, so both stems start equal (AGW).
        timm_kwargs: extra arguments for `timm.create_model` (e.g. `layers=(1, 1, 1, 1)` for a small ResNet).
        modality_bn: "shared" (one BatchNorm for both modalities, as the AGW, MCE and DAKD code) or "per_modality"
            (every BatchNorm of the shared stages keeps batch and running statistics per modality, one affine:
            `layers.ModalityBatchNorm2d`); needs `modality` in every forward.
        input_mean_std: (mean, std) the trunk's weights expect on 0-1 pixels when it is not the ImageNet
            normalisation the workbench's transforms apply; the input is re-normalised to it (`layers.InputNorm`).
            The Lite0 models pass TF EfficientNet-Lite's (`imagenet.LITE0_MEAN_STD`).
        frozen_stages: how many leading stages ("stem", "layer1", ...) keep their pre-trained weights: no gradient
            (so no backward pass through them) and their BatchNorms stay in eval mode (the pre-trained statistics).
            A CPU economy of the demo regime study [INFERRED, our choice; the references train every stage]; with the
            stem frozen, both stems of a two-stem network stay the pre-trained one.

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
                 pretrained: bool | str | None = None, timm_kwargs: dict | None = None,
                 modality_bn: str = "shared", input_mean_std: tuple | None = None, frozen_stages: int = 0) -> None:
        super().__init__()
        if not 0 <= frozen_stages <= len(STAGES):
            raise ValueError(f"frozen_stages must be between 0 and {len(STAGES)} (stages {STAGES}), got {frozen_stages}")
        if modality_specific not in SPLIT_POINTS:
            raise ValueError(f"modality_specific must be one of {SPLIT_POINTS}, got {modality_specific!r}")
        if modality_bn not in MODALITY_BN:
            raise ValueError(f"modality_bn must be one of {MODALITY_BN} ('shared' = one BatchNorm as in AGW/DAKD), "
                             f"got {modality_bn!r}")
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
        self.trunk = _trunk_family(backbone, arch)
        resolved = resolve_pretrained(pretrained, arch, backbone)
        backbone_report = load_state_dict_into(backbone, *resolved, warn=False) if resolved else None
        stages, self.stage_channels = TRUNKS[self.trunk](backbone, non_local, tuple(non_local_layers),
                                                         non_local_quirk, last_stride)
        self.input_norm = InputNorm(*input_mean_std, *IMAGENET_MEAN_STD) if input_mean_std is not None else None

        n_specific = SPLIT_POINTS.index(modality_specific)
        specific = STAGES[:n_specific]
        self.specific = nn.ModuleList(
            [nn.ModuleDict({s: (stages[s] if m == 0 else copy.deepcopy(stages[s])) for s in specific})
             for m in range(NUM_MODALITIES)] if specific else [])
        self.shared = nn.ModuleDict({s: stages[s] for s in STAGES[n_specific:]})
        self.modality_bn = modality_bn
        self.modality_router = ModalityRouter(NUM_MODALITIES) if modality_bn == "per_modality" else None
        if self.modality_router is not None:  # the modality-specific stages already see one modality each
            convert_modality_bn(self.shared, self.modality_router)

        self.feat_dim = self.stage_channels["layer4"]
        self.pool = GeM(gem_p, learn_p=learn_gem_p)
        self.bnneck = BNNeck(self.feat_dim) if bnneck else None
        self.classifier = bias_free_classifier(self.feat_dim, num_classes) if num_classes > 0 else None
        self.load_report = finish_pretrained(self, resolved, backbone_report)  # checks how much was filled
        self.frozen_stages = frozen_stages
        for module in self._frozen_modules():
            module.requires_grad_(False)
        self.train(self.training)

    def _frozen_modules(self) -> list[nn.Module]:
        frozen = set(STAGES[:self.frozen_stages])
        mods = [stage for copies in self.specific for name, stage in copies.items() if name in frozen]
        return mods + [stage for name, stage in self.shared.items() if name in frozen]

    def train(self, mode: bool = True) -> VIReIDNet:
        """`nn.Module.train`, with the frozen stages kept in eval mode (their pre-trained BatchNorm statistics)."""
        super().train(mode)
        for module in self._frozen_modules() if getattr(self, "frozen_stages", 0) else ():
            module.eval()
        return self

    @property
    def two_stream(self) -> bool:
        """Whether some stages have one copy per modality."""
        return len(self.specific) > 0

    def _check_inputs(self, images: Tensor, modality: Tensor | None) -> Tensor | None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        if modality is None:
            if self.two_stream or self.modality_router is not None:
                setting = (f"modality_specific={self.modality_specific!r}" if self.two_stream
                           else f"modality_bn={self.modality_bn!r}")
                raise ValueError(
                    f"modality is required when {setting}: pass a (B,) long tensor with 0 for visible (rgb) and 1 "
                    "for infrared samples")
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
        if self.input_norm is not None:
            images = self.input_norm(images)
        if self.modality_router is None:
            return self._run_stages(images, modality)
        self.modality_router.route(modality)
        try:
            return self._run_stages(images, modality)
        finally:
            self.modality_router.clear()

    def _run_stages(self, images: Tensor, modality: Tensor | None) -> dict[str, Tensor]:
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


# EfficientNet-Lite0 trunk: timm's Lite0 with TF's BatchNorm epsilon and padding (the conventions its offline
# ImageNet weights were trained with, `workbench.models.imagenet`), fed TF-Lite's input normalisation.
LITE0_TRUNK = dict(arch=LITE0_ARCH, input_mean_std=LITE0_MEAN_STD)


@register_model
def agw_lite0(**kwargs) -> VIReIDNet:
    """AGW-style two-stem network on EfficientNet-Lite0 (3.4 M parameters in the trunk, 1280-d feature); ImageNet
    weights offline with pretrained="imagenet-lite0".

    Modality-specific: the stem only, which on Lite0 is conv_stem + bn1 + blocks.0 (the 3x3 stride-2 convolution and
    the depthwise-separable block at stride 2, 16 channels; `efficientnet_stages`). AGW duplicates ResNet-50's
    conv1..maxpool and shares layer1 on [CODE: mangye16/Cross-Modal-Re-ID-baseline, model.py::visible_module /
    thermal_module]: low-level filters and their BatchNorm statistics absorb what differs between a colour and an
    infrared image (channel correlations, contrast, texture energy), while the identity structure built from them is
    shared. The Lite0 stem is the same cut: everything before the first feature level timm reads (stride 2),
    i.e. before the first expanded (inverted-residual) block. Rest as AGW: non-local blocks (one-channel quirk)
    after both blocks of layer2 and the last three of layer3, GeM p=3, BN-neck, bias-free classifier, last stride 1
    (an 8x4 final map at 128x64 instead of 4x2)."""
    args = dict(**LITE0_TRUNK, modality_specific="stem", non_local=True, non_local_quirk=True, gem_p=3.0,
                learn_gem_p=False, last_stride=1, bnneck=True)
    return VIReIDNet(**{**args, **kwargs})


@register_model
def vi_lite0(**kwargs) -> VIReIDNet:
    """DAKD's single-stream network (the MCE teacher and the DAKD student, METHODS.md 2.3) on EfficientNet-Lite0:
    modality ignored, non-local (quirk), learnable GeM (init 3), BN-neck, no classifier by default, last stride 1."""
    args = dict(**LITE0_TRUNK, modality_specific="none", non_local=True, non_local_quirk=True, gem_p=3.0,
                learn_gem_p=True, last_stride=1, bnneck=True, num_classes=0)
    return VIReIDNet(**{**args, **kwargs})
