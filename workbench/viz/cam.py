"""Similarity Grad-CAM: which pixels make a ReID embedding match another one.

ReID models have no class to explain: retrieval ranks by the similarity of two embeddings. Following the
"similarity to concept" target of pytorch-grad-cam [CODE: jacobgil/pytorch-grad-cam,
tutorials/Pixel Attribution for embeddings.ipynb, `SimilarityToConceptTarget`], the target here is the cosine
similarity between the explained image's embedding and a fixed reference embedding:

* query side: what in the query explains its match with one gallery image (reference = the gallery embedding);
* gallery side: what in the gallery image explains the match (reference = the query embedding);
* contrastive: cos(query, true match) - cos(query, top false match), what pulls the query to the right identity
  rather than to the impostor [INFERRED: the contrast of two similarity targets; no framework of the workbench
  defines it].

Target layers: the visible-infrared CNNs take a named stage (`layer4` by default; a modality-specific stem needs
the modality). The ViTs take `norm1` of the last block of the modality's branch, as pytorch-grad-cam's ViT guide
recommends [DOC: jacobgil.github.io/pytorch-gradcam-book, "How does it work with Vision Transformers"]: the last
block's output feeds the CLS token only, so its patch tokens get no gradient. Tokens are reshaped to the patch grid
(non-square grids such as 16x8 at 256x128, overlapping patches such as TransReID's stride 12: 21x10) by
`TokenGridReshape`. Multi-modal triplets get one map per modality: the other modalities are held fixed.

Methods: Grad-CAM (default; channel weights = spatially averaged gradients, so it is *not* spatially faithful by
construction, Draelos & Carin 2020), HiResCAM (gradient x activation, element-wise: zero wherever the embedding
does not depend on a location), Grad-CAM++, and the gradient-free ScoreCAM (target-dependent, one forward per
channel) and EigenCAM (first principal component of the activations; ignores the target).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.features import EvalForward
from workbench.models.output import ReIDOutput
from workbench.utils import unwrap_model

CAM_METHODS = ("gradcam", "hirescam", "gradcam++", "scorecam", "eigencam")
GRADIENT_FREE = ("scorecam", "eigencam")
VI_MODALITY_INDEX = {"rgb": 0, "ir": 1}


def _cam_class(name: str):
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, ScoreCAM

    classes = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM,
               "eigencam": EigenCAM}
    if name not in classes:
        raise ValueError(f"cam_method must be one of {CAM_METHODS}, got {name!r}")
    return classes[name]


# ----------------------------------------------------------------------------------------------------------------
# Targets

class SimilarityTarget:
    """Cosine similarity of an embedding to a fixed reference embedding (the CAM target).

    Args:
        reference: (D,) or (1, D) embedding to compare with (not necessarily normalised).

    Call: `target(output)` with output (D,) (pytorch-grad-cam calls it per batch row) or (B, D) -> scalar / (B,).
    """

    def __init__(self, reference: Tensor) -> None:
        reference = torch.as_tensor(reference).detach().float()
        if reference.dim() == 2 and reference.shape[0] == 1:
            reference = reference[0]
        if reference.dim() != 1:
            raise ValueError(f"reference must be one (D,) embedding, got shape {tuple(reference.shape)}")
        self.reference = F.normalize(reference, dim=0)

    def __call__(self, output: Tensor) -> Tensor:
        ref = self.reference.to(output.device)
        if output.shape[-1] != ref.shape[0]:
            raise ValueError(f"embedding has {output.shape[-1]} dimensions, the reference {ref.shape[0]}; compare "
                             "embeddings of the same model and branch")
        return F.normalize(output.float(), dim=-1) @ ref


class ContrastiveSimilarityTarget:
    """cos(output, positive) - cos(output, negative): what pulls an image to its true match rather than to an
    impostor (e.g. the top-ranked false match)."""

    def __init__(self, positive: Tensor, negative: Tensor) -> None:
        self.positive = SimilarityTarget(positive)
        self.negative = SimilarityTarget(negative)

    def __call__(self, output: Tensor) -> Tensor:
        return self.positive(output) - self.negative(output)


# ----------------------------------------------------------------------------------------------------------------
# The model seen by pytorch-grad-cam: one image tensor in, one embedding out

def _default_forward() -> EvalForward:
    from workbench.methods.base import Method

    return Method()


class EmbeddingModel(nn.Module):
    """A ReID model as `x (B, 3, H, W) -> retrieval embedding (B, D)`, the interface pytorch-grad-cam needs.

    Args:
        model: the ReID model.
        modality: which input `x` is: "rgb" / "ir" for visible-infrared models, one of the model's modalities for
            multi-modal ones, None for a plain model called as `model(x)`.
        method: the eval forward of the run's method (`workbench.methods.get_method(cfg.run.method)`); default the
            base method's forward (modality index for VI CNNs, a modality dict for multi-modal ViTs).
        context: for multi-modal models, the other modalities' images {m: (1, 3, H, W)}, held fixed (broadcast to
            the batch, so ScoreCAM's masked batches work).
        camids: (1,) camera id for models with a camera embedding, or None.
    """

    def __init__(self, model: nn.Module, modality: str | None = None, method: EvalForward | None = None,
                 context: Mapping[str, Tensor] | None = None, camids: Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.modality = modality
        self.method = method
        self.context = dict(context or {})
        self.camids = camids

    def forward(self, x: Tensor) -> Tensor:
        if self.modality is None and self.method is None:
            out = self.model(x)
        else:
            method = self.method or _default_forward()
            b = x.shape[0]
            cams = None if self.camids is None else self.camids.to(x.device).expand(b)
            if self.context:  # multi-modal: replace one modality, keep the others
                images = {m: (x if m == self.modality else t.to(x.device).expand(b, -1, -1, -1))
                          for m, t in self.context.items()}
                images.setdefault(self.modality, x)
                out = method.forward_eval(self.model, images, None, cams)
            else:
                vi = self.modality if self.modality in VI_MODALITY_INDEX else None
                out = method.forward_eval(self.model, {self.modality: x}, vi, cams)
        feats = out.feats if isinstance(out, ReIDOutput) else out
        if not isinstance(feats, Tensor) or feats.dim() != 2:
            raise ValueError("the model must return a ReIDOutput or a (B, D) tensor; got "
                             f"{type(feats).__name__} {getattr(feats, 'shape', '')}")
        return feats


# ----------------------------------------------------------------------------------------------------------------
# Target layers and the ViT reshape transform

class TokenGridReshape:
    """ViT tokens (B, prefix + h*w, D) -> channel maps (B, D, h, w) for a row-major patch grid (timm's and
    TransReID's `flatten(2).transpose(1, 2)` order), and back.

    Args:
        grid: (h, w) patch grid: 16x8 for ViT-B/16 at 256x128, 21x10 with TransReID's overlapping stride 12.
        prefix: leading non-patch tokens (1 CLS token).
        chunk: (index, count) when the hooked layer runs on a batch-concatenation of `count` modalities (shared
            blocks of `MultiModalViT`): keep the `index`-th of `count` equal slices.
    """

    def __init__(self, grid: tuple[int, int], prefix: int = 1, chunk: tuple[int, int] | None = None) -> None:
        self.grid = (int(grid[0]), int(grid[1]))
        if min(self.grid) < 1 or prefix < 0:
            raise ValueError(f"grid must be positive (h, w) and prefix >= 0, got {grid}, {prefix}")
        self.prefix = prefix
        self.chunk = chunk

    def __call__(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 3:
            raise ValueError(f"tokens must be (B, T, D), got shape {tuple(tokens.shape)}")
        if self.chunk is not None:
            index, count = self.chunk
            b = tokens.shape[0] // count
            tokens = tokens[index * b:(index + 1) * b]
        h, w = self.grid
        if tokens.shape[1] != self.prefix + h * w:
            raise ValueError(f"got {tokens.shape[1]} tokens, expected {self.prefix} + {h}x{w}; pass the patch grid "
                             "of the model at this image size (MultiModalViT.grid_size)")
        patches = tokens[:, self.prefix:]  # (B, h*w, D)
        return patches.reshape(tokens.shape[0], h, w, tokens.shape[2]).permute(0, 3, 1, 2)  # (B, D, h, w)

    def inverse(self, maps: Tensor, prefix_tokens: Tensor | None = None) -> Tensor:
        """(B, D, h, w) -> (B, prefix + h*w, D); the prefix tokens are zeros unless given (B, prefix, D)."""
        b, d = maps.shape[:2]
        patches = maps.flatten(2).transpose(1, 2)
        if prefix_tokens is None:
            prefix_tokens = maps.new_zeros(b, self.prefix, d)
        return torch.cat([prefix_tokens, patches], dim=1)


def cnn_target_layer(model: nn.Module, stage: str = "layer4", modality: str | None = None) -> nn.Module:
    """A named stage of a `VIReIDNet` ("stem", "layer1".."layer4"); modality-specific stages need the modality."""
    model = unwrap_model(model)
    shared = getattr(model, "shared", None)
    if shared is not None and stage in shared:
        return shared[stage]
    specific = getattr(model, "specific", None)
    if specific is not None and len(specific) and stage in specific[0]:
        if modality not in VI_MODALITY_INDEX:
            raise ValueError(f"stage {stage!r} has one copy per modality; pass modality='rgb' or 'ir'")
        return specific[VI_MODALITY_INDEX[modality]][stage]
    raise ValueError(f"model has no stage {stage!r}; VIReIDNet stages are stem, layer1..layer4")


def vit_target_layer(model: nn.Module, modality: str) -> tuple[nn.Module, TokenGridReshape]:
    """`norm1` of the last block that `modality` runs through in a `MultiModalViT`, and its reshape transform."""
    model = unwrap_model(model)
    if modality not in model.modalities:
        raise ValueError(f"modality must be one of the model's {model.modalities}, got {modality!r}")
    i = model.modalities.index(modality)
    if len(model.branches[i]):
        return model.branches[i][-1].norm1, TokenGridReshape(model.grid_size)
    # one fully shared ViT: the last block runs on all modalities concatenated along the batch
    return model.shared_blocks[-1].norm1, TokenGridReshape(model.grid_size, chunk=(i, len(model.modalities)))


def default_target(model: nn.Module, modality: str | None, stage: str = "layer4"
                   ) -> tuple[list[nn.Module], Callable | None]:
    """Target layers and reshape transform for the workbench's model families (CNN stage or ViT block)."""
    base = unwrap_model(model)
    if hasattr(base, "grid_size") and hasattr(base, "branches"):
        layer, reshape = vit_target_layer(base, modality)
        return [layer], reshape
    if hasattr(base, "shared"):
        return [cnn_target_layer(base, stage, modality)], None
    raise ValueError(f"no default CAM target for {type(base).__name__}; pass target_layers=[module] (and "
                     "reshape_transform= for token outputs)")


# ----------------------------------------------------------------------------------------------------------------
# Computing maps

Images = Mapping[str, Tensor]  # {modality: (3, H, W)} for one sample: one key (VI) or one per modality (triplets)


def _check_images(images: Images, name: str) -> dict[str, Tensor]:
    if not isinstance(images, Mapping) or not images:
        raise ValueError(f"{name} must be a dict {{modality: (3, H, W) tensor}}, got {type(images).__name__}")
    for m, x in images.items():
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[0] != 3:
            raise ValueError(f"{name}[{m!r}] must be a (3, H, W) tensor, got {getattr(x, 'shape', type(x))}")
    return dict(images)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _single(images: Images) -> tuple[str | None, Tensor]:
    m, x = next(iter(images.items()))
    return m, x


def _context(model: nn.Module, images: Images, device: torch.device, plain: bool) -> dict[str, Tensor] | None:
    """The fixed modalities of a multi-modal sample (a model with `modalities`, or several images), else None."""
    if plain:
        return None
    if len(images) > 1 or hasattr(unwrap_model(model), "modalities"):
        return {k: v[None].to(device) for k, v in images.items()}
    return None


@torch.no_grad()
def embed(model: nn.Module, images: Images, *, method: EvalForward | None = None, camid: int | None = None,
          plain: bool = False) -> Tensor:
    """Retrieval embedding (D,) of one sample (dict of its modalities' (3, H, W) tensors).

    Args:
        plain: call `model(x)` directly (a model taking one image tensor; `images` has one entry).
    """
    images = _check_images(images, "images")
    device = _device(model)
    was = model.training
    model.eval()
    cams = None if camid is None else torch.tensor([camid], device=device)
    m, x = _single(images)
    context = _context(model, images, device, plain)
    wrapper = EmbeddingModel(model, None if plain else m, method, context=context, camids=cams)
    out = wrapper(x[None].to(device))[0]
    model.train(was)
    return out


def compute_cam(model: nn.Module, images: Images, target: Callable[[Tensor], Tensor], *,
                method: EvalForward | None = None, cam_method: str = "gradcam", camid: int | None = None,
                stage: str = "layer4", target_layers: Sequence[nn.Module] | None = None,
                reshape_transform: Callable | None = None, plain: bool = False,
                scorecam_batch: int = 32) -> dict[str, np.ndarray]:
    """CAM of one sample for `target` (e.g. `SimilarityTarget(gallery_embedding)`), one map per modality.

    Args:
        model: the ReID model (any mode; it is in eval mode during the CAM and restored afterwards).
        images: {modality: (3, H, W)} of one sample (test-transformed).
        target: callable on the (D,) embedding, returning the scalar to explain.
        method: the run's eval forward (default: the base method's).
        cam_method: one of `CAM_METHODS`.
        camid: the sample's camera (models with a camera embedding).
        stage: CNN stage for the default target layer.
        target_layers, reshape_transform: override the default target (any model family).
        plain: the model takes one image tensor (`model(x)`); `images` then has one entry.

    Returns:
        {modality: (H, W) float32 map in [0, 1]} (pytorch-grad-cam normalises each map by its maximum; an
        all-zero map stays zero).
    """
    images = _check_images(images, "images")
    cls = _cam_class(cam_method)
    device = _device(model)
    was = model.training
    cams_t = None if camid is None else torch.tensor([camid], device=device)
    context = _context(model, images, device, plain)
    maps = {}
    try:
        for m, x in images.items():
            wrapper = EmbeddingModel(model, None if plain else m, method, context=context, camids=cams_t)
            if target_layers is None:
                layers, reshape = default_target(model, m, stage)
            else:
                layers, reshape = list(target_layers), reshape_transform
            cam = cls(model=wrapper, target_layers=layers, reshape_transform=reshape)
            if cam_method == "scorecam":
                cam.batch_size = scorecam_batch
            try:
                quiet = contextlib.redirect_stderr(io.StringIO()) if cam_method == "scorecam" else \
                    contextlib.nullcontext()  # ScoreCAM draws a progress bar per image
                with torch.enable_grad(), quiet:
                    grayscale = cam(input_tensor=x[None].to(device), targets=[target])
            finally:
                cam.activations_and_grads.release()  # hooks always removed (BaseCAM.__exit__ swallows IndexError)
            maps[m] = np.nan_to_num(grayscale[0].astype(np.float32))
    finally:
        model.train(was)
    return maps


@dataclass
class PairCAM:
    """CAMs of one query-gallery pair in both directions.

    Attributes:
        query_maps: {modality: (H, W)}: what in the query explains the similarity to the gallery image.
        gallery_maps: {modality: (H, W)}: what in the gallery image explains it (empty if not computed).
        similarity: cosine similarity of the two embeddings.
        query_images, gallery_images: the inputs, {modality: (3, H, W)} (for drawing).
        label: a short title (e.g. "rank 1, true match").
    """

    query_maps: dict[str, np.ndarray]
    gallery_maps: dict[str, np.ndarray]
    similarity: float
    query_images: dict[str, Tensor] = field(repr=False, default_factory=dict)
    gallery_images: dict[str, Tensor] = field(repr=False, default_factory=dict)
    label: str = ""


def pair_cams(model: nn.Module, query: Images, gallery: Images, *, both: bool = True, query_camid: int | None = None,
              gallery_camid: int | None = None, label: str = "", **kwargs) -> PairCAM:
    """Similarity CAMs of a query against one gallery sample: on the query (target: the gallery embedding) and,
    with `both`, on the gallery image (target: the query embedding). `kwargs` go to `compute_cam`."""
    method, plain = kwargs.get("method"), kwargs.get("plain", False)
    q_emb = embed(model, query, method=method, camid=query_camid, plain=plain)
    g_emb = embed(model, gallery, method=method, camid=gallery_camid, plain=plain)
    sim = float(F.cosine_similarity(q_emb[None], g_emb[None])[0])
    q_maps = compute_cam(model, query, SimilarityTarget(g_emb), camid=query_camid, **kwargs)
    g_maps = compute_cam(model, gallery, SimilarityTarget(q_emb), camid=gallery_camid, **kwargs) if both else {}
    return PairCAM(q_maps, g_maps, sim, dict(query), dict(gallery), label)


def query_cams(model: nn.Module, query: Images, galleries: Sequence[Images], **kwargs) -> list[PairCAM]:
    """`pair_cams` of one query against several gallery samples (e.g. its top five)."""
    return [pair_cams(model, query, g, **kwargs) for g in galleries]


def contrastive_cam(model: nn.Module, query: Images, true_match: Images, false_match: Images, *,
                    query_camid: int | None = None, **kwargs) -> dict[str, np.ndarray]:
    """CAM on the query of cos(query, true match) - cos(query, false match), one map per modality."""
    method, plain = kwargs.get("method"), kwargs.get("plain", False)
    pos = embed(model, true_match, method=method, plain=plain)
    neg = embed(model, false_match, method=method, plain=plain)
    return compute_cam(model, query, ContrastiveSimilarityTarget(pos, neg), camid=query_camid, **kwargs)


@dataclass(frozen=True)
class DeletionResult:
    """Similarity after deleting the top-CAM pixels vs as many random pixels (Samek et al. 2017's deletion test,
    one step). Drops are `similarity - similarity after deletion`; a CAM that finds what matters has
    `cam_drop > random_drop`."""

    similarity: float
    cam_drop: float
    random_drop: float
    fraction: float


@torch.no_grad()
def deletion_check(model: nn.Module, images: Images, reference: Tensor, cam: np.ndarray, *, fraction: float = 0.1,
                   fill: float = 0.0, random_draws: int = 5, seed: int = 0, method: EvalForward | None = None,
                   plain: bool = False) -> DeletionResult:
    """Delete the `fraction` of pixels with the highest CAM value (set to `fill`, 0 = the mean colour after
    normalisation) and, separately, as many random pixels (mean over `random_draws` draws); compare the cosine
    similarity to `reference` (D,) before and after.

    Args:
        images: one sample with one modality {modality: (3, H, W)}; `cam` (H, W) is its map.
    """
    if len(images) != 1:
        raise ValueError("deletion_check takes one image (a dict with one modality); run it per modality")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    m, x = _single(_check_images(images, "images"))
    if cam.shape != tuple(x.shape[-2:]):
        raise ValueError(f"cam must have the image size {tuple(x.shape[-2:])}, got {cam.shape}")
    target = SimilarityTarget(reference)
    n = int(round(fraction * cam.size))

    def score(mask: np.ndarray) -> float:
        y = x.clone()
        y[:, torch.from_numpy(mask.reshape(cam.shape))] = fill
        return float(target(embed(model, {m: y}, method=method, plain=plain)))

    base = float(target(embed(model, {m: x}, method=method, plain=plain)))
    top = np.zeros(cam.size, dtype=bool)
    top[np.argsort(-cam.ravel(), kind="stable")[:n]] = True
    rng = np.random.default_rng(seed)
    randoms = []
    for _ in range(random_draws):
        mask = np.zeros(cam.size, dtype=bool)
        mask[rng.choice(cam.size, n, replace=False)] = True
        randoms.append(score(mask))
    return DeletionResult(base, base - score(top), base - float(np.mean(randoms)), fraction)


# ----------------------------------------------------------------------------------------------------------------
# Drawing

def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a (H, W) map in [0, 1] over an (H, W, 3) image in [0, 1]; returns (H, W, 3)."""
    if image.shape[:2] != cam.shape:
        raise ValueError(f"image {image.shape[:2]} and cam {cam.shape} sizes differ")
    heat = plt.get_cmap(cmap)(np.clip(cam, 0, 1))[..., :3]
    return np.clip((1 - alpha) * image + alpha * heat, 0, 1)


def _display(x: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    from workbench.viz.data import to_image

    return to_image(x, mean, std)


def plot_cam(image: Tensor, cam: np.ndarray, *, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None, title: str = "", ax=None, alpha: float = 0.5):
    """One image (3, H, W) (de-normalised with mean/std) with its CAM overlaid. Returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.4, 2.6))
    ax.imshow(overlay(_display(image, mean, std), cam, alpha))
    if not cam.max() > 0:  # Grad-CAM's ReLU removed everything: no location raises the target
        title = f"{title}\n(empty map)" if title else "(empty map)"
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_pair_cams(pairs: Sequence[PairCAM], *, mean: Sequence[float] | None = None,
                   std: Sequence[float] | None = None, axes=None, size: float = 1.3):
    """Columns: pairs; rows: per modality, the query image, the query CAM, the gallery image, the gallery CAM.
    Returns the Axes array."""
    if not pairs:
        raise ValueError("pairs is empty")
    mods = list(pairs[0].query_maps)
    rows = [("query", m) for m in mods] + [("gallery", m) for m in mods if pairs[0].gallery_maps]
    n_rows = 2 * len(rows)
    if axes is None:
        _, axes = plt.subplots(n_rows, len(pairs), figsize=(size * len(pairs), 1.9 * size * n_rows),
                               squeeze=False)
    for c, pair in enumerate(pairs):
        r = 0
        for side, m in rows:
            imgs = pair.query_images if side == "query" else pair.gallery_images
            maps = pair.query_maps if side == "query" else pair.gallery_maps
            key = m if m in imgs else next(iter(imgs))
            axes[r][c].imshow(_display(imgs[key], mean, std))
            axes[r][c].set_title(f"{side} {key}" + (f"\n{pair.label}" if r == 0 and pair.label else "")
                                 + (f"\ncos {pair.similarity:.2f}" if r == 0 else ""), fontsize=7)
            plot_cam(imgs[key], maps[key], mean=mean, std=std, ax=axes[r + 1][c], title=f"CAM on {side}")
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            r += 2
    return axes
