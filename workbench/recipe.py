"""The recipe card of a configuration: every recipe item, its value and, for paper profiles, where it comes from.

    card = recipe.recipe_card(config.get_config("baseline", "sysu-mm01", "paper"))   # a pandas DataFrame
    print(recipe.format_card(card))
    python -m workbench recipe --method baseline --dataset sysu-mm01 --profile paper [--epochs 0,9,10,20,50,80]

Values are read from the objects a run builds (the training transforms, the optimiser's parameter groups on the
model, the per-epoch scheduler), not restated, so the card shows what would run. Columns: `section`, `item`,
`value`, `source` (paper profiles: the reference repository and file the value was checked against) and `differs`
(where the workbench deliberately departs from the reference, and why). The paper profiles are tested against the
reference recipes written out independently in tests/test_recipes.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pandas as pd
import torch

from workbench.config import Config, dataset_kind, dataset_layout

AGW = "mangye16/Cross-Modal-Re-ID-baseline"
TOP = "924973292/TOP-ReID"
MCE = "IDLNL/MCE"
DAKD = "Fouroy4/DAKD"

# Where each paper-profile item comes from, per reference family. Values are read from the config; these are the
# files they were checked against (and the tests/test_recipes.py oracles typed from them).
SOURCES: dict[str, dict[str, str]] = {
    "agw": {
        "image size": f"{AGW}, train.py (--img_h 288 --img_w 144)",
        "normalisation": f"{AGW}, train.py (transforms.Normalize, ImageNet)",
        "train augmentation": f"{AGW}, train.py::transform_train (Pad 10, RandomCrop, RandomHorizontalFlip); images "
                              "pre-resized with Image.ANTIALIAS (pre_process_sysu.py, data_loader.py::RegDBData)",
        "test resize": f"{AGW}, data_loader.py::TestData (Image.ANTIALIAS to 144x288)",
        "sampler": f"{AGW}, train.py (--batch-size 8 --num_pos 4), utils.py::IdentitySampler",
        "model": f"{AGW}, model.py::embed_net (two stems, shared layers, non-local, GeM, BN-neck)",
        "pretrained": f"{AGW}, resnet.py (torchvision ImageNet ResNet-50)",
        "optimiser": f"{AGW}, train.py (optim.SGD momentum 0.9, nesterov, weight_decay 5e-4)",
        "parameter groups": f"{AGW}, train.py (ignored_params: bottleneck + classifier at lr, the rest at 0.1 lr)",
        "schedule": f"{AGW}, train.py::adjust_learning_rate",
        "epochs": f"{AGW}, train.py (range(start_epoch, 81))",
        "losses": f"{AGW}, train.py + loss.py (CrossEntropyLoss on the classifier, TripletLoss_WRT on x_pool)",
        "test feature": f"{AGW}, model.py (eval returns l2norm(x_pool), l2norm(feat)); train.py keeps the best on "
                        "feat (cmc_att)",
        "precision": f"{AGW}, train.py (no autocast: fp32)",
        "re-ranking": f"{AGW}, train.py / test.py (none)",
        "checkpoint selection": f"{AGW}, train.py (best test rank-1 of the BN feature, every 2 epochs)",
    },
    "topreid": {
        "image size": f"{TOP}, configs/RGBNT201/TOP-ReID.yml (SIZE_TRAIN/SIZE_TEST 256x128)",
        "normalisation": f"{TOP}, config/defaults.py (PIXEL_MEAN = PIXEL_STD = 0.5)",
        "train augmentation": f"{TOP}, data/datasets/make_dataloader.py (Resize bicubic, flip PROB, Pad PADDING, "
                              "RandomCrop, RandomErasing RE_PROB pixel)",
        "test resize": f"{TOP}, data/datasets/make_dataloader.py (val T.Resize: bilinear)",
        "sampler": f"{TOP}, config/defaults.py (IMS_PER_BATCH 128, NUM_INSTANCE 16), data/datasets/sampler.py",
        "model": f"{TOP}, modeling/make_model.py::BASELINE (three ViT-B/16, concatenated CLS features)",
        "pretrained": f"{TOP}, configs (PRETRAIN_PATH_T vitb_16_224_21k.pth)",
        "SIE": f"{TOP}, config/defaults.py (SIE_CAMERA True, SIE_COE 3.0), make_model.py (camera_num = "
               "num_train_cams)",
        "optimiser": f"{TOP}, solver/make_optimizer.py (SGD momentum 0.9, no nesterov)",
        "parameter groups": f"{TOP}, solver/make_optimizer.py (BASE_LR; 'bias' x BIAS_LR_FACTOR 2; WEIGHT_DECAY "
                            "1e-4 = WEIGHT_DECAY_BIAS)",
        "schedule": f"{TOP}, solver/scheduler_factory.py + solver/cosine_lr.py (timm cosine), engine/processor.py "
                    "(scheduler.step(epoch), epoch from 1)",
        "epochs": f"{TOP}, config/defaults.py (MAX_EPOCHS 120)",
        "losses": f"{TOP}, layers/make_loss.py (label-smoothed CE + soft-margin triplet), modeling/make_model.py::"
                  "BASELINE (DIRECT)",
        "loss variant": f"{TOP}, modeling/make_model.py::BASELINE (DIRECT: one head or the other, never both); "
                        "configs/RGBNT201/TOP-ReID.yml DIRECT: 1; configs/RGBNT100, MSVR310 DIRECT: 0",
        "test feature": f"{TOP}, configs (NECK_FEAT before, FEAT_NORM yes)",
        "precision": f"{TOP}, engine/processor.py (torch.cuda.amp autocast + GradScaler: fp16)",
        "re-ranking": f"{TOP}, configs (RE_RANKING no)",
        "checkpoint selection": f"{TOP}, engine/processor.py (test set every epoch, best mAP kept)",
    },
    "mce": {
        "image size": f"{MCE}, train.py (sysu 384x128, regdb 288x144)",
        "normalisation": f"{MCE}, data_loader.py (ImageNet)",
        "train augmentation": f"{MCE}, data_loader.py::SYSUData / RegDBData (transform_color, transform_thermal, "
                              "transform_color1)",
        "test resize": f"{MCE}, data_loader.py::TestData (Image.ANTIALIAS)",
        "sampler": f"{MCE}, train.py (--batch-size 8, --num_pos 4; regdb num_pos 5)",
        "model": f"{DAKD}, model.py + resnet.py (single stream, non-local, learnable GeM, BN-neck)",
        "pretrained": f"{DAKD}, resnet.py (torchvision ImageNet ResNet-50)",
        "optimiser": f"{MCE}, train.py (optim.Adam(net.parameters(), lr, weight_decay=0.0005))",
        "parameter groups": f"{MCE}, train.py (one group: every parameter at lr)",
        "schedule": f"{MCE}, train.py::adjust_learning_rate (lr_decay [20, 40] sysu, [30, 60] regdb; epoch > first)",
        "epochs": f"{MCE}, train.py (range(start_epoch, 160 + start_epoch))",
        "losses": f"{MCE}, train.py + model.py + memory.py (argparse defaults --gc --sid --caid --kl --mem)",
        "test feature": f"{DAKD}, model.py (eval: F.normalize(bn_neck(feats)))",
        "precision": f"{MCE}, train.py (no autocast: fp32)",
        "re-ranking": f"{MCE}, train.py (none)",
        "checkpoint selection": f"{MCE}, train.py (best test mAP, every 2 epochs after epoch 10)",
    },
    "dakd": {
        "image size": f"{DAKD}, train.py (sysu 384x128, regdb 288x144)",
        "normalisation": f"{DAKD}, data_loader.py (ImageNet)",
        "train augmentation": f"{DAKD}, data_loader.py::SYSUData (CutSwap + ChannelRandomErasing visible; "
                              "ChannelRandomErasing + ChannelAdapGray infrared) / RegDBData (no CutSwap)",
        "test resize": f"{DAKD}, data_loader.py::TestData (Image.ANTIALIAS)",
        "sampler": f"{DAKD}, train.sh (--batch-size 8), train.py (num_pos 4; regdb 5)",
        "model": f"{DAKD}, model.py + resnet.py (single stream, non-local, learnable GeM, BN-neck)",
        "pretrained": f"{DAKD}, resnet.py (torchvision ImageNet ResNet-50)",
        "optimiser": f"{DAKD}, train.py (optim.Adam(student.parameters(), lr=args.lr): no weight decay)",
        "parameter groups": f"{DAKD}, train.py (one group: every parameter at lr)",
        "schedule": f"{DAKD}, train.py (no learning-rate adjustment)",
        "epochs": f"{DAKD}, train.py (max_epochs = 160)",
        "losses": f"{DAKD}, distillModel.py + MLKD.py",
        "test feature": f"{DAKD}, model.py (eval: F.normalize(bn_neck(feats)))",
        "precision": f"{DAKD}, train.py (no autocast: fp32)",
        "re-ranking": f"{DAKD}, test.sh (test.py --rerank)",
        "checkpoint selection": f"{DAKD}, train.py (best test mAP, every epoch)",
    },
}


def reference_family(cfg: Config) -> str | None:
    """The reference code a config's paper profile reproduces: "agw", "topreid", "mce", "dakd" or None."""
    if cfg.run.method == "baseline":
        return "agw" if dataset_kind(cfg.data.dataset) == "vi" else "topreid"
    return {"dakd_teacher": "mce", "dakd": "dakd"}.get(cfg.run.method)


def describe_transform(transform) -> str:
    """One line for a `ReIDTransform`: geometry in order, normalisation, then the tensor ops with probabilities."""
    g = transform.geometry
    steps = [f"Resize {g.size[0]}x{g.size[1]} ({g.interpolation})"] if g.size else []
    flip = [f"HFlip p={g.flip_p:g}"] if g.flip_p > 0 else []
    crop = []
    if g.crop:
        crop = ([f"Pad {g.pad} (fill {g.pad_fill})"] if g.pad else []) + ["RandomCrop"]
    steps += flip + crop if g.flip_first else crop + flip
    mean = [round(v, 3) for v in transform.mean.flatten().tolist()]
    std = [round(v, 3) for v in transform.std.flatten().tolist()]
    steps.append(f"Normalize(mean={mean}, std={std})")
    for op in transform.ops:
        name = type(op).__name__
        extra = f" mode={op.mode}" if hasattr(op, "mode") else ""
        extra += f" gray={op.gray}" if hasattr(op, "gray") else ""
        steps.append(f"{name}(p={op.p:g}{extra})" if hasattr(op, "p") else f"{name}({extra.strip()})")
    return " -> ".join(steps)


def _card_model(cfg: Config):
    """The run's model on the meta device (no memory, no weights): its parameter names decide the groups."""
    from workbench.methods import get_method

    light = cfg.override(**{"model.pretrained": None})
    with torch.device("meta"):
        return get_method(cfg.run.method).build_model(light, num_classes=2)


def _group_names(model, params) -> str:
    ids = {id(p) for p in params}
    names = [n for n, p in model.named_parameters() if id(p) in ids]
    heads = sorted({n.split(".")[0] for n in names})
    return f"{len(names)} tensors ({', '.join(heads)})"


def _losses(cfg: Config) -> str:
    lc = cfg.loss
    method = cfg.run.method
    if method == "baseline":
        tri = {"wrt": "weighted-regularisation triplet", "hard": f"batch-hard triplet (margin {lc.margin})",
               "soft": "soft-margin batch-hard triplet", "none": "no triplet"}.get(lc.triplet, lc.triplet)
        ce = f"CE (label smoothing {lc.label_smoothing:g}) x {lc.id_weight:g}"
        if dataset_kind(cfg.data.dataset) == "vi":
            return f"{ce} on the BN-neck logits + {tri} x {lc.triplet_weight:g} on the pooled feature"
        where = {"direct": "on the concatenated feature (direct head)",
                 "per_modality": "summed over the modality features", "both": "direct head + each modality (summed)"}
        return f"{ce} + {tri} x {lc.triplet_weight:g}, {where.get(lc.mm_heads, lc.mm_heads)} (loss.mm_heads=" \
               f"{lc.mm_heads})"
    if method == "dakd_teacher":
        from workbench.methods import get_method

        m = get_method("dakd_teacher").options(cfg)  # an MCELossConfig with the teacher's extra switches
        return (f"MCE: global-centre triplet x {m.gc_weight:g} (margin {m.margin:g}) + global memory CE x "
                f"{m.mem_weight:g} + modality memory CE x {m.sid_weight:g} + CA memory CE x {m.caid_weight:g} + KL x "
                f"{m.kl_weight:g}, tau {m.tau:g}")
    if method == "dakd":
        from workbench.methods import get_method

        d = get_method("dakd").options(cfg)  # a DAKDLossConfig with the student's extra switches
        return (f"DAKD distillation only ({d.ablation}): KD x {d.kd_weight:g} over T={list(d.temperatures)}, "
                f"instance {d.instance_weight:g} / class {1 - d.instance_weight:g}, mask {d.mask_mode} "
                f"({d.mask_granularity})")
    return f"method {method!r}: see its module"


def default_epochs(cfg: Config) -> list[int]:
    """Epochs (0-based) where the schedule changes: first, warm-up end, milestones, cosine middle, last."""
    o = cfg.optim
    marks = {0, 1, max(o.warmup_epochs - 1, 0), o.warmup_epochs, o.epochs - 1}
    if o.schedule == "step":
        for m in o.milestones:
            marks |= {m - o.step_from - 1, m - o.step_from}
    if o.schedule == "cosine":
        marks.add(o.epochs // 2)
    return sorted(e for e in marks if 0 <= e < o.epochs)


def recipe_card(cfg: Config, epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """Every recipe item of `cfg` as rows (section, item, value, source, differs).

    Args:
        cfg: any configuration; sources are filled for paper profiles of the baselines, the MCE teacher and DAKD.
        epochs: 0-based epochs at which to show the learning rate of every group (default `default_epochs`).
    """
    from workbench.data import transforms
    from workbench.data.loaders import train_recipe_kinds
    from workbench.features import test_transform
    from workbench.optim import amp_dtype, build_optimizer, build_scheduler

    family = reference_family(cfg) if cfg.run.profile == "paper" else None
    src = SOURCES.get(family, {})
    rows: list[dict] = []

    def add(section: str, item: str, value, key: str | None = None, differs: str = "") -> None:
        rows.append({"section": section, "item": item, "value": str(value),
                     "source": src.get(key or item, "") if family else "", "differs": differs})

    d, o, kind = cfg.data, cfg.optim, dataset_kind(cfg.data.dataset)
    add("run", "method / dataset / profile", f"{cfg.run.method} / {d.dataset} ({dataset_layout(d.dataset)} "
        f"layout) / {cfg.run.profile}", key="-")
    add("data", "image size", f"{d.height}x{d.width} (HxW)")
    kinds = train_recipe_kinds(cfg)
    streams = ("visible", "infrared") if kind == "vi" else ("each modality, independently" if not d.sync_geometry
                                                               else "all modalities, one shared geometry",)
    for stream, k in zip(streams, kinds):
        t = transforms.build_train_transform(k, d.height, d.width,
                                             cutswap=d.cutswap if (stream == "visible" and k != "agw") else None)
        add("data", f"train augmentation ({stream})", f"{d.train_recipe} -> {k}: {describe_transform(t)}",
            key="train augmentation")
    test = test_transform(cfg)
    add("data", "normalisation", f"mean {[round(v, 3) for v in test.mean.flatten().tolist()]}, std "
        f"{[round(v, 3) for v in test.std.flatten().tolist()]}")
    add("data", "test resize", f"{d.test_resize}: {describe_transform(test)}")
    per = "per modality (visible + infrared)" if kind == "vi" else "aligned triplets"
    add("data", "sampler", f"P={d.p} identities x K={d.k} {per} = {d.p * d.k * (2 if kind == 'vi' else 1)} "
        f"images per {'stream pair' if kind == 'vi' else 'batch'}; batches per epoch "
        f"{d.batches_per_epoch or 'floor(N / (P K)) + 1 (AGW rule)'}", differs=(
            "TOP-ReID's RandomIdentitySampler walks each identity's images once in chunks of K (at most "
            "sum_i floor(max(n_i, K) / K) / P batches); the workbench draws floor(N / (P K)) + 1 PxK batches "
            "(data.batches_per_epoch sets another count)" if family == "topreid" and not d.batches_per_epoch else ""))
    add("data", "held-out identities", d.val_ids, key="-",
        differs="the references train on every training identity; the workbench holds these out to select the "
                "checkpoint honestly" if d.val_ids else "")

    m = cfg.model
    add("model", "model", f"{m.name} {m.kwargs or ''}".strip())
    add("model", "pretrained", m.pretrained)
    if kind == "mm":
        from workbench.methods.base import SIE_CAMERAS

        sie = (f"on: {SIE_CAMERAS[dataset_layout(d.dataset)]} cameras, coefficient "
               f"{m.kwargs.get('sie_coef', 3.0)}" if m.sie_camera else "off")
        add("model", "SIE camera embedding", sie, key="SIE")

    add("optimiser", "optimiser", f"{o.optimizer}" + (f", momentum {o.momentum}, nesterov {o.nesterov}"
                                                       if o.optimizer == "sgd" else ""))
    model = _card_model(cfg)
    optimizer = build_optimizer(model, o)
    for i, group in enumerate(optimizer.param_groups):
        add("optimiser", f"parameter group {i}", f"lr {group['lr']:.6g}, weight decay {group['weight_decay']:g}: "
            f"{_group_names(model, group['params'])}", key="parameter groups")
    warm = (f"{o.warmup_epochs} epochs, {o.warmup_style} style from {o.warmup_start:g} x lr" if o.warmup_epochs
            else "none")
    sched = {"step": f"step: x {o.gamma:g} at epochs {list(o.milestones)}",
             "cosine": f"cosine to {o.min_lr_factor:g} x lr at epoch {o.epochs}",
             "constant": "constant"}.get(o.schedule, o.schedule)
    add("schedule", "warm-up and schedule", f"{warm}; {sched}; schedule time of the first epoch {o.step_from}",
        key="schedule")
    scheduler = build_scheduler(optimizer, o)
    want = sorted(set(default_epochs(cfg) if epochs is None else epochs))
    if want and (want[0] < 0 or want[-1] >= o.epochs):
        raise ValueError(f"epochs must lie in [0, optim.epochs={o.epochs}), got {want}")
    with warnings.catch_warnings():  # the card steps the scheduler without training
        warnings.simplefilter("ignore", UserWarning)
        for e in range(max(want, default=-1) + 1):
            if e in want:
                lrs = ", ".join(f"{g['lr']:.4g}" for g in optimizer.param_groups)
                add("schedule", f"lr at epoch {e} (0-based)", f"groups [{lrs}]", key="schedule")
            scheduler.step()
    add("schedule", "epochs", o.epochs)
    add("loss", "losses", _losses(cfg))
    if cfg.run.method == "baseline" and kind == "mm":
        add("loss", "loss variant", f"loss.mm_heads={cfg.loss.mm_heads}; reference options: direct (DIRECT: 1), "
            "per_modality (DIRECT: 0); 'both' has no reference", differs=(
                "reference ambiguous, offered as a named option: TOP-ReID's ablation gives two baseline rows on "
                "RGBNT201, 62.9 mAP / 64.5 R1 and 55.9 / 54.9, without naming the variant in the code; DIRECT: 1 "
                "shipped for RGBNT201 and the config comment 'for vehicle reid, indirect is better than direct' "
                "suggest (inferred) 62.9 / 64.5 = direct, 55.9 / 54.9 = per_modality. TOP-ReID's 72.3 mAP log is "
                "the full model, not this baseline" if family else ""))
    feature = ("BN-neck feature (feats), L2-normalised" if kind == "vi"
               else "concatenated pre-BN CLS features (feats), L2-normalised")
    add("evaluation", "test feature", feature)
    add("evaluation", "re-ranking", "reported with and without (run.test_rerank)" if cfg.run.test_rerank
        else "without (python -m workbench evaluate --rerank for k-reciprocal)")
    add("evaluation", "checkpoint selection",
        "best validation mAP on the held-out identities" if d.val_ids else "last epoch",
        differs="the references pick the best epoch on the test set, which overstates the result; the workbench "
                "selects on held-out training identities and runs the test protocol once" if family else "")
    amp_dtype(o, torch.device("cpu"))  # validates optim.amp_dtype
    names = {"auto": "bfloat16 where the GPU supports it, else float16", "bfloat16": "bfloat16",
             "float16": "float16 with a gradient scaler"}
    precision = f"autocast {names[o.amp_dtype]} on CUDA, fp32 elsewhere (optim.amp)" if o.amp else "fp32"
    ref_fp32 = family in ("agw", "mce", "dakd")
    add("training", "precision", precision, differs=(
        "the reference trains in fp32; optim.amp=false reproduces it" if ref_fp32 and o.amp else ""))
    return pd.DataFrame(rows, columns=["section", "item", "value", "source", "differs"])


def format_card(card: pd.DataFrame) -> str:
    """The card as a Markdown table (sources and differences only in the columns that have some)."""
    cols = ["section", "item", "value"] + [c for c in ("source", "differs") if card[c].astype(bool).any()]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for _, row in card[cols].iterrows():
        lines.append("| " + " | ".join(str(row[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)
