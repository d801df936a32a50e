"""The regime-study figure: one point per epoch at the cumulative CPU minutes, the band, the chosen line."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from workbench.viz.curves import plot_regime_study  # noqa: E402

ROWS = [{"regime": "a", "what": "tiny", "val_rank1": [0.1, 0.3, 0.35], "val_rank1_std": [0.01, 0.02, 0.03],
         "cpu_s_per_epoch": [60, 60, 60]},
        {"regime": "b", "what": "big", "val_rank1": [0.45, 0.6], "val_rank1_std": [0.02, 0.02],
         "cpu_s_per_epoch": [300, 240]}]


def test_each_epoch_sits_at_the_cpu_minutes_spent_so_far():
    ax = plot_regime_study(ROWS, chosen="b")
    lines = {line.get_label()[:3]: line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["(a)"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(lines["(b)"].get_xdata(), [5, 9])
    np.testing.assert_allclose(lines["(b)"].get_ydata(), [0.45, 0.6])
    assert lines["(b)"].get_linewidth() > lines["(a)"].get_linewidth()  # the chosen regime stands out
    assert lines["(b)"].get_zorder() > lines["(a)"].get_zorder()  # and is drawn over regimes that share its epochs
    assert ax.get_xscale() == "log"
    band = [p for p in ax.patches if np.allclose([p.get_y(), p.get_y() + p.get_height()], [0.40, 0.80])]
    assert band, "the calibration band is not drawn"


def test_only_a_stopped_row_is_labelled_stopped_also_after_a_pandas_round_trip():
    """The stored table goes through pandas (`lab.regime_study()`): rows without `stopped_after` come back with NaN
    there, and must not be labelled as stopped."""
    import pandas as pd

    rows = pd.DataFrame([ROWS[0], {**ROWS[1], "stopped_after": 2}]).to_dict("records")
    labels = {line.get_label()[:3]: line.get_label() for line in plot_regime_study(rows).get_lines()}
    assert "stopped" not in labels["(a)"] and "stopped after epoch 2;" in labels["(b)"]


def test_a_row_whose_scores_and_costs_disagree_is_refused_by_name():
    bad = [{**ROWS[0], "cpu_s_per_epoch": [60, 60]}]
    with pytest.raises(ValueError, match="regime 'a'"):
        plot_regime_study(bad)
