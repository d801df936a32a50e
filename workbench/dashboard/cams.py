"""Similarity CAMs for the dashboard's per-query detail: for each of the two compared runs, the CAM of the query
against that run's top-ranked gallery image and, when the top one is not a true match, against its first true
match in the stored top-k. All CAM code is `workbench.viz.cam` (`pair_cams`); this file only finds the inputs
(stored sample rows -> the run's test transform), loads each run's model once (`RunModels`) and draws.

Per run, the query and its one or two gallery samples take one forward each (the gallery samples batched) and each
pair one backward that stops at the target layers (`viz.cam.query_cams`): about a second of CPU per query for the
cpu-demo models and 22 CPU s (65 s wall on a loaded two-core machine) for two multi-modal ViT-B/16 runs at 256x128
(`benchmarks/bench_viz.py --panel`), so the dashboard computes them only on request. Where a CAM is not possible (weights missing, a model family without
a default CAM target, images gone) the result carries the reason instead of a map.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from workbench import evaluation_store as store

# Layouts whose stored sample rows cannot be turned back into the model's input: RGBNT100 keeps three modalities
# side by side in one file (`Sample.panel`), which samples.csv does not record.
PANEL_LAYOUTS = ("rgbnt100",)


@dataclass
class LoadedRun:
    """A run's model, eval forward, config and test transform (or why it could not be loaded: `error`)."""

    name: str
    model: object = None
    method: object = None
    config: object = None
    transform: object = None
    error: str = ""


class RunModels:
    """Each run's model loaded once: `models.get(run_path)` -> `LoadedRun`. A run whose selected weights file
    changed since it was loaded (re-trained, resumed) is loaded again.

    Args:
        device: where the models live ("cpu" by default: CAMs of one query need no accelerator).
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._cache: dict[str, tuple[tuple, LoadedRun]] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, run_path: str | Path) -> LoadedRun:
        from workbench.features import test_transform
        from workbench.methods import get_method, load_run_model
        from workbench.runs import load_run

        path = Path(run_path)
        try:
            run = load_run(path)
            weights = run.weights_path()
            stamp = (str(weights), weights.stat().st_mtime_ns)
        except (FileNotFoundError, OSError, ValueError) as exc:
            return LoadedRun(path.name, error=f"no CAM for run {path.name}: its weights cannot be read ({exc})")
        hit = self._cache.get(str(path))
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            cfg = run.config
            loaded = LoadedRun(path.name, load_run_model(run, self.device), get_method(cfg.run.method), cfg,
                               test_transform(cfg))
        except (FileNotFoundError, OSError, RuntimeError, KeyError, ValueError) as exc:
            loaded = LoadedRun(path.name, error=f"no CAM for run {path.name}: its model cannot be loaded ({exc})")
        self._cache[str(path)] = (stamp, loaded)
        return loaded


@dataclass
class RunCams:
    """One run's CAMs for one query.

    Attributes:
        name: the run. tag: "A" or "B".
        pairs: `viz.cam.PairCAM`s of the query against the run's rank-1 gallery sample and, when that is not a
            true match, against its first true match in the stored top-k (label says which).
        gallery_rows: the stored sample row of each pair's gallery sample.
        message: why there is no CAM, or a note (e.g. no true match in the stored top-k); "" when all is there.
        mean, std: the run's normalisation, to draw the inputs.
    """

    name: str
    tag: str
    pairs: list = field(default_factory=list)
    gallery_rows: list[int] = field(default_factory=list)
    message: str = ""
    mean: list[float] | None = None
    std: list[float] | None = None


def _sample(samples_by_row, row: int):
    from workbench.data.samples import Sample

    r = samples_by_row.loc[row]
    return Sample(json.loads(r["paths"]), int(r["pid"]), int(r["camid"]), str(r["modality"]))


def _inputs(loaded: LoadedRun, sample) -> dict:
    """{modality: (3, H, W)} test-transformed tensors of a sample, as feature extraction builds them."""
    return {m: loaded.transform(sample.load_image(m)) for m in sample.paths}


def run_cams(ev: store.StoredEvaluation, loaded: LoadedRun, tag: str, trial: int, query: int, query_row: int, *,
             cam_method: str = "gradcam", both: bool = False, first_true: bool = True) -> RunCams:
    """CAMs of one stored query (trial, query index, sample row) for one run (see `detail_cams`)."""
    import torch

    from workbench.viz import cam

    out = RunCams(ev.run_name, tag)
    if loaded.error:
        out.message = loaded.error
        return out
    if ev.identity.get("layout") in PANEL_LAYOUTS:
        out.message = (f"no CAM for run {ev.run_name}: {ev.identity['layout']} stores several modalities in one "
                       "file and the stored rows do not say which panel; use viz.ranked.failure_figure")
        return out
    tf = loaded.transform
    out.mean, out.std = tf.mean.flatten().tolist(), tf.std.flatten().tolist()
    table = ev.ranked_list(trial, query)
    if table.empty:
        out.message = f"run {ev.run_name} stored no ranked list for this query"
        return out
    targets = [(int(table["row"].iloc[0]), "rank 1, " + ("true match" if table["match"].iloc[0] else "false match"))]
    if first_true and not table["match"].iloc[0]:
        hits = np.flatnonzero(table["match"].to_numpy())
        if len(hits):
            targets.append((int(table["row"].iloc[hits[0]]), f"1st true match, rank {hits[0] + 1}"))
        else:
            out.message = f"no true match in run {ev.run_name}'s stored top-{len(table)}"
    rows = ev.samples.set_index("row")
    q_sample = _sample(rows, query_row)
    try:
        q_in = _inputs(loaded, q_sample)
        g_samples = [_sample(rows, g_row) for g_row, _ in targets]
        out.pairs = cam.query_cams(loaded.model, q_in, [_inputs(loaded, g) for g in g_samples], both=both,
                                   method=loaded.method, cam_method=cam_method, query_camid=q_sample.camid,
                                   gallery_camids=[g.camid for g in g_samples], labels=[lab for _, lab in targets])
        out.gallery_rows = [g_row for g_row, _ in targets]
    except (OSError, ValueError, RuntimeError, torch.cuda.OutOfMemoryError) as exc:
        out.message = f"no CAM for run {ev.run_name}: {type(exc).__name__}: {exc}"
    return out


def detail_cams(cmp, sample: int, *, models: RunModels | None = None, cam_method: str = "gradcam",
                both: bool = False, first_true: bool = True) -> dict[str, RunCams]:
    """Both runs' similarity CAMs for one query sample of a `PairedComparison` (the first gallery draw it is valid
    in, as `ranked_lists`): {"A": RunCams, "B": RunCams}.

    Args:
        cmp: the comparison. sample: a query sample (`cmp.per_query["sample"]`).
        models: a `RunModels` cache (the app keeps one); default a fresh one (models loaded for this call only).
        cam_method: one of `viz.cam.CAM_METHODS`.
        both: also the gallery-side map (what in the gallery image explains the match): twice the cost.
        first_true: also the CAM against the first true match when rank 1 is a false match.

    The query's camera id is passed to the model, as feature extraction does (it matters for models with a camera
    embedding only).
    """
    rows = cmp.per_query[cmp.per_query["sample"] == sample]
    if rows.empty:
        raise ValueError(f"sample {sample} is not a valid query of this comparison; pick one of "
                         f"cmp.per_query['sample'] (e.g. {int(cmp.per_query['sample'].iloc[0])})")
    row = rows.iloc[0]
    trial, query = int(row["trial"]), int(row["query"])
    models = RunModels() if models is None else models  # an empty cache is falsy (len 0)
    return {tag: run_cams(ev, models.get(ev.path.parent.parent), tag, trial, query, sample, cam_method=cam_method,
                          both=both, first_true=first_true)
            for tag, ev in (("A", cmp.a), ("B", cmp.b))}


def plot_detail_cams(cams: dict[str, RunCams], *, axes=None, modality: str | None = None, size: float = 1.15):
    """One row per run: for each pair, the query's CAM and the gallery image (with its own CAM when computed),
    titled with the pair's label and cosine similarity; the reason instead when there is no CAM. Triplets show
    `modality` (default the first, RGB). Returns the Axes array (runs, columns)."""
    from workbench.viz import cam

    per_pair = 3 if any(p.gallery_maps for rc in cams.values() for p in rc.pairs) else 2
    n_cols = max(2 * per_pair, 1)
    if axes is None:
        _, axes = plt.subplots(len(cams), n_cols, figsize=(size * n_cols, 2.3 * size * len(cams)), squeeze=False)
    for r, rc in enumerate(cams.values()):
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.axis("off")
        c = 0
        for pair in rc.pairs:
            m = modality if modality in pair.query_maps else next(iter(pair.query_maps))
            gm = m if m in pair.gallery_images else next(iter(pair.gallery_images))
            ax = axes[r][c]
            ax.axis("on")
            cam.plot_cam(pair.query_images[m], pair.query_maps[m], mean=rc.mean, std=rc.std, ax=ax,
                         title=f"{rc.tag}: query vs\n{pair.label}\ncos {pair.similarity:.2f}",
                         note=cam.note_of(pair.query_maps, m))
            ax = axes[r][c + 1]
            ax.axis("on")
            ax.imshow(cam.display_image(pair.gallery_images[gm], rc.mean, rc.std))
            ax.set_title(f"{pair.label.split(',')[0]}\n({gm})", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            if pair.gallery_maps:
                ax = axes[r][c + 2]
                ax.axis("on")
                cam.plot_cam(pair.gallery_images[gm], pair.gallery_maps[gm], mean=rc.mean, std=rc.std, ax=ax,
                             title="CAM on gallery", note=cam.note_of(pair.gallery_maps, gm))
            c += per_pair
        if rc.message:
            axes[r][min(c, n_cols - 1)].text(0, 0.5, _wrap(rc.message), fontsize=7, color="#b00",
                                             transform=axes[r][min(c, n_cols - 1)].transAxes, va="center")
        axes[r][0].set_ylabel(rc.name[:22], fontsize=7)
    return axes


def _wrap(text: str, width: int = 34) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
