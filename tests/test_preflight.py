"""Bad requests are refused before any work and leave nothing behind (issue 12 items 6, 7, 9, 10, 14, 15)."""

import dataclasses
import shutil

import pytest
import torch

from workbench.config import get_config
from workbench.data.base import DatasetFormatError


def smoke(tmp_path, name="r", method="baseline", **overrides):
    cfg = get_config(method, "synthetic-vi", "smoke")
    return cfg.override(**{"run.out_dir": str(tmp_path / "runs"), "run.name": name, "run.device": "cpu",
                           **overrides})


# ------------------------------------------------------------------------------------- item 7: override values

@pytest.mark.parametrize("key, value, says", [
    ("optim.epochs", "abc", "optim.epochs='abc'"), ("optim.lr", "abc", "optim.lr='abc'"),
    ("optim.epochs", "0", ">= 1"), ("optim.epochs", "-1", ">= 1"), ("optim.lr", "-0.1", "> 0"),
    ("run.max_steps", "abc", "run.max_steps"), ("data.p", "2.5", "data.p"), ("optim.epochs", "true", "bool"),
    ("optim.schedule", "cos", "'step', 'cosine', 'constant'"), ("data.options", "[2]", "JSON object"),
    ("optim.lr", "nan", "optim.lr='nan'"), ("data.val_ids", "-1", ">= 0"),
])
def test_bad_override_values_are_refused_naming_the_key(key, value, says):
    cfg = get_config("baseline", "synthetic-vi", "smoke")
    with pytest.raises(ValueError) as info:
        cfg.override(**{key: value})
    assert key in str(info.value) and says in str(info.value)


def test_override_values_are_parsed_into_the_field_type():
    cfg = get_config("baseline", "synthetic-vi", "smoke")
    new = cfg.override(**{"optim.epochs": "3", "optim.lr": "1e-3", "run.max_steps": "none", "run.name": "123",
                          "optim.milestones": "3,5", "data.options.trial": "2", "data.options": '{"ids": 16}'})
    assert (new.optim.epochs, new.optim.lr, new.run.max_steps, new.run.name) == (3, 1e-3, None, "123")
    assert new.optim.milestones == (3, 5) and new.data.options == {"ids": 16}
    assert cfg.override(**{"data.options.trial": "2"}).data.options["trial"] == 2


def test_validate_catches_values_set_around_override():
    cfg = get_config("baseline", "synthetic-vi", "smoke")
    bad = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, epochs="abc"))
    with pytest.raises(ValueError, match="optim.epochs"):
        bad.validate()


# ----------------------------------------------------------------------------- item 6: failed starts, no folder

@pytest.mark.parametrize("overrides", [
    {"run.method": "nope"},
    {"data.dataset": "sysu-mm01", "data.options": {}, "data.root": "/nonexistent/SYSU"},
    {"model.pretrained": "/nonexistent/weights.pth"},
    {"data.p": 40},
    {"run.method": "dakd", "method_options": {"teacher": "/nonexistent/teacher"}},
], ids=["method", "root", "pretrained", "pxk", "teacher"])
def test_a_failed_start_leaves_no_run_folder(tmp_path, overrides):
    from workbench.train import fit

    cfg = smoke(tmp_path, "bad").override(**overrides)
    with pytest.raises((ValueError, FileNotFoundError)):
        fit(cfg, progress=False)
    assert not (tmp_path / "runs" / "bad").exists()


def test_a_failed_start_with_a_wrong_type_leaves_no_run_folder(tmp_path):
    from workbench.train import fit

    cfg = smoke(tmp_path, "bad")
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, epochs="5"))
    with pytest.raises(ValueError, match="optim.epochs"):
        fit(cfg, progress=False)
    assert not (tmp_path / "runs" / "bad").exists()


def test_pk_error_names_the_held_out_validation_identities(tmp_path):
    from workbench.train import fit

    with pytest.raises(ValueError, match=r"data.val_ids=4 of the \d+ training identities are held out"):
        fit(smoke(tmp_path, "pk", **{"data.p": 10}), progress=False)


# ---------------------------------------------------------------------------- item 9: test data checked first

@pytest.fixture(scope="module")
def sysu_copy(tmp_path_factory):
    from workbench.data import synthetic
    from workbench.data.synthetic import SyntheticConfig

    root = tmp_path_factory.mktemp("sysu") / "SYSU"
    synthetic.export("sysu-mm01", root, ids=12, images_per_id_cam=2, progress=False,
                     config=SyntheticConfig.from_difficulty("default", height=64, width=32))
    return root


def _sysu_cfg(tmp_path, root):
    return smoke(tmp_path, "sysu", **{"data.dataset": "sysu-mm01", "data.root": str(root), "data.options": {},
                                      "data.val_ids": 2, "data.p": 2})


def test_a_test_split_without_infrared_images_is_refused_before_training(tmp_path, sysu_copy):
    from workbench.train import fit

    root = tmp_path / "SYSU"
    shutil.copytree(sysu_copy, root)
    test_ids = [int(x) for x in (root / "exp" / "test_id.txt").read_text().strip().split(",")]
    for cam in ("cam3", "cam6"):
        for pid in test_ids:
            shutil.rmtree(root / cam / f"{pid:04d}", ignore_errors=True)
    with pytest.raises(DatasetFormatError, match="query of test split .* is empty"):
        fit(_sysu_cfg(tmp_path, root), progress=False)
    assert not (tmp_path / "runs" / "sysu").exists()


def test_an_unreadable_test_image_is_found_before_training(tmp_path, sysu_copy):
    from workbench.data import load_dataset
    from workbench.train import fit

    root = tmp_path / "SYSU"
    shutil.copytree(sysu_copy, root)
    victim = load_dataset("sysu-mm01", root=root).query[0].paths["ir"]
    data = open(victim, "rb").read()
    with open(victim, "wb") as f:  # the header survives (the loader's cheap check passes), the body does not
        f.write(data[: len(data) // 3])
    with pytest.raises(DatasetFormatError, match="unreadable image"):
        fit(_sysu_cfg(tmp_path, root), progress=False)
    assert not (tmp_path / "runs" / "sysu").exists()


# ------------------------------------------------------------------------------------ item 14: loader messages

def test_a_root_that_is_a_file_is_reported_as_a_file(tmp_path):
    from workbench.data import load_dataset

    f = tmp_path / "SYSU.zip"
    f.write_bytes(b"PK")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        load_dataset("sysu-mm01", root=f)


def test_a_byte_order_mark_in_a_split_file_is_named(tmp_path):
    from workbench.data.base import read_id_line

    path = tmp_path / "test_id.txt"
    path.write_text("\ufeff1,2,3\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="byte-order mark"):
        read_id_line(path)


# ------------------------------------------------------------------------------------ item 10: teacher checks

def _teacher_run(tmp_path, name, cfg):
    from workbench.methods import get_method
    from workbench.runs import Run, save_weights

    run = Run.create(cfg.override(**{"run.name": name}))
    model = get_method(cfg.run.method).build_model(cfg, 0)
    save_weights(model.state_dict(), run.best_weights)
    run.start_attempt(num_classes=0)
    run.set_status("finished")
    return run


def _student(tmp_path, teacher):
    return smoke(tmp_path, "student", "dakd").override(**{"method_options.teacher": str(teacher)})


def test_a_multimodal_teacher_run_is_refused_as_a_teacher(tmp_path):
    from workbench.methods.dakd import load_teacher

    mm = get_config("baseline", "synthetic-rgbnt", "smoke").override(**{"run.out_dir": str(tmp_path / "runs")})
    run = _teacher_run(tmp_path, "mm", mm)
    with pytest.raises(ValueError, match="teacher.*multi-modal"):
        load_teacher(_student(tmp_path, run.path), "cpu")


def test_a_teacher_trained_on_another_dataset_is_refused(tmp_path):
    from workbench.methods.dakd import load_teacher

    other = smoke(tmp_path, "t", "dakd_teacher").override(**{"data.options.ids": 24})
    run = _teacher_run(tmp_path, "other", other)
    with pytest.raises(ValueError, match="teacher.*trained on dataset 'synthetic-vi'.*ids': 24"):
        load_teacher(_student(tmp_path, run.path), "cpu")
    same = _teacher_run(tmp_path, "same", smoke(tmp_path, "t", "dakd_teacher"))
    assert load_teacher(_student(tmp_path, same.path), "cpu") is not None


def test_teacher_weights_of_another_architecture_are_refused_in_our_words(tmp_path):
    from workbench.methods.dakd import load_teacher
    from workbench.models import create_model
    from workbench.runs import save_weights

    path = tmp_path / "vit.safetensors"
    save_weights(create_model("test_mm_vit", num_classes=0).state_dict(), path)
    with pytest.raises(ValueError, match="teacher weights .* do not fit the student's architecture"):
        load_teacher(_student(tmp_path, path), "cpu")


# --------------------------------------------------------------------------------- item 15: pretrained sources

def test_pretrained_from_a_run_folder_or_its_weights_loads_the_models_own_keys(tmp_path):
    from workbench.methods import get_method
    from workbench.models import create_model

    cfg = smoke(tmp_path, "src")
    run = _teacher_run(tmp_path, "src", cfg)  # a run folder with best.safetensors (a baseline model, no classifier)
    source = get_method("baseline").build_model(cfg, 0)
    from workbench.runs import load_weights

    source.load_state_dict(load_weights(run.best_weights))
    for pretrained in (run.path, run.best_weights):
        model = create_model(cfg.model.name, num_classes=5, pretrained=str(pretrained))
        got = model.state_dict()
        for key, value in source.state_dict().items():
            assert torch.equal(got[key], value), key
        assert len(model.load_report.loaded) == len(source.state_dict())


def test_pretrained_weights_that_fill_nothing_are_an_error(tmp_path):
    from workbench.models import create_model
    from workbench.runs import save_weights

    path = tmp_path / "other.safetensors"
    save_weights({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"fill 0 of .*Expected keys such as .*encoder.weight"):
        create_model("test_vi_resnet", num_classes=0, pretrained=str(path))
