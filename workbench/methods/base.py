"""The Method interface and its registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from workbench.config import Config, dataset_kind, dataset_layout, parse_options
from workbench.data.samples import vi_modality_index
from workbench.models.output import ReIDOutput

_METHODS: dict[str, type[Method]] = {}

# Size of the SIE camera table per multi-modal layout: TOP-ReID builds it with `camera_num = num_train_cams`
# [CODE: 924973292/TOP-ReID, data/datasets/make_dataloader.py, modeling/make_model.py]: RGBNT201 cameras 1..4,
# RGBNT100 1..8, MSVR310 0..7 (camera ids stored 0-based, workbench.data.rgbnt / msvr310). Synthetic presets follow
# the layout they copy.
SIE_CAMERAS = {"rgbnt201": 4, "rgbnt100": 8, "msvr310": 8}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def wrap(cls: type[Method]) -> type[Method]:
        _METHODS[name] = cls
        cls.name = name
        return cls

    return wrap


def get_method(name: str) -> Method:
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; available: {sorted(_METHODS)}")
    return _METHODS[name]()


def list_methods() -> list[str]:
    return sorted(_METHODS)


def load_run_model(run, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a run's model from its saved config and load its selected weights (best on validation, else the
    last), in eval mode.

    Args:
        run: a `workbench.runs.Run` or a run folder path.
    """
    from workbench.runs import load_run, load_weights

    run = load_run(run) if not hasattr(run, "weights_path") else run
    cfg = run.config
    method = get_method(cfg.run.method)
    num_classes = int(run.results.get("num_classes", 0))  # written by fit() when the run starts
    model = method.build_model(cfg, num_classes=num_classes)
    model.load_state_dict(load_weights(run.weights_path()))
    return model.to(device).eval()


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that takes no `cfg.method_options` (the baseline): every key is refused."""


class Method:
    """Base class. A method is stateless between runs; per-run state (teachers, memories) lives in `setup`.

    `options_class` declares the method's `cfg.method_options` (a frozen dataclass, `workbench.config.option`
    fields); `options(cfg)` parses them, and `build_model` does so first, so `fit` refuses a misspelt key or a bad
    value before the run folder is made.
    """

    name = "method"
    options_class: type = NoOptions

    def options(self, cfg: Config | Mapping[str, Any]) -> Any:
        """`cfg.method_options` (or the dict itself) parsed into `options_class`.

        Raises:
            ValueError: an unknown key (with its close matches and the valid keys), a value of the wrong type or
                out of range (`workbench.config.parse_options`).
        """
        options = cfg.method_options if isinstance(cfg, Config) else cfg
        return self.options_class(**parse_options(options, self.options_class, self.name))

    def build_model(self, cfg: Config, num_classes: int) -> nn.Module:
        from workbench.models import create_model

        self.options(cfg)  # before any work: the request's method_options are valid
        return create_model(cfg.model.name, num_classes=num_classes, pretrained=self.pretrained_weights(cfg),
                            **self.model_kwargs(cfg))

    def pretrained_weights(self, cfg: Config) -> Any:
        """`cfg.model.pretrained` as the model constructors take it; "synthetic" and "synthetic-distilled" name the
        cpu-demo stand-ins for ImageNet weights (`workbench.pretrain`, `workbench.pretrain_distill`), made and cached
        on first use without touching the run's random state. ("imagenet-lite0" goes to the model as it is.)"""
        from workbench.pretrain_distill import STANDIN_SOURCES, standin_path

        if cfg.model.pretrained in STANDIN_SOURCES:
            return str(standin_path(cfg.model.pretrained, cfg.model.name))
        return cfg.model.pretrained

    def model_kwargs(self, cfg: Config) -> dict[str, Any]:
        kwargs = dict(cfg.model.kwargs)
        if dataset_kind(cfg.data.dataset) == "mm":
            kwargs.setdefault("img_size", (cfg.data.height, cfg.data.width))
            if cfg.model.sie_camera:  # TOP-ReID SIE_CAMERA: True (coefficient: model.kwargs["sie_coef"], 3.0)
                kwargs.setdefault("num_cameras", SIE_CAMERAS[dataset_layout(cfg.data.dataset)])
        elif cfg.model.sie_camera:
            raise ValueError("model.sie_camera applies to the multi-modal ViTs; set model.sie_camera=false for the "
                             f"visible-infrared dataset {cfg.data.dataset!r}")
        return kwargs

    def setup(self, model: nn.Module, cfg: Config, train_samples: list, device: torch.device) -> None:
        """Called once before training (after a resume too): build teachers, memories, prototypes."""

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Called at the start of every epoch (per-epoch memories, schedules of loss weights)."""

    def state_dict(self) -> dict[str, Any]:
        """Per-epoch state a run resumed mid-epoch needs (what `on_epoch_start` built and the steps updated since).

        Saved in every training checkpoint; tensors, numbers, strings and containers of them only (checkpoints are
        read with `weights_only=True`). Stateless methods return {}.
        """
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` output. A run resumed mid-epoch calls this instead of `on_epoch_start` for that
        epoch (after `setup`), so the epoch continues exactly as an uninterrupted one; {} comes from a checkpoint
        written before the method had state."""

    def training_losses(self, model: nn.Module, batch: dict[str, Any], cfg: Config) -> dict[str, Tensor]:
        """Weighted loss terms of one batch; the engine back-propagates their sum and logs each."""
        raise NotImplementedError

    def forward_eval(self, model: nn.Module, images: dict[str, Tensor], modality: str | None,
                     camids: Tensor | None = None) -> ReIDOutput:
        """Eval-mode forward of one batch of samples of one kind (VI: one modality; MM: the aligned triplet)."""
        if modality is not None:  # visible-infrared: modality index per sample
            x = images[modality]
            index = vi_modality_index(modality)
            return model(x, torch.full((x.shape[0],), index, dtype=torch.long, device=x.device))
        return model(images, camids=camids)

    def retrieval_branches(self, out: ReIDOutput) -> dict[str, Tensor]:
        """Named retrieval features of a batch: "feats" always, plus per-modality branches of multi-modal models."""
        branches = {"feats": out.feats}
        for key, value in out.parts.items():
            if key.startswith("cls_"):
                branches[key.removeprefix("cls_")] = value
        return branches
