"""Training curves from a run's metrics log: a static plot and a live, in-notebook version."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def plot_curves(metrics: pd.DataFrame, *, axes=None, smooth: int = 5):
    """Loss terms per step (left) and validation metrics per epoch (right). Returns the two Axes.

    Args:
        metrics: a run's metrics table (`Run.metrics`): columns "step", "loss/<term>", "val/<metric>".
        smooth: rolling-mean window over steps for the loss curves.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    ax_loss, ax_val = axes
    loss_cols = [c for c in metrics.columns if c.startswith("loss/")]
    steps = metrics.dropna(subset=loss_cols, how="all") if loss_cols else metrics.iloc[0:0]
    for col in loss_cols:
        series = steps[col].rolling(smooth, min_periods=1).mean()
        ax_loss.plot(steps["step"], series, label=col.removeprefix("loss/"), lw=1.5 if col == "loss/total" else 1)
    ax_loss.set(xlabel="step", ylabel="loss", title="training losses")
    if loss_cols:
        ax_loss.legend(fontsize=8)
    val_cols = [c for c in metrics.columns if c.startswith("val/") and c.split("/")[1] in ("mAP", "rank1", "mINP")]
    evals = metrics.dropna(subset=val_cols, how="all") if val_cols else metrics.iloc[0:0]
    for col in val_cols:
        (line,) = ax_val.plot(evals["epoch"], evals[col], marker="o", label=col.removeprefix("val/"))
        if f"{col}_std" in evals:  # the spread over the validation gallery draws
            ax_val.fill_between(evals["epoch"], evals[col] - evals[f"{col}_std"], evals[col] + evals[f"{col}_std"],
                                color=line.get_color(), alpha=0.2, lw=0)
    title = "validation (held-out training identities)"
    if any(c.endswith("_std") for c in metrics.columns if c.startswith("val/")):
        title += ", mean ± std over gallery draws"
    ax_val.set(xlabel="epoch", ylabel="score", title=title, ylim=(0, 1))
    if val_cols:
        ax_val.legend(fontsize=8)
    return axes


def plot_regime_study(rows: list[dict], *, band: tuple[float, float] = (0.40, 0.80), chosen: str | None = None,
                      ax=None):
    """Validation rank-1 against the CPU minutes spent, one line per regime of `benchmarks/regime_study.py`.

    Each marker is one epoch: x = CPU minutes used so far (training and validation), y = validation rank-1, the mean
    over the gallery draws, with their spread as a band. The shaded strip is the calibration band; minutes are on a log
    scale, and the chosen regime is drawn thicker and over the others. Returns the Axes.

    Args:
        rows: the study's rows (its JSON): "regime", "what", "val_rank1", "val_rank1_std", "cpu_s_per_epoch".
        chosen: the regime key to draw thicker (the study's choice), or None.
    """
    import textwrap

    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
    ax.axhspan(*band, color="tab:green", alpha=0.08, lw=0)
    ax.text(0.01, band[0] + 0.01, f"band {band[0]:.2f}-{band[1]:.2f}", transform=ax.get_yaxis_transform(),
            fontsize=8, color="tab:green", va="bottom")
    for row in rows:
        if len(row["val_rank1"]) != len(row["cpu_s_per_epoch"]):
            raise ValueError(f"regime {row['regime']!r}: {len(row['val_rank1'])} validation scores for "
                             f"{len(row['cpu_s_per_epoch'])} epochs; expected one per epoch")
        minutes = np.cumsum(row["cpu_s_per_epoch"]) / 60
        mean = np.asarray(row["val_rank1"], dtype=float)
        std = np.asarray(row.get("val_rank1_std") or [0.0] * len(mean), dtype=float)
        width = 2.6 if row["regime"] == chosen else 1.4
        label = f"({row['regime']}) {row['what']}"
        stopped = row.get("stopped_after")  # a table read with pandas has NaN where a row has no such field
        if stopped is not None and not (isinstance(stopped, float) and np.isnan(stopped)):
            label += f" [stopped after epoch {int(stopped)}; wall minutes]"
        if row["regime"] == chosen:
            label += " [chosen]"
        label = textwrap.fill(label, 52, subsequent_indent="   ")
        on_top = 4 if row["regime"] == chosen else 2  # regimes that share the chosen one's first epochs hide it
        (line,) = ax.plot(minutes, mean, marker="o", ms=4, lw=width, label=label, zorder=on_top)
        ax.fill_between(minutes, mean - std, mean + std, color=line.get_color(), alpha=0.15, lw=0, zorder=on_top - 1)
    # log minutes: the tiny-CNN regimes crowd the first ten minutes, the full ImageNet run takes thirty
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set(xlabel="CPU minutes, log scale (one process, training + validation)",
           ylabel="validation rank-1 (mean of draws)", ylim=(0, 1), title="VI baseline per regime: one marker per epoch")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


class LiveCurves:
    """Redraw `plot_curves` in one notebook output area, at most every `every` seconds."""

    def __init__(self, every: float = 5.0):
        import time

        from IPython.display import display

        self._time = time
        self._every = every
        self._last = 0.0
        self._fig, self._axes = plt.subplots(1, 2, figsize=(10, 3.2))
        plt.close(self._fig)  # shown through the display handle only
        self._handle = display(self._fig, display_id=True)

    def __call__(self, run) -> None:
        now = self._time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        for ax in self._axes:
            ax.clear()
        plot_curves(run.metrics, axes=self._axes)
        self._fig.tight_layout()
        self._handle.update(self._fig)
