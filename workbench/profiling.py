"""Throughput measurement that is fair between two models: the same input, alternating timed calls."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch


@torch.no_grad()
def compare_throughput(fns: Mapping[str, Callable[[], object]], images_per_call: Mapping[str, int] | int, *,
                       iters: int = 10, warmup: int = 2) -> dict[str, float]:
    """Images per second of each zero-argument callable, timed alternately so background load hits all equally.

    Args:
        fns: name -> callable running one batch (e.g. `lambda: model(x, modality)`).
        images_per_call: images in one call, per name or one number for all.
        iters: timed calls per function; the median is used.
    Returns:
        name -> images per second (median over `iters` calls).
    """
    if not fns:
        raise ValueError("fns is empty")
    counts = {k: images_per_call if isinstance(images_per_call, int) else images_per_call[k] for k in fns}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(iters):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {k: counts[k] / sorted(v)[len(v) // 2] for k, v in times.items()}
