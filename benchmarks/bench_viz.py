"""Timing of the analysis instruments on the CPU, and the numbers of the CAM deletion check.

* CAM: seconds for one query's similarity CAM against five gallery images (query side: five CAMs, one per gallery
  embedding as the target; multi-modal models give one map per modality, so 15 maps), for the cpu-demo models
  (`test_vi_resnet`, `test_mm_vit` at 128x64) and the paper-size ones (`agw_r50` at 288x144, `mm_vit_b16` at
  256x128), untrained weights (speed does not depend on them). Includes the six embedding forwards.
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


def time_cam(name: str, size: tuple[int, int], cam_method: str, repeats: int, warmup: bool = True) -> dict:
    torch.manual_seed(0)
    kwargs = {"img_size": size} if "vit" in name else {}
    model = create_model(name, num_classes=10, **kwargs).eval()
    gen = torch.Generator().manual_seed(0)
    query, _ = _sample(model, size, gen)
    galleries = [_sample(model, size, gen)[1] for _ in range(5)]
    if warmup:
        cam.query_cams(model, query, galleries[:1], both=False, cam_method=cam_method)
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        pairs = cam.query_cams(model, query, galleries, both=False, cam_method=cam_method)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    maps = sum(len(p.query_maps) for p in pairs)
    return {"model": name, "size": f"{size[0]}x{size[1]}", "cam": cam_method, "maps": maps,
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
    path = Path(__file__).resolve().parent.parent / "tests" / "test_viz_cam.py"
    spec = importlib.util.spec_from_file_location("test_viz_cam", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
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
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first CAM (slow paper models)")
    args = parser.parse_args()
    models = TINY | ({} if args.quick else FULL)
    if args.models is not None:
        models = {k: v for k, v in (TINY | FULL).items() if k in args.models}

    start, cpu = time.perf_counter(), time.process_time()
    embedding.umap_2d(np.random.default_rng(0).normal(size=(50, 8)))
    print(f"umap-learn first call (numba compilation): {time.perf_counter() - start:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU", flush=True)

    results = {"cam": [], "embedding": [], "deletion": [] if args.skip_deletion else deletion_numbers()}
    for row in results["deletion"]:
        print("deletion", json.dumps(row), flush=True)
    drops = results["deletion"] or [{"cam_drop": np.nan, "random_drop": np.nan}]
    print(f"deletion mean: cam {np.mean([r['cam_drop'] for r in drops]):.3f} vs random "
          f"{np.mean([r['random_drop'] for r in drops]):.3f}", flush=True)
    for name, size in models.items():
        for method in args.cams:
            row = time_cam(name, size, method, args.repeats, warmup=not args.no_warmup)
            results["cam"].append(row)
            print("cam", json.dumps(row), flush=True)
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
