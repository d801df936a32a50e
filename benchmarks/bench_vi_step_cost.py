"""CPU cost of one training step of the visible-infrared networks, relative to the cpu-demo one, in one run.

One step = the method's training losses on a P=8 x K=4 visible + infrared batch (32 + 32 images), backward and an SGD
step, timed in CPU seconds of this process (`time.process_time`), so the figure does not depend on what else runs on
the machine; run with `OMP_NUM_THREADS=1` for one core's cost. Every row is relative to `test_vi_resnet` at the
same size (the cpu-demo network).

    OMP_NUM_THREADS=1 python benchmarks/bench_vi_step_cost.py [--sizes 128x64 256x128] [--steps 3]

Rows: test_vi_resnet; agw_lite0 with last stride 1 (AGW) and 2; vi_lite0 (DAKD's single stream); icre_lite0 (ICRE
losses); agw_lite0 with per-modality BatchNorm. Initial weights do not change a step's cost (random weights here).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

ROWS = [  # (label, model, method, model kwargs)
    ("test_vi_resnet", "test_vi_resnet", "baseline", {}),
    ("agw_lite0 (last stride 1)", "agw_lite0", "baseline", {}),
    ("agw_lite0 (last stride 2)", "agw_lite0", "baseline", {"last_stride": 2}),
    ("vi_lite0", "vi_lite0", "baseline", {}),
    ("icre_lite0", "icre_lite0", "icre", {}),
    ("agw_lite0 per-modality BN", "agw_lite0", "baseline", {"modality_bn": "per_modality"}),
]
NUM_CLASSES = 221  # training identities of the cpu-demo synthetic VI set


def step_seconds(model_name: str, method_name: str, kwargs: dict, size: tuple[int, int], steps: int) -> float:
    """Mean CPU seconds of one training step (after one warm-up step)."""
    from workbench.config import get_config
    from workbench.methods import get_method

    cfg = get_config(method_name, "synthetic-vi", "cpu-demo").override(**{"model.name": model_name,
                                                                           "model.pretrained": None})
    method = get_method(method_name)
    torch.manual_seed(0)
    model = method.build_model(cfg.override(**{"model.kwargs": kwargs}), num_classes=NUM_CLASSES).train()
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(8).repeat_interleave(4)
    batch = {"rgb": torch.randn(32, 3, *size, generator=g), "ir": torch.randn(32, 3, *size, generator=g),
             "label": labels}
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def one() -> None:
        terms = method.training_losses(model, batch, cfg)
        total = torch.stack([t.float() for t in terms.values()]).sum()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    one()
    tick = time.process_time()
    for _ in range(steps):
        one()
    return (time.process_time() - tick) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["128x64"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", nargs="+", default=None, help="labels to run (default: all)")
    args = parser.parse_args()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    for size_text in args.sizes:
        size = tuple(int(v) for v in size_text.split("x"))
        reference = None
        for label, model_name, method_name, kwargs in ROWS:
            if args.rows and label not in args.rows and label != "test_vi_resnet":
                continue
            seconds = step_seconds(model_name, method_name, kwargs, size, args.steps)
            reference = reference or seconds
            print(json.dumps({"model": label, "size": size_text, "batch": "32+32", "cpu_s_per_step": round(seconds, 3),
                              "relative_to_test_vi_resnet": round(seconds / reference, 2),
                              "omp_threads": threads, "load_avg_1min": round(os.getloadavg()[0], 1)}), flush=True)


if __name__ == "__main__":
    main()
