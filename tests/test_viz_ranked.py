"""Ranked lists (the one ranker, `metrics.ranked_list`) agree with `rank_metrics` query by query; orderings, failure
comparison, plots and the browser's two forms."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from workbench.evaluate import Retrieval
from workbench.metrics import PROTOCOLS, EvalSet, rank_metrics, rank_order, ranked_list
from workbench.viz import ranked


def _problem(seed, q=25, g=60, ids=8, ties=False):
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, 6, (q, g)).astype(float) if ties else rng.random((q, g))
    return (dist, rng.integers(0, ids, q), rng.integers(0, ids, g), rng.integers(1, 5, q), rng.integers(1, 5, g),
            rng.integers(0, 3, q), rng.integers(0, 3, g))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("junk", ["market", "sysu", "msvr310", "none"])
@pytest.mark.parametrize("ties", ["stable", "pessimistic", "optimistic"])
@pytest.mark.parametrize("dedup", [False, True])
def test_ranked_lists_agree_with_rank_metrics(seed, junk, ties, dedup):
    dist, qp, gp, qc, gc, qs, gs = _problem(seed, ties=seed % 2 == 1)
    res = rank_metrics(dist, qp, gp, qc, gc, junk=junk, ties=ties, dedup_cmc=dedup, q_scenes=qs, g_scenes=gs)
    pq = res.per_query
    for i in range(len(dist)):
        rl = ranked_list(dist[i], qp[i], gp, qc[i], gc, junk=junk, ties=ties, dedup_cmc=dedup, q_scene=qs[i],
                         g_scenes=gs, query=i)
        assert rl.num_matches == pq.num_matches[i]
        if not pq.valid[i]:
            assert rl.first_match_rank is None and np.isnan(rl.AP)
            continue
        assert rl.first_match_rank == pq.first_match_rank[i]
        assert rl.cmc_rank == pq.cmc_rank[i]
        assert rl.AP == pytest.approx(pq.AP[i], abs=1e-12)
        assert rl.INP == pytest.approx(pq.INP[i], abs=1e-12)
        # junk is shown, not dropped: every gallery item is in the list once, junk without a rank
        assert sorted(rl.order.tolist()) == list(range(len(gp)))
        assert (rl.rank[rl.is_junk] == 0).all() and (np.diff(rl.rank[~rl.is_junk]) == 1).all()
        assert not (rl.is_match & rl.is_junk).any()
        assert gp[rl.first_match] == qp[i] and gp[rl.top_false] != qp[i]
        assert (rl.pids == gp[rl.order]).all() and (rl.distances == dist[i][rl.order]).all()


def test_sysu_junk_is_marked_in_the_list():
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    rl = ranked_list(dist[0], 7, np.array([1, 7, 2, 7]), 3, np.array([2, 2, 1, 1]), junk="sysu")
    assert rl.is_junk.tolist() == [True, True, False, False]
    assert rl.rank.tolist() == [0, 0, 1, 2] and rl.first_match_rank == 2 and rl.first_match == 3
    top = rl.top(4)
    assert top["junk"].tolist() == [True, True, False, False] and top["gallery"].tolist() == [0, 1, 2, 3]
    assert top["pid"].tolist() == [1, 7, 2, 7] and rl.kept(5).tolist() == [2, 3]


def test_rank_order_tie_policies():
    dist = np.array([0.5, 0.2, 0.5, 0.5])
    match = np.array([True, False, False, True])
    assert rank_order(dist, match, "stable").tolist() == [1, 0, 2, 3]
    assert rank_order(dist, match, "pessimistic").tolist() == [1, 2, 0, 3]
    assert rank_order(dist, match, "optimistic").tolist() == [1, 0, 3, 2]
    with pytest.raises(ValueError, match="ties must be one of"):
        rank_order(dist, match, "random")


def _retrieval(seed=0):
    rng = np.random.default_rng(seed)
    qp, gp = np.repeat(np.arange(6), 2), np.repeat(np.arange(6), 4)
    centres = rng.normal(size=(6, 8))
    q = EvalSet({"feats": centres[qp] + 0.8 * rng.normal(size=(12, 8))}, qp, np.full(12, 3))
    g = EvalSet({"feats": centres[gp] + 0.8 * rng.normal(size=(24, 8))}, gp, np.tile([1, 2], 12))
    return Retrieval.from_features(q, g, PROTOCOLS["sysu-mm01"], name="toy")


def test_retrieval_matches_the_protocol_and_tables_sort():
    r = _retrieval()
    assert r.result.per_query["valid"].all()
    for i in range(12):
        rl = r.ranked_list(i)
        assert rl.cmc_rank == r.result.per_query.cmc_rank[i] and rl.AP == pytest.approx(r.result.per_query.AP[i])
    table = r.query_table()
    hardest = ranked.sort_queries(table, "hardest")
    assert hardest["AP"].is_monotonic_increasing
    deepest = ranked.sort_queries(table, "first_match_rank")
    assert deepest["first_match_rank"].astype(int).is_monotonic_decreasing
    with pytest.raises(ValueError, match="order must be one of"):
        ranked.sort_queries(table, "worst")


def test_compare_failures_splits_all_some_none():
    a, b = _retrieval(0), _retrieval(0)
    b.result.per_query.loc[:, "cmc_rank"] = 1  # a perfect second run
    table = ranked.compare_failures({"a": a, "b": b})
    pq = a.result.per_query
    failing_a = set(pq["query"][pq["cmc_rank"] > 1])
    assert failing_a and set(table["query"][table["category"] == "some"]) == failing_a
    assert (table["category"] != "all").all()
    assert set(table["query"][table["category"] == "none"]) == set(range(12)) - failing_a
    both = ranked.compare_failures({"a": a, "a again": a})
    assert set(both["query"][both["category"] == "all"]) == failing_a
    other = _retrieval(1)
    other.query = EvalSet(other.query.feats, other.query.pids[::-1].copy(), other.query.camids)
    with pytest.raises(ValueError, match="different query set"):
        ranked.compare_failures({"a": a, "c": other})


def test_plots_run_headless():
    r = _retrieval()
    axes = ranked.plot_ranked_list(r, 0, k=5)
    assert len(axes) == 6 and "AP" in axes[0].get_title()
    ax = ranked.plot_query_metrics(r.query_table())
    assert ax.get_xlabel().startswith("rank")
    figs = ranked.static_failure_report(r, n=2, k=4)
    assert len(figs) == 2 and all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    assert isinstance(r.query_table(), pd.DataFrame)


def test_failure_browser_lists_queries_in_the_chosen_order_and_builds_its_widget():
    r = _retrieval()
    browser = ranked.FailureBrowser(r, k=3)
    hardest = [q for _, q in browser.options("hardest")]
    assert hardest == ranked.sort_queries(r.query_table(), "hardest")["query"].tolist()
    box = browser.widget()
    assert len(box.children) == 2


def test_browse_returns_the_widget_wherever_it_runs(monkeypatch):
    import ipywidgets

    from workbench import utils

    r = _retrieval()
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))  # the figure goes to the Output
    box = ranked.browse(r, k=3)
    assert isinstance(box, ipywidgets.VBox) and box not in shown  # a script: built, not displayed
    monkeypatch.setattr(utils, "in_kernel", lambda: True)
    box = ranked.browse(r, k=3)
    assert isinstance(box, ipywidgets.VBox) and shown[-1] is box
