"""Notebook conveniences: the shared preamble and a live training batch, one call each.

    profile, common, runs_root = lab.setup(SMOKE, PROFILE, RUNS_DIR, SEED)   # the profile and the run overrides
    live = lab.live_batch(cfg, seed=SEED)    # the method's untrained model, one training batch, the training samples

`live_batch` builds what `train.fit` builds before its first step (the dataset, the held-out identities, the model,
the method's set-up, the PK loader), so a notebook can compute every loss term on one batch next to its formula
without re-assembling the engine's preparation by hand.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from workbench.config import Config
from workbench.methods import Method, get_method
from workbench.utils import CLAIMED_PROFILE, CLAIMED_THREADS, runs_dir


class Setup(NamedTuple):
    """What every notebook starts with.

    Attributes:
        profile: the config profile to train with ("smoke", "cpu-demo", "paper").
        overrides: config overrides every run of the notebook gets (`run.out_dir`, `run.seed`).
        runs_dir: the runs folder (absolute).
    """

    profile: str
    overrides: dict[str, Any]
    runs_dir: Path


def notebook_profile(smoke: bool, profile: str = "cpu-demo") -> str:
    """"smoke" when `smoke`; "paper" instead of "cpu-demo" when a GPU is present; else `profile`."""
    if smoke:
        return "smoke"
    return "paper" if torch.cuda.is_available() and profile == "cpu-demo" else profile


def setup(smoke: bool, profile: str = "cpu-demo", runs: str | Path | None = None, seed: int = 0) -> Setup:
    """The preamble of a notebook from its parameters (SMOKE, PROFILE, RUNS_DIR, SEED): `notebook_profile`, the
    overrides {"run.out_dir": the runs folder, "run.seed": seed}, and the runs folder (`utils.runs_dir`: relative
    paths are taken from the project folder, None is the project's runs/)."""
    root = runs_dir(runs)
    resolved = notebook_profile(smoke, profile)
    note = thread_note(resolved)
    if note:
        warnings.warn(note, ThreadCountWarning, stacklevel=2)
    return Setup(resolved, {"run.out_dir": str(root), "run.seed": seed}, root)


class ThreadCountWarning(UserWarning):
    """This kernel trains on another thread count than the run the notebooks' prose quotes."""


def thread_note(profile: str, threads: int | None = None) -> str:
    """Why this kernel's training will not give the prose's numbers, or "" when it will.

    The prose quotes `make demo`'s cpu-demo run on `utils.CLAIMED_THREADS` intra-op threads; the thread count changes
    the order of float sums, and hundreds of training steps carry that to the size of the training noise. JupyterLab's
    kernels take every core by default. Runs reused from the runs folder keep their numbers whatever the count.

    Args:
        profile: the profile the notebook trains with (`notebook_profile`); only cpu-demo has prose numbers.
        threads: the kernel's intra-op thread count; None reads torch's.
    """
    threads = torch.get_num_threads() if threads is None else threads
    if profile != CLAIMED_PROFILE or threads == CLAIMED_THREADS:
        return ""
    return (f"This kernel trains on {threads} threads; the prose quotes the numbers `make demo` trained on "
            f"{CLAIMED_THREADS}. Runs reused from the runs folder keep those numbers, but what trains here will differ "
            f"by about its training noise (the VI baseline's test rank-1: 0.212 on one thread, 0.186 on two). For the "
            f"prose's numbers, start JupyterLab with OMP_NUM_THREADS={CLAIMED_THREADS} (`make lab` does) or call "
            f"torch.set_num_threads({CLAIMED_THREADS}) before training; training is then slower.")


@dataclass
class LiveBatch:
    """An untrained model of a config's method and one training batch, as `fit` prepares them.

    Attributes:
        model: the method's model (`method.build_model`), in train mode, on the CPU, after `method.setup`.
        method: the method (its `training_losses`, teachers, memories, prototypes).
        batch: the first batch of the PK training loader (as `training_losses` receives it).
        train_samples: the training samples after the held-out identities were removed.
        dataset: the loaded dataset.
    """

    model: nn.Module
    method: Method
    batch: dict
    train_samples: list
    dataset: Any


def live_batch(cfg: Config, *, seed: int | None = None, device: str = "cpu") -> LiveBatch:
    """Build the model of `cfg.run.method` and draw one training batch, as `train.fit` does before its first step:
    the dataset, `data.val_ids` identities held out (seeded with `cfg.run.seed`), the model for the remaining
    identities, `method.setup` (a DAKD student loads its teacher here), the PK loader.

    Args:
        seed: seed torch's global generator right before the model is built (its initial weights, and the
            augmentations of the batch); None leaves the generator as it is.
        device: where the model and the method's set-up live.
    """
    from workbench.data import holdout_identities, load_dataset
    from workbench.data.loaders import build_train_loader

    dataset = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    if cfg.data.val_ids > 0:
        train_samples, _, _ = holdout_identities(dataset.train, cfg.data.val_ids, seed=cfg.run.seed)
    else:
        train_samples = list(dataset.train)
    method = get_method(cfg.run.method)
    if seed is not None:
        torch.manual_seed(seed)
    model = method.build_model(cfg, num_classes=len({s.label for s in train_samples})).to(device)
    method.setup(model, cfg, train_samples, torch.device(device))
    model.train()
    loader, _ = build_train_loader(cfg, train_samples)
    return LiveBatch(model, method, next(iter(loader)), train_samples, dataset)


@dataclass(frozen=True)
class CameraDiagnosis:
    """Where a visible-infrared run keeps or loses identity, on its held-out validation identities (`camera_diagnosis`).

    Attributes:
        pairs: `metrics.disentanglement.camera_pair_rank1` with each camera's modality added (`query_modality`,
            `gallery_modality`): one row per ordered camera pair.
        by_modality: the mean rank-1 of the camera pairs of each (query modality, gallery modality), and how many
            pairs it averages.
        probes: one row per (features of one modality, factor "camera" or "identity"): a linear probe's held-out
            accuracy and chance (`metrics.linear_probe`).
    """

    pairs: Any
    by_modality: Any
    probes: Any


def camera_diagnosis(run, *, seed: int = 0) -> CameraDiagnosis:
    """Camera-pair retrieval and camera / identity probes of a visible-infrared run's features on the identities it held
    out for validation (`data.val_ids`, every image of both modalities; the test split is not read).

    The run's own protocol scores infrared queries against a visible gallery of all cameras; this splits that number
    by camera pair and asks what the features of each modality encode (its camera, its identity), so a reader can
    see whether a weak score comes from the modality gap or from cameras that each form their own cluster.

    Args:
        run: a finished run (`evaluate.open_run` handle, `Run` or path) on visible-infrared data.
        seed: the probes' split seed.
    """
    import numpy as np
    import pandas as pd

    from workbench.data import load_dataset
    from workbench.data.validation import held_out_ids
    from workbench.evaluate import open_run
    from workbench.features import extract_features
    from workbench.metrics.disentanglement import camera_pair_rank1, linear_probe

    handle = open_run(run)
    cfg = handle.config
    if cfg.data.val_ids < 1:
        raise ValueError(f"run {handle.name} held out no validation identities (data.val_ids=0): camera_diagnosis "
                         "reads only held-out identities; train with data.val_ids > 0")
    dataset = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    modalities = {s.modality for s in dataset.train}
    if not modalities <= {"rgb", "ir"}:
        raise ValueError(f"camera_diagnosis is for visible-infrared runs; {handle.name} trained on "
                         f"{cfg.data.dataset} (modalities {sorted(modalities)})")
    held = held_out_ids(dataset.train, cfg.data.val_ids, seed=cfg.run.seed)
    samples = [s for s in dataset.train if s.pid in held]
    feats = extract_features(handle.model(), samples, cfg, method=handle.method, progress=False)
    x = np.asarray(feats.branches["feats"])
    pids = np.array([s.pid for s in samples])
    cams = np.array([s.camid for s in samples])
    mods = np.array([s.modality for s in samples])
    cam_modality = {int(c): m for c, m in zip(cams, mods)}
    pairs = camera_pair_rank1(x, pids, cams, metric="cosine")  # the VI protocols' distance
    pairs.insert(2, "query_modality", pairs["query_cam"].map(cam_modality))
    pairs.insert(3, "gallery_modality", pairs["gallery_cam"].map(cam_modality))
    by_modality = (pairs.groupby(["query_modality", "gallery_modality"])["rank1"].agg(["mean", "count"])
                   .rename(columns={"mean": "rank1", "count": "camera_pairs"}).reset_index())
    probes = []
    for modality in ("rgb", "ir"):
        keep = mods == modality
        for factor, labels in (("camera", cams), ("identity", pids)):
            result = linear_probe(x[keep], labels[keep], seed=seed)
            probes.append({"features": modality, "factor": factor, "accuracy": result.accuracy,
                           "chance": result.chance, "classes": result.num_classes})
    return CameraDiagnosis(pairs, by_modality, pd.DataFrame(probes))


REGIME_STUDY = Path(__file__).parent / "results" / "regime_study.json"


def regime_study():
    """The stored table of `benchmarks/regime_study.py` (issue 19) that notebook 02 draws: one row per regime with its
    validation rank-1 per epoch, CPU seconds per epoch and whether the rule chose it. It ships with the package, so a
    notebook reads it wherever the project folder is; re-running the study writes a new one under outputs/."""
    import pandas as pd

    if not REGIME_STUDY.is_file():
        raise FileNotFoundError(f"{REGIME_STUDY} is missing from this installation; reinstall the package, or run "
                                "`python benchmarks/regime_study.py` and read its --out file instead")
    return pd.read_json(REGIME_STUDY)


TEACHER_MEMORY_STUDY = Path(__file__).parent / "results" / "teacher_memory_study.json"


@dataclass(frozen=True)
class StoredScores:
    """A test evaluation as a stored study keeps it: metric -> mean and std over the gallery draws."""

    mean: dict[str, float]
    std: dict[str, float]


@dataclass(frozen=True)
class StoredRun:
    """A finished run's scores as a stored study keeps them (no weights, so no features or CAMs): what a table of
    runs reads from a `RunHandle` (`val`, `test.mean`, `test.std`, `train_time_s`, `best_epoch`), plus where it came
    from.

    Attributes:
        name: the run folder's name on the machine that trained it.
        config: the config it was trained with.
        source: the study file, and the command that writes it again.
    """

    name: str
    config: Config
    val: dict[str, float]
    test: StoredScores
    train_time_s: float
    best_epoch: int | None
    source: str


def stored_runs(path: str | Path = TEACHER_MEMORY_STUDY) -> list[StoredRun]:
    """The runs of a stored study file (`benchmarks/teacher_memory_study.py` writes one); `FileNotFoundError` naming
    the script when it is missing."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run `python benchmarks/teacher_memory_study.py --store` to train "
                                "its runs and write it again")
    study = json.loads(path.read_text())
    source = f"{path.name} ({study['command']})"
    return [StoredRun(row["name"], Config.from_dict(row["config"]), row["val"],
                      StoredScores(row["test_mean"], row["test_std"]), row["train_time_s"], row["best_epoch"], source)
            for row in study["runs"]]


def stored_or_trained(cfg: Config, *, train: bool = False, study: str | Path = TEACHER_MEMORY_STUDY):
    """The run of `cfg` as a stored study holds it (a `StoredRun`) when the study trained exactly this recipe, else
    trained here, or reused from the runs folder (`train.fit(cfg, reuse=True)`, opened as a `RunHandle`).

    For runs a notebook reports but does not dissect, when the cpu-demo minutes are better spent elsewhere (notebook
    03's teacher-memory switch: about eight minutes of one core). `train=True` always trains (or reuses). The recipe
    must match in every setting but the runs folder (`runs.same_recipe`), so another seed, profile or size trains
    it here."""
    from workbench import evaluate
    from workbench import train as training
    from workbench.runs import same_recipe

    if not train:
        for run in stored_runs(study):
            if same_recipe(run.config.override(**{"run.out_dir": cfg.run.out_dir}), cfg):
                print(f"{cfg.run.method} with {_differences(cfg)}: read from the stored study {run.source}; "
                      "pass train=True to train it here")
                return run
    return evaluate.open_run(training.fit(cfg, reuse=True, progress=False))


def _differences(cfg: Config) -> str:
    """The method options of `cfg`, for a one-line message."""
    options = cfg.method_options or {}
    return ", ".join(f"{k}={v!r}" for k, v in sorted(options.items())) or "its default options"
