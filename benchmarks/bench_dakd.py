"""DAKD student inference throughput against its bare backbone, in one run (issue goal: ratio >= 0.95).

The student at test time is the network DAKD distils into: ResNet trunk, GeM, BN-neck, L2 normalisation. The
"bare backbone" is the same trunk's `forward_features` (the convolutional feature map, no pooling or neck), on the
same input, timed alternately (`workbench.profiling.compare_throughput`).

    python benchmarks/bench_dakd.py [--quick] [--batch 16] [--iters 10]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from workbench.config import get_config
from workbench.methods import get_method
from workbench.profiling import compare_throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the cpu-demo student (tiny backbone)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    profiles = ["cpu-demo"] if args.quick else ["cpu-demo", "paper"]
    results = {}
    for profile in profiles:
        cfg = get_config("dakd", "sysu-mm01", profile).override(**{"model.pretrained": None})
        student = get_method("dakd").build_model(cfg, num_classes=0).eval()
        x = torch.randn(args.batch, 3, cfg.data.height, cfg.data.width)
        m = torch.zeros(args.batch, dtype=torch.long)
        rates = compare_throughput(
            {"student": lambda s=student, x=x, m=m: F.normalize(s(x, m).feats, dim=1),
             "bare": lambda s=student, x=x, m=m: s.forward_features(x, m)},
            args.batch, iters=args.iters, warmup=2)
        results[profile] = {"model": cfg.model.name, "input": f"{cfg.data.height}x{cfg.data.width}",
                            "student_img_s": rates["student"], "bare_img_s": rates["bare"],
                            "ratio": rates["student"] / rates["bare"]}
        r = results[profile]
        print(f"{profile:9s} {r['model']:15s} {r['input']:8s} student {r['student_img_s']:8.1f} img/s   "
              f"bare trunk {r['bare_img_s']:8.1f} img/s   ratio {r['ratio']:.3f}")
    print("BENCH_DAKD " + json.dumps(results))


if __name__ == "__main__":
    main()
