"""The training engine: `fit(config)` (features and evaluation live in `workbench.evaluate`).

No dataset-name or framework branches live here: datasets come from `workbench.data`, frameworks from
`workbench.methods` (each turns a batch into named loss terms), metrics from `workbench.metrics`.

Model selection is honest: `data.val_ids` training identities are held out, checkpoints are picked on them, and
the test protocol is run once at the end on the selected weights and reported separately.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from workbench import evaluation_store
from workbench.config import Config, dataset_kind
from workbench.features import test_transform  # noqa: F401  (re-exported: the public API)
from workbench.methods import Method, get_method
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
# Features and evaluation live in `workbench.evaluate` (the engine's former names, re-exported)

from workbench.evaluate import check_split_options, evaluate, evaluate_splits, extract_features  # noqa: E402,F401

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

class RunInterrupted(KeyboardInterrupt):
    """Training stopped by SIGINT or SIGTERM after saving an exact resume point; the CLI exits with `exit_code`.

    A subclass of `KeyboardInterrupt`, so an uncaught one ends a script as Ctrl-C does.
    """

    def __init__(self, message: str, signum: int, run_path: Path | None) -> None:
        super().__init__(message)
        self.signum, self.run_path = signum, run_path

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM (the shell convention)


class _StopSignals:
    """SIGINT and SIGTERM while `fit` runs (main thread only; elsewhere Ctrl-C arrives as KeyboardInterrupt).

    While `deferred` (a training step, a checkpoint write) a signal is only noted and training stops after the
    step, where the state is consistent, so the saved checkpoint resumes exactly. Otherwise (building the model,
    per-epoch method work, validation, the test) it interrupts at once and the last consistent state is saved.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferred = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        if not self.deferred:
            raise KeyboardInterrupt

    def immediate(self) -> None:
        """Leave the deferred phase; a signal noted during it interrupts now."""
        self.deferred = False
        if self.signum is not None:
            raise KeyboardInterrupt


def fit(cfg: Config, *, resume: bool | str | Path = False, overwrite: bool = False, reuse: bool = False,
        callbacks: Sequence[Callable[[dict], None]] = (), progress: bool = True) -> Run:
    """Train `cfg.run.method` on `cfg.data.dataset`, select on validation identities, test once; return the Run.

    Everything that can be wrong with the request (config values, the run name, the dataset and its test split,
    the model and its pretrained weights, the method's teacher, P x K) is checked before the run folder is made, or
    an existing one replaced: a failed start leaves nothing behind.

    The run's status (`workbench.runs.TRANSITIONS`) is "running" while training, then "finished", "stopped"
    (run.max_steps), "interrupted" (SIGINT / SIGTERM: the state is saved and `RunInterrupted` raised) or "failed"
    (an error, e.g. `TrainingDiverged`; the error is recorded in results.json).

    Args:
        resume: False, True (resume the run folder named by cfg.run.name) or a run folder path. A resumed run
            continues from `checkpoints/last.pt`, wherever it stopped (mid-epoch, during validation, during a
            checkpoint write), and on CPU logs the same losses as an uninterrupted run. A run that stopped before
            its first checkpoint starts over. A finished run is not resumed.
        overwrite: replace an existing run folder of the same name inside `cfg.run.out_dir` (only a folder the run
            store made, and only after the checks above passed); otherwise an existing run is an error.
        reuse: return the latest finished run under `cfg.run.out_dir` with the same recipe instead of training
            again (notebooks re-executed after a finished run); trains when there is none.
        callbacks: called with every logged record (dicts as written to metrics.jsonl).

    Raises:
        RunInterrupted: SIGINT or SIGTERM; the state was saved, resume with `fit(cfg, resume=run_path)`.
        TrainingDiverged: a non-finite loss.
    """
    from workbench.runs import find_run, load_checkpoint

    cfg.validate()
    if reuse and not resume:
        previous = find_run(cfg)
        if previous is not None:
            print(f"reusing finished run {previous.path} (same recipe); pass reuse=False to train again")
            return previous
    dist_info, device = init_distributed(cfg.run.device)
    run: Run | None = None
    started = False  # whether this call moved the run to "running" (then it owns the final status)
    sig = _StopSignals()
    with sig:
        try:
            if resume:
                run = _open_for_resume(resume, cfg, dist_info.main)
                cfg = _check_resume_config(run.config, cfg)
            elif dist_info.main:
                Run.check_target(cfg, overwrite=overwrite)  # early: a name that escapes, a run that exists
            setup = _prepare(cfg, device, dist_info)
            state = None
            if resume and run.last_checkpoint.exists():
                state = load_checkpoint(run.last_checkpoint)
                needed = state["epoch"] + (1 if state["consumed"] else 0)
                if needed > cfg.optim.epochs:
                    raise ValueError(f"optim.epochs={cfg.optim.epochs} is below the {needed} epoch(s) run {run.path} "
                                     "has already started; resume with optim.epochs >= that")
            elif resume:
                print(f"{run.path} has no checkpoint yet: training starts from the first step")
            elif dist_info.main:
                run = Run.create(cfg, overwrite=overwrite).lock()
            if dist_info.enabled:  # every rank needs the run folder name chosen by rank 0
                import torch.distributed as dist

                holder = [str(run.path) if dist_info.main else None]
                dist.broadcast_object_list(holder, src=0)
                run = Run(Path(holder[0]))
            if dist_info.main:
                if resume and state is not None and cfg != run.config:
                    cfg.save(run.path / "config.json")  # the new stopping point, so the record says what ran
                run.set_status("running", num_classes=setup.num_classes, pid=os.getpid(),
                               world_size=dist_info.world)
                started = True
            return _train(cfg, run, setup, state, dist_info, device, sig, callbacks, progress)
        except KeyboardInterrupt as exc:
            signum = sig.signum or signal.SIGINT
            if isinstance(exc, RunInterrupted) or run is None or not started or not dist_info.main:
                raise
            run.set_status("interrupted", signal=signal.Signals(signum).name)
            raise RunInterrupted(
                f"interrupted by {signal.Signals(signum).name}: state saved to {run.last_checkpoint}; continue "
                f"with fit(cfg, resume='{run.path}') or python -m workbench train --resume {run.path}",
                signum, run.path) from None
        except BaseException as exc:
            if run is not None and started and dist_info.main:
                run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if run is not None:
                run.unlock()


def _open_for_resume(resume: bool | str | Path, cfg: Config, main: bool) -> Run:
    """The run to resume, locked; refuses a finished run, a run another process writes, a folder that is no run."""
    from workbench.runs import RESUMABLE, load_run

    path = Path(resume) if isinstance(resume, (str, Path)) else Path(cfg.run.out_dir) / str(cfg.run.name)
    run = load_run(path)
    if not main:
        return run
    run.lock()
    status = run.status
    if status == "finished":
        run.unlock()
        raise ValueError(f"run {run.path} is finished; a finished run is not resumed (its results would no longer "
                         f"match its checkpoints). To train longer, start a new run from its weights: "
                         f"model.pretrained={run.path}")
    if status not in RESUMABLE and status != "running":
        run.unlock()
        raise ValueError(f"run {run.path} has status {status!r} and cannot be resumed")
    return run


@dataclass
class _Setup:
    """Everything `fit` builds before the run folder exists (all of it validates the request)."""

    method: Method
    dataset: Any
    train_samples: list
    val_query: list | None
    val_gallery: list | None
    num_classes: int
    model: nn.Module
    loader: DataLoader
    sampler: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    use_amp: bool
    amp_dtype: torch.dtype


def _prepare(cfg: Config, device: torch.device, dist_info: DistInfo) -> _Setup:
    from workbench.data import load_dataset
    from workbench.data.base import check_eval_splits
    from workbench.data.validation import holdout_identities

    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True)
    seed_everything(cfg.run.seed)
    method = get_method(cfg.run.method)
    dataset = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    check_eval_splits(dataset)  # empty query/gallery, unreadable test images: now, not after training
    if cfg.data.val_ids > 0:
        train_samples, val_query, val_gallery = holdout_identities(dataset.train, cfg.data.val_ids, seed=cfg.run.seed)
    else:
        train_samples, val_query, val_gallery = list(dataset.train), None, None
    num_classes = len({s.label for s in train_samples})
    model = method.build_model(cfg, num_classes).to(device)
    method.setup(model, cfg, train_samples, device)
    try:
        loader, sampler = build_train_loader(cfg, train_samples, rank=dist_info.rank, world=dist_info.world)
    except ValueError as exc:
        if cfg.data.val_ids > 0 and "identities" in str(exc):
            n_ids = len({x.pid for x in dataset.train})
            raise ValueError(f"{exc} (data.val_ids={cfg.data.val_ids} of the {n_ids} training identities are held "
                             "out for validation: lower data.val_ids or data.p)") from None
        raise
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    amp_dtype = _amp_dtype(cfg.optim, device)  # None: fp32 (optim.amp=false, or not CUDA)
    use_amp = amp_dtype is not None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    return _Setup(method, dataset, train_samples, val_query, val_gallery, num_classes, model, loader, sampler,
                  optimizer, scheduler, scaler, use_amp, amp_dtype)


def _train(cfg: Config, run: Run, s: _Setup, state: dict | None, dist_info: DistInfo, device: torch.device,
           sig: _StopSignals, callbacks: Sequence[Callable[[dict], None]], progress: bool) -> Run:
    """The training loop of `fit`, from the start or from a checkpoint `state`."""
    from tqdm.auto import tqdm

    model, method, optimizer, scheduler, scaler, sampler = s.model, s.method, s.optimizer, s.scheduler, s.scaler, s.sampler
    start_epoch, step, consumed, best = 0, 0, 0, {"score": -1.0, "epoch": None, "metrics": {}}
    train_time, pending_validation, method_state, resume_sampler_state = 0.0, False, None, None
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ValueError(f"checkpoint {run.last_checkpoint} does not fit this run's model and optimiser "
                             f"({str(exc).splitlines()[0][:200]}); was config.json edited?") from None
        start_epoch, step, consumed = state["epoch"], state["step"], state["consumed"]
        resume_sampler_state, method_state = state["sampler"], state.get("method")
        best, train_time = state["best"], state["train_time"]
        pending_validation = bool(state.get("pending_validation", False))
        _set_rng_state(state["rng"])
    if dist_info.main:
        run.truncate_metrics(step, drop_val_at_step=pending_validation)
    epochs_done = start_epoch

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

    def save_last(epoch: int, consumed_batches: int, *, pending: bool = False, rng: dict | None = None,
                  best_record: dict | None = None) -> None:
        """The training state at a consistent point (`pending`: the epoch-end validation is still to run)."""
        if not dist_info.main:
            return
        deferred, sig.deferred = sig.deferred, True  # a signal during the write waits for it to finish
        atomic_torch_save({
            "model": unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "epoch": epoch, "step": step, "consumed": consumed_batches,
            "best": best if best_record is None else best_record, "pending_validation": pending,
            "sampler": sampler.state_dict(consumed=consumed_batches) | {"epoch": epoch},
            "method": method.state_dict(), "train_time": train_time, "rng": rng or _rng_state(),
        }, run.last_checkpoint)
        sig.deferred = deferred

    def validate(epoch_done: int) -> None:
        """Validation at an epoch boundary; an interrupt during it saves the boundary state, validation pending."""
        nonlocal best, on_interrupt
        snapshot = {"rng": _rng_state(), "best_record": dict(best)}
        on_interrupt = lambda: save_last(epoch_done, 0, pending=True, **snapshot)  # noqa: E731
        sig.immediate()
        best = _validate(model, method, cfg, s.val_query, s.val_gallery, epoch_done - 1, step, best, run, log)
        on_interrupt = None

    on_interrupt: Callable[[], None] | None = None
    stop = False
    epoch = start_epoch
    try:
        if pending_validation and dist_info.main:  # resumed at an epoch boundary whose validation was interrupted
            validate(start_epoch)
            sig.deferred = True
            save_last(start_epoch, 0)
        for epoch in range(start_epoch, cfg.optim.epochs):
            sig.immediate()  # per-epoch method work is interruptible at once; last.pt already holds this boundary
            sampler.set_epoch(epoch)
            n_batches = len(sampler)  # the whole epoch's share for this rank
            if consumed:  # resumed mid-epoch: skip the trained batches, restore the method's per-epoch state
                sampler.load_state_dict(resume_sampler_state)
                method.load_state_dict(method_state or {})
            else:
                method.on_epoch_start(model, epoch)
            train_model.train()
            tick = time.perf_counter()
            sig.deferred = True
            bar = tqdm(s.loader, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
                       disable=not (progress and dist_info.main), leave=False, initial=consumed, total=n_batches)
            for batch in bar:
                with torch.autocast(device.type, dtype=s.amp_dtype, enabled=s.use_amp):
                    terms = method.training_losses(train_model, batch, cfg)
                total = torch.stack([t.float() for t in terms.values()]).sum()
                if not torch.isfinite(total):
                    bad = {k: float(v.detach()) for k, v in terms.items()}
                    where = (f"the last good checkpoint is {run.last_checkpoint}" if run.last_checkpoint.exists()
                             else "no checkpoint was written yet (the first is saved at the end of epoch 1)")
                    raise TrainingDiverged(
                        f"loss is not finite at epoch {epoch + 1}, step {step + 1}: {bad}. Training stopped; {where}. "
                        "Start a new run with a lower optim.lr or with optim.grad_clip set, or check the data.")
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
                if sig.signum is not None:  # a signal during this step: stop here, where the state is exact
                    train_time += time.perf_counter() - tick
                    save_last(epoch, consumed)
                    raise KeyboardInterrupt
                if cfg.run.max_steps is not None and step >= cfg.run.max_steps:
                    stop = True
                    break
            bar.close()
            train_time += time.perf_counter() - tick
            if consumed < n_batches:  # stopped mid-epoch by run.max_steps: a resume continues this epoch
                save_last(epoch, consumed)
                break
            consumed = 0
            with warnings.catch_warnings():  # resumed right at an epoch end: no optimiser step yet in this process
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                scheduler.step()
            epochs_done = epoch + 1
            if dist_info.main and s.val_query is not None and (
                    (epoch + 1) % cfg.run.eval_every == 0 or epoch + 1 == cfg.optim.epochs):
                validate(epoch + 1)
            sig.deferred = True
            save_last(epoch + 1, 0)
            if dist_info.enabled:
                torch.distributed.barrier()
            if stop:
                break
        sig.immediate()
    except KeyboardInterrupt:
        sig.deferred = True  # further signals wait while the state is written
        if on_interrupt is not None:
            on_interrupt()
        raise

    finished = not stop
    results = {"num_classes": s.num_classes, "best_epoch": best["epoch"], "val": best["metrics"],
               "train_time_s": train_time, "steps": step, "epochs_done": epochs_done,
               "world_size": dist_info.world}
    if dist_info.enabled:
        results["replica_checksums"] = _replica_checksums(model)
    if dist_info.main:
        if run.best_weights.exists():
            results["selected"] = "best validation mAP"
            model.load_state_dict(load_weights(run.best_weights))
        elif finished:  # no validation: the last weights are the run's weights
            save_weights(unwrap_model(model).state_dict(), run.best_weights, {"epoch": str(epochs_done)})
            results["selected"] = "last"
        else:  # stopped before any validation: test the current weights, keep best.safetensors for a selection
            results["selected"] = "current (stopped before any validation)"
        test = evaluation_store.evaluate_and_store(run, model, s.dataset, cfg, method=s.method, progress=progress)
        results["test"] = {"mean": test.mean, "std": test.std, "per_trial": test.per_trial.to_dict("records")}
        if cfg.run.test_rerank:  # DAKD's test.sh evaluates with --rerank: report the protocol both ways
            rr = evaluate(model, s.dataset, cfg=cfg, rerank=True, cache=False, progress=progress)
            results["test_rerank"] = {"mean": rr.mean, "std": rr.std, "per_trial": rr.per_trial.to_dict("records")}
        log({"step": step, "epoch": epochs_done, **{f"test/{k}": v for k, v in test.mean.items()}})
        if finished:
            run.set_status("finished", **results)
        else:
            run.set_status("stopped", stop_reason=f"run.max_steps={cfg.run.max_steps}", **results)
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
    mutable = {("run", "max_steps"), ("optim", "epochs"), ("run", "live_plot"), ("run", "tensorboard"),
               ("run", "out_dir")}  # out_dir: a run folder moved or copied elsewhere
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


