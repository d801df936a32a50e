"""SD2-ReID instruments: semantic / style / CLS codes per modality, disentanglement tables, robustness curves.

    codes = sd2_analysis.extract_codes(model, samples, cfg)           # one row per (sample, modality)
    table = sd2_analysis.code_reports({"baseline CLS": base_codes.cls, "SD2 semantic": codes.sem, ...})
    curve = sd2_analysis.robustness_curve(model, cfg, dataset, "occlusion", [0, 0.2, 0.4])

Robustness: the test protocol of the dataset (RGBNT201-style for the synthetic preset) evaluated with every query and
gallery image corrupted by `workbench.data.occlusion` (seeded, the same corruption for every model compared), so
the SD2-ReID claims of robustness to occlusion and to style change become mAP-against-level curves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from workbench.config import Config, dataset_layout
from workbench.data.occlusion import occlude, style_shift
from workbench.methods import Method, get_method
from workbench.metrics.disentanglement import disentanglement_report
from workbench.models.output import ReIDOutput
from workbench.train import evaluate_splits, extract_features
from workbench.utils import unwrap_model


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


def corruption(kind: str, level: float, *, seed: int = 0, modality: str = "tir", shift: str = "mixed"
               ) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    """A seeded corruption of image batches: kind "occlusion" (area fraction `level`) or "style" (shift of
    `modality` with strength `level`, `workbench.data.occlusion.style_shift` kind `shift`)."""
    if kind not in ("occlusion", "style"):
        raise ValueError(f"kind must be 'occlusion' or 'style', got {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    if kind == "occlusion":
        return lambda images: occlude(images, level, gen)
    return lambda images: style_shift(images, modality, level, shift, gen)


def robustness_curve(model: nn.Module, cfg: Config, dataset, kind: str, levels: Sequence[float], *,
                     method: Method | None = None, seed: int = 0, modality: str = "tir", shift: str = "mixed",
                     split_options: dict | None = None) -> pd.DataFrame:
    """Test-protocol scores of `model` at each corruption level (one row per level: rank1, mAP, mINP).

    Args:
        model: a trained multi-modal model (eval mode is set by the feature extraction).
        cfg: its configuration (image size, dataset layout, method).
        dataset: the loaded `ReIDDataset` (its `eval_splits`).
        kind: "occlusion" or "style".
        levels: occluded area fractions, or style-shift strengths.
        method: the model's method (default `get_method(cfg.run.method)`).
        seed: corruption seed (use the same one for every model compared).
        modality, shift: the style-shifted modality and the shift kind.
    """
    from workbench.metrics import PROTOCOLS

    base = method or get_method(cfg.run.method)
    spec = PROTOCOLS[dataset_layout(cfg.data.dataset)]
    splits = dataset.eval_splits(**(split_options or {}))
    rows = {}
    for level in levels:
        wrapped = PerturbedMethod(base, corruption(kind, float(level), seed=seed, modality=modality, shift=shift))
        result = evaluate_splits(model, splits, cfg, spec=spec, method=wrapped, cache=False, progress=False)
        rows[float(level)] = {k: result.mean[k] for k in ("rank1", "mAP", "mINP")}
    frame = pd.DataFrame(rows).T
    frame.index.name = "occluded area" if kind == "occlusion" else f"{modality} {shift} shift"
    return frame


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
        pids: (M*N,) identities; modality: (M*N,) modality names.
    """

    cls: np.ndarray
    sem: np.ndarray | None
    sty: np.ndarray | None
    pids: np.ndarray
    modality: np.ndarray


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
    n = len(samples)
    return Codes(cls=cls, sem=stack("sem"), sty=stack("sty"), pids=np.tile(feats.pids, len(modalities)),
                 modality=np.repeat(np.asarray(modalities), n))


def code_reports(codes: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], *, seed: int = 0) -> pd.DataFrame:
    """Disentanglement scores (`workbench.metrics.disentanglement`) of named codes, one row each.

    Args:
        codes: name -> (feats (N, D), pids (N,), modality (N,)).
    """
    rows = {name: disentanglement_report(f, p, m, seed=seed).as_dict() for name, (f, p, m) in codes.items()}
    return pd.DataFrame(rows).T
