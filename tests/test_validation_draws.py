"""Checkpoint selection that is not noise (issue 19 item 4): validation scores a run on `data.val_draws` seeded gallery
draws of the held-out identities, records their mean (and the spread), and the selected epoch follows the mean."""

import types

import numpy as np
import pytest

from workbench import train
from workbench.config import Config, get_config
from workbench.data import load_dataset
from workbench.data.validation import draw_seed, holdout_identities, validation_splits
from workbench.runs import load_run


@pytest.fixture(scope="module")
def vi():
    return load_dataset("synthetic-vi", ids=16, seed=0, difficulty="default")


def test_ten_draws_share_the_query_and_draw_different_galleries(vi):
    kept, splits = validation_splits(vi.train, 4, seed=0, draws=10)
    assert len(splits) == 10 and [s.trial for s in splits] == list(range(10))
    assert all(s.query is splits[0].query for s in splits)
    galleries = {tuple(x.paths["rgb"] for x in s.gallery) for s in splits}
    assert len(galleries) > 5  # different draws (a few may coincide on tiny data)
    for s in splits:  # each gallery: one RGB image per (held-out identity, camera), as the SYSU draw
        keys = [(x.pid, x.camid) for x in s.gallery]
        assert len(keys) == len(set(keys)) and all(x.modality == "rgb" for x in s.gallery)
        assert {x.pid for x in s.gallery} == {x.pid for x in s.query}
    old_kept, old_q, old_g = holdout_identities(vi.train, 4, seed=0)
    assert [x.paths for x in kept] == [x.paths for x in old_kept]
    assert splits[0].gallery == old_g and splits[0].query == old_q  # draw 0 is the single draw of before


def test_draw_seeds_never_repeat_across_seed_draw_pairs():
    seeds = {(s, d): draw_seed(s, d) for s in range(0, 12) for d in range(10)}
    assert len(set(seeds.values())) == len(seeds)


def test_triplets_have_one_validation_round():
    mm = load_dataset("synthetic-rgbnt", ids=16, seed=0, difficulty="medium")
    _, splits = validation_splits(mm.train, 4, seed=0, draws=10)
    assert len(splits) == 1 and splits[0].query is splits[0].gallery


def test_configs_saved_before_the_draws_keep_their_single_draw():
    cfg = get_config("baseline", "synthetic-vi", "cpu-demo")
    assert cfg.data.val_draws == 10
    saved = cfg.to_dict()
    del saved["data"]["val_draws"]
    assert Config.from_dict(saved).data.val_draws == 1


@pytest.mark.slow
def test_the_selected_epoch_follows_the_mean_over_draws_not_one_draw(tmp_path, monkeypatch):
    """Draw 0 alone would pick epoch 1 (0.50 > 0.40 > 0.30); the mean over ten draws picks epoch 2."""
    draw0 = {1: 0.50, 2: 0.40, 3: 0.30}
    others = {1: 0.10, 2: 0.70, 3: 0.20}
    seen = []

    def fake_evaluate_splits(model, splits, cfg, **kwargs):
        epoch = len(seen) + 1
        seen.append([tuple(x.paths["rgb"] for x in s.gallery) for s in splits])
        per_draw = np.array([draw0[epoch]] + [others[epoch] + 0.01 * d for d in range(1, len(splits))])
        return types.SimpleNamespace(mean={"mAP": float(per_draw.mean()), "rank1": float(per_draw.mean())},
                                     std={"mAP": float(per_draw.std()), "rank1": float(per_draw.std())})

    monkeypatch.setattr(train._evaluate, "evaluate_splits", fake_evaluate_splits)
    cfg = get_config("baseline", "synthetic-vi", "smoke").override(**{
        "run.out_dir": str(tmp_path), "run.name": "sel", "run.device": "cpu", "optim.epochs": 3,
        "data.batches_per_epoch": 1, "run.eval_every": 1})
    monkeypatch.setattr(train._evaluate, "evaluate_and_store", lambda *a, **k: types.SimpleNamespace(
        mean={"mAP": 0.0}, std={"mAP": 0.0}, per_trial=__import__("pandas").DataFrame([{"mAP": 0.0}])))
    run = train.fit(cfg, progress=False)
    assert len(seen) == 3 and all(len(galleries) == 10 for galleries in seen)
    assert len(set(seen[0])) > 1  # the ten rounds are ten different galleries
    results = load_run(run.path).results
    assert results["best_epoch"] == 2
    expected = np.array([draw0[2]] + [others[2] + 0.01 * d for d in range(1, 10)])
    assert results["val"]["mAP"] == pytest.approx(expected.mean())
    assert results["val"]["mAP_std"] == pytest.approx(expected.std())
    vals = run.metrics.dropna(subset=["val/mAP"])
    assert list(vals["epoch"]) == [1, 2, 3] and "val/mAP_std" in vals
