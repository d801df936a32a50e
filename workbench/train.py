"""The training engine: `fit(config)`, read top to bottom, and the parts it is made of.

    fit      check the request -> prepare -> open or create the run -> restore -> train -> finish
    train    per epoch: start_epoch, train_one_epoch (train_step each batch), end_epoch, validate_and_select,
             save_checkpoint
    finish   the selected weights, the test protocol once, results.json and the final status

What a resume needs lives in `workbench.checkpoint` (`TrainState`, capture / restore), the run folder in
`workbench.runs`, data-parallel helpers in `workbench.distributed`, the training loader in `workbench.data.loaders`.
No dataset-name or framework branches live here: datasets come from `workbench.data`, frameworks from
`workbench.methods` (each turns a batch into named loss terms), metrics from `workbench.metrics`.

Model selection is honest: `data.val_ids` training identities are held out, checkpoints are picked on them, and
the test protocol is run once at the end on the selected weights and reported separately.

Signals (SIGINT, SIGTERM) are deferred while a step or a checkpoint write runs and immediate elsewhere
(`StopSignals.deferred`); whatever the point, the state saved is one a resume continues from exactly.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from workbench import checkpoint, distributed
from workbench import evaluate as _evaluate
from workbench.checkpoint import TrainState
from workbench.config import Config
from workbench.data.loaders import build_train_loader, train_recipe_kinds  # noqa: F401  (old home, notebooks)
from workbench.distributed import DistInfo
from workbench.features import test_transform  # noqa: F401  (re-exported: the public API)
from workbench.methods import Method, get_method
from workbench.optim import amp_dtype as _amp_dtype
from workbench.optim import build_optimizer, build_scheduler, group_lr, lr_factor, param_groups  # noqa: F401
from workbench.runs import RESUMABLE, Run, find_run, load_run, load_weights, run_path, save_weights
from workbench.utils import in_kernel, seed_everything, unwrap_model


class TrainingDiverged(FloatingPointError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


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


class StopSignals:
    """SIGINT and SIGTERM while `fit` runs (main thread only; elsewhere Ctrl-C arrives as KeyboardInterrupt).

    Inside `with stops.deferred():` (a training epoch's steps, a checkpoint write) a signal is only noted: the loop
    stops after the step it arrived in, or the block ends and raises `KeyboardInterrupt` then, where the state is
    consistent. Elsewhere (building the model, per-epoch method work, validation, the test) it interrupts at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferred = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
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
        if not self._deferred:
            self._deferred = True  # from here on signals wait: the interrupted state is being written
            raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        """Whether a signal has arrived."""
        return self.signum is not None

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A block during which a signal is only noted; leaving it, a noted signal interrupts. Once an interrupt is
        under way (raised here or in the block) every further signal waits, so its state is written whole."""
        outer, self._deferred = self._deferred, True
        try:
            yield
        except KeyboardInterrupt:
            raise
        except BaseException:
            self._deferred = outer
            raise
        if not outer and self.requested:
            raise KeyboardInterrupt
        self._deferred = outer

    def hold(self) -> None:
        """Defer every further signal (training is being interrupted and its state written)."""
        self._deferred = True


# ------------------------------------------------------------------------------------------------------------- fit

def fit(cfg: Config, *, resume: bool | str | Path = False, overwrite: bool = False, reuse: bool = False,
        callbacks: Sequence[Callable[[dict], None]] = (), progress: bool = True) -> Run:
    """Train `cfg.run.method` on `cfg.data.dataset`, select on validation identities, test once; return the Run.

    Everything that can be wrong with the request (config values, the run name, the dataset and its test split,
    the model and its pretrained weights, the method's teacher, P x K) is checked before the run folder is made, or
    an existing one replaced: a failed start leaves nothing behind.

    The run's status (`workbench.runs.TRANSITIONS`) is "running" while training, then "finished", "stopped"
    (run.max_steps), "interrupted" (SIGINT / SIGTERM: the state is saved and `RunInterrupted` raised) or "failed"
    (an error, e.g. `TrainingDiverged`; the error is recorded in status.json).

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
    cfg.validate()
    if reuse and not resume and (previous := find_run(cfg)) is not None:
        print(f"reusing finished run {previous.path} (same recipe); pass reuse=False to train again")
        return previous
    dist_info, device = distributed.init_distributed(cfg.run.device)
    with StopSignals() as stops, _Attempt(stops, dist_info.main) as attempt:
        run = attempt.hold(_open_for_resume(resume, cfg, dist_info.main)) if resume else None
        if run is not None:
            cfg = _check_resume_config(run.config, cfg)
        elif dist_info.main:
            Run.check_target(cfg, overwrite=overwrite)  # early: a name that escapes, a run that exists
        parts = prepare(cfg, device, dist_info)  # every other check of the request, before a folder is made
        start = start_fingerprints(parts)
        saved = _resume_point(run, cfg, start) if run is not None else None
        if run is None and dist_info.main:
            run = attempt.hold(Run.create(cfg, overwrite=overwrite, start=start).lock())
        run = attempt.hold(_shared_run(run, dist_info))
        attempt.start(cfg, resumed=saved is not None, num_classes=parts.num_classes, world_size=dist_info.world)
        state = checkpoint.restore(saved, parts, source=run.last_checkpoint) if saved else TrainState()
        trainer = _trainer(cfg, run, parts, state, dist_info, stops, callbacks, progress)
        train(trainer, state)
        return finish(trainer, state)


def _open_for_resume(resume: bool | str | Path, cfg: Config, main: bool) -> Run:
    """The run to resume, locked; refuses a finished run, a run another process writes, a folder that is no run."""
    if not isinstance(resume, (str, Path)) and cfg.run.name is None:
        raise ValueError("resume=True continues the run named by run.name, which is not set; pass the run folder "
                         "instead: fit(cfg, resume='runs/NAME')")
    run = load_run(resume if isinstance(resume, (str, Path)) else run_path(cfg))
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


def _check_resume_config(saved: Config, given: Config) -> Config:
    """A resumed run keeps its saved config; only the stopping point and display options may change."""
    mutable = {("run", "max_steps"), ("optim", "epochs"), ("run", "live_plot"), ("run", "tensorboard"),
               ("run", "log_every"), ("run", "out_dir")}  # out_dir: a run folder moved or copied elsewhere
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


def _resume_point(run: Run, cfg: Config, start: dict[str, str]) -> dict | None:
    """The run's last checkpoint, checked against `optim.epochs` and the run's recorded start (the same initial
    weights and data); None when it has none yet (it starts over)."""
    if not run.last_checkpoint.exists():
        print(f"{run.path} has no checkpoint yet: training starts from the first step")
        return None
    run.check_start(start)
    saved = checkpoint.load(run.last_checkpoint)
    needed = saved["epoch"] + (1 if saved["consumed"] else 0)
    if needed > cfg.optim.epochs:
        raise ValueError(f"optim.epochs={cfg.optim.epochs} is below the {needed} epoch(s) run {run.path} "
                         "has already started; resume with optim.epochs >= that")
    return saved


def _shared_run(run: Run | None, dist_info: DistInfo) -> Run:
    """Every rank's handle on the run folder (rank 0 chose it: an automatic name is known only there)."""
    path = distributed.broadcast_object(str(run.path) if dist_info.main else None, dist_info)
    return run if dist_info.main else load_run(path)


class _Attempt:
    """One fit() call's hold on its run folder: the lock is released at the end, and an attempt that ends by a
    signal is recorded "interrupted" (raised as `RunInterrupted`), one that ends by an error "failed"."""

    def __init__(self, stops: StopSignals, main: bool) -> None:
        self.stops, self.main = stops, main
        self.run: Run | None = None
        self.started = False  # this call moved the run to "running": it owns the final status

    def __enter__(self) -> _Attempt:
        return self

    def hold(self, run: Run | None) -> Run | None:
        self.run = run
        return run

    def start(self, cfg: Config, *, resumed: bool, num_classes: int, world_size: int) -> None:
        """Move the run to "running" (rank 0): config.json says what runs now, results.json starts over."""
        if not self.main:
            return
        if resumed and cfg != self.run.config:
            self.run.save_config(cfg)  # the new stopping point, so the record says what ran
        self.run.start_attempt(num_classes=num_classes, world_size=world_size)
        self.started = True

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> bool:
        try:
            if exc is None or not (self.started and self.main) or isinstance(exc, RunInterrupted):
                return False
            self.stops.hold()  # further signals wait while the status is written
            if isinstance(exc, KeyboardInterrupt):
                signum = self.stops.signum or signal.SIGINT
                name = signal.Signals(signum).name
                self.run.set_status("interrupted", signal=name)
                raise RunInterrupted(
                    f"interrupted by {name}: state saved to {self.run.last_checkpoint}; continue with "
                    f"fit(cfg, resume='{self.run.path}') or python -m workbench train --resume {self.run.path}",
                    signum, self.run.path) from None
            self.run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            return False
        finally:
            if self.run is not None:
                self.run.unlock()


# --------------------------------------------------------------------------------------------------------- prepare

def start_fingerprints(parts: Prepared) -> dict[str, str]:
    """What a run starts from, as fingerprints recorded in environment.json: the model's weights before the first
    step (pretrained file, stand-in, seeded initialisation) and the dataset's files (`features.data_fingerprint`)."""
    from workbench.features import data_fingerprint, state_fingerprint

    return {"weights": state_fingerprint(unwrap_model(parts.model)), "data": data_fingerprint(parts.dataset)}


@dataclass
class Prepared:
    """Everything `fit` builds before the run folder exists (all of it validates the request)."""

    method: Method
    dataset: Any
    train_samples: list
    val_splits: list | None  # the held-out identities' validation rounds (data.val_draws gallery draws), or None
    num_classes: int
    model: nn.Module
    loader: DataLoader
    sampler: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    use_amp: bool
    amp_dtype: torch.dtype | None
    device: torch.device


def prepare(cfg: Config, device: torch.device, dist_info: DistInfo) -> Prepared:
    """Seed, load the dataset (its test split checked now), hold out the validation identities, build the model,
    the method's state, the loader, the optimiser, the schedule and the gradient scaler."""
    from workbench.data import load_dataset
    from workbench.data.base import check_eval_splits
    from workbench.data.validation import validation_splits

    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True)
    seed_everything(cfg.run.seed)
    method = get_method(cfg.run.method)
    dataset = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    check_eval_splits(dataset)  # empty query/gallery, unreadable test images: now, not after training
    if cfg.data.val_ids > 0:
        train_samples, val_splits = validation_splits(dataset.train, cfg.data.val_ids, seed=cfg.run.seed,
                                                      draws=cfg.data.val_draws)
    else:
        train_samples, val_splits = list(dataset.train), None
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
    return Prepared(method, dataset, train_samples, val_splits, num_classes, model, loader, sampler,
                    optimizer, scheduler, scaler, use_amp, amp_dtype, device)


# ------------------------------------------------------------------------------------------------------ the loop

@dataclass
class Trainer:
    """One fit() call's training: the prepared parts, the run folder it writes, how it logs and how it stops."""

    cfg: Config
    run: Run
    parts: Prepared
    model: nn.Module  # what a step calls: parts.model, inside DistributedDataParallel when data-parallel
    dist: DistInfo
    stops: StopSignals
    log: TrainLog
    progress: bool


def _trainer(cfg: Config, run: Run, parts: Prepared, state: TrainState, dist_info: DistInfo, stops: StopSignals,
             callbacks: Sequence[Callable[[dict], None]], progress: bool) -> Trainer:
    """The loop's view of a run at `state`: metrics.jsonl cut back to it, the model wrapped, the loggers open."""
    if dist_info.main:
        run.truncate_metrics(state.step, drop_val_at_step=state.pending_validation)
    model = distributed.wrap_model(parts.model, dist_info, parts.device)
    log = TrainLog(run, build_loggers(run, cfg, dist_info, callbacks), every=cfg.run.log_every)
    return Trainer(cfg, run, parts, model, dist_info, stops, log, progress)


def train(t: Trainer, state: TrainState) -> None:
    """The epochs from `state` to `optim.epochs` (or `run.max_steps`): train, validate, save a checkpoint, per epoch.

    On an interrupt, a state that last.pt does not hold yet (the steps since it, an epoch end, a boundary whose
    validation was cut short) is saved first, so a resume continues exactly.
    """
    try:
        if state.pending_validation:  # resumed at an epoch boundary whose validation was interrupted
            validate_and_select(t, state)
            save_checkpoint(t, state)
        while state.epoch < t.cfg.optim.epochs and not state.stopped:
            start_epoch(t, state)
            with t.stops.deferred():
                if not train_one_epoch(t, state):  # stopped mid-epoch by run.max_steps: a resume continues it
                    save_checkpoint(t, state)
                    break
                end_epoch(t, state)
            validate_and_select(t, state)
            save_checkpoint(t, state)
            distributed.barrier(t.dist)
    except KeyboardInterrupt:
        t.stops.hold()  # further signals wait while the state is written
        if state.unsaved:
            save_checkpoint(t, state)
        raise


def start_epoch(t: Trainer, state: TrainState) -> None:
    """The sampler's epoch and the method's per-epoch work (e.g. DAKD's memories; restored instead when resumed
    mid-epoch). Interruptible at once: last.pt already holds this point."""
    t.parts.sampler.set_epoch(state.epoch)
    if not state.consumed:
        t.parts.method.on_epoch_start(t.parts.model, state.epoch)
    t.model.train()


def train_one_epoch(t: Trainer, state: TrainState) -> bool:
    """Train the rest of epoch `state.epoch`, from batch `state.consumed`; True when every batch of it is trained,
    False when `run.max_steps` stopped it. A signal during a step stops it after that step (KeyboardInterrupt)."""
    from tqdm.auto import tqdm

    n_batches = len(t.parts.sampler)  # the whole epoch's share for this rank
    bar = tqdm(t.parts.loader, desc=f"epoch {state.epoch + 1}/{t.cfg.optim.epochs}", leave=False,
               disable=not (t.progress and t.dist.main), initial=state.consumed, total=n_batches)
    tick = time.perf_counter()
    for batch in bar:
        terms, total = train_step(t, batch)
        now = time.perf_counter()
        state.step, state.consumed, state.unsaved = state.step + 1, state.consumed + 1, True
        state.train_time, tick = state.train_time + now - tick, now
        head = {"step": state.step, "epoch": state.epoch + 1, "lr": t.parts.optimizer.param_groups[0]["lr"],
                "train_time_s": round(state.train_time, 3)}
        written = t.log.step(head, terms, total)
        if written:
            bar.set_postfix(loss=f"{written[-1]['loss/total']:.3f}")
        if t.stops.requested:  # a signal during this step: stop here, where the state is exact
            t.log.flush()
            raise KeyboardInterrupt
        if t.cfg.run.max_steps is not None and state.step >= t.cfg.run.max_steps:
            state.stopped = True
            break
    bar.close()
    state.train_time += time.perf_counter() - tick
    t.log.flush()
    return state.consumed >= n_batches


def train_step(t: Trainer, batch: Any) -> tuple[dict[str, Tensor], Tensor]:
    """One optimiser step on a batch; returns the method's loss terms and their sum (device tensors, not synced)."""
    p, cfg = t.parts, t.cfg
    with torch.autocast(p.device.type, dtype=p.amp_dtype, enabled=p.use_amp):
        terms = p.method.training_losses(t.model, batch, cfg)
    total = torch.stack([v.float() for v in terms.values()]).sum()
    p.optimizer.zero_grad(set_to_none=True)
    p.scaler.scale(total).backward()
    if cfg.optim.grad_clip:
        p.scaler.unscale_(p.optimizer)
        nn.utils.clip_grad_norm_(p.model.parameters(), cfg.optim.grad_clip)
    p.scaler.step(p.optimizer)
    p.scaler.update()
    return terms, total


def end_epoch(t: Trainer, state: TrainState) -> None:
    """The epoch boundary: the schedule steps, and the boundary's validation is owed when one is due (rank 0)."""
    state.consumed = 0
    with warnings.catch_warnings():  # resumed right at an epoch end: no optimiser step yet in this process
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        t.parts.scheduler.step()
    state.epoch += 1
    state.unsaved = True
    state.pending_validation = t.dist.main and t.parts.val_splits is not None and (
        state.epoch % t.cfg.run.eval_every == 0 or state.epoch == t.cfg.optim.epochs)


def validate_and_select(t: Trainer, state: TrainState) -> None:
    """Run a pending validation of the held-out identities; save the weights when the validation mAP improves.

    Until it completes `state` stays the boundary with its validation pending (and the RNG as before it), which is
    what an interrupt during it saves.
    """
    if not (state.pending_validation and t.dist.main):
        return
    state.rng = checkpoint.rng_state()
    metrics = score_validation(t.parts, t.cfg)
    t.log.write({"step": state.step, "epoch": state.epoch, **{f"val/{k}": v for k, v in metrics.items()}})
    best = state.best
    if metrics.get("mAP", 0.0) > best["score"]:
        best = {"score": metrics.get("mAP", 0.0), "epoch": state.epoch, "metrics": metrics}
        save_weights(unwrap_model(t.parts.model).state_dict(), t.run.best_weights, {"epoch": str(state.epoch)})
    state.best, state.pending_validation, state.rng = best, False, None


def score_validation(parts: Prepared, cfg: Config) -> dict[str, float]:
    """The validation metrics of the held-out identities: each metric's mean over the `data.val_draws` gallery
    draws (features are extracted once) and, as `<metric>_std`, their standard deviation. Selection follows the mean
    mAP, not one draw."""
    result = _evaluate.evaluate_splits(parts.model, parts.val_splits, cfg, method=parts.method, progress=False)
    scores = {k: float(v) for k, v in result.mean.items()}
    if len(parts.val_splits) > 1:
        scores |= {f"{k}_std": float(v) for k, v in result.std.items()}
    return scores


def save_checkpoint(t: Trainer, state: TrainState) -> None:
    """last.pt at the consistent point `state`, once every step in it is logged (and so checked finite); rank 0
    writes it, atomically, and a signal waits for the write."""
    with t.stops.deferred():
        t.log.flush()
        if t.dist.main:
            checkpoint.save(checkpoint.capture(state, t.parts), t.run.last_checkpoint)
        state.unsaved = False


# ----------------------------------------------------------------------------------------------------------- finish

def finish(t: Trainer, state: TrainState) -> Run:
    """The end of a run: the selected weights, the test protocol once, results.json and the final status."""
    p, cfg, run = t.parts, t.cfg, t.run
    results = {"num_classes": p.num_classes, "best_epoch": state.best["epoch"], "val": state.best["metrics"],
               "train_time_s": state.train_time, "steps": state.step, "epochs_done": state.epoch,
               "world_size": t.dist.world}
    if t.dist.enabled:
        results["replica_checksums"] = distributed.replica_checksums(p.model)
    if t.dist.main:
        results["selected"] = _select_weights(t, state)
        test = _evaluate.evaluate_and_store(run, p.model, p.dataset, cfg, method=p.method, progress=t.progress)
        results["test"] = _scores(test)
        if cfg.run.test_rerank:  # DAKD's test.sh evaluates with --rerank: report the protocol both ways
            results["test_rerank"] = _scores(_evaluate.evaluate_and_store(
                run, p.model, p.dataset, cfg, method=p.method, rerank=True, progress=t.progress))
        t.log.write({"step": state.step, "epoch": state.epoch, **{f"test/{k}": v for k, v in test.mean.items()}})
        run.save_results(results)
        if state.stopped:
            run.set_status("stopped", stop_reason=f"run.max_steps={cfg.run.max_steps}")
        else:
            run.set_status("finished")
    t.log.close()
    distributed.shutdown(t.dist)
    return run


def _select_weights(t: Trainer, state: TrainState) -> str:
    """Put the weights the run reports into the model; returns how they were chosen."""
    run, model = t.run, t.parts.model
    if run.best_weights.exists():
        model.load_state_dict(load_weights(run.best_weights))
        return "best validation mAP"
    if not state.stopped:  # no validation: the last weights are the run's weights
        save_weights(unwrap_model(model).state_dict(), run.best_weights, {"epoch": str(state.epoch)})
        return "last"
    return "current (stopped before any validation)"  # best.safetensors stays free for a later selection


def _scores(result: Any) -> dict[str, Any]:
    """A `ProtocolResult` as results.json keeps it."""
    return {"mean": result.mean, "std": result.std, "per_trial": result.per_trial.to_dict("records")}


# ---------------------------------------------------------------------------------------------------------- logging

Logger = Callable[[list[dict]], None]  # called with the records logged since its last call, in order


class TrainLog:
    """A run's records, to its loggers in order. A training step's loss terms stay on the device: every
    `run.log_every` steps (and before anything else is logged or saved) they cross to the host in one copy, are
    checked finite and written, one record per step. A non-finite loss raises `TrainingDiverged` naming its step;
    the steps before it are written, nothing after it is (nor saved: a checkpoint flushes first)."""

    def __init__(self, run: Run, loggers: list[Logger], every: int = 1) -> None:
        self.run, self.loggers, self.every = run, loggers, every
        self._steps: list[tuple[dict, list[str], Tensor]] = []

    def step(self, head: dict, terms: dict[str, Tensor], total: Tensor) -> list[dict]:
        """Keep a step's record (`head`: step, epoch, lr, time); returns the records written now (every N steps)."""
        values = torch.stack([v.detach().double().reshape(()) for v in (*terms.values(), total)])  # (T + 1,)
        self._steps.append((head, list(terms), values))
        return self.flush() if len(self._steps) >= self.every else []

    def flush(self) -> list[dict]:
        """Write the kept steps; returns their records."""
        if not self._steps:
            return []
        pending, self._steps = self._steps, []
        host = torch.cat([values for _, _, values in pending]).tolist()  # one device-to-host copy
        records: list[dict] = []
        at = 0
        for head, names, _ in pending:
            *terms, total = host[at: at + len(names) + 1]
            at += len(names) + 1
            if not math.isfinite(total):
                self._emit(records)
                raise _diverged(head, dict(zip(names, terms)), self.run)
            records.append(head | {f"loss/{k}": v for k, v in zip(names, terms)} | {"loss/total": total})
        self._emit(records)
        return records

    def write(self, record: dict) -> None:
        """Log one record now (a validation, the test), after the kept steps."""
        self.flush()
        self._emit([record])

    def close(self) -> None:
        for logger in self.loggers:
            if hasattr(logger, "close"):
                logger.close()

    def _emit(self, records: list[dict]) -> None:
        if records:
            for logger in self.loggers:
                logger(records)


def _diverged(head: dict, terms: dict[str, float], run: Run) -> TrainingDiverged:
    where = (f"the last good checkpoint is {run.last_checkpoint}" if run.last_checkpoint.exists()
             else "no checkpoint was written yet (the first is saved at the end of epoch 1)")
    return TrainingDiverged(
        f"loss is not finite at epoch {head['epoch']}, step {head['step']}: {terms}. Training stopped; {where}. "
        "Start a new run with a lower optim.lr or with optim.grad_clip set, or check the data.")


def build_loggers(run: Run, cfg: Config, dist_info: DistInfo,
                  callbacks: Sequence[Callable[[dict], None]] = ()) -> list[Logger]:
    """Where records go, in order: metrics.jsonl, TensorBoard, the live plot (rank 0 only), then each callback."""
    loggers: list[Logger] = []
    if dist_info.main:
        loggers.append(run.log_records)
        if cfg.run.tensorboard:
            loggers.append(TensorBoardLogger(run))
        live = _live_plot() if cfg.run.live_plot else None
        if live is not None:
            loggers.append(LivePlotLogger(run, live))
    return loggers + [EachRecord(cb) for cb in callbacks]


class EachRecord:
    """A logger calling a `fit(callbacks=...)` callback with each record."""

    def __init__(self, callback: Callable[[dict], None]) -> None:
        self.callback = callback

    def __call__(self, records: list[dict]) -> None:
        for record in records:
            self.callback(record)


class TensorBoardLogger:
    """Every numeric value of a record as a scalar at its step, in runs/<name>/tensorboard."""

    def __init__(self, run: Run) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("run.tensorboard=True needs tensorboard: pip install -e '.[tensorboard]'") from exc
        self.writer = SummaryWriter(log_dir=str(run.path / "tensorboard"))

    def __call__(self, records: list[dict]) -> None:
        for record in records:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.writer.add_scalar(k, v, record.get("step", 0))

    def close(self) -> None:
        self.writer.close()


class LivePlotLogger:
    """Redraws the run's training curves in the notebook output (`workbench.viz.curves.LiveCurves`)."""

    def __init__(self, run: Run, curves: Callable[[Run], None]) -> None:
        self.run, self.curves = run, curves

    def __call__(self, records: list[dict]) -> None:
        self.curves(self.run)


def _live_plot():
    """A callable redrawing the training curves in a notebook (None outside IPython kernels)."""
    if not in_kernel():
        return None
    from workbench.viz.curves import LiveCurves

    return LiveCurves()


# ----------------------------------------------------------------------------------------------------------------
# Features and evaluation live in `workbench.evaluate` (the engine's former names, re-exported)

from workbench.evaluate import check_split_options, evaluate, evaluate_splits, extract_features  # noqa: E402,F401
