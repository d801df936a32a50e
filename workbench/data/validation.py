"""Held-out training identities for honest model selection.

The public VI-ReID and multi-modal code bases pick the "best epoch" on the test set (mangye16/
Cross-Modal-Re-ID-baseline `train.py`, Fouroy4/DAKD `train.py`, the TOP-ReID family's `processor.py`;
PROTOCOLS.md, "compatibility traps"). `holdout_identities` carves a validation set out of the training identities
instead, mirroring the test protocol of the data:

* visible-infrared samples: query = all IR images of the held-out identities, gallery = one RGB image per
  (identity, camera) drawn with `seed` by the SYSU/LLCM draw (`draw_gallery`), i.e. an IR->RGB single-shot
  round;
* aligned triplets: query = gallery = all held-out triplets; the evaluator's Market-style rule (same identity and
  same camera removed) takes out the self-match, as in the RGBNT201 protocol.

The held-out identities are `random.Random(seed).sample(sorted ids, n)`; the remaining training samples are
relabelled 0..n-1 by sorted identity. The protocol of this split is our design (INFERRED), not a published one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from workbench.data.base import draw_gallery, relabel, unlabel
from workbench.data.samples import TRIPLET, Sample


def holdout_identities(
    train: Sequence[Sample], num_ids: int | None = None, *, fraction: float | None = None, seed: int = 0
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Split training identities into a smaller training set and a validation query/gallery.

    Args:
        train: training samples (VI images with modality "rgb"/"ir", or triplets).
        num_ids: number of identities to hold out; or give `fraction` instead.
        fraction: fraction of the identities to hold out (rounded, at least 1).
        seed: seed of the identity choice and of the gallery draw.

    Returns:
        (train_subset relabelled 0..n-1 in the original order, val_query, val_gallery), validation samples with
        `label = -1`.
    """
    if (num_ids is None) == (fraction is None):
        raise ValueError("pass exactly one of num_ids= (a count) or fraction= (between 0 and 1)")
    pids = sorted({s.pid for s in train})
    if fraction is not None:
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction}")
        num_ids = max(1, round(fraction * len(pids)))
    assert num_ids is not None
    if not 1 <= num_ids < len(pids):
        raise ValueError(
            f"num_ids must be between 1 and {len(pids) - 1} (the training set has {len(pids)} identities), got {num_ids}"
        )
    held = set(random.Random(seed).sample(pids, num_ids))
    kept = relabel(s for s in train if s.pid not in held)
    val = unlabel(s for s in train if s.pid in held)
    modalities = {s.modality for s in val}
    if modalities == {TRIPLET}:
        return kept, val, val
    if not modalities <= {"rgb", "ir"}:
        raise ValueError(
            f"holdout_identities expects VI samples (modality 'rgb'/'ir') or triplets, got modalities {sorted(modalities)}"
        )
    query = [s for s in val if s.modality == "ir"]
    groups: dict[tuple[int, int], list[Sample]] = {}
    for s in val:
        if s.modality == "rgb":
            groups.setdefault((s.pid, s.camid), []).append(s)
    ordered = [sorted(groups[k], key=lambda s: s.paths["rgb"]) for k in sorted(groups)]
    gallery = draw_gallery(ordered, seed, shot=1)
    return kept, query, gallery
