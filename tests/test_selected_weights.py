"""Best versus last (issue 22 item 5): a run whose validation selects an earlier epoch than its last one. The run
reports that epoch, and everything that scores or opens the run (the final test, `weights_path()`,
`open_run(...).model()`, `load_run_model`, the dashboard's models, `model.pretrained=runs/X`, a resume) uses the
weights of that epoch: compared tensor by tensor with the weights the model held when that epoch was validated.

Validation is replaced by chosen scores (as tests/test_resume.py replaces it): validation mAP falls from epoch to
epoch while rank-1 rises, so the selection (on mAP) is the first epoch, and a selection on anything else, or none,
shows."""

import numpy as np
import pytest
import torch

from workbench import train
from workbench.config import get_config

pytestmark = pytest.mark.slow


def smoke(root, name, **overrides):
    cfg = get_config("baseline", "synthetic-vi", "smoke")  # 2 epochs of 3 steps, validation after each
    return cfg.override(**{"run.out_dir": str(root), "run.name": name, "run.device": "cpu", **overrides})


class ChosenValidation:
    """Stands in for `train.score_validation`: the i-th validation scores mAP `maps[i]` and rank-1 0.95 + 0.01 * i
    (rising, above every mAP: a selection on rank-1 would take the last epoch), and keeps a copy of the weights the
    model held then."""

    def __init__(self, maps):
        self.maps = list(maps)
        self.weights: list[dict[str, torch.Tensor]] = []

    def __call__(self, parts, cfg):
        self.weights.append({k: v.detach().clone() for k, v in parts.model.state_dict().items()})
        i = len(self.weights) - 1
        return {"rank1": 0.95 + 0.01 * i, "mAP": self.maps[i]}


def assert_same_weights(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    differing = [k for k in expected if not torch.equal(got[k].cpu(), expected[k].cpu())]
    assert not differing, f"{len(differing)} tensors differ, e.g. {differing[:3]}"


@pytest.fixture(scope="module")
def early(tmp_path_factory):
    """A finished 2-epoch run whose validation selected epoch 1: (run, [weights at epoch 1, weights at epoch 2])."""
    chosen = ChosenValidation([0.9, 0.5])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "score_validation", chosen)
        run = train.fit(smoke(tmp_path_factory.mktemp("best"), "early"), progress=False)
    assert len(chosen.weights) == 2
    return run, chosen.weights


def test_the_run_reports_the_selected_epoch_and_keeps_its_weights(early):
    from workbench import checkpoint
    from workbench.runs import load_weights

    run, (epoch1, epoch2) = early
    assert not all(torch.equal(epoch1[k], epoch2[k]) for k in epoch1), "epoch 2 trained: its weights differ"
    assert run.status == "finished" and run.results["epochs_done"] == 2
    assert run.best_epoch == 1 and run.val == {"rank1": 0.95, "mAP": 0.9}
    assert run.results["selected"] == "best validation mAP"
    val = run.metrics.dropna(subset=["val/mAP"])
    assert val["epoch"].tolist() == [1, 2] and val["val/mAP"].tolist() == [0.9, 0.5]
    assert_same_weights(load_weights(run.best_weights), epoch1)
    assert_same_weights(checkpoint.load(run.last_checkpoint)["model"], epoch2)  # last.pt: where training stands
    assert run.weights_path() == run.best_weights


def test_the_final_test_scores_the_selected_weights(early):
    """The stored test features are those of the epoch-1 weights, not the epoch-2 ones, and the reported numbers
    are that evaluation's."""
    from workbench import evaluate as E
    from workbench.methods import get_method

    run, (epoch1, epoch2) = early
    cfg = run.config
    ev = E.load_evaluation(run)
    assert ev.mean == run.results["test"]["mean"] and run.test.mean == run.results["test"]["mean"]
    samples = [ev.sample(r) for r in range(len(ev.samples))]
    stored = ev.features()["feats"]
    feats = {}
    for epoch, weights in ((1, epoch1), (2, epoch2)):
        model = get_method(cfg.run.method).build_model(cfg, run.num_classes)
        model.load_state_dict(weights)
        feats[epoch] = E.extract_features(model, samples, cfg, progress=False).branches["feats"]
    np.testing.assert_allclose(stored, feats[1], rtol=0, atol=1e-5)
    assert not np.allclose(stored, feats[2], rtol=0, atol=1e-5), "the two epochs' features must differ"
    again = E.evaluate(run, device="cpu", cache=False, progress=False)  # the run's weights, scored afresh
    assert again.mean == pytest.approx(run.results["test"]["mean"], abs=1e-9)


def test_everything_that_opens_the_run_loads_the_selected_weights(early):
    from workbench import dashboard
    from workbench import evaluate as E
    from workbench.methods import get_method, load_run_model
    from workbench.models.pretrained import read_state_dict

    run, (epoch1, _) = early
    assert E.open_run(run.path).weights == run.best_weights
    assert_same_weights(E.open_run(run.path).model().state_dict(), epoch1)
    assert_same_weights(load_run_model(run.path).state_dict(), epoch1)
    loaded = dashboard.RunModels().get(run.path)
    assert not loaded.error
    assert_same_weights(loaded.model.state_dict(), epoch1)
    # model.pretrained=runs/early: a new run starts from the selected weights
    assert_same_weights(read_state_dict(run.path), epoch1)
    cfg = run.config.override(**{"model.pretrained": str(run.path)})
    with pytest.warns(UserWarning, match=r"missing keys \['classifier.weight'\]"):  # another classifier size
        model = get_method(cfg.run.method).build_model(cfg, num_classes=7)
    report = model.load_report
    assert len(report.loaded) > 0.9 * len(epoch1)
    state = model.state_dict()
    assert all(torch.equal(state[k], epoch1[k]) for k in report.loaded)


def test_a_resume_keeps_the_selection_made_before_it(tmp_path, monkeypatch):
    from workbench.runs import load_weights

    chosen = ChosenValidation([0.9, 0.5])
    monkeypatch.setattr(train, "score_validation", chosen)
    stopped = train.fit(smoke(tmp_path, "r", **{"run.max_steps": 3}), progress=False)  # stops after epoch 1
    assert stopped.status_record.status == "stopped" and stopped.best_epoch == 1
    run = train.fit(smoke(tmp_path, "r"), resume=True, progress=False)
    assert len(chosen.weights) == 2 and run.status == "finished" and run.results["epochs_done"] == 2
    assert run.best_epoch == 1 and run.val["mAP"] == 0.9
    assert_same_weights(load_weights(run.best_weights), chosen.weights[0])


def test_the_last_epoch_is_validated_when_eval_every_does_not_divide_the_epochs(tmp_path, monkeypatch):
    from workbench.runs import load_weights

    chosen = ChosenValidation([0.2, 0.9])
    monkeypatch.setattr(train, "score_validation", chosen)
    run = train.fit(smoke(tmp_path, "odd", **{"optim.epochs": 3, "run.eval_every": 2}), progress=False)
    assert run.metrics.dropna(subset=["val/mAP"])["epoch"].tolist() == [2, 3]
    assert run.best_epoch == 3
    assert_same_weights(load_weights(run.best_weights), chosen.weights[1])
