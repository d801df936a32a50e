"""A second stand-in for ImageNet weights: the tiny CNN taught ImageNet features by EfficientNet-Lite0.

The plain stand-in (`workbench.pretrain`, `model.pretrained="synthetic"`) teaches the tiny cpu-demo backbone generic
attributes read from the generator. This one (`model.pretrained="synthetic-distilled"`) teaches it *ImageNet's*
features instead, on the same pool of visible images: the teacher is EfficientNet-Lite0 with its real ImageNet
weights (offline, `workbench.models.imagenet`); the student is the tiny backbone, whose spatially averaged last map
goes through one linear layer to the teacher's 1280-d average-pooled feature, standardised per dimension with the
training images' mean and standard deviation; the loss is one minus their cosine similarity [INFERRED, our choice:
feature regression through a learned linear map is the usual form of feature distillation (FitNets, Romero et al.,
ICLR 2015, regress a teacher's map through a learned regressor); the cosine makes it blind to the feature scale, and
the standardisation removes the direction every image shares (averages of ReLU6 maps are all positive: the mean
feature alone has cosine 0.8 to each image's), so the loss rewards what tells images apart]. Nothing but the pool's pixels and the teacher's features is used (no attribute,
no identity): what the student learns is what ImageNet features say about these images. Optionally
(`attribute_weight > 0`) the plain stand-in's attribute losses are added.

The teacher sees each pool image (and its mirror image, the only augmentation) at `teacher_height x teacher_width`,
bilinearly upsampled from the pool's 128x64 renders, in the TF-Lite normalisation its weights expect; the student
sees the 128x64 renders in the workbench's ImageNet normalisation, as it will in training.

Cached under `cache_dir()/standin/<arch>-distilled-<key>.safetensors` with a JSON report; the key is a fingerprint
of the generator code, `workbench.pretrain` (pool and attribute definitions), this module, the backbone, the recipe
and the teacher weights (the converted file's name: its source's SHA-256 and the mapping version). Building the cache
leaves the caller's random state untouched (`preserved_rng`); `standin_path` is the one entry point the
methods use for both stand-ins, so a cold build of either never shifts a run's seeded initialisation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench import pretrain
from workbench.utils import cache_dir, preserved_rng

DISTILL_VERSION = 1  # bump when the training loop or the teacher features change
STANDIN_SOURCES = ("synthetic", "synthetic-distilled")  # model.pretrained values that name a stand-in


@dataclass(frozen=True)
class DistillRecipe:
    """How the distilled stand-in is made.

    Attributes:
        standin: the pool (people, images, seed, size) and the optimisation (epochs, batch size, AdamW lr and weight
            decay, seed), shared with the plain stand-in so both see the same images for the same number of steps.
        teacher: named ImageNet source of the teacher (`workbench.models.imagenet.NAMED_SOURCES`).
        teacher_height, teacher_width: the teacher's input size (the renders are upsampled to it).
        standardise: distil the teacher features standardised per dimension (False: the raw features).
        attribute_weight: weight of the plain stand-in's attribute losses added to the distillation (0: none).
    """

    standin: pretrain.StandInRecipe = field(default_factory=pretrain.StandInRecipe)
    teacher: str = "imagenet-lite0"
    teacher_height: int = 256
    teacher_width: int = 128
    standardise: bool = True
    attribute_weight: float = 0.0


def teacher_key(recipe: DistillRecipe) -> str:
    """What identifies the teacher's weights: its source name and its converted cache file's name (source SHA-256
    and mapping version)."""
    from workbench.models import imagenet

    if recipe.teacher not in imagenet.NAMED_SOURCES:
        raise ValueError(f"teacher={recipe.teacher!r} is not a named ImageNet source; use one of "
                         f"{sorted(imagenet.NAMED_SOURCES)}")
    return f"{recipe.teacher}:{imagenet.lite0_cache_path().name}"


def fingerprint(arch: str, kwargs: dict, recipe: DistillRecipe) -> str:
    """SHA-1 of what determines the distilled weights (see the module docstring)."""
    from workbench.data import synthetic_render, synthetic_world

    h = hashlib.sha1()
    for path in (synthetic_world.__file__, synthetic_render.__file__, pretrain.__file__, __file__):
        h.update(Path(path).read_bytes())
    h.update(json.dumps({"version": DISTILL_VERSION, "arch": arch, "kwargs": kwargs,
                         "recipe": dataclasses.asdict(recipe), "teacher": teacher_key(recipe)},
                        sort_keys=True, default=lambda v: list(v) if isinstance(v, tuple) else str(v)).encode())
    return h.hexdigest()


@torch.no_grad()
def teacher_features(images: np.ndarray, recipe: DistillRecipe, *, progress: bool = True,
                     batch_size: int = 64) -> Tensor:
    """The teacher's average-pooled last features of each pool image and of its mirror image.

    Args:
        images: (N, H, W, 3) uint8 renders.

    Returns:
        (N, 2, 1280) float32: [:, 0] the image, [:, 1] the horizontally flipped image.
    """
    import timm
    from tqdm.auto import tqdm

    from workbench.models.imagenet import LITE0_ARCH, LITE0_MEAN_STD, NAMED_SOURCES

    teacher = timm.create_model(LITE0_ARCH, pretrained=False, num_classes=0, global_pool="")
    teacher.load_state_dict(NAMED_SOURCES[recipe.teacher][1](), strict=False)
    teacher.eval()
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in LITE0_MEAN_STD)
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="teacher features", disable=not progress, leave=False):
        x = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, size=(recipe.teacher_height, recipe.teacher_width), mode="bilinear", align_corners=False)
        x = (x - mean) / std
        both = torch.cat([x, x.flip(3)])
        f = teacher.forward_features(both).mean(dim=(2, 3))  # (2b, 1280)
        out.append(torch.stack(f.chunk(2), dim=1))
    return torch.cat(out)


class _DistillNet(nn.Module):
    """The student backbone, its spatially averaged last map, a linear map to the teacher's feature, and (optional)
    the plain stand-in's attribute heads."""

    def __init__(self, backbone: nn.Module, teacher_dim: int, attributes: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.project = nn.Linear(backbone.num_features, teacher_dim)
        self.heads = nn.ModuleDict({name: nn.Linear(backbone.num_features, n)
                                    for name, n in pretrain.ATTRIBUTES.items()}) if attributes else None

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """x (B, 3, H, W) -> projected feature (B, teacher_dim), attribute logits."""
        f = self.backbone.forward_features(x).mean(dim=(2, 3))
        heads = {name: head(f) for name, head in self.heads.items()} if self.heads is not None else {}
        return self.project(f), heads


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    return F.cosine_similarity(a, b, dim=1)


def distill_backbone(model_name: str, recipe: DistillRecipe = DistillRecipe(), *,
                     progress: bool = True) -> tuple[dict[str, Tensor], dict]:
    """Distil the teacher into `model_name`'s backbone once; return (backbone state dict in timm naming, report).

    The report gives the held-out people's mean cosine similarity between the student's projection and the teacher's
    (standardised) feature, next to that of a constant prediction (the mean training target; about 0 when
    standardised), and the times.
    Uses private generators and restores the global random state (`preserved_rng`).
    """
    import timm
    from tqdm.auto import tqdm

    with preserved_rng():
        tick = time.perf_counter()
        sr = recipe.standin
        arch, kwargs = pretrain.backbone_of(model_name)
        if "img_size" in kwargs:
            raise ValueError(f"the distilled stand-in is for CNN backbones; {model_name!r} is a ViT ({arch})")
        images, targets, person = pretrain.render_pool(sr, progress)
        teacher = teacher_features(images, recipe, progress=progress)  # (N, 2, D)
        teacher_s = time.perf_counter() - tick
        held = torch.from_numpy(person >= sr.pool_ids - sr.holdout_ids)
        x = pretrain._to_tensor(images, arch)
        y = {k: torch.from_numpy(v) for k, v in targets.items()}
        if recipe.standardise:  # statistics of the training images (both views), applied to every target
            flat = teacher[~held].reshape(-1, teacher.shape[-1])
            teacher = (teacher - flat.mean(0)) / flat.std(0).clamp_min(1e-6)
        x_train, t_train = x[~held], teacher[~held]
        y_train = {k: v[~held] for k, v in y.items()}

        torch.manual_seed(sr.seed)  # the student's initialisation (the caller's state is restored on exit)
        backbone = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="", **kwargs)
        net = _DistillNet(backbone, teacher.shape[-1], attributes=recipe.attribute_weight > 0)
        optimizer = torch.optim.AdamW(net.parameters(), lr=sr.lr, weight_decay=sr.weight_decay)
        steps_per_epoch = max(len(x_train) // sr.batch_size, 1)
        total = sr.epochs * steps_per_epoch
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=sr.lr, total_steps=total, pct_start=0.1)
        g = torch.Generator().manual_seed(sr.seed)
        bar = tqdm(total=total, desc=f"distilled stand-in ({model_name})", disable=not progress, leave=False)
        losses = []
        for _ in range(sr.epochs):
            net.train()
            order = torch.randperm(len(x_train), generator=g)
            for s in range(steps_per_epoch):
                idx = order[s * sr.batch_size:(s + 1) * sr.batch_size]
                flip = torch.rand(len(idx), generator=g) < 0.5
                batch = torch.where(flip.view(-1, 1, 1, 1), x_train[idx].flip(3), x_train[idx])
                target = torch.where(flip.view(-1, 1), t_train[idx, 1], t_train[idx, 0])
                pred, heads = net(batch)
                loss = (1 - _cosine(pred, target)).mean()
                for name, logits in heads.items():
                    label = y_train[name][idx]
                    if name == "viewpoint":  # a mirror image swaps left and right
                        label = torch.where(flip & (label == 2), 3, torch.where(flip & (label == 3), 2, label))
                    loss = loss + recipe.attribute_weight * F.cross_entropy(logits, label) / len(heads)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        bar.close()
        net.eval()
        with torch.no_grad():
            x_held = x[held]
            pred = torch.cat([net(x_held[i:i + 256])[0] for i in range(0, len(x_held), 256)])
            heldout_cos = float(_cosine(pred, teacher[held, 0]).mean())
            constant_cos = float(_cosine(t_train[:, 0].mean(0, keepdim=True).expand_as(teacher[held, 0]),
                                         teacher[held, 0]).mean())
        report = {"model": model_name, "arch": arch, "teacher": teacher_key(recipe),
                  "teacher_size": [recipe.teacher_height, recipe.teacher_width], "images": int(len(x)),
                  "train_images": int(len(x_train)), "holdout_people": sr.holdout_ids, "steps": total,
                  "teacher_s": round(teacher_s, 1), "total_s": round(time.perf_counter() - tick, 1),
                  "first_loss": float(np.mean(losses[:10])), "last_loss": float(np.mean(losses[-10:])),
                  "heldout_cosine": round(heldout_cos, 4), "constant_cosine": round(constant_cos, 4)}
        return {k: v.detach().clone() for k, v in backbone.state_dict().items()}, report


def _cache_entry(model_name: str, recipe: DistillRecipe) -> tuple[Path, str]:
    arch, kwargs = pretrain.backbone_of(model_name)
    key = fingerprint(arch, kwargs, recipe)
    return cache_dir() / "standin" / f"{arch}-distilled-{key[:16]}.safetensors", key


def distilled_weights(model_name: str, recipe: DistillRecipe = DistillRecipe(), *, progress: bool = True,
                      force: bool = False) -> Path:
    """The cached distilled stand-in of `model_name`'s backbone (a .safetensors file in timm naming); distils it on
    first use (a few minutes on a CPU) and whenever the fingerprint changes; a damaged file is rebuilt."""
    with preserved_rng():  # building the model to read its backbone draws initial weights too
        return _distilled_weights(model_name, recipe, progress, force)


def _distilled_weights(model_name: str, recipe: DistillRecipe, progress: bool, force: bool) -> Path:
    path, key = _cache_entry(model_name, recipe)
    report = pretrain.cached_weights(
        path, key, "the distilled stand-in", lambda: distill_backbone(model_name, recipe, progress=progress),
        announce=f"distilling ImageNet EfficientNet-Lite0 features into the backbone of {model_name} on the stand-in "
                 f"pool ({recipe.standin.pool_ids} people, {recipe.standin.pool_ids * recipe.standin.images_per_id} "
                 f"RGB images); cached as {path}", force=force)
    if report is not None:
        print(f"distilled stand-in ready in {report['total_s']:.0f} s: held-out cosine to the teacher "
              f"{report['heldout_cosine']:.3f} (constant prediction {report['constant_cosine']:.3f})")
    return path


def distilled_report(model_name: str, recipe: DistillRecipe = DistillRecipe()) -> dict | None:
    """The report written next to the cached distilled weights (None when they have not been made)."""
    with preserved_rng():
        path = _cache_entry(model_name, recipe)[0].with_suffix(".json")
    return json.loads(path.read_text()) if path.exists() else None


def standin_path(source: str, model_name: str, recipe: pretrain.StandInRecipe | DistillRecipe | None = None, *,
                 progress: bool = True) -> Path:
    """The cached weights of a stand-in source for `model_name`, built on first use without touching the caller's
    random state.

    Args:
        source: "synthetic" (attribute stand-in, `workbench.pretrain`) or "synthetic-distilled" (this module).
        model_name: a registered model with a timm CNN backbone (e.g. "test_vi_resnet").
        recipe: the source's recipe (`pretrain.StandInRecipe` / `DistillRecipe`); None = its default.

    Raises:
        ValueError: an unknown source, or a recipe of the other source.
    """
    if source not in STANDIN_SOURCES:
        raise ValueError(f"unknown stand-in {source!r}; model.pretrained stand-ins are {STANDIN_SOURCES}")
    kind = pretrain.StandInRecipe if source == "synthetic" else DistillRecipe
    if recipe is not None and not isinstance(recipe, kind):
        raise ValueError(f"the {source!r} stand-in takes a {kind.__name__}, got {type(recipe).__name__}")
    with preserved_rng():
        if source == "synthetic":
            return pretrain.standin_weights(model_name, recipe or pretrain.StandInRecipe(), progress=progress)
        return distilled_weights(model_name, recipe or DistillRecipe(), progress=progress)
