"""The MCE teacher's class memories and losses (DAKD phase A; METHODS.md 2.4).

DAKD distils from a teacher trained with the memory-contrastive recipe of MCE (Cheng et al., AAAI 2023)
[CODE: IDLNL/MCE, model.py, memory.py, GlobalCenterLoss.py, train.py]. Per batch the network sees the visible
images, the infrared images and a channel-exchanged copy of the visible ones ("CA"), all with the same labels.
With `f_hat` the L2-normalised BN feature and tau = 0.05:

    memories    M_v, M_r, M_ca : normalised class means of eval-mode features, re-built at every epoch start;
                M_g = (M_v + M_r + M_ca) / 3 (not re-normalised); each keeps `.centers`, a frozen copy
    L_mem(M)    = CE(f_hat M^T / tau, y)                        then M is updated with the batch (momentum rules)
    L_gc        = mean_i [ ||f_i - C_{y_i}|| - min_{j: y_j != y_i} ||f_i - C_{y_j}|| + 0.3 ]_+    (C = M_g.centers)
    L_KL        = KL_batchmean( softmax(sg[f_r C_v^T, f_v C_r^T, f_ca C_r^T] / tau)
                              || softmax([f_v C_v^T, f_r C_r^T, f_ca C_ca^T] / tau) )
    L_T         = 1 L_gc + 1 L_mem(M_g, all) + 1 (L_mem(M_v, f_v) + L_mem(M_r, f_r)) + 1 * 0.4 L_mem(M_ca, f_ca)
                  + 1.2 L_KL

Memory updates. MCE updates a memory inside the backward pass of its autograd function, with the normalised batch
features of the forward pass; nothing reads the memory between that forward and backward, so updating right after
computing the losses (`MCEMemories.update`) is equivalent. `memory_ce` reads a snapshot of the rows, so the update
can run before `backward()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.config import check_options, option

UPDATE_RULES = ("hard", "mean")


def _at_least_f32(x: Tensor) -> Tensor:
    """Half-precision tensors (autocast) in float32; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class ClassMemory:
    """One row per identity, rows L2-normalised, updated with momentum from each batch [CODE: IDLNL/MCE, memory.py].

    Attributes:
        features: (N_c, D) online rows (updated by `update`).
        centers: (N_c, D) frozen copy taken at construction (the epoch start).
        momentum: m in `M_c <- m M_c + (1 - m) x`.
        rule: "hard" (`CM_Hard`: x = the batch sample of class c with the *lowest* similarity to M_c; global memory,
            m = 0.1) or "mean" (`CM_Mean`: x = mean of the class's batch samples; modality memories, m = 0.25).
    """

    def __init__(self, features: Tensor, momentum: float, rule: str = "mean") -> None:
        if features.dim() != 2:
            raise ValueError(f"features must be 2-D (N_c, D), got shape {tuple(features.shape)}")
        if rule not in UPDATE_RULES:
            raise ValueError(f"rule must be one of {UPDATE_RULES} ('hard': global memory, 'mean': modality), "
                             f"got {rule!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.features = features.detach().float().clone()
        self.centers = self.features.clone()
        self.momentum = float(momentum)
        self.rule = rule

    @classmethod
    def from_features(cls, feats: Tensor, labels: Tensor, num_classes: int, momentum: float,
                      rule: str = "mean") -> ClassMemory:
        """Rows = normalised class means of `feats (N, D)` with `labels (N,)` [CODE: IDLNL/MCE, train.py::train].

        The public code sums the model's eval-mode output, which is already L2-normalised, per class; we normalise
        `feats` first so that raw features give the same rows.

        Raises:
            ValueError: a class in 0..num_classes-1 has no sample (its row would be 0/0).
        """
        if feats.dim() != 2 or labels.shape != (feats.shape[0],):
            raise ValueError(f"feats must be (N, D) and labels (N,), got {tuple(feats.shape)} and "
                             f"{tuple(labels.shape)}")
        labels = labels.long().to(feats.device)
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must lie in 0..{num_classes - 1}")
        unit = F.normalize(feats.detach().float(), dim=1)
        sums = unit.new_zeros(num_classes, unit.shape[1]).index_add_(0, labels, unit)
        counts = torch.bincount(labels, minlength=num_classes)
        missing = (counts == 0).nonzero(as_tuple=True)[0].tolist()
        if missing:
            raise ValueError(f"classes {missing[:10]} have no sample to initialise their memory row; every "
                             "training identity needs images of every modality")
        return cls(F.normalize(sums / counts.unsqueeze(1).float(), dim=1), momentum, rule)

    @property
    def num_classes(self) -> int:
        return self.features.shape[0]

    def to(self, device: torch.device | str) -> ClassMemory:
        self.features, self.centers = self.features.to(device), self.centers.to(device)
        return self

    @torch.no_grad()
    def update(self, f_hat: Tensor, labels: Tensor) -> None:
        """Momentum update of the rows of the classes present in the batch, then row re-normalisation.

        Args:
            f_hat: (B, D) L2-normalised features of the forward pass (detached here).
            labels: (B,) long.
        """
        f_hat = f_hat.detach().float()
        labels = labels.long()
        m = self.momentum
        for c in labels.unique().tolist():
            rows = f_hat[labels == c]  # (n_c, D)
            if self.rule == "hard":  # [CODE: IDLNL/MCE, memory.py::CM_Hard.backward]: np.argmin of similarities
                x = rows[torch.argmin(rows @ self.features[c])]
            else:  # [CODE: IDLNL/MCE, memory.py::CM_Mean.backward]
                x = rows.mean(dim=0)
            row = self.features[c] * m + (1.0 - m) * x
            self.features[c] = row / row.norm()


def memory_ce(memory: ClassMemory, f_hat: Tensor, labels: Tensor, tau: float = 0.05) -> Tensor:
    """Memory cross-entropy `CE(f_hat M^T / tau, y)` against the current rows [CODE: IDLNL/MCE, memory.py].

    Does not update the memory (call `memory.update`); the rows are read as a snapshot, so updating before
    `backward()` is safe.

    Args:
        memory: the class memory.
        f_hat: (B, D) L2-normalised features.
        labels: (B,) long.
        tau: temperature (MCE: 0.05).

    Returns:
        scalar.
    """
    if f_hat.dim() != 2 or f_hat.shape[1] != memory.features.shape[1]:
        raise ValueError(f"f_hat must be (B, {memory.features.shape[1]}), got {tuple(f_hat.shape)}")
    logits = f_hat.float() @ memory.features.clone().t() / tau  # (B, N_c)
    return F.cross_entropy(logits, labels.long())


def global_center_triplet(f_hat: Tensor, labels: Tensor, centers: Tensor, margin: float = 0.3) -> Tensor:
    """Triplet of each sample against identity centres [CODE: IDLNL/MCE, GlobalCenterLoss.py::GlobalCenterTriplet].

    `d(i, j) = ||f_i - C_{y_j}||`; positive `d(i, i)`, hardest negative `min_{j: y_j != y_i} d(i, j)` over the centres
    of the *batch's* other labels; `mean_i [d_ap - d_an + margin]_+` (MarginRankingLoss).

    Args:
        f_hat: (B, D) normalised features.
        labels: (B,) long.
        centers: (N_c, D) frozen global-memory centres.
        margin: 0.3 in MCE.

    Returns:
        scalar.
    """
    if f_hat.dim() != 2 or labels.shape != (f_hat.shape[0],):
        raise ValueError(f"f_hat must be (B, D) and labels (B,), got {tuple(f_hat.shape)} and {tuple(labels.shape)}")
    labels = labels.long()
    same = labels.unsqueeze(0) == labels.unsqueeze(1)  # (B, B)
    if same.all(dim=1).any():
        raise ValueError("global_center_triplet needs at least two identities in the batch (a sample has no "
                         "negative); use P >= 2 identities per batch")
    c = centers[labels].to(f_hat.dtype)  # (B, D): column j holds C_{y_j}
    dist = (f_hat.pow(2).sum(1, keepdim=True) + c.pow(2).sum(1).unsqueeze(0) - 2 * f_hat @ c.t())
    dist = dist.clamp(min=1e-12).sqrt()  # as the public code, for a finite gradient at 0
    d_ap = dist.diagonal()
    d_an = dist.masked_fill(same, float("inf")).min(dim=1).values
    return F.relu(d_ap - d_an + margin).mean()


def cross_modal_kl(f_v: Tensor, f_r: Tensor, C_v: Tensor, C_r: Tensor, f_ca: Tensor | None = None,
                   C_ca: Tensor | None = None, tau: float = 0.05) -> Tensor:
    """Unidirectional cross-modal KL of MCE [CODE: IDLNL/MCE, model.py::Model.train_forward].

    Student logits `[f_v C_v^T, f_r C_r^T, (f_ca C_ca^T)] / tau`; targets (no gradient)
    `[f_r C_v^T, f_v C_r^T, (f_ca C_r^T)] / tau`; row i of the visible block is paired with row i of the infrared
    block (same identity by the sampler). `KLDivLoss(batchmean)(log_softmax(student), softmax(target))`: sum over
    all entries divided by the number of rows (2B, or 3B with the CA view).

    Args:
        f_v, f_r: (B, D) normalised features of the visible and infrared images.
        C_v, C_r: (N_c, D) modality centres (frozen `.centers` in MCE, `gx=0`).
        f_ca, C_ca: (B, D) and (N_c, D) for the channel-exchanged view, or both None (MCE `channel=2`).
        tau: 0.05.

    Returns:
        scalar.
    """
    if f_v.shape != f_r.shape:
        raise ValueError(f"f_v and f_r must have the same shape (B, D), got {tuple(f_v.shape)} and {tuple(f_r.shape)}")
    if (f_ca is None) != (C_ca is None):
        raise ValueError("pass both f_ca and C_ca (channel-exchanged view) or neither")
    student = [f_v @ C_v.t(), f_r @ C_r.t()]
    with torch.no_grad():
        target = [f_r @ C_v.t(), f_v @ C_r.t()]
    if f_ca is not None:
        student.append(f_ca @ C_ca.t())
        with torch.no_grad():
            target.append(f_ca @ C_r.t())
    log_p = F.log_softmax(_at_least_f32(torch.cat(student)) / tau, dim=1)
    q = F.softmax(_at_least_f32(torch.cat(target)) / tau, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean")


@dataclass(frozen=True)
class MCELossConfig:
    """Weights and constants of the teacher recipe; defaults = [CODE: IDLNL/MCE, train.py] argparse defaults.

    The fields are `dakd_teacher`'s `cfg.method_options` (with `workbench.methods.dakd.DAKDTeacherOptions`).
    """

    gc_weight: float = option(1.0, low=0)            # --gc, global-centre triplet
    mem_weight: float = option(1.0, low=0)           # global memory CE (added with weight 1 when --mem != 0)
    sid_weight: float = option(1.0, low=0)           # --sid, visible + infrared memory CE
    caid_weight: float = option(0.4, low=0)          # --caid, CA memory CE (times sid_weight, as the code)
    kl_weight: float = option(1.2, low=0)            # --kl
    tau: float = option(0.05, low=1e-12, accepts="a number > 0")  # memory temperature
    margin: float = option(0.3, low=0)               # global-centre triplet margin
    global_momentum: float = option(0.1, low=0, high=1)     # global memory, "hard" rule
    modality_momentum: float = option(0.25, low=0, high=1)  # --mem_up, modality memories, "mean" rule
    hard_global: bool = True           # --nhard (store_false): hard update of the global memory
    kl_uses_online_memory: bool = False  # --gx: KL against the online `.features` instead of the frozen `.centers`

    def __post_init__(self) -> None:
        check_options(self)


@dataclass
class MCEMemories:
    """The four memories of one epoch: global, visible, infrared and (optional) channel-exchanged."""

    global_: ClassMemory
    rgb: ClassMemory
    ir: ClassMemory
    ca: ClassMemory | None = None

    @classmethod
    def from_features(cls, feats_v: Tensor, labels_v: Tensor, feats_r: Tensor, labels_r: Tensor, num_classes: int,
                      feats_ca: Tensor | None = None, labels_ca: Tensor | None = None,
                      cfg: MCELossConfig | None = None) -> MCEMemories:
        """Epoch-start memories from eval-mode features [CODE: IDLNL/MCE, train.py::train, memory block].

        `M_g = mean of the modality memories` (two or three), not re-normalised.
        """
        cfg = cfg or MCELossConfig()
        rgb = ClassMemory.from_features(feats_v, labels_v, num_classes, cfg.modality_momentum, "mean")
        ir = ClassMemory.from_features(feats_r, labels_r, num_classes, cfg.modality_momentum, "mean")
        ca = None
        if feats_ca is not None:
            if labels_ca is None:
                raise ValueError("feats_ca needs labels_ca")
            ca = ClassMemory.from_features(feats_ca, labels_ca, num_classes, cfg.modality_momentum, "mean")
        mods = [m for m in (rgb, ir, ca) if m is not None]
        glob = torch.stack([m.features for m in mods]).mean(0)
        return cls(ClassMemory(glob, cfg.global_momentum, "hard" if cfg.hard_global else "mean"), rgb, ir, ca)

    def update(self, f_v: Tensor, f_r: Tensor, f_ca: Tensor | None, labels: Tensor) -> None:
        """Momentum updates after a batch: the global memory with all views, each modality memory with its own."""
        views = [f_v, f_r] + ([f_ca] if f_ca is not None and self.ca is not None else [])
        self.global_.update(torch.cat(views), labels.repeat(len(views)))
        self.rgb.update(f_v, labels)
        self.ir.update(f_r, labels)
        if self.ca is not None and f_ca is not None:
            self.ca.update(f_ca, labels)


def mce_teacher_loss(f_v: Tensor, f_r: Tensor, f_ca: Tensor | None, labels: Tensor, memories: MCEMemories,
                     cfg: MCELossConfig | None = None) -> dict[str, Tensor]:
    """The MCE teacher's weighted loss terms of one batch (their sum is `L_T`); does not update the memories.

    Args:
        f_v, f_r: (B, D) BN features (train mode) of the visible and infrared images; normalised here.
        f_ca: (B, D) BN features of the channel-exchanged visible images, or None (MCE `channel=2`).
        labels: (B,) long, shared by the three views (row i of each view is the same identity).
        memories: this epoch's memories.
        cfg: weights.

    Returns:
        {"gc", "mem", "sid", "kl"} plus "caid" with the CA view.
    """
    cfg = cfg or MCELossConfig()
    if f_v.shape != f_r.shape or (f_ca is not None and f_ca.shape != f_v.shape):
        raise ValueError("f_v, f_r (and f_ca) must have the same shape (B, D)")
    if labels.shape != (f_v.shape[0],):
        raise ValueError(f"labels must be (B,) = ({f_v.shape[0]},), got {tuple(labels.shape)}")
    use_ca = f_ca is not None and memories.ca is not None
    h_v, h_r = F.normalize(f_v.float(), dim=1), F.normalize(f_r.float(), dim=1)
    h_ca = F.normalize(f_ca.float(), dim=1) if use_ca else None
    views = [h_v, h_r] + ([h_ca] if use_ca else [])
    h_all, y_all = torch.cat(views), labels.repeat(len(views))
    terms = {
        "gc": cfg.gc_weight * global_center_triplet(h_all, y_all, memories.global_.centers, cfg.margin),
        "mem": cfg.mem_weight * memory_ce(memories.global_, h_all, y_all, cfg.tau),
        "sid": cfg.sid_weight * (memory_ce(memories.rgb, h_v, labels, cfg.tau)
                                 + memory_ce(memories.ir, h_r, labels, cfg.tau)),
    }
    if use_ca:
        terms["caid"] = cfg.sid_weight * cfg.caid_weight * memory_ce(memories.ca, h_ca, labels, cfg.tau)
    pick = (lambda m: m.features.clone()) if cfg.kl_uses_online_memory else (lambda m: m.centers)
    terms["kl"] = cfg.kl_weight * cross_modal_kl(
        h_v, h_r, pick(memories.rgb), pick(memories.ir),
        h_ca if use_ca else None, pick(memories.ca) if use_ca else None, cfg.tau)
    return terms
