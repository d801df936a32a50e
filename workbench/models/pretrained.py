"""Loading ImageNet (or any) weights into a backbone: through timm when online, or from a local file.

`pretrained=True` asks timm for its weights (needs the Hugging Face Hub or timm's download URLs); offline, pass a
local file instead, `pretrained="path/to/weights.safetensors"` (or `.pth` / `.pt` / `.bin`), or the name of an
installed offline source, `pretrained="imagenet-lite0"` (ImageNet EfficientNet-Lite0 from a package, see
`workbench.models.imagenet`). Files are read with safetensors or `torch.load(weights_only=True)`, never with pickle
code execution.

Key handling: a `{"state_dict": ...}` / `{"model": ...}` wrapper and a `module.` (DataParallel) prefix are removed;
classifier-head keys (`fc.`, `head.`, `classifier.`, ...) that the target does not have are ignored; an absolute
position embedding with another grid is resampled (bilinear, as TransReID's `resize_pos_embed`
[CODE: damo-cv/TransReID, model/backbones/vit_pytorch.py::resize_pos_embed]); everything else that does not fit is
reported in a `LoadReport`, never silently dropped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .imagenet import NAMED_SOURCES

HEAD_PREFIXES: tuple[str, ...] = ("fc.", "head.", "head_dist.", "classifier.", "last_linear.", "pre_logits.")
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
RUN_WEIGHTS = ("checkpoints/best.safetensors", "checkpoints/last.pt")  # a run folder's weights (workbench.runs)
MIN_FILLED = 0.5  # a pretrained source must fill at least this fraction of the backbone's tensors


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights were requested but could not be obtained (typically: offline)."""


@dataclass(frozen=True)
class LoadReport:
    """What `load_pretrained` did.

    Attributes:
        source: where the weights came from (file path or "timm:<name>").
        loaded: target keys that received a tensor.
        missing: target keys the source did not provide (left at their initial values).
        unexpected: source keys with no counterpart in the target.
        skipped_head: source classifier-head keys that were ignored.
        mismatched: keys present on both sides with incompatible shapes (not loaded).
        resized: position embeddings resampled to the target grid.
    """

    source: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    skipped_head: tuple[str, ...]
    mismatched: tuple[str, ...]
    resized: tuple[str, ...]


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a checkpoint file into a flat `{key: tensor}` dict (CPU).

    Args:
        path: `.safetensors` (read with safetensors) or a torch file (`.pth`, `.pt`, `.bin`, ...; read with
            `torch.load(weights_only=True)`). Wrappers `{"state_dict": ...}`, `{"model": ...}` and the
            `module.` prefix are removed.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds something other than a mapping of tensors.
    """
    path = Path(path).expanduser()
    if path.is_dir():  # a run folder: its validation-selected weights, else its last training state
        for name in RUN_WEIGHTS:
            if (path / name).is_file():
                return read_state_dict(path / name)
        raise FileNotFoundError(f"{str(path)!r} is a folder without {' or '.join(RUN_WEIGHTS)}; pass a run folder "
                                "that has trained, or a weights file")
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights file {str(path)!r} does not exist; pass the path of a .safetensors or .pth "
            "state dict (e.g. one saved with timm.create_model(name, pretrained=True).state_dict() on a machine "
            "that is online)"
        )
    if path.suffix not in _TORCH_SUFFIXES + (".safetensors",):
        warnings.warn(f"{path.name}: unknown suffix, trying torch.load(weights_only=True)", stacklevel=2)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # our words: torch's message may suggest loading with code execution, never do that
        raise ValueError(f"pretrained weights file {str(path)!r} is damaged or is not a plain state dict "
                         f"({type(exc).__name__}); it was not loaded. Re-export it as .safetensors, or use another "
                         "copy.") from None
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, Mapping) and wrapper in state and isinstance(state[wrapper], Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} does not contain a state dict (a mapping of parameter names to tensors)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def timm_state_dict(timm_name: str) -> dict[str, Tensor]:
    """Download timm's pretrained weights for `timm_name` (e.g. "resnet50.tv_in1k") and return its state dict.

    Raises:
        PretrainedWeightsError: the download failed (offline, unknown tag, ...); the message says how to use a file.
    """
    import timm

    try:
        model = timm.create_model(timm_name, pretrained=True)
    except Exception as err:  # network, hub and tag errors all mean "not available here"
        raise PretrainedWeightsError(
            f"could not fetch timm weights for {timm_name!r} ({type(err).__name__}: {err}). This machine is "
            "probably offline. Download them where you are online, e.g. `import timm, safetensors.torch; "
            f"safetensors.torch.save_file(timm.create_model({timm_name!r}, pretrained=True).state_dict(), "
            "'weights.safetensors')`, copy the file here and pass pretrained='path/to/weights.safetensors' "
            "(a .pth state dict works too)."
        ) from err
    return model.state_dict()


def resample_pos_embed(pos_embed: Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int] | None = None,
                       num_prefix_tokens: int = 1) -> Tensor:
    """Bilinearly resample an absolute position embedding to another patch grid.

    Args:
        pos_embed: (1, P + h0*w0, D) with P prefix (CLS) tokens first.
        new_grid: (h, w) target grid.
        old_grid: (h0, w0); None assumes a square source grid (as ImageNet checkpoints are).
        num_prefix_tokens: P, the tokens copied unchanged.

    Returns:
        (1, P + h*w, D).
    """
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    n_old = grid.shape[1]
    if old_grid is None:
        side = math.isqrt(n_old)
        if side * side != n_old:
            raise ValueError(f"cannot infer the source grid of a position embedding with {n_old} patch tokens; "
                             "pass old_grid=(h, w)")
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != n_old:
        raise ValueError(f"old_grid={old_grid} does not match {n_old} patch tokens")
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    dim = grid.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # (1, D, h0, w0)
    grid = F.interpolate(grid.float(), size=tuple(new_grid), mode="bilinear", align_corners=False).to(grid.dtype)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim)
    return torch.cat([prefix, grid], dim=1)


def _target_grid(model: nn.Module) -> tuple[int, int] | None:
    patch_embed = getattr(model, "patch_embed", None)
    grid = getattr(patch_embed, "grid_size", None)
    return tuple(grid) if grid is not None else None


def load_state_dict_into(model: nn.Module, state: Mapping[str, Tensor], source: str = "state_dict",
                         head_prefixes: tuple[str, ...] = HEAD_PREFIXES, warn: bool = True) -> LoadReport:
    """Copy matching tensors of `state` into `model` (non-strict, with a report); see `load_pretrained`."""
    target = model.state_dict()
    new_state: dict[str, Tensor] = {}
    unexpected, skipped, mismatched, resized = [], [], [], []
    for key, value in state.items():
        if key not in target:
            (skipped if key.startswith(head_prefixes) else unexpected).append(key)
            continue
        want = target[key].shape
        if value.shape == want:
            new_state[key] = value
        elif key.endswith("pos_embed") and value.dim() == 3 and value.shape[-1] == want[-1]:
            grid = _target_grid(model)
            prefix = want[1] - (grid[0] * grid[1]) if grid else 1
            side = math.isqrt(want[1] - prefix)
            new_grid = grid if grid else (side, side)
            new_state[key] = resample_pos_embed(value, new_grid, num_prefix_tokens=prefix)
            resized.append(key)
        elif key.startswith(head_prefixes):
            skipped.append(key)
        else:
            mismatched.append(f"{key}: source {tuple(value.shape)} vs model {tuple(want)}")
    model.load_state_dict(new_state, strict=False)
    missing = [k for k in target if k not in new_state and not k.endswith("num_batches_tracked")]
    report = LoadReport(source, tuple(new_state), tuple(missing), tuple(unexpected), tuple(skipped),
                        tuple(mismatched), tuple(resized))
    if warn:
        _warn_incomplete(report, source)
    return report


def _warn_incomplete(report: LoadReport, source: str) -> None:
    """Warn (from the caller's caller) when a load left keys missing, unexpected or mismatched."""
    if report.missing or report.unexpected or report.mismatched:
        warnings.warn(
            f"loading {source}: {len(report.missing)} missing keys {list(report.missing)[:5]}, "
            f"{len(report.unexpected)} unexpected {list(report.unexpected)[:5]}, "
            f"{len(report.mismatched)} shape mismatches {list(report.mismatched)[:3]}",
            stacklevel=4,
        )


def resolve_pretrained(pretrained: bool | str | Path | Mapping[str, Tensor] | None, timm_name: str | None = None,
                       model: nn.Module | None = None) -> tuple[dict[str, Tensor], str] | None:
    """Turn a `pretrained=` argument into `(state_dict, source)`, or None when nothing is requested.

    Args:
        pretrained: None/False, True (timm weights for `timm_name`, online only), a named offline source
            ("imagenet-lite0"), a file path, or a state dict.
        timm_name: timm name with optional tag; for True and named sources it defaults to `model.pretrained_cfg`
            of a timm model.
        model: the target, only used to find its timm name.

    Raises:
        PretrainedWeightsError, FileNotFoundError, ValueError: see `load_pretrained`.
    """
    if pretrained is None or pretrained is False:
        return None
    named = isinstance(pretrained, str) and pretrained in NAMED_SOURCES
    if (pretrained is True or named) and timm_name is None and model is not None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        arch, tag = cfg.get("architecture"), cfg.get("tag")
        timm_name = f"{arch}.{tag}" if arch and tag else arch
    if named:
        return named_state_dict(pretrained, timm_name), pretrained
    if pretrained is True:
        if not timm_name:
            raise ValueError("pretrained=True needs timm_name= (which timm weights to fetch), or pass a file path")
        return timm_state_dict(timm_name), f"timm:{timm_name}"
    if isinstance(pretrained, (str, Path)):
        return read_state_dict(pretrained), str(pretrained)
    if isinstance(pretrained, Mapping):
        return dict(pretrained), "state_dict"
    raise ValueError(
        f"pretrained must be None, True (timm weights, online), a named source {sorted(NAMED_SOURCES)}, a path to a "
        ".safetensors/.pth file or a state dict, "
        f"got {type(pretrained).__name__}"
    )


def named_state_dict(name: str, timm_name: str | None) -> dict[str, Tensor]:
    """The state dict of a named offline source (`imagenet.NAMED_SOURCES`) for the timm architecture `timm_name`.

    Raises:
        ValueError: the source does not fit the architecture (the message names the models it fits).
        MissingWeightsPackageError: the package that ships the weights is not installed (with the pip command).
    """
    archs, loader = NAMED_SOURCES[name]
    arch = (timm_name or "").split(".")[0]
    if arch not in archs:
        raise ValueError(f"pretrained={name!r} holds weights for the timm architectures {archs}, not {timm_name!r}; "
                         "use it with the Lite0 models (e.g. 'agw_lite0', 'vi_lite0', 'icre_lite0'), or pass "
                         "pretrained=True / a weights file for this one")
    return loader()


def load_pretrained(model: nn.Module, pretrained: bool | str | Path | Mapping[str, Tensor] | None,
                    timm_name: str | None = None) -> LoadReport | None:
    """Load pretrained weights into a (timm) backbone.

    Args:
        model: the module whose `state_dict()` keys the weights use (timm naming for timm backbones).
        pretrained: None/False: nothing. True: timm's weights for `timm_name` (online only). A named offline
            source: "imagenet-lite0" (`workbench.models.imagenet`). A path: a local `.safetensors` or `.pth` state
            dict. A mapping: a state dict already in memory.
        timm_name: timm model name with optional tag ("resnet50.tv_in1k"); defaults to the model's own
            `pretrained_cfg` when it is a timm model.

    Returns:
        The `LoadReport`, or None when nothing was loaded.

    Raises:
        PretrainedWeightsError: `pretrained=True` but the weights cannot be downloaded (the message says how to pass
            a local file).
        FileNotFoundError: the path does not exist.
        ValueError: `pretrained` of an unsupported type.
    """
    resolved = resolve_pretrained(pretrained, timm_name, model)
    if resolved is None:
        return None
    state, source = resolved
    return load_state_dict_into(model, state, source=source)


def filled_fraction(report: LoadReport) -> float:
    """Fraction of the target's tensors that received one (buffers such as num_batches_tracked excluded)."""
    total = len(report.loaded) + len(report.missing)
    return len(report.loaded) / total if total else 0.0


def finish_pretrained(model: nn.Module, resolved: tuple[dict[str, Tensor], str] | None,
                      backbone_report: LoadReport | None, min_fraction: float = MIN_FILLED) -> LoadReport | None:
    """Second step of pretrained loading, once a workbench model is fully built around its backbone.

    A source with the workbench model's own keys (a run folder, its `best.safetensors` or `last.pt`, of the same
    architecture) fills the backbone with nothing; it is loaded into the whole model here instead (classifier
    heads of another size skipped). Then the check: a source that fills less than `min_fraction` of the tensors is
    an error that names what was expected and what was found, never a silent start from random weights.

    Args:
        model: the built model.
        resolved: `resolve_pretrained(...)` output (None: nothing requested).
        backbone_report: what loading `resolved` into the bare backbone did (`load_state_dict_into(...,
            warn=False)`).

    Raises:
        ValueError: the source fills too little of the model.
    """
    if resolved is None:
        return None
    state, source = resolved
    report = backbone_report
    target = model.state_dict()
    own = sum(1 for k, v in state.items() if k in target and tuple(target[k].shape) == tuple(v.shape))
    if report is None or own > len(report.loaded):  # the workbench model's own keys: load into the whole model
        report = load_state_dict_into(model, state, source, head_prefixes=HEAD_PREFIXES + ("classifiers.",),
                                      warn=False)
        scope = f"the {type(model).__name__} model"
    else:
        scope = "the backbone"
    fraction = filled_fraction(report)
    if fraction < min_fraction:
        expected = list(report.missing)[:3]
        found = list(state)[:3]
        raise ValueError(
            f"pretrained weights {source} fill {len(report.loaded)} of {len(report.loaded) + len(report.missing)} "
            f"tensors of {scope} ({fraction:.0%}; at least {min_fraction:.0%} needed). Expected keys such as "
            f"{expected} (a timm ImageNet state dict of the backbone, or a workbench run folder / its weights of the "
            f"same architecture); the file has keys such as {found}"
            f"{'' if not report.mismatched else f' and shape mismatches such as {list(report.mismatched)[:2]}'}.")
    _warn_incomplete(report, source)
    return report
