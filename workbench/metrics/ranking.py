"""CMC, mAP and mINP for ReID retrieval, vectorised over queries, with explicit junk, dedup and tie options.

Semantics (PROTOCOLS.md sections 5.2 and 5.3; METHODS.md section 1.4):

* Ranking: ascending distance. Tie policy ``ties``:
  ``"stable"`` (default) breaks ties by gallery index, as a stable sort does (the MATLAB SYSU code sorts stably);
  ``"pessimistic"`` puts every true match after every tied false one; ``"optimistic"`` the reverse.
  The reference Python code uses numpy's default (unstable) ``argsort``, so on tie-free matrices all agree.
* Junk removal ``junk``, applied before any metric:
  ``"market"`` drops gallery items with the query's pid and camid
  [CODE: mangye16/ReID-Survey, data/datasets/eval_reid.py::eval_func];
  ``"sysu"`` drops every camera-2 gallery item for a camera-3 probe, whatever the identity
  [CODE: mangye16/Cross-Modal-Re-ID-baseline, eval_metrics.py::eval_sysu];
  ``"msvr310"`` drops gallery items with the query's pid and scene id
  [CODE: 924973292/TOP-ReID, utils/metrics.py::eval_func_msrv];
  ``"none"`` keeps everything (RegDB: ``eval_regdb`` forces q_camids=1, g_camids=2, so nothing is removed).
* A query with no true match left is skipped: it counts in neither numerator nor denominator of CMC, mAP and mINP.
* CMC@k: 1 if a true match is within the top k of the kept list. With ``dedup_cmc=True`` each gallery identity is
  kept only at its first occurrence, so rank-k means "the k-th distinct identity" (eval_sysu, SYSU/LLCM protocol).
  mAP and mINP always use the non-deduplicated list.
* AP = mean over true matches j of (j / rank of the j-th true match), over the whole kept list (untruncated).
* INP = (number of true matches) / (rank of the last true match) (Ye et al., ReID survey, TPAMI 2021).

Algorithm (no per-query Python loop, no full sort). Only the ranks of the true matches are needed. For a chunk of
queries, every distance is mapped to one of ``B`` value bins per row by a monotone non-decreasing map, so an item
in a lower bin is strictly closer. A per-row histogram (one ``bincount``) gives, for each true match, the number
of kept items in lower bins; the few items sharing a bin with some true match are then ordered exactly by
(distance, tie key) with one ``lexsort``. The result is the exact rank of every true match under the chosen tie
policy, in O(Q G) time and O(chunk x G) extra memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from workbench.utils import to_numpy

JUNK_RULES = ("market", "sysu", "msvr310", "none")
TIE_POLICIES = ("stable", "pessimistic", "optimistic")
# (query camera, gallery camera) removed by the SYSU-MM01 location rule: IR cam 3 sits in the room of RGB cam 2.
SYSU_SAME_LOCATION = (3, 2)
# distances per query chunk: small enough to stay in cache, large enough to amortise the Python overhead
_CHUNK_ELEMENTS = 1 << 19
_MAX_CHUNK_ROWS = 512
_MAX_BINS = 4096


@dataclass(frozen=True, eq=False)
class RankResult:
    """Ranking metrics of one query set against one gallery.

    Attributes:
        cmc: (max_rank,) CMC curve in [0, 1]; ``cmc[k-1]`` is rank-k accuracy. Entries past the gallery size
            equal 1 (the reference code truncates the curve to the gallery size instead).
        mAP: mean average precision over valid queries, in [0, 1].
        mINP: mean inverse negative penalty over valid queries, in [0, 1].
        num_valid: queries with at least one true match after junk removal.
        num_skipped: queries without one (excluded from every metric).
        per_query: one row per query: ``query`` (index), ``pid``, ``camid`` (when given), ``valid``, ``num_matches``,
            ``first_match_rank`` (1-based, in the kept non-deduplicated list), ``cmc_rank`` (the rank the CMC
            counts: deduplicated if ``dedup_cmc``), ``AP``, ``INP``; NaN/<NA> for skipped queries.
        junk, dedup_cmc, ties: the options used.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid: int
    num_skipped: int
    per_query: pd.DataFrame = field(repr=False)
    junk: str = "market"
    dedup_cmc: bool = False
    ties: str = "stable"

    @property
    def rank1(self) -> float:
        """Rank-1 accuracy."""
        return float(self.cmc[0])

    def rank(self, k: int) -> float:
        """Rank-k accuracy (1-based k, at most ``len(cmc)``)."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(
                f"k must be in [1, {len(self.cmc)}] (max_rank), got {k}; raise max_rank to see deeper ranks"
            )
        return float(self.cmc[k - 1])

    def as_dict(self) -> dict[str, float]:
        """rank1/5/10/20 (those within max_rank), mAP and mINP as floats."""
        out = {f"rank{k}": self.rank(k) for k in (1, 5, 10, 20) if k <= len(self.cmc)}
        out["mAP"] = float(self.mAP)
        out["mINP"] = float(self.mINP)
        return out

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v:.4f}" for k, v in self.as_dict().items())
        return (
            f"RankResult({body}, num_valid={self.num_valid}, num_skipped={self.num_skipped}, "
            f"junk={self.junk!r}, dedup_cmc={self.dedup_cmc}, ties={self.ties!r})"
        )


def _to_numpy(name: str, x: object, ndim: int) -> np.ndarray:
    return to_numpy(x, name=name, ndim=ndim, shape="(Q, G)" if ndim == 2 else "(N,)")


def _check_labels(name: str, x: object, n: int, what: str) -> np.ndarray:
    if x is None:
        raise ValueError(
            f"{name} is required for this junk rule; pass one {what} per row, or use junk='none'"
        )
    arr = _to_numpy(name, x, 1)
    if len(arr) != n:
        raise ValueError(
            f"{name} has length {len(arr)} but the distance matrix needs {n} ({what} per row/column)"
        )
    return arr


@dataclass(frozen=True)
class _Gallery:
    """Gallery side, prepared once: pid codes grouped for fast same-pid enumeration."""

    code: np.ndarray  # (G,) pid code
    order: np.ndarray  # (G,) gallery indices sorted by pid code (stable)
    starts: np.ndarray  # (P,) first position in ``order`` of each code
    counts: np.ndarray  # (P,) gallery items per code
    cams: np.ndarray | None
    scenes: np.ndarray | None


def junk_mask(junk: str, q_pid, q_camid, g_pids: np.ndarray, g_camids: np.ndarray, q_scene=None,
              g_scenes: np.ndarray | None = None) -> np.ndarray:
    """(G,) bool: the gallery items `rank_metrics` removes as junk for one query (the same rules, one query at a
    time: ranked lists, stored evaluations)."""
    if junk not in JUNK_RULES:
        raise ValueError(f"junk must be one of {JUNK_RULES}, got {junk!r}")
    if junk == "none":
        return np.zeros(len(g_pids), dtype=bool)
    if junk == "sysu":
        return np.full(len(g_pids), q_camid == SYSU_SAME_LOCATION[0]) & (g_camids == SYSU_SAME_LOCATION[1])
    same = g_pids == q_pid
    if junk == "market":
        return same & (g_camids == q_camid)
    if g_scenes is None or q_scene is None:
        raise ValueError("junk='msvr310' needs scene ids for the query and the gallery")
    return same & (g_scenes == q_scene)


def _junk_mask(
    junk: str, q: np.ndarray, g: np.ndarray, q_code, gal: _Gallery, q_cams, q_scenes
) -> np.ndarray:
    """Whether each (query q[i], gallery g[i]) pair is junk, for 1-D index arrays q, g of equal length."""
    if junk == "none":
        return np.zeros(len(q), dtype=bool)
    if junk == "sysu":
        return (q_cams[q] == SYSU_SAME_LOCATION[0]) & (gal.cams[g] == SYSU_SAME_LOCATION[1])
    same = gal.code[g] == q_code[q]
    if junk == "market":
        return same & (gal.cams[g] == q_cams[q])
    return same & (gal.scenes[g] == q_scenes[q])  # msvr310


def _same_pid_pairs(q_code_chunk: np.ndarray, gal: _Gallery) -> tuple[np.ndarray, np.ndarray]:
    """All (row in chunk, gallery index) pairs sharing a pid, rows ascending, gallery index ascending per row."""
    lens = gal.counts[q_code_chunk]
    rows = np.repeat(np.arange(len(q_code_chunk)), lens)
    seg_start = np.repeat(np.cumsum(lens) - lens, lens)
    within = np.arange(len(rows)) - seg_start
    cols = gal.order[np.repeat(gal.starts[q_code_chunk], lens) + within]
    return rows, cols


def _junk_pairs(
    junk, s, r, same_rows, same_cols, q_code, gal, q_cams, q_scenes
) -> tuple[np.ndarray, np.ndarray]:
    """All junk (row in chunk, gallery index) pairs of the chunk of rows [s, s + r)."""
    if junk == "none":
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    if junk == "sysu":
        rows = np.flatnonzero(q_cams[s : s + r] == SYSU_SAME_LOCATION[0])
        cols = np.flatnonzero(gal.cams == SYSU_SAME_LOCATION[1])
        return np.repeat(rows, len(cols)), np.tile(cols, len(rows))
    m = _junk_mask(junk, same_rows + s, same_cols, q_code, gal, q_cams, q_scenes)
    return same_rows[m], same_cols[m]


class _Workspace:
    """Buffers reused across query chunks, one per name, grown on demand."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def buffer(self, name: str, shape: tuple[int, int], dtype) -> np.ndarray:
        size = shape[0] * shape[1]
        buf = self._bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self._bufs[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)


def _value_bins(dc: np.ndarray, n_bins: int, work: _Workspace) -> np.ndarray:
    """Monotone non-decreasing map of each distance to a bin in [0, n_bins - 1], plus a per-row offset.

    ``d1 < d2`` on one row implies ``bin1 <= bin2``, so an item in a lower bin is strictly closer. The map is
    ``trunc((d - lo) * scale + row * n_bins + 1)`` with ``scale = (n_bins - 3) / (hi - lo)``: the subtraction
    comes first so large offsets lose no precision, and the one-bin margins on each side absorb round-off, so a
    row never spills into its neighbours' bins. +-inf go to the top and bottom bins of their row.

    Args:
        dc: (r, G) distances without NaN.
        work: reusable buffers (fresh large arrays cost page faults on every chunk).

    Returns:
        flat (r, G) int64 = row * n_bins + bin (a view of a workspace buffer).
    """
    lo, hi = float(dc.min()), float(dc.max())
    finite = np.isfinite(lo) and np.isfinite(hi)
    if not finite:
        vals = dc[np.isfinite(dc)]
        lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 0.0)
    dtype = dc.dtype.type
    scale = (n_bins - 3) / (hi - lo) if hi > lo else 0.0
    if not np.isfinite(dtype(scale)):  # a float32 range so narrow that the scale overflows float32
        dtype = np.float64
    x = work.buffer("x", dc.shape, dtype)
    np.subtract(dc, dtype(lo), out=x, dtype=dtype)
    x *= dtype(scale)
    if not finite:
        x[np.isposinf(dc)] = (dtype(hi) - dtype(lo)) * dtype(
            scale
        )  # the value of the largest finite distance
        x[np.isneginf(dc)] = 0.0
    offsets = np.arange(dc.shape[0], dtype=np.float64) * n_bins + 1.0  # (r,)
    flat = work.buffer("flat", dc.shape, np.intp)
    np.add(x, offsets[:, None], out=flat, casting="unsafe")  # float64 sum, truncated toward zero
    return flat


def _segment_positions(keys_sorted: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal keys (keys sorted)."""
    return np.arange(len(keys_sorted)) - np.searchsorted(keys_sorted, keys_sorted, side="left")


def _match_ranks(
    dc: np.ndarray,
    pos_rows: np.ndarray,
    pos_cols: np.ndarray,
    junk_rows: np.ndarray,
    junk_cols: np.ndarray,
    is_junk_pair,
    is_match_pair,
    ties: str,
    work: _Workspace,
) -> np.ndarray:
    """Exact 1-based rank, in the kept list of its row, of every true match (pos_rows[i], pos_cols[i]).

    Args:
        dc: (r, G) distances of a query chunk.
        pos_rows, pos_cols: (M,) true matches (kept, same pid).
        junk_rows, junk_cols: (J,) every junk pair of the chunk.
        is_junk_pair, is_match_pair: callables (rows, cols) -> bool array.
        ties: tie policy.
        work: reusable buffers.
    """
    r, g = dc.shape
    n_bins = int(min(_MAX_BINS, max(8, g)))
    flat = _value_bins(dc, n_bins, work)  # (r, G)
    hist = np.bincount(flat.ravel(), minlength=r * n_bins)
    if len(junk_rows):
        hist -= np.bincount(flat[junk_rows, junk_cols], minlength=r * n_bins)
    # kept items in lower bins of the same row: exclusive cumulative sum, restarted at each row
    cum = np.cumsum(hist) - hist
    row_base = cum[np.arange(r) * n_bins]
    pos_flat = flat[pos_rows, pos_cols]
    lower = cum[pos_flat] - row_base[pos_rows]

    # items sharing a bin with some true match: order them exactly
    table = np.zeros(r * n_bins, dtype=bool)
    table[pos_flat] = True
    sel = np.flatnonzero(np.take(table, flat, out=work.buffer("sel", flat.shape, np.bool_)))
    s_rows, s_cols = np.divmod(sel, g)
    keep = ~is_junk_pair(s_rows, s_cols)
    s_rows, s_cols, sel = s_rows[keep], s_cols[keep], sel[keep]
    s_flat = flat.ravel()[sel]
    s_dist = dc.ravel()[sel]
    s_match = is_match_pair(s_rows, s_cols)
    if ties == "stable":
        order = np.lexsort((s_cols, s_dist, s_flat))
    elif ties == "pessimistic":
        order = np.lexsort((s_cols, s_match, s_dist, s_flat))
    else:  # optimistic
        order = np.lexsort((s_cols, ~s_match, s_dist, s_flat))
    within = np.empty(len(order), dtype=np.intp)
    within[order] = _segment_positions(s_flat[order])
    # map each true match to its entry among the selected items (both sorted by (row, col))
    idx = np.searchsorted(sel, pos_rows * g + pos_cols)  # sel is ascending (row-major flat index)
    return lower + within[idx] + 1


def _dedup_ranks(
    dc: np.ndarray,
    first_cols: np.ndarray,
    rows: np.ndarray,
    junk_rows: np.ndarray,
    junk_cols: np.ndarray,
    gal: _Gallery,
    ties: str,
) -> np.ndarray:
    """Rank of the first true match among distinct gallery identities (first occurrence of each kept pid).

    Args:
        dc: (r, G) chunk distances. rows: (V,) valid rows of the chunk; first_cols: (V,) their first true match.
    """
    r, g = dc.shape
    d = dc[rows]  # (V, G)
    d_f = dc[rows, first_cols][:, None]
    before = d < d_f
    if ties == "stable":
        before |= (d == d_f) & (np.arange(g)[None, :] < first_cols[:, None])
    elif ties == "pessimistic":  # tied false matches come first
        before |= d == d_f
    before &= gal.code[None, :] != gal.code[first_cols][:, None]  # the query's own identity never counts
    if len(junk_rows):
        junk = np.zeros((r, g), dtype=bool)
        junk[junk_rows, junk_cols] = True
        before &= ~junk[rows]
    nonempty = gal.counts > 0
    starts = np.cumsum(gal.counts)[nonempty] - gal.counts[nonempty]
    per_pid = np.logical_or.reduceat(before[:, gal.order], starts, axis=1)  # (V, P_gallery)
    return per_pid.sum(axis=1) + 1


def rank_metrics(
    distmat: np.ndarray | torch.Tensor,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray | None = None,
    g_camids: np.ndarray | None = None,
    *,
    junk: str = "market",
    dedup_cmc: bool = False,
    max_rank: int = 50,
    ties: str = "stable",
    q_scenes: np.ndarray | None = None,
    g_scenes: np.ndarray | None = None,
    chunk_size: int | None = None,
) -> RankResult:
    """CMC, mAP and mINP of a query-gallery distance matrix under an explicit protocol.

    Args:
        distmat: (Q, G) distances, smaller = more similar (numpy or torch; no NaN; +-inf allowed).
        q_pids: (Q,) query identity labels (any hashable numpy dtype: ints or strings).
        g_pids: (G,) gallery identity labels, in the same label space as ``q_pids``.
        q_camids: (Q,) query camera ids; required for junk="market" and "sysu".
        g_camids: (G,) gallery camera ids; required for junk="market" and "sysu".
        junk: "market" | "sysu" | "msvr310" | "none" (see the module docstring).
        dedup_cmc: count distinct identities in the CMC (SYSU-MM01 / LLCM reporting).
        max_rank: length of the returned CMC curve.
        ties: "stable" (by gallery index) | "pessimistic" | "optimistic".
        q_scenes: (Q,) query scene ids; required for junk="msvr310".
        g_scenes: (G,) gallery scene ids; required for junk="msvr310".
        chunk_size: queries per chunk (default: about 512k distances, at most 512 rows); bounds the extra memory.

    Returns:
        RankResult.

    Raises:
        ValueError: wrong shapes or lengths, NaN distances, an empty gallery, an unknown option, missing camera
            or scene ids, or no query with a valid true match.
    """
    if junk not in JUNK_RULES:
        raise ValueError(f"junk must be one of {JUNK_RULES}, got {junk!r}")
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    dist = _to_numpy("distmat", distmat, 2)
    num_q, num_g = dist.shape
    if num_q == 0:
        raise ValueError("distmat has no query rows (shape (0, G)); pass at least one query")
    if num_g == 0:
        raise ValueError(
            "distmat has no gallery columns (shape (Q, 0)): the gallery is empty; check the gallery split"
        )
    if not np.issubdtype(dist.dtype, np.floating):
        dist = dist.astype(np.float64)
    q_pids = _check_labels("q_pids", q_pids, num_q, "query identity")
    g_pids = _check_labels("g_pids", g_pids, num_g, "gallery identity")
    q_cams = g_cams = q_sc = g_sc = None
    if junk in ("market", "sysu"):
        q_cams = _check_labels("q_camids", q_camids, num_q, "query camera id")
        g_cams = _check_labels("g_camids", g_camids, num_g, "gallery camera id")
    if junk == "msvr310":
        q_sc = _check_labels("q_scenes", q_scenes, num_q, "query scene id")
        g_sc = _check_labels("g_scenes", g_scenes, num_g, "gallery scene id")
    if chunk_size is None:
        chunk_size = max(1, min(num_q, _MAX_CHUNK_ROWS, _CHUNK_ELEMENTS // num_g))
    elif chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of queries, got {chunk_size}")

    # common integer codes for pids (works for strings too)
    _, codes = np.unique(np.concatenate([g_pids, q_pids]), return_inverse=True)
    g_code, q_code = codes[:num_g], codes[num_g:]
    counts = np.bincount(g_code, minlength=int(codes.max()) + 1)
    gal = _Gallery(
        code=g_code,
        order=np.argsort(g_code, kind="stable"),
        starts=np.cumsum(counts) - counts,
        counts=counts,
        cams=g_cams,
        scenes=g_sc,
    )

    num_matches = np.zeros(num_q, dtype=np.int64)
    first_rank = np.zeros(num_q, dtype=np.int64)
    cmc_rank = np.zeros(num_q, dtype=np.int64)
    ap = np.full(num_q, np.nan)
    inp = np.full(num_q, np.nan)
    work = _Workspace()
    for s in range(0, num_q, chunk_size):
        dc = dist[s : s + chunk_size]
        r = dc.shape[0]
        if np.isnan(dc.min()):  # one reduction per chunk; NaN propagates through min
            n_nan = int(np.isnan(dist).sum())
            raise ValueError(
                f"distmat contains {n_nan} NaN distances; check the features for NaN (e.g. a zero-norm or diverged model)"
            )

        def is_junk(rows, cols, s=s):
            return _junk_mask(junk, rows + s, cols, q_code, gal, q_cams, q_sc)

        def is_match(rows, cols, s=s):
            return gal.code[cols] == q_code[rows + s]

        same_rows, same_cols = _same_pid_pairs(q_code[s : s + r], gal)
        jr, jc = _junk_pairs(junk, s, r, same_rows, same_cols, q_code, gal, q_cams, q_sc)
        kept = ~is_junk(same_rows, same_cols)
        pr, pc = same_rows[kept], same_cols[kept]
        if len(pr) == 0:
            continue
        ranks = _match_ranks(dc, pr, pc, jr, jc, is_junk, is_match, ties, work)
        # per-row statistics over the true matches, sorted by rank within each row
        order = np.lexsort((ranks, pr))
        pr, pc, ranks = pr[order], pc[order], ranks[order]
        n = np.bincount(pr, minlength=r)
        valid = np.flatnonzero(n)
        seg_start = np.cumsum(n) - n
        j = np.arange(len(pr)) - seg_start[pr] + 1  # 1-based index of the match within its row
        ap_sum = np.bincount(pr, weights=j / ranks, minlength=r)
        last = ranks[seg_start[valid] + n[valid] - 1]
        first = ranks[seg_start[valid]]
        rows_g = valid + s
        num_matches[s : s + r] = n
        first_rank[rows_g] = first
        ap[rows_g] = ap_sum[valid] / n[valid]
        inp[rows_g] = n[valid] / last
        if dedup_cmc:
            cmc_rank[rows_g] = _dedup_ranks(dc, pc[seg_start[valid]], valid, jr, jc, gal, ties)
        else:
            cmc_rank[rows_g] = first

    valid_mask = num_matches > 0
    num_valid = int(valid_mask.sum())
    if num_valid == 0:
        raise ValueError(
            f"no query has a true match in the gallery after junk removal (junk={junk!r}); check that q_pids and "
            "g_pids share one label space and that the gallery holds the query identities, or use junk='none'"
        )
    hits = np.bincount(np.minimum(cmc_rank[valid_mask], max_rank + 1), minlength=max_rank + 2)[
        1 : max_rank + 1
    ]
    cmc = np.cumsum(hits) / num_valid

    per_query = pd.DataFrame(
        {
            "query": np.arange(num_q),
            "pid": q_pids,
            "valid": valid_mask,
            "num_matches": num_matches,
            "first_match_rank": pd.array(np.where(valid_mask, first_rank, 0), dtype="Int64"),
            "cmc_rank": pd.array(np.where(valid_mask, cmc_rank, 0), dtype="Int64"),
            "AP": ap,
            "INP": inp,
        }
    )
    per_query.loc[~valid_mask, ["first_match_rank", "cmc_rank"]] = pd.NA
    if q_camids is not None:
        per_query.insert(2, "camid", _to_numpy("q_camids", q_camids, 1))
    return RankResult(
        cmc=cmc,
        mAP=float(np.mean(ap[valid_mask])),
        mINP=float(np.mean(inp[valid_mask])),
        num_valid=num_valid,
        num_skipped=num_q - num_valid,
        per_query=per_query,
        junk=junk,
        dedup_cmc=dedup_cmc,
        ties=ties,
    )


# ----------------------------------------------------------------------------------------------------------------
# One query's ranked list: the package's one ranker and one ranked-list type


def rank_order(dist: np.ndarray, is_match: np.ndarray, ties: str = "stable") -> np.ndarray:
    """Gallery indices from closest to farthest under a tie policy, as `rank_metrics` ranks them.

    Args:
        dist: (G,) distances of one query. is_match: (G,) bool, true matches (used by the tie policy only).
        ties: "stable" (by gallery index) | "pessimistic" (true matches after tied false ones) | "optimistic".

    Returns:
        (G,) int array.
    """
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    index = np.arange(len(dist))
    if ties == "stable":
        return np.lexsort((index, dist))
    return np.lexsort((index, is_match if ties == "pessimistic" else ~is_match, dist))


@dataclass(frozen=True)
class RankedList:
    """One query's ranked gallery, junk included and marked (it is shown, not ranked).

    Attributes:
        query: query index.
        order: (G,) gallery indices, closest first (junk included).
        distances: (G,) distances in that order.
        pids: (G,) gallery identities in that order.
        is_match, is_junk: (G,) bool in that order.
        rank: (G,) 1-based rank among kept (non-junk) items, 0 for junk.
        num_matches: true matches kept; 0 means the query is skipped by the protocol.
        first_match_rank: rank of the first true match (kept list), None when there is none.
        cmc_rank: the rank CMC counts (identity-deduplicated when `dedup_cmc`), None when there is none.
        AP, INP: average precision and inverse negative penalty (NaN when there is no match).
        first_match, top_false: gallery index of the first true match / the closest kept false match, or None.
    """

    query: int
    order: np.ndarray
    distances: np.ndarray
    pids: np.ndarray
    is_match: np.ndarray
    is_junk: np.ndarray
    rank: np.ndarray
    num_matches: int
    first_match_rank: int | None
    cmc_rank: int | None
    AP: float
    INP: float
    first_match: int | None
    top_false: int | None

    def top(self, k: int) -> pd.DataFrame:
        """The first `k` items (junk counted as items, so junk is visible): position, gallery, pid, rank, distance,
        match, junk."""
        k = min(k, len(self.order))
        return pd.DataFrame({"position": np.arange(1, k + 1), "gallery": self.order[:k], "pid": self.pids[:k],
                             "rank": self.rank[:k], "distance": self.distances[:k], "match": self.is_match[:k],
                             "junk": self.is_junk[:k]})

    def kept(self, k: int) -> np.ndarray:
        """Positions (into `order`) of the first `k` ranked (non-junk) items."""
        return np.flatnonzero(~self.is_junk)[:k]


def ranked_list(dist: np.ndarray, q_pid, g_pids: np.ndarray, q_camid=None, g_camids: np.ndarray | None = None, *,
                junk: str = "market", ties: str = "stable", dedup_cmc: bool = False, q_scene=None,
                g_scenes: np.ndarray | None = None, query: int = 0) -> RankedList:
    """The ranked list of one query from its (G,) distances, with the metrics `rank_metrics` reports for it
    (the same junk rule, tie policy and definitions; the tests check they agree query by query).

    Args:
        dist: (G,) distances, smaller = more similar.
        q_pid, q_camid, q_scene: the query's identity, camera and scene.
        g_pids, g_camids, g_scenes: (G,) the gallery's.
        junk, ties, dedup_cmc: as `rank_metrics`.
        query: the query's index, kept in the result.
    """
    dist = to_numpy(dist, name="dist")
    g_pids = np.asarray(g_pids)
    if dist.ndim != 1 or len(dist) != len(g_pids):
        raise ValueError(f"dist must be (G,) = ({len(g_pids)},), got shape {dist.shape}")
    g_camids = np.zeros(len(g_pids), dtype=int) if g_camids is None else np.asarray(g_camids)
    junk_g = junk_mask(junk, q_pid, q_camid, g_pids, g_camids, q_scene, g_scenes)
    match_g = (g_pids == q_pid) & ~junk_g
    order = rank_order(dist, match_g, ties)
    is_match, is_junk = match_g[order], junk_g[order]
    rank = np.where(is_junk, 0, np.cumsum(~is_junk))
    match_ranks = rank[is_match]
    n = len(match_ranks)
    false_pos = np.flatnonzero(~is_match & ~is_junk)
    top_false = int(order[false_pos[0]]) if len(false_pos) else None
    if n == 0:
        return RankedList(query, order, dist[order], g_pids[order], is_match, is_junk, rank, 0, None, None,
                          float("nan"), float("nan"), None, top_false)
    first = int(match_ranks[0])
    cmc_rank = first
    if dedup_cmc:  # distinct identities among kept items before the first match, plus one
        before = order[: np.flatnonzero(is_match)[0]]
        cmc_rank = len(np.unique(g_pids[before][~junk_g[before]])) + 1
    ap = float(np.mean(np.arange(1, n + 1) / match_ranks))
    inp = float(n / match_ranks[-1])
    return RankedList(query, order, dist[order], g_pids[order], is_match, is_junk, rank, n, first, cmc_rank, ap,
                      inp, int(order[np.flatnonzero(is_match)[0]]), top_false)
