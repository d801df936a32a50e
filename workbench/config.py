"""Run configuration: frozen dataclasses, saved as JSON beside every run, and three profiles.

    cfg = config.get_config("baseline", "synthetic-vi", profile="cpu-demo")
    cfg = cfg.override(**{"optim.epochs": 5, "data.p": 4})      # plain keyword changes, dotted section names
    cfg.save("runs/x/config.json"); config.Config.load("runs/x/config.json")

Profiles:
    smoke     seconds on a CPU; the test suite and `SMOKE = True` notebooks use it.
    cpu-demo  the notebook default without a GPU: a few minutes on a 2-core laptop, small images, tiny backbones.
    paper     the published recipe, item by item (METHODS.md sections 1.1, 1.3, 2.4, 2.7), meant for a GPU; the recipe
              card (`workbench.recipe`, `python -m workbench recipe`) lists each item with its reference source,
              and tests/test_recipes.py holds the profiles to the reference code.

cpu-demo and smoke keep each method's training augmentation, losses and camera embedding, and shrink the rest
(image size, backbone, optimiser, schedule; test resize bilinear and no re-ranked second test, as calibrated).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILES = ("smoke", "cpu-demo", "paper")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic-vi"      # a name of workbench.data.list_datasets()
    root: str | None = None            # dataset root for real data; None for synthetic presets
    options: dict = field(default_factory=dict)  # extra load_dataset options (ids, seed, difficulty, trial, ...)
    height: int = 288
    width: int = 144
    p: int = 8                         # identities per batch
    k: int = 4                         # instances per identity (per modality for visible-infrared batches)
    val_ids: int = 0                   # training identities held out for checkpoint selection (0: no validation)
    val_draws: int = 10                # seeded validation gallery draws (visible-infrared); scores are their mean
    cutswap: str = "off"               # "off" | "code_faithful" | "intended" (METHODS.md 2.6)
    train_recipe: str = "auto"         # training augmentation, a name of data.transforms.TRAIN_RECIPES ("agw",
                                       # "channel_aug", "channel_aug_regdb", "transreid"); "auto": configs saved
                                       # before the field existed (VI: "channel_aug", multi-modal: "transreid")
    test_resize: str = "bilinear"      # test-time resize filter: "lanczos" (AGW, MCE, DAKD: PIL ANTIALIAS) | "bilinear"
    sync_geometry: bool = False        # one crop/flip for the three aligned modalities (baselines: False)
    cache_images: bool = True          # keep decoded images in RAM (small datasets; PIL decoding dominates on CPU)
    num_workers: int = 0
    batches_per_epoch: int | None = None  # None: the AGW rule floor(N / (P K)) + 1


@dataclass(frozen=True)
class ModelConfig:
    name: str = "agw_r50"              # a name of workbench.models.list_models()
    pretrained: Any = None             # None | True (timm weights, online) | path to a local weights file
    kwargs: dict = field(default_factory=dict)  # extra constructor arguments (e.g. shared_depth for the ViT)
    sie_camera: bool = False           # multi-modal ViTs: camera embedding (SIE) over the dataset's cameras


@dataclass(frozen=True)
class LossConfig:
    id_weight: float = 1.0
    label_smoothing: float = 0.0       # 0.1 in the TOP-ReID defaults, 0 in AGW
    triplet: str = "wrt"               # "wrt" (AGW) | "hard" (batch-hard, margin) | "soft" (soft margin) | "none"
    triplet_weight: float = 1.0
    margin: float = 0.3
    center_weight: float = 0.0
    hetero_center_weight: float = 0.0
    mm_heads: str = "both"             # multi-modal baseline losses: "direct" (CE + triplet on the concatenated
                                       # feature, TOP-ReID DIRECT: 1), "per_modality" (on each modality's feature,
                                       # DIRECT: 0) or "both" (their sum: configs saved before the field existed)


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "sgd"             # "sgd" | "adam" | "adamw"
    lr: float = 0.1                    # learning rate of new layers (BN-neck, classifier)
    backbone_lr_mult: float = 0.1      # AGW: 0.01 for the pre-trained backbone = 0.1 x head lr
    bias_lr_mult: float = 1.0          # TOP-ReID doubles the bias lr
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "step"             # "step" | "cosine" | "constant"
    warmup_epochs: int = 10
    warmup_start: float = 0.1          # lr factor at epoch 0 (AGW: linear (e+1)/10 -> 0.1 at e=0)
    warmup_style: str = "agw"          # "agw": full lr reached at epoch warmup_epochs-1; "transreid": at warmup_epochs
    step_from: int = 0                 # schedule time of the first epoch (TOP-ReID steps its scheduler from epoch 1)
    milestones: tuple = (20, 50)       # step schedule: x gamma at each milestone
    gamma: float = 0.1
    min_lr_factor: float = 0.01        # cosine schedule floor, as a fraction of lr
    epochs: int = 81
    grad_clip: float | None = None     # max gradient norm; None disables
    amp: bool = True                   # mixed precision on CUDA only (ignored on CPU); false = fp32
    amp_dtype: str = "auto"            # "auto" (bfloat16 where supported, else float16) | "bfloat16" | "float16"


@dataclass(frozen=True)
class RunConfig:
    method: str = "baseline"
    profile: str = "paper"
    name: str | None = None            # run folder name under out_dir; None: <method>-<dataset>-<profile>-<time>
    out_dir: str = "runs"
    seed: int = 0
    device: str = "auto"               # "auto": CUDA, then Apple MPS, then CPU
    eval_every: int = 1                # validation every N epochs (when data.val_ids > 0)
    test_batch_size: int = 128
    max_steps: int | None = None       # stop after this many optimiser steps in total (smoke runs)
    log_every: int = 1                 # step records cross to the host and metrics.jsonl every N steps, in one copy
                                       # (still one line per step; the paper profile, for a GPU, uses 50)
    tensorboard: bool = False
    live_plot: bool = True             # live training curves when running inside a notebook
    deterministic: bool = False        # torch.use_deterministic_algorithms (slower; bit-exact resume on GPU)
    test_rerank: bool = False          # also report the test protocol with k-reciprocal re-ranking (DAKD test.sh)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    method_options: dict = field(default_factory=dict)  # framework-specific switches (DAKD masks, ...)

    def override(self, **changes: Any) -> Config:
        """Return a copy with dotted keys changed: `cfg.override(**{"optim.lr": 0.01, "data.p": 4})`.

        Undotted keys name a whole section (`data=DataConfig(...)`) or `method_options`; a key into a dict field
        sets one entry (`"data.options.trial": 2`). Every value is parsed (command-line strings) and checked
        against the field's type and range here, before any work: a bad one raises a `ValueError` naming the key
        and what it accepts.
        """
        sections = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in changes.items():
            section, _, attr = key.partition(".")
            if section not in sections:
                raise ValueError(f"unknown config section {section!r} in {key!r}; sections are {list(sections)}")
            if not attr:
                sections[section] = value
                continue
            target = sections[section]
            if isinstance(target, dict):
                sections[section] = {**target, attr: _coerce(value, None)}
                continue
            names = {f.name: f for f in dataclasses.fields(target)}
            head, _, entry = attr.partition(".")
            if entry and head in names and isinstance(getattr(target, head), dict):  # data.options.trial=2
                new = {**getattr(target, head), entry: _coerce(value, None)}
                sections[section] = dataclasses.replace(target, **{head: new})
                continue
            if attr not in names:
                raise ValueError(f"unknown option {key!r}; {section} has {sorted(names)}")
            parsed = check_value(key, value, names[attr].type)
            sections[section] = dataclasses.replace(target, **{attr: parsed})
        return Config(**sections)

    def validate(self) -> Config:
        """Check every field against its type and range (`check_value`); return self. `fit` calls this first."""
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            if dataclasses.is_dataclass(section):
                for g in dataclasses.fields(section):
                    value = getattr(section, g.name)
                    if check_value(f"{f.name}.{g.name}", value, g.type) != value:
                        raise ValueError(f"{f.name}.{g.name}={value!r} has the wrong type; expected {g.type}")
            elif not isinstance(section, dict):
                raise ValueError(f"{f.name} must be a dict, got {type(section).__name__}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=str))

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        def build(klass, values):
            names = {f.name for f in dataclasses.fields(klass)}
            unknown = set(values) - names
            if unknown:
                raise ValueError(f"unknown {klass.__name__} options {sorted(unknown)} in saved config")
            values = {k: tuple(v) if isinstance(getattr(klass, k, None), tuple) else v for k, v in values.items()}
            return klass(**values)

        data = dict(d.get("data", {}))
        if data and "val_draws" not in data:  # saved before validation drew ten galleries: it selected on one
            data["val_draws"] = 1
        return cls(
            data=build(DataConfig, data),
            model=build(ModelConfig, d.get("model", {})),
            loss=build(LossConfig, d.get("loss", {})),
            optim=build(OptimConfig, d.get("optim", {})),
            run=build(RunConfig, d.get("run", {})),
            method_options=dict(d.get("method_options", {})),
        )

    @classmethod
    def load(cls, path: str | Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _coerce(value: Any, current: Any) -> Any:
    """Parse command-line strings into the type of the current value ("0.1" -> 0.1, "true" -> True, "20,50" -> (20, 50))."""
    if not isinstance(value, str) or isinstance(current, str):
        return value
    text = value.strip()
    if text.lower() in ("none", "null"):
        return None
    if isinstance(current, bool) or text.lower() in ("true", "false"):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true/false, got {value!r}")
        return text.lower() in ("true", "1")
    if isinstance(current, tuple):
        return tuple(_coerce(v, 0) for v in text.split(",") if v)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# Allowed values of string options and ranges of numeric ones, checked by `check_value` (and so by `override` and
# `Config.validate`). A new field needs an entry only when its type alone does not say what is valid.
CHOICES: dict[str, tuple[str, ...]] = {
    "data.cutswap": ("off", "code_faithful", "intended"),
    "loss.triplet": ("wrt", "hard", "soft", "none"),
    "optim.optimizer": ("sgd", "adam", "adamw"),
    "optim.schedule": ("step", "cosine", "constant"),
    "optim.warmup_style": ("agw", "transreid"),
    "run.profile": PROFILES,
}
_AT_LEAST_1 = (1, None, "an integer >= 1")
_AT_LEAST_0 = (0, None, "a number >= 0")
RANGES: dict[str, tuple[float | None, float | None, str]] = {  # key: (min, max, how to say it); both inclusive
    "data.height": _AT_LEAST_1, "data.width": _AT_LEAST_1, "data.p": _AT_LEAST_1, "data.k": _AT_LEAST_1,
    "data.val_ids": (0, None, "an integer >= 0 (0: no validation)"), "data.val_draws": _AT_LEAST_1, "data.num_workers": _AT_LEAST_0,
    "data.batches_per_epoch": _AT_LEAST_1,
    "loss.id_weight": _AT_LEAST_0, "loss.triplet_weight": _AT_LEAST_0, "loss.margin": _AT_LEAST_0,
    "loss.center_weight": _AT_LEAST_0, "loss.hetero_center_weight": _AT_LEAST_0,
    "loss.label_smoothing": (0, 0.999, "a number in [0, 1)"),
    "optim.lr": (1e-12, None, "a number > 0"), "optim.backbone_lr_mult": _AT_LEAST_0,
    "optim.bias_lr_mult": _AT_LEAST_0, "optim.momentum": (0, 1, "a number in [0, 1]"),
    "optim.weight_decay": _AT_LEAST_0, "optim.warmup_epochs": (0, None, "an integer >= 0"),
    "optim.warmup_start": (1e-12, 1, "a number in (0, 1]"), "optim.gamma": (1e-12, None, "a number > 0"),
    "optim.min_lr_factor": (0, 1, "a number in [0, 1]"), "optim.milestones": _AT_LEAST_1,
    "optim.epochs": (1, None, "an integer >= 1 (the number of training epochs)"),
    "optim.grad_clip": (1e-12, None, "a number > 0, or none to disable"),
    "run.seed": (0, None, "an integer >= 0"), "run.eval_every": _AT_LEAST_1, "run.test_batch_size": _AT_LEAST_1,
    "run.max_steps": (1, None, "an integer >= 1, or none"), "run.log_every": _AT_LEAST_1,
}


_EXAMPLES = {"int": "2", "float": "0.01", "bool": "true", "str": "name", "tuple": "20,50", "dict": '{"trial":2}'}


def check_value(key: str, value: Any, annotation: Any, *, choices: tuple | None = None,
                bounds: tuple[float | None, float | None, str] | None = None) -> Any:
    """Parse `value` (command-line text or a Python value) into the type `annotation` names, check its range.

    Args:
        key: the dotted option ("optim.epochs"), for the message and the `CHOICES` / `RANGES` tables.
        annotation: the dataclass field's type, as written ("int", "float | None", "tuple", "Any", ...).
        choices: the allowed values, instead of `CHOICES[key]` (method options declare theirs with `option`).
        bounds: (min, max, how to say it), both inclusive, instead of `RANGES[key]`.

    Raises:
        ValueError: naming the key, the value and what it accepts.
    """
    choices = CHOICES.get(key) if choices is None else choices
    bounds = RANGES.get(key) if bounds is None else bounds
    kinds = {t.strip().split("[")[0] for t in str(annotation).split("|")}  # "tuple[int, ...]" -> "tuple"
    if "Any" in kinds:
        return _coerce(value, None)
    optional = "None" in kinds
    kinds.discard("None")
    kind = kinds.pop() if len(kinds) == 1 else "str"
    example = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text",
               "tuple": "comma-separated numbers", "dict": "a JSON object"}.get(kind, kind)

    def bad(what: str) -> ValueError:
        accepts = bounds[2] if bounds else example + (" or none" if optional else "")
        one_of = f", one of {choices}" if choices else ""
        return ValueError(f"{key}={value!r}: {what}. Expected {accepts}{one_of}, e.g. "
                          f"{key}={choices[0] if choices else _EXAMPLES.get(kind)}.")

    parsed = value
    if isinstance(value, str) and kind != "str":
        text = value.strip()
        if text.lower() in ("none", "null"):
            parsed = None
        elif kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise bad("not a boolean")
            parsed = text.lower() in ("true", "1")
        elif kind == "tuple":
            parsed = tuple(_coerce(v, 0) for v in text.split(",") if v.strip())
        else:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                raise bad("cannot be parsed") from None
    if parsed is None:
        if not optional:
            raise bad("none is not allowed")
        return None
    if kind == "int" and (isinstance(parsed, bool) or not isinstance(parsed, int)):
        if isinstance(parsed, float) and parsed.is_integer():
            parsed = int(parsed)
        else:
            raise bad(f"got {type(parsed).__name__}")
    elif kind == "float":
        if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
            raise bad(f"got {type(parsed).__name__}")
        parsed = float(parsed)
        if not math.isfinite(parsed):
            raise bad("not a finite number")
    elif kind == "bool" and not isinstance(parsed, bool):
        raise bad(f"got {type(parsed).__name__}")
    elif kind == "str" and not isinstance(parsed, str):
        raise bad(f"got {type(parsed).__name__}")
    elif kind == "dict" and not isinstance(parsed, dict):
        raise bad(f"got {type(parsed).__name__}")
    elif kind == "tuple":
        if not isinstance(parsed, (tuple, list)):
            raise bad(f"got {type(parsed).__name__}")
        parsed = tuple(parsed)
    if choices and parsed not in choices:
        raise bad("not a valid choice")
    if bounds:
        low, high, _ = bounds
        for x in (parsed if isinstance(parsed, tuple) else (parsed,)):
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise bad(f"{x!r} is not a number")
            if (low is not None and x < low) or (high is not None and x > high):
                raise bad("out of range")
    return parsed


# --------------------------------------------------------------------------------------------------------------------
# Method options (`cfg.method_options`): each method declares a frozen dataclass of them, one field per key, with
# `option` where the type alone does not say what is valid; `parse_options` checks a request against it.

def option(default: Any, *, choices: tuple | None = None, low: float | None = None, high: float | None = None,
           accepts: str | None = None) -> Any:
    """A field of a method's options dataclass with the values `parse_options` accepts beyond its type.

    Args:
        default: the field's default.
        choices: the allowed values.
        low, high: inclusive bounds (of every element, for a tuple).
        accepts: how an error message says the range ("a number > 0"); default built from the bounds.
    """
    metadata: dict[str, Any] = {}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if low is not None or high is not None:
        text = accepts or (f"a number in [{low}, {high}]" if low is not None and high is not None
                           else f"a number >= {low}" if low is not None else f"a number <= {high}")
        metadata["bounds"] = (low, high, text)
    return field(default=default, metadata=metadata)


def parse_options(options: Mapping[str, Any], schema: type, method: str) -> dict[str, Any]:
    """Check the `method_options` of `method` against its options dataclass; return them parsed into its types.

    Command-line text is parsed as the config fields' (`check_value`: "2", "true", "none", "4,2"), plus what
    `Config.override` has already made of it: the numbers 1 / 0 for a boolean, an integer for a text field (a run
    folder named "123"), "none" for a text field whose choices include it, one number for a tuple.

    Args:
        options: `cfg.method_options`, or part of it.
        schema: the method's options dataclass (`option` fields carry choices and ranges).
        method: the method's name, for the messages.

    Returns:
        {key: parsed value} for the keys of `options` only (the caller fills the defaults, or presets first).

    Raises:
        ValueError: an unknown key (naming it, its close matches and every valid key), or a value of the wrong type
            or out of range (naming `method_options.<key>`, the value and what it accepts).
    """
    if not isinstance(options, Mapping):
        raise ValueError(f"method_options must be a dict of option names to values, got {type(options).__name__}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = [key for key in options if key not in fields]
    if unknown:
        valid = ", ".join(sorted(fields)) if fields else "none (it takes no method_options)"
        named = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), list(fields), n=3)
            named.append(f"{key!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
        raise ValueError(f"method {method!r} has no method_options {', '.join(named)}; its method_options are: "
                         f"{valid}")
    values = {}
    for key, value in options.items():
        f = fields[key]
        annotation = _annotation(f)
        kinds = {t.strip().split("[")[0] for t in annotation.split("|")}
        choices = f.metadata.get("choices")
        if kinds == {"bool"} and isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            value = bool(value)
        elif kinds == {"str"} and value is None and choices and "none" in choices:
            value = "none"
        elif "str" in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif "tuple" in kinds and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value,)
        values[key] = check_value(f"method_options.{key}", value, annotation, choices=choices,
                                  bounds=f.metadata.get("bounds"))
    return values


def check_options(options: Any) -> None:
    """Check every field of an options dataclass instance against its type, choices and range (its
    `__post_init__` calls this, so options built in Python are held to what `parse_options` accepts).

    Raises:
        ValueError: naming `method_options.<field>`, the value and what it accepts.
    """
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        key = f"method_options.{f.name}"
        parsed = check_value(key, value, _annotation(f), choices=f.metadata.get("choices"),
                             bounds=f.metadata.get("bounds"))
        if parsed != value or isinstance(parsed, bool) != isinstance(value, bool):
            raise ValueError(f"{key}={value!r} has the wrong type; expected {_annotation(f)}")


def _annotation(f: dataclasses.Field) -> str:
    """A dataclass field's type as written ("float", "int | None"), whether or not annotations are postponed."""
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


# --------------------------------------------------------------------------------------------------------------------
# Profiles. Each entry: the method's paper recipe, and how cpu-demo and smoke shrink it.

def _vi_paper() -> Config:
    """AGW recipe on SYSU-MM01 (METHODS.md 1.1) [CODE: mangye16/Cross-Modal-Re-ID-baseline, train.py]: 288x144,
    P=8 x K=4+4, pad 10 / random crop / flip only, SGD nesterov 0.01 for the backbone (stems, shared stages, non-local
    blocks) and 0.1 for the BN-neck and classifier, wd 5e-4, lr (e+1)/10 for 10 epochs, x0.1 at 20, x0.01 at 50,
    81 epochs, CE + WRT, Lanczos test resize. The reference trains in fp32: `optim.amp=false` reproduces that."""
    return Config(
        data=DataConfig(dataset="sysu-mm01", height=288, width=144, p=8, k=4, val_ids=40, train_recipe="agw",
                        test_resize="lanczos"),
        model=ModelConfig(name="agw_r50", pretrained=True),
        loss=LossConfig(triplet="wrt", label_smoothing=0.0),
        optim=OptimConfig(optimizer="sgd", lr=0.1, backbone_lr_mult=0.1, weight_decay=5e-4, schedule="step",
                          warmup_epochs=10, warmup_start=0.1, milestones=(20, 50), gamma=0.1, epochs=81),
        run=RunConfig(method="baseline", profile="paper"),
    )


def _mm_paper() -> Config:
    """TOP-ReID BASELINE recipe on RGBNT201 (METHODS.md 1.3) [CODE: 924973292/TOP-ReID, configs/RGBNT201/TOP-ReID.yml,
    config/defaults.py]: 256x128, 8 ids x 16 instances, SGD lr 0.009, wd 1e-4, bias lr x2, timm cosine with 10 warm-up
    epochs from 0.01 lr to a floor of 0.001 lr stepped from epoch 1, 120 epochs, SIE camera embedding (coefficient
    3.0), CE (eps 0.1) + soft-margin triplet on the concatenated feature (DIRECT: 1), fp16 autocast."""
    return Config(
        data=DataConfig(dataset="rgbnt201", height=256, width=128, p=8, k=16, val_ids=20, train_recipe="transreid",
                        test_resize="bilinear"),
        model=ModelConfig(name="mm_vit_b16", pretrained=True, kwargs={"sie_coef": 3.0}, sie_camera=True),
        loss=LossConfig(triplet="soft", label_smoothing=0.1, mm_heads="direct"),
        optim=OptimConfig(optimizer="sgd", lr=0.009, backbone_lr_mult=1.0, bias_lr_mult=2.0, weight_decay=1e-4,
                          nesterov=False, schedule="cosine", warmup_epochs=10, warmup_start=0.01, warmup_style="transreid",
                          min_lr_factor=0.001, epochs=120, step_from=1, amp_dtype="float16"),
        run=RunConfig(method="baseline", profile="paper"),
    )


VI_DATASETS = ("sysu-mm01", "regdb", "llcm")
MM_DATASETS = ("rgbnt201", "rgbnt100", "msvr310")


def dataset_layout(dataset: str) -> str:
    """The real dataset whose layout and protocol a dataset name follows ("synthetic-vi" -> "sysu-mm01")."""
    name = {"synthetic-vi": "sysu-mm01", "synthetic-rgbnt": "rgbnt201"}.get(dataset, dataset)
    name = name.removeprefix("synthetic-")
    if name in VI_DATASETS + MM_DATASETS:
        return name
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {VI_DATASETS + MM_DATASETS} or a synthetic preset "
                     "('synthetic-vi', 'synthetic-rgbnt', 'synthetic-<layout>')")


def dataset_kind(dataset: str) -> str:
    """"vi" (visible-infrared, single images) or "mm" (aligned RGB/NIR/TIR triplets) for a dataset name."""
    return "vi" if dataset_layout(dataset) in VI_DATASETS else "mm"


def _dakd_teacher_paper() -> Config:
    """MCE teacher recipe used by DAKD (METHODS.md 2.4) [CODE: IDLNL/MCE, train.py, data_loader.py]: single-stream
    ResNet-50, 384x128 on SYSU-MM01, P=8 x K=4, channel augmentation, Adam 3.5e-4 for every parameter, wd 5e-4,
    lr (e+1)/10 for e < 10, x0.1 for e > 20, x0.01 for e >= 40, 160 epochs, Lanczos test resize, fp32 in the
    reference. RegDB: see `_follow_dataset`."""
    return Config(
        data=DataConfig(dataset="sysu-mm01", height=384, width=128, p=8, k=4, val_ids=40, train_recipe="channel_aug",
                        test_resize="lanczos"),
        model=ModelConfig(name="vi_r50", pretrained=True),
        loss=LossConfig(triplet="none"),
        optim=OptimConfig(optimizer="adam", lr=3.5e-4, backbone_lr_mult=1.0, weight_decay=5e-4, schedule="step",
                          warmup_epochs=10, warmup_start=0.1, milestones=(21, 40), gamma=0.1, epochs=160),
        run=RunConfig(method="dakd_teacher", profile="paper"),
    )


def _dakd_student_paper() -> Config:
    """DAKD student recipe (METHODS.md 2.7) [CODE: Fouroy4/DAKD, train.py, train.sh, test.sh]: same network from
    ImageNet weights, distillation losses only, Adam 3.5e-4, no weight decay, constant lr, 160 epochs, CutSwap on the
    visible stream (code-faithful by default), tested with and without k-reciprocal re-ranking."""
    return _dakd_teacher_paper().override(**{
        "data.cutswap": "code_faithful", "run.method": "dakd", "run.test_rerank": True,
        "optim.weight_decay": 0.0, "optim.schedule": "constant", "optim.warmup_epochs": 0})


def _follow_dataset(cfg: Config, method: str, layout: str) -> Config:
    """Where the reference code sets a recipe item per dataset, the paper profile follows it.

    MCE / DAKD on RegDB [CODE: IDLNL/MCE, train.py; Fouroy4/DAKD, train.py, data_loader.py::RegDBData]: 288x144,
    K = 5, flip / pad 10 (fill 127) / crop / channel random erasing for both modalities and no CutSwap; the MCE
    teacher decays at epochs > 30 and >= 60 (`lr_decay = [30, 60]`). TOP-ReID on the vehicle sets
    [CODE: 924973292/TOP-ReID, configs/RGBNT100/TOP-ReID.yml, configs/MSVR310/TOP-ReID.yml]: per-modality losses
    (DIRECT: 0); MSVR310 also lr 0.001, 100 warm-up epochs, 1000 epochs. SD2-ReID trains on the TOP-ReID recipe
    (METHODS.md 4.2), so it follows the same vehicle items (inferred: its paper's settings are not public). LLCM has
    no setting in either public code; it keeps the SYSU-MM01 values (inferred).
    """
    if method in ("dakd", "dakd_teacher") and layout == "regdb":
        cfg = cfg.override(**{"data.height": 288, "data.width": 144, "data.k": 5,
                              "data.train_recipe": "channel_aug_regdb", "data.cutswap": "off"})
        if method == "dakd_teacher":
            cfg = cfg.override(**{"optim.milestones": (31, 60)})
    if method in ("baseline", "sd2reid") and layout in ("rgbnt100", "msvr310"):
        cfg = cfg.override(**{"loss.mm_heads": "per_modality"})
        if layout == "msvr310":
            cfg = cfg.override(**{"optim.lr": 0.001, "optim.warmup_epochs": 100, "optim.epochs": 1000})
    return cfg


def _icre_paper() -> Config:
    """ICRE recipe, INFERRED from its baselines (METHODS.md 3.3; no public code): ICRE on the AGW ResNet-50,
    384x144 and P=6 x K=4+4 (DEEN), SGD 0.1 head and new modules / 0.01 backbone, nesterov, wd 5e-4, 10 warm-up
    epochs, x0.1 at 20, x0.01 at 80, 151 epochs (DEEN), CE + WRT per head (AGW)."""
    return _vi_paper().override(**{
        "data.height": 384, "data.width": 144, "data.p": 6, "data.k": 4, "model.name": "icre_r50",
        "optim.milestones": (20, 80), "optim.epochs": 151, "run.method": "icre"})


# Synthetic data of the demo profiles (README "Calibration", data_cards/synthetic.md). Sizes follow the real sets'
# proportions: 300 visible-infrared identities split as SYSU-MM01 (241 training incl. 20 held out for validation,
# 59 test), 201 multi-modal identities split as RGBNT201 (171 / 30). Difficulty calibrated on the *validation*
# identities with the cpu-demo baselines from the stand-in start (6 epochs): the multi-modal baseline reaches
# validation rank-1 0.73 on "medium" (chosen). The visible-infrared one stays at 0.33-0.37 whatever we tried
# ("default" 0.35; 10 epochs 0.37; lr 3e-3 0.33; "easy" 0.36 at best): the tiny CNN is the limit, so "default" stays.
# The vehicle presets have entries of their own, keyed by layout (issue 21): the real identity counts (RGBNT100 100
# vehicles split 50 / 50, MSVR310 310 split 155 / 155), a fifth of RGBNT100's 50 training vehicles held out for
# validation (20 of 50 would leave 30 to train on), and a difficulty calibrated the same way, on the validation
# vehicles only (data_cards/synthetic.md, "Calibration of the vehicle demo").
SYNTHETIC_DEMO = {"vi": {"ids": 300, "seed": 0, "difficulty": "default"},
                  "mm": {"ids": 201, "seed": 0, "difficulty": "medium"},
                  "rgbnt100": {"ids": 100, "seed": 0, "difficulty": "easy"},
                  "msvr310": {"ids": 310, "seed": 0, "difficulty": "easy"}}
VEHICLE_LAYOUTS = ("rgbnt100", "msvr310")
# Validation identities of the synthetic presets (`data.val_ids`); 20 unless named here.
SYNTHETIC_VAL_IDS = {"rgbnt100": 10}
# Image size (H, W) of the vehicle layouts by profile: landscape, as vehicles are rendered (128 x 256, METHODS.md
# 1.3; DeMo's vehicle size). The tiny demo ViT's patch 8 gives an 8 x 16 grid at 64 x 128: the 128 patch tokens of
# the paper-size ViT at 128 x 256 with patch 16, and the same token count as the people's 128 x 64 demo.
# The synthetic vehicle presets use 128 x 256 at paper too (the render size, which TOP-ReID's vehicle configs name
# as the alternative to their shipped 256 x 128: "For VehicleID, you can also use [128,256]"); the real rgbnt100 /
# msvr310 paper profiles keep TOP-ReID's shipped 256 x 128 [CODE: 924973292/TOP-ReID, configs/RGBNT100/TOP-ReID.yml].
VEHICLE_SIZE = {"smoke": (32, 64), "cpu-demo": (64, 128), "paper": (128, 256)}
# cpu-demo steps per epoch on the vehicle presets. Their natural epoch (floor(N / (P K)) + 1) is short: 18 batches
# for RGBNT100's 40 training vehicles, 29 for MSVR310, against 62 for the people's RGBNT201 demo, so six epochs left
# the baseline untrained (validation rank-1 0.01, data_cards/synthetic.md). The schedule keeps the people demo's
# shape (1 warm-up epoch, x0.1 after 4). Calibrated on the 10 validation vehicles of synthetic-rgbnt100 with the
# cpu-demo baseline, seed 0 (validation rank-1, mean of the 10 draws): 60 batches (the people demo's 360 steps) 0.18
# on "default", 0.22 on "easy"; 120 batches 0.30; 120 batches and lr 2e-3 0.33; the same on "easy" 0.39, 140
# batches 0.37, 160 batches 0.42 (chosen: the fewest steps tried whose baseline lies in the 0.40-0.80 band; with 10
# validation vehicles 0.39 / 0.37 / 0.42 are within a few points of noise). 160 was first left out for the demo's
# time; since the runner plans its start order, notebook 08 runs beside 02 and adds under a minute to the demo (0.7
# and 0.3 in two measured runs).
VEHICLE_DEMO_BATCHES = 160
VEHICLE_DEMO_LR = 2e-3


def get_config(method: str = "baseline", dataset: str = "synthetic-vi", profile: str = "cpu-demo") -> Config:
    """The configuration of `method` on `dataset` for a profile ("smoke", "cpu-demo" or "paper")."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    kind = dataset_kind(dataset)
    if method in ("dakd", "dakd_teacher", "icre") and kind != "vi":
        raise ValueError(f"method {method!r} is for visible-infrared data; got the multi-modal dataset {dataset!r}")
    base = {"dakd": _dakd_student_paper, "dakd_teacher": _dakd_teacher_paper, "icre": _icre_paper}.get(
        method, _vi_paper if kind == "vi" else _mm_paper)()
    if method == "sd2reid":  # SD2-ReID (METHODS.md 4.2): the TOP-ReID recipe with synchronised crop/flip; HMFE's
        if kind != "mm":     # L_s defaults to half the backbone's depth (6 of 12), see workbench.methods.sd2reid
            raise ValueError(f"method 'sd2reid' is for multi-modal triplets; got the visible-infrared {dataset!r}")
        base = base.override(**{"data.sync_geometry": True})
    cfg = base.override(**{"data.dataset": dataset, "run.method": method, "run.profile": profile})
    layout = dataset_layout(dataset)
    cfg = _follow_dataset(cfg, method, layout)
    vehicles = dataset.startswith("synthetic") and layout in VEHICLE_LAYOUTS
    if dataset.startswith("synthetic"):
        cfg = cfg.override(**{"data.options": dict(SYNTHETIC_DEMO[layout if vehicles else kind]),
                              "model.pretrained": None, "data.val_ids": SYNTHETIC_VAL_IDS.get(layout, 20)})
    if profile == "paper":  # a GPU: no device-to-host copy per step (issue 23); the smaller profiles log every step
        cfg = cfg.override(**{"run.log_every": 50})
        return _vehicle_size(cfg, profile) if vehicles else cfg
    tiny = "test_vi_resnet" if kind == "vi" else "test_mm_vit"
    tiny = "test_icre_resnet" if method == "icre" else tiny
    if profile == "cpu-demo":
        demo = cfg.override(**{
            "data.height": 128, "data.width": 64, "data.p": 8, "data.k": 4,
            "model.name": tiny, "model.pretrained": "synthetic",
            "optim.optimizer": "adam", "optim.lr": 1e-3, "optim.backbone_lr_mult": 1.0, "optim.bias_lr_mult": 1.0,
            "optim.weight_decay": 5e-4, "optim.schedule": "step", "optim.warmup_epochs": 1, "optim.milestones": (4,),
            "optim.step_from": 0, "optim.epochs": 6, "optim.amp": False, "run.eval_every": 2,
            "data.test_resize": "bilinear", "run.test_rerank": False,  # as calibrated; the recipes' are in paper
        })
        if method == "icre":  # notebook 04 trains five of these (the ablation grid): 4 epochs keep it near 8 minutes
            demo = demo.override(**{"optim.epochs": 4, "optim.milestones": (3,)})
        if method == "dakd":  # the student keeps its recipe's shape: constant lr, no weight decay
            demo = demo.override(**{"optim.schedule": "constant", "optim.warmup_epochs": 0, "optim.weight_decay": 0.0})
        return _vehicle_size(demo, profile) if vehicles else demo
    # smoke: seconds on a CPU
    smoke = cfg.override(**{
        "data.options": {**cfg.data.options, "ids": 16} if dataset.startswith("synthetic") else cfg.data.options,
        "data.height": 64, "data.width": 32, "data.p": 4, "data.k": 2, "data.val_ids": 4 if cfg.data.val_ids else 0,
        "data.batches_per_epoch": 3,
        "model.name": tiny, "model.pretrained": None,
        "optim.optimizer": "adam", "optim.lr": 1e-3, "optim.backbone_lr_mult": 1.0, "optim.bias_lr_mult": 1.0,
        "optim.schedule": "constant", "optim.warmup_epochs": 0, "optim.step_from": 0, "optim.epochs": 2,
        "optim.amp": False, "data.test_resize": "bilinear", "run.test_rerank": False,
        "run.eval_every": 1, "run.test_batch_size": 32, "run.live_plot": False,
    })
    return _vehicle_size(smoke, profile) if vehicles else smoke


def _vehicle_size(cfg: Config, profile: str) -> Config:
    """A synthetic vehicle preset's config at the landscape size of `profile` (`VEHICLE_SIZE`); cpu-demo epochs of
    `VEHICLE_DEMO_BATCHES` steps at lr `VEHICLE_DEMO_LR`."""
    height, width = VEHICLE_SIZE[profile]
    cfg = cfg.override(**{"data.height": height, "data.width": width})
    if profile != "cpu-demo":
        return cfg
    return cfg.override(**{"data.batches_per_epoch": VEHICLE_DEMO_BATCHES, "optim.lr": VEHICLE_DEMO_LR})
