"""The training engine: `fit(config)`, `evaluate(...)` (features and their evaluation live in `workbench.features`).

No dataset-name or framework branches live here: datasets come from `workbench.data`, frameworks from
`workbench.methods` (each turns a batch into named loss terms), metrics from `workbench.metrics`.

Model selection is honest: `data.val_ids` training identities are held out, checkpoints are picked on them, and
the test protocol is run once at the end on the selected weights and reported separately.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from workbench import evaluation_store, features
from workbench.config import Config, dataset_kind, dataset_layout
from workbench.features import Features, test_transform  # noqa: F401  (re-exported: the public API)
from workbench.methods import Method, get_method, load_run_model
from workbench.optim import amp_dtype as _amp_dtype
from workbench.optim import build_optimizer, build_scheduler, group_lr, lr_factor, param_groups  # noqa: F401
from workbench.runs import Run, atomic_torch_save, load_weights, save_weights
from workbench.utils import get_device, seed_everything, unwrap_model


class TrainingDiverged(FloatingPointError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------------------------------------------
# Data

def train_recipe_kinds(cfg: Config) -> tuple[str, ...]:
    """The transform kinds of `data.train_recipe`: (visible, infrared) for visible-infrared data, (one,) for
    multi-modal triplets. "auto" (configs saved before the field existed) is the former per-kind choice."""
    from workbench.data.transforms import TRAIN_RECIPES

    kind = dataset_kind(cfg.data.dataset)
    recipe = cfg.data.train_recipe
    if recipe == "auto":
        recipe = "channel_aug" if kind == "vi" else "transreid"
    if recipe not in TRAIN_RECIPES:
        raise ValueError(f"data.train_recipe must be 'auto' or one of {sorted(TRAIN_RECIPES)}, got {recipe!r}")
    kinds = TRAIN_RECIPES[recipe]
    if (len(kinds) == 2) != (kind == "vi"):
        raise ValueError(f"data.train_recipe={recipe!r} is for {'visible-infrared' if len(kinds) == 2 else 'multi-modal'}"
                         f" data, but {cfg.data.dataset!r} is {'visible-infrared' if kind == 'vi' else 'multi-modal'}")
    return kinds


def build_train_loader(cfg: Config, samples: list, *, rank: int = 0, world: int = 1):
    """The PK loader of a training split: (DataLoader, sampler). VI data: (rgb, ir) pairs; triplets: PxK triplets."""
    from workbench.data import samplers, torch_datasets, transforms

    d = cfg.data
    kinds = train_recipe_kinds(cfg)
    if dataset_kind(d.dataset) == "vi":
        rgb = [s for s in samples if s.modality == "rgb"]
        ir = [s for s in samples if s.modality == "ir"]
        dataset = torch_datasets.VIPairDataset(
            rgb, ir,
            transforms.build_train_transform(kinds[0], d.height, d.width, cutswap=d.cutswap),
            transforms.build_train_transform(kinds[1], d.height, d.width),
            cache=d.cache_images)
        sampler = samplers.VIIdentitySampler([s.label for s in rgb], [s.label for s in ir], d.p, d.k,
                                             seed=cfg.run.seed, num_replicas=world, rank=rank,
                                             num_batches=d.batches_per_epoch)
    else:
        dataset = torch_datasets.TripletDataset(samples, transforms.build_train_transform(kinds[0], d.height, d.width),
                                                sync_geometry=d.sync_geometry, cache=d.cache_images)
        sampler = samplers.TripletIdentitySampler([s.label for s in samples], d.p, d.k, seed=cfg.run.seed,
                                                  num_replicas=world, rank=rank, num_batches=d.batches_per_epoch)
    # A private generator: creating the loader's iterator then draws its worker seed from it, not from the global RNG
    # that the augmentations use, so a run resumed mid-epoch sees the same random stream as an uninterrupted one.
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=d.num_workers, collate_fn=torch_datasets.collate,
                        generator=torch.Generator().manual_seed(cfg.run.seed + 1000 * rank))
    return loader, sampler


# ----------------------------------------------------------------------------------------------------------------
# Features and evaluation: the work is in `workbench.features`; here the eval forward defaults to the run's method.

def extract_features(model: nn.Module, samples: Sequence, cfg: Config, *, method: Method | None = None,
                     **kwargs) -> Features:
    """`workbench.features.extract_features` with the config's method as the default eval forward."""
    return features.extract_features(model, samples, cfg, method=method or get_method(cfg.run.method), **kwargs)


def evaluate_splits(model: nn.Module, splits: Sequence, cfg: Config, *, method: Method | None = None, **kwargs):
    """`workbench.features.evaluate_splits` with the config's method as the default eval forward."""
    return features.evaluate_splits(model, splits, cfg, method=method or get_method(cfg.run.method), **kwargs)


def evaluate(model_or_run: nn.Module | Run | str | Path, dataset=None, *, cfg: Config | None = None,
             split_options: dict | None = None, branches=None, rerank: bool = False, cache: bool = True,
             device: str = "auto", progress: bool = True):
    """Evaluate a model (or a run folder) with its dataset's test protocol; returns a `ProtocolResult`.

    Args:
        model_or_run: a model (then pass `cfg`), a `Run`, or a run folder path.
        dataset: a loaded `ReIDDataset`; default: the run's dataset.
        split_options: passed to `dataset.eval_splits` (e.g. `mode="indoor", shot=10` for SYSU-MM01).
        branches: feature branches to evaluate (e.g. ["nir"] or ["rgb", "tir"]); default the retrieval embedding.
        rerank: k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3).
    """
    from workbench.data import load_dataset
    from workbench.metrics import PROTOCOLS, with_rerank

    if isinstance(model_or_run, (str, Path, Run)):
        run = model_or_run if isinstance(model_or_run, Run) else Run(Path(model_or_run))
        cfg = run.config
        model = load_run_model(run, get_device(device))
    else:
        model = model_or_run
        if cfg is None:
            raise ValueError("evaluate(model, ...) needs cfg= (the Config the model was trained with)")
    if dataset is None:
        dataset = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    spec = PROTOCOLS[dataset_layout(cfg.data.dataset)]
    if rerank:
        spec = with_rerank(spec)
    splits = dataset.eval_splits(**(split_options or {}))
    return evaluate_splits(model, splits, cfg, spec=spec, branches=branches, cache=cache, progress=progress)


# ----------------------------------------------------------------------------------------------------------------
# Distributed helpers

@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> tuple[DistInfo, torch.device]:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), get_device(device_pref)
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = get_device(device_pref)
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank), device


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints

def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]) + [random.getstate()[2] or 0],
             "python_version": random.getstate()[0], "numpy": np.random.get_state()[1].tolist(),
             "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((state["python_version"], tuple(int(x) for x in py[:-1]), None))
    np.random.set_state(("MT19937", np.asarray(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------------------
# fit

def fit(cfg: Config, *, resume: bool | str | Path = False, overwrite: bool = False, reuse: bool = False,
        callbacks: Sequence[Callable[[dict], None]] = (), progress: bool = True) -> Run:
    """Train `cfg.run.method` on `cfg.data.dataset`, select on validation identities, test once; return the Run.

    Args:
        resume: False, True (resume the run folder named by cfg.run.name) or a run folder path. A resumed run
            continues from `checkpoints/last.pt` (mid-epoch too) and, on CPU, logs the same losses as an
            uninterrupted run.
        overwrite: replace an existing run folder of the same name (otherwise that is an error).
        reuse: return the latest finished run under `cfg.run.out_dir` with the same recipe instead of training
            again (notebooks re-executed after a finished run); trains when there is none.
        callbacks: called with every logged record (dicts as written to metrics.jsonl).
    """
    from tqdm.auto import tqdm

    from workbench.data import load_dataset
    from workbench.data.validation import holdout_identities

    if reuse and not resume:
        from workbench.runs import find_run

        previous = find_run(cfg)
        if previous is not None:
            print(f"reusing finished run {previous.path} (same recipe); pass reuse=False to train again")
            return previous
    dist_info, device = init_distributed(cfg.run.device)
    if resume:
        run = Run(Path(resume)) if isinstance(resume, (str, Path)) else Run(Path(cfg.run.out_dir) / str(cfg.run.name))
        if not run.last_checkpoint.exists():
            raise FileNotFoundError(f"cannot resume: {run.last_checkpoint} does not exist")
        cfg = _check_resume_config(run.config, cfg)
    elif dist_info.main:
        run = Run.create(cfg, overwrite=overwrite)
    if dist_info.enabled:  # every rank needs the run folder name chosen by rank 0
        import torch.distributed as dist

        holder = [str(run.path) if dist_info.main else None]
        dist.broadcast_object_list(holder, src=0)
        run = Run(Path(holder[0]))
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True)
    seed_everything(cfg.run.seed)

    method = get_method(cfg.run.method)
    dataset = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    if cfg.data.val_ids > 0:
        train_samples, val_query, val_gallery = holdout_identities(dataset.train, cfg.data.val_ids, seed=cfg.run.seed)
    else:
        train_samples, val_query, val_gallery = list(dataset.train), None, None
    num_classes = len({s.label for s in train_samples})
    model = method.build_model(cfg, num_classes).to(device)
    method.setup(model, cfg, train_samples, device)
    loader, sampler = build_train_loader(cfg, train_samples, rank=dist_info.rank, world=dist_info.world)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    amp_dtype = _amp_dtype(cfg.optim, device)  # None: fp32 (optim.amp=false, or not CUDA)
    use_amp = amp_dtype is not None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start_epoch, step, consumed, best = 0, 0, 0, {"score": -1.0, "epoch": None, "metrics": {}}
    train_time = 0.0
    if resume:
        state = torch.load(run.last_checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, step, consumed = state["epoch"], state["step"], state["consumed"]
        resume_sampler_state = state["sampler"]
        best, train_time = state["best"], state["train_time"]
        _set_rng_state(state["rng"])
        run.truncate_metrics(step)
    elif dist_info.main:
        run.save_results({"status": "running", "num_classes": num_classes})

    train_model: nn.Module = model
    if dist_info.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    tb = _tensorboard(run) if cfg.run.tensorboard and dist_info.main else None
    live = _live_plot() if cfg.run.live_plot and dist_info.main else None

    def log(record: dict) -> None:
        if dist_info.main:
            run.log(**record)
            if tb is not None:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                        tb.add_scalar(k, v, record.get("step", 0))
            if live is not None:
                live(run)
        for cb in callbacks:
            cb(record)

    def save_last(epoch: int, consumed_batches: int) -> None:
        if not dist_info.main:
            return
        atomic_torch_save({
            "model": unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "epoch": epoch, "step": step, "consumed": consumed_batches, "best": best,
            "sampler": sampler.state_dict(consumed=consumed_batches) | {"epoch": epoch},
            "train_time": train_time, "rng": _rng_state(),
        }, run.last_checkpoint)

    stop = interrupted = False
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, cfg.optim.epochs):
            sampler.set_epoch(epoch)
            n_batches = len(sampler)  # the whole epoch's share for this rank
            if consumed:  # resumed mid-epoch: skip the batches the checkpoint already trained on
                sampler.load_state_dict(resume_sampler_state)
            method.on_epoch_start(model, epoch)
            train_model.train()
            tick = time.perf_counter()
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", disable=not (progress and dist_info.main),
                       leave=False, initial=consumed, total=n_batches)
            for batch in bar:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    terms = method.training_losses(train_model, batch, cfg)
                total = torch.stack([t.float() for t in terms.values()]).sum()
                if not torch.isfinite(total):
                    bad = {k: float(v.detach()) for k, v in terms.items()}
                    raise TrainingDiverged(
                        f"loss is not finite at epoch {epoch + 1}, step {step + 1}: {bad}. Training stopped; the last "
                        f"good checkpoint is {run.last_checkpoint}. Lower optim.lr, set optim.grad_clip, or check "
                        "the data.")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                if cfg.optim.grad_clip:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                consumed += 1
                values = {f"loss/{k}": float(v.detach()) for k, v in terms.items()} | {"loss/total": float(total.detach())}
                log({"step": step, "epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                     "train_time_s": round(train_time + time.perf_counter() - tick, 3), **values})
                bar.set_postfix(loss=f"{values['loss/total']:.3f}")
                if cfg.run.max_steps is not None and step >= cfg.run.max_steps:
                    stop = True
                    break
            bar.close()
            train_time += time.perf_counter() - tick
            if consumed < n_batches:  # stopped mid-epoch by run.max_steps: a resume continues this epoch
                save_last(epoch, consumed)
                break
            consumed = 0
            scheduler.step()
            if dist_info.main and val_query is not None and (
                    (epoch + 1) % cfg.run.eval_every == 0 or epoch + 1 == cfg.optim.epochs or stop):
                best = _validate(model, method, cfg, val_query, val_gallery, epoch, step, best, run, log)
            save_last(epoch + 1, 0)
            if dist_info.enabled:
                torch.distributed.barrier()
            if stop:
                break
    except KeyboardInterrupt:
        interrupted = True
        save_last(epoch, consumed)
        print(f"interrupted: state saved to {run.last_checkpoint}; continue with fit(cfg, resume='{run.path}')")

    finished = not interrupted and not stop
    results = {"status": "interrupted" if interrupted else ("finished" if finished else "stopped at run.max_steps"),
               "num_classes": num_classes, "best_epoch": best["epoch"], "val": best["metrics"],
               "train_time_s": train_time, "steps": step, "world_size": dist_info.world}
    if dist_info.enabled:
        results["replica_checksums"] = _replica_checksums(model)
    if dist_info.main and not interrupted:
        if not run.best_weights.exists():  # no validation, or stopped before the first one: the last weights
            save_weights(unwrap_model(model).state_dict(), run.best_weights, {"epoch": str(epoch + 1)})
            results["selected"] = "last"
        else:
            results["selected"] = "best validation mAP"
        model.load_state_dict(load_weights(run.best_weights))
        test = evaluation_store.evaluate_and_store(run, model, dataset, cfg, method=method, progress=progress)
        results["test"] = {"mean": test.mean, "std": test.std, "per_trial": test.per_trial.to_dict("records")}
        if cfg.run.test_rerank:  # DAKD's test.sh evaluates with --rerank: report the protocol both ways
            rr = evaluate(model, dataset, cfg=cfg, rerank=True, cache=False, progress=progress)
            results["test_rerank"] = {"mean": rr.mean, "std": rr.std, "per_trial": rr.per_trial.to_dict("records")}
        log({"step": step, "epoch": epoch + 1, **{f"test/{k}": v for k, v in test.mean.items()}})
    if dist_info.main:
        run.save_results(results)
    if tb is not None:
        tb.close()
    if dist_info.enabled:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return run


def _validate(model, method, cfg, val_query, val_gallery, epoch, step, best, run, log) -> dict:
    """Score the held-out identities; save the weights when the validation mAP improves."""
    from workbench.data.registry import EvalSplit

    result = evaluate_splits(model, [EvalSplit(0, "validation", val_query, val_gallery)], cfg, method=method,
                             progress=False)
    metrics = {k: float(v) for k, v in result.mean.items()}
    log({"step": step, "epoch": epoch + 1, **{f"val/{k}": v for k, v in metrics.items()}})
    score = metrics.get("mAP", 0.0)
    if score > best["score"]:
        best = {"score": score, "epoch": epoch + 1, "metrics": metrics}
        save_weights(unwrap_model(model).state_dict(), run.best_weights, {"epoch": str(epoch + 1)})
    return best


def _replica_checksums(model: nn.Module) -> list[float]:
    """Sum of all parameters on every rank (gathered): equal values mean the replicas agree."""
    import torch.distributed as dist

    local = torch.tensor([sum(float(p.detach().double().sum()) for p in unwrap_model(model).parameters())])
    gathered = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return [float(g) for g in gathered]


def _check_resume_config(saved: Config, given: Config) -> Config:
    """A resumed run keeps its saved config; only the stopping point and display options may change."""
    mutable = {("run", "max_steps"), ("optim", "epochs"), ("run", "live_plot"), ("run", "tensorboard")}
    a, b = saved.to_dict(), given.to_dict()
    changes = {}
    for section, values in b.items():
        if not isinstance(values, dict) or section == "method_options":
            if values != a.get(section):
                raise ValueError(f"cannot resume with a different {section}: saved {a.get(section)}, given {values}")
            continue
        for key, value in values.items():
            if key == "name" or a[section].get(key) == value:
                continue
            if (section, key) not in mutable:
                raise ValueError(f"cannot resume with a different {section}.{key}: saved {a[section].get(key)!r}, "
                                 f"given {value!r}. Start a new run instead.")
            changes[f"{section}.{key}"] = value
    return saved.override(**changes)


def _tensorboard(run: Run):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError("run.tensorboard=True needs tensorboard: pip install -e '.[tensorboard]'") from exc
    return SummaryWriter(log_dir=str(run.path / "tensorboard"))


def _live_plot():
    """A callback redrawing the training curves in a notebook (None outside IPython kernels)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or "IPKernelApp" not in shell.config:
        return None
    from workbench.viz.curves import LiveCurves

    return LiveCurves()


