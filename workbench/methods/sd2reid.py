"""SD2-ReID as a workbench method: HMFE + DDM + HSLM on aligned RGB / NIR / TIR triplets (METHODS.md 4).

SD2-ReID (Yan, Gao, Bai, Chen, Sun, Sun, Chen; Neural Networks 198, 108719, 2026): multi-modal object ReID with no
fusion module and no extra inference cost. Only the abstract is public; the design (METHODS.md 4.1) and every
default below are INFERRED.

    python -m workbench train --method sd2reid --dataset synthetic-rgbnt --profile smoke
    python -m workbench train --method sd2reid --dataset synthetic-rgbnt method_options.masking=random

Loss terms (each logged separately, each switchable and weighted; the base terms are the TOP-ReID baseline's):

| term | switch | weight option | formula (workbench.losses.sd2reid) |
| --- | --- | --- | --- |
| `id`, `triplet` | always | `loss.id_weight`, `loss.triplet_weight` | baseline CE + soft triplet, per modality and on the concatenation |
| `sem_id` | `ddm` and `semantic_id` | `semantic_id_weight` | CE (shared classifier) + triplet on each semantic code |
| `sem_kd` | `ddm` and `semantic` | `semantic_weight`, `semantic_tau` (4) | KL to the stop-gradient modality consensus |
| `relation` | `ddm` and `relation` (off) | `relation_weight` | batch cosine-relation alignment across modalities |
| `style` | `ddm` and `style` | `style_weight` | decoder(style code) -> detached shallow token mean/std |
| `modality` | `ddm` and `modality` | `modality_weight` | modality CE on the style code |
| `orth` | `ddm` and `orth` | `orth_weight` (0.1) | squared cosine of semantic and style codes |
| `intra` | `hslm`, `intra`, masking != none | `intra_weight`, `intra_tau` (0.1) | InfoNCE masked vs unmasked CLS, per modality |
| `cross` | `hslm` and `cross` | `cross_weight`, `cross_tau` (0.1) | InfoNCE between modalities' semantic codes (CLS without DDM) |

Other options: `shared_depth` (HMFE's L_s, sets the backbone's `shared_depth`), `masking` ("attention" | "random" |
"none"), `mask_ratio` (0.3), `mask_gamma` (1), `shared_mask` (one mask for the three aligned images), `ddm`, `hslm`
(master switches). Synchronised crop/flip across the modalities is the data option `data.sync_geometry` (the
`sd2reid` profiles turn it on, baselines keep it off, METHODS.md 4.2).

Inference: `forward_eval` returns the concatenated BN(semantic codes) (`feats`) and per-modality branches of the
semantic codes; the style branch, the mask token and the second pass are training-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from workbench.config import Config, check_options, dataset_kind, option, parse_options
from workbench.losses import cross_entropy_loss
from workbench.losses import sd2reid as L
from workbench.methods.base import Method, register_method
from workbench.methods.baseline import Baseline, metric_loss, multimodal_identity_terms
from workbench.models.output import ReIDOutput
from workbench.models.sd2reid import MASKING_MODES, SD2ReIDNet, build_sd2reid, sample_patch_mask
from workbench.utils import unwrap_model


@dataclass(frozen=True)
class SD2Options:
    """SD2-ReID switches and weights (`cfg.method_options`); all defaults INFERRED (METHODS.md 4.1, 7)."""

    # HMFE L_s; None = `model.kwargs` or half the depth (6 of 12; 2 of test_mm_vit's 4)
    shared_depth: int | None = option(None, low=0, accepts="an integer >= 0, or none")
    ddm: bool = True                 # master switch of the semantic / style heads
    semantic_id: bool = True
    semantic_id_weight: float = option(1.0, low=0)
    semantic: bool = True
    semantic_weight: float = option(1.0, low=0)
    semantic_tau: float = option(4.0, low=1e-12, accepts="a number > 0")
    relation: bool = False           # optional batch-relation alignment
    relation_weight: float = option(1.0, low=0)
    style: bool = True
    style_weight: float = option(1.0, low=0)
    modality: bool = True
    modality_weight: float = option(1.0, low=0)
    orth: bool = True
    orth_weight: float = option(0.1, low=0)
    hslm: bool = True                # master switch of masking and both contrasts
    masking: str = option("attention", choices=MASKING_MODES)  # "attention" | "random" | "none"
    mask_ratio: float = option(0.3, low=0, high=1, accepts="a number in [0, 1)")
    mask_gamma: float = 1.0
    shared_mask: bool = True         # the three pixel-aligned modalities hide the same patches
    intra: bool = True
    intra_weight: float = option(1.0, low=0)
    intra_tau: float = option(0.1, low=1e-12, accepts="a number > 0")
    cross: bool = True
    cross_weight: float = option(1.0, low=0)
    cross_tau: float = option(0.1, low=1e-12, accepts="a number > 0")

    def __post_init__(self) -> None:
        check_options(self)
        if self.mask_ratio >= 1.0:
            raise ValueError(f"method_options.mask_ratio must be in [0, 1), got {self.mask_ratio}")

    @classmethod
    def from_config(cls, options: dict) -> SD2Options:
        """`cfg.method_options` checked and parsed (`workbench.config.parse_options`)."""
        return cls(**parse_options(options, cls, "sd2reid"))

    def active(self) -> dict[str, bool]:
        """Which optional terms are on."""
        d, h = self.ddm, self.hslm
        return {"sem_id": d and self.semantic_id, "sem_kd": d and self.semantic, "relation": d and self.relation,
                "style": d and self.style, "modality": d and self.modality, "orth": d and self.orth,
                "intra": h and self.intra and self.masking != "none" and self.mask_ratio > 0,
                "cross": h and self.cross}


@register_method("sd2reid")
class SD2ReID(Method):
    options_class = SD2Options

    def __init__(self) -> None:
        self.generator: torch.Generator | None = None

    def build_model(self, cfg: Config, num_classes: int) -> nn.Module:
        if dataset_kind(cfg.data.dataset) != "mm":
            raise ValueError(f"sd2reid trains on aligned RGB/NIR/TIR triplets; {cfg.data.dataset!r} is a "
                             "visible-infrared dataset (use 'synthetic-rgbnt', 'rgbnt201', 'rgbnt100' or 'msvr310')")
        opts = self.options(cfg)
        kwargs = self.model_kwargs(cfg)
        if opts.shared_depth is not None:
            kwargs["shared_depth"] = opts.shared_depth
        net = build_sd2reid(cfg.model.name, num_classes=num_classes, ddm=opts.ddm,
                            pretrained=self.pretrained_weights(cfg), **kwargs)
        half = net.backbone.depth // 2
        if "shared_depth" not in kwargs and net.backbone.shared_depth != half:  # HMFE default: half-shared
            net = build_sd2reid(cfg.model.name, num_classes=num_classes, ddm=opts.ddm,
                                pretrained=cfg.model.pretrained, **kwargs, shared_depth=half)
        return net

    def setup(self, model: nn.Module, cfg: Config, train_samples: list, device: torch.device) -> None:
        self.generator = torch.Generator().manual_seed(cfg.run.seed + 7)

    def training_losses(self, model: nn.Module, batch: dict[str, Any], cfg: Config) -> dict[str, Tensor]:
        net = unwrap_model(model)
        if not isinstance(net, SD2ReIDNet):
            raise ValueError(f"sd2reid needs the SD2ReIDNet built by its build_model, got {type(net).__name__}")
        opts = self.options(cfg)
        active = opts.active()
        device = next(model.parameters()).device
        lc = cfg.loss
        mods = list(net.modalities)
        missing = [m for m in mods if m not in batch]
        if missing:
            raise ValueError(f"sd2reid needs triplet batches with {mods}; the batch lacks {missing}")
        labels = batch["label"].to(device)
        camids = batch.get("camid")
        camids = camids.to(device) if camids is not None else None
        images = {m: batch[m].to(device, non_blocking=True) for m in mods}
        masking = opts.hslm and active["intra"]
        need_attn = masking and opts.masking == "attention"
        out = model(images, camids, with_attention=need_attn, with_style=opts.ddm)

        terms = base_terms(out, labels, mods, cfg)
        if opts.ddm:
            sems = [out.parts[f"sem_{m}"] for m in mods]
            if active["sem_id"] and net.sem_classifier is not None:
                parts = [cross_entropy_loss(out.parts[f"sem_logits_{m}"], labels, label_smoothing=lc.label_smoothing)
                         for m in mods]
                parts += [t for t in (metric_loss(s, labels, lc) for s in sems) if t is not None]
                terms["sem_id"] = opts.semantic_id_weight * torch.stack(parts).sum()
            if active["sem_kd"] and net.sem_classifier is not None:
                terms["sem_kd"] = opts.semantic_weight * L.semantic_distillation_loss(
                    [out.parts[f"sem_logits_{m}"] for m in mods], tau=opts.semantic_tau)
            if active["relation"]:
                terms["relation"] = opts.relation_weight * L.batch_relation_loss(sems)
            if active["style"]:
                terms["style"] = opts.style_weight * torch.stack([
                    L.style_distillation_loss(out.parts[f"sty_pred_{m}"],
                                              L.token_statistics(out.parts[f"shared_tokens_{m}"][:, 1:].detach()))
                    for m in mods]).sum()
            if active["modality"]:
                mod_terms = [cross_entropy_loss(out.parts[f"mod_logits_{m}"],
                                                torch.full_like(labels, i), label_smoothing=0.0)
                             for i, m in enumerate(mods)]
                terms["modality"] = opts.modality_weight * torch.stack(mod_terms).sum()
            if active["orth"]:
                terms["orth"] = opts.orth_weight * torch.stack([
                    L.orthogonality_loss(out.parts[f"sem_{m}"], out.parts[f"sty_{m}"]) for m in mods]).sum()
        if masking:
            attn = out.attn if out.attn is not None else torch.ones(labels.shape[0], len(mods), _num_patches(net))
            mask = sample_patch_mask(attn, opts.mask_ratio, opts.masking, shared=opts.shared_mask,
                                     gamma=opts.mask_gamma, generator=self._generator(cfg))
            masked = model(images, camids, patch_mask=mask, with_style=False)
            terms["intra"] = opts.intra_weight * L.intra_modal_contrastive_loss(
                [out.parts[f"cls_{m}"] for m in mods], [masked.parts[f"cls_{m}"] for m in mods], labels,
                tau=opts.intra_tau)
        if active["cross"]:
            key = "sem" if opts.ddm else "cls"
            terms["cross"] = opts.cross_weight * L.cross_modal_contrastive_loss(
                [out.parts[f"{key}_{m}"] for m in mods], labels, tau=opts.cross_tau)
        return terms

    def _generator(self, cfg: Config) -> torch.Generator:
        if self.generator is None:  # training_losses called without setup (notebooks, tests)
            self.generator = torch.Generator().manual_seed(cfg.run.seed + 7)
        return self.generator

    def forward_eval(self, model: nn.Module, images: dict[str, Tensor], modality: str | None,
                     camids: Tensor | None = None) -> ReIDOutput:
        return model(images, camids=camids, with_style=False)

    def retrieval_branches(self, out: ReIDOutput) -> dict[str, Tensor]:
        """`feats` (the concatenated BN semantic codes, or CLS without DDM) and one branch per modality."""
        branches = {"feats": out.feats}
        for key, value in out.parts.items():
            if key.startswith("sem_") and not key.startswith("sem_logits_"):
                branches[key.removeprefix("sem_")] = value
        if len(branches) == 1:  # no DDM: the CLS features, like the baseline
            return Baseline().retrieval_branches(out)
        return branches


def base_terms(out: ReIDOutput, labels: Tensor, mods: list[str], cfg: Config) -> dict[str, Tensor]:
    """The TOP-ReID baseline's terms (`id`, `triplet`), on the heads `cfg.loss.mm_heads` names, exactly as
    `Baseline.training_losses` computes them."""
    return multimodal_identity_terms(out, labels, mods, cfg.loss)


def _num_patches(net: SD2ReIDNet) -> int:
    return net.backbone.grid_size[0] * net.backbone.grid_size[1]
