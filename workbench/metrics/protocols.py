"""Dataset evaluation protocols on feature arrays: per-trial ranking metrics, mean and std over trials.

Defaults per dataset (PROTOCOLS.md section 5.3, METHODS.md section 5):

| protocol  | junk rule                   | CMC     | features / distance                                  | trials |
|-----------|-----------------------------|---------|------------------------------------------------------|--------|
| sysu-mm01 | cam-3 probe drops cam 2     | dedup   | L2-normalised, cosine (AGW: inner product)           | 10 gallery draws |
| regdb     | none                        | plain   | L2-normalised, cosine                                | 10 splits |
| llcm      | same pid and same camera    | dedup   | L2-normalised, cosine                                | 10 gallery draws |
| rgbnt201  | same pid and same camera    | plain   | concatenated, L2-normalised, squared Euclidean       | 1 |
| rgbnt100  | same pid and same camera    | plain   | as rgbnt201                                          | 1 |
| msvr310   | same pid and same scene     | plain   | as rgbnt201                                          | 1 |

Sources: [CODE: mangye16/Cross-Modal-Re-ID-baseline, eval_metrics.py::eval_sysu / eval_regdb, test.py] (max rank
20, mean of per-trial CMC/mAP/mINP); [CODE: ZYK100/LLCM, DEEN/eval_metrics.py] (same-camera removal, dedup CMC);
[CODE: 924973292/TOP-ReID, utils/metrics.py::R1_mAP_eval, eval_func, eval_func_msrv] (concatenate the modality
features, ``FEAT_NORM``: normalise the concatenated vector, ``euclidean_distance`` without the square root).

The score of a protocol is the arithmetic mean of the per-trial metrics (not a pool of all queries), as the
reference trial loops compute it. Gallery draws themselves (``random.seed(trial)``) come from the data layer's
``eval_splits``; this module only consumes arrays. So SYSU-MM01 all-search and indoor-search, single-shot and
multi-shot (10 images per identity and camera) share one spec and differ only in the trials passed in; the dedup
CMC is what makes multi-shot count the best image of each identity. LLCM visible->infrared as DEEN's code runs it
(sampled NIR images as rows of a transposed matrix) is likewise a choice of which set is passed as the query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from workbench.metrics.distance import METRICS, l2_normalize, pairwise_distance
from workbench.metrics.ranking import JUNK_RULES, TIE_POLICIES, RankResult, rank_metrics
from workbench.metrics.rerank import k_reciprocal_rerank
from workbench.utils import to_numpy

Feats = np.ndarray | torch.Tensor
BRANCH_NORMS = ("per_branch", "concat")


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Features and labels of a list of samples (a query or gallery set, or whatever `extract_features` was given),
    row i for sample i. The one feature record of the package: feature extraction returns it, protocols score it.

    Attributes:
        feats: (N, D) array, or a dict branch name -> (N, D_b) array (e.g. {"feats", "rgb", "nir", "tir"} or
            {"semantic", "style"}); numpy or torch. "feats" is a model's retrieval embedding.
        pids: (N,) identity labels.
        camids: (N,) camera ids.
        scenes: (N,) scene ids (MSVR310), or None.
    """

    feats: Feats | Mapping[str, Feats]
    pids: np.ndarray
    camids: np.ndarray
    scenes: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.pids)
        branches = self.feats if isinstance(self.feats, Mapping) else {"feats": self.feats}
        if not branches:
            raise ValueError("EvalSet.feats is an empty dict; give at least one branch name -> (N, D) array")
        for name, f in branches.items():
            if not isinstance(f, (np.ndarray, torch.Tensor)) or f.ndim != 2:
                shape = getattr(f, "shape", type(f).__name__)
                raise ValueError(f"EvalSet feats[{name!r}] must be a 2-D (N, D) array or tensor, got {shape}")
            if f.shape[0] != n:
                raise ValueError(
                    f"EvalSet feats[{name!r}] has {f.shape[0]} rows but pids has {n}; one row per image"
                )
        for attr in ("camids", "scenes"):
            val = getattr(self, attr)
            if val is not None and len(val) != n:
                raise ValueError(f"EvalSet.{attr} has length {len(val)} but pids has {n}")

    @property
    def branches(self) -> Mapping[str, Feats]:
        """Branch name -> (N, D_b) features (a plain array is the single branch "feats")."""
        return self.feats if isinstance(self.feats, Mapping) else {"feats": self.feats}

    @property
    def branch_names(self) -> tuple[str, ...]:
        """The branch names, in order."""
        return tuple(self.branches)

    def subset(self, rows: np.ndarray) -> EvalSet:
        """The rows `rows` (an index array) of every branch and label, as a new EvalSet."""
        rows = np.asarray(rows)
        return EvalSet({k: v[rows] for k, v in self.branches.items()}, np.asarray(self.pids)[rows],
                       np.asarray(self.camids)[rows], None if self.scenes is None else np.asarray(self.scenes)[rows])

    def __len__(self) -> int:
        return len(self.pids)


@dataclass(frozen=True)
class ProtocolSpec:
    """How one dataset is evaluated.

    Attributes:
        name: label shown in summaries.
        junk: junk rule, see ``rank_metrics``: "market" | "sysu" | "msvr310" | "none".
        dedup_cmc: identity-deduplicated CMC (SYSU-MM01, LLCM).
        metric: "cosine" | "euclidean" | "sqeuclidean".
        normalize: L2-normalise the features before the distance.
        branch_norm: with several branches and ``normalize``: "per_branch" normalises each selected branch, then
            concatenates (every branch weighs the same); "concat" concatenates, then normalises the whole vector
            (TOP-ReID ``FEAT_NORM``).
        ties: tie policy, see ``rank_metrics``.
        max_rank: CMC length.
        rerank: apply k-reciprocal re-ranking (on Euclidean distances of the same features, as the reference).
        k1, k2, lambda_value: re-ranking parameters (paper defaults).
    """

    name: str = "market"
    junk: str = "market"
    dedup_cmc: bool = False
    metric: str = "cosine"
    normalize: bool = True
    branch_norm: str = "per_branch"
    ties: str = "stable"
    max_rank: int = 50
    rerank: bool = False
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3

    def __post_init__(self) -> None:
        if self.junk not in JUNK_RULES:
            raise ValueError(f"ProtocolSpec.junk must be one of {JUNK_RULES}, got {self.junk!r}")
        if self.metric not in METRICS:
            raise ValueError(f"ProtocolSpec.metric must be one of {METRICS}, got {self.metric!r}")
        if self.branch_norm not in BRANCH_NORMS:
            raise ValueError(
                f"ProtocolSpec.branch_norm must be one of {BRANCH_NORMS}, got {self.branch_norm!r}"
            )
        if self.ties not in TIE_POLICIES:
            raise ValueError(f"ProtocolSpec.ties must be one of {TIE_POLICIES}, got {self.ties!r}")


# AGW / DAKD: inner product of L2-normalised features
_VI = dict(metric="cosine", normalize=True, max_rank=20)
_MM = dict(metric="sqeuclidean", normalize=True, branch_norm="concat", max_rank=50)  # TOP-ReID R1_mAP_eval

PROTOCOLS: dict[str, ProtocolSpec] = {
    "sysu-mm01": ProtocolSpec(name="sysu-mm01", junk="sysu", dedup_cmc=True, **_VI),
    "regdb": ProtocolSpec(name="regdb", junk="none", dedup_cmc=False, **_VI),
    "llcm": ProtocolSpec(name="llcm", junk="market", dedup_cmc=True, **_VI),
    "rgbnt201": ProtocolSpec(name="rgbnt201", junk="market", **_MM),
    "rgbnt100": ProtocolSpec(name="rgbnt100", junk="market", **_MM),
    "msvr310": ProtocolSpec(name="msvr310", junk="msvr310", **_MM),
}


def _cat(parts: list[Feats]) -> Feats:
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, torch.Tensor) for p in parts):
        return torch.cat(parts, dim=1)
    return np.concatenate([to_numpy(p) for p in parts], axis=1)


def combine_branches(
    eval_set: EvalSet,
    branches: Sequence[str] | None = None,
    *,
    normalize: bool = True,
    branch_norm: str = "per_branch",
) -> Feats:
    """The retrieval feature of an EvalSet: selected branches concatenated in the given order.

    Rule: ``branches=None`` takes every branch in the dict's order. With ``normalize`` and
    ``branch_norm="per_branch"``, each selected branch is L2-normalised, then they are concatenated (no
    renormalisation: each branch contributes equally to a cosine or Euclidean distance). With
    ``branch_norm="concat"``, the concatenation is L2-normalised as a whole. Without ``normalize`` the raw
    features are concatenated.

    Args:
        eval_set: the set.
        branches: names to keep, e.g. ("nir",) or ("semantic",).

    Returns:
        (N, sum of D_b) array or tensor.
    """
    available = eval_set.branch_names
    names = list(available) if branches is None else list(branches)
    if not names:
        raise ValueError("branches is empty; pass None for all branches or at least one name")
    missing = [b for b in names if b not in available]
    if missing:
        raise ValueError(f"unknown branches {missing}; this EvalSet has {list(available)}")
    if branch_norm not in BRANCH_NORMS:
        raise ValueError(f"branch_norm must be one of {BRANCH_NORMS}, got {branch_norm!r}")
    feats = eval_set.branches
    parts = [feats[b] for b in names]
    if normalize and branch_norm == "per_branch":
        parts = [l2_normalize(p) for p in parts]
    out = _cat(parts)
    if normalize and branch_norm == "concat":
        out = l2_normalize(out)
    return out


def _prepare(
    eval_set: EvalSet, spec: ProtocolSpec, branches: Sequence[str] | None, cache: dict
) -> tuple[Feats, Feats]:
    """(combined features, features handed to the distance), computed once per EvalSet object.

    For the cosine metric the second is the combined feature scaled to unit rows, so the distance can skip its
    own normalisation (a query set shared by 10 gallery draws is normalised once, not 10 times).
    """
    key = id(eval_set)
    if key not in cache:
        combined = combine_branches(
            eval_set, branches, normalize=spec.normalize, branch_norm=spec.branch_norm
        )
        n_branches = len(eval_set.branch_names) if branches is None else len(branches)
        unit_rows = spec.normalize and (spec.branch_norm == "concat" or n_branches == 1)
        for_distance = l2_normalize(combined) if spec.metric == "cosine" and not unit_rows else combined
        cache[key] = (eval_set, combined, for_distance)  # holding eval_set keeps id() unique while cached
    return cache[key][1], cache[key][2]


_BATCH_ELEMENTS = 1 << 25  # distances per batched matrix product (128 MiB in float32)


def _batched_distances(
    trials: list[tuple[EvalSet, EvalSet]], spec: ProtocolSpec, branches: Sequence[str] | None, cache: dict
) -> dict[int, np.ndarray]:
    """Distance matrices of trials that share one query object (SYSU/LLCM gallery draws), from one matrix
    product per batch of galleries instead of one per trial. Returns {trial index: (Q, G_t) distances}."""
    groups: dict[int, list[int]] = {}
    for t, (query, _) in enumerate(trials):
        groups.setdefault(id(query), []).append(t)
    out: dict[int, np.ndarray] = {}
    for idx in groups.values():
        query = trials[idx[0]][0]
        _, qd = _prepare(query, spec, branches, cache)
        gds = [_prepare(trials[t][1], spec, branches, cache)[1] for t in idx]
        if len(idx) < 2 or any(isinstance(g, torch.Tensor) != isinstance(qd, torch.Tensor) for g in gds):
            continue
        feats_of = dict(zip(idx, gds))
        batches, current, width = [], [], 0
        for t in idx:  # consecutive trials, at most _BATCH_ELEMENTS distances per product
            cols = len(trials[t][1])
            if current and (width + cols) * len(query) > _BATCH_ELEMENTS:
                batches.append(current)
                current, width = [], 0
            current.append(t)
            width += cols
        batches.append(current)
        for batch in batches:
            feats = [feats_of[t] for t in batch]
            both = torch.cat(feats) if isinstance(qd, torch.Tensor) else np.concatenate(feats)
            dist = to_numpy(pairwise_distance(qd, both, spec.metric, assume_normalized=True))
            edges = np.cumsum([0] + [len(trials[t][1]) for t in batch])
            out.update({t: dist[:, edges[i] : edges[i + 1]] for i, t in enumerate(batch)})
    return out


def protocol_distances(
    query: EvalSet,
    gallery: EvalSet,
    spec: ProtocolSpec,
    branches: Sequence[str] | None = None,
    _cache: dict | None = None,
    _distmat: np.ndarray | None = None,
) -> np.ndarray:
    """(Q, G) distances of one query set against one gallery as the protocol ranks them: the branches combined
    as ``spec`` says (``combine_branches``), ``spec.metric``, and k-reciprocal re-ranking when ``spec.rerank``."""
    if query.branch_names != gallery.branch_names and branches is None:
        raise ValueError(
            f"query branches {list(query.branch_names)} differ from gallery branches {list(gallery.branch_names)}; "
            "pass branches=[...] to pick common ones"
        )
    cache = {} if _cache is None else _cache
    qf, qd = _prepare(query, spec, branches, cache)
    gf, gd = _prepare(gallery, spec, branches, cache)
    if isinstance(qf, torch.Tensor) != isinstance(gf, torch.Tensor):
        qf, gf, qd, gd = to_numpy(qf), to_numpy(gf), to_numpy(qd), to_numpy(gd)
    if _distmat is not None:  # computed by evaluate_trials with the other trials of this query
        distmat = _distmat
    else:
        distmat = to_numpy(pairwise_distance(qd, gd, spec.metric, assume_normalized=True))
    if spec.rerank:
        # the reference re-ranks Euclidean distances of the same features (it squares them itself)
        q_g, q_q, g_g = (
            to_numpy(pairwise_distance(a, b, "euclidean")) for a, b in ((qf, gf), (qf, qf), (gf, gf))
        )
        distmat = k_reciprocal_rerank(q_g, q_q, g_g, k1=spec.k1, k2=spec.k2, lambda_value=spec.lambda_value)
    return distmat


def evaluate_pair(
    query: EvalSet,
    gallery: EvalSet,
    spec: ProtocolSpec,
    branches: Sequence[str] | None = None,
    _cache: dict | None = None,
    _distmat: np.ndarray | None = None,
) -> RankResult:
    """Rank metrics of one query set against one gallery under ``spec`` (distances: ``protocol_distances``)."""
    distmat = protocol_distances(query, gallery, spec, branches, _cache=_cache, _distmat=_distmat)
    return rank_metrics(
        distmat,
        np.asarray(query.pids),
        np.asarray(gallery.pids),
        np.asarray(query.camids),
        np.asarray(gallery.camids),
        junk=spec.junk,
        dedup_cmc=spec.dedup_cmc,
        max_rank=spec.max_rank,
        ties=spec.ties,
        q_scenes=None if query.scenes is None else np.asarray(query.scenes),
        g_scenes=None if gallery.scenes is None else np.asarray(gallery.scenes),
    )


@dataclass(frozen=True, eq=False)
class ProtocolResult:
    """Metrics of a protocol over its trials.

    Attributes:
        spec: the protocol.
        mean: metric -> arithmetic mean over trials (rank1/5/10/20, mAP, mINP).
        std: metric -> population standard deviation over trials (0 for one trial).
        cmc: (max_rank,) mean CMC curve over trials.
        per_trial: one row per trial: the metrics plus num_query, num_gallery, num_valid, num_skipped.
        trials: the RankResult of every trial.
        branches: the branches evaluated (None = all).
    """

    spec: ProtocolSpec
    mean: dict[str, float]
    std: dict[str, float]
    cmc: np.ndarray
    per_trial: pd.DataFrame = field(repr=False)
    trials: list[RankResult] = field(repr=False)
    branches: tuple[str, ...] | None = None

    def summary(self) -> str:
        """One line: ``name [branches] (n trials): rank1 47.50±0.30 | ... (percent)``."""
        parts = [f"{k} {100 * self.mean[k]:.2f}±{100 * self.std[k]:.2f}" for k in self.mean]
        which = f" [{'+'.join(self.branches)}]" if self.branches else ""
        return f"{self.spec.name}{which} ({len(self.trials)} trials): " + " | ".join(parts)

    def __repr__(self) -> str:
        return f"ProtocolResult({self.summary()})"


def evaluate_trials(
    trials: Sequence[tuple[EvalSet, EvalSet]], spec: ProtocolSpec, branches: Sequence[str] | None = None
) -> ProtocolResult:
    """Evaluate every (query, gallery) trial and average the per-trial metrics.

    Args:
        trials: one (query, gallery) pair per trial (SYSU/LLCM: gallery draws; RegDB: splits; RGBNT: one pair).
        spec: the protocol, e.g. ``PROTOCOLS["sysu-mm01"]`` or ``dataclasses.replace(..., rerank=True)``.
        branches: branch names to concatenate (see ``combine_branches``); None = all.

    Returns:
        ProtocolResult with mean, std, mean CMC and the per-trial table.
    """
    if isinstance(trials, tuple) and len(trials) == 2 and isinstance(trials[0], EvalSet):
        raise ValueError(
            "trials must be a sequence of (query, gallery) pairs; wrap a single pair as [(query, gallery)]"
        )
    trials = list(trials)
    if len(trials) == 0:
        raise ValueError("trials is empty; pass at least one (query, gallery) pair")
    for t, pair in enumerate(trials):
        if len(pair) != 2 or not all(isinstance(s, EvalSet) for s in pair):
            raise ValueError(f"trials[{t}] must be a (query: EvalSet, gallery: EvalSet) pair")
        if pair[0].branch_names != pair[1].branch_names and branches is None:
            raise ValueError(
                f"trials[{t}]: query branches {list(pair[0].branch_names)} differ from gallery branches "
                f"{list(pair[1].branch_names)}; pass branches=[...] to pick common ones"
            )
    results, rows, cache = [], [], {}
    distmats = {} if spec.rerank else _batched_distances(trials, spec, branches, cache)
    for t, (query, gallery) in enumerate(trials):
        res = evaluate_pair(query, gallery, spec, branches, _cache=cache, _distmat=distmats.pop(t, None))
        results.append(res)
        rows.append(
            {
                "trial": t,
                **res.as_dict(),
                "num_query": len(query),
                "num_gallery": len(gallery),
                "num_valid": res.num_valid,
                "num_skipped": res.num_skipped,
            }
        )
    per_trial = pd.DataFrame(rows)
    keys = list(results[0].as_dict())
    mean = {k: float(per_trial[k].mean()) for k in keys}
    std = {k: float(per_trial[k].std(ddof=0)) for k in keys}
    cmc = np.mean([r.cmc for r in results], axis=0)
    return ProtocolResult(
        spec, mean, std, cmc, per_trial, results, None if branches is None else tuple(branches)
    )


def evaluate_directions(
    directions: Mapping[str, Sequence[tuple[EvalSet, EvalSet]]],
    spec: ProtocolSpec,
    branches: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Evaluate several named search directions and report them in one table (RegDB, LLCM: both directions).

    Args:
        directions: name -> trials, e.g. {"visible->thermal": trials_v2t, "thermal->visible": trials_t2v}.
        spec: the protocol shared by all directions.
        branches: see ``evaluate_trials``.

    Returns:
        DataFrame indexed by direction with one column per metric (mean over trials), a ``<metric>_std``
        column for each, and ``num_trials``.
    """
    if not directions:
        raise ValueError("directions is empty; pass {name: [(query, gallery), ...]}")
    rows = {}
    for name, trials in directions.items():
        res = evaluate_trials(trials, spec, branches)
        rows[name] = {
            **res.mean,
            **{f"{k}_std": v for k, v in res.std.items()},
            "num_trials": len(res.trials),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "direction"
    return table


def with_rerank(spec: ProtocolSpec, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> ProtocolSpec:
    """A copy of ``spec`` with k-reciprocal re-ranking switched on."""
    return replace(spec, name=f"{spec.name}+rerank", rerank=True, k1=k1, k2=k2, lambda_value=lambda_value)
