"""Config overrides, JSON round trips, profiles and the learning-rate schedules."""

import math
from dataclasses import dataclass
from typing import Any

import pytest

from workbench.config import (
    Config,
    OptimConfig,
    check_options,
    check_value,
    dataset_kind,
    get_config,
    option,
    parse_options,
)
from workbench.train import lr_factor, param_groups


def test_override_dotted_keys_and_coercion():
    cfg = Config().override(**{"optim.lr": "0.05", "data.p": "4", "optim.amp": "false", "optim.milestones": "30,60",
                               "model.pretrained": "none"})
    assert cfg.optim.lr == 0.05 and cfg.data.p == 4 and cfg.optim.amp is False
    assert cfg.optim.milestones == (30, 60) and cfg.model.pretrained is None
    assert Config().optim.lr == 0.1  # frozen: the original is untouched


@pytest.mark.parametrize("key", ["optim.lrr", "nosuch.lr"])
def test_override_unknown_key_names_it(key):
    with pytest.raises(ValueError, match=key.split(".")[0] if key.startswith("nosuch") else "lrr"):
        Config().override(**{key: 1})


def test_json_round_trip(tmp_path):
    cfg = get_config("baseline", "synthetic-rgbnt", "cpu-demo").override(**{"method_options.mask_mode": "gt"})
    cfg.save(tmp_path / "c.json")
    assert Config.load(tmp_path / "c.json") == cfg


@pytest.mark.parametrize("dataset,kind", [("sysu-mm01", "vi"), ("synthetic-vi", "vi"), ("synthetic-regdb", "vi"),
                                          ("rgbnt100", "mm"), ("synthetic-rgbnt", "mm"), ("synthetic-msvr310", "mm")])
def test_dataset_kind(dataset, kind):
    assert dataset_kind(dataset) == kind


def test_dataset_kind_unknown():
    with pytest.raises(ValueError, match="market"):
        dataset_kind("market")


def test_paper_profiles_follow_the_published_recipes():
    vi = get_config("baseline", "sysu-mm01", "paper")
    assert (vi.data.height, vi.data.width, vi.data.p, vi.data.k) == (288, 144, 8, 4)
    assert vi.optim.optimizer == "sgd" and vi.optim.lr == 0.1 and vi.optim.epochs == 81
    mm = get_config("baseline", "rgbnt201", "paper")
    assert (mm.data.height, mm.data.width, mm.data.p, mm.data.k) == (256, 128, 8, 16)
    assert mm.optim.lr == 0.009 and mm.optim.schedule == "cosine" and mm.optim.epochs == 120
    smoke = get_config("baseline", "synthetic-vi", "smoke")
    assert smoke.model.name.startswith("test_") and smoke.optim.epochs <= 2


@pytest.mark.parametrize("method", ["baseline", "sd2reid"])
def test_vehicle_presets_have_their_own_size_split_and_recipe(method):
    """The synthetic vehicle presets: the real identity counts, a fifth of RGBNT100's 50 training vehicles held out,
    landscape images at every profile (64 x 128 in the demo: the tiny ViT's 8 x 16 patch grid, the 128 tokens of the
    paper ViT at 128 x 256), the vehicle recipe's per-modality losses (TOP-ReID DIRECT: 0), 8 SIE cameras, and the
    demo's calibrated difficulty, step count and lr (config.py, VEHICLE_DEMO_BATCHES)."""
    from workbench.methods import get_method
    from workbench.models import create_model

    demo = {d: get_config(method, d, "cpu-demo") for d in ("synthetic-rgbnt100", "synthetic-msvr310")}
    assert demo["synthetic-rgbnt100"].data.options == {"ids": 100, "seed": 0, "difficulty": "easy"}
    assert demo["synthetic-msvr310"].data.options["ids"] == 310
    assert [c.data.val_ids for c in demo.values()] == [10, 20]
    for dataset, cfg in demo.items():
        assert (cfg.data.height, cfg.data.width) == (64, 128) and cfg.loss.mm_heads == "per_modality"
        assert cfg.data.batches_per_epoch * cfg.optim.epochs == 960  # 160 steps an epoch, the calibrated count
        assert cfg.optim.lr == 2e-3 and cfg.optim.milestones == (4,) and cfg.optim.warmup_epochs == 1
        assert cfg.model.name == "test_mm_vit" and cfg.model.sie_camera
        kwargs = get_method(method).model_kwargs(cfg)
        assert kwargs["num_cameras"] == 8 and kwargs["img_size"] == (64, 128)
        paper, smoke = get_config(method, dataset, "paper"), get_config(method, dataset, "smoke")
        assert (paper.data.height, paper.data.width) == (128, 256) and (smoke.data.height, smoke.data.width) == (32, 64)
        assert smoke.data.options["ids"] == 16 and smoke.data.val_ids == 4
    assert create_model("test_mm_vit", img_size=(64, 128)).grid_size == (8, 16)
    assert get_config(method, "synthetic-rgbnt100", "paper").model.name == "mm_vit_b16"
    # MSVR310's own recipe items reach the paper profile (lr 0.001, 100 warm-up epochs, 1000 epochs)
    msvr = get_config(method, "synthetic-msvr310", "paper").optim
    assert (msvr.lr, msvr.warmup_epochs, msvr.epochs) == (0.001, 100, 1000)
    # the real vehicle sets keep TOP-ReID's shipped 256 x 128 (configs/RGBNT100/TOP-ReID.yml SIZE_TRAIN)
    real = get_config(method, "rgbnt100", "paper")
    assert (real.data.height, real.data.width) == (256, 128) and real.loss.mm_heads == "per_modality"


@pytest.mark.parametrize("profile", ["smoke", "cpu-demo", "paper"])
def test_people_presets_keep_their_demo_data_and_size(profile):
    """The vehicle entries leave the people presets as they were: same exports, sizes, held-out identities, losses."""
    mm = get_config("baseline", "synthetic-rgbnt", profile)
    ids = {"smoke": 16}.get(profile, 201)
    assert mm.data.options == {"ids": ids, "seed": 0, "difficulty": "medium"}
    assert (mm.data.height, mm.data.width) == {"smoke": (64, 32), "cpu-demo": (128, 64), "paper": (256, 128)}[profile]
    assert mm.data.val_ids == (4 if profile == "smoke" else 20) and mm.loss.mm_heads == "direct"
    if profile == "cpu-demo":
        assert mm.optim.lr == 1e-3
    assert get_config("sd2reid", "synthetic-rgbnt", profile).loss.mm_heads == "direct"
    vi = get_config("baseline", "synthetic-vi", profile)
    assert vi.data.options == {"ids": {"smoke": 16}.get(profile, 300), "seed": 0, "difficulty": "default"}
    assert vi.data.val_ids == (4 if profile == "smoke" else 20)
    assert mm.data.batches_per_epoch == vi.data.batches_per_epoch == (3 if profile == "smoke" else None)


def test_agw_step_schedule_matches_its_formula():
    cfg = get_config("baseline", "sysu-mm01", "paper").optim
    # AGW train.py: lr * (e + 1) / 10 for e < 10, lr for e < 20, lr * 0.1 for e < 50, lr * 0.01 after.
    for e in range(81):
        expected = (e + 1) / 10 if e < 10 else 1.0 if e < 20 else 0.1 if e < 50 else 0.01
        assert lr_factor(e, cfg) == pytest.approx(expected), e


def test_cosine_schedule_endpoints_and_monotone():
    # timm CosineLRScheduler as TOP-ReID steps it (solver/cosine_lr.py, engine/processor.py): t = epoch + 1, warm-up
    # from 0.01 lr over t < 10, then 0.001 lr + (lr - 0.001 lr) (1 + cos(pi t / 120)) / 2, the floor at t = 120.
    cfg = OptimConfig(schedule="cosine", warmup_epochs=10, warmup_start=0.01, warmup_style="transreid",
                      min_lr_factor=0.001, epochs=120, step_from=1)
    assert lr_factor(0, cfg) == pytest.approx(0.01 + 0.99 / 10)
    assert lr_factor(9, cfg) == pytest.approx(0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * 10 / 120)))
    assert lr_factor(119, cfg) == pytest.approx(0.001)
    values = [lr_factor(e, cfg) for e in range(9, 120)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert lr_factor(0, cfg.__class__(**{**cfg.__dict__, "step_from": 0})) == pytest.approx(0.01)


def test_param_groups_split_backbone_head_and_bias():
    import torch.nn as nn

    class M(nn.Module):
        backbone_prefixes = ("backbone.",)

        def __init__(self):
            super().__init__()
            self.backbone = nn.Linear(3, 3)
            self.head = nn.Linear(3, 2, bias=False)

    cfg = OptimConfig(lr=0.1, backbone_lr_mult=0.1, bias_lr_mult=2.0, weight_decay=5e-4)
    groups = param_groups(M(), cfg)
    by_lr = {round(g["lr"], 6): sum(p.numel() for p in g["params"]) for g in groups}
    assert by_lr == {0.01: 9, 0.02: 3, 0.1: 6}


def test_mce_teacher_schedule_matches_its_formula():
    cfg = get_config("dakd_teacher", "sysu-mm01", "paper").optim
    # MCE train.py: lr (e+1)/10 for e < 10, lr for 10 <= e <= 20, 0.1 lr for e > 20, 0.01 lr for e >= 40.
    for e in range(160):
        expected = (e + 1) / 10 if e < 10 else 1.0 if e <= 20 else 0.1 if e < 40 else 0.01
        assert lr_factor(e, cfg) == pytest.approx(expected), e


def test_dakd_student_recipe():
    cfg = get_config("dakd", "sysu-mm01", "paper")
    assert (cfg.data.height, cfg.data.width) == (384, 128) and cfg.model.name == "vi_r50"
    assert cfg.optim.optimizer == "adam" and cfg.optim.lr == 3.5e-4 and cfg.optim.weight_decay == 0
    assert all(lr_factor(e, cfg.optim) == 1.0 for e in range(160)) and cfg.optim.epochs == 160
    assert cfg.data.cutswap == "code_faithful"
    with pytest.raises(ValueError, match="visible-infrared"):
        get_config("dakd", "rgbnt201", "paper")


def test_cpu_demo_student_keeps_constant_lr_without_weight_decay():
    cfg = get_config("dakd", "synthetic-vi", "cpu-demo")
    assert cfg.optim.schedule == "constant" and cfg.optim.weight_decay == 0 and cfg.model.name == "test_vi_resnet"
    assert cfg.data.cutswap == "code_faithful"


# ---------------------------------------------------------------------------------------- method options parser

@dataclass(frozen=True)
class _Opts:
    """A method's options as the methods declare them (one of each kind the parser handles)."""

    temperature: float = option(4.0, low=1e-12, accepts="a number > 0")
    weight: float = option(1.0, low=0)
    mode: str = option("le", choices=("le", "gt", "none"))
    stages: int = option(2, choices=(0, 1, 2))
    flag: bool = True
    teacher: str | None = None
    temps: tuple[float, ...] = option((4.0, 2.0), low=1e-12, accepts="positive numbers")
    module: Any = None

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(frozen=True)
class _NoOpts:
    pass


def test_unknown_option_keys_are_refused_naming_close_matches_and_every_valid_key():
    with pytest.raises(ValueError) as info:
        parse_options({"temprature": 2, "weight": 1, "flagg": True, "zzz": 0}, _Opts, "m")
    msg = str(info.value)
    assert "method 'm' has no method_options 'temprature' (did you mean 'temperature'?)" in msg
    assert "'flagg' (did you mean 'flag'?)" in msg and "'zzz'" in msg and "'zzz' (" not in msg
    assert "'weight'" not in msg.split(";")[0]  # a valid key is not reported as unknown
    assert msg.endswith("its method_options are: flag, mode, module, stages, teacher, temperature, temps, weight")
    with pytest.raises(ValueError, match="'m' has no method_options 'temperature'.*it takes no method_options"):
        parse_options({"temperature": 2}, _NoOpts, "m")
    with pytest.raises(ValueError, match="must be a dict"):
        parse_options([("temperature", 2)], _Opts, "m")


def test_option_values_from_the_command_line_are_parsed_into_the_field_types():
    text = {"temperature": "2", "weight": "0", "mode": "none", "stages": "1", "flag": "false", "teacher": "123",
            "temps": "4,2.5"}
    options = Config().override(**{f"method_options.{k}": v for k, v in text.items()}).method_options
    got = parse_options(options, _Opts, "m")
    assert got == {"temperature": 2.0, "weight": 0.0, "mode": "none", "stages": 1, "flag": False, "teacher": "123",
                   "temps": (4, 2.5)}
    assert type(got["temperature"]) is float and type(got["stages"]) is int and type(got["teacher"]) is str
    # what override makes of "1"/"0" for a boolean, and of one temperature for a tuple; "none" for an optional text
    assert parse_options({"flag": 1}, _Opts, "m") == {"flag": True}
    assert parse_options({"flag": 0}, _Opts, "m") == {"flag": False}
    assert parse_options({"temps": 3}, _Opts, "m") == {"temps": (3,)}
    assert parse_options({"teacher": None}, _Opts, "m") == {"teacher": None}
    module = object()
    assert parse_options({"module": module}, _Opts, "m")["module"] is module  # typed Any: passed through
    assert parse_options({}, _Opts, "m") == {}


@pytest.mark.parametrize("key, value, says", [
    ("temperature", "abc", "cannot be parsed"), ("temperature", "-1", "a number > 0"), ("temperature", 0, "> 0"),
    ("temperature", float("inf"), "not a finite number"), ("weight", "-0.5", "a number >= 0"),
    ("mode", "sideways", "one of ('le', 'gt', 'none')"), ("stages", "3", "one of (0, 1, 2)"),
    ("stages", "1.5", "got float"), ("flag", "maybe", "not a boolean"), ("flag", 2, "got int"),
    ("temps", "4,-2", "positive numbers"), ("temps", "a,b", "is not a number"), ("mode", 1.5, "got float"),
])
def test_bad_option_values_are_refused_naming_the_key_the_value_and_what_it_accepts(key, value, says):
    with pytest.raises(ValueError) as info:
        parse_options({key: value}, _Opts, "m")
    assert f"method_options.{key}={value!r}" in str(info.value) and says in str(info.value)


def test_options_built_in_python_are_held_to_the_same_declaration():
    assert _Opts(temperature=2).temperature == 2
    for bad in ({"weight": -1.0}, {"mode": "sideways"}, {"flag": 1}, {"temperature": "2"}):
        with pytest.raises(ValueError, match=f"method_options.{next(iter(bad))}"):
            _Opts(**bad)


def test_check_value_takes_choices_and_bounds_instead_of_the_tables():
    assert check_value("x.y", "3", "int", choices=(1, 3)) == 3
    with pytest.raises(ValueError, match=r"x.y='2': not a valid choice. Expected an integer, one of \(1, 3\)"):
        check_value("x.y", "2", "int", choices=(1, 3))
    with pytest.raises(ValueError, match="out of range. Expected between 0 and 1"):
        check_value("x.y", "1.5", "float", bounds=(0, 1, "between 0 and 1"))
    # the tables still apply to config keys
    with pytest.raises(ValueError, match="optim.schedule"):
        check_value("optim.schedule", "cos", "str")
