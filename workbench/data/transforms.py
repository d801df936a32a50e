"""Training and test transforms: the standard ReID pipeline and the visible-infrared channel augmentations.

Pipelines (METHODS.md 1.3, 2.6, 4.2):

* "reid" (TransReID / TOP-ReID, ViT family) [CODE: 924973292/TOP-ReID, data/datasets/make_dataloader.py]:
  Resize (bicubic) -> HFlip 0.5 -> Pad 10 -> RandomCrop -> ToTensor -> Normalize(0.5, 0.5) -> RandomErasing(0.5,
  per-pixel normal fill, timm's `RandomErasing(mode="pixel")`).
* "agw" (AGW baseline, both modalities) [CODE: mangye16/Cross-Modal-Re-ID-baseline, train.py::transform_train]:
  Pad 10 -> RandomCrop -> HFlip 0.5 -> ToTensor -> Normalize(ImageNet); no erasing, no channel augmentation.
* "vi_rgb", "vi_ir", "vi_rgb_ca" (DAKD SYSU-MM01 streams) [CODE: Fouroy4/DAKD, data_loader.py::SYSUData]:
  Pad 10 -> RandomCrop -> HFlip 0.5 -> ToTensor -> Normalize(ImageNet), then per stream
  RGB: CutSwap(0.5) -> ChannelRandomErasing(0.5); IR: ChannelRandomErasing(0.5) -> ChannelAdapGray(0.5);
  channel-exchanged RGB view (teacher only): ChannelRandomErasing(0.5) -> ChannelExchange(gray=2).
* "vi_regdb" (DAKD RegDB, both modalities) [CODE: Fouroy4/DAKD, data_loader.py::RegDBData]:
  HFlip 0.5 -> Pad 10 (fill 127) -> RandomCrop -> ToTensor -> Normalize(ImageNet) -> ChannelRandomErasing(0.5);
  no CutSwap in the shipped code.
  The public VI code resizes every training image once when loading (`Image.ANTIALIAS`, i.e. Lanczos); our VI
  pipelines start with that resize so that they accept images of any size.
* test: Resize -> ToTensor -> Normalize. The filter is the config's `data.test_resize`: AGW, MCE and DAKD resize
  every test image once with `Image.ANTIALIAS` (Lanczos) in `data_loader.py::TestData` before their (then no-op)
  `transforms.Resize`, so their profiles use "lanczos"; TOP-ReID's val transform is torchvision's `Resize`
  (bilinear).

Training recipes (`TRAIN_RECIPES`, the config's `data.train_recipe`) name the pipeline of each stream; a recipe belongs
to a method's profile, not to a dataset kind: "agw" (AGW baseline), "channel_aug" (MCE / DAKD on SYSU-MM01: "vi_rgb"
with CutSwap per `data.cutswap`, "vi_ir"), "channel_aug_regdb" (MCE / DAKD on RegDB: "vi_regdb" for both streams,
CutSwap on the visible one only when `data.cutswap` asks), "transreid" (the multi-modal ViT baselines: "reid").

The channel operations (`ChannelExchange`, `ChannelAdapGray`, `ChannelRandomErasing`, `CutSwap`, `RandomErasing`)
act on *normalised* (3, H, W) float tensors, as in the public code, and never modify their input in place (the public
code does, which is what makes shipped CutSwap exchange the whole image; `CutSwap(mode="code_faithful")` reproduces
that outcome explicitly).

Randomness: every random draw uses torch's random number generator, either the `generator` passed to the transform
or, when it is None (the default), torch's global generator. Runs are therefore reproducible under
`torch.manual_seed`, and DataLoader workers (which torch seeds differently per worker) draw different augmentations.
Do not share an explicit generator with DataLoader workers: every worker would get a copy of the same state.

Aligned triplets: `SyncedTransform` applies one geometric draw (flip, crop position) to all modalities of a triplet
while photometric operations (erasing, channel ops) stay independent per modality; `sync_geometry=False` reproduces
the baselines, which transform each modality image independently [CODE: 924973292/DeMo, data/datasets/bases.py].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIT_MEAN = (0.5, 0.5, 0.5)  # TransReID / TOP-ReID INPUT.PIXEL_MEAN and PIXEL_STD
VIT_STD = (0.5, 0.5, 0.5)
# ChannelRandomErasing fill values: CIFAR-10 channel means in [0, 1] units, written into the already normalised tensor
# (quirk inherited from AGW / CAJ [CODE: mangye16/Cross-Modal-Re-ID-baseline, ICCV21_CAJ/ChannelAug.py]).
CAJ_ERASE_MEAN = (0.4914, 0.4822, 0.4465)
LUMA = (
    0.2989,
    0.5870,
    0.1140,
)  # ITU-R 601 luminance weights used by ChannelAdapGray / ChannelExchange(gray=3)

TRAIN_KINDS = ("reid", "agw", "vi_rgb", "vi_ir", "vi_rgb_ca", "vi_regdb")
# recipe -> the transform kind of each stream (visible-infrared: (visible, infrared); multi-modal: one for all)
TRAIN_RECIPES = {
    "agw": ("agw", "agw"),
    "channel_aug": ("vi_rgb", "vi_ir"),
    "channel_aug_regdb": ("vi_regdb", "vi_regdb"),
    "transreid": ("reid",),
}
CUTSWAP_MODES = ("code_faithful", "intended", "off")
_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,  # PIL's former ANTIALIAS, used by the VI pre-resizing code
}


# --- random draws (torch RNG only) ------------------------------------------------------------------------------


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    """One draw of U[lo, hi)."""
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


def _randint(lo: int, hi: int, generator: torch.Generator | None) -> int:
    """One integer uniform on [lo, hi], both ends included."""
    return int(torch.randint(lo, hi + 1, (), generator=generator).item())


def _check_image(img: Tensor, who: str) -> None:
    if not isinstance(img, Tensor) or img.ndim != 3 or img.shape[0] != 3 or not img.is_floating_point():
        shape = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
        raise ValueError(
            f"{who} expects a normalised float tensor of shape (3, H, W), got {shape}; apply it after ToTensor and "
            "Normalize (build_train_transform does)"
        )


def _check_prob(p: float, name: str) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def _fill_channels(
    img: Tensor, source: Tensor, top: int = 0, left: int = 0, h: int | None = None, w: int | None = None
) -> Tensor:
    """Copy of `img` whose three channels equal `source` (H, W) inside the box (whole image by default)."""
    out = img.clone()
    h = img.shape[1] if h is None else h
    w = img.shape[2] if w is None else w
    out[:, top : top + h, left : left + w] = source[top : top + h, left : left + w]
    return out


# --- channel augmentations (normalised tensors) ------------------------------------------------------------------


class ChannelExchange:
    """Copy one colour channel into all three [CODE: Fouroy4/DAKD, data_loader.py::ChannelExchange].

    Draws `idx` uniformly in {0, ..., gray}: idx < 3 copies channel idx into all channels; idx >= 3 writes the
    luminance 0.2989 R + 0.5870 G + 0.1140 B of the (normalised) tensor. With the default `gray=2` the grey branch is
    unreachable, so the output is always one of the three single-channel copies (as shipped).

    Args:
        gray: upper end of the draw; 2 (default) never greys, 3 greys with probability 1/4.
        generator: torch generator for the draws; None uses torch's global generator.
    """

    def __init__(self, gray: int = 2, *, generator: torch.Generator | None = None) -> None:
        if isinstance(gray, bool) or not isinstance(gray, int) or gray < 2:
            raise ValueError(
                f"gray must be an integer >= 2 (2: channel copies only, 3: grey with prob 1/4), got {gray!r}"
            )
        self.gray = gray
        self.generator = generator

    def __call__(self, img: Tensor) -> Tensor:
        """img (3, H, W) -> (3, H, W) with three equal channels."""
        _check_image(img, "ChannelExchange")
        idx = _randint(0, self.gray, self.generator)
        if idx < 3:
            return _fill_channels(img, img[idx])
        return _fill_channels(img, LUMA[0] * img[0] + LUMA[1] * img[1] + LUMA[2] * img[2])


class ChannelAdapGray:
    """Infrared-stream channel augmentation [CODE: Fouroy4/DAKD, ChannelAug.py::ChannelAdapGray].

    Draws k uniformly in {0, 1, 2, 3}: k < 3 copies channel k into all channels; k = 3 converts to luminance
    (0.2989 R + 0.5870 G + 0.1140 B) with probability `p`, else leaves the image unchanged. So the image is
    unchanged with probability (1 - p) / 4.

    Args:
        p: probability of the grey conversion in the k = 3 branch (the public code's `probability`).
        generator: torch generator for the draws; None uses torch's global generator.
    """

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None) -> None:
        self.p = _check_prob(p, "p")
        self.generator = generator

    def __call__(self, img: Tensor) -> Tensor:
        """img (3, H, W) -> (3, H, W)."""
        _check_image(img, "ChannelAdapGray")
        k = _randint(0, 3, self.generator)
        if k < 3:
            return _fill_channels(img, img[k])
        if torch.rand((), generator=self.generator).item() < self.p:
            return _fill_channels(img, LUMA[0] * img[0] + LUMA[1] * img[1] + LUMA[2] * img[2])
        return img.clone()


def _erase_box(
    h_img: int,
    w_img: int,
    sl: float,
    sh: float,
    r1: float,
    log_aspect: bool,
    attempts: int,
    generator: torch.Generator | None,
) -> tuple[int, int, int, int] | None:
    """Random Erasing box (Zhong et al.): area ~ U[sl, sh]*HW, aspect in [r1, 1/r1]; (top, left, h, w) or None."""
    area = h_img * w_img
    for _ in range(attempts):
        target = _uniform(sl, sh, generator) * area
        if log_aspect:
            aspect = math.exp(_uniform(math.log(r1), math.log(1 / r1), generator))
        else:
            aspect = _uniform(r1, 1 / r1, generator)
        h = int(round(math.sqrt(target * aspect)))
        w = int(round(math.sqrt(target / aspect)))
        if w < w_img and h < h_img:
            return _randint(0, h_img - h, generator), _randint(0, w_img - w, generator), h, w
    return None


ERASE_FILLS = ("pixel", "rand", "const")


class _BoxErasing:
    """Random Erasing (Zhong et al., AAAI 2020), the one implementation behind both flavours below.

    With probability `p`, up to `attempts` draws of a box of area U[sl, sh] * H * W and aspect ratio h / w in
    [r1, 1/r1] (log-uniform or uniform), rounded to whole pixels; the first box strictly smaller than the image in both
    sides is placed uniformly and filled according to `mode`: "pixel" per-pixel N(0, 1) values, "rand" one N(0, 1)
    value per channel, "const" `value` (one number, or one per channel). Draw order: the erase decision, the box,
    then the fill, all from `generator` (torch's global generator when None).
    """

    def __init__(self, p: float, sl: float, sh: float, r1: float, mode: str, value: float | Sequence[float], *,
                 log_aspect: bool, attempts: int, generator: torch.Generator | None) -> None:
        self.p = _check_prob(p, "p")
        if not 0 < sl <= sh <= 1:
            raise ValueError(f"need 0 < sl <= sh <= 1 (erased area fractions), got sl={sl}, sh={sh}")
        if not 0 < r1 <= 1:
            raise ValueError(f"r1 (minimum aspect ratio) must be in (0, 1], got {r1}")
        if mode not in ERASE_FILLS:
            raise ValueError(f"mode must be one of {ERASE_FILLS}, got {mode!r}")
        fill = (float(value),) * 3 if isinstance(value, (int, float)) else tuple(float(v) for v in value)
        if len(fill) != 3:
            raise ValueError(f"the fill value must be one number or 3 (one per channel), got {value!r}")
        self.sl, self.sh, self.r1, self.fill_mode, self.fill = float(sl), float(sh), float(r1), mode, fill
        self.log_aspect, self.attempts = log_aspect, attempts
        self.generator = generator

    def __call__(self, img: Tensor) -> Tensor:
        """img (3, H, W) -> (3, H, W)."""
        _check_image(img, type(self).__name__)
        if torch.rand((), generator=self.generator).item() >= self.p:
            return img.clone()
        box = _erase_box(img.shape[1], img.shape[2], self.sl, self.sh, self.r1, self.log_aspect, self.attempts,
                         self.generator)
        out = img.clone()
        if box is not None:
            top, left, h, w = box
            if self.fill_mode == "pixel":
                fill = torch.randn((3, h, w), generator=self.generator, dtype=img.dtype)
            elif self.fill_mode == "rand":
                fill = torch.randn((3, 1, 1), generator=self.generator, dtype=img.dtype)
            else:
                fill = torch.tensor(self.fill, dtype=img.dtype).view(3, 1, 1)
            out[:, top : top + h, left : left + w] = fill
        return out


class ChannelRandomErasing(_BoxErasing):
    """Random Erasing with fixed per-channel fill values, AGW/CAJ/DAKD flavour.

    [CODE: Fouroy4/DAKD, ChannelAug.py::ChannelRandomErasing] (same as AGW and CAJ): with probability `p`, up to 100
    attempts at a box of area U[sl, sh] * H * W and aspect ratio U[r1, 1/r1] (uniform, not log-uniform), rounded to
    whole pixels; the first box strictly smaller than the image in both sides is placed uniformly and channel c is
    filled with `mean[c]`. Quirk kept: `mean` is in [0, 1] image units but is written into the already normalised
    tensor, so the box is not "the mean colour" after normalisation.

    Args:
        p: probability of erasing.
        sl: minimum erased fraction of the image area.
        sh: maximum erased fraction of the image area.
        r1: minimum aspect ratio h / w (the maximum is 1 / r1).
        mean: per-channel fill values.
        generator: torch generator for the draws; None uses torch's global generator.
    """

    def __init__(
        self,
        p: float = 0.5,
        sl: float = 0.02,
        sh: float = 0.4,
        r1: float = 0.3,
        mean: Sequence[float] = CAJ_ERASE_MEAN,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(mean, (int, float)) or len(mean) != 3:
            raise ValueError(f"mean must hold 3 fill values (one per channel), got {mean!r}")
        super().__init__(p, sl, sh, r1, "const", mean, log_aspect=False, attempts=100, generator=generator)
        self.mean = self.fill


class RandomErasing(_BoxErasing):
    """Random Erasing as the ViT ReID baselines use it (timm's `RandomErasing(mode="pixel", max_count=1)`).

    [CODE: 924973292/TOP-ReID, data/datasets/make_dataloader.py::RandomErasing]: with probability `p`, up to 10
    attempts at a box of area U[sl, sh] * H * W and log-uniform aspect ratio in [r1, 1/r1]; the first box strictly
    smaller than the image is placed uniformly and filled according to `mode`: "pixel" per-pixel N(0, 1) values,
    "rand" one N(0, 1) value per channel, "const" the constant `value`.

    Args:
        p: probability of erasing.
        sl: minimum erased fraction of the image area.
        sh: maximum erased fraction of the image area.
        r1: minimum aspect ratio (the maximum is 1 / r1).
        mode: "pixel", "rand" or "const".
        value: fill value of the "const" mode.
        generator: torch generator for the draws; None uses torch's global generator.
    """

    def __init__(
        self,
        p: float = 0.5,
        sl: float = 0.02,
        sh: float = 1 / 3,
        r1: float = 0.3,
        mode: str = "pixel",
        value: float = 0.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(p, sl, sh, r1, mode, float(value), log_aspect=True, attempts=10, generator=generator)
        self.value = float(value)

    @property
    def mode(self) -> str:
        return self.fill_mode


class CutSwap:
    """DAKD's CutSwap, in its intended and its shipped behaviour (METHODS.md 2.6).

    * "intended" (the paper's abstract and the code's docstrings): with probability `p`, pick one of R/G/B uniformly,
      draw independent ratios r_h, r_w ~ U[ratio], take the region floor(H r_h) x floor(W r_w) at a uniformly random
      position and paste it from the channel-exchanged copy: an RGB image with one single-channel ("IR-like")
      rectangle.
    * "code_faithful" [CODE: Fouroy4/DAKD, ChannelAug.py::CutSwap]: the shipped `channel_exchange` modifies the image
      in place and returns it, so the region copy is a copy of the image onto itself; the outcome is the whole image
      channel-exchanged with probability `p`. Use this mode to reproduce the published numbers.
    * "off": identity.

    Args:
        p: probability of applying the augmentation (DAKD: 0.5).
        ratio: (min, max) of the side ratios (DAKD: min_alpha=0.3, max_alpha=0.6).
        mode: "code_faithful", "intended" or "off".
        generator: torch generator for the draws; None uses torch's global generator.
    """

    def __init__(
        self,
        p: float = 0.5,
        ratio: tuple[float, float] = (0.3, 0.6),
        mode: str = "code_faithful",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        self.p = _check_prob(p, "p")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1] <= 1:
            raise ValueError(f"ratio must be (min, max) with 0 < min <= max <= 1, got {ratio!r}")
        if mode not in CUTSWAP_MODES:
            raise ValueError(f"mode must be one of {CUTSWAP_MODES}, got {mode!r}")
        self.ratio, self.mode, self.generator = (float(ratio[0]), float(ratio[1])), mode, generator

    def __call__(self, img: Tensor) -> Tensor:
        """img (3, H, W) -> (3, H, W)."""
        _check_image(img, "CutSwap")
        if self.mode == "off" or torch.rand((), generator=self.generator).item() >= self.p:
            return img.clone()
        channel = _randint(0, 2, self.generator)
        if self.mode == "code_faithful":
            return _fill_channels(img, img[channel])
        h_img, w_img = img.shape[1], img.shape[2]
        h = min(int(h_img * _uniform(*self.ratio, self.generator)), h_img)
        w = min(int(w_img * _uniform(*self.ratio, self.generator)), w_img)
        if h == 0 or w == 0:
            return img.clone()
        top, left = _randint(0, h_img - h, self.generator), _randint(0, w_img - w, self.generator)
        return _fill_channels(img, img[channel], top, left, h, w)


# --- geometry (PIL images) ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeometryParams:
    """One draw of the random geometry: horizontal flip, and the crop's top-left corner in the padded image."""

    flip: bool = False
    top: int = 0
    left: int = 0


@dataclass(frozen=True)
class Geometry:
    """Resize, pad, random crop and horizontal flip of a PIL image, split into `sample` (draw) and `apply` (use).

    Splitting the draw from its use is what lets `SyncedTransform` apply one draw to all aligned modalities.
    """

    size: tuple[int, int] | None = None  # (H, W) resize target and crop size; None keeps the input size
    interpolation: str = "bilinear"  # "nearest", "bilinear", "bicubic" or "lanczos"
    flip_p: float = 0.0  # probability of a horizontal flip
    pad: int = 0  # border added on each side before the random crop
    pad_fill: int = 0  # grey level of the border (DAKD RegDB: 127)
    crop: bool = False  # random crop back to `size` after padding
    flip_first: bool = False  # flip before pad/crop (TOP-ReID, DAKD RegDB) instead of after (DAKD SYSU)

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {self.interpolation!r}"
            )
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"size must be (height, width) with positive entries, got {self.size!r}")
        _check_prob(self.flip_p, "flip_p")
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")

    def sample(self, image_size: tuple[int, int], generator: torch.Generator | None = None) -> GeometryParams:
        """Draw flip and crop position for an input image of PIL size `(width, height)`."""
        flip = self.flip_p > 0 and torch.rand((), generator=generator).item() < self.flip_p
        if not self.crop:
            return GeometryParams(flip=flip)
        # The image is resized to `size` (or kept) and padded by `pad` per side, so the crop corner is in [0, 2 pad].
        return GeometryParams(
            flip=flip, top=_randint(0, 2 * self.pad, generator), left=_randint(0, 2 * self.pad, generator)
        )

    def apply(self, img: Image.Image, params: GeometryParams) -> Image.Image:
        """Resize, then flip and pad + crop in the configured order, with the drawn `params`."""
        if self.size is not None and img.size != (self.size[1], self.size[0]):
            img = img.resize((self.size[1], self.size[0]), _INTERPOLATIONS[self.interpolation])
        if params.flip and self.flip_first:
            img = ImageOps.mirror(img)
        if self.crop:
            w, h = img.size
            if self.pad:
                img = ImageOps.expand(img, border=self.pad, fill=(self.pad_fill,) * 3)
            img = img.crop((params.left, params.top, params.left + w, params.top + h))
        if params.flip and not self.flip_first:
            img = ImageOps.mirror(img)
        return img


def _to_pil(img: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(img, Image.Image):
        return img.convert("RGB") if img.mode != "RGB" else img
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(
            f"expected a PIL image or an (H, W, 3) uint8 array, got {arr.dtype} array {arr.shape}"
        )
    return Image.fromarray(arr)


def _to_normalised_tensor(img: Image.Image, mean: Tensor, std: Tensor) -> Tensor:
    """PIL RGB -> (3, H, W) float32, (x / 255 - mean) / std (torchvision ToTensor + Normalize)."""
    x = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
    return (x - mean) / std


class ReIDTransform:
    """Geometry -> ToTensor -> Normalize -> tensor ops: a PIL image (or (H, W, 3) uint8 array) to (3, H, W).

    Args:
        geometry: the resize / flip / pad / crop stage.
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.
        ops: tensor operations applied in order after normalisation (erasing, channel augmentations).
        generator: torch generator for the geometric draw; None uses torch's global generator.
    """

    def __init__(
        self,
        geometry: Geometry,
        mean: Sequence[float],
        std: Sequence[float],
        ops: Sequence[Callable[[Tensor], Tensor]] = (),
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(
                f"mean and std must hold 3 values each (std > 0), got mean={mean!r}, std={std!r}"
            )
        self.geometry, self.ops, self.generator = geometry, tuple(ops), generator
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def sample_geometry(self, img: Image.Image | np.ndarray) -> GeometryParams:
        """Draw the geometric parameters for `img`."""
        return self.geometry.sample(_to_pil(img).size, self.generator)

    def apply(self, img: Image.Image | np.ndarray, params: GeometryParams) -> Tensor:
        """Transform `img` with given geometric parameters; the tensor ops still draw their own randomness."""
        x = _to_normalised_tensor(self.geometry.apply(_to_pil(img), params), self.mean, self.std)
        for op in self.ops:
            x = op(x)
        return x

    def __call__(self, img: Image.Image | np.ndarray) -> Tensor:
        """img (PIL or (H, W, 3) uint8) -> (3, H, W) float32."""
        return self.apply(img, self.sample_geometry(img))

    def __repr__(self) -> str:
        ops = ", ".join(type(op).__name__ for op in self.ops)
        return (f"ReIDTransform({self.geometry}, mean={self.mean.flatten().tolist()}, "
                f"std={self.std.flatten().tolist()}, ops=[{ops}])")


class SyncedTransform:
    """Transform the aligned modalities of a triplet, with one geometric draw for all of them or one each.

    With `sync_geometry=True` the flip and crop are drawn once (from the first modality) and applied to every
    modality, so outputs stay pixel-aligned; the tensor ops (random erasing, ...) still draw per modality. With
    `sync_geometry=False` each modality is transformed independently, as the TOP-ReID / DeMo baselines do.

    Args:
        transform: a `ReIDTransform` (any callable image -> tensor is accepted when `sync_geometry=False`).
        sync_geometry: share the geometric draw across modalities.
    """

    def __init__(self, transform: Callable, sync_geometry: bool = True) -> None:
        if sync_geometry and not isinstance(transform, ReIDTransform):
            raise ValueError(
                f"sync_geometry=True needs a ReIDTransform (from build_train_transform / build_test_transform), got "
                f"{type(transform).__name__}; build the transform with those functions or set sync_geometry=False"
            )
        self.transform, self.sync_geometry = transform, bool(sync_geometry)

    def __call__(self, images: Mapping[str, Image.Image | np.ndarray]) -> dict[str, Tensor]:
        """images {modality: PIL or (H, W, 3) uint8} -> {modality: (3, H, W)}."""
        if not images:
            raise ValueError("images is empty; pass {modality: image}")
        if not self.sync_geometry:
            return {m: self.transform(img) for m, img in images.items()}
        pils = {m: _to_pil(img) for m, img in images.items()}
        sizes = {m: im.size for m, im in pils.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"aligned modalities must have the same size to share one geometry, got {sizes}")
        params = self.transform.sample_geometry(next(iter(pils.values())))
        return {m: self.transform.apply(im, params) for m, im in pils.items()}


# --- builders ----------------------------------------------------------------------------------------------------


def build_train_transform(
    kind: str,
    height: int,
    width: int,
    *,
    cutswap: str | None = None,
    cutswap_p: float = 0.5,
    erasing_p: float = 0.5,
    flip_p: float = 0.5,
    pad: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    generator: torch.Generator | None = None,
) -> ReIDTransform:
    """Training transform of one of the published pipelines (see the module docstring).

    Args:
        kind: "reid" (TransReID / TOP-ReID), "agw" (AGW, both modalities), "vi_rgb", "vi_ir", "vi_rgb_ca" (DAKD
            SYSU-MM01 streams: visible,
            infrared, channel-exchanged visible view for the teacher), or "vi_regdb" (DAKD RegDB, both modalities).
        height: output height.
        width: output width.
        cutswap: CutSwap mode, "code_faithful" (default for "vi_rgb"), "intended" or "off". "vi_regdb" ships without
            CutSwap (default "off"); passing a mode adds it before the erasing, for the RegDB visible stream only.
            Other kinds accept only None or "off".
        cutswap_p: CutSwap probability.
        erasing_p: probability of (Channel)RandomErasing.
        flip_p: horizontal flip probability.
        pad: padding before the random crop.
        mean: normalisation mean; default ImageNet for "vi_*", 0.5 for "reid".
        std: normalisation std; default ImageNet for "vi_*", 0.5 for "reid".
        generator: torch generator shared by every draw; None uses torch's global generator.

    Returns:
        A `ReIDTransform`: PIL image -> (3, height, width) float32.
    """
    if kind not in TRAIN_KINDS:
        raise ValueError(f"kind must be one of {TRAIN_KINDS}, got {kind!r}")
    if cutswap is not None and cutswap not in CUTSWAP_MODES:
        raise ValueError(f"cutswap must be None or one of {CUTSWAP_MODES}, got {cutswap!r}")
    if kind not in ("vi_rgb", "vi_regdb") and cutswap not in (None, "off"):
        raise ValueError(
            f"kind={kind!r} has no CutSwap; cutswap={cutswap!r} applies to 'vi_rgb' (or 'vi_regdb')"
        )
    size = (int(height), int(width))
    g = generator
    if kind == "reid":
        # [CODE: 924973292/TOP-ReID, make_dataloader.py]: Resize(interpolation=3 bicubic), flip, pad, crop, RE pixel.
        geometry = Geometry(size, "bicubic", flip_p, pad, 0, True, flip_first=True)
        ops: list[Callable[[Tensor], Tensor]] = [RandomErasing(erasing_p, mode="pixel", generator=g)]
        default_mean, default_std = VIT_MEAN, VIT_STD
    else:
        default_mean, default_std = IMAGENET_MEAN, IMAGENET_STD
        if kind == "agw":  # [CODE: mangye16/Cross-Modal-Re-ID-baseline, train.py]: Pad(10), RandomCrop, flip
            geometry = Geometry(size, "lanczos", flip_p, pad, 0, True, flip_first=False)
        elif kind == "vi_regdb":  # [CODE: Fouroy4/DAKD, data_loader.py::RegDBData.transform]
            geometry = Geometry(size, "lanczos", flip_p, pad, 127, True, flip_first=True)
        else:  # [CODE: Fouroy4/DAKD, data_loader.py::SYSUData]
            geometry = Geometry(size, "lanczos", flip_p, pad, 0, True, flip_first=False)
        erase = ChannelRandomErasing(erasing_p, generator=g)
        if kind == "agw":
            ops = []
        elif kind == "vi_rgb":
            # "off" leaves no op (an "off" CutSwap draws nothing, so the outputs are the same either way)
            ops = [erase] if cutswap == "off" else [CutSwap(cutswap_p, mode=cutswap or "code_faithful", generator=g),
                                                    erase]
        elif kind == "vi_regdb":
            ops = (
                [erase]
                if cutswap in (None, "off")
                else [CutSwap(cutswap_p, mode=cutswap, generator=g), erase]
            )
        elif kind == "vi_ir":
            ops = [erase, ChannelAdapGray(0.5, generator=g)]
        else:  # vi_rgb_ca
            ops = [erase, ChannelExchange(2, generator=g)]
    mean = default_mean if mean is None else mean
    std = default_std if std is None else std
    return ReIDTransform(geometry, mean, std, ops, generator=g)


def build_test_transform(
    height: int,
    width: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    *,
    interpolation: str = "bilinear",
) -> ReIDTransform:
    """Deterministic test transform: Resize -> ToTensor -> Normalize.

    Args:
        height: output height.
        width: output width.
        mean: normalisation mean (ImageNet for VI models; `VIT_MEAN` for the ViT family).
        std: normalisation std (ImageNet for VI models; `VIT_STD` for the ViT family).
        interpolation: resize filter; "lanczos" reproduces AGW / MCE / DAKD (PIL ANTIALIAS in `TestData`),
            "bilinear" TOP-ReID's val transform.
    """
    return ReIDTransform(Geometry((int(height), int(width)), interpolation), mean, std)
