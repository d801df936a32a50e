"""Per-query test results and features, stored in the run folder when a run is evaluated (no pickle anywhere).

    runs/<name>/evaluations/<key>/
        protocol.json   the protocol identity (dataset, layout, data options, split options, rerank, branches, the
                        metric spec) and fingerprints of the query and gallery lists; <key> hashes the identity
        summary.json    mean, std and per-trial metrics (the spread over gallery draws)
        per_query.csv   one row per (trial, query): pid, camid, valid, first_match_rank, cmc_rank, AP, INP
        samples.csv     every distinct test sample once: row, pid, camid, modality, paths (JSON)
        ranked.npz      query_rows (Q_t,) and gallery_rows per trial, the top-k gallery rows, distances and match
                        marks of every (trial, query) (int / float arrays only: `np.load(allow_pickle=False)`)
        features.npz    the retrieval features of every distinct test sample, one array per branch

The dashboard reads these instead of recomputing features; two evaluations are compared only when their protocol
identities and their query lists agree (`comparable` says why not).
"""

from __future__ import annotations

import hashlib
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
from workbench.metrics.ranking import junk_mask
from workbench.runs import Run, atomic_write_bytes

EVALUATIONS = "evaluations"
TOP_K = 20  # gallery entries kept per query for the ranked-list view


def protocol_identity(cfg: Config, spec, *, split_options: dict | None = None,
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


def _sample_key(s) -> tuple:
    return tuple(sorted(s.paths.items())), s.modality


def _top_k(query, gallery, spec, branches, k: int):
    """(Q, k) gallery positions, distances and match marks (1 true match, 0 wrong identity) of the ranked lists
    with junk removed, ties broken by gallery order (the "stable" policy); -1 / inf / -1 pad short lists."""
    from workbench.metrics import combine_branches, k_reciprocal_rerank, pairwise_distance

    qf = combine_branches(query, branches, normalize=spec.normalize, branch_norm=spec.branch_norm)
    gf = combine_branches(gallery, branches, normalize=spec.normalize, branch_norm=spec.branch_norm)
    if spec.rerank:  # as evaluate_pair: re-rank the Euclidean distances of the same features
        q_g, q_q, g_g = (np.asarray(pairwise_distance(a, b, "euclidean")) for a, b in ((qf, gf), (qf, qf), (gf, gf)))
        dist = k_reciprocal_rerank(q_g, q_q, g_g, k1=spec.k1, k2=spec.k2, lambda_value=spec.lambda_value)
    else:
        dist = np.asarray(pairwise_distance(qf, gf, spec.metric))
    num_q = len(query)
    pos = np.full((num_q, k), -1, dtype=np.int32)
    dst = np.full((num_q, k), np.inf, dtype=np.float32)
    match = np.full((num_q, k), -1, dtype=np.int8)
    g_pids, g_cams = np.asarray(gallery.pids), np.asarray(gallery.camids)
    g_scenes = None if gallery.scenes is None else np.asarray(gallery.scenes)
    for i in range(num_q):
        order = np.argsort(dist[i], kind="stable")
        q_scene = None if query.scenes is None else query.scenes[i]
        junk = junk_mask(spec.junk, query.pids[i], query.camids[i], g_pids, g_cams, q_scene, g_scenes)
        order = order[~junk[order]][:k]
        pos[i, :len(order)] = order
        dst[i, :len(order)] = dist[i, order]
        match[i, :len(order)] = g_pids[order] == query.pids[i]
    return pos, dst, match


def evaluate_and_store(run: Run | str | Path, model: nn.Module, dataset, cfg: Config, *, method,
                       split_options: dict | None = None, rerank: bool = False, branches=None,
                       cache: bool = False, progress: bool = True, k: int = TOP_K):
    """Evaluate a model with its dataset's test protocol, store per-query results, ranked lists and features in
    `run/evaluations/<key>/`, and return the `workbench.metrics.ProtocolResult` (the same numbers as
    `workbench.features.evaluate_splits`).

    Args:
        run: the run folder the results belong to.
        model, dataset, cfg: the model, its loaded test dataset and the config it was trained with.
        method: the eval forward (`workbench.methods.get_method(cfg.run.method)`).
        split_options: passed to `dataset.eval_splits` (e.g. mode="indoor" for SYSU-MM01).
        rerank: k-reciprocal re-ranking. branches: feature branches (default the retrieval embedding "feats").
        k: gallery entries kept per ranked list.
    """
    from workbench.metrics import PROTOCOLS, EvalSet, evaluate_trials, with_rerank

    run_path = Path(run.path if isinstance(run, Run) else run)
    spec = PROTOCOLS[dataset_layout(cfg.data.dataset)]
    if rerank:
        spec = with_rerank(spec)
    branches = list(branches) if branches else ["feats"]
    splits = dataset.eval_splits(**(split_options or {}))
    index: dict[tuple, int] = {}
    unique = []
    for split in splits:
        for s in list(split.query) + list(split.gallery):
            if _sample_key(s) not in index:
                index[_sample_key(s)] = len(unique)
                unique.append(s)
    feats = _features.extract_features(model, unique, cfg, method=method, cache=cache, progress=progress)
    rows_of = [(np.asarray([index[_sample_key(s)] for s in sp.query]),
                np.asarray([index[_sample_key(s)] for s in sp.gallery])) for sp in splits]
    sets: dict[bytes, EvalSet] = {}  # one EvalSet per distinct row list: shared query lists are prepared once

    def subset(rows):
        return sets.setdefault(rows.tobytes(), feats.subset(rows))

    trials = [(subset(q), subset(g)) for q, g in rows_of]
    result = evaluate_trials(trials, spec, branches=branches)

    identity = protocol_identity(cfg, spec, split_options=split_options, branches=branches)
    out = run_path / EVALUATIONS / protocol_key(identity)
    query_fp = _features.samples_fingerprint([unique[i] for q, _ in rows_of for i in q])
    gallery_fp = _features.samples_fingerprint([unique[i] for _, g in rows_of for i in g])
    meta = {"identity": identity, "key": out.name, "label": protocol_label(identity), "run": run_path.name,
            "query_fingerprint": query_fp, "gallery_fingerprint": gallery_fp, "num_trials": len(splits),
            "split_names": [sp.name for sp in splits], "trial_ids": [sp.trial for sp in splits], "top_k": k}
    per_query = []
    for t, (res, (q_rows, _)) in enumerate(zip(result.trials, rows_of)):
        pq = res.per_query.copy()
        pq.insert(0, "trial", t)
        pq["sample"] = q_rows[pq["query"].to_numpy()]
        per_query.append(pq)
    per_query = pd.concat(per_query, ignore_index=True)
    ranked: dict[str, np.ndarray] = {}
    for t, ((q_rows, g_rows), (query, gallery)) in enumerate(zip(rows_of, trials)):
        pos, dst, match = _top_k(query, gallery, spec, branches, k)
        ranked[f"query_rows_{t}"] = q_rows.astype(np.int64)
        ranked[f"gallery_rows_{t}"] = g_rows.astype(np.int64)
        ranked[f"topk_rows_{t}"] = np.where(pos >= 0, g_rows[np.maximum(pos, 0)], -1).astype(np.int64)
        ranked[f"topk_dist_{t}"] = dst
        ranked[f"topk_match_{t}"] = match
    samples = pd.DataFrame({"row": np.arange(len(unique)), "pid": feats.pids, "camid": feats.camids,
                            "modality": [s.modality for s in unique],
                            "paths": [json.dumps(dict(s.paths)) for s in unique]})
    summary = {"mean": result.mean, "std": result.std, "per_trial": result.per_trial.to_dict("records"),
               "cmc": result.cmc.tolist()}
    _write(out, meta, summary, per_query, samples, ranked, feats.branches)
    return result


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _write(out: Path, meta, summary, per_query: pd.DataFrame, samples: pd.DataFrame, ranked, branches) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "features.npz", _npz_bytes({f"b_{k}": v.astype(np.float32) for k, v in branches.items()}))
    atomic_write_bytes(out / "ranked.npz", _npz_bytes(ranked))
    atomic_write_bytes(out / "samples.csv", samples.to_csv(index=False).encode())
    atomic_write_bytes(out / "per_query.csv", per_query.to_csv(index=False).encode())
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=1, default=float).encode())
    # written last: an evaluation folder without protocol.json is incomplete and ignored
    atomic_write_bytes(out / "protocol.json", json.dumps(meta, indent=1, default=str).encode())


@dataclass
class StoredEvaluation:
    """One stored evaluation of a run (read lazily from `runs/<name>/evaluations/<key>/`).

    Attributes:
        path: the evaluation folder. meta: protocol.json (identity, key, label, fingerprints, trials).
    """

    path: Path
    meta: dict = field(repr=False)

    @property
    def run_name(self) -> str:
        return self.path.parent.parent.name

    @property
    def key(self) -> str:
        return self.meta["key"]

    @property
    def identity(self) -> dict:
        return self.meta["identity"]

    @property
    def label(self) -> str:
        return self.meta["label"]

    @cached_property
    def summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text())

    @cached_property
    def per_query(self) -> pd.DataFrame:
        """One row per (trial, query): trial, query, sample, pid, camid, valid, AP, INP, first_match_rank, ..."""
        return pd.read_csv(self.path / "per_query.csv")

    @cached_property
    def samples(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "samples.csv")

    @cached_property
    def ranked(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "ranked.npz", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def features(self) -> dict[str, np.ndarray]:
        """branch -> (N, D) features of `samples` rows (read on demand: the largest file)."""
        with np.load(self.path / "features.npz", allow_pickle=False) as z:
            return {k.removeprefix("b_"): z[k] for k in z.files}

    def ranked_list(self, trial: int, query: int) -> pd.DataFrame:
        """The top-k of one query in one trial: rank (1-based), sample row, pid, camid, distance, match."""
        rows = self.ranked[f"topk_rows_{trial}"][query]
        keep = rows >= 0
        table = self.samples.set_index("row").loc[rows[keep], ["pid", "camid", "modality", "paths"]].reset_index()
        table.insert(0, "rank", np.arange(1, keep.sum() + 1))
        table["distance"] = self.ranked[f"topk_dist_{trial}"][query][keep]
        table["match"] = self.ranked[f"topk_match_{trial}"][query][keep].astype(bool)
        return table


def list_evaluations(run: Run | str | Path) -> list[StoredEvaluation]:
    """Every complete stored evaluation of a run (those with a protocol.json), oldest first."""
    root = Path(run.path if isinstance(run, Run) else run) / EVALUATIONS
    found = []
    for meta_path in sorted(root.glob("*/protocol.json"), key=lambda p: p.stat().st_mtime):
        try:
            found.append(StoredEvaluation(meta_path.parent, json.loads(meta_path.read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def load_evaluation(run: Run | str | Path, key: str | None = None) -> StoredEvaluation:
    """A run's stored evaluation under protocol `key` (default: the only one, or the default protocol's)."""
    evals = list_evaluations(run)
    path = Path(run.path if isinstance(run, Run) else run)
    if not evals:
        raise FileNotFoundError(f"run {path} has no stored evaluation (no {EVALUATIONS}/*/protocol.json); evaluate "
                                "it with workbench.dashboard.ensure_evaluation(run) or re-run fit")
    if key is None:
        default = [e for e in evals if not e.identity["split_options"] and not e.identity["rerank"]]
        return (default or evals)[0]
    for e in evals:
        if e.key == key:
            return e
    raise KeyError(f"run {path.name} has no evaluation {key!r}; it has {[e.key for e in evals]}")


def comparable(a: StoredEvaluation, b: StoredEvaluation) -> tuple[bool, str]:
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
