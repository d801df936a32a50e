"""One command for a GPU lent for a few minutes: throughput, memory and sanity of the paper profiles, in one table.

What it measures (in this order, one table, optional JSON):

* one row per paper profile and precision: the VI baseline (AGW, `agw_r50` 288x144, P8 x K4+4), the DAKD student
  (`vi_r50` 384x128, P8 x K4+4, with a frozen teacher of the same architecture), ICRE (`icre_r50` 384x144,
  P6 x K4+4) and SD2-ReID (`mm_vit_b16` 256x128, P8 x K16 triplets), each in bf16 autocast and in fp32. A training
  step is what `workbench.train.fit` does per batch: `method.training_losses` under `torch.autocast` (bf16 rows),
  the sum of the terms, backward, optimiser step, with the profile's own optimiser (`workbench.optim`). It is timed
  against a bare timm step of the same backbone (`timm.create_model(arch)` with the model's timm arguments, a
  linear head, cross-entropy) on the same images, batch and precision;
* the evaluator (`workbench.metrics`) on a Market-sized problem (3,368 queries x 15,913 gallery, 751 identities,
  6 cameras, 2048-d features): distances on the device, ranking on the CPU (`rank_metrics` is numpy), checked
  against the per-query numpy loop of `benchmarks/bench_metrics.py` on the first 500 queries;
* one similarity CAM at paper size: `workbench.viz.cam.query_cams` (one `pair_cams` per gallery sample) of a
  `mm_vit_b16` 256x128 query triplet against 5 gallery triplets: 15 Grad-CAM maps.

Run it on a lent GPU in one command (not yet run on one: 3-5 minutes on an H100-class GPU is an estimate; the
budget guard stops starting new measurements after 420 s, `--p 4` halves every batch on a smaller GPU):

    PYTHONPATH=. python benchmarks/gpu_check.py --size paper --device cuda --json gpu_check.json

and on a CPU in seconds, as the test suite does (`tests/test_gpu_check.py`), the same code at smoke size with the
tiny `test_*` models, 64x32 images and P4 x K2:

    PYTHONPATH=. python benchmarks/gpu_check.py --size tiny --device cpu

Columns of the table:

    item       the profile (baseline, dakd, icre, sd2reid), `evaluator` or `cam`
    model      registered model name (`workbench.models`); for `evaluator` the problem, for `cam` the model
    input      image height x width
    batch      P x K per modality: "P8xK4+4" = 8 identities x 4 visible + 4 infrared images; "P8xK16x3" = 8 x 16
               aligned RGB/NIR/TIR triplets. A batch that did not fit in memory is halved in P (a note says so)
    img/step   images in one step (both VI modalities, all three MM modalities)
    prec       bf16 (torch.autocast, bfloat16) or fp32 (torch's defaults, as `fit` runs: cuDNN convolutions may use
               TF32, matmuls do not)
    measured   training rows: images/s of the workbench step; evaluator: seconds for the whole problem
               (distance + transfer + ranking); cam: seconds for the 5 pairs
    bare       training rows: images/s of the bare timm step; evaluator: seconds of the per-query numpy loop on the
               subset; cam: -
    ratio      training rows: measured / bare (1.0 = the method costs what its bare backbone costs; the AGW
               conventions alone, last stride 1 and non-local blocks, give about 0.7); evaluator: loop / ours on
               the subset (speed-up)
    peak GiB   `torch.cuda.max_memory_allocated`, reset before each measurement: workbench / bare step (weights,
               gradients, optimiser state and activations; the DAKD teacher included); "-" on the CPU
    check      training rows: the total loss of the first 3 steps (every term is checked finite; the JSON has the
               terms); evaluator: max |ours - loop| over CMC, mAP and mINP; cam: non-empty maps / maps
    status     ok, FAIL (the reason follows the table) or SKIPPED: budget

Honest limits, also printed with the table:

* Data: random normal tensors with the batch layout of the PK loaders (`rgb`, `ir`, `label`, cameras), made once
  and kept on the device, so decoding, augmentation and the host-to-device copy are outside the timing
  (`benchmarks/bench_fit_throughput.py` measures what `fit`'s data path adds). Labels: P identities drawn from the
  real training identities (SYSU-MM01 395, RGBNT201 171, minus the profile's `data.val_ids`). The DAKD
  student's `setup` (teacher features of every training image, class prototypes) runs on the synthetic-vi preset
  at smoke size (16 identities, rendered once and cached), since no real dataset is present.
* Weights: random initialisation everywhere (`model.pretrained=None`): no weights can be fetched offline and the
  cost of a step does not depend on them. The DAKD teacher is a second randomly initialised `vi_r50` (frozen).
* Timing: 3 warm-up steps (the losses of these first steps are the ones reported), then `--steps` timed steps
  between two `torch.cuda.synchronize()`; no per-step synchronisation (no `.item()`) inside the timed loop. Models
  are rebuilt with the same seed for each precision, so both precisions start from the same weights.
* bf16 on the CPU (tiny size): CPU autocast in bfloat16 where this torch supports it, else the table shows fp32
  only and says so. `fit` itself uses autocast on CUDA only.

Exit status: 0 when every item ran and passed; 1 on any failure (an exception, a non-finite loss, an empty CAM map,
an evaluator mismatch) or an item skipped by the budget guard (unless `--allow-skip`); each failure is printed with
its item. The budget is checked before each measurement, so a run can overrun it by one measurement.
`--inject ROW:nan` (a NaN in the first loss term of a row) and `--inject ROW:oom` (an out-of-memory error for the
full batch of a row) exist for the tests of this script.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from torch import Tensor, nn

from workbench.config import Config, dataset_kind, dataset_layout, get_config
from workbench.methods import get_method
from workbench.methods.base import SIE_CAMERAS
from workbench.optim import build_optimizer, build_scheduler
from workbench.utils import seed_everything


@dataclass(frozen=True)
class RowSpec:
    name: str      # row label and --inject / --only key
    method: str    # workbench.methods name
    dataset: str   # the paper profile's dataset (absent here: only its layout, sizes and recipe are used)


ROWS = (
    RowSpec("baseline", "baseline", "sysu-mm01"),
    RowSpec("dakd", "dakd", "sysu-mm01"),
    RowSpec("icre", "icre", "sysu-mm01"),
    RowSpec("sd2reid", "sd2reid", "rgbnt201"),
)
ITEMS = tuple(r.name for r in ROWS) + ("evaluator", "cam")
PRECISIONS = ("bf16", "fp32")
TINY_MODELS = {"agw_r50": "test_vi_resnet", "vi_r50": "test_vi_resnet", "icre_r50": "test_icre_resnet",
               "mm_vit_b16": "test_mm_vit"}
TINY_SHAPE = {"data.height": 64, "data.width": 32, "data.p": 4, "data.k": 2}
# Training identities of the real sets (data_cards/): SYSU-MM01 395 [sysu-mm01.md], RGBNT201 171 [rgbnt201.md].
TRAIN_IDS = {"sysu-mm01": 395, "rgbnt201": 171}
MIN_P = 2  # the triplet losses need a second identity in the batch
WARMUP = 3  # untimed first steps; their losses are the ones reported
# Market-1501's test split: 3,368 queries, 15,913 gallery images (junk included), 751 identities, 6 cameras.
MARKET = {"paper": dict(num_q=3368, num_g=15913, num_ids=751, num_cams=6, dim=2048, subset=500),
          "tiny": dict(num_q=120, num_g=600, num_ids=40, num_cams=6, dim=32, subset=60)}
CAM_MODEL = {"paper": ("mm_vit_b16", (256, 128)), "tiny": ("test_mm_vit", (64, 32))}
CAM_GALLERY = 5
EVAL_TOLERANCE = 1e-6


class CheckFailed(RuntimeError):
    """A measurement ran but its result is wrong (a non-finite loss, an empty CAM map, an evaluator mismatch)."""


@dataclass
class Line:
    """One line of the table (and of the JSON)."""

    item: str
    model: str = "-"
    input: str = "-"
    batch: str = "-"
    images: str = "-"
    prec: str = "-"
    measured: str = "-"
    bare: str = "-"
    ratio: str = "-"
    peak: str = "-"
    check: str = "-"
    status: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)


COLUMNS = (("item", "item"), ("model", "model"), ("input", "input"), ("batch", "batch"), ("images", "img/step"),
           ("prec", "prec"), ("measured", "measured"), ("bare", "bare"), ("ratio", "ratio"),
           ("peak", "peak GiB"), ("check", "check"), ("status", "status"))


# ----------------------------------------------------------------------------------------------------------------
# Devices and precision


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def bf16_available(device: torch.device) -> tuple[bool, str]:
    """Whether autocast in bfloat16 works on `device`, and why not."""
    if device.type == "cuda":
        return (True, "") if torch.cuda.is_bf16_supported() else (False, "this GPU does not support bfloat16")
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
    except (RuntimeError, ValueError) as exc:
        return False, f"autocast bfloat16 unavailable on {device.type}: {exc}"
    if out.dtype != torch.bfloat16:
        return False, f"autocast on {device.type} does not cast matmuls to bfloat16 in this torch"
    return True, ""


def autocast(device: torch.device, prec: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=prec == "bf16")


# ----------------------------------------------------------------------------------------------------------------
# Configurations and batches


def row_config(spec: RowSpec, size: str) -> Config:
    """The paper profile of a row with random weights; at tiny size the `test_*` sibling at smoke shape."""
    cfg = get_config(spec.method, spec.dataset, "paper").override(**{"model.pretrained": None})
    if size == "tiny":
        cfg = cfg.override(**{"model.name": TINY_MODELS[cfg.model.name], **TINY_SHAPE})
    return cfg


def num_classes(cfg: Config) -> int:
    return TRAIN_IDS[dataset_layout(cfg.data.dataset)] - cfg.data.val_ids


def batch_label(cfg: Config, p: int) -> tuple[str, int]:
    """("P8xK4+4", images per step) for visible-infrared pairs, ("P8xK16x3", ...) for triplets."""
    k = cfg.data.k
    if dataset_kind(cfg.data.dataset) == "vi":
        return f"P{p}xK{k}+{k}", 2 * p * k
    return f"P{p}xK{k}x3", 3 * p * k


def random_batch(cfg: Config, p: int, classes: int, device: torch.device, seed: int = 0) -> dict[str, Tensor]:
    """A training batch with the PK loaders' layout (`workbench.data.loaders.build_train_loader`), random images.

    Visible-infrared: `rgb`, `ir` (P*K, 3, H, W), `label` (P*K,), `rgb_camid`, `ir_camid`. Triplets: `rgb`, `nir`,
    `tir` (P*K, 3, H, W), `label`, `camid` (P*K,) within the layout's SIE camera table. Made on the CPU with a fixed
    seed (the same batch on any device), then moved to `device`.
    """
    g = torch.Generator().manual_seed(seed)
    k, h, w = cfg.data.k, cfg.data.height, cfg.data.width
    labels = torch.randperm(classes, generator=g)[:p].repeat_interleave(k)
    n = p * k
    if dataset_kind(cfg.data.dataset) == "vi":
        batch = {"rgb": torch.randn(n, 3, h, w, generator=g), "ir": torch.randn(n, 3, h, w, generator=g),
                 "label": labels, "rgb_camid": torch.tensor([1, 2, 4, 5])[torch.randint(0, 4, (n,), generator=g)],
                 "ir_camid": torch.tensor([3, 6])[torch.randint(0, 2, (n,), generator=g)]}  # SYSU-MM01 cameras
    else:
        cams = SIE_CAMERAS[dataset_layout(cfg.data.dataset)]
        batch = {m: torch.randn(n, 3, h, w, generator=g) for m in ("rgb", "nir", "tir")}
        batch |= {"label": labels, "camid": torch.randint(0, cams, (n,), generator=g)}
    return {key: value.to(device) for key, value in batch.items()}


def bare_inputs(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """The same images as one tensor for the bare step: (n_mod * P*K, 3, H, W) and their labels."""
    mods = [m for m in ("rgb", "ir", "nir", "tir") if m in batch]
    return torch.cat([batch[m] for m in mods]), batch["label"].repeat(len(mods))


_SAMPLES: dict[str, list] = {}


def setup_samples(cfg: Config) -> list:
    """Training samples handed to `method.setup`: the synthetic-vi preset at smoke size for visible-infrared rows
    (the DAKD student builds its prototypes from them), none for triplets (SD2-ReID's setup reads none)."""
    if dataset_kind(cfg.data.dataset) != "vi":
        return []
    if "vi" not in _SAMPLES:
        from workbench import data

        options = get_config("baseline", "synthetic-vi", "smoke").data.options
        _SAMPLES["vi"] = list(data.load_dataset("synthetic-vi", **options).train)
    return _SAMPLES["vi"]


def with_teacher(cfg: Config, device: torch.device) -> Config:
    """DAKD: a frozen, randomly initialised teacher of the student's architecture (no trained teacher exists
    here; its weights do not change the cost of a step)."""
    if cfg.run.method != "dakd":
        return cfg
    teacher = get_method("dakd").build_model(cfg, 0).to(device)
    return cfg.override(**{"method_options.teacher_model": teacher})


def backbone_of(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """(timm arch, timm kwargs) of a workbench model: its own (`VIReIDNet`, `ICRENet`, `MultiModalViT`) or its
    `backbone`'s (`SD2ReIDNet`)."""
    for candidate in (model, getattr(model, "backbone", None)):
        if candidate is not None and hasattr(candidate, "arch") and hasattr(candidate, "timm_kwargs"):
            return candidate.arch, dict(candidate.timm_kwargs)
    raise ValueError(f"{type(model).__name__} names no timm backbone (no `arch` / `timm_kwargs`)")


# ----------------------------------------------------------------------------------------------------------------
# Training steps


@dataclass
class StepResult:
    images_per_s: float
    peak_gib: float | None
    losses: list[dict[str, float]]  # the first WARMUP steps' terms (workbench) or {"ce": ...} (bare)


def run_steps(step: Callable[[], dict[str, Tensor] | None], device: torch.device, steps: int, images: int,
              where: str) -> StepResult:
    """WARMUP untimed steps (their losses checked finite), then `steps` timed ones between two synchronisations."""
    losses = []
    for i in range(WARMUP):
        terms = step()
        values = {k: float(v.detach().float()) for k, v in terms.items()}
        losses.append(values)
        if not all(math.isfinite(v) for v in values.values()):
            raise CheckFailed(f"{where}: non-finite loss at step {i + 1}: {values}")
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return StepResult(images * steps / (time.perf_counter() - start), peak_gib(device), losses)


def workbench_step(cfg: Config, p: int, device: torch.device, prec: str, steps: int, inject: str | None,
                   where: str) -> tuple[StepResult, str, dict[str, Any]]:
    """The method's training step as `fit` runs it (autocast, sum of terms, backward, clip, optimiser step).

    Returns the measurement, the model's timm arch and its timm kwargs (for the bare step).
    """
    free(device)
    reset_peak(device)
    seed_everything(cfg.run.seed)
    method = get_method(cfg.run.method)
    cfg = with_teacher(cfg, device)
    model = method.build_model(cfg, num_classes(cfg)).to(device)
    method.setup(model, cfg, setup_samples(cfg), device)
    optimizer = build_optimizer(model, cfg.optim)
    build_scheduler(optimizer, cfg.optim)  # sets epoch 0's learning rates, as fit's first epoch has them
    arch, timm_kwargs = backbone_of(model)
    batch = random_batch(cfg, p, num_classes(cfg), device)
    _, images = batch_label(cfg, p)
    model.train()
    method.on_epoch_start(model, 0)
    calls = [0]

    def step() -> dict[str, Tensor]:
        calls[0] += 1
        if inject == "oom" and p == cfg.data.p:
            raise torch.cuda.OutOfMemoryError(f"injected out-of-memory error for P={p} (--inject ...:oom)")
        with autocast(device, prec):
            terms = method.training_losses(model, batch, cfg)
        if inject == "nan" and calls[0] == 1:
            first = next(iter(terms))
            terms = {**terms, first: terms[first] * float("nan")}
        total = torch.stack([t.float() for t in terms.values()]).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.optim.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        return terms

    return run_steps(step, device, steps, images, where), arch, timm_kwargs


def bare_step(cfg: Config, p: int, arch: str, timm_kwargs: dict[str, Any], device: torch.device, prec: str,
              steps: int, where: str) -> StepResult:
    """A bare timm step on the same images: `timm.create_model(arch)` (as timm ships it: last stride 2, pooled
    features), a linear head, cross-entropy, backward, the profile's optimiser type on one parameter group."""
    free(device)
    reset_peak(device)
    seed_everything(cfg.run.seed)
    classes = num_classes(cfg)
    trunk = timm.create_model(arch, pretrained=False, num_classes=0, **timm_kwargs)
    model = nn.Sequential(trunk, nn.Linear(trunk.num_features, classes)).to(device)
    o = cfg.optim
    optimizer = {"sgd": lambda ps: torch.optim.SGD(ps, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov),
                 "adam": lambda ps: torch.optim.Adam(ps, lr=o.lr),
                 "adamw": lambda ps: torch.optim.AdamW(ps, lr=o.lr)}[o.optimizer](model.parameters())
    images, labels = bare_inputs(random_batch(cfg, p, classes, device))
    model.train()

    def step() -> dict[str, Tensor]:
        with autocast(device, prec):
            loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        optimizer.step()
        return {"ce": loss}

    return run_steps(step, device, steps, len(images), where)


def check_row(spec: RowSpec, size: str, device: torch.device, prec: str, steps: int, inject: str | None,
              p_override: int | None = None) -> tuple[Line, list[str]]:
    """One row at one precision; halves P until the step fits in memory. Returns the line and its notes."""
    cfg = row_config(spec, size)
    profile_p = cfg.data.p
    if p_override is not None:
        cfg = cfg.override(**{"data.p": p_override})
    where = f"{spec.name} {prec}"
    notes = []
    p = cfg.data.p
    while True:
        try:
            wb, arch, kwargs = workbench_step(cfg, p, device, prec, steps, inject, where)
            bare = bare_step(cfg, p, arch, kwargs, device, prec, steps, where)
            break
        except torch.cuda.OutOfMemoryError as exc:  # leaving the block releases the traceback and its tensors
            oom = (str(exc).splitlines() or [""])[0][:120]
        free(device)
        if p // 2 < MIN_P:
            raise CheckFailed(f"{where}: out of memory even at P={p}: {oom}")
        total = (f" of {torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB"
                 if device.type == "cuda" else "")
        notes.append(f"{where}: {batch_label(cfg, p)[0]} does not fit in the GPU's memory{total} ({oom}); "
                     f"trying P={p // 2}")
        p //= 2
    label, images = batch_label(cfg, p)
    if p_override is not None:
        notes.append(f"{where}: P={p_override} (--p) instead of the profile's P")
    if p != cfg.data.p:
        notes.append(f"{where}: measured at {label}, the largest batch that fits (asked: "
                     f"{batch_label(cfg, cfg.data.p)[0]}, profile: {batch_label(cfg, profile_p)[0]})")
    peak = "-" if wb.peak_gib is None else f"{wb.peak_gib:.1f} / {bare.peak_gib:.1f}"
    totals = " ".join(f"{sum(t.values()):.3g}" for t in wb.losses)
    line = Line(spec.name, cfg.model.name, f"{cfg.data.height}x{cfg.data.width}", label, str(images), prec,
                f"{wb.images_per_s:.1f} img/s", f"{bare.images_per_s:.1f} img/s",
                f"{wb.images_per_s / bare.images_per_s:.2f}", peak, totals,
                details={"arch": arch, "p": p, "k": cfg.data.k, "profile_p": profile_p, "steps": steps,
                         "workbench": asdict(wb), "bare": asdict(bare),
                         "ratio": wb.images_per_s / bare.images_per_s})
    return line, notes


# ----------------------------------------------------------------------------------------------------------------
# Evaluator and CAM


def _bench_metrics():
    """benchmarks/bench_metrics.py as a module (its per-query reference loop)."""
    path = Path(__file__).resolve().parent / "bench_metrics.py"
    spec = importlib.util.spec_from_file_location("bench_metrics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_evaluator(size: str, device: torch.device) -> Line:
    """Market-sized ranking: distances on `device` (`pairwise_distance` on torch tensors), `rank_metrics` on the
    CPU; the first `subset` queries against the per-query numpy loop (stable sort, as our tie policy)."""
    from workbench.metrics import pairwise_distance, rank_metrics

    mk = MARKET[size]
    rng = np.random.default_rng(0)
    q_pids, g_pids = rng.integers(0, mk["num_ids"], mk["num_q"]), rng.integers(0, mk["num_ids"], mk["num_g"])
    q_cams, g_cams = rng.integers(1, mk["num_cams"] + 1, mk["num_q"]), rng.integers(1, mk["num_cams"] + 1, mk["num_g"])
    g = torch.Generator().manual_seed(0)  # identity centres + noise: a ranking with hits near the top
    centres = torch.randn(mk["num_ids"], mk["dim"], generator=g)
    q_feats = (centres[q_pids] + 2.0 * torch.randn(mk["num_q"], mk["dim"], generator=g)).to(device)
    g_feats = (centres[g_pids] + 2.0 * torch.randn(mk["num_g"], mk["dim"], generator=g)).to(device)
    sync(device)
    start = time.perf_counter()
    dist = pairwise_distance(q_feats, g_feats, "cosine")
    sync(device)
    t_dist = time.perf_counter() - start
    dist_np = dist.cpu().numpy()
    t_copy = time.perf_counter() - start - t_dist
    start = time.perf_counter()
    full = rank_metrics(dist_np, q_pids, g_pids, q_cams, g_cams, junk="market", max_rank=50)
    t_rank = time.perf_counter() - start
    n = mk["subset"]
    start = time.perf_counter()
    ours = rank_metrics(dist_np[:n], q_pids[:n], g_pids, q_cams[:n], g_cams, junk="market", max_rank=50)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    cmc, m_ap, m_inp = _bench_metrics().reference_loop(dist_np[:n], q_pids[:n], g_pids, q_cams[:n], g_cams,
                                                       "market", False, 50, kind="stable")
    t_loop = time.perf_counter() - start
    diff = float(max(np.abs(ours.cmc - cmc).max(), abs(ours.mAP - m_ap), abs(ours.mINP - m_inp)))
    line = Line("evaluator", f"{mk['num_q']}x{mk['num_g']}", f"d={mk['dim']}", prec="fp32",
                measured=f"{t_dist + t_copy + t_rank:.2f} s", bare=f"{t_loop:.2f} s ({n} q)",
                ratio=f"{t_loop / t_ours:.1f}", check=f"max|diff| {diff:.1e}",
                details={"distance_s": t_dist, "copy_to_cpu_s": t_copy, "rank_s": t_rank, "subset": n,
                         "subset_ours_s": t_ours, "subset_loop_s": t_loop, "max_abs_diff": diff,
                         "distance_device": str(device), "rank1": full.rank1, "mAP": full.mAP, "mINP": full.mINP})
    if not diff <= EVAL_TOLERANCE:
        raise CheckFailed(f"evaluator: the first {n} queries differ from the per-query loop by {diff:.2e} "
                          f"(tolerance {EVAL_TOLERANCE:g})", line)
    if not all(0.0 <= v <= 1.0 for v in (full.rank1, full.mAP, full.mINP)):
        raise CheckFailed(f"evaluator: metrics out of [0, 1]: rank1 {full.rank1}, mAP {full.mAP}", line)
    return line


def check_cam(size: str, device: torch.device) -> Line:
    """Similarity Grad-CAMs of one query triplet against `CAM_GALLERY` gallery triplets (query side); every map
    must be (H, W), finite, in [0, 1] and not all zero."""
    from workbench.models import create_model
    from workbench.viz import cam

    name, hw = CAM_MODEL[size]
    seed_everything(0)
    model = create_model(name, num_classes=10, img_size=hw).to(device).eval()
    g = torch.Generator().manual_seed(0)
    query = {m: torch.randn(3, *hw, generator=g) for m in model.modalities}
    galleries = [{m: torch.randn(3, *hw, generator=g) for m in model.modalities} for _ in range(CAM_GALLERY)]
    sync(device)
    start = time.perf_counter()
    pairs = cam.query_cams(model, query, galleries, both=False)
    sync(device)
    seconds = time.perf_counter() - start
    maps = [(i, m, x) for i, pair in enumerate(pairs) for m, x in pair.query_maps.items()]
    bad = [f"gallery {i} {m}: " + ("shape " + str(x.shape) if x.shape != hw else "not finite" if not np.isfinite(x).all()
                                   else "all zero" if not x.max() > 0 else f"range [{x.min():.2g}, {x.max():.2g}]")
           for i, m, x in maps
           if x.shape != hw or not np.isfinite(x).all() or not x.max() > 0 or x.min() < 0 or x.max() > 1 + 1e-6]
    expected = CAM_GALLERY * len(model.modalities)
    line = Line("cam", name, f"{hw[0]}x{hw[1]}", batch=f"1 vs {CAM_GALLERY}", prec="fp32",
                measured=f"{seconds:.2f} s", check=f"{len(maps) - len(bad)}/{expected} maps",
                details={"seconds": seconds, "maps": len(maps), "bad": bad,
                         "similarities": [p.similarity for p in pairs]})
    if len(maps) != expected or bad:
        raise CheckFailed(f"cam: {len(maps)} maps (expected {expected}); empty or invalid: {bad}", line)
    return line


# ----------------------------------------------------------------------------------------------------------------
# Table and command line


def format_table(lines: list[Line]) -> str:
    cells = [[header for _, header in COLUMNS]] + [[str(getattr(line, key)) for key, _ in COLUMNS] for line in lines]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    text = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def parse_inject(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        row, _, kind = value.partition(":")
        if row not in {r.name for r in ROWS} or kind not in ("nan", "oom"):
            raise ValueError(f"--inject {value!r}: expected ROW:nan or ROW:oom with ROW one of "
                             f"{[r.name for r in ROWS]}")
        out[row] = kind
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("paper", "tiny"), default="paper")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None,
                        help="default: cuda when available, else cpu")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="skip the remaining measurements once this many seconds have passed (default 420)")
    parser.add_argument("--allow-skip", action="store_true", help="items skipped by the budget are not a failure")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement (paper 10, tiny 2)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--p", type=int, default=None,
                        help="identities per batch for every row instead of the profile's P (a smaller GPU)")
    parser.add_argument("--only", nargs="+", choices=ITEMS, default=list(ITEMS), help="a subset of the items")
    parser.add_argument("--json", default=None, help="also write everything measured to this JSON file")
    parser.add_argument("--inject", action="append", default=[], metavar="ROW:KIND",
                        help="for the tests: ROW:nan (NaN first loss term) or ROW:oom (the full batch does not fit)")
    args = parser.parse_args(argv)
    try:
        inject = parse_inject(args.inject)
    except ValueError as exc:
        parser.error(str(exc))
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.p is not None and args.p < MIN_P:
        parser.error(f"--p must be >= {MIN_P} (the triplet losses need two identities per batch), got {args.p}")
    device_name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_name == "cuda" and not torch.cuda.is_available():
        print("FAIL: --device cuda was requested but torch sees no CUDA device "
              f"(torch {torch.__version__}, CUDA build {torch.version.cuda})", flush=True)
        return 1
    device = torch.device(device_name)
    steps = args.steps or (10 if args.size == "paper" else 2)
    t_start = time.perf_counter()

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"gpu_check --size {args.size} on {device} ({gpu}); torch {torch.__version__}, timm {timm.__version__}, "
          f"CUDA {torch.version.cuda}; {WARMUP} warm-up + {steps} timed steps per measurement", flush=True)
    precisions = list(args.precisions)
    notes = ["data: random normal tensors in the PK loaders' batch layout, kept on the device (no decoding, "
             "augmentation or copy timed); DAKD setup on the synthetic-vi preset (smoke size)",
             "weights: random init everywhere (model.pretrained=None); DAKD teacher: random, frozen, same arch"]
    bf16_ok, why = bf16_available(device)
    if "bf16" in precisions and not bf16_ok:
        precisions.remove("bf16")
        notes.append(f"bf16 not measured: {why}; fp32 only")
    if not precisions:
        print(f"FAIL: no precision left to measure ({why})", flush=True)
        return 1
    own = {}
    for spec in ROWS:  # what fit would use on CUDA (workbench.optim.amp_dtype), for the reader of the table
        o = row_config(spec, args.size).optim
        own[spec.name] = ("fp32" if not o.amp else {"auto": "bf16 (auto)", "bfloat16": "bf16",
                                                     "float16": "fp16 + gradient scaler"}[o.amp_dtype])
    notes.append("the profiles' own precision in fit on CUDA: " + ", ".join(f"{k} {v}" for k, v in own.items())
                 + "; measured here: " + " and ".join(precisions))

    lines: list[Line] = []
    failures: list[str] = []
    skipped: list[str] = []

    def over_budget(what: str) -> bool:
        elapsed = time.perf_counter() - t_start
        if elapsed <= args.budget_s:
            return False
        skipped.append(what)
        lines.append(Line(what.split()[0], prec=what.split()[1] if " " in what else "-", status="SKIPPED: budget",
                          details={"elapsed_s": elapsed, "budget_s": args.budget_s}))
        print(f"SKIPPED: budget: {what} ({elapsed:.0f} s elapsed > --budget-s {args.budget_s:g})", flush=True)
        return True

    def fail(item: str, exc: BaseException, line: Line | None = None) -> None:
        if isinstance(exc, CheckFailed):
            message = str(exc.args[0])
            line = exc.args[1] if len(exc.args) > 1 else line
        else:
            message = f"{item}: {type(exc).__name__}: {exc}"
            print(traceback.format_exc(), file=sys.stderr, flush=True)
        failures.append(message)
        line = line or Line(item.split()[0], prec=item.split()[1] if " " in item else "-")
        line.status = "FAIL"
        line.details["error"] = message
        lines.append(line)
        print(f"FAIL {message}", flush=True)

    for spec in ROWS:
        if spec.name not in args.only:
            continue
        for prec in precisions:
            what = f"{spec.name} {prec}"
            if over_budget(what):
                continue
            try:
                begin = time.perf_counter()
                line, row_notes = check_row(spec, args.size, device, prec, steps, inject.get(spec.name), args.p)
                line.details["seconds"] = time.perf_counter() - begin
                lines.append(line)
                notes.extend(row_notes)
                print(f"done {what} in {line.details['seconds']:.1f} s: {line.measured} vs bare {line.bare} "
                      f"(ratio {line.ratio}), peak {line.peak} GiB, losses {line.check}", flush=True)
            except Exception as exc:  # noqa: BLE001 (every failure is reported and the next row runs)
                fail(what, exc, Line(spec.name, prec=prec))
    for item, check in (("evaluator", check_evaluator), ("cam", check_cam)):
        if item not in args.only or over_budget(item):
            continue
        try:
            begin = time.perf_counter()
            lines.append(check(args.size, device))
            print(f"done {item} in {time.perf_counter() - begin:.1f} s: {lines[-1].measured}, {lines[-1].check}",
                  flush=True)
        except Exception as exc:  # noqa: BLE001
            fail(item, exc, Line(item))

    total = time.perf_counter() - t_start
    print()
    print(format_table(lines))
    for note in notes:
        print(f"note: {note}")
    print(f"total {total:.1f} s (budget {args.budget_s:g} s)")
    failed = bool(failures) or (bool(skipped) and not args.allow_skip)
    for message in failures:
        print(f"FAILED: {message}")
    if skipped:
        print(f"SKIPPED: budget: {', '.join(skipped)}" + (" (allowed)" if args.allow_skip else " (a failure; "
                                                            "--allow-skip accepts it)"))
    print("RESULT: " + ("FAILED" if failed else "OK"), flush=True)
    if args.json:
        record = {"size": args.size, "device": str(device), "device_name": gpu, "torch": torch.__version__,
                  "timm": timm.__version__, "cuda": torch.version.cuda, "steps": steps, "warmup": WARMUP,
                  "precisions": precisions, "budget_s": args.budget_s, "total_s": total, "notes": notes,
                  "lines": [asdict(line) for line in lines], "failures": failures, "skipped": skipped,
                  "ok": not failed}
        Path(args.json).write_text(json.dumps(record, indent=1, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
