"""A stand-in for ImageNet initialisation on a CPU: attribute pre-training of the tiny demo backbones.

Every recipe the workbench reproduces starts its backbone from ImageNet weights (METHODS.md 1.1, 1.3, 2.3); the
tiny cpu-demo networks (`test_vi_resnet`, `test_mm_vit`) have none, and a from-scratch start is a different regime
(no generic visual features, large train/eval gaps of batch statistics in the first epochs). This module
pre-trains the timm backbone of such a model once, on a pool of synthetic people that never appears in a demo split,
and caches the weights, so the cpu-demo profile can select them the way the paper profile selects ImageNet weights
(`model.pretrained="synthetic"`).

The objective is chosen to play ImageNet's part, not a re-identification dataset's [INFERRED, our choice]:
supervised classification of *generic visual attributes* read from the generator's ground truth (garment kinds,
colour names and patterns, hair style, build, visible accessories, viewpoint) on **visible (RGB) images only**.
Like ImageNet classes, these teach colour, texture, shape and part features without identity discrimination
(there is no identity label: two people with the same attributes are the same class) and without any infrared or
thermal image (the cross-modal gap is left for the methods to bridge, as it is with ImageNet weights). The pool's
identities come from another generator seed, and its cameras look at scenes of their own (locations named
`standin-*`), so neither the people nor the backgrounds of the demo splits are seen.

The weights are cached under `workbench.utils.cache_dir()/standin/`, keyed by a fingerprint of the generator code,
the backbone (timm architecture and arguments) and the recipe; a damaged cache file is rebuilt with a message.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.utils import build_lock, cache_dir, preserved_rng

STANDIN_VERSION = 2  # bump when the attribute definitions or the training loop change

# Attribute heads: name -> number of classes (all single-label cross-entropy).
ATTRIBUTES: dict[str, int] = {
    "upper_kind": 3, "lower_kind": 3, "upper_pattern": 4, "upper_colour": 9, "lower_colour": 9,
    "hair_style": 2, "gender": 2, "hat": 2, "backpack": 2, "bag": 2, "viewpoint": 4,
}
_UPPER_KINDS, _LOWER_KINDS = ("tshirt", "longsleeve", "coat"), ("trousers", "shorts", "skirt")
_PATTERNS = ("plain", "stripes", "checks", "logo")


@dataclass(frozen=True)
class StandInRecipe:
    """How the stand-in is made. Defaults fit the 5-minute budget on a 2-core CPU for both demo backbones
    (measured on an idle 2-core machine: about 95 s each; README "The stand-in for ImageNet weights").

    Attributes:
        pool_ids: synthetic people in the pool (their seed `pool_seed` is not used by any demo split).
        images_per_id: RGB renders per person (random camera, viewpoint, pose, occluder).
        holdout_ids: people of the pool kept out of training to report the attributes' held-out accuracy.
        epochs, batch_size, lr, weight_decay: AdamW with a cosine decay over all steps.
    """

    pool_ids: int = 1000
    images_per_id: int = 4
    holdout_ids: int = 60
    pool_seed: int = 7_919_001
    height: int = 128
    width: int = 64
    difficulty: str = "default"
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    seed: int = 0


def colour_name(rgb: tuple[float, float, float]) -> int:
    """Nine colour names: black, grey, white (low saturation, by value) and six hue sectors."""
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    if s < 0.25 or v < 0.2:
        return 0 if v < 0.3 else (1 if v < 0.7 else 2)
    return 3 + int(h * 6) % 6


def attribute_targets(factors: dict) -> dict[str, int]:
    """The class of each attribute in `ATTRIBUTES` for one rendered image (its `factors` from `synthetic.render`)."""
    ident = factors["identity"]
    visible = set(factors.get("visible_accessories", ()))
    return {
        "upper_kind": _UPPER_KINDS.index(ident["upper"]["kind"]),
        "lower_kind": _LOWER_KINDS.index(ident["lower"]["kind"]),
        "upper_pattern": _PATTERNS.index(ident["upper"]["pattern"]),
        "upper_colour": colour_name(ident["upper"]["rgb"]),
        "lower_colour": colour_name(ident["lower"]["rgb"]),
        "hair_style": ("short", "long").index(ident["hair_style"]),
        "gender": ("female", "male").index(ident["gender"]),
        "hat": int("hat" in visible), "backpack": int("backpack" in visible), "bag": int("bag" in visible),
        "viewpoint": ("front", "back", "left", "right").index(factors["viewpoint"]),
    }


def standin_cameras():
    """Visible cameras of the pool, at locations no demo layout uses (their backgrounds are new scenes)."""
    from workbench.data.synthetic import Camera

    return [Camera(camid=1, spectra=("rgb",), location="standin-plaza", kind="outdoor"),
            Camera(camid=2, spectra=("rgb",), location="standin-hall", kind="indoor", scale=0.8,
                   illumination=(1.0, 0.98, 0.92)),
            Camera(camid=3, spectra=("rgb",), location="standin-station", kind="indoor", brightness=0.9),
            Camera(camid=4, spectra=("rgb",), location="standin-park", kind="outdoor", scale=0.78)]


@functools.lru_cache(maxsize=1)  # both demo backbones pre-train on the same pool: render it once per process
def render_pool(recipe: StandInRecipe, progress: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Render the pool: images (N, H, W, 3) uint8, attribute targets name -> (N,) int64, person index (N,)."""
    from tqdm.auto import tqdm

    from workbench.data.synthetic import SyntheticConfig, make_identities, render

    config = SyntheticConfig.from_difficulty(recipe.difficulty, height=recipe.height, width=recipe.width)
    people = make_identities(recipe.pool_ids, seed=recipe.pool_seed, config=config)
    cameras = standin_cameras()
    rng = np.random.default_rng(recipe.pool_seed)
    images, person = [], []
    targets: dict[str, list[int]] = {name: [] for name in ATTRIBUTES}
    for i, ident in enumerate(tqdm(people, desc="stand-in pool", disable=not progress, leave=False)):
        for _ in range(recipe.images_per_id):
            camera = cameras[int(rng.integers(len(cameras)))]
            img, factors = render(ident, "rgb", camera=camera, rng=np.random.default_rng(rng.integers(2**63)),
                                  config=config)
            images.append(img)
            person.append(i)
            for name, value in attribute_targets(factors).items():
                targets[name].append(value)
    return (np.stack(images), {k: np.asarray(v, dtype=np.int64) for k, v in targets.items()},
            np.asarray(person))


def backbone_of(model_name: str) -> tuple[str, dict]:
    """The timm architecture and arguments of a registered workbench model's backbone (what ImageNet weights fill)."""
    from workbench.models import create_model

    model = create_model(model_name, num_classes=0)
    arch, kwargs = getattr(model, "arch", None), getattr(model, "timm_kwargs", None)
    if arch is None or kwargs is None:
        raise ValueError(f"model {model_name!r} has no timm backbone description (arch, timm_kwargs); the stand-in "
                         "pre-training supports the workbench's timm-based models (e.g. 'test_vi_resnet', "
                         "'test_mm_vit')")
    return arch, dict(kwargs)


def _json_default(value):
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def fingerprint(model_name: str, recipe: StandInRecipe) -> str:
    """SHA-1 of what determines the stand-in weights: generator code, backbone, recipe, this module's version."""
    return _fingerprint(*backbone_of(model_name), recipe)


def _fingerprint(arch: str, kwargs: dict, recipe: StandInRecipe) -> str:
    from workbench.data import synthetic_render, synthetic_world  # the people generator: world and renderer

    h = hashlib.sha1()
    for module in (synthetic_world, synthetic_render):
        h.update(Path(module.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(json.dumps({"version": STANDIN_VERSION, "arch": arch, "kwargs": kwargs,
                         "recipe": dataclasses.asdict(recipe)}, sort_keys=True, default=_json_default).encode())
    return h.hexdigest()


class _AttributeNet(nn.Module):
    """A timm backbone, a pooled feature (CLS token for ViTs, spatial mean for CNNs) and one linear head per
    attribute."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        dim = backbone.num_features
        self.heads = nn.ModuleDict({name: nn.Linear(dim, n) for name, n in ATTRIBUTES.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        f = self.backbone.forward_features(x)
        f = f.mean(dim=(2, 3)) if f.dim() == 4 else f[:, 0]  # (B, C, h, w) -> (B, C); (B, N, C) -> CLS
        return {name: head(f) for name, head in self.heads.items()}


def _to_tensor(images: np.ndarray, arch: str) -> Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W), normalised as the model family's transforms do (ImageNet
    statistics for the CNNs, 0.5 / 0.5 for the ViTs)."""
    from workbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD, VIT_MEAN, VIT_STD

    mean, std = (VIT_MEAN, VIT_STD) if arch.startswith("vit") else (IMAGENET_MEAN, IMAGENET_STD)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _accuracy(net: _AttributeNet, x: Tensor, targets: dict[str, Tensor]) -> dict[str, float]:
    net.eval()
    correct = {name: 0 for name in ATTRIBUTES}
    with torch.no_grad():
        for start in range(0, len(x), 256):
            out = net(x[start:start + 256])
            for name in ATTRIBUTES:
                correct[name] += int((out[name].argmax(1) == targets[name][start:start + 256]).sum())
    return {name: c / max(len(x), 1) for name, c in correct.items()}


def pretrain_backbone(model_name: str, recipe: StandInRecipe = StandInRecipe(), *,
                      progress: bool = True) -> tuple[dict, dict]:
    """Train the attribute network once; return (backbone state dict in timm naming, report).

    The report holds the pool size, the training time and the per-attribute accuracy on held-out pool people,
    next to the majority-class rate (what a network that learned nothing would score).
    """
    import timm
    from tqdm.auto import tqdm

    tick = time.perf_counter()
    arch, kwargs = backbone_of(model_name)
    if "img_size" in kwargs:  # ViTs: the pool's image size (position embeddings are resampled at load time)
        kwargs["img_size"] = (recipe.height, recipe.width)
    torch.manual_seed(recipe.seed)
    backbone = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="", **kwargs)
    net = _AttributeNet(backbone)
    images, targets, person = render_pool(recipe, progress)
    held = person >= recipe.pool_ids - recipe.holdout_ids
    x = _to_tensor(images, arch)
    y = {k: torch.from_numpy(v) for k, v in targets.items()}
    x_train, x_held = x[~torch.from_numpy(held)], x[torch.from_numpy(held)]
    y_train = {k: v[~torch.from_numpy(held)] for k, v in y.items()}
    y_held = {k: v[torch.from_numpy(held)] for k, v in y.items()}
    render_s = time.perf_counter() - tick

    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(len(x_train) // recipe.batch_size, 1)
    total = recipe.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=total, pct_start=0.1)
    g = torch.Generator().manual_seed(recipe.seed)
    bar = tqdm(total=total, desc=f"stand-in pre-training ({model_name})", disable=not progress, leave=False)
    losses = []
    for _ in range(recipe.epochs):
        net.train()
        order = torch.randperm(len(x_train), generator=g)
        for s in range(steps_per_epoch):
            idx = order[s * recipe.batch_size:(s + 1) * recipe.batch_size]
            batch = x_train[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5  # horizontal flip swaps left/right viewpoints
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(3), batch)
            out = net(batch)
            loss = 0.0
            for name in ATTRIBUTES:
                target = y_train[name][idx]
                if name == "viewpoint":
                    swapped = torch.where(target == 2, 3, torch.where(target == 3, 2, target))
                    target = torch.where(flip, swapped, target)
                loss = loss + F.cross_entropy(out[name], target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()) / len(ATTRIBUTES))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    accuracy = _accuracy(net, x_held, y_held)
    majority = {name: float(np.bincount(targets[name][held], minlength=n).max() / max(int(held.sum()), 1))
                for name, n in ATTRIBUTES.items()}
    report = {"model": model_name, "arch": arch, "images": int(len(x)), "train_images": int(len(x_train)),
              "holdout_people": recipe.holdout_ids, "render_s": round(render_s, 1),
              "total_s": round(time.perf_counter() - tick, 1), "steps": total,
              "first_loss": float(np.mean(losses[:10])), "last_loss": float(np.mean(losses[-10:])),
              "heldout_accuracy": accuracy, "majority_rate": majority,
              "mean_heldout_accuracy": float(np.mean(list(accuracy.values()))),
              "mean_majority_rate": float(np.mean(list(majority.values())))}
    return {k: v.detach().clone() for k, v in backbone.state_dict().items()}, report


def standin_weights(model_name: str, recipe: StandInRecipe = StandInRecipe(), *, progress: bool = True,
                    force: bool = False) -> Path:
    """The cached stand-in weights of `model_name`'s backbone (a .safetensors file in timm naming); pre-trains them
    on first use (a few minutes on a CPU, with a progress bar) and whenever the fingerprint changes.

    Args:
        model_name: a registered model with a timm backbone (the cpu-demo models `test_vi_resnet`, `test_mm_vit`).
        force: pre-train again even when a valid cached file exists.
    """
    with preserved_rng():  # issue 22: a cold build used to re-seed torch inside the run that asked for it
        path, key = _cache_entry(model_name, recipe)
        report = cached_weights(
            path, key, "the stand-in weights", lambda: pretrain_backbone(model_name, recipe, progress=progress),
            announce=f"pre-training the stand-in backbone of {model_name} on a synthetic attribute pool "
                     f"({recipe.pool_ids} people, {recipe.pool_ids * recipe.images_per_id} RGB images); "
                     f"cached as {path}", force=force)
    if report is not None:
        print(f"stand-in ready in {report['total_s']:.0f} s: held-out attribute accuracy "
              f"{report['mean_heldout_accuracy']:.3f} (majority class {report['mean_majority_rate']:.3f})")
    return path


def cached_weights(path: Path, key: str, what: str, build: Callable[[], tuple[dict, dict]], *, announce: str,
                   force: bool = False) -> dict | None:
    """Make sure `path` holds loadable weights built by `build`, one process at a time (`build_lock`).

    A valid file is kept (unless `force`); a missing or damaged one is rebuilt: `announce` is printed, `build()`
    returns (state dict, report), and the weights (with `key` as their fingerprint) and the report (`path` with a
    .json suffix) are written atomically. Returns the new report, or None when the cached file was valid.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    with build_lock(path, what):  # two processes missing the file: one builds, the other waits and reads it
        if path.exists() and not force:
            try:
                load_file(str(path))
                return None
            except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
                print(f"{what}: {path} is damaged ({exc}); building it again")
        print(announce)
        state, report = build()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"fingerprint": key})
        tmp.replace(path)
        report_path = path.with_suffix(".json")
        tmp_report = report_path.with_name(f".{report_path.name}.tmp")
        tmp_report.write_text(json.dumps(report | {"fingerprint": key}, indent=2))
        tmp_report.replace(report_path)
        return report


def _cache_entry(model_name: str, recipe: StandInRecipe) -> tuple[Path, str]:
    """(cached file, fingerprint). Named by the backbone, not the model: models on the same timm backbone (the
    visible-infrared baseline, DAKD and ICRE's `test_icre_resnet`) share one stand-in, as they would share ImageNet
    weights."""
    arch, kwargs = backbone_of(model_name)  # builds the model once
    key = _fingerprint(arch, kwargs, recipe)
    return cache_dir() / "standin" / f"{arch}-{key[:16]}.safetensors", key


def _cache_path(model_name: str, recipe: StandInRecipe) -> Path:
    return _cache_entry(model_name, recipe)[0]


def standin_report(model_name: str, recipe: StandInRecipe = StandInRecipe()) -> dict | None:
    """The report written next to the cached weights (None when they have not been made)."""
    path = _cache_path(model_name, recipe).with_suffix(".json")
    return json.loads(path.read_text()) if path.exists() else None
