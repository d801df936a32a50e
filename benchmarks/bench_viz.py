"""Timing of the analysis instruments on the CPU, and the numbers of the CAM deletion check.

* CAM: seconds for one query's similarity CAM against five gallery images (query side: five CAMs, one per gallery
  embedding as the target; multi-modal models give one map per modality, so 15 maps), for the cpu-demo models
  (`test_vi_resnet`, `test_mm_vit` at 128x64) and the paper-size ones (`agw_r50` at 288x144, `mm_vit_b16` at
  256x128), untrained weights (speed does not depend on them). Includes the embedding forwards. With `--old`, the
  same run also times the one-map-at-a-time path (one pytorch-grad-cam call, i.e. a forward and a full backward,
  per map; kept as the oracle in tests/test_viz_cam.py), gives the CPU-time ratio old / new and the largest
  difference between the two paths' maps.
* Dashboard CAM panel (`--panel`): seconds for the CAM panel of one query (`dashboard.cams.run_cams` for two runs,
  each against its rank-1 false match and its first true match: the most a query asks for, then the drawing), with
  two randomly initialised models of that family standing in for the runs' trained ones (speed does not depend on
  the weights; models are loaded once per run in the app, so loading is not timed).
* Embedding map: seconds for `viz.embedding.embedding_map` of 2,000 features (UMAP alone, and UMAP plus the
  disentanglement scores), at the feature sizes of those models. umap-learn compiles with numba on first use; that
  one-off cost is timed separately.
* Deletion check: the tiny model of `tests/test_viz_cam.py`, trained for 40 steps on synthetic tensors; similarity
  drop after blanking the top-10% CAM pixels vs 10% random pixels, per query.

Each figure is given as wall seconds and as CPU seconds of this process (`time.process_time`, one thread with
OMP_NUM_THREADS=1): on a shared machine the wall time depends on the other load, the CPU time much less.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/bench_viz.py --quick      # cpu-demo models only
    OMP_NUM_THREADS=1 python benchmarks/bench_viz.py              # + paper-size models
    OMP_NUM_THREADS=1 python benchmarks/bench_viz.py --models mm_vit_b16 --cams gradcam --old --repeats 1 \
        --skip-deletion --dims --panel                            # the ViT-B/16 CAM speed-up and the panel
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch

from workbench.models import create_model
from workbench.viz import cam, embedding

TINY = {"test_vi_resnet": (128, 64), "test_mm_vit": (128, 64)}
FULL = {"agw_r50": (288, 144), "mm_vit_b16": (256, 128)}


def _sample(model, size, gen):
    mods = getattr(model, "modalities", None)
    if mods is None:  # VI: an infrared query against visible gallery images
        return {"ir": torch.randn(3, *size, generator=gen)}, {"rgb": torch.randn(3, *size, generator=gen)}
    return ({m: torch.randn(3, *size, generator=gen) for m in mods},
            {m: torch.randn(3, *size, generator=gen) for m in mods})


def _test_module():
    path = Path(__file__).resolve().parent.parent / "tests" / "test_viz_cam.py"
    spec = importlib.util.spec_from_file_location("test_viz_cam", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def time_cam(name: str, size: tuple[int, int], cam_method: str, repeats: int, warmup: bool = True,
             old: bool = False) -> dict:
    torch.manual_seed(0)
    kwargs = {"img_size": size} if "vit" in name else {}
    model = create_model(name, num_classes=10, **kwargs).eval()
    gen = torch.Generator().manual_seed(0)
    query, _ = _sample(model, size, gen)
    galleries = [_sample(model, size, gen)[1] for _ in range(5)]
    if warmup:  # first-call costs (allocator, kernels) of both paths
        cam.query_cams(model, query, galleries[:1], both=False, cam_method=cam_method)
    old_query_cams = _test_module().old_query_cams if old else None
    walls, cpus, old_walls, old_cpus, diff = [], [], [], [], 0.0
    for _ in range(repeats):
        if old:  # the same load for both paths: alternate them within each repeat
            reference, wall, cpu = _timed(lambda: old_query_cams(model, query, galleries, both=False,
                                                                 cam_method=cam_method))
            old_walls.append(wall)
            old_cpus.append(cpu)
        pairs, wall, cpu = _timed(lambda: cam.query_cams(model, query, galleries, both=False, cam_method=cam_method))
        walls.append(wall)
        cpus.append(cpu)
        if old:
            diff = max([diff] + [float(np.abs(p.query_maps[m] - q_maps[m]).max())
                                 for p, (q_maps, _, _) in zip(pairs, reference) for m in q_maps])
    maps = sum(len(p.query_maps) for p in pairs)
    row = {"model": name, "size": f"{size[0]}x{size[1]}", "cam": cam_method, "maps": maps,
           "wall_s": round(float(np.median(walls)), 2), "cpu_s": round(float(np.median(cpus)), 2)}
    if old:
        row |= {"old_wall_s": round(float(np.median(old_walls)), 2), "old_cpu_s": round(float(np.median(old_cpus)), 2),
                "cpu_ratio_old_new": round(float(np.median(old_cpus) / np.median(cpus)), 2),
                "max_abs_map_diff": diff}
    return row


def time_panel(name: str, size: tuple[int, int], cam_method: str, repeats: int) -> dict:
    """The dashboard's CAM panel for one query: two runs, each with its rank-1 false match and first true match."""
    import tempfile

    import matplotlib
    import pandas as pd
    from PIL import Image

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.config import get_config
    from workbench.dashboard import cams as panel
    from workbench.features import test_transform
    from workbench.methods import get_method

    kind = "synthetic-vi" if "vit" not in name else "synthetic-rgbnt"
    cfg = next((c for c in (get_config("baseline", kind, p) for p in ("paper", "cpu-demo"))
                if (c.data.height, c.data.width) == size), None)
    if cfg is None:
        raise ValueError(f"no profile of {kind} has the image size {size}")
    tf = test_transform(cfg)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        kwargs = {"img_size": size} if "vit" in name else {}
        rows = []
        for row in range(3):  # the query, a false match, a true match
            mods = ("rgb", "nir", "tir") if "vit" in name else (("ir",) if row == 0 else ("rgb",))
            paths = {}
            for m in mods:
                paths[m] = f"{tmp}/{row}_{m}.png"
                Image.fromarray(rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)).save(paths[m])
            rows.append({"row": row, "pid": 0 if row != 1 else 1, "camid": row, "modality": mods[0],
                         "paths": json.dumps(paths)})
        samples = pd.DataFrame(rows)

        class StoredStandIn:  # what run_cams reads of a stored evaluation
            identity = {"layout": "rgbnt201" if "vit" in name else "sysu-mm01"}

            def __init__(self, run_name):
                self.run_name, self.samples = run_name, samples

            def ranked_list(self, trial, query):
                return pd.DataFrame({"rank": [1, 2], "row": [1, 2], "match": [False, True]})

        runs = {tag: (StoredStandIn(f"run_{tag}"),
                      panel.LoadedRun(f"run_{tag}", create_model(name, num_classes=10, **kwargs).eval(),
                                      get_method("baseline"), cfg, tf)) for tag in "AB"}

        def one_query():
            out = {tag: panel.run_cams(ev, loaded, tag, 0, 0, 0, cam_method=cam_method) for tag, (ev, loaded)
                   in runs.items()}
            axes = panel.plot_detail_cams(out)
            axes[0][0].figure.savefig(f"{tmp}/panel.png")
            plt.close(axes[0][0].figure)
            return out

        one_query()  # warm-up
        walls, cpus = [], []
        for _ in range(repeats):
            out, wall, cpu = _timed(one_query)
            walls.append(wall)
            cpus.append(cpu)
    messages = [rc.message for rc in out.values() if rc.message]
    if messages:
        raise RuntimeError(f"the panel reported {messages}")
    return {"model": name, "size": f"{size[0]}x{size[1]}", "cam": cam_method, "runs": 2,
            "pairs": sum(len(rc.pairs) for rc in out.values()), "weights": "random",
            "wall_s": round(float(np.median(walls)), 2), "cpu_s": round(float(np.median(cpus)), 2)}


def time_embedding(dim: int, n: int = 2000, ids: int = 200) -> dict:
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(ids), n // ids)
    mods = np.tile(np.array(["rgb", "ir"]), n // 2)
    feats = rng.normal(size=(ids, dim))[pids] + rng.normal(size=(n, dim))
    out = {"dim": dim, "n": n}
    for key, scores in (("umap", False), ("umap_and_scores", True)):
        start, cpu = time.perf_counter(), time.process_time()
        embedding.embedding_map({"f": feats}, pids, mods, scores=scores, progress=False)
        out[f"{key}_wall_s"] = round(time.perf_counter() - start, 2)
        out[f"{key}_cpu_s"] = round(time.process_time() - cpu, 2)
    return out


def deletion_numbers() -> list[dict]:
    mod = _test_module()
    net, queries, galleries = mod.trained.__wrapped__()
    cams = mod._cams(net, queries, galleries)
    rows = []
    for i, (q, g, c) in enumerate(zip(queries, galleries, cams)):
        r = cam.deletion_check(net, {"x": q}, cam.embed(net, {"x": g}, plain=True), c, fraction=0.1, plain=True)
        rows.append({"query": i, "similarity": round(r.similarity, 3), "cam_drop": round(r.cam_drop, 3),
                     "random_drop": round(r.random_drop, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="cpu-demo models only")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-deletion", action="store_true")
    parser.add_argument("--models", nargs="*", default=None, help="only these models (e.g. mm_vit_b16)")
    parser.add_argument("--cams", nargs="*", default=["gradcam", "eigencam"], help="CAM methods to time")
    parser.add_argument("--dims", nargs="*", type=int, default=None, help="embedding-map feature sizes (none: skip)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first CAM")
    parser.add_argument("--old", action="store_true",
                        help="also time the one-map-at-a-time path in the same run (CPU ratio old / new)")
    parser.add_argument("--panel", action="store_true", help="also time the dashboard's CAM panel per query")
    args = parser.parse_args()
    models = TINY | ({} if args.quick else FULL)
    if args.models is not None:
        models = {k: v for k, v in (TINY | FULL).items() if k in args.models}

    start, cpu = time.perf_counter(), time.process_time()
    embedding.umap_2d(np.random.default_rng(0).normal(size=(50, 8)))
    print(f"umap-learn first call (numba compilation): {time.perf_counter() - start:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU", flush=True)

    results = {"cam": [], "panel": [], "embedding": [],
               "deletion": [] if args.skip_deletion else deletion_numbers()}
    for row in results["deletion"]:
        print("deletion", json.dumps(row), flush=True)
    drops = results["deletion"] or [{"cam_drop": np.nan, "random_drop": np.nan}]
    print(f"deletion mean: cam {np.mean([r['cam_drop'] for r in drops]):.3f} vs random "
          f"{np.mean([r['random_drop'] for r in drops]):.3f}", flush=True)
    for name, size in models.items():
        for method in args.cams:
            row = time_cam(name, size, method, args.repeats, warmup=not args.no_warmup, old=args.old)
            results["cam"].append(row)
            print("cam", json.dumps(row), flush=True)
            if args.panel:
                row = time_panel(name, size, method, args.repeats)
                results["panel"].append(row)
                print("panel", json.dumps(row), flush=True)
    dims = {96, 192} | (set() if args.quick else {2048, 2304})  # tiny VI, tiny MM, ResNet-50, 3 x ViT-B
    if args.dims is not None:
        dims = set(args.dims)
    for dim in sorted(dims):
        row = time_embedding(dim)
        results["embedding"].append(row)
        print("embedding", json.dumps(row), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
