"""The ablation dashboard: is a difference between two runs real, and where does it come from?

Plain functions (for scripts, tests and headless runs) and one ipywidgets app built on them:

    from workbench import dashboard
    dashboard.Dashboard()                                 # the app over the project's runs/
    cmp = dashboard.compare("runs/a", "runs/b")           # paired comparison on the same queries
    print(cmp.summary()); dashboard.comparison_figure(cmp)
    dashboard.detail_view(cmp, sample, cams=True)        # both ranked lists and each run's similarity CAMs

Every view reads the runs' stored evaluations (`workbench.evaluate.Evaluation`), evaluating a run once when its
evaluation is missing.
"""

from workbench.dashboard.cams import RunModels, detail_cams, plot_detail_cams
from workbench.dashboard.paired import (
    IncomparableRuns,
    PairedComparison,
    bootstrap_mean_ci,
    comparable_runs,
    compare,
    comparison_figure,
    detail_png,
    detail_view,
    plot_paired,
    ranked_lists,
    same_run_text,
    sign_test,
)
from workbench.dashboard.runs_view import (
    discover_runs,
    families,
    family_members,
    flatten_config,
    format_table,
    metrics_table,
    plot_curves_overlay,
    run_configs,
    run_labels,
    varying_keys,
)

__all__ = [
    "Dashboard",
    "IncomparableRuns",
    "PairedComparison",
    "RunModels",
    "bootstrap_mean_ci",
    "comparable_runs",
    "compare",
    "comparison_figure",
    "detail_cams",
    "detail_png",
    "detail_view",
    "discover_runs",
    "families",
    "family_members",
    "flatten_config",
    "format_table",
    "metrics_table",
    "plot_curves_overlay",
    "plot_detail_cams",
    "plot_paired",
    "ranked_lists",
    "same_run_text",
    "run_configs",
    "run_labels",
    "sign_test",
    "varying_keys",
]


def __getattr__(name):  # the widgets app imports ipywidgets: only when asked for
    if name == "Dashboard":
        from workbench.dashboard.app import Dashboard

        return Dashboard
    raise AttributeError(f"module 'workbench.dashboard' has no attribute {name!r}")
