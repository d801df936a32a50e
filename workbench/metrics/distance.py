"""Pairwise distances between query and gallery features, chunked so memory stays bounded.

Conventions follow PROTOCOLS.md section 5.2: torchreid defaults to Euclidean, fast-reid to cosine, and the
ReID-Survey / TransReID / TOP-ReID wrappers to L2-normalise then squared Euclidean (which ranks the same as cosine).
All three are offered here; the ranking functions consume the resulting (Q, G) matrix.

* ``cosine``: ``1 - <q, g> / (|q| |g|)``, in [0, 2]. Rows with zero norm are treated as zero similarity.
* ``euclidean``: ``|q - g|``.
* ``sqeuclidean``: ``|q|^2 + |g|^2 - 2 <q, g>``, clamped at 0 against round-off
  (the ``addmm`` form of [CODE: 924973292/TOP-ReID, utils/metrics.py::euclidean_distance], which does not take the root).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

METRICS = ("cosine", "euclidean", "sqeuclidean")
_EPS = 1e-12

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def l2_normalize(feats: Array, eps: float = _EPS) -> Array:
    """Scale each row to unit L2 norm (rows of zeros stay zero).

    Args:
        feats: (N, D) numpy array or torch tensor.
        eps: lower bound on the norm, to avoid dividing by zero.

    Returns:
        (N, D) of the same kind, dtype and device.
    """
    if isinstance(feats, torch.Tensor):
        return torch.nn.functional.normalize(feats, p=2, dim=1, eps=eps)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.maximum(norms, eps).astype(feats.dtype, copy=False)


def _check_feats(name: str, feats: object) -> None:
    if not isinstance(feats, (np.ndarray, torch.Tensor)):
        raise ValueError(
            f"{name} must be a numpy array or torch tensor of shape (N, D), got {type(feats).__name__}"
        )
    if feats.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (N, D), got shape {tuple(feats.shape)}; reshape with feats.reshape(len(feats), -1)"
        )


def _as_float(feats: np.ndarray) -> np.ndarray:
    return feats if feats.dtype in (np.float32, np.float64) else feats.astype(np.float32)


def pairwise_distance(
    query_feats: Array,
    gallery_feats: Array,
    metric: str = "cosine",
    chunk_size: int = 1024,
    *,
    assume_normalized: bool = False,
) -> Array:
    """Distances between every query and every gallery feature, computed in query chunks.

    Args:
        query_feats: (Q, D) numpy array or torch tensor.
        gallery_feats: (G, D), the same kind as ``query_feats`` (torch tensors may live on any device).
        metric: "cosine" (1 - cosine similarity), "euclidean" or "sqeuclidean".
        chunk_size: number of query rows per matrix product; bounds the temporary memory to about
            ``chunk_size x G`` values besides the (Q, G) output.
        assume_normalized: cosine only: the rows are already unit-norm, skip normalising them again
            (the protocol runner normalises once per feature set).

    Returns:
        distmat (Q, G), numpy if the inputs are numpy (float32 unless an input is float64), a torch tensor
        on the inputs' device otherwise. Smaller is more similar.

    Raises:
        ValueError: on a wrong shape, mismatched feature dimensions, mixed numpy/torch inputs,
            non-finite features, an unknown metric or a non-positive chunk size.
    """
    _check_feats("query_feats", query_feats)
    _check_feats("gallery_feats", gallery_feats)
    if type(query_feats) is not type(gallery_feats) and not (
        isinstance(query_feats, torch.Tensor) and isinstance(gallery_feats, torch.Tensor)
    ):
        raise ValueError(
            "query_feats and gallery_feats must both be numpy arrays or both torch tensors, got "
            f"{type(query_feats).__name__} and {type(gallery_feats).__name__}"
        )
    if query_feats.shape[1] != gallery_feats.shape[1]:
        raise ValueError(
            f"query_feats has D={query_feats.shape[1]} but gallery_feats has D={gallery_feats.shape[1]}; "
            "both must come from the same embedding (same branches, same order)"
        )
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of query rows, got {chunk_size}")
    if isinstance(query_feats, torch.Tensor):
        return _pairwise_torch(query_feats, gallery_feats, metric, chunk_size, assume_normalized)
    return _pairwise_numpy(
        _as_float(query_feats), _as_float(gallery_feats), metric, chunk_size, assume_normalized
    )


def _pairwise_numpy(
    q: np.ndarray, g: np.ndarray, metric: str, chunk_size: int, normalized: bool
) -> np.ndarray:
    for name, x in (("query_feats", q), ("gallery_feats", g)):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf values; check the feature extractor output")
    dtype = np.result_type(q.dtype, g.dtype)
    q, g = q.astype(dtype, copy=False), g.astype(dtype, copy=False)
    if metric == "cosine" and not normalized:
        q, g = l2_normalize(q), l2_normalize(g)
    g_sq = np.einsum("ij,ij->i", g, g)  # (G,)
    out = np.empty((q.shape[0], g.shape[0]), dtype=dtype)
    for s in range(0, q.shape[0], chunk_size):
        qc, oc = q[s : s + chunk_size], out[s : s + chunk_size]  # oc: (c, G) view, filled in place
        np.matmul(qc, g.T, out=oc)
        if metric == "cosine":
            np.subtract(1.0, oc, out=oc)
            continue
        oc *= -2.0
        oc += np.einsum("ij,ij->i", qc, qc)[:, None]
        oc += g_sq[None, :]
        np.maximum(oc, 0.0, out=oc)
        if metric == "euclidean":
            np.sqrt(oc, out=oc)
    return out


def _pairwise_torch(
    q: torch.Tensor, g: torch.Tensor, metric: str, chunk_size: int, normalized: bool
) -> torch.Tensor:
    if q.device != g.device:
        raise ValueError(
            f"query_feats is on {q.device} but gallery_feats is on {g.device}; move both to one device"
        )
    for name, x in (("query_feats", q), ("gallery_feats", g)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf values; check the feature extractor output")
    dtype = torch.promote_types(q.dtype, g.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    q, g = q.to(dtype), g.to(dtype)
    if metric == "cosine" and not normalized:
        q, g = l2_normalize(q), l2_normalize(g)
    g_sq = (g * g).sum(1)  # (G,)
    out = torch.empty((q.shape[0], g.shape[0]), dtype=dtype, device=q.device)
    for s in range(0, q.shape[0], chunk_size):
        qc = q[s : s + chunk_size]
        sim = qc @ g.T  # (c, G)
        if metric == "cosine":
            out[s : s + chunk_size] = 1.0 - sim
            continue
        sq = ((qc * qc).sum(1)[:, None] + g_sq[None, :] - 2.0 * sim).clamp_min_(0.0)
        out[s : s + chunk_size] = sq.sqrt() if metric == "euclidean" else sq
    return out
