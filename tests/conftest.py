"""Shared fixtures."""

import pytest


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """Two finished smoke runs on synthetic-vi that differ in one key (the triplet loss), trained once per session:
    {"root": runs folder, "a": Run (wrt), "b": Run (hard)}."""
    from workbench.config import get_config
    from workbench.train import fit

    root = tmp_path_factory.mktemp("runs")
    base = get_config("baseline", "synthetic-vi", "smoke").override(
        **{"run.out_dir": str(root), "run.device": "cpu"})
    a = fit(base.override(**{"run.name": "a", "loss.triplet": "wrt"}), progress=False)
    b = fit(base.override(**{"run.name": "b", "loss.triplet": "hard"}), progress=False)
    return {"root": root, "a": a, "b": b}
