"""PK identity samplers: P identities per batch, K instances of each.

Two conventions, one per task family:

* `VIIdentitySampler`: visible-infrared batches as in AGW and every descendant, DAKD included (METHODS.md 1.2)
  [CODE: Fouroy4/DAKD, utils.py::IdentitySampler; mangye16/Cross-Modal-Re-ID-baseline, utils.py::IdentitySampler].
  Each batch holds P identities x (K visible + K infrared) images, yielded as P*K `(rgb_index, ir_index)` pairs whose
  two halves share the label, so the visible and infrared halves of a batch are aligned by position.
* `TripletIdentitySampler`: aligned RGB/NIR/TIR triplets, P identities x K triplets, the epoch construction of the
  TransReID lineage [CODE: damo-cv/TransReID and 924973292/TOP-ReID, data/datasets/sampler.py::RandomIdentitySampler].

Both are *batch* samplers (pass them as `DataLoader(dataset, batch_sampler=sampler)`), and both share the machinery
the public code lacks:

* the epoch plan (the list of batches) is a pure function of `(seed, epoch)`, drawn with a NumPy generator seeded by
  `SeedSequence([seed, epoch])`; nothing depends on global random state;
* distributed training: every rank computes the same plan, pads it by wrapping around to a multiple of
  `num_replicas`, and takes batches `rank, rank + R, rank + 2R, ...` (batch b goes to rank b % R);
* resumption: `state_dict()` records `(epoch, consumed)`, the number of batches this rank has already yielded in the
  epoch; `load_state_dict()` restores it, and the next iteration continues with exactly the batches an uninterrupted
  run would have seen.

Epoch bookkeeping: iterating to the end of an epoch advances the sampler to the next epoch (so forgetting `set_epoch`
does not repeat the same plan), and `set_epoch(e)` with the current epoch keeps the resume position, so the usual
`for e in range(start, E): sampler.set_epoch(e); for batch in loader: ...` loop is correct after a resume.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

IndexBatch = list[int]
PairBatch = list[tuple[int, int]]


def _as_labels(labels: Any, name: str) -> np.ndarray:
    """Convert labels (list, array or CPU tensor) to a 1-D int64 array, checking they are training labels."""
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of integer labels, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}; pass Sample.label values")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        bad = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(
            f"{name}[{bad}] = {int(arr[bad])}: labels must be >= 0 (label -1 marks samples outside the training "
            "split); pass only training samples"
        )
    return arr


def _positions(labels: np.ndarray) -> dict[int, np.ndarray]:
    """Label -> sorted indices holding that label."""
    order = np.argsort(labels, kind="stable")
    uniq, starts = np.unique(labels[order], return_index=True)
    return {int(u): order[s:e] for u, s, e in zip(uniq, starts, list(starts[1:]) + [len(order)])}


def _check_positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _EpochPlanSampler(Sampler):
    """Shared epoch, distributed-share and resume logic; subclasses implement `plan(epoch)`."""

    def __init__(
        self, p: int, k: int, *, seed: int, num_replicas: int, rank: int, num_batches: int | None
    ) -> None:
        self.p = _check_positive(p, "p")
        self.k = _check_positive(k, "k")
        self.num_replicas = _check_positive(num_replicas, "num_replicas")
        if (
            isinstance(rank, bool)
            or not isinstance(rank, (int, np.integer))
            or not 0 <= rank < self.num_replicas
        ):
            raise ValueError(
                f"rank must be an integer in [0, num_replicas={self.num_replicas}), got {rank!r}"
            )
        self.rank = int(rank)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.num_batches = None if num_batches is None else _check_positive(num_batches, "num_batches")
        self.epoch = 0
        self.consumed = 0  # batches of `self.epoch` this rank has already yielded
        self._cache: tuple[int, list] | None = None  # (epoch, plan) of the last plan computed

    # --- to implement -------------------------------------------------------------------------------------------
    def plan(self, epoch: int) -> list:
        """The whole epoch's batches (all ranks), a pure function of (seed, epoch)."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------------------------
    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch)]))

    def rank_plan(self, epoch: int) -> list:
        """This rank's share of `plan(epoch)`: batches rank, rank+R, ... of the plan padded to a multiple of R."""
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.plan(epoch))
        full = self._cache[1]
        n_per_rank = -(-len(full) // self.num_replicas)
        padded = [full[i % len(full)] for i in range(n_per_rank * self.num_replicas)]
        return padded[self.rank :: self.num_replicas]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan the next iteration yields; keeps the resume position if `epoch` is current."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        if int(epoch) != self.epoch:
            self.epoch, self.consumed = int(epoch), 0

    def __len__(self) -> int:
        """Batches this rank yields in a full epoch of `self.epoch` (a resumed epoch yields `len(self) - consumed`)."""
        return len(self.rank_plan(self.epoch))

    def __iter__(self) -> Iterator:
        share = self.rank_plan(self.epoch)
        while self.consumed < len(share):
            batch = share[self.consumed]
            self.consumed += 1  # counted before yielding: a state_dict taken after receiving b batches says b
            yield batch
        self.epoch, self.consumed = self.epoch + 1, 0

    def state_dict(self, consumed: int | None = None) -> dict[str, int]:
        """Resume state: the epoch and the batches of it this rank has consumed.

        Args:
            consumed: override the count of consumed batches. A DataLoader with workers draws batches from the
                sampler ahead of the training loop (prefetching), so a trainer that checkpoints mid-epoch should pass
                the number of batches it actually trained on.
        """
        return {
            "epoch": self.epoch,
            "consumed": self.consumed if consumed is None else int(consumed),
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "p": self.p,
            "k": self.k,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore `state_dict()` output; refuses a state from a sampler with another seed, P, K or world size."""
        missing = {"epoch", "consumed"} - set(state)
        if missing:
            raise ValueError(
                f"sampler state is missing keys {sorted(missing)}; pass the dict state_dict() returned"
            )
        for key in ("seed", "num_replicas", "p", "k"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"sampler state has {key}={state[key]} but this sampler has {key}={getattr(self, key)}; "
                    "build the sampler with the same arguments as the run being resumed"
                )
        epoch, consumed = int(state["epoch"]), int(state["consumed"])
        n = len(self.rank_plan(epoch))
        if not 0 <= consumed <= n:
            raise ValueError(
                f"sampler state consumed={consumed} is outside [0, {n}], the batches of epoch {epoch}"
            )
        self.epoch, self.consumed = epoch, consumed


class VIIdentitySampler(_EpochPlanSampler):
    """AGW/DAKD PK sampler for visible-infrared training: batches of P*K aligned `(rgb_index, ir_index)` pairs.

    Per epoch [CODE: Fouroy4/DAKD, utils.py::IdentitySampler]: `N = max(#rgb, #ir)`, `floor(N / (P*K)) + 1` batches
    (unless `num_batches` is given); each batch draws P distinct identities without replacement, then, for each
    identity, K visible and K infrared indices with replacement. Batches are identity-major: pairs
    `[id_0 x K, id_1 x K, ...]`. Unlike the public code, only identities with images in both modalities are drawn
    (the public code indexes by label and crashes or mislabels otherwise); they are listed in `skipped_ids`.

    Args:
        rgb_labels: (N_rgb,) training label of each visible sample (`Sample.label`).
        ir_labels: (N_ir,) training label of each infrared sample.
        p: identities per batch.
        k: visible (and infrared) images per identity.
        seed: the plan of epoch e is a pure function of (seed, e).
        num_replicas: number of distributed ranks sharing the plan.
        rank: this process's rank.
        num_batches: batches per epoch (whole plan, all ranks); default `floor(N / (P*K)) + 1`.
    """

    def __init__(
        self,
        rgb_labels: Sequence[int] | np.ndarray,
        ir_labels: Sequence[int] | np.ndarray,
        p: int,
        k: int,
        *,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        num_batches: int | None = None,
    ) -> None:
        super().__init__(p, k, seed=seed, num_replicas=num_replicas, rank=rank, num_batches=num_batches)
        rgb = _as_labels(rgb_labels, "rgb_labels")
        ir = _as_labels(ir_labels, "ir_labels")
        self.rgb_pos, self.ir_pos = _positions(rgb), _positions(ir)
        both = sorted(set(self.rgb_pos) & set(self.ir_pos))
        self.ids = np.array(both, dtype=np.int64)
        self.skipped_ids = sorted(set(self.rgb_pos) ^ set(self.ir_pos))
        if len(both) < self.p:
            only_rgb = sorted(set(self.rgb_pos) - set(self.ir_pos))
            only_ir = sorted(set(self.ir_pos) - set(self.rgb_pos))
            raise ValueError(
                f"p={self.p} identities per batch, but only {len(both)} identities have both visible and infrared "
                f"images (labels with visible images only: {only_rgb}; infrared only: {only_ir}); lower p or add "
                "the missing modality's images"
            )
        self.n_images = max(len(rgb), len(ir))

    def plan(self, epoch: int) -> list[PairBatch]:
        rng = self._rng(epoch)
        batches: list[PairBatch] = []
        for _ in range(self.num_batches or self.n_images // (self.p * self.k) + 1):
            batch: PairBatch = []
            for pid in rng.choice(self.ids, self.p, replace=False):
                rgb_idx = rng.choice(self.rgb_pos[int(pid)], self.k, replace=True)
                ir_idx = rng.choice(self.ir_pos[int(pid)], self.k, replace=True)
                batch.extend(zip(rgb_idx.tolist(), ir_idx.tolist()))
            batches.append(batch)
        return batches


class TripletIdentitySampler(_EpochPlanSampler):
    """PK sampler for aligned RGB/NIR/TIR triplets: batches of P*K triplet indices.

    One epoch is the TransReID-lineage construction [CODE: damo-cv/TransReID, 924973292/TOP-ReID,
    data/datasets/sampler.py::RandomIdentitySampler]: each identity's indices are shuffled (an identity with fewer
    than K triplets is first resampled with replacement to K) and cut into chunks of K (a remainder shorter than K is
    dropped); batches then draw P distinct identities among those with chunks left and take one chunk of each, until
    fewer than P identities have chunks left. How many batches one pass yields depends on the draw, so `len(sampler)`
    can change slightly from epoch to epoch (it reports the current epoch's). With `num_batches`, further passes of
    the same construction (same epoch generator) are appended and the result is cut to `num_batches`.

    Args:
        labels: (N,) training label of each triplet (`Sample.label`).
        p: identities per batch.
        k: triplets per identity.
        seed: the plan of epoch e is a pure function of (seed, e).
        num_replicas: number of distributed ranks sharing the plan.
        rank: this process's rank.
        num_batches: batches per epoch (whole plan, all ranks); default: one pass as described above.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        p: int,
        k: int,
        *,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        num_batches: int | None = None,
    ) -> None:
        super().__init__(p, k, seed=seed, num_replicas=num_replicas, rank=rank, num_batches=num_batches)
        self.pos = _positions(_as_labels(labels, "labels"))
        self.ids = sorted(self.pos)
        if len(self.ids) < self.p:
            raise ValueError(
                f"p={self.p} identities per batch, but the labels hold only {len(self.ids)} identities "
                f"({self.ids}); lower p"
            )

    def _one_pass_plan(self, rng: np.random.Generator) -> list[IndexBatch]:
        chunks: dict[int, list[list[int]]] = {}
        for pid in self.ids:
            idx = self.pos[pid]
            if len(idx) < self.k:
                idx = rng.choice(idx, self.k, replace=True)
            idx = rng.permutation(idx).tolist()
            chunks[pid] = [idx[i : i + self.k] for i in range(0, len(idx) - self.k + 1, self.k)]
        available = [pid for pid in self.ids if chunks[pid]]
        batches: list[IndexBatch] = []
        while len(available) >= self.p:
            chosen = rng.choice(len(available), self.p, replace=False)
            batch: IndexBatch = []
            for pid in [available[i] for i in chosen]:
                batch.extend(chunks[pid].pop(0))
            batches.append(batch)
            available = [pid for pid in available if chunks[pid]]
        return batches

    def plan(self, epoch: int) -> list[IndexBatch]:
        rng = self._rng(epoch)
        batches = self._one_pass_plan(rng)
        if self.num_batches is None:
            return batches
        while len(batches) < self.num_batches:
            batches += self._one_pass_plan(rng)
        return batches[: self.num_batches]
