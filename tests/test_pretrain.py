"""The cpu-demo stand-ins for ImageNet weights: attribute targets, cache reuse keyed by the fingerprint, rebuild of
a damaged file, weights that fill the whole backbone of the demo models; the distilled stand-in's teacher features,
fingerprint and cache, and cold builds that leave the caller's random state alone."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from workbench import pretrain, pretrain_distill
from workbench.models import create_model

TINY = pretrain.StandInRecipe(pool_ids=8, images_per_id=2, holdout_ids=2, epochs=1, batch_size=4)


def test_colour_names_and_attribute_targets():
    assert pretrain.colour_name((0.05, 0.05, 0.05)) == 0       # black
    assert pretrain.colour_name((0.5, 0.5, 0.52)) == 1         # grey
    assert pretrain.colour_name((0.95, 0.95, 0.93)) == 2       # white
    assert pretrain.colour_name((0.9, 0.1, 0.1)) == 3          # red: hue sector 0
    assert pretrain.colour_name((0.1, 0.8, 0.1)) == 5          # green: hue 1/3 -> sector 2
    assert pretrain.colour_name((0.1, 0.1, 0.9)) == 7          # blue: hue 2/3 -> sector 4
    factors = {"viewpoint": "right", "visible_accessories": ["bag"],
               "identity": {"upper": {"kind": "coat", "pattern": "logo", "rgb": (0.9, 0.1, 0.1)},
                            "lower": {"kind": "skirt", "rgb": (0.05, 0.05, 0.05)},
                            "hair_style": "long", "gender": "female"}}
    assert pretrain.attribute_targets(factors) == {
        "upper_kind": 2, "lower_kind": 2, "upper_pattern": 3, "upper_colour": 3, "lower_colour": 0,
        "hair_style": 1, "gender": 0, "hat": 0, "backpack": 0, "bag": 1, "viewpoint": 3}
    assert set(pretrain.attribute_targets(factors)) == set(pretrain.ATTRIBUTES)


def test_pool_is_rgb_only_and_targets_are_in_range():
    images, targets, person = pretrain.render_pool(TINY, progress=False)
    assert images.shape == (16, TINY.height, TINY.width, 3)
    assert sorted(set(person.tolist())) == list(range(8))
    for name, n in pretrain.ATTRIBUTES.items():
        assert targets[name].min() >= 0 and targets[name].max() < n
    # visible renders: the three channels differ (NIR / thermal renders are grey)
    assert (images[..., 0] != images[..., 1]).any()


@pytest.mark.slow
def test_cache_reuse_fingerprint_change_and_damaged_file(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    calls = []
    real = pretrain.pretrain_backbone
    monkeypatch.setattr(pretrain, "pretrain_backbone", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = pretrain.standin_weights("test_vi_resnet", TINY, progress=False)
    assert len(calls) == 1 and first.is_file()
    assert pretrain.standin_report("test_vi_resnet", TINY)["images"] == 16
    again = pretrain.standin_weights("test_vi_resnet", TINY, progress=False)
    assert again == first and len(calls) == 1, "same fingerprint: the cached weights are reused"
    other = pretrain.dataclasses.replace(TINY, seed=1)
    third = pretrain.standin_weights("test_vi_resnet", other, progress=False)
    assert third != first and len(calls) == 2, "another recipe: another fingerprint, pre-trained again"
    first.write_bytes(b"\x00 damaged")
    capsys.readouterr()
    rebuilt = pretrain.standin_weights("test_vi_resnet", TINY, progress=False)
    assert rebuilt == first and len(calls) == 3 and "damaged" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["test_vi_resnet", "test_mm_vit"])
def test_standin_fills_the_whole_backbone(name):
    path = pretrain.standin_weights(name, TINY, progress=False)
    from safetensors.torch import load_file

    state = load_file(str(path))
    model = create_model(name, num_classes=5, pretrained=str(path), img_size=(TINY.height, TINY.width)) \
        if name == "test_mm_vit" else create_model(name, num_classes=5, pretrained=str(path))
    report = model.load_report
    assert not report.unexpected and not report.mismatched
    assert set(report.loaded) == set(state), "every stand-in tensor lands in the backbone"
    if name == "test_vi_resnet":  # both stems start from the same pre-trained conv1, as AGW does with ImageNet
        params = dict(model.named_parameters())
        for stem in ("specific.0.stem.0.0.weight", "specific.1.stem.0.0.weight"):  # visible, infrared
            torch.testing.assert_close(params[stem], state["conv1.0.weight"])


def test_models_on_one_backbone_share_one_standin_and_the_demo_selects_it():
    from workbench.config import get_config

    # the visible-infrared baseline, DAKD and ICRE's demo model share the tiny ResNet trunk: one file, one training
    assert pretrain._cache_path("test_icre_resnet", TINY) == pretrain._cache_path("test_vi_resnet", TINY)
    assert pretrain._cache_path("test_mm_vit", TINY) != pretrain._cache_path("test_vi_resnet", TINY)
    assert pretrain._cache_path("test_vi_resnet", TINY).name.startswith("test_resnet-")
    for method, dataset in (("baseline", "synthetic-vi"), ("dakd_teacher", "synthetic-vi"), ("dakd", "synthetic-vi"),
                            ("icre", "synthetic-vi"), ("baseline", "synthetic-rgbnt"), ("sd2reid", "synthetic-rgbnt")):
        assert get_config(method, dataset, "cpu-demo").model.pretrained == "synthetic", (method, dataset)
        assert get_config(method, dataset, "smoke").model.pretrained is None, "smoke stays from scratch"


# ------------------------------------------------------------------------ the distilled stand-in (ImageNet teacher)

TINY_DISTILL = pretrain_distill.DistillRecipe(standin=TINY, teacher_height=64, teacher_width=32)


def _global_draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


@pytest.mark.slow
@pytest.mark.parametrize(("source", "recipe"), [("synthetic-distilled", TINY_DISTILL), ("synthetic", TINY)])
def test_cold_builds_leave_the_callers_random_state_alone(monkeypatch, tmp_path, source, recipe):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    expected = _global_draws()
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    path = pretrain_distill.standin_path(source, "test_vi_resnet", recipe, progress=False)
    assert path.is_file() and path.is_relative_to(tmp_path)  # built here, cold
    assert _global_draws() == expected, f"building the {source} stand-in moved the caller's random state"
    with pytest.raises(ValueError, match="takes a"):
        pretrain_distill.standin_path(source, "test_vi_resnet", TINY if recipe is TINY_DISTILL else TINY_DISTILL)


@pytest.mark.slow
def test_distilled_cache_reuse_fingerprint_and_whole_backbone(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    calls = []
    real = pretrain_distill.distill_backbone
    monkeypatch.setattr(pretrain_distill, "distill_backbone", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = pretrain_distill.distilled_weights("test_vi_resnet", TINY_DISTILL, progress=False)
    assert first.name.startswith("test_resnet-distilled-") and len(calls) == 1
    report = pretrain_distill.distilled_report("test_vi_resnet", TINY_DISTILL)
    assert report["images"] == 16 and report["teacher"].startswith("imagenet-lite0:tf_efficientnet_lite0-")
    assert pretrain_distill.distilled_weights("test_vi_resnet", TINY_DISTILL, progress=False) == first
    assert len(calls) == 1, "same fingerprint: reused"
    other = pretrain_distill.dataclasses.replace(TINY_DISTILL, teacher_height=32, teacher_width=16)
    assert pretrain_distill.distilled_weights("test_vi_resnet", other, progress=False) != first and len(calls) == 2
    # another teacher file (its hash is in the converted file's name) is another fingerprint
    monkeypatch.setattr(pretrain_distill, "teacher_key", lambda recipe: "imagenet-lite0:another-file")
    assert pretrain_distill._cache_entry("test_vi_resnet", TINY_DISTILL)[0] != first
    monkeypatch.undo()
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    from safetensors.torch import load_file

    state = load_file(str(first))
    model = create_model("test_vi_resnet", num_classes=5, pretrained=str(first))
    assert set(model.load_report.loaded) == set(state) and not model.load_report.mismatched
    plain = pretrain._cache_path("test_vi_resnet", TINY)
    assert plain.parent == first.parent and plain.name != first.name, "the plain stand-in keeps its own file"


def test_teacher_features_are_the_lite0_pooled_features_of_image_and_mirror():
    images = np.random.default_rng(0).integers(0, 256, size=(3, 16, 8, 3), dtype=np.uint8)
    feats = pretrain_distill.teacher_features(images, TINY_DISTILL, progress=False)
    assert feats.shape == (3, 2, 1280)
    mirrored = pretrain_distill.teacher_features(images[:, :, ::-1].copy(), TINY_DISTILL, progress=False)
    torch.testing.assert_close(mirrored[:, 0], feats[:, 1], atol=1e-5, rtol=1e-5)
    assert (feats >= 0).all(), "average of ReLU6 maps"


def test_the_methods_select_either_stand_in_by_name(monkeypatch, tmp_path):
    from workbench.config import get_config
    from workbench.methods import get_method

    seen = []
    monkeypatch.setattr(pretrain_distill, "distilled_weights", lambda name, *a, **k: seen.append(name) or tmp_path / "d")
    cfg = get_config("baseline", "synthetic-vi", "cpu-demo").override(**{"model.pretrained": "synthetic-distilled"})
    assert get_method("baseline").pretrained_weights(cfg) == str(tmp_path / "d") and seen == ["test_vi_resnet"]
    with pytest.raises(ValueError, match="synthetic-distilled"):
        pretrain_distill.standin_path("synthetic-imagenet", "test_vi_resnet")
    lite = cfg.override(**{"model.name": "agw_lite0", "model.pretrained": "imagenet-lite0"})
    assert get_method("baseline").pretrained_weights(lite) == "imagenet-lite0"  # the model resolves it
