"""Benchmark the evaluator against a straightforward per-query numpy loop (issue 3, section 4).

1. Market-sized ranking: 3,368 queries x 15,913 gallery, 751 identities, 6 cameras, random features.
   ``rank_metrics(junk="market")`` against a per-query loop with the semantics of ReID-Survey ``eval_func``
   (one ``np.argsort`` of the whole matrix, then per query: junk removal, cumsum CMC, AP, INP).
2. SYSU-MM01 all-search, 10 trials, from cached features (3,803 IR queries, 301 RGB gallery images per trial):
   ``evaluate_trials(PROTOCOLS["sysu-mm01"])`` (distances + metrics) against the same distances fed to a per-query
   loop with ``eval_sysu`` semantics (cam-3 probe drops cam 2, identity-deduplicated CMC); then the metrics
   alone (10 x ``rank_metrics`` against 10 x the loop) on precomputed distance matrices.

The Market matrix is float64 and tie-free, so the reference's default (unstable) ``argsort`` and our stable tie
policy give the same numbers. The SYSU features are float32, as cached features are; float32 distances can tie,
so there the reference loop sorts stably (our default tie policy) to compare like with like; its time is dominated
by the distance computation anyway. Times are the best of ``--repeats`` runs (the machine is shared).
Peak memory: ``tracemalloc`` peak of the Python/numpy allocations inside each timed call (numpy reports its
buffers to tracemalloc), plus the process's ``ru_maxrss``.

    .venv/bin/python benchmarks/bench_metrics.py            # full sizes
    .venv/bin/python benchmarks/bench_metrics.py --quick    # tiny, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

from workbench.metrics import PROTOCOLS, EvalSet, evaluate_trials, pairwise_distance, rank_metrics
from workbench.utils import cache_dir

# ----------------------------------------------------------------------------------------------- reference loops


def reference_loop(distmat, q_pids, g_pids, q_camids, g_camids, rule, dedup, max_rank, kind="quicksort"):
    """Per-query numpy loop in the way the reference implementations work (ReID-Survey eval_func,
    Cross-Modal-Re-ID-baseline eval_sysu): sort everything, then one Python iteration per query."""
    num_g = distmat.shape[1]
    max_rank = min(max_rank, num_g)
    indices = np.argsort(distmat, axis=1, kind=kind)
    matches = g_pids[indices] == q_pids[:, None]
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = indices[i]
        if rule == "market":
            keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        else:  # sysu location rule
            keep = ~((q_camids[i] == 3) & (g_camids[order] == 2))
        raw = matches[i][keep]
        if not raw.any():
            continue
        if dedup:
            labels = g_pids[order][keep]
            first = np.sort(np.unique(labels, return_index=True)[1])
            hit = labels[first] == q_pids[i]
        else:
            hit = raw
        cmc = np.minimum(np.cumsum(hit), 1)[:max_rank]
        # fewer distinct identities than max_rank (dedup): pad with the last value (eval_sysu would fail here)
        all_cmc.append(np.pad(cmc, (0, max_rank - len(cmc)), mode="edge"))
        cum = np.cumsum(raw)
        pos = np.flatnonzero(raw)
        all_ap.append(np.sum(cum[pos] / (pos + 1.0)) / len(pos))
        all_inp.append(cum[pos[-1]] / (pos[-1] + 1.0))
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap)), float(np.mean(all_inp))


# ----------------------------------------------------------------------------------------------- data


def market_problem(num_q, num_g, num_ids, num_cams, dim, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((num_q, dim))
    g = rng.standard_normal((num_g, dim))
    return (
        pairwise_distance(q, g, "cosine"),
        rng.integers(0, num_ids, num_q),
        rng.integers(0, num_ids, num_g),
        rng.integers(1, num_cams + 1, num_q),
        rng.integers(1, num_cams + 1, num_g),
    )


def sysu_features(num_q, num_g, num_ids, dim, trials, path: Path):
    """Synthetic SYSU-like features, cached as .npz (generated once): IR queries on cams 3/6, and per trial
    one RGB gallery image for each of ``num_g`` (identity, camera in 1, 2, 4, 5) cells."""
    if path.exists():
        data = np.load(path)
        if data["q_feats"].shape == (num_q, dim) and data["g_feats"].shape == (trials, num_g, dim):
            return data
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((num_ids, dim)).astype(np.float32)
    q_pids = np.sort(rng.integers(0, num_ids, num_q))
    q_cams = rng.choice([3, 6], num_q)
    cells = rng.choice(num_ids * 4, num_g, replace=False)
    g_pids, g_cams = cells // 4, np.array([1, 2, 4, 5])[cells % 4]
    noise = 5.0  # gives rank-1 around 0.5 at dim 2048, like a mid-range VI-ReID model
    q_feats = centres[q_pids] + noise * rng.standard_normal((num_q, dim), dtype=np.float32)
    g_feats = centres[g_pids][None] + noise * rng.standard_normal((trials, num_g, dim), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path, q_feats=q_feats, q_pids=q_pids, q_cams=q_cams, g_feats=g_feats, g_pids=g_pids, g_cams=g_cams
    )
    return np.load(path)


# ----------------------------------------------------------------------------------------------- timing


def measure(fn, repeats):
    """Best wall time over ``repeats`` runs, the tracemalloc peak (bytes) of the first run, and the result."""
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, peak, out


def bench_market(mk: dict, args: argparse.Namespace) -> dict:
    """Market-sized problem: our evaluator vs the per-query loop on one tie-free float64 matrix."""
    dist, q_pids, g_pids, q_cams, g_cams = market_problem(**mk)
    t_ours, mem_ours, ours = measure(
        lambda: rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, junk="market", max_rank=50), args.repeats
    )
    # ru_maxrss is in KiB on Linux; read it before the reference loop runs
    maxrss_ours_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t_ref, mem_ref, ref = measure(
        lambda: reference_loop(dist, q_pids, g_pids, q_cams, g_cams, "market", False, 50), args.ref_repeats
    )
    diff = max(np.abs(ours.cmc - ref[0]).max(), abs(ours.mAP - ref[1]), abs(ours.mINP - ref[2]))
    return dict(
        shape=list(dist.shape),
        ours_s=t_ours,
        reference_s=t_ref,
        speedup=t_ref / t_ours,
        ours_peak_MiB=mem_ours / 2**20,
        reference_peak_MiB=mem_ref / 2**20,
        distmat_MiB=dist.nbytes / 2**20,
        max_abs_diff=float(diff),
        rank1=ours.rank1,
        mAP=ours.mAP,
        mINP=ours.mINP,
        process_maxrss_before_reference_MiB=maxrss_ours_mib,
    )


def bench_sysu(sy: dict, args: argparse.Namespace, tag: str) -> dict[str, dict]:
    """SYSU-MM01 all-search 10-trial protocol from cached features: the whole protocol (distances + metrics),
    and the metrics alone on precomputed distance matrices."""
    data = sysu_features(**sy, path=cache_dir() / "bench_metrics" / f"sysu_synthetic_{tag}.npz")
    query = EvalSet(data["q_feats"], data["q_pids"], data["q_cams"])
    trials = [(query, EvalSet(gf, data["g_pids"], data["g_cams"])) for gf in data["g_feats"]]
    spec = PROTOCOLS["sysu-mm01"]
    t_ours, mem_ours, res = measure(lambda: evaluate_trials(trials, spec), args.repeats)

    def ref_loops(dists):
        out = [
            reference_loop(d, q.pids, g.pids, q.camids, g.camids, "sysu", True, 20, kind="stable")
            for d, (q, g) in zip(dists, trials)
        ]
        return np.mean([o[0] for o in out], 0), np.mean([o[1] for o in out]), np.mean([o[2] for o in out])

    def ref_protocol():
        return ref_loops([pairwise_distance(q.feats, g.feats, "cosine") for q, g in trials])

    t_ref, mem_ref, ref = measure(ref_protocol, args.ref_repeats)
    diff = max(np.abs(res.cmc - ref[0]).max(), abs(res.mean["mAP"] - ref[1]), abs(res.mean["mINP"] - ref[2]))
    rows = {}
    rows["sysu_10_trials"] = dict(
        shape=[len(query), len(trials[0][1])],
        trials=len(trials),
        ours_s=t_ours,
        reference_s=t_ref,
        speedup=t_ref / t_ours,
        ours_peak_MiB=mem_ours / 2**20,
        reference_peak_MiB=mem_ref / 2**20,
        max_abs_diff=float(diff),
        rank1=res.mean["rank1"],
        mAP=res.mean["mAP"],
        mINP=res.mean["mINP"],
    )

    dists = [pairwise_distance(q.feats, g.feats, "cosine") for q, g in trials]

    def ours_metrics():
        out = [
            rank_metrics(d, q.pids, g.pids, q.camids, g.camids, junk="sysu", dedup_cmc=True, max_rank=20)
            for d, (q, g) in zip(dists, trials)
        ]
        return np.mean([o.cmc for o in out], 0), np.mean([o.mAP for o in out]), np.mean([o.mINP for o in out])

    t_ours, mem_ours, res = measure(ours_metrics, args.repeats)
    t_ref, mem_ref, ref = measure(lambda: ref_loops(dists), args.ref_repeats)
    diff = max(np.abs(res[0] - ref[0]).max(), abs(res[1] - ref[1]), abs(res[2] - ref[2]))
    rows["sysu_metrics_only"] = dict(
        shape=[len(query), len(trials[0][1])],
        trials=len(trials),
        ours_s=t_ours,
        reference_s=t_ref,
        speedup=t_ref / t_ours,
        ours_peak_MiB=mem_ours / 2**20,
        reference_peak_MiB=mem_ref / 2**20,
        max_abs_diff=float(diff),
        rank1=float(res[0][0]),
        mAP=float(res[1]),
        mINP=float(res[2]),
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of our evaluator (best is reported)")
    ap.add_argument("--ref-repeats", type=int, default=1, help="timed runs of the per-query reference loop")
    args = ap.parse_args()
    if args.quick:
        mk = dict(num_q=200, num_g=1000, num_ids=50, num_cams=6, dim=32)
        sy = dict(num_q=300, num_g=60, num_ids=20, dim=32, trials=3)
    else:
        mk = dict(num_q=3368, num_g=15913, num_ids=751, num_cams=6, dim=256)
        sy = dict(num_q=3803, num_g=301, num_ids=96, dim=2048, trials=10)
    rows = {"market": bench_market(mk, args)}
    rows.update(bench_sysu(sy, args, "quick" if args.quick else "full"))
    maxrss_ours_mib = rows["market"]["process_maxrss_before_reference_MiB"]

    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        f"{'problem':<16}{'Q x G':>14}{'ours s':>9}{'loop s':>9}{'speedup':>9}{'ours MiB':>10}{'loop MiB':>10}"
        f"{'max|diff|':>11}{'R1':>7}{'mAP':>7}"
    )
    for name, r in rows.items():
        print(
            f"{name:<16}{'x'.join(map(str, r['shape'])):>14}{r['ours_s']:>9.3f}{r['reference_s']:>9.3f}"
            f"{r['speedup']:>8.1f}x{r['ours_peak_MiB']:>10.1f}{r['reference_peak_MiB']:>10.1f}"
            f"{r['max_abs_diff']:>11.1e}{r['rank1']:>7.3f}{r['mAP']:>7.3f}"
        )
    print(
        f"process ru_maxrss: {maxrss_ours_mib:.0f} MiB after our Market run (distmat included), "
        f"{maxrss_mib:.0f} MiB at the end (reference loops included); MiB columns are tracemalloc peaks per call"
    )
    print("BENCH_METRICS " + json.dumps({"quick": args.quick, **rows, "ru_maxrss_MiB": maxrss_mib}))


if __name__ == "__main__":
    main()
