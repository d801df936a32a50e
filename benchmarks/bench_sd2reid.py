"""SD2-ReID costs: inference against the multi-modal baseline with the same shared depth, and training speed.

Inference (issue goal: ratio >= 0.95 in one run, the paper's "no extra inference cost"): SD2-ReID's test path is
the baseline's ViT plus the per-modality semantic heads and BN; the baseline is the `MultiModalViT` with the same
`shared_depth`, on the same triplet batch, timed alternately (`workbench.profiling.compare_throughput`).
Training (`--train`): paper-profile (or cpu-demo) optimiser steps on random triplet batches of P x K samples:
triplets per second and, on CUDA, peak allocated memory, for SD2-ReID and for the baseline.

    python benchmarks/bench_sd2reid.py [--quick] [--batch 16] [--iters 10] [--train] [--train-steps 5]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from workbench.config import get_config
from workbench.methods import get_method
from workbench.models import create_model
from workbench.profiling import compare_throughput
from workbench.utils import get_device

MODS = ("rgb", "nir", "tir")


def _models(profile: str, num_classes: int, device: torch.device):
    cfg = get_config("sd2reid", "rgbnt201", profile).override(**{"model.pretrained": None})
    torch.manual_seed(0)
    sd2 = get_method("sd2reid").build_model(cfg, num_classes=num_classes).to(device)
    kwargs = {**get_method("sd2reid").model_kwargs(cfg), "shared_depth": sd2.backbone.shared_depth}
    base = create_model(cfg.model.name, num_classes=num_classes, **kwargs).to(device)
    return cfg, sd2, base


def inference(profile: str, batch: int, iters: int, device: torch.device) -> dict:
    cfg, sd2, base = _models(profile, 100, device)
    sd2.eval(), base.eval()
    x = {m: torch.randn(batch, 3, cfg.data.height, cfg.data.width, device=device) for m in MODS}
    method = get_method("sd2reid")
    rates = compare_throughput({"sd2reid": lambda: method.forward_eval(sd2, x, None).feats,
                                "baseline": lambda: base(x).feats}, batch, iters=iters, warmup=2)
    return {"model": cfg.model.name, "shared_depth": sd2.backbone.shared_depth,
            "input": f"{cfg.data.height}x{cfg.data.width}", "sd2_triplets_s": rates["sd2reid"],
            "baseline_triplets_s": rates["baseline"], "ratio": rates["sd2reid"] / rates["baseline"]}


def training(profile: str, steps: int, device: torch.device) -> dict:
    out = {}
    for name in ("sd2reid", "baseline"):
        cfg, sd2, base = _models(profile, 171, device)
        model = sd2 if name == "sd2reid" else base
        method = get_method(name)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        n = cfg.data.p * cfg.data.k
        g = torch.Generator().manual_seed(0)
        batch = {m: torch.randn(n, 3, cfg.data.height, cfg.data.width, generator=g).to(device) for m in MODS}
        batch["label"] = torch.arange(cfg.data.p).repeat_interleave(cfg.data.k).to(device)
        use_amp = device.type == "cuda" and cfg.optim.amp
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for i in range(steps + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = sum(method.training_losses(model, batch, cfg).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:  # the first step warms up kernels and allocations
                times.append(time.perf_counter() - start)
        med = sorted(times)[len(times) // 2]
        out[name] = {"batch": f"{cfg.data.p}x{cfg.data.k} triplets at {cfg.data.height}x{cfg.data.width}",
                     "triplets_s": n / med, "images_s": 3 * n / med, "amp_bf16": use_amp,
                     "peak_mem_gib": (torch.cuda.max_memory_allocated(device) / 2**30
                                      if device.type == "cuda" else None)}
        del model, sd2, base, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the cpu-demo model (tiny ViT)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--train", action="store_true", help="also time training steps (paper profile unless --quick)")
    parser.add_argument("--train-steps", type=int, default=5)
    args = parser.parse_args()
    device = get_device("auto")
    profiles = ["cpu-demo"] if args.quick else ["cpu-demo", "paper"]
    results = {"device": str(device), "inference": {}, "training": {}}
    for profile in profiles:
        r = inference(profile, args.batch, args.iters, device)
        results["inference"][profile] = r
        print(f"{profile:9s} {r['model']:12s} L_s={r['shared_depth']} {r['input']:8s} SD2-ReID "
              f"{r['sd2_triplets_s']:8.1f} triplets/s  baseline {r['baseline_triplets_s']:8.1f}  ratio {r['ratio']:.3f}")
    if args.train:
        profile = profiles[-1]
        results["training"][profile] = training(profile, args.train_steps, device)
        for name, r in results["training"][profile].items():
            mem = f"{r['peak_mem_gib']:.1f} GiB peak" if r["peak_mem_gib"] is not None else "CPU"
            print(f"train {profile} {name:9s} {r['batch']}: {r['images_s']:8.1f} images/s ({mem})")
    print("BENCH_SD2REID " + json.dumps(results))


if __name__ == "__main__":
    main()
