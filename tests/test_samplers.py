"""PK identity samplers: batch structure, determinism, distributed shares, resumption, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from workbench.data.samplers import TripletIdentitySampler, VIIdentitySampler


def _vi_labels(n_ids: int = 12, seed: int = 0) -> tuple[list[int], list[int]]:
    """Unbalanced visible / infrared label lists: identity i has 1..6 visible and 1..4 infrared images."""
    rng = np.random.default_rng(seed)
    rgb = [i for i in range(n_ids) for _ in range(rng.integers(1, 7))]
    ir = [i for i in range(n_ids) for _ in range(rng.integers(1, 5))]
    rng.shuffle(rgb)
    rng.shuffle(ir)
    return rgb, ir


# --- VIIdentitySampler ---------------------------------------------------------------------------------------------


def test_vi_batch_structure_and_count():
    rgb, ir = _vi_labels()
    p, k = 4, 3
    sampler = VIIdentitySampler(rgb, ir, p, k, seed=1)
    batches = list(sampler)
    # AGW / DAKD: floor(N / (P K)) + 1 batches, N = max(#rgb, #ir)
    assert len(batches) == max(len(rgb), len(ir)) // (p * k) + 1 == len(sampler)
    for batch in batches:
        assert len(batch) == p * k
        rgb_lab = [rgb[i] for i, _ in batch]
        ir_lab = [ir[j] for _, j in batch]
        assert rgb_lab == ir_lab  # aligned by position
        counts = Counter(rgb_lab)
        assert len(counts) == p and set(counts.values()) == {k}  # P distinct identities, K of each
        # identity-major layout: each identity's K pairs are contiguous
        assert all(len(set(rgb_lab[b * k : (b + 1) * k])) == 1 for b in range(p))


def test_vi_num_batches_and_identity_coverage():
    rgb, ir = _vi_labels()
    sampler = VIIdentitySampler(rgb, ir, 2, 2, seed=0, num_batches=200)
    batches = list(sampler)
    assert len(batches) == 200
    seen_ids = {rgb[i] for b in batches for i, _ in b}
    assert seen_ids == set(rgb)
    # K indices drawn with replacement from the identity's images: every image of an identity shows up eventually
    seen_rgb = {i for b in batches for i, _ in b}
    assert seen_rgb == set(range(len(rgb)))


def test_vi_only_identities_with_both_modalities():
    rgb = [0, 0, 1, 1, 2, 2, 3]
    ir = [0, 1, 1, 2, 4, 4]
    sampler = VIIdentitySampler(rgb, ir, 3, 2, seed=0, num_batches=50)
    drawn = {rgb[i] for b in sampler for i, _ in b}
    assert drawn == {0, 1, 2}
    assert sampler.skipped_ids == [3, 4]


def test_vi_too_few_shared_identities_names_missing():
    with pytest.raises(ValueError, match=r"visible images only: \[3\]; infrared only: \[4\]"):
        VIIdentitySampler([0, 1, 2, 3], [0, 1, 2, 4], 4, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(p=0, k=2), "p must be a positive integer"),
        (dict(p=2, k=0), "k must be a positive integer"),
        (dict(p=2, k=2, num_replicas=2, rank=2), "rank must be an integer in"),
        (dict(p=2, k=2, num_batches=0), "num_batches"),
        (dict(p=2, k=2, seed=-1), "seed must be"),
    ],
)
def test_vi_argument_errors(kwargs, match):
    rgb, ir = _vi_labels()
    with pytest.raises(ValueError, match=match):
        VIIdentitySampler(rgb, ir, **kwargs)


def test_vi_label_errors():
    with pytest.raises(ValueError, match="labels must be >= 0"):
        VIIdentitySampler([0, -1], [0, 1], 1, 1)
    with pytest.raises(ValueError, match="integer labels"):
        VIIdentitySampler([0.0, 1.0], [0, 1], 1, 1)
    with pytest.raises(ValueError, match="1-D"):
        VIIdentitySampler([[0, 1]], [0, 1], 1, 1)


def test_vi_accepts_tensor_labels():
    rgb, ir = _vi_labels()
    a = VIIdentitySampler(torch.tensor(rgb), np.array(ir), 3, 2, seed=5)
    b = VIIdentitySampler(rgb, ir, 3, 2, seed=5)
    assert list(a) == list(b)


def test_vi_determinism_and_epochs():
    rgb, ir = _vi_labels()
    a = VIIdentitySampler(rgb, ir, 3, 2, seed=7)
    b = VIIdentitySampler(rgb, ir, 3, 2, seed=7)
    assert a.plan(0) == b.plan(0)
    assert a.plan(0) != a.plan(1)
    assert a.plan(0) != VIIdentitySampler(rgb, ir, 3, 2, seed=8).plan(0)
    # the plan does not depend on global random state
    np.random.seed(123)
    torch.manual_seed(123)
    assert a.plan(3) == VIIdentitySampler(rgb, ir, 3, 2, seed=7).plan(3)
    # iteration: epoch 0, then auto-advance to epoch 1; set_epoch selects a plan explicitly
    assert list(a) == a.plan(0)
    assert a.epoch == 1 and list(a) == a.plan(1)
    b.set_epoch(4)
    assert list(b) == a.plan(4)


@pytest.mark.parametrize("replicas", [2, 3])
@pytest.mark.parametrize("num_batches", [None, 7, 9])
def test_vi_distributed_shares(replicas, num_batches):
    rgb, ir = _vi_labels()
    single = VIIdentitySampler(rgb, ir, 3, 2, seed=2, num_batches=num_batches)
    plan = single.plan(1)
    shares = []
    for rank in range(replicas):
        s = VIIdentitySampler(
            rgb, ir, 3, 2, seed=2, num_replicas=replicas, rank=rank, num_batches=num_batches
        )
        s.set_epoch(1)
        shares.append(list(s))
        assert len(shares[-1]) == len(s)
    # every rank gets the same count; batch b of the padded plan goes to rank b % R, so the shares are disjoint
    # slices of one plan whose union (interleaved back) is the single-process plan
    n = -(-len(plan) // replicas)
    assert all(len(sh) == n for sh in shares)
    interleaved = [shares[b % replicas][b // replicas] for b in range(n * replicas)]
    assert interleaved[: len(plan)] == plan
    # padding repeats the first batches of the plan
    assert interleaved[len(plan) :] == plan[: n * replicas - len(plan)]


@pytest.mark.parametrize("replicas, rank", [(1, 0), (3, 1)])
def test_vi_resume_mid_epoch(replicas, rank):
    rgb, ir = _vi_labels()

    def make():
        return VIIdentitySampler(rgb, ir, 2, 2, seed=3, num_replicas=replicas, rank=rank, num_batches=20)

    reference = make()
    reference.set_epoch(2)
    epoch2 = list(reference)
    epoch3 = list(reference)

    interrupted = make()
    interrupted.set_epoch(2)
    seen = []
    for batch in interrupted:
        seen.append(batch)
        if len(seen) == 3:
            break
    state = interrupted.state_dict()
    assert (state["epoch"], state["consumed"]) == (2, 3)

    resumed = make()
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # a trainer re-entering the epoch loop must not reset the position
    assert seen + list(resumed) == epoch2
    assert list(resumed) == epoch3  # then carries on with the next epoch


def test_vi_state_dict_override_and_errors():
    rgb, ir = _vi_labels()
    s = VIIdentitySampler(rgb, ir, 2, 2, seed=0, num_batches=5)
    assert s.state_dict(consumed=4)["consumed"] == 4
    other = VIIdentitySampler(rgb, ir, 2, 2, seed=1, num_batches=5)
    with pytest.raises(ValueError, match="seed=0 but this sampler has seed=1"):
        other.load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="consumed=9"):
        s.load_state_dict({"epoch": 0, "consumed": 9})
    with pytest.raises(ValueError, match="missing keys"):
        s.load_state_dict({"epoch": 0})


def test_vi_with_dataloader_batch_sampler():
    rgb, ir = _vi_labels()
    sampler = VIIdentitySampler(rgb, ir, 2, 3, seed=0, num_batches=4)

    class Echo(torch.utils.data.Dataset):
        def __getitem__(self, pair):
            return torch.tensor([rgb[pair[0]], ir[pair[1]]])

    loader = torch.utils.data.DataLoader(Echo(), batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == 4 == len(loader)
    for b in batches:
        assert b.shape == (6, 2) and torch.equal(b[:, 0], b[:, 1])


# --- TripletIdentitySampler ----------------------------------------------------------------------------------------


def _triplet_labels() -> list[int]:
    # identity i has i + 1 triplets (1..8), interleaved
    labels = [i for i in range(8) for _ in range(i + 1)]
    np.random.default_rng(0).shuffle(labels)
    return labels


def _transreid_pass_oracle(labels: list[int], p: int, k: int, batches: list[list[int]]) -> None:
    """Check a plan against the TransReID construction: chunks of K per identity, no index reused within an
    identity's chunks unless the identity has fewer than K, and the pass stops when fewer than P identities remain."""
    chunk_budget = {pid: max(n, k) // k for pid, n in Counter(labels).items()}
    used = Counter()
    for batch in batches:
        pids = [labels[i] for i in batch]
        counts = Counter(pids)
        assert len(counts) == p and set(counts.values()) == {k}
        for pid in counts:
            used[pid] += 1
    assert all(used[pid] <= chunk_budget[pid] for pid in used)
    # stop rule: after the pass fewer than P identities have chunks left
    left = [pid for pid in chunk_budget if chunk_budget[pid] - used[pid] > 0]
    assert len(left) < p
    # without replacement within identities that have >= K triplets
    for pid, n in Counter(labels).items():
        idx = [i for b in batches for i in b if labels[i] == pid]
        if n >= k:
            assert len(idx) == len(set(idx))


def test_triplet_batches_follow_transreid_pass():
    labels = _triplet_labels()
    p, k = 3, 2
    sampler = TripletIdentitySampler(labels, p, k, seed=0)
    for epoch in range(5):
        plan = sampler.plan(epoch)
        _transreid_pass_oracle(labels, p, k, plan)


def test_triplet_small_identity_sampled_with_replacement():
    labels = [0, 1, 1, 1, 1, 2, 2, 2, 2]
    sampler = TripletIdentitySampler(labels, 3, 4, seed=0)
    plan = sampler.plan(0)
    assert len(plan) == 1
    idx0 = [i for i in plan[0] if labels[i] == 0]
    assert idx0 == [0, 0, 0, 0]


def test_triplet_num_batches_determinism_and_distributed():
    labels = _triplet_labels()
    s = TripletIdentitySampler(labels, 2, 2, seed=4, num_batches=25)
    plan = s.plan(0)
    assert len(plan) == 25
    assert plan == TripletIdentitySampler(labels, 2, 2, seed=4, num_batches=25).plan(0)
    assert plan != s.plan(1)
    shares = [
        list(TripletIdentitySampler(labels, 2, 2, seed=4, num_batches=25, num_replicas=3, rank=r))
        for r in range(3)
    ]
    assert [len(x) for x in shares] == [9, 9, 9]
    interleaved = [shares[b % 3][b // 3] for b in range(27)]
    assert interleaved[:25] == plan and interleaved[25:] == plan[:2]


def test_triplet_extra_passes_are_fresh_passes():
    """num_batches beyond one pass appends further passes drawn on: each is a whole TransReID pass of its own
    (with P = 1 every pass holds every chunk, 12 batches here), and none repeats an earlier one."""
    labels = [i for i in range(6) for _ in range(4)]
    first = TripletIdentitySampler(labels, 1, 2, seed=3).plan(0)
    assert len(first) == 12
    plan = TripletIdentitySampler(labels, 1, 2, seed=3, num_batches=30).plan(0)
    assert len(plan) == 30 and plan[:12] == first
    passes = [plan[:12], plan[12:24], plan[24:]]
    for one in passes[:2]:
        _transreid_pass_oracle(labels, 1, 2, one)
        assert sorted(i for b in one for i in b) == list(range(24))  # every triplet once per pass
    assert passes[1] != passes[0] and passes[2] != passes[0][:6] and passes[2] != passes[1][:6]
    # P > 1: the batches after the first pass are not a copy of it
    labels = _triplet_labels()
    one_pass = TripletIdentitySampler(labels, 2, 2, seed=4).plan(0)
    n = len(one_pass)
    plan = TripletIdentitySampler(labels, 2, 2, seed=4, num_batches=2 * n).plan(0)
    assert plan[:n] == one_pass and plan[n:] != one_pass


def test_triplet_resume():
    labels = _triplet_labels()
    ref = TripletIdentitySampler(labels, 2, 2, seed=1)
    full = list(ref)
    s = TripletIdentitySampler(labels, 2, 2, seed=1)
    it = iter(s)
    head = [next(it), next(it)]
    r = TripletIdentitySampler(labels, 2, 2, seed=1)
    r.load_state_dict(s.state_dict())
    assert head + list(r) == full


def test_triplet_errors():
    with pytest.raises(ValueError, match="only 2 identities"):
        TripletIdentitySampler([0, 0, 1], 3, 1)
    with pytest.raises(ValueError, match="labels must be >= 0"):
        TripletIdentitySampler([0, -1, 1], 1, 1)


# --- seeds of the epoch plans ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["vi", "triplet"])
def test_seed_epoch_pairs_never_share_a_plan(kind):
    """The plan of (seed, epoch) is drawn from a generator keyed by the pair itself: seed 1's epoch 0 does not
    replay seed 0's epoch 1 (a run with seed 1 is not the seed-0 run one epoch late), nor does any other pair in a
    grid of seeds and epochs repeat another's plan."""
    def make(seed: int):
        if kind == "vi":
            rgb, ir = _vi_labels()
            return VIIdentitySampler(rgb, ir, 3, 2, seed=seed)
        return TripletIdentitySampler(_triplet_labels(), 2, 2, seed=seed, num_batches=6)

    assert make(1).plan(0) != make(0).plan(1)
    plans = {(seed, epoch): make(seed).plan(epoch) for seed in range(5) for epoch in range(5)}
    keys = list(plans)
    same = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:] if plans[a] == plans[b]]
    assert not same, f"(seed, epoch) pairs with the same plan: {same}"


def test_loader_seeds_of_seed_rank_pairs_never_collide():
    """The loader generator of (seed, rank) is not another pair's: `seed + 1000 * rank` made seed 1000 on rank 0
    replay seed 0 on rank 1."""
    from workbench.data.loaders import _loader_seed

    pairs = [(seed, rank) for seed in (0, 1, 999, 1000, 1001, 2000) for rank in range(4)]
    seeds = {pair: _loader_seed(*pair) for pair in pairs}
    assert len(set(seeds.values())) == len(pairs)
    assert seeds[1000, 0] != seeds[0, 1]
    assert all(0 <= s < 2**63 for s in seeds.values())
