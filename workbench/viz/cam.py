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

Cost: all of a sample's modality maps come from one forward with hooks on every modality's target layer, samples
of the same kind run as one batch, and each target costs one backward that stops at the target layers
(`query_cams`: one query against five gallery samples is two forwards and five short backwards, not fifteen full
forward-backward passes). A modality whose target layer the embedding does not depend on (an eval forward that
returns one modality's branch) gets an all-zero map and the note `UNREACHED` (`CamMaps.notes`), for every method.

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
            the batch, so ScoreCAM's masked batches work), or {m: (B, 3, H, W)} for a batch of B samples.
        camids: (1,) or (B,) camera ids for models with a camera embedding, or None.
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
# Computing maps: one forward per batch of samples, one backward per target
#
# pytorch-grad-cam's `BaseCAM.__call__` runs the model forward and a full backward (to every parameter) for each map,
# with the hooks on one modality's target layers. Here the hooks sit on every modality's target layers at once, the
# samples of one kind run as one batch, and each target gets one `torch.autograd.grad` that stops at the hooked
# layers. The maps themselves are still pytorch-grad-cam's: its `compute_cam_per_layer` and `aggregate_multi_layers`
# run on the captured activations and gradients, so they equal the one-map-at-a-time result.

Images = Mapping[str, Tensor]  # {modality: (3, H, W)} for one sample: one key (VI) or one per modality (triplets)

UNREACHED = "this modality does not reach the embedding"


class CamMaps(dict):
    """{modality: (H, W) float32 map in [0, 1]} of one sample for one target, and `notes` {modality: why its map is
    empty} for the modalities whose target layer the embedding does not depend on (their maps are zeros)."""

    def __init__(self, maps: Mapping[str, np.ndarray] | None = None, notes: Mapping[str, str] | None = None) -> None:
        super().__init__(maps or {})
        self.notes = dict(notes or {})


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


def _multi(model: nn.Module, images: Images, plain: bool) -> bool:
    """Whether a sample is fed as a modality dict with the others held fixed (a model with `modalities`, or
    several images), rather than as one image."""
    return not plain and (len(images) > 1 or hasattr(unwrap_model(model), "modalities"))


def _wrapper(model: nn.Module, images: dict[str, Tensor], method: EvalForward | None, camids: Tensor | None,
             plain: bool) -> tuple[EmbeddingModel, Tensor]:
    """The `EmbeddingModel` of a batch {modality: (B, 3, H, W)} and the tensor to call it on."""
    m, x = _single(images)
    context = images if _multi(model, images, plain) else None
    return EmbeddingModel(model, None if plain else m, method, context=context, camids=camids), x


@dataclass
class _Batch:
    """Samples with the same modalities and image sizes, run through the model as one batch."""

    rows: list[int]  # positions in the caller's list of samples
    images: dict[str, Tensor]  # {modality: (B, 3, H, W)}
    camids: Tensor | None  # (B,)


def _batches(samples: Sequence[dict[str, Tensor]], camids: Sequence[int | None], device: torch.device
             ) -> list[_Batch]:
    groups: dict[tuple, list[int]] = {}
    for i, (images, camid) in enumerate(zip(samples, camids)):
        key = (tuple((m, tuple(x.shape)) for m, x in images.items()), camid is None)
        groups.setdefault(key, []).append(i)
    out = []
    for rows in groups.values():
        images = {m: torch.stack([samples[i][m] for i in rows]).to(device) for m in samples[rows[0]]}
        cams = None if camids[rows[0]] is None else torch.tensor([camids[i] for i in rows], device=device)
        out.append(_Batch(rows, images, cams))
    return out


@torch.no_grad()
def _embed_many(model: nn.Module, samples: Sequence[dict[str, Tensor]], camids: Sequence[int | None], *,
                method: EvalForward | None, plain: bool) -> Tensor:
    """Embeddings (N, D) of several samples, batched where they have the same modalities and sizes."""
    feats: list[Tensor | None] = [None] * len(samples)
    for batch in _batches(samples, camids, _device(model)):
        wrapper, x = _wrapper(model, batch.images, method, batch.camids, plain)
        out = wrapper(x)
        for j, i in enumerate(batch.rows):
            feats[i] = out[j]
    return torch.stack(feats)


def _target_layers(model: nn.Module, modalities: Sequence[str], stage: str,
                   target_layers: Sequence[nn.Module] | None, reshape_transform: Callable | None
                   ) -> dict[str, tuple[list[nn.Module], Callable | None]]:
    """{modality: (target layers, reshape transform)}: the default per modality, or the given ones for all."""
    if target_layers is not None:
        return {m: (list(target_layers), reshape_transform) for m in modalities}
    return {m: default_target(model, m, stage) for m in modalities}


class _FirstOutputs:
    """Forward hooks keeping the first output of each module during a forward, with its autograd graph; always
    removed on exit."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.modules = list({id(m): m for m in modules}.values())
        self.outputs: dict[int, Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> _FirstOutputs:
        for module in self.modules:
            self._handles.append(module.register_forward_hook(self._keep))
        return self

    def _keep(self, module: nn.Module, inputs, output) -> None:
        if id(module) in self.outputs:
            return
        if not isinstance(output, Tensor):
            raise ValueError(f"target layer {type(module).__name__} returns {type(output).__name__}, not a tensor; "
                             "pick a layer whose output is a feature map or a token tensor")
        self.outputs[id(module)] = output

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


@dataclass
class _Forward:
    """One batch through the model with the target layers' outputs captured.

    `reach[id(layer)]` is the gradient of a generic direction of the embedding at that layer's output: None when
    the layer is not in the embedding's autograd graph (e.g. another modality's branch when the embedding uses one
    modality only)."""

    batch: _Batch
    feats: Tensor  # (B, D), with its graph back to the captured outputs
    outputs: dict[int, Tensor]
    reach: dict[int, Tensor | None]


def _forward(model: nn.Module, batch: _Batch, layers: Sequence[nn.Module], method: EvalForward | None,
             plain: bool) -> _Forward:
    # inputs that require a gradient put every layer that depends on them in the graph, so a layer outside the
    # embedding's graph is exactly one the embedding does not depend on
    images = {m: x.detach().clone().requires_grad_(True) for m, x in batch.images.items()}
    wrapper, x = _wrapper(model, images, method, batch.camids, plain)
    with _FirstOutputs(layers) as rec, torch.enable_grad():
        feats = wrapper(x)
        missing = [type(layer).__name__ for layer in rec.modules if id(layer) not in rec.outputs]
        if missing:
            raise ValueError(f"target layers {missing} did not run in the model's forward; pass layers of this "
                             "model that the embedding's forward uses")
        direction = torch.randn(feats.shape[1], generator=torch.Generator().manual_seed(0)).to(feats)
        keys = [k for k, out in rec.outputs.items() if out.requires_grad]
        grads = torch.autograd.grad((feats * direction).sum(), [rec.outputs[k] for k in keys], retain_graph=True,
                                    allow_unused=True)
    reach = dict.fromkeys(rec.outputs) | dict(zip(keys, grads))
    return _Forward(batch, feats, rec.outputs, reach)


def _reaches(fwd: _Forward, layer: nn.Module, reshape: Callable | None, row: int) -> bool:
    """Whether the embedding of sample `row` depends on this layer's output (for this modality's part of it).

    Structural for a layer of the modality's own branch (in the autograd graph or not). A layer shared by the
    modalities (`TokenGridReshape.chunk`: the shared blocks run on the batch-concatenation of all modalities) is in
    the graph whenever any modality is used; there the modality's slice of the gradient of a generic direction of
    the embedding is exactly zero iff the embedding does not use that modality."""
    grad = fwd.reach[id(layer)]
    if grad is None:
        return False
    if getattr(reshape, "chunk", None) is None:
        return True
    return bool(reshape(grad)[row].ne(0).any())


def _maps(model: nn.Module, forwards: Sequence[_Forward], where: Sequence[tuple[int, int]],
          samples: Sequence[dict[str, Tensor]], camids: Sequence[int | None],
          targets: Sequence[Sequence[Callable]], specs: dict[str, tuple[list[nn.Module], Callable | None]], *,
          cam_method: str, method: EvalForward | None, plain: bool, scorecam_batch: int) -> list[list[CamMaps]]:
    """Maps of every sample for each of its targets: `out[i][k]` is sample i's `CamMaps` for `targets[i][k]`.

    Args:
        where: (forward index, row) of each sample in `forwards`.
    """
    cls = _cam_class(cam_method)
    device = _device(model)
    engine = cls(model=EmbeddingModel(model), target_layers=[])  # no hooks: it only turns arrays into maps
    if cam_method == "scorecam":
        engine.batch_size = scorecam_batch
    arrays: dict[tuple, Tensor] = {}

    def layer_array(fwd: _Forward, tensor: Tensor, reshape: Callable | None, key: tuple) -> Tensor:
        if key not in arrays:  # as pytorch-grad-cam's hooks store them: reshaped, detached, on the CPU
            arrays[key] = (reshape(tensor) if reshape is not None else tensor).cpu().detach()
        return arrays[key]

    # gradients: one backward per round, round r = the r-th target of every sample of a forward
    grads: dict[tuple[int, int, int], tuple[Tensor, ...]] = {}  # (forward, row, target) -> per captured output
    if engine.uses_gradients:
        for f, fwd in enumerate(forwards):
            rows = [(i, r) for i, (fi, r) in enumerate(where) if fi == f]
            keys = [k for k, g in fwd.reach.items() if g is not None]
            for k in range(max((len(targets[i]) for i, _ in rows), default=0)):
                active = [(i, r) for i, r in rows if len(targets[i]) > k]
                with torch.enable_grad():
                    loss = sum(targets[i][k](fwd.feats[r]) for i, r in active)
                    g = torch.autograd.grad(loss, [fwd.outputs[key] for key in keys], retain_graph=True,
                                            allow_unused=True)
                g = dict(zip(keys, g))
                for _, r in active:
                    grads[f, r, k] = g

    out: list[list[CamMaps]] = []
    quiet = contextlib.redirect_stderr(io.StringIO()) if cam_method == "scorecam" else contextlib.nullcontext()
    with quiet:  # ScoreCAM draws a progress bar per image
        for i, (f, r) in enumerate(where):
            fwd = forwards[f]
            per_target = [CamMaps() for _ in targets[i]]
            for m, x in samples[i].items():
                layers, reshape = specs[m]
                x1 = x[None].to(device)
                reached = [_reaches(fwd, layer, reshape, r) for layer in layers]
                if not any(reached):
                    for maps in per_target:
                        maps[m] = np.zeros(tuple(x.shape[-2:]), dtype=np.float32)
                        maps.notes[m] = UNREACHED
                    continue
                if cam_method == "scorecam":  # it re-runs the model on masked copies of this modality's image
                    context = {k: v[None].to(device) for k, v in samples[i].items()} if _multi(
                        model, samples[i], plain) else None
                    cams = None if camids[i] is None else torch.tensor([camids[i]], device=device)
                    engine.model = EmbeddingModel(model, None if plain else m, method, context=context, camids=cams)
                eigen = None
                for k, target in enumerate(targets[i]):
                    if cam_method == "eigencam" and eigen is not None:  # the target plays no part
                        per_target[k][m] = eigen.copy()
                        continue
                    per_layer = []
                    for layer, ok in zip(layers, reached):
                        if not ok:  # a layer the embedding does not depend on contributes nothing
                            per_layer.append(np.zeros((1, 1, *x.shape[-2:]), dtype=np.float32))
                            continue
                        act = layer_array(fwd, fwd.outputs[id(layer)], reshape, (f, id(layer), id(reshape)))
                        engine.target_layers = [layer]
                        engine.activations_and_grads.activations = [act[r:r + 1]]
                        engine.activations_and_grads.gradients = []
                        if engine.uses_gradients:
                            g = grads[f, r, k][id(layer)]
                            g = torch.zeros_like(fwd.outputs[id(layer)]) if g is None else g
                            engine.activations_and_grads.gradients = [layer_array(
                                fwd, g, reshape, (f, id(layer), id(reshape), "grad", k))[r:r + 1]]
                        per_layer += engine.compute_cam_per_layer(x1, [target], False)
                    grayscale = engine.aggregate_multi_layers(per_layer)
                    per_target[k][m] = np.nan_to_num(grayscale[0].astype(np.float32))
                    if cam_method == "eigencam":
                        eigen = per_target[k][m]
            out.append(per_target)
    engine.activations_and_grads.activations, engine.activations_and_grads.gradients = [], []
    return out


def _cams(model: nn.Module, samples: Sequence[dict[str, Tensor]], camids: Sequence[int | None],
          targets: Sequence[Sequence[Callable]], *, method: EvalForward | None = None, cam_method: str = "gradcam",
          stage: str = "layer4", target_layers: Sequence[nn.Module] | None = None,
          reshape_transform: Callable | None = None, plain: bool = False, scorecam_batch: int = 32,
          before_maps: Callable[[list[Tensor]], None] | None = None) -> list[list[CamMaps]]:
    """Maps of several samples for their targets, `out[i][k]` for `targets[i][k]`: one forward per batch of
    samples with the same modalities and sizes, one backward per round of targets.

    `before_maps(feats)`, if given, is called with each sample's embedding (D,) after the forwards and before the
    targets are evaluated (`query_cams` builds the query-side targets from the gallery embeddings that way)."""
    _cam_class(cam_method)
    device = _device(model)
    was = model.training
    model.eval()
    try:
        modalities = list(dict.fromkeys(m for s in samples for m in s))
        specs = _target_layers(model, modalities, stage, target_layers, reshape_transform)
        forwards, where = [], [(0, 0)] * len(samples)
        for batch in _batches(samples, camids, device):
            layers = [layer for m in batch.images for layer in specs[m][0]]
            forwards.append(_forward(model, batch, layers, method, plain))
            for r, i in enumerate(batch.rows):
                where[i] = (len(forwards) - 1, r)
        if before_maps is not None:
            before_maps([forwards[f].feats[r].detach() for f, r in where])
        return _maps(model, forwards, where, samples, camids, targets, specs, cam_method=cam_method, method=method,
                     plain=plain, scorecam_batch=scorecam_batch)
    finally:
        model.train(was)


@torch.no_grad()
def embed(model: nn.Module, images: Images, *, method: EvalForward | None = None, camid: int | None = None,
          plain: bool = False) -> Tensor:
    """Retrieval embedding (D,) of one sample (dict of its modalities' (3, H, W) tensors).

    Args:
        plain: call `model(x)` directly (a model taking one image tensor; `images` has one entry).
    """
    images = _check_images(images, "images")
    was = model.training
    model.eval()
    try:
        return _embed_many(model, [images], [camid], method=method, plain=plain)[0]
    finally:
        model.train(was)


def compute_cams(model: nn.Module, images: Images, targets: Sequence[Callable[[Tensor], Tensor]], *,
                 method: EvalForward | None = None, cam_method: str = "gradcam", camid: int | None = None,
                 stage: str = "layer4", target_layers: Sequence[nn.Module] | None = None,
                 reshape_transform: Callable | None = None, plain: bool = False,
                 scorecam_batch: int = 32) -> list[CamMaps]:
    """CAMs of one sample for several targets: one forward, one backward per target (see `compute_cam`)."""
    images = _check_images(images, "images")
    targets = list(targets)
    return _cams(model, [images], [camid], [targets], method=method, cam_method=cam_method, stage=stage,
                 target_layers=target_layers, reshape_transform=reshape_transform, plain=plain,
                 scorecam_batch=scorecam_batch)[0]


def compute_cam(model: nn.Module, images: Images, target: Callable[[Tensor], Tensor], *,
                method: EvalForward | None = None, cam_method: str = "gradcam", camid: int | None = None,
                stage: str = "layer4", target_layers: Sequence[nn.Module] | None = None,
                reshape_transform: Callable | None = None, plain: bool = False,
                scorecam_batch: int = 32) -> CamMaps:
    """CAM of one sample for `target` (e.g. `SimilarityTarget(gallery_embedding)`), one map per modality.

    All modalities' maps come from one forward (hooks on every modality's target layers) and one backward that
    stops at those layers. A modality the embedding does not depend on (e.g. a multi-modal ViT whose eval forward
    returns the thermal branch only) gets an all-zero map and the note `UNREACHED` in `notes`, for every method.

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
        scorecam_batch: masked images per forward in ScoreCAM.

    Returns:
        `CamMaps` {modality: (H, W) float32 map in [0, 1]} (pytorch-grad-cam normalises each map by its maximum; an
        all-zero map stays zero) with `notes` {modality: why its map is empty}.
    """
    return compute_cams(model, images, [target], method=method, cam_method=cam_method, camid=camid, stage=stage,
                        target_layers=target_layers, reshape_transform=reshape_transform, plain=plain,
                        scorecam_batch=scorecam_batch)[0]


@dataclass
class PairCAM:
    """CAMs of one query-gallery pair in both directions.

    Attributes:
        query_maps: {modality: (H, W)}: what in the query explains the similarity to the gallery image (`CamMaps`:
            `query_maps.notes` says which modalities do not reach the embedding).
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


def query_cams(model: nn.Module, query: Images, galleries: Sequence[Images], *, both: bool = True,
               query_camid: int | None = None, gallery_camids: Sequence[int | None] | None = None,
               labels: Sequence[str] | None = None, method: EvalForward | None = None, plain: bool = False,
               **kwargs) -> list[PairCAM]:
    """Similarity CAMs of one query against several gallery samples (e.g. its top five), one `PairCAM` each: on
    the query (target: that gallery embedding) and, with `both`, on each gallery image (target: the query
    embedding). `kwargs` go to `compute_cam` (cam_method, stage, target_layers, ...).

    Cost: one forward of the query and one backward per gallery sample (stopping at the target layers), and one
    batched forward of the gallery samples (with `both`: with the gradient, plus one backward)."""
    query = _check_images(query, "query")
    galleries = [_check_images(g, f"galleries[{i}]") for i, g in enumerate(galleries)]
    if not galleries:
        raise ValueError("galleries is empty; pass at least one gallery sample {modality: (3, H, W)}")
    g_cams = list(gallery_camids) if gallery_camids is not None else [None] * len(galleries)
    labels = list(labels) if labels is not None else [""] * len(galleries)
    if len(g_cams) != len(galleries) or len(labels) != len(galleries):
        raise ValueError(f"gallery_camids and labels must have one entry per gallery sample ({len(galleries)}), "
                         f"got {len(g_cams)} and {len(labels)}")
    opts = dict(method=method, plain=plain, **kwargs)
    n = len(galleries)
    if both:  # every sample gets its maps from one run: galleries' targets need the query embedding and back
        q_targets: list[Callable] = []
        g_targets: list[list[Callable]] = [[] for _ in range(n)]
        feats: list[Tensor] = []

        def set_targets(embs: list[Tensor]) -> None:
            feats.extend(embs)
            q_targets.extend(SimilarityTarget(e) for e in embs[1:])
            for t in g_targets:
                t.append(SimilarityTarget(embs[0]))

        out = _cams(model, [query, *galleries], [query_camid, *g_cams], [q_targets, *g_targets],
                    before_maps=set_targets, **opts)
        q_maps, g_maps = out[0], [o[0] for o in out[1:]]
        q_emb, g_embs = feats[0], torch.stack(feats[1:])
    else:
        was = model.training
        model.eval()
        try:
            g_embs = _embed_many(model, galleries, g_cams, method=method, plain=plain)
        finally:
            model.train(was)
        q_box: list[Tensor] = []
        q_maps = _cams(model, [query], [query_camid], [[SimilarityTarget(e) for e in g_embs]],
                       before_maps=q_box.extend, **opts)[0]
        q_emb, g_maps = q_box[0], [CamMaps() for _ in range(n)]
    sims = F.cosine_similarity(q_emb[None], g_embs).tolist()
    return [PairCAM(q_maps[k], g_maps[k], float(sims[k]), dict(query), dict(galleries[k]), labels[k])
            for k in range(n)]


def pair_cams(model: nn.Module, query: Images, gallery: Images, *, both: bool = True, query_camid: int | None = None,
              gallery_camid: int | None = None, label: str = "", **kwargs) -> PairCAM:
    """Similarity CAMs of a query against one gallery sample: on the query (target: the gallery embedding) and,
    with `both`, on the gallery image (target: the query embedding). `kwargs` go to `compute_cam`."""
    return query_cams(model, query, [gallery], both=both, query_camid=query_camid, gallery_camids=[gallery_camid],
                      labels=[label], **kwargs)[0]


def contrastive_cam(model: nn.Module, query: Images, true_match: Images, false_match: Images, *,
                    query_camid: int | None = None, **kwargs) -> CamMaps:
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


def display_image(image: Tensor, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None) -> np.ndarray:
    """A model input (3, H, W) as an (H, W, 3) image in [0, 1] to draw, de-normalised with `mean`/`std`."""
    from workbench.viz.data import to_image

    return to_image(image, mean, std)


def note_of(maps: Mapping[str, np.ndarray], modality: str) -> str:
    """Why `maps[modality]` is empty (`CamMaps.notes`), or "" (a plain dict of maps has no notes)."""
    return getattr(maps, "notes", {}).get(modality, "")


def plot_cam(image: Tensor, cam: np.ndarray, *, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None, title: str = "", ax=None, alpha: float = 0.5, note: str = ""):
    """One image (3, H, W) (de-normalised with mean/std) with its CAM overlaid; `note` (e.g. `UNREACHED`, from
    `CamMaps.notes`) replaces the map's overlay and is written under the title. Returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(1.4, 2.6))
    if note:
        ax.imshow(display_image(image, mean, std))
        title = f"{title}\n({note})" if title else f"({note})"
    else:
        ax.imshow(overlay(display_image(image, mean, std), cam, alpha))
    if not note and not cam.max() > 0:  # Grad-CAM's ReLU removed everything: no location raises the target
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
            axes[r][c].imshow(display_image(imgs[key], mean, std))
            axes[r][c].set_title(f"{side} {key}" + (f"\n{pair.label}" if r == 0 and pair.label else "")
                                 + (f"\ncos {pair.similarity:.2f}" if r == 0 else ""), fontsize=7)
            plot_cam(imgs[key], maps[key], mean=mean, std=std, ax=axes[r + 1][c], title=f"CAM on {side}",
                     note=note_of(maps, key))
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            r += 2
    return axes
