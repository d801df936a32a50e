"""Feature extraction and its cache: rows in sample order, a cache keyed on everything that determines the
features (weights, samples, transform, eval forward, code), and a damaged cache file recomputed, not trusted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench import features
from workbench.config import get_config
from workbench.data import load_dataset
from workbench.methods import get_method
from workbench.models import create_model


class CountingForward:
    """The baseline's eval forward, counting the batches it sees."""

    def __init__(self) -> None:
        self.inner, self.calls = get_method("baseline"), 0

    def forward_eval(self, *args, **kwargs):
        self.calls += 1
        return self.inner.forward_eval(*args, **kwargs)

    def retrieval_branches(self, out):
        return self.inner.retrieval_branches(out)


@pytest.fixture(scope="module")
def setup():
    cfg = get_config("baseline", "synthetic-vi", "smoke")
    ds = load_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    samples = ds.eval_splits()[0].query[:6] + ds.eval_splits()[0].gallery[:6]
    torch.manual_seed(0)
    model = create_model(cfg.model.name, num_classes=4, **cfg.model.kwargs)
    return cfg, samples, model


def test_rows_follow_sample_order_across_modalities(setup):
    cfg, samples, model = setup
    fwd = CountingForward()
    mixed = samples[::-1]
    a = features.extract_features(model, samples, cfg, method=fwd, progress=False)
    b = features.extract_features(model, mixed, cfg, method=fwd, progress=False)
    np.testing.assert_allclose(a.branches["feats"][::-1], b.branches["feats"], atol=1e-5)
    assert list(b.pids) == [s.pid for s in mixed]


def test_cache_reuses_same_inputs_and_recomputes_when_code_changes(setup, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))  # an empty cache: the first call must compute
    cfg, samples, model = setup
    fwd = CountingForward()
    first = features.extract_features(model, samples, cfg, method=fwd, cache=True, progress=False)
    n = fwd.calls
    assert n > 0
    again = features.extract_features(model, samples, cfg, method=fwd, cache=True, progress=False)
    assert fwd.calls == n, "same weights, samples, transform and code: the cache must answer"
    np.testing.assert_array_equal(first.branches["feats"], again.branches["feats"])
    # other code (a changed model file, transform or method): the old features must not be reused
    original = features.code_fingerprint
    monkeypatch.setattr(features, "code_fingerprint", lambda: "another version")
    features.extract_features(model, samples, cfg, method=fwd, cache=True, progress=False)
    assert fwd.calls == 2 * n
    # another image size changes the transform, so the key
    monkeypatch.setattr(features, "code_fingerprint", original)
    features.extract_features(model, samples, cfg.override(**{"data.height": cfg.data.height + 8}), method=fwd,
                              cache=True, progress=False)
    assert fwd.calls == 3 * n
    # other weights
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    features.extract_features(model, samples, cfg, method=fwd, cache=True, progress=False)
    assert fwd.calls == 4 * n
    with torch.no_grad():
        next(model.parameters()).sub_(1.0)


def test_a_damaged_cache_file_is_recomputed_with_a_message(setup, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    cfg, samples, model = setup
    fwd = CountingForward()
    key = features.feature_cache_key(model, samples, cfg, fwd)
    first = features.extract_features(model, samples, cfg, method=fwd, cache=True, progress=False)
    path = features.cache_dir() / "features" / f"{key}.npz"
    assert path.is_file()
    path.write_bytes(b"not an npz file")
    n = fwd.calls
    again = features.extract_features(model, samples, cfg, method=fwd, cache=True, progress=False)
    assert fwd.calls > n and "unreadable" in capsys.readouterr().out
    np.testing.assert_allclose(first.branches["feats"], again.branches["feats"], atol=1e-6)
