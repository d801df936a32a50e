"""SD2-ReID instruments: semantic / style / CLS codes per modality and their disentanglement, robustness curves under
test-time corruption, and the HSLM masks drawn over the aligned images.

    codes = sd2.extract_codes(model, samples, cfg)                  # one row per (sample, modality)
    views = {"baseline CLS": base.view("cls"), "SD2 semantic": codes.view("sem"), "SD2 style": codes.view("sty")}
    table = sd2.code_reports(views)                                 # probes, silhouettes, ... per code
    sd2.code_maps(views).plot(table)                                # one UMAP per code; by modality / by identity
    curve = sd2.robustness_curve(model, cfg, dataset, "occlusion", [0, 0.2, 0.4])
    sd2.plot_robustness({("SD2-ReID", "occlusion"): curve, ...})
    masks = sd2.hslm_masks(model, samples, cfg); sd2.plot_hslm_masks(masks)

Robustness: the test protocol of the dataset (RGBNT201-style for the synthetic preset) evaluated with every query and
gallery image corrupted by `workbench.data.occlusion` (seeded, the same corruption for every model compared), so
the SD2-ReID claims of robustness to occlusion and to style change become mAP-against-level curves ("night" darkens
the visible images alone). `scores_by_factor` splits a paired comparison's queries by a ground-truth factor of the
synthetic data (e.g. the vehicles' time of day), so real nightfall in the renders is measured too. The maps are
`workbench.viz.embedding`'s (`umap_2d`, `plot_modality_maps`), which take plain arrays and so draw any
multi-modal dataset's codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from workbench.config import Config
from workbench.data.occlusion import night, occlude, style_shift
from workbench.evaluate import evaluate_splits, extract_features, protocol_spec
from workbench.methods import Method, get_method
from workbench.metrics.disentanglement import disentanglement_report
from workbench.models.output import ReIDOutput
from workbench.utils import to_numpy, unwrap_model
from workbench.viz.data import to_image
from workbench.viz.embedding import ModalityMaps, umap_2d

# ----------------------------------------------------------------------------------------------------------------
# Robustness


class PerturbedMethod(Method):
    """A method whose eval forward first corrupts the images (`perturb(images) -> images`); training untouched."""

    def __init__(self, method: Method, perturb: Callable[[dict[str, Tensor]], dict[str, Tensor]]) -> None:
        self.method, self.perturb = method, perturb
        self.name = method.name

    def forward_eval(self, model: nn.Module, images: dict[str, Tensor], modality: str | None,
                     camids: Tensor | None = None) -> ReIDOutput:
        return self.method.forward_eval(model, self.perturb(images), modality, camids)

    def retrieval_branches(self, out: ReIDOutput) -> dict[str, Tensor]:
        return self.method.retrieval_branches(out)


CORRUPTIONS = ("occlusion", "style", "night")


def corruption(kind: str, level: float, *, seed: int = 0, modality: str = "tir", shift: str = "mixed"
               ) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    """A seeded corruption of image batches: kind "occlusion" (area fraction `level`), "style" (shift of
    `modality` with strength `level`, `workbench.data.occlusion.style_shift` kind `shift`) or "night" (the RGB images
    darkened and noisier with strength `level`, NIR and TIR untouched: `workbench.data.occlusion.night`)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind must be one of {CORRUPTIONS}, got {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    if kind == "occlusion":
        return lambda images: occlude(images, level, gen)
    if kind == "night":
        return lambda images: night(images, level, gen)
    return lambda images: style_shift(images, modality, level, shift, gen)


def robustness_curve(model: nn.Module, cfg: Config, dataset, kind: str, levels: Sequence[float], *,
                     method: Method | None = None, seed: int = 0, modality: str = "tir", shift: str = "mixed",
                     split_options: dict | None = None) -> pd.DataFrame:
    """Test-protocol scores of `model` at each corruption level (one row per level: rank1, mAP, mINP).

    Args:
        model: a trained multi-modal model (eval mode is set by the feature extraction).
        cfg: its configuration (image size, dataset layout, method).
        dataset: the loaded `ReIDDataset` (its `eval_splits`).
        kind: "occlusion", "style" or "night".
        levels: occluded area fractions, style-shift strengths, or night strengths (0..1).
        method: the model's method (default `get_method(cfg.run.method)`).
        seed: corruption seed (use the same one for every model compared).
        modality, shift: the style-shifted modality and the shift kind.
    """
    base = method or get_method(cfg.run.method)
    spec = protocol_spec(cfg)
    splits = dataset.eval_splits(**(split_options or {}))
    rows = {}
    for level in levels:
        wrapped = PerturbedMethod(base, corruption(kind, float(level), seed=seed, modality=modality, shift=shift))
        result = evaluate_splits(model, splits, cfg, spec=spec, method=wrapped, cache=False, progress=False)
        rows[float(level)] = {k: result.mean[k] for k in ("rank1", "mAP", "mINP")}
    frame = pd.DataFrame(rows).T
    frame.index.name = {"occlusion": "occluded area", "night": "RGB night strength"}.get(kind,
                                                                                       f"{modality} {shift} shift")
    return frame


def sample_factor(evaluation, samples: Sequence, factor: str) -> pd.Series:
    """A ground-truth factor (e.g. the synthetic vehicles' "time_of_day") of every sample a stored evaluation holds,
    indexed by its sample row (`Evaluation.samples["row"]`, the `sample` column of `per_query` tables and of
    `dashboard.compare(...).per_query`), found by its file paths among `samples`.

    Args:
        evaluation: a stored `workbench.evaluate.Evaluation` (e.g. `run.test`).
        samples: the loaded dataset's evaluation samples (e.g. `list(ds.query) + list(ds.gallery)`); synthetic
            samples carry their factors (`Sample.factors`).
        factor: a key of `Sample.factors`.

    Raises:
        ValueError: a stored sample is not among `samples`, or has no `factor` (naming it and the factors it has).
    """
    import json

    lookup = {tuple(sorted(s.paths.items())): s for s in samples}
    values = {}
    for row, paths in zip(evaluation.samples["row"], evaluation.samples["paths"]):
        found = lookup.get(tuple(sorted(json.loads(paths).items())))
        if found is None:
            raise ValueError(f"stored sample row {row} ({paths}) is not among the {len(samples)} samples given; pass "
                             "the evaluated dataset's query and gallery samples")
        if not found.factors or factor not in found.factors:
            raise ValueError(f"sample row {row} has no factor {factor!r}; its factors are "
                             f"{sorted(found.factors or {})} (only synthetic data carries factors)")
        values[int(row)] = found.factors[factor]
    return pd.Series(values, name=factor).rename_axis("sample")


def plot_robustness(curves: Mapping[tuple[str, str], pd.DataFrame], *, metric: str = "mAP", axes=None):
    """One panel per corruption kind ("occlusion", "style", "night"), one line per model: `metric` against the
    corruption level (`robustness_curve` frames keyed by (model name, kind)). Returns the Axes."""
    kinds = list(dict.fromkeys(kind for _, kind in curves))
    if axes is None:
        _, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.2), sharey=True, squeeze=False)
        axes = axes[0]
    xlabels = {"occlusion": "occluded share of the image", "style": "TIR style-shift strength",
               "night": "RGB night strength (1: a tenth of the light)"}
    for ax, kind in zip(axes, kinds):
        for (name, k), frame in curves.items():
            if k == kind:
                frame[metric].plot(ax=ax, marker="o", label=name)
        ax.set(xlabel=xlabels.get(kind, kind), ylabel=metric, title=f"test-time {kind}")
        ax.legend()
    return axes


# ----------------------------------------------------------------------------------------------------------------
# Codes


class _CodesMethod(Method):
    """Eval forward that also runs SD2-ReID's style branch and exposes every per-modality code as a branch."""

    def forward_eval(self, model: nn.Module, images: dict[str, Tensor], modality: str | None,
                     camids: Tensor | None = None) -> ReIDOutput:
        from workbench.models.sd2reid import SD2ReIDNet

        if isinstance(unwrap_model(model), SD2ReIDNet):
            return model(images, camids=camids, with_style=True)
        return model(images, camids=camids)

    def retrieval_branches(self, out: ReIDOutput) -> dict[str, Tensor]:
        return {k: v for k, v in out.parts.items()
                if k.split("_")[0] in ("cls", "sem", "sty") and v.dim() == 2 and "logits" not in k
                and not k.startswith("sty_pred")}


@dataclass
class Codes:
    """Per-modality codes of N samples, stacked modality-major: row `i * N + j` = modality i of sample j.

    Attributes:
        cls: (M*N, D) CLS features; sem: (M*N, D) semantic codes or None; sty: (M*N, D) style codes or None.
        pids: (M*N,) identities; modality: (M*N,) modality names; samples: (M*N,) the sample j of each row.
    """

    cls: np.ndarray
    sem: np.ndarray | None
    sty: np.ndarray | None
    pids: np.ndarray
    modality: np.ndarray
    samples: np.ndarray

    def view(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(feats, pids, modality, samples) of one code: kind "cls", "sem" or "sty" (`code_reports`, `code_maps`)."""
        if kind not in ("cls", "sem", "sty"):
            raise ValueError(f"kind must be 'cls', 'sem' or 'sty', got {kind!r}")
        feats = getattr(self, kind)
        if feats is None:
            raise ValueError(f"these codes have no {kind!r} features (not an SD2-ReID model); use kind='cls'")
        return feats, self.pids, self.modality, self.samples


def extract_codes(model: nn.Module, samples: Sequence, cfg: Config,
                  modalities: Sequence[str] = ("rgb", "nir", "tir")) -> Codes:
    """CLS features, and for SD2-ReID the semantic and style codes, of every modality of `samples` (test transform)."""
    feats = extract_features(model, samples, cfg, method=_CodesMethod(), progress=False)
    b = feats.branches

    def stack(prefix: str) -> np.ndarray | None:
        keys = [f"{prefix}_{m}" for m in modalities]
        return np.concatenate([b[k] for k in keys]) if all(k in b for k in keys) else None

    cls = stack("cls")
    if cls is None:
        raise ValueError(f"the model exposes no per-modality CLS features for {list(modalities)}; got {sorted(b)}")
    n, m = len(samples), len(modalities)
    return Codes(cls=cls, sem=stack("sem"), sty=stack("sty"), pids=np.tile(feats.pids, m),
                 modality=np.repeat(np.asarray(modalities), n), samples=np.tile(np.arange(n), m))


def code_reports(codes: Mapping[str, tuple[np.ndarray, ...]], *, seed: int = 0) -> pd.DataFrame:
    """Disentanglement scores (`workbench.metrics.disentanglement`) of named codes, one row each.

    Args:
        codes: name -> (feats (N, D), pids (N,), modality (N,)[, samples (N,), not used here]), e.g.
            `Codes.view`.
    """
    rows = {name: disentanglement_report(v[0], v[1], v[2], seed=seed).as_dict() for name, v in codes.items()}
    return pd.DataFrame(rows).T


def code_maps(codes: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], *,
              names: Sequence[str] | None = None, seed: int = 0) -> ModalityMaps:
    """A seeded UMAP (`viz.embedding.umap_2d`) of each named code of the same points, computed once; draw it with
    `.plot(code_reports(...))` (`viz.embedding.plot_modality_maps`: a row by modality, a row following a few
    identities with each sample's modality points joined).

    Args:
        codes: name -> (feats (N, D), pids (N,), modality (N,), samples (N,)), e.g. `Codes.view`; the drawn codes
            must label the same N points alike (extract them from the same samples).
        names: which codes to map, in order (default all).
    """
    names = list(codes) if names is None else list(names)
    unknown = [n for n in names if n not in codes]
    if unknown or not names:
        raise ValueError(f"names must name at least one of the codes {list(codes)}; got {names}")
    labels = None
    for name in names:
        if len(codes[name]) != 4:
            raise ValueError(f"codes[{name!r}] must be (feats, pids, modality, samples), e.g. Codes.view(...); "
                             f"got {len(codes[name])} items")
        these = tuple(np.asarray(a) for a in codes[name][1:])
        if labels is not None and not all(np.array_equal(a, b) for a, b in zip(labels, these)):
            raise ValueError(f"codes[{name!r}] labels other points than codes[{names[0]!r}]; extract both codes "
                             "from the same samples, in the same order")
        labels = these
    coords = {name: umap_2d(codes[name][0], seed=seed) for name in names}
    return ModalityMaps(coords, *labels)


# ----------------------------------------------------------------------------------------------------------------
# HSLM masks over the aligned images


@dataclass
class HSLMMasks:
    """What HSLM hides on a few test triplets.

    Attributes:
        images: modality -> (B, 3, H, W) test-transformed images.
        attention: (B, M, N) CLS-to-patch attention of the last block (head mean).
        masks: "attention" (sampled in proportion to attention) and "random" -> (B, M, N) bool, True = hidden.
        grid: the (h, w) patch grid. mean, std: the normalisation, to draw the images.
        modalities: the M modality names, in order.
    """

    images: dict[str, Tensor]
    attention: Tensor
    masks: dict[str, Tensor]
    grid: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    modalities: tuple[str, ...]

    def attention_hidden(self) -> pd.Series:
        """The share of the attention mass each mask hides (mean over images and modalities)."""
        att = self.attention
        return pd.Series({k: float((att * v).sum(-1).div(att.sum(-1)).mean()) for k, v in self.masks.items()},
                         name="attention mass hidden")


@torch.no_grad()
def hslm_masks(model: nn.Module, samples: Sequence, cfg: Config, *, ratio: float = 0.3, seed: int = 0,
               modalities: Sequence[str] = ("rgb", "nir", "tir")) -> HSLMMasks:
    """The trained network's last-block attention on `samples` (aligned triplets, test transform) and the masks
    HSLM draws from it at `ratio` (one mask shared by the pixel-aligned modalities), with a random mask of the same
    ratio for comparison; both from one generator seeded with `seed` (attention-guided drawn first)."""
    from workbench.data import torch_datasets
    from workbench.features import test_transform
    from workbench.models.sd2reid import sample_patch_mask

    tf = test_transform(cfg)
    shown = torch_datasets.ImageDataset(list(samples), tf)
    batch = torch_datasets.collate([shown[i] for i in range(len(samples))])
    images = batch["images"]
    att = model(images, batch["camid"], with_attention=True, with_style=False).attn
    gen = torch.Generator().manual_seed(seed)
    masks = {"attention": sample_patch_mask(att, ratio, "attention", shared=True, generator=gen),
             "random": sample_patch_mask(att, ratio, "random", shared=True, generator=gen)}
    return HSLMMasks(images, att, masks, tuple(unwrap_model(model).backbone.grid_size),
                     tuple(tf.mean.flatten().tolist()), tuple(tf.std.flatten().tolist()), tuple(modalities))


def plot_hslm_masks(masks: HSLMMasks, *, axes=None):
    """One row per sample; per modality, the attention heat map, the attention-guided mask and the random mask.
    Returns the Axes (B, 3 M)."""
    mods = masks.modalities
    b = len(masks.attention)
    if axes is None:
        _, axes = plt.subplots(b, 3 * len(mods), figsize=(12, 2.4 * b), squeeze=False)
    for r in range(b):
        for c, m in enumerate(mods):
            image = masks.images[m][r]
            attention_overlay(image, masks.attention[r, c], masks.grid, ax=axes[r, c], title=f"{m.upper()} attn",
                              mean=masks.mean, std=masks.std)
            for j, kind in enumerate(("attention", "random")):
                mask_overlay(image, masks.masks[kind][r, c], masks.grid, ax=axes[r, (j + 1) * len(mods) + c],
                             title=f"{m.upper()} {'guided' if kind == 'attention' else kind}", mean=masks.mean,
                             std=masks.std)
    return axes


def mask_overlay(image: Tensor, mask: Tensor, grid: tuple[int, int], *, ax=None, title: str = "",
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5)):
    """Draw a normalised image (3, H, W) with its masked patches (N,) bool on a (h, w) grid darkened. Returns the
    Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6, 3))
    img = to_image(image, mean, std)
    h, w = grid
    ph, pw = img.shape[0] / h, img.shape[1] / w
    ax.imshow(img)
    for idx in np.flatnonzero(to_numpy(mask)):
        r, c = divmod(int(idx), w)
        ax.add_patch(plt.Rectangle((c * pw - 0.5, r * ph - 0.5), pw, ph, color="k", alpha=0.55, lw=0))
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)
    return ax


def attention_overlay(image: Tensor, attn: Tensor, grid: tuple[int, int], *, ax=None, title: str = "",
                      mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5)):
    """Draw a normalised image (3, H, W) with its CLS-to-patch attention (N,) on a (h, w) grid as a heat map.
    Returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6, 3))
    img = to_image(image, mean, std)
    heat = to_numpy(attn).astype(np.float32).reshape(grid)
    ax.imshow(img)
    ax.imshow(heat, cmap="inferno", alpha=0.55, extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5),
              interpolation="nearest")
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)
    return ax
