"""One evaluation path: open a run, score it under its protocol once, read the result back wherever it is needed.

    from workbench import evaluate
    run = evaluate.open_run("runs/NAME")        # config, status, curves, weights, results of one run
    run.test.mean["mAP"]                        # the default test protocol, as the engine stored it at the end of fit
    indoor = run.evaluation(split_options={"mode": "indoor"})   # read if stored, else computed once and stored
    print(indoor.summary())                     # one line: rank-1 / mAP / mINP, mean ± std over gallery draws
    trial = indoor.trial(0)                     # one gallery draw: distances, `RankResult`, ranked lists
    trial.ranked_list(q)                        # a `workbench.metrics.RankedList`

The engine (`fit`), the command line (`python -m workbench evaluate`), the dashboard, the failure browser
(`workbench.viz.ranked`) and the notebooks all go through this module, so a run's test numbers are computed by one
function (`evaluate_and_store`) and written in one place: its evaluation folder.

    runs/<name>/evaluations/<key>/
        protocol.json   the protocol identity (dataset, layout, root, data options, split options, rerank, branches,
                        the metric spec), fingerprints of the query and gallery lists and of the run's weights file
                        it scored (`weights_stamp`); <key> hashes the identity. Written last: a folder without it is
                        incomplete and ignored. A stored evaluation whose weights file has changed since (a run
                        evaluated while it trained, then trained on) is computed again, not read.
        summary.json    mean, std and per-trial metrics (the spread over gallery draws), mean CMC
        per_query.csv   one row per (trial, query): trial, query, sample, pid, camid, valid, first_match_rank,
                        cmc_rank, AP, INP
        samples.csv     every distinct test sample once: row, pid, camid, modality, paths (JSON), scene, panel (JSON)
        trials.npz      query_rows_<t> and gallery_rows_<t>: the sample rows of each trial (evaluations stored
                        before this layout have them in ranked.npz, with top-k lists that are no longer read)
        features.npz    the retrieval features of every distinct test sample, one array per branch (float32)

Every file is a plain table or array (`np.load(allow_pickle=False)`, no pickle). A ranked list is recomputed from
the stored features with the protocol's own distances and the one ranker (`workbench.metrics.ranked_list`), so it
agrees with the stored per-query numbers. Two evaluations are compared only when their protocol identities and
their query and gallery lists agree (`comparable` says why not).

`results.json` keeps a copy of the default protocol's summary under "test" (the engine writes it from the
`Evaluation` this module returns), so `Run.results["test"]["mean"]` and `open_run(path).test.mean` are the same
numbers.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from workbench import features as _features
from workbench.config import Config, dataset_layout
from workbench.methods import Method, get_method, load_run_model
from workbench.metrics import (
    PROTOCOLS,
    EvalSet,
    ProtocolResult,
    ProtocolSpec,
    RankedList,
    RankResult,
    evaluate_trials,
    protocol_distances,
    rank_metrics,
    ranked_list,
    with_rerank,
)
from workbench.runs import Run, atomic_write_bytes, load_run
from workbench.utils import file_sha256

EVALUATIONS = "evaluations"
TOP_K = 20  # ranked (non-junk) gallery items of a query in `Evaluation.ranked_list`

# ----------------------------------------------------------------------------------------------------------------
# Protocol identity


def protocol_identity(cfg: Config, spec: ProtocolSpec, *, split_options: dict | None = None,
                      branches: Sequence[str] | None = None) -> dict[str, Any]:
    """What makes two evaluations comparable: the test data (dataset, root, loader options) and how it is scored
    (split options such as SYSU's mode and shot, the metric spec including re-ranking, the feature branches)."""
    return {
        "dataset": cfg.data.dataset,
        "layout": dataset_layout(cfg.data.dataset),
        "root": cfg.data.root,
        "data_options": dict(sorted(cfg.data.options.items())),
        "split_options": dict(sorted((split_options or {}).items())),
        "rerank": bool(spec.rerank),
        "branches": list(branches) if branches else ["feats"],
        "spec": asdict(spec),
    }


def protocol_key(identity: dict[str, Any]) -> str:
    """A short folder name for a protocol identity: a readable prefix and a hash of the whole identity."""
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{identity['dataset']}-{digest}"


def protocol_label(identity: dict[str, Any]) -> str:
    """One line for menus: `synthetic-vi (sysu-mm01) mode=indoor +rerank [feats]`."""
    opts = " ".join(f"{k}={v}" for k, v in identity.get("split_options", {}).items())
    parts = [f"{identity['dataset']} ({identity['layout']})", opts, "+rerank" if identity.get("rerank") else "",
             f"[{'+'.join(identity.get('branches', ['feats']))}]"]
    return " ".join(p for p in parts if p)


def protocol_spec(cfg: Config, *, rerank: bool = False) -> ProtocolSpec:
    """The test protocol of a config's dataset layout (`workbench.metrics.PROTOCOLS`), with re-ranking if asked."""
    spec = PROTOCOLS[dataset_layout(cfg.data.dataset)]
    return with_rerank(spec) if rerank else spec


# ----------------------------------------------------------------------------------------------------------------
# Computing


def check_split_options(dataset, split_options: dict | None) -> dict:
    """`split_options` if `dataset.eval_splits` takes each of them; else a ValueError listing the valid ones."""
    options = dict(split_options or {})
    params = inspect.signature(dataset.eval_splits).parameters
    valid = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown split option(s) {unknown} for {dataset.name}; valid options: "
                         f"{', '.join(f'{n}={params[n].default!r}' for n in valid) or 'none (one fixed split)'}")
    return options


def extract_features(model: nn.Module, samples: Sequence, cfg: Config, *, method: Method | None = None,
                     **kwargs) -> EvalSet:
    """`workbench.features.extract_features` with the config's method as the default eval forward."""
    return _features.extract_features(model, samples, cfg, method=method or get_method(cfg.run.method), **kwargs)


def _sample_key(s) -> tuple:
    return tuple(sorted(s.paths.items())), s.modality


def _unique_samples(splits: Sequence) -> tuple[list, list[tuple[np.ndarray, np.ndarray]]]:
    """Every distinct sample of the splits once (first appearance order) and, per split, the (query rows, gallery
    rows) indices into that list."""
    index: dict[tuple, int] = {}
    unique = []
    for split in splits:
        for s in list(split.query) + list(split.gallery):
            if _sample_key(s) not in index:
                index[_sample_key(s)] = len(unique)
                unique.append(s)
    rows = [(np.asarray([index[_sample_key(s)] for s in sp.query]),
             np.asarray([index[_sample_key(s)] for s in sp.gallery])) for sp in splits]
    return unique, rows


def evaluate_splits(model: nn.Module, splits: Sequence, cfg: Config, *, method: Method | None = None,
                    spec: ProtocolSpec | None = None, branches=None, cache: bool = False,
                    progress: bool = True) -> ProtocolResult:
    """Run a protocol over evaluation splits (`EvalSplit(trial, name, query, gallery)`), extracting each distinct
    sample's features once. Nothing is stored (the engine's validation, robustness curves).

    Args:
        method: the eval forward; default the config's method.
        spec: a `workbench.metrics.ProtocolSpec`; default the protocol of the config's dataset layout.
        branches: feature branches to evaluate; default the retrieval embedding alone ("feats": the per-modality
            branches of a multi-modal model are already inside it).
    """
    spec = spec or protocol_spec(cfg)
    unique, rows = _unique_samples(splits)
    feats = extract_features(model, unique, cfg, method=method, cache=cache, progress=progress)
    trials = [(feats.subset(q), feats.subset(g)) for q, g in rows]
    return evaluate_trials(trials, spec, branches=list(branches) if branches else ["feats"])


def evaluate(model_or_run: nn.Module | Run | str | Path, dataset=None, *, cfg: Config | None = None,
             split_options: dict | None = None, branches=None, rerank: bool = False, cache: bool = True,
             device: str = "auto", progress: bool = True) -> ProtocolResult:
    """Score a model (or a run's selected weights) with its dataset's test protocol, without storing anything;
    returns the `ProtocolResult`. A run's stored evaluation is `open_run(path).evaluation(...)`.

    Args:
        model_or_run: a model (then pass `cfg`), a `Run`, or a run folder path.
        dataset: a loaded `ReIDDataset`; default: the run's dataset.
        split_options: passed to `dataset.eval_splits` (e.g. `mode="indoor", shot=10` for SYSU-MM01).
        branches: feature branches to evaluate (e.g. ["nir"] or ["rgb", "tir"]); default the retrieval embedding.
        rerank: k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3).
    """
    from workbench.data import load_dataset
    from workbench.utils import get_device

    if isinstance(model_or_run, (str, Path, Run)):
        run = model_or_run if isinstance(model_or_run, Run) else load_run(model_or_run)
        cfg = run.config
        model = load_run_model(run, get_device(device))
    else:
        model = model_or_run
        if cfg is None:
            raise ValueError("evaluate(model, ...) needs cfg= (the Config the model was trained with)")
    if dataset is None:
        dataset = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    splits = dataset.eval_splits(**check_split_options(dataset, split_options))
    return evaluate_splits(model, splits, cfg, spec=protocol_spec(cfg, rerank=rerank), branches=branches,
                           cache=cache, progress=progress)


# ----------------------------------------------------------------------------------------------------------------
# Storing


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def evaluate_and_store(run: Run | str | Path, model: nn.Module, dataset, cfg: Config, *, method: Method,
                       split_options: dict | None = None, rerank: bool = False, branches=None,
                       cache: bool = False, progress: bool = True) -> Evaluation:
    """Evaluate a model with its dataset's test protocol and store everything in `run/evaluations/<key>/` (see the
    module docstring): the one function that computes and writes a run's test numbers. An evaluation of the same
    protocol stored before is replaced.

    Args:
        run: the run folder the results belong to.
        model, dataset, cfg: the model, its loaded test dataset and the config it was trained with.
        method: the eval forward (`workbench.methods.get_method(cfg.run.method)`).
        split_options: passed to `dataset.eval_splits` (e.g. mode="indoor" for SYSU-MM01).
        rerank: k-reciprocal re-ranking. branches: feature branches (default the retrieval embedding "feats").

    Returns:
        The stored `Evaluation` (its numbers read back from what was written).
    """
    run_path = Path(run.path if isinstance(run, Run) else run)
    spec = protocol_spec(cfg, rerank=rerank)
    branches = list(branches) if branches else ["feats"]
    splits = dataset.eval_splits(**check_split_options(dataset, split_options))
    unique, rows_of = _unique_samples(splits)
    feats = _features.extract_features(model, unique, cfg, method=method, cache=cache, progress=progress)
    sets: dict[bytes, EvalSet] = {}  # one EvalSet per distinct row list: shared query lists are prepared once

    def subset(rows):
        return sets.setdefault(rows.tobytes(), feats.subset(rows))

    trials = [(subset(q), subset(g)) for q, g in rows_of]
    result = evaluate_trials(trials, spec, branches=branches)

    identity = protocol_identity(cfg, spec, split_options=split_options, branches=branches)
    out = run_path / EVALUATIONS / protocol_key(identity)
    meta = {"identity": identity, "key": out.name, "label": protocol_label(identity), "run": run_path.name,
            "query_fingerprint": _features.samples_fingerprint([unique[i] for q, _ in rows_of for i in q]),
            "gallery_fingerprint": _features.samples_fingerprint([unique[i] for _, g in rows_of for i in g]),
            "num_trials": len(splits), "split_names": [sp.name for sp in splits],
            "trial_ids": [sp.trial for sp in splits], "weights": weights_stamp(run)}
    per_query = []
    for t, (res, (q_rows, _)) in enumerate(zip(result.trials, rows_of)):
        pq = res.per_query.copy()
        pq.insert(0, "trial", t)
        pq["sample"] = q_rows[pq["query"].to_numpy()]
        per_query.append(pq)
    trial_rows = {}
    for t, (q_rows, g_rows) in enumerate(rows_of):
        trial_rows[f"query_rows_{t}"] = q_rows.astype(np.int64)
        trial_rows[f"gallery_rows_{t}"] = g_rows.astype(np.int64)
    samples = pd.DataFrame({"row": np.arange(len(unique)), "pid": feats.pids, "camid": feats.camids,
                            "modality": [s.modality for s in unique],
                            "paths": [json.dumps(dict(s.paths)) for s in unique],
                            "scene": pd.array([s.scene for s in unique], dtype="Int64"),
                            "panel": [json.dumps(dict(s.panel)) for s in unique]})
    summary = {"mean": result.mean, "std": result.std, "per_trial": result.per_trial.to_dict("records"),
               "cmc": result.cmc.tolist()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "protocol.json").unlink(missing_ok=True)  # incomplete until the new files are all written
    atomic_write_bytes(out / "features.npz",
                       _npz_bytes({f"b_{k}": np.asarray(v, dtype=np.float32) for k, v in feats.branches.items()}))
    atomic_write_bytes(out / "trials.npz", _npz_bytes(trial_rows))
    (out / "ranked.npz").unlink(missing_ok=True)  # the older layout's file would shadow nothing, but mislead
    atomic_write_bytes(out / "samples.csv", samples.to_csv(index=False).encode())
    atomic_write_bytes(out / "per_query.csv", pd.concat(per_query, ignore_index=True).to_csv(index=False).encode())
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=1, default=float).encode())
    atomic_write_bytes(out / "protocol.json", json.dumps(meta, indent=1, default=str).encode())
    return Evaluation(out, meta)


# ----------------------------------------------------------------------------------------------------------------
# One trial, computed once


@dataclass
class Retrieval:
    """One evaluation trial (one gallery draw), computed once: features, distances, labels, samples and the
    protocol's metrics. `Evaluation.trial(t)` builds it from a stored evaluation; `Retrieval.from_features` from
    any features.

    Attributes:
        distmat: (Q, G) distances under `spec` (`workbench.metrics.protocol_distances`).
        query, gallery: `EvalSet`s (features by branch, pids, camids, scenes).
        q_modalities, g_modalities: (Q,), (G,) modality names ("rgb", "ir", "rgb+nir+tir"...).
        spec: the protocol; result: `rank_metrics` of this trial (its `per_query` table drives the browser).
        q_samples, g_samples: the samples (for images), or None.
        name: a label (the run's name).
        info: anything else worth keeping (the config, the trial, the split name).
    """

    distmat: np.ndarray
    query: EvalSet
    gallery: EvalSet
    q_modalities: np.ndarray
    g_modalities: np.ndarray
    spec: ProtocolSpec
    result: RankResult
    q_samples: Sequence | None = None
    g_samples: Sequence | None = None
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_features(cls, query: EvalSet, gallery: EvalSet, spec: ProtocolSpec, *,
                      branches: Sequence[str] | None = ("feats",), q_samples: Sequence | None = None,
                      g_samples: Sequence | None = None, name: str = "", info: dict | None = None) -> Retrieval:
        """Distances and metrics of query vs gallery features under `spec` (branches as in `evaluate_trials`)."""
        distmat = protocol_distances(query, gallery, spec, branches)
        result = rank_metrics(distmat, np.asarray(query.pids), np.asarray(gallery.pids), np.asarray(query.camids),
                              np.asarray(gallery.camids), junk=spec.junk, dedup_cmc=spec.dedup_cmc,
                              max_rank=spec.max_rank, ties=spec.ties, q_scenes=query.scenes,
                              g_scenes=gallery.scenes)
        return cls(distmat, query, gallery, _modalities(q_samples, len(query)), _modalities(g_samples, len(gallery)),
                   spec, result, q_samples, g_samples, name, dict(info or {}))

    def ranked_list(self, q: int) -> RankedList:
        """The ranked list of query `q` (the one ranker, `workbench.metrics.ranked_list`)."""
        if not 0 <= q < len(self.distmat):
            raise ValueError(f"query index must be in [0, {len(self.distmat)}), got {q}")
        scenes_q = None if self.query.scenes is None else self.query.scenes[q]
        return ranked_list(self.distmat[q], self.query.pids[q], np.asarray(self.gallery.pids), self.query.camids[q],
                           np.asarray(self.gallery.camids), junk=self.spec.junk, ties=self.spec.ties,
                           dedup_cmc=self.spec.dedup_cmc, q_scene=scenes_q, g_scenes=self.gallery.scenes, query=q)

    def query_table(self) -> pd.DataFrame:
        """`RankResult.per_query` plus the query's modality and the distance to its closest gallery item."""
        table = self.result.per_query.copy()
        table.insert(2, "modality", self.q_modalities)
        table["top1_distance"] = self.distmat.min(axis=1)
        return table

    def features(self, branch: str = "feats", sides: Sequence[str] = ("query", "gallery")
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(feats (N, D), pids (N,), modalities (N,)) of the query and/or gallery side, for embedding maps."""
        parts = {"query": (self.query, self.q_modalities), "gallery": (self.gallery, self.g_modalities)}
        feats, pids, mods = [], [], []
        for side in sides:
            es, m = parts[side]
            if branch not in es.branches:
                raise ValueError(f"unknown branch {branch!r}; this retrieval has {list(es.branch_names)}")
            feats.append(np.asarray(es.branches[branch]))
            pids.append(np.asarray(es.pids))
            mods.append(m)
        return np.concatenate(feats), np.concatenate(pids), np.concatenate(mods)

    def sample(self, side: str, index: int):
        """The `workbench.data.Sample` of a query or gallery item."""
        if side not in ("query", "gallery"):
            raise ValueError(f"side must be 'query' or 'gallery', got {side!r}")
        samples = self.q_samples if side == "query" else self.g_samples
        if samples is None:
            raise ValueError("this Retrieval has no samples; build it with q_samples= and g_samples=")
        return samples[index]

    def inputs(self, side: str, index: int) -> dict:
        """{modality: (3, H, W)} test-transformed tensors of a sample (the CAM input), with the run's transform."""
        cfg = self.info.get("config")
        if cfg is None:
            raise ValueError("this Retrieval has no config; get it from a run: open_run(path).test.trial(t)")
        s = self.sample(side, index)
        tf = _features.test_transform(cfg)
        return {m: tf(s.load_image(m)) for m in s.paths}


def _modalities(samples: Sequence | None, n: int) -> np.ndarray:
    if samples is None:
        return np.full(n, "?", dtype=object)
    return np.asarray([s.modality for s in samples], dtype=object)


# ----------------------------------------------------------------------------------------------------------------
# Reading


@dataclass
class Evaluation:
    """One stored evaluation of a run under one protocol (read lazily from `runs/<name>/evaluations/<key>/`): the
    one evaluation type of the package.

    Attributes:
        path: the evaluation folder. meta: protocol.json (identity, key, label, fingerprints, trials).

    The numbers: `mean`, `std` (metric -> value over the gallery draws), `per_trial` (one row per draw), `cmc`,
    `per_query` (one row per (trial, query)); `summary()` says them in one line. The samples and their features:
    `samples`, `features()`. One trial's distances and ranked lists: `trial(t)`, `ranked_list(t, q)`.
    """

    path: Path
    meta: dict = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def run_path(self) -> Path:
        return self.path.parent.parent

    @property
    def run_name(self) -> str:
        return self.run_path.name

    @property
    def key(self) -> str:
        return self.meta["key"]

    @property
    def identity(self) -> dict:
        return self.meta["identity"]

    @property
    def label(self) -> str:
        return self.meta["label"]

    @property
    def num_trials(self) -> int:
        return int(self.meta["num_trials"])

    @property
    def spec(self) -> ProtocolSpec:
        """The protocol the numbers were computed with."""
        return ProtocolSpec(**self.identity["spec"])

    @property
    def branches(self) -> list[str]:
        return list(self.identity.get("branches", ["feats"]))

    # -- numbers ------------------------------------------------------------------------------------------------

    @cached_property
    def _summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text())

    @property
    def mean(self) -> dict[str, float]:
        """metric -> arithmetic mean over trials (rank1/5/10/20, mAP, mINP)."""
        return dict(self._summary["mean"])

    @property
    def std(self) -> dict[str, float]:
        """metric -> population standard deviation over trials (0 for one trial)."""
        return dict(self._summary["std"])

    @property
    def per_trial(self) -> pd.DataFrame:
        """One row per trial: the metrics plus num_query, num_gallery, num_valid, num_skipped."""
        return pd.DataFrame(self._summary["per_trial"])

    @property
    def cmc(self) -> np.ndarray:
        """(max_rank,) mean CMC curve over trials."""
        return np.asarray(self._summary.get("cmc", []), dtype=float)

    def summary(self) -> str:
        """One line: ``run: label (n trials): rank1 47.50±0.30 | ... (percent)``."""
        parts = [f"{k} {100 * v:.2f}±{100 * self.std.get(k, 0.0):.2f}" for k, v in self.mean.items()]
        return f"{self.run_name}: {self.label} ({self.num_trials} trials): " + " | ".join(parts)

    @cached_property
    def per_query(self) -> pd.DataFrame:
        """One row per (trial, query): trial, query, sample, pid, camid, valid, AP, INP, first_match_rank, ..."""
        return pd.read_csv(self.path / "per_query.csv")

    # -- samples and features -----------------------------------------------------------------------------------

    @cached_property
    def samples(self) -> pd.DataFrame:
        """Every distinct test sample once: row, pid, camid, modality, paths (JSON), scene, panel (JSON)."""
        return pd.read_csv(self.path / "samples.csv")

    @cached_property
    def _sample_records(self) -> list:
        from workbench.data.samples import Sample

        table = self.samples
        scenes = table["scene"] if "scene" in table else pd.Series([None] * len(table))
        panels = table["panel"] if "panel" in table else pd.Series(["{}"] * len(table))
        return [Sample(json.loads(paths), int(pid), int(cam), str(mod), scene=None if pd.isna(sc) else int(sc),
                       panel=json.loads(panel))
                for paths, pid, cam, mod, sc, panel in zip(table["paths"], table["pid"], table["camid"],
                                                           table["modality"], scenes, panels)]

    def sample(self, row: int):
        """The `workbench.data.Sample` of a stored sample row."""
        return self._sample_records[int(row)]

    def features(self) -> dict[str, np.ndarray]:
        """branch -> (N, D) features of `samples` rows (read once, on demand: the largest file)."""
        if "features" not in self._cache:
            with np.load(self.path / "features.npz", allow_pickle=False) as z:
                self._cache["features"] = {k.removeprefix("b_"): z[k] for k in z.files}
        return self._cache["features"]

    @cached_property
    def _trial_rows(self) -> dict[str, np.ndarray]:
        path = self.path / "trials.npz"
        if not path.exists():
            path = self.path / "ranked.npz"  # evaluations stored before trials.npz
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files if k.startswith(("query_rows_", "gallery_rows_"))}

    def query_rows(self, trial: int) -> np.ndarray:
        """(Q,) sample rows of a trial's queries, in query order."""
        self._check_trial(trial)
        return self._trial_rows[f"query_rows_{trial}"]

    def gallery_rows(self, trial: int) -> np.ndarray:
        """(G,) sample rows of a trial's gallery, in gallery order."""
        self._check_trial(trial)
        return self._trial_rows[f"gallery_rows_{trial}"]

    def _check_trial(self, trial: int) -> None:
        if not 0 <= int(trial) < self.num_trials:
            raise ValueError(f"trial must be in [0, {self.num_trials}) for evaluation {self.key}, got {trial}")

    # -- one trial ------------------------------------------------------------------------------------------------

    def trial(self, t: int = 0) -> Retrieval:
        """Gallery draw `t` as a `Retrieval` (distances, `RankResult`, samples), from the stored features; computed
        once per evaluation object."""
        self._check_trial(t)
        if t not in self._cache:
            table = self.samples
            scenes = table["scene"].to_numpy(dtype=float) if "scene" in table and table["scene"].notna().all() \
                else None
            everything = EvalSet(self.features(), table["pid"].to_numpy(), table["camid"].to_numpy(),
                                 None if scenes is None else scenes.astype(np.int64))
            q_rows, g_rows = self.query_rows(t), self.gallery_rows(t)
            info: dict[str, Any] = {"trial": self.meta.get("trial_ids", [t] * self.num_trials)[t],
                                    "split": self.meta.get("split_names", [""] * self.num_trials)[t],
                                    "run": self.run_path, "evaluation": self}
            try:
                info["config"] = load_run(self.run_path).config
            except (FileNotFoundError, ValueError):
                pass  # a copied evaluation folder: ranked lists work, CAM inputs need the run's config
            self._cache[t] = Retrieval.from_features(
                everything.subset(q_rows), everything.subset(g_rows), self.spec, branches=self.branches,
                q_samples=[self.sample(r) for r in q_rows], g_samples=[self.sample(r) for r in g_rows],
                name=self.run_name, info=info)
        return self._cache[t]

    def ranked_list(self, trial: int, query: int, k: int = TOP_K) -> pd.DataFrame:
        """The first `k` ranked (non-junk) items of query `query` (its index in the trial, `per_query["query"]`) in
        gallery draw `trial`, as a table: rank (1-based), row (the stored sample row), pid, camid, modality, paths,
        distance, match. It is the `RankedList` of `trial(trial).ranked_list(query)` with the samples joined."""
        rl = self.trial(trial).ranked_list(query)
        keep = rl.kept(k)
        rows = self.gallery_rows(trial)[rl.order[keep]]
        table = self.samples.set_index("row").loc[rows, ["pid", "camid", "modality", "paths"]].reset_index()
        table.insert(0, "rank", rl.rank[keep])
        table["distance"] = rl.distances[keep]
        table["match"] = rl.is_match[keep]
        return table


_DIGEST_BY_STAT: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> SHA-256: each state hashed once


def _weights_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGEST_BY_STAT:
        _DIGEST_BY_STAT[key] = file_sha256(path)
    return _DIGEST_BY_STAT[key]


def weights_stamp(run: Run | str | Path) -> dict | None:
    """Which weights a run's evaluation scores: the file `Run.weights_path()` names (the validation-selected weights,
    else the last checkpoint) and its SHA-256; None when the run has no weights file yet. `fit` and
    `ensure_evaluation` both evaluate exactly that file's weights. None too for a folder that is not a run's (a
    model scored into a plain folder)."""
    try:
        path = (run if isinstance(run, Run) else load_run(run)).weights_path()
    except FileNotFoundError:
        return None
    return {"file": path.name, "sha256": _weights_digest(path)}


def stale_reason(ev: Evaluation, run: Run | str | Path) -> str:
    """Why a stored evaluation no longer scores the run's weights ("" when it does): the weights file it scored
    has changed or another one is selected now. Evaluations stored before weights were stamped are taken as they
    are, and so are those of a run folder copied without its weights (nothing could score them again)."""
    stored = ev.meta.get("weights")
    now = weights_stamp(run) if stored is not None else None
    if now is None:
        return ""
    if now["file"] != stored["file"]:
        return f"it scored {stored['file']}, and the run's weights are now {now['file']}"
    if now["sha256"] != stored["sha256"]:
        return f"{now['file']} has changed since it was evaluated (the run trained on, or its weights were replaced)"
    return ""


def list_evaluations(run: Run | str | Path) -> list[Evaluation]:
    """Every complete stored evaluation of a run (those with a protocol.json), oldest first."""
    root = Path(run.path if isinstance(run, Run) else run) / EVALUATIONS
    found = []
    for meta_path in sorted(root.glob("*/protocol.json"), key=lambda p: p.stat().st_mtime):
        try:
            found.append(Evaluation(meta_path.parent, json.loads(meta_path.read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def _protocol_matches(ident: dict, cfg: Config, split_options: dict | None, rerank: bool, branches) -> bool:
    """Whether a stored protocol identity is the one these options ask for on the test set of `cfg`."""
    return (_same_data(ident, cfg) and ident["split_options"] == dict(sorted((split_options or {}).items()))
            and ident["rerank"] == rerank
            and ident.get("branches", ["feats"]) == (list(branches) if branches else ["feats"]))


def _is_default(ev: Evaluation, cfg: Config) -> bool:
    """The default protocol of a run with config `cfg`: its own test data (not another dataset it was tested on,
    `tested_config`), no split options, no re-ranking, the retrieval embedding."""
    return _protocol_matches(ev.identity, cfg, None, False, None)


def _same_data(ident: dict, cfg: Config) -> bool:
    return (ident["dataset"] == cfg.data.dataset and ident["root"] == cfg.data.root
            and ident["data_options"] == dict(sorted(cfg.data.options.items())))


def tested_config(cfg: Config, other: Config | None) -> Config:
    """The config a run is tested with: its own, or, for a cross-dataset test, its own with the test set of `other`
    (dataset, root and loader options; the protocol follows that dataset's layout). Image size, preprocessing and
    the model stay the run's, so the weights see the input they were trained on."""
    if other is None:
        return cfg
    return _with_test_set(cfg, other.data.dataset, other.data.root, other.data.options)


def _with_test_set(cfg: Config, dataset: str, root: str | None, options: dict) -> Config:
    return cfg.override(**{"data.dataset": dataset, "data.root": root, "data.options": dict(options)})


def identity_test_on(cfg: Config, identity: dict) -> Config | None:
    """The `test_on` that recomputes a stored protocol `identity` for a run with config `cfg`: None when the
    identity is on the run's own test data, else the run's config with that identity's test set."""
    if _same_data(identity, cfg):
        return None
    return _with_test_set(cfg, identity["dataset"], identity["root"], identity["data_options"])


def load_evaluation(run: Run | str | Path, key: str | None = None) -> Evaluation:
    """A run's stored evaluation under protocol `key` (default: the default protocol's: no split options, no
    re-ranking, the retrieval embedding; else the only one)."""
    evals = list_evaluations(run)
    path = Path(run.path if isinstance(run, Run) else run)
    if not evals:
        raise FileNotFoundError(f"run {path} has no stored evaluation (no {EVALUATIONS}/*/protocol.json); evaluate "
                                "it with workbench.evaluate.open_run(path).evaluation() or re-run fit")
    if key is None:
        if len(evals) == 1:
            return evals[0]
        cfg = (run if isinstance(run, Run) else load_run(path)).config  # which is the default depends on its data
        default = [e for e in evals if _is_default(e, cfg)]
        return (default or evals)[0]
    for e in evals:
        if e.key == key:
            return e
    raise KeyError(f"run {path.name} has no evaluation {key!r}; it has {[e.key for e in evals]}")


def comparable(a: Evaluation, b: Evaluation) -> tuple[bool, str]:
    """Whether two stored evaluations score the same queries under the same protocol, and if not, why not."""
    ia, ib = a.identity, b.identity
    diffs = [f"{name}: {ia.get(name)!r} (run {a.run_name}) vs {ib.get(name)!r} (run {b.run_name})"
             for name in ("dataset", "layout", "root", "data_options", "split_options", "rerank", "branches", "spec")
             if ia.get(name) != ib.get(name)]
    if diffs:
        return False, "evaluated under different protocols or data: " + "; ".join(diffs)
    if a.meta["query_fingerprint"] != b.meta["query_fingerprint"]:
        return False, ("same protocol options but different query lists (the test data was generated or loaded "
                       "differently); re-evaluate both runs with the current data")
    if a.meta["gallery_fingerprint"] != b.meta["gallery_fingerprint"]:
        return False, "same queries but different gallery draws; re-evaluate both runs with the current code"
    return True, "same protocol, same queries and gallery draws"


def ensure_evaluation(run: Run | str | Path, *, key: str | None = None, split_options: dict | None = None,
                      rerank: bool = False, branches=None, test_on: Config | None = None, device: str = "auto",
                      progress: bool = True, recompute: bool = False) -> Evaluation:
    """The run's stored evaluation under a protocol (by `key`, or by its options; default: the default protocol);
    computed once, with a progress bar, from the run's selected weights when it is missing (or when `recompute`).

    `test_on`: a config whose data section names another test set (cross-dataset transfer, e.g. a model trained
    on synthetic RGBNT100 tested on synthetic MSVR310 with MSVR310's scene rule; `tested_config`). Its evaluation
    is stored with the run under its own key and is never taken for the run's default one.
    """
    from workbench.data import load_dataset
    from workbench.utils import get_device

    run = run if isinstance(run, Run) else load_run(run)
    cfg = tested_config(run.config, test_on)
    found = None  # the stored evaluation of this protocol, when one was read
    if not recompute:
        if key is not None:
            found = load_evaluation(run, key)
        else:
            found = next((ev for ev in list_evaluations(run)
                          if _protocol_matches(ev.identity, cfg, split_options, rerank, branches)), None)
        why = stale_reason(found, run) if found is not None else ""
        if found is not None and not why:
            return found
        if found is None:
            print(f"evaluating {run.name} (no stored per-query results for this protocol yet)")
        else:
            print(f"evaluating {run.name} again: its stored evaluation {found.key} is out of date ({why})")
            recompute = key is not None  # a stored protocol asked for by key: recompute it with its own options
    if run.status == "running":
        print(f"note: {run.name} is still training; this scores the weights it has selected so far "
              f"({run.weights_path().name}), and is computed again once they change")
    if recompute and key is not None:  # recompute a stored protocol: its options and test set come from its identity
        ident = (found or load_evaluation(run, key)).identity
        split_options, rerank, branches = ident["split_options"] or None, ident["rerank"], ident["branches"]
        cfg = _with_test_set(run.config, ident["dataset"], ident["root"], ident["data_options"])
    model = load_run_model(run, get_device(device))
    dataset = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    return evaluate_and_store(run, model, dataset, cfg, method=get_method(cfg.run.method),
                              split_options=split_options, rerank=rerank, branches=branches, progress=progress)


# ----------------------------------------------------------------------------------------------------------------
# One handle on a run


@dataclass(frozen=True)
class RunHandle:
    """One run, opened: its config, status, training curves, weights, results and evaluations. `open_run(path)`
    makes one; `run` is the `workbench.runs.Run` underneath (the run store: files, status, locks)."""

    run: Run

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def config(self) -> Config:
        return self.run.config

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def results(self) -> dict:
        """results.json: status, validation, training time, the engine's copy of the test summary."""
        return self.run.results

    @property
    def curves(self) -> pd.DataFrame:
        """The training log (metrics.jsonl): one row per logged step or validation (`viz.curves.plot_curves`)."""
        return self.run.metrics

    @property
    def weights(self) -> Path:
        """The weights evaluation uses: validation-selected if present, else the last checkpoint."""
        return self.run.weights_path()

    @property
    def val(self) -> dict[str, float]:
        """Validation metrics (held-out training identities) of the selected epoch."""
        return dict(self.results.get("val") or {})

    @property
    def best_epoch(self) -> int | None:
        return self.results.get("best_epoch")

    @property
    def train_time_s(self) -> float:
        """Seconds spent in training steps (validation and test excluded)."""
        return float(self.results["train_time_s"])

    @property
    def test(self) -> Evaluation:
        """The default test protocol's evaluation (stored by `fit`; computed once if the run has none)."""
        return ensure_evaluation(self.run, progress=False)

    def evaluation(self, *, split_options: dict | None = None, rerank: bool = False, branches=None,
                   key: str | None = None, test_on: Config | None = None, device: str = "auto",
                   progress: bool = True, recompute: bool = False) -> Evaluation:
        """The evaluation under a protocol: read if stored, else computed once from the selected weights and
        stored (`ensure_evaluation`; `test_on`: another dataset's test set, cross-dataset)."""
        return ensure_evaluation(self.run, key=key, split_options=split_options, rerank=rerank, branches=branches,
                                 test_on=test_on, device=device, progress=progress, recompute=recompute)

    def evaluations(self) -> list[Evaluation]:
        """Every stored evaluation, oldest first."""
        return list_evaluations(self.run)

    def model(self, device: str = "cpu") -> nn.Module:
        """The model with its selected weights, in eval mode."""
        return load_run_model(self.run, device)

    @property
    def method(self) -> Method:
        """The run's method (its eval forward for features and CAMs)."""
        return get_method(self.config.run.method)


def open_run(run: RunHandle | Run | str | Path) -> RunHandle:
    """A `RunHandle` on a run folder (or a `Run`); `FileNotFoundError` when it is not a run folder."""
    if isinstance(run, RunHandle):
        return run
    return RunHandle(run if isinstance(run, Run) else load_run(run))
