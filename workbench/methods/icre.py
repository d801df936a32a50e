"""ICRE as a workbench method: the network of `workbench.models.icre`, its losses, every module switchable.

ICRE (Identity Clue Refinement and Enhancement, arXiv 2512.04522; METHODS.md section 3). No code is public: the
module names and their roles are [PAPER-ABS], the MPFR/SDCE outlines [SECONDARY], every formula and constant here
INFERRED (METHODS.md 3.2, 3.3). The loss of one visible-infrared batch (one forward of [visible; infrared]):

    L = sum_{h in heads} [ CE(z_h) + L_tri(f_h) ]  +  sd_weight L_sd  +  icg_weight (L_centre + L_margin)

heads = enhanced (always), shallow clue (with MPFR), global (with `global_head`); CE / triplet follow `cfg.loss`
(WRT triplet on the pre-BN pooled feature, as the AGW baseline). `L_sd` distils the shallow-clue logits into the
enhanced ones, the ICG terms act on the L2-normalised enhanced feature f_e (`workbench.losses.icre`).

    python -m workbench train --method icre --dataset synthetic-vi --profile smoke
    python -m workbench train --method icre --dataset sysu-mm01 --profile paper method_options.sdce_stages=1

`cfg.method_options` keys (METHODS.md section 7 toggles; every default INFERRED unless marked)

| key | default | meaning |
| --- | --- | --- |
| `ablation` | "full" | preset of the switches below: "baseline" (everything off = the AGW computation), "mpfr" (+MPFR), "mpfr_sdce" (+MPFR+SDCE with distillation), "icg" (baseline + ICG), "full"; explicit keys override it |
| `mpfr` | True | MPFR and the shallow-clue head; False also turns SDCE and distillation off |
| `stage_set` | "layer1-3" | the two readings of the digests' "stages 2-4": "layer1-3" (stem = stage 1) or "layer2-4" |
| `mpfr_masks` | True | learned spatial masks (False: masks fixed at 1) |
| `sdce_stages` | 2 | 0 none, 1 cross-attention, 2 cross- then self-attention ([SECONDARY]: "two-stage") |
| `distill` | True | the semantic distillation term `sd` (needs MPFR) |
| `temperature` | 4.0 | its temperature T (METHODS.md: sweep {1, 2, 4}) |
| `distill_direction` | "one_way" | "one_way" (shallow -> enhanced) or "mutual" (IDKL-style symmetric KL) |
| `sd_weight` | 1.0 | lambda_sd |
| `icg_centre`, `icg_margin` | True, True | the two ICG terms |
| `icg_weight`, `icg_rho` | 1.0, 0.3 | lambda_icg and the margin rho |
| `global_head` | False | the plain F4 head (its CE + triplet are added to the loss) |
| `inference` | "enhanced" | retrieval feature: "enhanced" or "enhanced+global" (needs `global_head`) |
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from workbench.config import Config, check_options, option, parse_options
from workbench.losses import cross_entropy_loss
from workbench.losses.icre import SD_DIRECTIONS, icg_centre_loss, icg_margin_loss, semantic_distillation_loss
from workbench.methods.base import Method, register_method
from workbench.methods.baseline import metric_loss, vi_batch
from workbench.models.icre import INFERENCE_FEATS, STAGE_SETS
from workbench.models.output import ReIDOutput

# The ablation grid of METHODS.md 3.4: baseline / +MPFR / +MPFR+SDCE / +ICG / full.
ABLATIONS: dict[str, dict[str, Any]] = {
    "baseline": dict(mpfr=False, sdce_stages=0, distill=False, icg_centre=False, icg_margin=False),
    "mpfr": dict(sdce_stages=0, distill=False, icg_centre=False, icg_margin=False),
    "mpfr_sdce": dict(icg_centre=False, icg_margin=False),
    "icg": dict(mpfr=False, sdce_stages=0, distill=False),
    "full": {},
}


@dataclass(frozen=True)
class ICREOptions:
    """ICRE's `cfg.method_options` (see the module docstring). Model switches go to the network, the rest to the
    loss; `ablation` is a preset of the switches, which explicit keys override (`icre_options`)."""

    ablation: str = option("full", choices=tuple(ABLATIONS))
    mpfr: bool = True
    stage_set: str = option("layer1-3", choices=tuple(STAGE_SETS))  # the two readings of "stages 2-4"
    mpfr_masks: bool = True
    sdce_stages: int = option(2, choices=(0, 1, 2))  # 0 none, 1 cross-attention, 2 cross- then self-attention
    global_head: bool = False
    inference: str = option("enhanced", choices=INFERENCE_FEATS)
    distill: bool = True
    temperature: float = option(4.0, low=1e-12, accepts="a number > 0")  # METHODS.md: sweep {1, 2, 4}
    distill_direction: str = option("one_way", choices=SD_DIRECTIONS)
    sd_weight: float = option(1.0, low=0)
    icg_centre: bool = True
    icg_margin: bool = True
    icg_weight: float = option(1.0, low=0)
    icg_rho: float = option(0.3, low=0)

    def __post_init__(self) -> None:
        check_options(self)

    def model_kwargs(self) -> dict[str, Any]:
        return dict(mpfr=self.mpfr, stage_set=self.stage_set, mpfr_masks=self.mpfr_masks,
                    sdce_stages=self.sdce_stages, global_head=self.global_head, inference=self.inference)


MODEL_FIELDS = ("mpfr", "stage_set", "mpfr_masks", "sdce_stages", "global_head", "inference")


def icre_options(options: dict) -> ICREOptions:
    """Resolve `cfg.method_options` into `ICREOptions`: every key checked and parsed (`parse_options`: unknown keys,
    types, choices, ranges), then the ablation preset, the explicit keys over it, and the consequences of
    `mpfr=False`.

    Raises:
        ValueError: an unknown key, a bad value, or an explicit contradiction (e.g. `mpfr=False` with
            `sdce_stages=2`).
    """
    explicit = parse_options(options, ICREOptions, "icre")
    values = {f.name: f.default for f in dataclasses.fields(ICREOptions)}
    values.update(ABLATIONS[explicit.get("ablation", "full")])
    values.update(explicit)
    if not values["mpfr"]:
        for key, off in (("sdce_stages", 0), ("distill", False)):
            if explicit.get(key, off) != off:
                raise ValueError(f"method_options: {key}={explicit[key]!r} needs mpfr=True (SDCE and the "
                                 "distillation use MPFR's shallow map); drop it or set mpfr=true")
            values[key] = off
    return ICREOptions(**values)


@register_method("icre")
class ICRE(Method):
    """ICRE training: CE + triplet per head, semantic distillation, ICG loss (METHODS.md 3.2)."""

    options_class = ICREOptions

    def options(self, cfg: Config | dict) -> ICREOptions:
        """`cfg.method_options` resolved by `icre_options` (ablation preset, then explicit keys)."""
        return icre_options(cfg.method_options if isinstance(cfg, Config) else cfg)

    def build_model(self, cfg: Config, num_classes: int) -> nn.Module:
        from workbench.models import ICRENet

        hint = f"method 'icre' needs an ICRE network, model.name={cfg.model.name!r} is not one; use 'icre_r50' or " \
               "'test_icre_resnet'"
        try:
            model = super().build_model(cfg, num_classes)
        except TypeError as err:  # another network refuses the ICRE switches
            raise ValueError(f"{hint} ({err})") from err
        if not isinstance(model, ICRENet):
            raise ValueError(hint)
        return model

    def model_kwargs(self, cfg: Config) -> dict[str, Any]:
        kwargs = super().model_kwargs(cfg)
        for key, value in self.options(cfg).model_kwargs().items():
            kwargs.setdefault(key, value)
        return kwargs

    def training_losses(self, model: nn.Module, batch: dict[str, Any], cfg: Config) -> dict[str, Tensor]:
        if "ir" not in batch:
            raise ValueError(f"ICRE trains on visible-infrared pair batches with 'rgb' and 'ir' images; got keys "
                             f"{sorted(batch)}. Use a visible-infrared dataset (e.g. 'synthetic-vi', 'sysu-mm01').")
        device = next(model.parameters()).device
        images, modality, labels = vi_batch(batch, device)
        out = model(images, modality)
        return icre_loss_terms(out, labels, modality, cfg, self.options(cfg))

    def retrieval_branches(self, out: ReIDOutput) -> dict[str, Tensor]:
        """"feats" (the configured retrieval feature) plus "enhanced", "shallow" and "global" BN features."""
        branches = {"feats": out.feats, "enhanced": out.parts["bn"]}
        if "bn_s" in out.parts:
            branches["shallow"] = out.parts["bn_s"]
        if "bn_g" in out.parts:
            branches["global"] = out.parts["bn_g"]
        return branches


def icre_loss_terms(out: ReIDOutput, labels: Tensor, modality: Tensor, cfg: Config,
                    opts: ICREOptions) -> dict[str, Tensor]:
    """Weighted loss terms of one forward.

    Args:
        out: the ICRE network's output for a [visible; infrared] batch.
        labels: (B,) identity labels.
        modality: (B,) 0 / 1.
        cfg: the run config (`cfg.loss` for CE and triplet).
        opts: resolved ICRE switches.

    Returns:
        {"id", "triplet"} for the enhanced head, "id_s"/"triplet_s" (shallow head), "id_g"/"triplet_g" (global
        head), "sd", "icg_centre", "icg_margin" when switched on and available.
    """
    lc = cfg.loss
    terms: dict[str, Tensor] = {}
    heads = [("", out.logits, out.pooled)]
    if "logits_s" in out.parts:
        heads.append(("_s", out.parts["logits_s"], out.parts["pooled_s"]))
    if "logits_g" in out.parts:
        heads.append(("_g", out.parts["logits_g"], out.parts["pooled_g"]))
    for suffix, logits, pooled in heads:
        if logits is None:
            raise ValueError("ICRE needs identity classifiers: build the model with num_classes > 0")
        terms[f"id{suffix}"] = lc.id_weight * cross_entropy_loss(logits, labels, label_smoothing=lc.label_smoothing)
        tri = metric_loss(pooled, labels, lc)
        if tri is not None:
            terms[f"triplet{suffix}"] = lc.triplet_weight * tri
    if opts.distill and opts.sd_weight and "logits_s" in out.parts:
        terms["sd"] = opts.sd_weight * semantic_distillation_loss(
            out.logits, out.parts["logits_s"], opts.temperature, opts.distill_direction)
    if opts.icg_centre and opts.icg_weight:
        terms["icg_centre"] = opts.icg_weight * icg_centre_loss(out.pooled, labels, modality)
    if opts.icg_margin and opts.icg_weight:
        terms["icg_margin"] = opts.icg_weight * icg_margin_loss(out.pooled, labels, modality, margin=opts.icg_rho)
    return terms

