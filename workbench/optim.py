"""Optimiser, parameter groups, learning-rate schedules and training precision of a config (`OptimConfig`).

    optimizer = build_optimizer(model, cfg.optim)          # groups: backbone / new layers, biases, weight decay
    scheduler = build_scheduler(optimizer, cfg.optim)      # stepped once per epoch, epoch 0 first
    group_lr(epoch, base_lr, cfg.optim)                    # the lr of a group of initial lr `base_lr` at an epoch

Schedules, as the reference code computes them (the values at every epoch are tested against formulas typed from
that code, tests/test_recipes.py):

* "step" with `warmup_style="agw"` [CODE: mangye16/Cross-Modal-Re-ID-baseline, train.py::adjust_learning_rate;
  IDLNL/MCE, train.py::adjust_learning_rate]: lr x (e + 1) / 10 for e < 10, then x gamma at each milestone; every
  group is scaled by the same factor.
* "cosine" with `warmup_style="transreid"` [CODE: 924973292/TOP-ReID, solver/cosine_lr.py, solver/scheduler_factory.py,
  engine/processor.py]: timm's CosineLRScheduler, `t_initial = epochs`, no warm-up prefix, warm-up from
  `warmup_lr_init = warmup_start * lr` and floor `lr_min = min_lr_factor * lr`. Those two are absolute values shared
  by every group (a bias group at 2 x lr warms up from the same 0.01 lr as the weights), so groups do not share one
  factor. The training loop calls `scheduler.step(epoch)` at the start of epoch 1..120 (`step_from = 1`): the first
  epoch already runs at the second warm-up value and the cosine reaches its floor at the last epoch.
* "constant": 1 after the warm-up (DAKD student: no warm-up, no decay).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch
from torch import Tensor, nn

from workbench.config import OptimConfig

SCHEDULES = ("step", "cosine", "constant")
WARMUP_STYLES = ("agw", "transreid")
AMP_DTYPES = ("auto", "bfloat16", "float16")


def _check(cfg: OptimConfig) -> None:
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
    if cfg.warmup_style not in WARMUP_STYLES:
        raise ValueError(f"optim.warmup_style must be one of {WARMUP_STYLES}, got {cfg.warmup_style!r}")
    if cfg.step_from < 0:
        raise ValueError(f"optim.step_from must be >= 0 (the schedule time of the first epoch), got {cfg.step_from}")


def group_lr(epoch: int, base_lr: float, cfg: OptimConfig) -> float:
    """Learning rate at `epoch` (0-based, as the workbench counts) of a parameter group whose initial lr is `base_lr`.

    The schedule time is `t = epoch + cfg.step_from`. Warm-up for t < warmup_epochs: "agw" scales the group by
    `warmup_start + (1 - warmup_start) t / (warmup_epochs - 1)` ((t + 1) / 10 for AGW's 0.1 start and 10 epochs);
    "transreid" moves linearly from the shared `warmup_start * cfg.lr` to `base_lr`, reached at t = warmup_epochs.
    After the warm-up: "step" `base_lr * gamma ** (number of milestones <= t)`; "cosine"
    `lr_min + (base_lr - lr_min) (1 + cos(pi t / epochs)) / 2` with the shared `lr_min = min_lr_factor * cfg.lr`;
    "constant" `base_lr`.
    """
    _check(cfg)
    t = epoch + cfg.step_from
    w = cfg.warmup_epochs
    if t < w:
        if cfg.warmup_style == "agw":  # the same factor for every group: (e+1)/w when warmup_start = 1/w
            return base_lr * (cfg.warmup_start + (1.0 - cfg.warmup_start) * t / max(w - 1, 1))
        start = cfg.warmup_start * cfg.lr  # timm warmup_lr_init: one absolute value for all groups
        return start + t * (base_lr - start) / w
    if cfg.schedule == "constant":
        return base_lr
    if cfg.schedule == "step":
        return base_lr * cfg.gamma ** sum(t >= m for m in cfg.milestones)
    floor = cfg.min_lr_factor * cfg.lr  # timm lr_min: one absolute value for all groups
    t_curr = min(t, cfg.epochs)  # cycle_limit 1: the floor after the last epoch
    return floor + 0.5 * (base_lr - floor) * (1 + math.cos(math.pi * t_curr / cfg.epochs))


def lr_factor(epoch: int, cfg: OptimConfig) -> float:
    """Learning-rate multiplier of `epoch` (0-based) for the groups at `optim.lr` (see `group_lr`)."""
    return group_lr(epoch, cfg.lr, cfg) / cfg.lr


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """Parameter groups: the backbone at lr x backbone_lr_mult, new layers (neck, heads) at lr; biases x bias_lr_mult.

    A model marks its pre-trainable trunk with a `backbone_prefixes` attribute (parameter-name prefixes, e.g. AGW's
    two stems, shared stages and non-local blocks); every other parameter is a new layer. Parameters that do not
    require gradients (the BN-neck shift) are left out. A model without `backbone_prefixes` while
    `backbone_lr_mult != 1` is an error: the split would silently put the whole model at the head rate.
    """
    prefixes = tuple(getattr(model, "backbone_prefixes", ()))
    if not prefixes and cfg.backbone_lr_mult != 1.0:
        raise ValueError(f"{type(model).__name__} declares no backbone_prefixes, so optim.backbone_lr_mult="
                         f"{cfg.backbone_lr_mult} cannot apply; set optim.backbone_lr_mult=1 or give the model a "
                         "backbone_prefixes attribute")
    groups: dict[tuple[float, float], list[Tensor]] = defaultdict(list)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr = cfg.lr * (cfg.backbone_lr_mult if name.startswith(prefixes) else 1.0)
        if name.endswith("bias"):
            lr *= cfg.bias_lr_mult
        groups[(lr, cfg.weight_decay)].append(param)
    return [{"params": ps, "lr": lr, "initial_lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"optim.optimizer must be 'sgd', 'adam' or 'adamw', got {cfg.optimizer!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch `LambdaLR` giving every group `group_lr(epoch, its initial lr, cfg)`; call `.step()` after each
    epoch (the workbench's epoch 0 runs at schedule time `step_from`)."""
    _check(cfg)
    lambdas = [(lambda e, base=g["initial_lr"]: group_lr(e, base, cfg) / base) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def amp_dtype(cfg: OptimConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a run, None for full fp32: `optim.amp` False or a device other than CUDA.

    `optim.amp_dtype`: "auto" (bfloat16 where supported, else float16), "bfloat16" or "float16" (float16 runs with a
    gradient scaler, as TOP-ReID's `torch.cuda.amp` training does).
    """
    if cfg.amp_dtype not in AMP_DTYPES:
        raise ValueError(f"optim.amp_dtype must be one of {AMP_DTYPES}, got {cfg.amp_dtype!r}")
    if not cfg.amp or device.type != "cuda":
        return None
    if cfg.amp_dtype == "float16":
        return torch.float16
    if cfg.amp_dtype == "bfloat16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16
