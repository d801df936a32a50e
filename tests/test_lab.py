"""The notebook conveniences: the preamble in one call, and a live batch that is exactly what `fit` trains its first
step on (oracle: the loss `fit` logged at step 1)."""

import pytest
import torch

from workbench import lab, utils
from workbench.config import get_config


def test_setup_gives_the_profile_overrides_and_runs_folder(monkeypatch, tmp_path):
    s = lab.setup(True, "cpu-demo", None, 3)
    assert s == ("smoke", {"run.out_dir": str(utils.runs_dir()), "run.seed": 3}, utils.runs_dir())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert lab.setup(False, "cpu-demo", tmp_path, 0).profile == "cpu-demo"
    assert lab.setup(False, "cpu-demo", tmp_path, 0).overrides["run.out_dir"] == str(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU runs the published recipe
    assert lab.setup(False, "cpu-demo").profile == "paper" and lab.setup(False, "cpu-demo", seed=1).profile == "paper"
    assert lab.setup(False, "paper").profile == "paper" and lab.setup(True, "paper").profile == "smoke"
    assert lab.setup(False, "cpu-demo", "elsewhere").runs_dir == utils.project_dir() / "elsewhere"


@pytest.mark.slow
@pytest.mark.parametrize("method,dataset", [("baseline", "synthetic-vi"), ("sd2reid", "synthetic-rgbnt")])
def test_live_batch_is_what_fit_trains_its_first_step_on(method, dataset, tmp_path):
    from workbench.train import fit

    cfg = get_config(method, dataset, "smoke").override(
        **{"run.out_dir": str(tmp_path), "run.max_steps": 1, "run.device": "cpu"})
    run = fit(cfg, progress=False)
    logged = run.metrics.dropna(subset=["loss/total"]).iloc[0]
    utils.seed_everything(cfg.run.seed)  # fit seeds every generator before it prepares
    live = lab.live_batch(cfg, seed=cfg.run.seed)
    assert live.model.training and len({s.label for s in live.train_samples}) == run.results["num_classes"]
    with torch.no_grad():
        terms = live.method.training_losses(live.model, live.batch, cfg)
    assert float(torch.stack([t.float() for t in terms.values()]).sum()) == logged["loss/total"]
    again = lab.live_batch(cfg, seed=cfg.run.seed)  # the model's start is the seed's, whatever ran before
    for (name, a), b in zip(live.model.named_parameters(), again.model.parameters()):  # (buffers: BN ran once)
        assert torch.equal(a, b), name
