"""The recipe card: every item present, values read from what a run builds, sources on paper profiles."""

from __future__ import annotations

import pytest

from workbench import config, recipe
from workbench.__main__ import main

REQUIRED = ("image size", "normalisation", "test resize", "sampler", "held-out identities", "model", "pretrained",
            "optimiser", "parameter group 0", "warm-up and schedule", "epochs", "losses", "test feature",
            "re-ranking", "checkpoint selection", "precision")
PAPER = [("baseline", "sysu-mm01"), ("baseline", "rgbnt201"), ("dakd_teacher", "sysu-mm01"),
         ("dakd_teacher", "regdb"), ("dakd", "sysu-mm01"), ("dakd", "regdb")]


def row(card, item):
    rows = card[card["item"] == item]
    assert len(rows) == 1, f"{item!r} appears {len(rows)} times"
    return rows.iloc[0]


@pytest.mark.parametrize("method,dataset", PAPER)
def test_paper_cards_have_every_item_with_a_source(method, dataset):
    card = recipe.recipe_card(config.get_config(method, dataset, "paper"))
    for item in REQUIRED:
        assert row(card, item)["value"], item
    no_source = card[(card["source"] == "") & ~card["item"].isin(["method / dataset / profile",
                                                                   "held-out identities"])]
    assert no_source.empty, list(no_source["item"])
    # the deliberate differences are marked, with a reason
    assert "holds these out" in row(card, "held-out identities")["differs"]
    assert "test set" in row(card, "checkpoint selection")["differs"]
    assert row(card, "precision")["differs"] == ("" if method == "baseline" and dataset == "rgbnt201" else
                                                 "the reference trains in fp32; optim.amp=false reproduces it")


def test_card_values_are_what_the_run_builds():
    card = recipe.recipe_card(config.get_config("baseline", "sysu-mm01", "paper"), epochs=[0, 20, 50])
    assert row(card, "parameter group 0")["value"].startswith("lr 0.01, weight decay 0.0005: 212 tensors")
    assert row(card, "parameter group 1")["value"] == "lr 0.1, weight decay 0.0005: 2 tensors (bnneck, classifier)"
    assert row(card, "lr at epoch 0 (0-based)")["value"] == "groups [0.001, 0.01]"
    assert row(card, "lr at epoch 20 (0-based)")["value"] == "groups [0.001, 0.01]"
    assert row(card, "lr at epoch 50 (0-based)")["value"] == "groups [0.0001, 0.001]"
    aug = row(card, "train augmentation (visible)")["value"]
    assert "Pad 10 (fill 0) -> RandomCrop -> HFlip p=0.5" in aug and "Erasing" not in aug
    mm = recipe.recipe_card(config.get_config("baseline", "rgbnt201", "paper"), epochs=[0])
    assert row(mm, "SIE camera embedding")["value"] == "on: 4 cameras, coefficient 3.0"
    assert row(mm, "lr at epoch 0 (0-based)")["value"] == "groups [0.000981, 0.001881]"
    assert "62.9" in row(mm, "loss variant")["differs"]


def test_card_of_other_profiles_has_no_sources_and_follows_overrides():
    cfg = config.get_config("baseline", "synthetic-vi", "cpu-demo").override(**{"data.train_recipe": "channel_aug"})
    card = recipe.recipe_card(cfg)
    assert (card["source"] == "").all()
    assert "ChannelAdapGray(p=0.5)" in row(card, "train augmentation (infrared)")["value"]
    with pytest.raises(ValueError, match="epochs must lie"):
        recipe.recipe_card(cfg, epochs=[cfg.optim.epochs])


def test_command_line_prints_the_card(capsys):
    assert main(["recipe", "--method", "baseline", "--dataset", "rgbnt201", "--epochs", "0,119",
                 "loss.mm_heads=per_modality"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| section | item | value | source | differs |")
    assert "| lr at epoch 119 (0-based) | groups [9e-06, 9e-06] |" in out
    assert "loss.mm_heads=per_modality" in out


@pytest.mark.parametrize("key,value,match", [("data.train_recipe", "agw2", "data.train_recipe"),
                                             ("data.test_resize", "area", "data.test_resize"),
                                             ("optim.amp_dtype", "fp8", "optim.amp_dtype"),
                                             ("data.train_recipe", "transreid", "multi-modal data")])
def test_bad_recipe_values_name_the_option(key, value, match):
    cfg = config.get_config("baseline", "sysu-mm01", "paper").override(**{key: value})
    with pytest.raises(ValueError, match=match):
        recipe.recipe_card(cfg)
