"""The paper profiles against the reference recipes, written out here independently of the workbench's config.

Every expected number below is typed from the reference code (file cited beside it), never read from
`workbench.config`: a later change that drifts from a published recipe fails here. What is checked is what a run
builds: the optimiser's parameter groups on the real model (on the meta device: names and flags, no memory), the
learning rate of every group after stepping the real scheduler epoch by epoch, the transforms of each stream, and
the camera embedding of the model the method builds.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from workbench import config, train
from workbench.data import transforms as T
from workbench.data.loaders import build_train_loader
from workbench.methods import get_method
from workbench.models import create_model, list_models
from workbench.optim import amp_dtype, build_optimizer, build_scheduler

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def meta_model(cfg, num_classes=10):
    """The model the method builds for `cfg`, on the meta device (no weights downloaded, no memory)."""
    light = cfg.override(**{"model.pretrained": None})
    with torch.device("meta"):
        return get_method(cfg.run.method).build_model(light, num_classes)


def lr_by_name(model, optimizer) -> dict[str, tuple[float, float]]:
    """{parameter name: (lr, weight decay)} from the optimiser's groups; each parameter in exactly one group."""
    where = {}
    for g in optimizer.param_groups:
        for p in g["params"]:
            assert id(p) not in where, "a parameter sits in two groups"
            where[id(p)] = (g["lr"], g["weight_decay"])
    out = {n: where[id(p)] for n, p in model.named_parameters() if p.requires_grad}
    assert len(out) == len(where), "the optimiser holds parameters the model does not train"
    return out


def lr_trace(model, optim_cfg, epochs: int) -> list[dict[str, float]]:
    """The lr of every parameter at each epoch, as the training loop sees it (scheduler stepped after each epoch)."""
    optimizer = build_optimizer(model, optim_cfg)
    scheduler = build_scheduler(optimizer, optim_cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    trace = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # stepping without optimizer.step()
        for _ in range(epochs):
            trace.append({names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]})
            scheduler.step()
    return trace


def stream_transforms(cfg):
    """The training transforms `build_train_loader` gives each stream, read off the dataset it builds."""
    from workbench.data.samples import Sample

    kind = config.dataset_kind(cfg.data.dataset)
    cfg = cfg.override(**{"data.cache_images": False})
    if kind == "vi":
        samples = [Sample(paths={m: f"/nonexistent/{m}{i}.jpg"}, pid=i % 16, camid=0 if m == "rgb" else 2,
                          modality=m, label=i % 16) for m in ("rgb", "ir") for i in range(32)]
        loader, _ = build_train_loader(cfg, samples)
        return loader.dataset.rgb_transform, loader.dataset.ir_transform
    samples = [Sample(paths={m: f"/nonexistent/{m}{i}.jpg" for m in ("rgb", "nir", "tir")}, pid=i % 16, camid=0,
                      modality="triplet", label=i % 16) for i in range(32)]
    loader, _ = build_train_loader(cfg, samples)
    return (loader.dataset.transform.transform,)


def assert_stream(t, *, size, interpolation, pad, fill, flip_first, ops, mean_std=IMAGENET):
    g = t.geometry
    assert (g.size, g.interpolation, g.pad, g.pad_fill, g.crop, g.flip_p, g.flip_first) == (
        size, interpolation, pad, fill, True, 0.5, flip_first)
    assert torch.allclose(t.mean.flatten(), torch.tensor(mean_std[0])) and torch.allclose(
        t.std.flatten(), torch.tensor(mean_std[1]))
    got = [(type(op).__name__, op.p) + ((op.mode,) if isinstance(op, (T.CutSwap, T.RandomErasing)) else ())
           for op in t.ops]
    assert got == ops


def lanczos_reference(img: Image.Image, h: int, w: int) -> torch.Tensor:
    """AGW / MCE / DAKD data_loader.py::TestData: img.resize((w, h), Image.ANTIALIAS), ToTensor, Normalize."""
    x = np.asarray(img.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    x = (x - np.array(IMAGENET[0], dtype=np.float32)) / np.array(IMAGENET[1], dtype=np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (300, 130, 3), dtype=np.uint8))


# ------------------------------------------------------------------------------------------------- AGW (SYSU-MM01)

def agw_lr(epoch: int, base: float = 0.1) -> float:
    """[CODE: mangye16/Cross-Modal-Re-ID-baseline, train.py::adjust_learning_rate]."""
    if epoch < 10:
        return base * (epoch + 1) / 10
    if epoch < 20:
        return base
    if epoch < 50:
        return base * 0.1
    return base * 0.01


@pytest.fixture(scope="module")
def agw():
    cfg = config.get_config("baseline", "sysu-mm01", "paper")
    return cfg, meta_model(cfg)


def test_agw_groups_backbone_at_a_tenth_bnneck_and_classifier_at_lr(agw):
    cfg, model = agw
    # train.py: ignored_params = bottleneck + classifier -> lr; everything else (both stems, the shared ResNet, the
    # non-local blocks) -> 0.1 * lr; SGD(weight_decay=5e-4, momentum=0.9, nesterov=True) for all groups.
    optimizer = build_optimizer(model, cfg.optim)
    assert isinstance(optimizer, torch.optim.SGD)
    assert all(g["momentum"] == 0.9 and g["nesterov"] for g in optimizer.param_groups)
    got = lr_by_name(model, optimizer)
    assert len(got) == 214
    for name, (lr, wd) in got.items():
        head = name.split(".")[0] in ("bnneck", "classifier")  # AGW's `bottleneck` and `classifier`
        assert (lr, wd) == (pytest.approx(0.1 if head else 0.01), 5e-4), name
    assert sum(name.split(".")[0] in ("bnneck", "classifier") for name in got) == 2
    assert any("non_local" in name and lr == pytest.approx(0.01) for name, (lr, _) in got.items())
    assert "bnneck.bias" not in got  # frozen shift: no gradient, as `bottleneck.bias.requires_grad_(False)`


def test_agw_lr_of_every_group_at_every_epoch(agw):
    cfg, model = agw
    assert cfg.optim.epochs == 81  # train.py: range(start_epoch, 81)
    for epoch, lrs in enumerate(lr_trace(model, cfg.optim, 81)):
        for name, lr in lrs.items():
            head = name.split(".")[0] in ("bnneck", "classifier")
            assert lr == pytest.approx(agw_lr(epoch) * (1.0 if head else 0.1)), (epoch, name)


def test_agw_augmentation_is_pad_crop_flip_only(agw):
    cfg, _ = agw
    # train.py::transform_train: ToPILImage, Pad(10), RandomCrop((288, 144)), RandomHorizontalFlip, ToTensor,
    # Normalize(ImageNet), on arrays pre-resized with Image.ANTIALIAS; the same transform for both modalities.
    assert (cfg.data.height, cfg.data.width, cfg.data.p, cfg.data.k) == (288, 144, 8, 4)
    for t in stream_transforms(cfg):
        assert_stream(t, size=(288, 144), interpolation="lanczos", pad=10, fill=0, flip_first=False, ops=[])
    # channel augmentation stays one option away
    rgb, ir = stream_transforms(cfg.override(**{"data.train_recipe": "channel_aug", "data.cutswap": "off"}))
    assert [type(op).__name__ for op in ir.ops] == ["ChannelRandomErasing", "ChannelAdapGray"]


def test_agw_test_resize_is_lanczos(agw, photo):
    cfg, _ = agw
    got = train.test_transform(cfg)(photo)
    assert torch.allclose(got, lanczos_reference(photo, 288, 144), atol=1e-5)


def test_agw_losses_and_reference_precision(agw):
    cfg, _ = agw
    assert (cfg.loss.triplet, cfg.loss.label_smoothing, cfg.loss.id_weight, cfg.loss.triplet_weight) == (
        "wrt", 0.0, 1.0, 1.0)  # train.py: loss = CrossEntropyLoss + TripletLoss_WRT
    # the reference trains in fp32: one option away
    assert amp_dtype(cfg.override(**{"optim.amp": False}).optim, torch.device("cuda")) is None


# ------------------------------------------------------------------------------------------------- TOP-ReID (RGBNT201)

def topreid_lr(t: int, base: float, base_lr: float = 0.009, epochs: int = 120, warmup: int = 10) -> float:
    """[CODE: 924973292/TOP-ReID, solver/scheduler_factory.py + solver/cosine_lr.py]: timm CosineLRScheduler with
    t_initial=MAX_EPOCHS, lr_min=0.001*BASE_LR, warmup_lr_init=0.01*BASE_LR (shared by every group), warmup_t=10,
    cycle_limit=1, no warm-up prefix; `base` is the group's own initial lr."""
    init, floor = 0.01 * base_lr, 0.001 * base_lr
    if t < warmup:
        return init + t * (base - init) / warmup
    return floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * t / epochs))


@pytest.fixture(scope="module")
def topreid():
    cfg = config.get_config("baseline", "rgbnt201", "paper")
    return cfg, meta_model(cfg)


def test_topreid_groups_bias_at_twice_the_lr(topreid):
    cfg, model = topreid
    # solver/make_optimizer.py: BASE_LR 0.009 ("bias" in the name: x BIAS_LR_FACTOR 2), WEIGHT_DECAY 1e-4 =
    # WEIGHT_DECAY_BIAS, SGD momentum 0.9 (no nesterov).
    optimizer = build_optimizer(model, cfg.optim)
    assert all(g["momentum"] == 0.9 and not g["nesterov"] for g in optimizer.param_groups)
    for name, (lr, wd) in lr_by_name(model, optimizer).items():
        assert (lr, wd) == (pytest.approx(0.018 if "bias" in name else 0.009), 1e-4), name


def test_topreid_lr_of_every_group_at_every_epoch_from_epoch_one(topreid):
    cfg, model = topreid
    assert cfg.optim.epochs == 120
    # engine/processor.py: for epoch in range(1, epochs + 1): scheduler.step(epoch) -- our epoch e is their e + 1.
    for epoch, lrs in enumerate(lr_trace(model, cfg.optim, 120)):
        for name, lr in lrs.items():
            base = 0.018 if "bias" in name else 0.009
            assert lr == pytest.approx(topreid_lr(epoch + 1, base), rel=1e-9), (epoch, name)
    first = lr_trace(model, cfg.optim, 1)[0]
    assert first["embed.0.proj.weight"] == pytest.approx(0.01 * 0.009 + 1 * (0.009 - 0.01 * 0.009) / 10)


def test_topreid_camera_embedding_on_with_coefficient_3(topreid):
    cfg, model = topreid
    # config/defaults.py: SIE_CAMERA True, SIE_COE 3.0; make_model.py: camera_num = num_train_cams (RGBNT201: 4)
    for embed in model.embed:
        assert embed.sie_embed is not None and tuple(embed.sie_embed.shape[:2]) == (4, 1)
        assert embed.sie_coef == 3.0


def test_topreid_augmentation_and_test_resize(topreid, photo):
    cfg, _ = topreid
    # data/datasets/make_dataloader.py: Resize(256x128, interpolation=3 bicubic), RandomHorizontalFlip(0.5),
    # Pad(10), RandomCrop, ToTensor, Normalize(0.5, 0.5), RandomErasing(0.5, mode='pixel'), per modality image.
    (t,) = stream_transforms(cfg)
    assert_stream(t, size=(256, 128), interpolation="bicubic", pad=10, fill=0, flip_first=True,
                  ops=[("RandomErasing", 0.5, "pixel")], mean_std=((0.5,) * 3, (0.5,) * 3))
    assert not cfg.data.sync_geometry
    # val_transforms: T.Resize(SIZE_TEST) (torchvision's default: bilinear), ToTensor, Normalize(0.5, 0.5)
    want = np.asarray(photo.resize((128, 256), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    want = torch.from_numpy((want - 0.5) / 0.5).permute(2, 0, 1)
    assert torch.allclose(train.test_transform(cfg)(photo), want, atol=1e-5)
    assert (cfg.data.p, cfg.data.k) == (8, 16)  # IMS_PER_BATCH 128, NUM_INSTANCE 16


def soft_triplet(feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """TOP-ReID layers/triplet_loss.py with NO_MARGIN: batch-hard Euclidean, SoftMarginLoss(d_an - d_ap, 1)."""
    d = torch.cdist(feats.double(), feats.double())
    same = labels[:, None] == labels[None, :]
    d_ap = torch.where(same, d, torch.full_like(d, -1e9)).max(dim=1).values
    d_an = torch.where(~same, d, torch.full_like(d, 1e9)).min(dim=1).values
    return F.softplus(-(d_an - d_ap)).mean()


@pytest.mark.parametrize("variant", ["direct", "per_modality"])
def test_topreid_loss_variants(variant):
    # modeling/make_model.py::BASELINE.forward returns (ori_score, ori) with DIRECT 1, the three (score, global) pairs
    # with DIRECT 0; engine/processor.py sums loss_fn(score, feat) over the returned pairs; make_loss.py:
    # label-smoothed CE (eps 0.1) + soft-margin triplet, weights 1.
    assert config.get_config("baseline", "rgbnt201", "paper").loss.mm_heads == "direct"  # configs/RGBNT201 DIRECT: 1
    assert config.get_config("baseline", "rgbnt100", "paper").loss.mm_heads == "per_modality"  # DIRECT: 0
    cfg = config.get_config("baseline", "synthetic-rgbnt", "smoke").override(**{"loss.mm_heads": variant})
    torch.manual_seed(0)
    model = get_method("baseline").build_model(cfg, num_classes=3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    batch = {m: torch.randn(6, 3, 64, 32) for m in ("rgb", "nir", "tir")} | {"label": labels,
                                                                              "camid": torch.tensor([0, 1, 2, 3, 0, 1])}
    terms = get_method("baseline").training_losses(model, batch, cfg)
    out = model({m: batch[m] for m in ("rgb", "nir", "tir")}, camids=batch["camid"])
    pairs = [(out.logits, out.feats)] if variant == "direct" else [
        (out.parts[f"logits_{m}"], out.parts[f"cls_{m}"]) for m in ("rgb", "nir", "tir")]
    want_id = sum(F.cross_entropy(lg.double(), labels, label_smoothing=0.1) for lg, _ in pairs)
    want_tri = sum(soft_triplet(f, labels) for _, f in pairs)
    assert float(terms["id"].detach()) == pytest.approx(float(want_id.detach()), rel=1e-4)
    assert float(terms["triplet"].detach()) == pytest.approx(float(want_tri.detach()), rel=1e-4)


def test_topreid_precision_is_fp16_autocast(topreid):
    cfg, _ = topreid
    # engine/processor.py: amp.autocast(enabled=True) + GradScaler: float16 on CUDA
    assert cfg.optim.amp and cfg.optim.amp_dtype == "float16"
    assert amp_dtype(cfg.optim, torch.device("cpu")) is None


# ------------------------------------------------------------------------------------------------- MCE teacher

def mce_lr(epoch: int, dataset: str, base: float = 3.5e-4) -> float:
    """[CODE: IDLNL/MCE, train.py::adjust_learning_rate]."""
    lr_decay = [20, 40] if dataset == "sysu" else [30, 60]
    lr = base
    if epoch < 10:
        lr = base * (epoch + 1) / 10
    if epoch > lr_decay[0]:
        lr = base * 0.1
    if epoch >= lr_decay[1]:
        lr = base * 0.01
    return lr


@pytest.mark.parametrize("dataset,ref,size,k", [("sysu-mm01", "sysu", (384, 128), 4), ("regdb", "regdb", (288, 144), 5)])
def test_mce_teacher_recipe(dataset, ref, size, k, photo):
    cfg = config.get_config("dakd_teacher", dataset, "paper")
    # train.py: sysu img 128x384, regdb 144x288 and num_pos 5; batch-size 8; 160 epochs
    assert ((cfg.data.height, cfg.data.width), cfg.data.p, cfg.data.k, cfg.optim.epochs) == (size, 8, k, 160)
    model = meta_model(cfg)
    # train.py: optim.Adam(net.parameters(), lr=0.00035, weight_decay=0.0005): one group
    optimizer = build_optimizer(model, cfg.optim)
    assert isinstance(optimizer, torch.optim.Adam)
    assert all(v == (pytest.approx(3.5e-4), 5e-4) for v in lr_by_name(model, optimizer).values())
    for epoch, lrs in enumerate(lr_trace(model, cfg.optim, 160)):
        assert all(lr == pytest.approx(mce_lr(epoch, ref)) for lr in lrs.values()), epoch
    rgb, ir = stream_transforms(cfg)
    if ref == "sysu":  # data_loader.py::SYSUData transform_color / transform_thermal: Pad, crop, flip, ...
        assert_stream(rgb, size=size, interpolation="lanczos", pad=10, fill=0, flip_first=False,
                      ops=[("ChannelRandomErasing", 0.5)])
        assert_stream(ir, size=size, interpolation="lanczos", pad=10, fill=0, flip_first=False,
                      ops=[("ChannelRandomErasing", 0.5), ("ChannelAdapGray", 0.5)])
    else:  # data_loader.py::RegDBData.transform, both modalities: flip, Pad(10, fill=127), crop, erasing
        for t in (rgb, ir):
            assert_stream(t, size=size, interpolation="lanczos", pad=10, fill=127, flip_first=True,
                          ops=[("ChannelRandomErasing", 0.5)])
    assert torch.allclose(train.test_transform(cfg)(photo), lanczos_reference(photo, *size), atol=1e-5)


# ------------------------------------------------------------------------------------------------- DAKD student

@pytest.mark.parametrize("dataset,size,k", [("sysu-mm01", (384, 128), 4), ("regdb", (288, 144), 5)])
def test_dakd_student_recipe(dataset, size, k):
    cfg = config.get_config("dakd", dataset, "paper")
    # train.py: sysu 128x384, regdb 144x288 + num_pos 5; max_epochs 160; optim.Adam(student.parameters(), lr) with
    # no weight decay and no lr adjustment; train.sh --lr 0.00035 --batch-size 8
    assert ((cfg.data.height, cfg.data.width), cfg.data.p, cfg.data.k, cfg.optim.epochs) == (size, 8, k, 160)
    model = meta_model(cfg)
    optimizer = build_optimizer(model, cfg.optim)
    assert isinstance(optimizer, torch.optim.Adam)
    assert all(v == (pytest.approx(3.5e-4), 0.0) for v in lr_by_name(model, optimizer).values())
    assert all(lr == pytest.approx(3.5e-4) for lrs in lr_trace(model, cfg.optim, 160) for lr in lrs.values())
    rgb, ir = stream_transforms(cfg)
    if dataset == "sysu-mm01":  # data_loader.py::SYSUData: CutSwap(0.3, 0.6, prob 0.5) then ChannelRandomErasing
        assert_stream(rgb, size=size, interpolation="lanczos", pad=10, fill=0, flip_first=False,
                      ops=[("CutSwap", 0.5, "code_faithful"), ("ChannelRandomErasing", 0.5)])
        assert rgb.ops[0].ratio == (0.3, 0.6)
        assert_stream(ir, size=size, interpolation="lanczos", pad=10, fill=0, flip_first=False,
                      ops=[("ChannelRandomErasing", 0.5), ("ChannelAdapGray", 0.5)])
    else:  # data_loader.py::RegDBData: no CutSwap in the shipped code
        for t in (rgb, ir):
            assert_stream(t, size=size, interpolation="lanczos", pad=10, fill=127, flip_first=True,
                          ops=[("ChannelRandomErasing", 0.5)])
    assert cfg.data.test_resize == "lanczos"
    assert cfg.run.test_rerank  # test.sh: python test.py ... --rerank; the workbench reports both


# ------------------------------------------------------------------------------------------------- every model

@pytest.mark.parametrize("name", [n for n in list_models() if n.startswith(("agw", "vi_", "test_vi", "mm_", "test_mm"))])
def test_every_vi_cnn_and_vit_declares_its_backbone(name):
    with torch.device("meta"):
        model = create_model(name, num_classes=5)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    outside = {n.split(".")[0] for n in names if not n.startswith(model.backbone_prefixes)}
    assert outside <= {"bnneck", "classifier", "bnnecks", "classifiers", "pool"}, outside
    assert any(n.startswith(model.backbone_prefixes) for n in names)


def test_a_backbone_multiplier_without_declared_backbone_is_an_error():
    cfg = config.OptimConfig(lr=0.1, backbone_lr_mult=0.1)
    with pytest.raises(ValueError, match="backbone_prefixes"):
        build_optimizer(torch.nn.Linear(2, 2), cfg)


def test_evaluation_reports_with_and_without_rerank_when_asked(tmp_path):
    # DAKD test.sh runs test.py --rerank: its paper profile reports the test protocol both ways
    assert config.get_config("dakd", "sysu-mm01", "paper").run.test_rerank
    cfg = config.get_config("baseline", "synthetic-vi", "smoke").override(**{
        "run.test_rerank": True, "run.out_dir": str(tmp_path), "run.name": "rr", "run.max_steps": 2})
    run = train.fit(cfg, progress=False)
    assert run.results["test_rerank"]["mean"] == pytest.approx(train.evaluate(run, rerank=True, progress=False).mean)
    assert run.results["test"]["mean"] == pytest.approx(train.evaluate(run, progress=False).mean)
