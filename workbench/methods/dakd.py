"""DAKD's two training phases as workbench methods (METHODS.md 2.2-2.8).

DAKD (Dual-Aligned Knowledge self-Distillation, KBS 330, 114525, 2025) [CODE: Fouroy4/DAKD]:

    phase A  "dakd_teacher": the single-stream ResNet-50 trained with MCE's memory-contrastive recipe
             [CODE: IDLNL/MCE]; memories re-built from eval-mode features at every epoch (`workbench.losses.memory`)
    phase B  "dakd": a fresh student of the same architecture, trained with distillation only
             (`workbench.losses.kd.dakd_loss`) from the frozen teacher of phase A, or any saved run (the baseline's
             included); the student's inference path is its backbone alone, at no extra cost.

    python -m workbench train --method dakd_teacher --dataset synthetic-vi --name teacher
    python -m workbench train --method dakd --dataset synthetic-vi method_options.teacher=runs/teacher \\
        data.cutswap=code_faithful

Both methods build the model named by `cfg.model.name` with no classifier (DAKD `model.py`: `classification=False`)
and, for the workbench's VI CNNs (`vi_r50`, `agw_r50`, `test_vi_resnet`), DAKD's single stream (no modality-specific
stem, modality argument ignored) with a learnable GeM exponent, unless `cfg.model.kwargs` says otherwise or
`method_options["single_stream"]` is False.

`cfg.method_options` keys

| key | phase | default (code) | meaning / paper reading |
| --- | --- | --- | --- |
| `teacher` | B | required (or `teacher_model`) | run folder (any method) or weights file of the student's architecture |
| `teacher_model` | B | - | an `nn.Module` teacher instead (notebooks, tests; its repr is what config.json records) |
| `ablation` | B | "full" | "only_kd", "no_instance", "no_class" (code: `full_mlkd`, `mlkd_no_instance`, ...) |
| `mask_mode` | B | "le" | keep the less confident half; "gt" = paper (confident half); "none" |
| `mask_granularity` | B | "scalar" | batch-mean KD x mean(mask) (code); "per_sample" = the intended selection |
| `strong_uses_weak_for_T26` | B | True | T=2, 6 of the visible sums use the infrared pair (code); False = clean |
| `temperatures` | B | (4, 3, 5, 2, 6) | temperature set; the first is the `only_kd` temperature |
| `kd_weight`, `instance_weight`, `only_kd_weight`, `tau_c`, `standardize` | B | 0.9, 0.5, 1.0, 0.05, True | loss constants |
| `double_forward` | B | False | True: the code's discarded extra student forward (BN statistics updated twice) |
| `channels` | A | 3 | 3: visible + infrared + channel-exchanged view (MCE `--channel 3`); 2: without the third view |
| `gc_weight`, `mem_weight`, `sid_weight`, `caid_weight`, `kl_weight` | A | 1, 1, 1, 0.4, 1.2 | MCE weights |
| `tau`, `margin`, `global_momentum`, `modality_momentum`, `hard_global`, `kl_uses_online_memory` | A | 0.05, 0.3, 0.1, 0.25, True, False | MCE constants |
| `single_stream` | A, B | True | DAKD's one-stream network for the workbench VI CNNs |

CutSwap is a data option: `data.cutswap` = "code_faithful" (whole image channel-exchanged, as shipped), "intended"
(pasted region) or "off" (`workbench.data.transforms.CutSwap`). The DAKD student uses it on the visible stream;
the MCE teacher recipe has none.

Inferred details (not in either public code): the teacher's third view is built by `ChannelExchange` from the
already augmented visible batch (`batch["rgb"]`) when the loader gives no `batch["rgb_ca"]`, so it shares the visible
image's crop and erasing (MCE draws them independently); a two-stem teacher (e.g. the AGW baseline) sees that view
through its visible stem. A run resumed mid-epoch restores the teacher memories as they were at the
interrupted step (`DAKDTeacher.state_dict`), so it continues exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.config import Config, option
from workbench.data.samples import INFRARED as IR
from workbench.data.samples import VISIBLE as RGB
from workbench.losses.kd import DAKDLossConfig, compute_prototypes, dakd_loss
from workbench.losses.memory import MCELossConfig, MCEMemories, mce_teacher_loss
from workbench.methods.base import Method, load_run_model, register_method
from workbench.models.output import ReIDOutput
from workbench.utils import unwrap_model

# Registered VI CNN entry points that accept `modality_specific` / `learn_gem_p` (workbench.models.vi_cnn).
VI_CNN_MODELS = ("vi_r50", "agw_r50", "test_vi_resnet")


@dataclass(frozen=True)
class DAKDTeacherOptions(MCELossConfig):
    """`dakd_teacher`'s `cfg.method_options`: the MCE loss constants (`MCELossConfig`) and these."""

    channels: int = option(3, choices=(2, 3))  # MCE --channel: 3 = visible + infrared + channel-exchanged view
    single_stream: bool = True       # DAKD's one-stream network for the workbench VI CNNs
    # Images the per-epoch memories are built from: "test" = resize only, as MCE does (`transform_test` in
    # [CODE: IDLNL/MCE, train.py]); "train" = one draw of the training batches' own augmentation per image, so the
    # memories and the batch features see the same kind of image (issue 19's hypothesis test, not published).
    memory_images: str = option("test", choices=("test", "train"))


@dataclass(frozen=True)
class DAKDOptions(DAKDLossConfig):
    """`dakd`'s `cfg.method_options`: the student loss switches (`DAKDLossConfig`) and these."""

    teacher: str | None = None       # run folder (any method) or weights file; or `teacher_model`
    teacher_model: Any = None        # an nn.Module teacher (notebooks, tests); config.json records its repr
    double_forward: bool = False     # the code's discarded extra student forward (BN statistics updated twice)
    single_stream: bool = True       # DAKD's one-stream network for the workbench VI CNNs


def _modality(n: int, index: int, device: torch.device) -> Tensor:
    return torch.full((n,), index, dtype=torch.long, device=device)


def _section(options: Any, klass: type) -> Any:
    """The `klass` part of a method's parsed options (its loss configuration)."""
    return klass(**{f.name: getattr(options, f.name) for f in dataclasses.fields(klass)})


class _DAKDModel(Method):
    """Model building shared by both phases: no classifier, single stream for the workbench VI CNNs."""

    def build_model(self, cfg: Config, num_classes: int) -> nn.Module:
        return super().build_model(cfg, 0)

    def model_kwargs(self, cfg: Config) -> dict[str, Any]:
        kwargs = super().model_kwargs(cfg)
        if cfg.model.name in VI_CNN_MODELS and self.options(cfg).single_stream:
            kwargs.setdefault("modality_specific", "none")
            kwargs.setdefault("learn_gem_p", True)  # DAKD resnet.py: GeM with a learnable p (init 3)
        return kwargs


def _vi_tensors(batch: dict[str, Any], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    if "rgb" not in batch or "ir" not in batch:
        raise ValueError(f"DAKD trains on visible-infrared pair batches with 'rgb' and 'ir' images; got keys "
                         f"{sorted(batch)}. Use a visible-infrared dataset (e.g. 'synthetic-vi', 'sysu-mm01').")
    rgb = batch["rgb"].to(device, non_blocking=True)
    ir = batch["ir"].to(device, non_blocking=True)
    return rgb, ir, batch["label"].to(device).long()


def _split_by_modality(samples: list) -> tuple[list, list]:
    rgb = [s for s in samples if s.modality == "rgb"]
    ir = [s for s in samples if s.modality == "ir"]
    if not rgb or not ir or len(rgb) + len(ir) != len(samples):
        raise ValueError("DAKD needs visible-infrared training samples (modality 'rgb' or 'ir', both present); got "
                         f"modalities {sorted({s.modality for s in samples})}")
    return rgb, ir


def _eval_features(model: nn.Module, samples: list, cfg: Config, method: Method) -> Tensor:
    """Eval-mode retrieval features (N, D) of `samples` (test transform), as a float tensor on the model's device."""
    from workbench.features import extract_features

    model = unwrap_model(model)
    feats = extract_features(model, samples, cfg, method=method, progress=False).branches["feats"]
    return torch.from_numpy(feats).to(next(model.parameters()).device)


@torch.no_grad()
def _augmented_features(model: nn.Module, samples: list, cfg: Config, method: Method, modality: str,
                        epoch: int) -> Tensor:
    """Eval-mode features (N, D) of `samples` under one draw of the training augmentation of their modality stream
    (`data.train_recipe`), drawn from a seed of (run seed, epoch) while the caller's random state is kept."""
    from torch.utils.data import DataLoader

    from workbench.data import torch_datasets
    from workbench.data.loaders import train_recipe_kinds
    from workbench.data.transforms import build_train_transform
    from workbench.utils import preserved_rng, seed_everything

    kinds = train_recipe_kinds(cfg)
    transform = build_train_transform(kinds[0] if modality == "rgb" else kinds[1], cfg.data.height, cfg.data.width)
    model = unwrap_model(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = []
    with preserved_rng():
        seed_everything(cfg.run.seed * 100_003 + 7_919 * epoch + (1 if modality == "ir" else 0))
        dataset = torch_datasets.ImageDataset(samples, transform)
        loader = DataLoader(dataset, batch_size=cfg.run.test_batch_size, shuffle=False,
                            collate_fn=torch_datasets.collate, generator=torch.Generator())
        for batch in loader:
            images = {m: x.to(device) for m, x in batch["images"].items()}
            out = method.forward_eval(model, images, modality, None)
            rows.append(method.retrieval_branches(out)["feats"].float())
    model.train(was_training)
    return torch.cat(rows)


class _ChannelExchangedEval(Method):
    """Eval forward of channel-exchanged visible images (MCE's third memory: `transform_center` in train.py)."""

    def __init__(self, generator: torch.Generator) -> None:
        from workbench.data.transforms import ChannelExchange

        self.exchange = ChannelExchange(gray=2, generator=generator)

    def forward_eval(self, model: nn.Module, images: dict[str, Tensor], modality: str | None,
                     camids: Tensor | None = None) -> ReIDOutput:
        x = torch.stack([self.exchange(img) for img in images["rgb"]])
        return model(x, _modality(len(x), RGB, x.device))


# ----------------------------------------------------------------------------------------------------------------
# Phase A: the MCE teacher


@register_method("dakd_teacher")
class DAKDTeacher(_DAKDModel):
    """Phase A: MCE memory-contrastive training of the teacher [CODE: IDLNL/MCE, model.py + train.py]."""

    options_class = DAKDTeacherOptions

    def setup(self, model: nn.Module, cfg: Config, train_samples: list, device: torch.device) -> None:
        opts = self.options(cfg)
        self.cfg = cfg
        self.loss_cfg = _section(opts, MCELossConfig)
        self.channels = opts.channels
        self.memory_images = opts.memory_images
        self.rgb_samples, self.ir_samples = _split_by_modality(list(train_samples))
        self.num_classes = len({s.label for s in train_samples})
        self.memories: MCEMemories | None = None
        self.epoch = 0
        self.device = device

    def build_memories(self, model: nn.Module, epoch: int = 0) -> MCEMemories:
        """Memories from eval-mode features of all training images: resize-only images (MCE), or with
        `memory_images="train"` one draw of the training augmentation per image."""
        cfg = self.cfg
        if self.memory_images == "train":
            f_v, f_r = (_augmented_features(model, samples, cfg, self, modality, epoch)
                        for modality, samples in (("rgb", self.rgb_samples), ("ir", self.ir_samples)))
        else:
            f_v = _eval_features(model, self.rgb_samples, cfg, self)
            f_r = _eval_features(model, self.ir_samples, cfg, self)
        device = f_v.device
        y_v = torch.tensor([s.label for s in self.rgb_samples], device=device)
        y_r = torch.tensor([s.label for s in self.ir_samples], device=device)
        f_ca = y_ca = None
        if self.channels == 3:
            # A private generator keeps the global RNG (the augmentations' stream) untouched.
            gen = torch.Generator().manual_seed(cfg.run.seed * 100_003 + epoch)
            if self.memory_images == "train":
                f_ca = _augmented_features(model, self.rgb_samples, cfg, _ChannelExchangedEval(gen), "rgb", epoch)
            else:
                f_ca = _eval_features(model, self.rgb_samples, cfg, _ChannelExchangedEval(gen))
            y_ca = y_v
        return MCEMemories.from_features(f_v, y_v, f_r, y_r, self.num_classes, f_ca, y_ca, self.loss_cfg)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Re-initialise the four memories from the current weights [CODE: IDLNL/MCE, train.py::train]."""
        self.epoch = epoch
        self.memories = self.build_memories(model, epoch)

    def state_dict(self) -> dict[str, Any]:
        """The epoch's memories as updated by the steps so far (a mid-epoch resume continues from them)."""
        if self.memories is None:
            return {"epoch": self.epoch}
        mems = {name: getattr(self.memories, name) for name in ("global_", "rgb", "ir", "ca")}
        return {"epoch": self.epoch, "memories": {
            name: {"features": m.features, "centers": m.centers, "momentum": m.momentum, "rule": m.rule}
            for name, m in mems.items() if m is not None}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; without saved memories they are rebuilt from the current weights at the next
        step (a checkpoint written before the memories were saved: not an exact resume)."""
        from workbench.losses.memory import ClassMemory

        self.epoch = int(state.get("epoch", self.epoch))
        saved = state.get("memories")
        if not saved:
            self.memories = None
            return
        device = getattr(self, "device", "cpu")

        def memory(name: str) -> ClassMemory | None:
            if name not in saved:
                return None
            m = ClassMemory(saved[name]["features"].to(device), saved[name]["momentum"], saved[name]["rule"])
            m.centers = saved[name]["centers"].clone()
            return m

        self.memories = MCEMemories(memory("global_"), memory("rgb"), memory("ir"), memory("ca"))

    def _third_view(self, batch: dict[str, Any], rgb: Tensor) -> Tensor:
        if "rgb_ca" in batch:
            return batch["rgb_ca"].to(rgb.device, non_blocking=True)
        from workbench.data.transforms import ChannelExchange

        exchange = ChannelExchange(gray=2)
        return torch.stack([exchange(img) for img in rgb])

    def training_losses(self, model: nn.Module, batch: dict[str, Any], cfg: Config) -> dict[str, Tensor]:
        if not hasattr(self, "loss_cfg"):
            raise ValueError("call setup(model, cfg, train_samples, device) before training_losses")
        device = next(model.parameters()).device
        rgb, ir, labels = _vi_tensors(batch, device)
        n = len(rgb)
        views, mods = [rgb, ir], [RGB, IR]
        if self.channels == 3:
            views.append(self._third_view(batch, rgb))
            mods.append(RGB)
        images = torch.cat(views)
        modality = torch.cat([_modality(n, m, device) for m in mods])
        if self.memories is None:
            self.memories = self.build_memories(model, self.epoch)
        out = model(images, modality)  # one forward of [v; r; ca], as MCE (shared BN batch statistics)
        feats = out.feats.float().split(n)
        f_v, f_r = feats[0], feats[1]
        f_ca = feats[2] if self.channels == 3 else None
        terms = mce_teacher_loss(f_v, f_r, f_ca, labels, self.memories, self.loss_cfg)
        with torch.no_grad():  # MCE updates in the backward pass with the same normalised features
            self.memories.update(F.normalize(f_v, dim=1), F.normalize(f_r, dim=1),
                                 None if f_ca is None else F.normalize(f_ca, dim=1), labels)
        return terms


# ----------------------------------------------------------------------------------------------------------------
# Phase B: the student


def load_teacher(cfg: Config, device: torch.device | str, method: Method | None = None) -> nn.Module:
    """The teacher named by `cfg.method_options`: "teacher_model" (a module) or "teacher" (run folder / weights).

    A run folder is rebuilt with its own config and method (any method: `dakd_teacher`, `baseline`, ...); a weights
    file must match the student's architecture (`cfg.model`).
    """
    opts = DAKD().options(cfg)
    if opts.teacher_model is not None:
        teacher = opts.teacher_model
        if not isinstance(teacher, nn.Module):
            raise ValueError(f"method_options['teacher_model'] must be an nn.Module, got {type(teacher).__name__}")
        return teacher.to(device)
    source = opts.teacher
    if not source:
        raise ValueError("method 'dakd' needs a teacher: set method_options['teacher'] to a run folder (train one "
                         "with --method dakd_teacher, or use a baseline run) or a weights file, or "
                         "method_options['teacher_model'] to an nn.Module")
    path = Path(source)
    if path.is_dir():
        from workbench.runs import load_run

        run = load_run(path)
        check_teacher_run(run.config, cfg, str(source))
        return load_run_model(run, device)
    if not path.is_file():
        raise FileNotFoundError(f"method_options['teacher'] = {str(source)!r} is neither a run folder nor a weights "
                                "file; pass e.g. runs/<teacher run name>")
    from workbench.runs import load_weights

    teacher = (method or DAKD()).build_model(cfg, 0)
    state = load_weights(path)
    target = teacher.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in target.items()
                  if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"the teacher weights {str(source)!r} do not fit the student's architecture (model.name="
            f"{cfg.model.name!r}, the architecture a weights-file teacher is built with): {len(missing)} tensors "
            f"missing {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(mismatched)} of another "
            f"shape {mismatched[:2]}. Pass the teacher's run folder instead (it is rebuilt with its own "
            "architecture), or weights saved from a model of the student's architecture.")
    teacher.load_state_dict(state)
    return teacher.to(device)


def check_teacher_run(teacher: Config, student: Config, source: str) -> None:
    """Refuse a teacher run DAKD cannot distil from: multi-modal data, or another dataset than the student's.

    The teacher's features define the student's prototypes per training identity, so both must see the same
    training identities: same dataset, root and loader options (synthetic size and seed, RegDB trial, ...).
    """
    from workbench.config import dataset_kind

    t, s = teacher.data, student.data
    if dataset_kind(t.dataset) != "vi":
        raise ValueError(
            f"method_options['teacher'] = {source!r} is a multi-modal run (method {teacher.run.method!r} on "
            f"{t.dataset!r}); a DAKD teacher must be a visible-infrared run (e.g. --method dakd_teacher or "
            f"baseline on {s.dataset!r}).")
    mine, theirs = (s.dataset, s.root, s.options), (t.dataset, t.root, t.options)
    if mine != theirs:
        raise ValueError(
            f"method_options['teacher'] = {source!r} was trained on dataset {t.dataset!r} (root {t.root}, options "
            f"{t.options}); the student trains on {s.dataset!r} (root {s.root}, options {s.options}). Its "
            "identities are not the student's, so its prototypes mean nothing here: train the teacher on the "
            "student's data.")


@register_method("dakd")
class DAKD(_DAKDModel):
    """Phase B: distillation-only training of the student [CODE: Fouroy4/DAKD, distillModel.py + MLKD.py]."""

    options_class = DAKDOptions

    def setup(self, model: nn.Module, cfg: Config, train_samples: list, device: torch.device) -> None:
        opts = self.options(cfg)
        self.loss_cfg = _section(opts, DAKDLossConfig)
        self.double_forward = opts.double_forward
        teacher = load_teacher(cfg, device, self)
        if teacher is unwrap_model(model):
            raise ValueError("the teacher must be a separate module from the student (DAKD's student starts fresh)")
        teacher.eval()
        teacher.requires_grad_(False)
        self.teacher = teacher
        rgb, ir = _split_by_modality(list(train_samples))
        num_classes = len({s.label for s in train_samples})
        feats = _eval_features(teacher, rgb + ir, cfg, self)
        labels = torch.tensor([s.label for s in rgb + ir], device=feats.device)
        modality = torch.tensor([RGB] * len(rgb) + [IR] * len(ir), device=feats.device)
        # [CODE: Fouroy4/DAKD, train.py::initialize_memory]: once, before training, never updated.
        self.C_v, self.C_r = compute_prototypes(feats, labels, modality, num_classes)

    @torch.no_grad()
    def teacher_outputs(self, rgb: Tensor, ir: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher eval-mode BN features, L2-normalised: b_v, b_r (B, D)."""
        self.teacher.eval()
        b_v = self.teacher(rgb, _modality(len(rgb), RGB, rgb.device)).feats.float()
        b_r = self.teacher(ir, _modality(len(ir), IR, ir.device)).feats.float()
        return F.normalize(b_v, dim=1), F.normalize(b_r, dim=1)

    def training_losses(self, model: nn.Module, batch: dict[str, Any], cfg: Config) -> dict[str, Tensor]:
        if not hasattr(self, "teacher"):
            raise ValueError("call setup(model, cfg, train_samples, device) before training_losses")
        device = next(model.parameters()).device
        rgb, ir, _ = _vi_tensors(batch, device)
        b_v, b_r = self.teacher_outputs(rgb, ir)
        m_v, m_r = _modality(len(rgb), RGB, device), _modality(len(ir), IR, device)
        if self.double_forward:  # [CODE: Fouroy4/DAKD, train.py::train_distillation] calls the distiller twice
            with torch.no_grad():
                model(rgb, m_v)
                model(ir, m_r)
        # Two student forwards (per-modality BN batch statistics), as DistillModel.forward.
        a_v = model(rgb, m_v).feats.float()
        a_r = model(ir, m_r).feats.float()
        return dakd_loss(a_v, a_r, b_v, b_r, self.C_v.to(device), self.C_r.to(device), self.loss_cfg)
