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


def time_cam(name: str, size: tuple[int, int], cam_method: str, repeats: int) -> dict:
    torch.manual_seed(0)
    kwargs = {"img_size": size} if "vit" in name else {}
    model = create_model(name, num_classes=10, **kwargs).eval()
    gen = torch.Generator().manual_seed(0)
    query, _ = _sample(model, size, gen)
    galleries = [_sample(model, size, gen)[1] for _ in range(5)]
    cam.query_cams(model, query, galleries[:1], both=False, cam_method=cam_method)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pairs = cam.query_cams(model, query, galleries, both=False, cam_method=cam_method)
        times.append(time.perf_counter() - start)
    maps = sum(len(p.query_maps) for p in pairs)
    return {"model": name, "size": f"{size[0]}x{size[1]}", "cam": cam_method, "maps": maps,
            "seconds": round(float(np.median(times)), 3)}


def time_embedding(dim: int, n: int = 2000, ids: int = 200) -> dict:
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(ids), n // ids)
    mods = np.tile(np.array(["rgb", "ir"]), n // 2)
    feats = rng.normal(size=(ids, dim))[pids] + rng.normal(size=(n, dim))
    start = time.perf_counter()
    embedding.embedding_map({"f": feats}, pids, mods, scores=False, progress=False)
    umap_s = time.perf_counter() - start
    start = time.perf_counter()
    embedding.embedding_map({"f": feats}, pids, mods, scores=True, progress=False)
    both_s = time.perf_counter() - start
    return {"dim": dim, "n": n, "umap_s": round(umap_s, 2), "umap_and_scores_s": round(both_s, 2)}


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
    args = parser.parse_args()
    models = TINY | ({} if args.quick else FULL)

    start = time.perf_counter()
    embedding.umap_2d(np.random.default_rng(0).normal(size=(50, 8)))
    print(f"umap-learn first call (numba compilation): {time.perf_counter() - start:.1f} s", flush=True)

    results = {"cam": [], "embedding": [], "deletion": deletion_numbers()}
    for row in results["deletion"]:
        print("deletion", json.dumps(row), flush=True)
    drops = results["deletion"]
    print(f"deletion mean: cam {np.mean([r['cam_drop'] for r in drops]):.3f} vs random "
          f"{np.mean([r['random_drop'] for r in drops]):.3f}", flush=True)
    for name, size in models.items():
        for method in ("gradcam", "eigencam"):
            row = time_cam(name, size, method, args.repeats)
            results["cam"].append(row)
            print("cam", json.dumps(row), flush=True)
    dims = {96, 192} | (set() if args.quick else {2048, 2304})  # tiny VI, tiny MM, ResNet-50, 3 x ViT-B
    for dim in sorted(dims):
        row = time_embedding(dim)
        results["embedding"].append(row)
        print("embedding", json.dumps(row), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
