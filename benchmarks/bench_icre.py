"""ICRE inference cost against the AGW baseline at the same input size, in one run; optionally ICRE training speed.

ICRE keeps MPFR and SDCE at test time (its retrieval feature is the enhanced one), so unlike DAKD it is not free.
For each size the script builds, in eval mode, the ICRE network of the `icre` profile and the AGW baseline network
of the `baseline` profile (same family: `icre_r50` / `agw_r50` at paper size, `test_icre_resnet` / `test_vi_resnet`
at cpu-demo size), feeds both the same batch (half visible, half infrared, so both stems run) and reports the median
images/s of the L2-normalised retrieval feature, timed alternately (`workbench.profiling.compare_throughput`).

    python benchmarks/bench_icre.py [--quick] [--batch 8] [--iters 5]        # paper size (384x144) and cpu-demo size
    python benchmarks/bench_icre.py --train --device cuda                    # + paper-profile training images/s, peak memory
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from workbench.config import get_config
from workbench.methods import get_method
from workbench.profiling import compare_throughput


def build(method: str, profile: str, num_classes: int = 395):
    """The profile's network of `method`, built for SYSU-MM01 (395 training identities), ICRE's input size."""
    cfg = get_config(method, "sysu-mm01", profile).override(**{"model.pretrained": None})
    return cfg, get_method(method).build_model(cfg, num_classes=num_classes)


def inference(profile: str, batch: int, iters: int, device: torch.device) -> dict:
    cfg, icre = build("icre", profile)
    _, agw = build("baseline", profile)
    icre, agw = icre.to(device).eval(), agw.to(device).eval()
    h, w = cfg.data.height, cfg.data.width  # both networks at ICRE's size
    x = torch.randn(batch, 3, h, w, device=device)
    m = (torch.arange(batch, device=device) >= batch // 2).long()
    rates = compare_throughput({"icre": lambda: F.normalize(icre(x, m).feats, dim=1),
                                "agw": lambda: F.normalize(agw(x, m).feats, dim=1)}, batch, iters=iters, warmup=2)
    params = {k: sum(p.numel() for p in net.parameters()) / 1e6 for k, net in (("icre", icre), ("agw", agw))}
    return {"models": f"{cfg.model.name} vs {get_config('baseline', 'sysu-mm01', profile).model.name}",
            "input": f"{h}x{w}", "batch": batch, "icre_img_s": rates["icre"], "agw_img_s": rates["agw"],
            "ratio": rates["icre"] / rates["agw"], "icre_params_m": params["icre"], "agw_params_m": params["agw"]}


def training(profile: str, steps: int, device: torch.device) -> dict:
    """Images/s of full ICRE training steps (forward, losses, backward, SGD step) at the profile's P x K batch."""
    cfg, model = build("icre", profile)
    model = model.to(device).train()
    method = get_method("icre")
    n = cfg.data.p * cfg.data.k
    batch = {"rgb": torch.randn(n, 3, cfg.data.height, cfg.data.width), "ir": torch.randn(n, 3, cfg.data.height,
                                                                                           cfg.data.width),
             "label": torch.arange(cfg.data.p).repeat_interleave(cfg.data.k)}
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    amp = device.type == "cuda" and cfg.optim.amp
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(steps + 2):
        sync()
        start = time.perf_counter()
        with torch.autocast(device.type, enabled=amp):
            loss = sum(method.training_losses(model, batch, cfg).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        if step >= 2:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"batch_images": 2 * n, "train_img_s": 2 * n / sorted(times)[len(times) // 2], "peak_gib": peak,
            "amp": amp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the cpu-demo size (tiny networks)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train", action="store_true", help="also time paper-profile training steps")
    parser.add_argument("--train-steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    results = {}
    for profile in ["cpu-demo"] if args.quick else ["cpu-demo", "paper"]:
        r = inference(profile, args.batch, args.iters, device)
        results[profile] = r
        print(f"{profile:9s} {r['models']:36s} {r['input']:8s} ICRE {r['icre_img_s']:8.1f} img/s   "
              f"AGW {r['agw_img_s']:8.1f} img/s   ratio {r['ratio']:.3f}   params {r['icre_params_m']:.1f}M vs "
              f"{r['agw_params_m']:.1f}M")
    if args.train:
        results["paper_train"] = training("paper", args.train_steps, device)
        print("paper training", results["paper_train"])
    print("BENCH_ICRE " + json.dumps(results))


if __name__ == "__main__":
    main()
