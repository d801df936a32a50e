"""The training loader of a run: its PK batch sampler, its augmentation recipe, its dataset wrapper.

    loader, sampler = build_train_loader(cfg, train_samples)     # VI: (rgb, ir) pairs; multi-modal: triplets
    for batch in loader: ...

The sampler is returned too: the engine checkpoints its position (`sampler.state_dict`) for an exact resume.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from workbench.config import Config, dataset_kind
from workbench.data import samplers, torch_datasets, transforms
from workbench.data.samples import Sample


def train_recipe_kinds(cfg: Config) -> tuple[str, ...]:
    """The transform kinds of `data.train_recipe`: (visible, infrared) for visible-infrared data, (one,) for
    multi-modal triplets. "auto" (configs saved before the field existed) is the former per-kind choice."""
    kind = dataset_kind(cfg.data.dataset)
    recipe = cfg.data.train_recipe
    if recipe == "auto":
        recipe = "channel_aug" if kind == "vi" else "transreid"
    if recipe not in transforms.TRAIN_RECIPES:
        raise ValueError(f"data.train_recipe must be 'auto' or one of {sorted(transforms.TRAIN_RECIPES)}, "
                         f"got {recipe!r}")
    kinds = transforms.TRAIN_RECIPES[recipe]
    if (len(kinds) == 2) != (kind == "vi"):
        raise ValueError(f"data.train_recipe={recipe!r} is for {'visible-infrared' if len(kinds) == 2 else 'multi-modal'}"
                         f" data, but {cfg.data.dataset!r} is {'visible-infrared' if kind == 'vi' else 'multi-modal'}")
    return kinds


def build_train_loader(cfg: Config, samples: list[Sample], *, rank: int = 0,
                       world: int = 1) -> tuple[DataLoader, samplers.VIIdentitySampler | samplers.TripletIdentitySampler]:
    """The PK loader of a training split: (DataLoader, sampler). VI data: (rgb, ir) pairs; triplets: PxK triplets.

    Args:
        samples: the training samples (held-out validation identities already removed).
        rank, world: this process's share of each epoch under data-parallel training.
    """
    d = cfg.data
    kinds = train_recipe_kinds(cfg)
    if dataset_kind(d.dataset) == "vi":
        rgb = [s for s in samples if s.modality == "rgb"]
        ir = [s for s in samples if s.modality == "ir"]
        dataset = torch_datasets.VIPairDataset(
            rgb, ir,
            transforms.build_train_transform(kinds[0], d.height, d.width, cutswap=d.cutswap),
            transforms.build_train_transform(kinds[1], d.height, d.width),
            cache=d.cache_images)
        sampler = samplers.VIIdentitySampler([s.label for s in rgb], [s.label for s in ir], d.p, d.k,
                                             seed=cfg.run.seed, num_replicas=world, rank=rank,
                                             num_batches=d.batches_per_epoch)
    else:
        dataset = torch_datasets.TripletDataset(samples, transforms.build_train_transform(kinds[0], d.height, d.width),
                                                sync_geometry=d.sync_geometry, cache=d.cache_images)
        sampler = samplers.TripletIdentitySampler([s.label for s in samples], d.p, d.k, seed=cfg.run.seed,
                                                  num_replicas=world, rank=rank, num_batches=d.batches_per_epoch)
    # A private generator: creating the loader's iterator then draws its worker seed from it, not from the global RNG
    # that the augmentations use, so a run resumed mid-epoch sees the same random stream as an uninterrupted one.
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=d.num_workers, collate_fn=torch_datasets.collate,
                        generator=torch.Generator().manual_seed(_loader_seed(cfg.run.seed, rank)))
    return loader, sampler


def _loader_seed(seed: int, rank: int) -> int:
    """The loader generator's seed of one rank: a `SeedSequence` of (run seed, rank), so no (seed, rank) pair replays
    another's stream (`seed + 1000 * rank` made seed 1000 on rank 0 equal seed 0 on rank 1). The generator only
    draws the worker base seed; with `data.num_workers=0` the augmentations use the global RNG, so results at
    num_workers=0 do not depend on it."""
    import numpy as np

    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)
