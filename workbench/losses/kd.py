"""DAKD's distillation losses: multi-temperature KD with logit standardisation, confidence masks, and the
instance- and class-level terms of the student (METHODS.md 2.5).

DAKD (Dual-Aligned Knowledge self-Distillation, KBS 330, 114525, 2025) trains a student with distillation only.
Its loss file [CODE: Fouroy4/DAKD, MLKD.py] is a port of multi-level logit distillation with logit standardisation
[CODE: sunshangquan/logit-standardization-KD, mdistiller/distillers/MLKD.py]. With `a` the student and `b` the teacher
"logits" of one view, `LS` the per-row z-score and `T` a temperature:

    KD_T(a, b)   = T^2 (1/B) sum_i KL( softmax(LS(b_i)/T) || softmax(LS(a_i)/T) )
    instance     : a = student BN output (B, D), b = L2-normalised teacher BN output (B, D)
    class        : a^c = a C^T / tau_c, b^c = b C^T / tau_c with the teacher's per-identity prototypes C (N_c, D)
    L_inst_weak  = w sum_T maskedKD_T(a_r, b_r; M)             (infrared view, masked)
    L_inst_strong= w sum_T KD_T(a_v, b_v)                        (visible view; T=2, 6 on the infrared pair: quirk)
    L_DAKD       = lambda (L_inst_weak + L_inst_strong) + (1 - lambda) (L_cls_weak + L_cls_strong)

Paper versus public code (every difference is a switch of `DAKDLossConfig`; defaults reproduce the code):

| switch                     | code (default)                       | paper / clean reading            |
| -------------------------- | ------------------------------------ | -------------------------------- |
| `mask_mode`                | "le": keep conf <= median            | "gt": keep confident half; "none"|
| `mask_granularity`         | "scalar": batch-mean KD x mean(M)    | "per_sample": (1/B) sum_i M_i KL_i |
| `strong_uses_weak_for_T26` | True: T=2, 6 of the strong sums use the infrared pair | False: all T on the visible pair |
| `ablation`                 | "full" (code `full_mlkd`)            | "only_kd", "no_instance", "no_class" |
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.config import check_options, option
from workbench.data.samples import INFRARED, VISIBLE

from ._checks import check_modality

MASK_MODES = ("le", "gt", "none")
MASK_GRANULARITIES = ("scalar", "per_sample")
ABLATIONS = ("full", "only_kd", "no_instance", "no_class")
# The public code's ablation names [CODE: Fouroy4/DAKD, train.py::get_ablation_config] -> ours.
ABLATION_ALIASES = {"full_mlkd": "full", "mlkd_no_instance": "no_instance", "mlkd_no_class": "no_class"}
# Temperatures whose "strong" (visible) term is computed on the infrared pair in the public code (MLKD quirk).
QUIRK_TEMPERATURES = (2.0, 6.0)
STD_EPS = 1e-7


def _check_logits(x: Tensor, name: str) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (B, K) logits, got shape {tuple(x.shape)}")


def _check_pair(student: Tensor, teacher: Tensor) -> None:
    _check_logits(student, "student")
    _check_logits(teacher, "teacher")
    if student.shape != teacher.shape:
        raise ValueError(f"student and teacher logits must have the same shape, got {tuple(student.shape)} and "
                         f"{tuple(teacher.shape)}")
    if student.shape[1] < 2:
        raise ValueError(f"logits need at least 2 columns for a softmax and a standard deviation, got {student.shape[1]}")


def logit_standardize(z: Tensor) -> Tensor:
    """Per-row z-score `(z - mean) / (std + 1e-7)` ("logit standardisation").

    The standard deviation is torch's default *unbiased* one (divisor K - 1), as in the public code
    [CODE: Fouroy4/DAKD, MLKD.py::normalize] (`logit.std(dim=-1)`), itself from
    [CODE: sunshangquan/logit-standardization-KD, mdistiller/distillers/KD.py::normalize].

    Args:
        z: (B, K) logits.

    Returns:
        (B, K) standardised logits.
    """
    _check_logits(z, "z")
    mean = z.mean(dim=-1, keepdim=True)
    std = z.std(dim=-1, keepdim=True)  # unbiased, as the public code
    return (z - mean) / (std + STD_EPS)


def kd_loss(student: Tensor, teacher: Tensor, temperature: float, *, standardize: bool = True,
            reduce: bool = True) -> Tensor:
    """Temperature-scaled KL distillation `T^2 KL(softmax(LS(b)/T) || softmax(LS(a)/T))`, summed over classes.

    [CODE: Fouroy4/DAKD, MLKD.py::kd_loss]: `F.kl_div(log_softmax(a/T), softmax(b/T), reduction="none").sum(1)`,
    mean over the batch when `reduce`, times T^2.

    Args:
        student: (B, K) student logits `a` (gradients flow).
        teacher: (B, K) teacher logits `b` (treated as a target; detach it yourself if it carries gradients).
        temperature: T > 0.
        standardize: apply `logit_standardize` to both sides first (DAKD: True).
        reduce: mean over the batch (scalar); False returns the per-sample vector (B,).

    Returns:
        scalar, or (B,) when `reduce=False`.
    """
    _check_pair(student, teacher)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if standardize:
        student, teacher = logit_standardize(student), logit_standardize(teacher)
    log_p_student = F.log_softmax(student / temperature, dim=1)
    p_teacher = F.softmax(teacher / temperature, dim=1)
    per_sample = F.kl_div(log_p_student, p_teacher, reduction="none").sum(1) * temperature ** 2  # (B,)
    return per_sample.mean() if reduce else per_sample


def confidence_mask(teacher_logits: Tensor, mode: str = "le") -> Tensor:
    """DAKD's confidence mask: which samples' teacher prediction is (un)confident relative to the batch median.

    `conf_i = max_k softmax(b_i)_k` (no temperature, no standardisation) and the threshold is the batch median with
    linear interpolation (`np.percentile(conf, 50)` in [CODE: Fouroy4/DAKD, MLKD.py::MLKD.forward]).

    Args:
        teacher_logits: (B, K) teacher logits of the infrared view.
        mode: "le" keeps `conf <= median` (the code, the less confident half), "gt" keeps `conf > median` (the
            abstract: "towards confident ... teacher predictions"; commented out in the code), "none" keeps all.

    Returns:
        (B,) float mask of 0/1.
    """
    _check_logits(teacher_logits, "teacher_logits")
    if mode not in MASK_MODES:
        raise ValueError(f"mode must be one of {MASK_MODES} ('le': code, 'gt': paper, 'none'), got {mode!r}")
    if mode == "none":
        return teacher_logits.new_ones(teacher_logits.shape[0])
    logits = teacher_logits.detach()
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    conf = F.softmax(logits, dim=1).max(dim=1).values  # (B,)
    threshold = torch.quantile(conf, 0.5)  # linear interpolation, as np.percentile
    keep = conf.le(threshold) if mode == "le" else conf.gt(threshold)
    return keep.to(teacher_logits.dtype)


def masked_kd(student: Tensor, teacher: Tensor, temperature: float, mask: Tensor, *,
              granularity: str = "scalar", standardize: bool = True) -> Tensor:
    """KD restricted by a per-sample mask.

    * "scalar" (the public code): `kd_loss` is called with its default `reduce=True`, then `(scalar * mask).mean()`,
      i.e. `KD_T(a, b) * mean(M)`: a constant weight, no per-sample selection (METHODS.md 2.5, item 1).
    * "per_sample" (the intended selection, `reduce=False` in the code's comment): `T^2 (1/B) sum_i M_i KL_i`.

    Args:
        student, teacher: (B, K) logits.
        temperature: T.
        mask: (B,) 0/1 mask (`confidence_mask`).
        granularity: "scalar" or "per_sample".
        standardize: logit standardisation.

    Returns:
        scalar loss.
    """
    if granularity not in MASK_GRANULARITIES:
        raise ValueError(f"granularity must be one of {MASK_GRANULARITIES} ('scalar': code, 'per_sample': paper), "
                         f"got {granularity!r}")
    if mask.dim() != 1 or mask.shape[0] != student.shape[0]:
        raise ValueError(f"mask must be (B,) = ({student.shape[0]},), got shape {tuple(mask.shape)}")
    mask = mask.to(student.dtype)
    if granularity == "scalar":
        return (kd_loss(student, teacher, temperature, standardize=standardize) * mask).mean()
    return (kd_loss(student, teacher, temperature, standardize=standardize, reduce=False) * mask).mean()


@dataclass(frozen=True)
class DAKDLossConfig:
    """Switches of the student loss; the defaults reproduce [CODE: Fouroy4/DAKD, distillModel.py + MLKD.py].

    Paper reading: `mask_mode="gt", mask_granularity="per_sample", strong_uses_weak_for_T26=False`. The fields are
    `dakd`'s `cfg.method_options` (with `workbench.methods.dakd.DAKDOptions`); `option` says what each accepts.
    """

    # first = CFG.KD.TEMPERATURE (the only_kd T)
    temperatures: tuple[float, ...] = option((4.0, 3.0, 5.0, 2.0, 6.0), low=1e-12, accepts="positive numbers")
    kd_weight: float = option(0.9, low=0)  # CFG.KD.LOSS.KD_WEIGHT (CE_WEIGHT 0.1 is defined but unused)
    instance_weight: float = option(0.5, low=0, high=1)  # class-level weight is 1 - instance_weight
    only_kd_weight: float = option(1.0, low=0)  # MLKD.kd_weight, the outer weight of the only_kd ablation
    tau_c: float = option(0.05, low=1e-12, accepts="a number > 0")  # temperature of the prototype similarities
    standardize: bool = True           # CFG.EXPERIMENT.LOGIT_STAND
    mask_mode: str = option("le", choices=MASK_MODES)  # "le" (code) | "gt" (abstract) | "none"
    mask_granularity: str = option("scalar", choices=MASK_GRANULARITIES)  # "scalar" (code) | "per_sample"
    strong_uses_weak_for_T26: bool = True  # code: the T=2 and T=6 "strong" terms use the infrared pair
    ablation: str = option("full", choices=ABLATIONS + tuple(ABLATION_ALIASES))  # code names accepted

    def __post_init__(self) -> None:
        object.__setattr__(self, "ablation", ABLATION_ALIASES.get(self.ablation, self.ablation))
        if not isinstance(self.temperatures, (tuple, list)) or not self.temperatures:
            raise ValueError(f"method_options.temperatures must be a non-empty tuple of positive numbers, got "
                             f"{self.temperatures!r}")
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        check_options(self)

    @property
    def class_weight(self) -> float:
        return 1.0 - self.instance_weight


def class_logits(feats: Tensor, prototypes: Tensor, tau_c: float = 0.05) -> Tensor:
    """Prototype-similarity "logits" `feats C^T / tau_c` [CODE: Fouroy4/DAKD, MLKD.py::MLKD.forward, temp = 0.05].

    Args:
        feats: (B, D) features (student: un-normalised BN output; teacher: L2-normalised).
        prototypes: (N_c, D) teacher prototypes.
        tau_c: temperature.

    Returns:
        (B, N_c).
    """
    if feats.dim() != 2 or prototypes.dim() != 2 or feats.shape[1] != prototypes.shape[1]:
        raise ValueError(f"feats (B, D) and prototypes (N_c, D) must share D, got {tuple(feats.shape)} and "
                         f"{tuple(prototypes.shape)}")
    return feats @ prototypes.t() / tau_c


def _level_terms(a_v: Tensor, a_r: Tensor, b_v: Tensor, b_r: Tensor, cfg: DAKDLossConfig) -> tuple[Tensor, Tensor]:
    """(weak, strong) sums over the temperature set of one level, before the instance/class weight."""
    mask = confidence_mask(b_r, cfg.mask_mode)  # computed on the infrared ("weak") teacher view only
    weak = sum(cfg.kd_weight * masked_kd(a_r, b_r, t, mask, granularity=cfg.mask_granularity,
                                         standardize=cfg.standardize) for t in cfg.temperatures)
    strong = 0
    for t in cfg.temperatures:
        use_weak = cfg.strong_uses_weak_for_T26 and t in QUIRK_TEMPERATURES
        a, b = (a_r, b_r) if use_weak else (a_v, b_v)
        strong = strong + cfg.kd_weight * kd_loss(a, b, t, standardize=cfg.standardize)
    return weak, strong


def dakd_loss(a_v: Tensor, a_r: Tensor, b_v: Tensor, b_r: Tensor, C_v: Tensor, C_r: Tensor,
              cfg: DAKDLossConfig | None = None) -> dict[str, Tensor]:
    """The student's distillation terms, already weighted (their sum is the loss).

    [CODE: Fouroy4/DAKD, MLKD.py::MLKD.forward]; visible = "strong" view, infrared = "weak" view.

    Args:
        a_v, a_r: (B, D) student BN outputs (train mode, not normalised) of the visible and infrared images.
        b_v, b_r: (B, D) teacher eval-mode BN outputs, L2-normalised, of the same images.
        C_v, C_r: (N_c, D) teacher visible and infrared identity prototypes (`compute_prototypes`).
        cfg: switches (None: the code defaults).

    Returns:
        "full": {"inst_weak", "inst_strong", "cls_weak", "cls_strong"}; "no_instance": the two "cls_" terms;
        "no_class": the two "inst_" terms; "only_kd": {"kd"} = w KD_T0(a_v, b_v) + w KD_T0(a_r, b_r) at the first
        temperature, unmasked (times `only_kd_weight`).
    """
    for name, x in (("a_v", a_v), ("a_r", a_r), ("b_v", b_v), ("b_r", b_r)):
        if x.dim() != 2 or x.shape != a_v.shape:
            raise ValueError(f"{name} must be (B, D) = {tuple(a_v.shape)}, got {tuple(x.shape)}")
    cfg = cfg or DAKDLossConfig()
    b_v, b_r = b_v.detach(), b_r.detach()
    terms: dict[str, Tensor] = {}
    if cfg.ablation == "only_kd":
        t0 = cfg.temperatures[0]
        kd = cfg.kd_weight * (kd_loss(a_v, b_v, t0, standardize=cfg.standardize)
                              + kd_loss(a_r, b_r, t0, standardize=cfg.standardize))
        terms["kd"] = cfg.only_kd_weight * kd
        return terms
    if cfg.ablation in ("full", "no_class"):
        weak, strong = _level_terms(a_v, a_r, b_v, b_r, cfg)
        terms["inst_weak"] = cfg.instance_weight * weak
        terms["inst_strong"] = cfg.instance_weight * strong
    if cfg.ablation in ("full", "no_instance"):
        C_v, C_r = C_v.detach(), C_r.detach()
        weak, strong = _level_terms(class_logits(a_v, C_v, cfg.tau_c), class_logits(a_r, C_r, cfg.tau_c),
                                    class_logits(b_v, C_v, cfg.tau_c), class_logits(b_r, C_r, cfg.tau_c), cfg)
        terms["cls_weak"] = cfg.class_weight * weak
        terms["cls_strong"] = cfg.class_weight * strong
    return terms


def compute_prototypes(feats: Tensor, labels: Tensor, modality: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per-identity visible and infrared prototypes: normalised mean of normalised features.

    [CODE: Fouroy4/DAKD, train.py::initialize_memory]: teacher eval-mode features (already L2-normalised by the
    model) summed per identity, divided by the count, then `F.normalize`; computed once before training.

    Args:
        feats: (N, D) teacher features of all training images (normalised here; idempotent for normalised input).
        labels: (N,) long identity labels in 0..num_classes-1.
        modality: (N,) long, 0 = visible (rgb), 1 = infrared.
        num_classes: N_c.

    Returns:
        (C_v, C_r), each (N_c, D), rows of unit norm.

    Raises:
        ValueError: an identity has no image in one modality (its prototype would be undefined; the public code
            divides by zero). Drop that identity from the training set or relabel.
    """
    if feats.dim() != 2:
        raise ValueError(f"feats must be 2-D (N, D), got shape {tuple(feats.shape)}")
    n = feats.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"labels must be (N,) = ({n},), got {tuple(labels.shape)}")
    check_modality(modality, n)
    labels, modality = labels.long(), modality.long()
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got range [{int(labels.min())}, "
                         f"{int(labels.max())}]")
    unit = F.normalize(feats.float(), dim=1)
    out = []
    for m, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
        sel = modality == m
        sums = unit.new_zeros(num_classes, unit.shape[1]).index_add_(0, labels[sel], unit[sel])
        counts = torch.bincount(labels[sel], minlength=num_classes)
        missing = (counts == 0).nonzero(as_tuple=True)[0].tolist()
        if missing:
            raise ValueError(f"identities {missing[:10]}{' ...' if len(missing) > 10 else ''} have no {name} image; "
                             "every training identity needs both modalities for DAKD's prototypes. Remove them "
                             "from the training split (and relabel) or use another split.")
        out.append(F.normalize(sums / counts.unsqueeze(1).to(sums.dtype), dim=1))
    return out[0], out[1]
