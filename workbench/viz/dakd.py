"""DAKD instruments: which samples the confidence mask keeps, in the paper's reading and in the public code's.

    dakd.plot_confidence_mask(teacher_logits)   # bars of the teacher's confidence, coloured by the code's mask

The confidence of a sample is the teacher's max softmax (`workbench.losses.kd.confidence_mask` splits at the batch
median: "le" keeps the less confident half, as `Fouroy4/DAKD` ships it; "gt" the more confident half, as the
abstract reads).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torch import Tensor


def plot_confidence_mask(teacher_logits: Tensor, *, ax=None):
    """The batch's samples sorted by the teacher's confidence (max softmax of `teacher_logits` (B, C)), blue when
    the code's mask ("le") keeps them, orange when the paper's reading ("gt") does, with the median; the y-axis is
    zoomed to the (often tiny) spread. Returns the Axes."""
    from workbench.losses import kd

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.6))
    confidence = torch.softmax(teacher_logits, dim=1).max(dim=1).values
    keep_le = kd.confidence_mask(teacher_logits, "le")
    order = confidence.argsort()
    ax.bar(range(len(order)), confidence[order].tolist(),
           color=["tab:blue" if keep_le[i] else "tab:orange" for i in order])
    ax.axhline(float(confidence.median()), color="k", lw=1, ls="--", label="median")
    ax.set_ylim(float(confidence.min()) * 0.995, float(confidence.max()) * 1.005)  # zoom: the differences are tiny
    ax.set(xlabel="samples of the batch, by teacher confidence", ylabel="max softmax",
           title="blue: kept by the code (le); orange: kept by the paper's reading (gt)")
    ax.legend()
    return ax
