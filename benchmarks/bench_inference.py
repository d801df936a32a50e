"""Inference throughput (images/s) of each baseline and of the bare timm backbone on the same input, in one run.

For every registered baseline (tiny `test_*` ones always, full-size ones unless `--quick`) the script builds the model
in eval mode and the *same* timm architecture bare (`timm.create_model(arch, num_classes=0)` with the model's timm
arguments, as timm ships it: `forward_features` + global average pooling for ResNets, the CLS token for ViTs), feeds
both the same batch and reports the median images/s over `--iters` timed calls (model and bare interleaved, so
that both see the same background load) and the ratio model / bare.

Images per call: B for the visible-infrared CNNs (half visible, half infrared, so both stems run), M*B for the
multi-modal ViT (its M modality batches; the bare ViT gets their concatenation).

The bare ResNet keeps timm's last stride 2 and has no non-local blocks, two-stem routing or BN-neck, so the ratio is
the whole cost of the AGW conventions (last stride 1 quadruples layer4's work).

Usage:
    python benchmarks/bench_inference.py --quick              # tiny models only (seconds)
    python benchmarks/bench_inference.py --batch 4 --iters 3  # + agw_r50, vi_r50, mm_vit_b16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import timm
import torch
from torch import nn

from workbench import models
from workbench.models.mm_vit import MultiModalViT
from workbench.models.vi_cnn import VIReIDNet

TINY = {"test_vi_resnet": (64, 32), "test_mm_vit": (64, 32)}
FULL = {"agw_r50": (288, 144), "vi_r50": (288, 144), "mm_vit_b16": (256, 128)}  # AGW 288x144, TransReID 256x128


@dataclass(frozen=True)
class Result:
    model: str
    input_hw: tuple[int, int]
    batch: int
    images_per_call: int
    model_images_per_s: float
    bare_images_per_s: float
    ratio: float  # model / bare throughput (1.0 = no overhead)
    bare: str


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], device: torch.device, warmup: int,
              iters: int) -> tuple[float, float]:
    """Median seconds per call of two functions, timed interleaved (a, b, b, a, ...) so that both see the same
    background load; `warmup` untimed calls of each first."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn_a()
            fn_b()
        _sync(device)
        times: dict[int, list[float]] = {0: [], 1: []}
        for i in range(iters):
            order = ((0, fn_a), (1, fn_b)) if i % 2 == 0 else ((1, fn_b), (0, fn_a))
            for key, fn in order:
                start = time.perf_counter()
                fn()
                _sync(device)
                times[key].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def bare_backbone(model: nn.Module) -> tuple[nn.Module, Callable[[nn.Module, torch.Tensor], torch.Tensor]]:
    """The plain timm model the baseline is built from, and its feature function (forward_features + pooling)."""
    kwargs = dict(model.timm_kwargs)
    bare = timm.create_model(model.arch, pretrained=False, num_classes=0, **kwargs)
    if isinstance(model, VIReIDNet):
        return bare, lambda m, x: m.forward_features(x).mean(dim=(2, 3))
    return bare, lambda m, x: m.forward_features(x)[:, 0]


def bench_model(name: str, hw: tuple[int, int], batch: int, device: torch.device, warmup: int,
                iters: int) -> Result:
    torch.manual_seed(0)
    model = models.create_model(name).eval().to(device)
    bare, bare_fn = bare_backbone(model)
    bare = bare.eval().to(device)
    if isinstance(model, MultiModalViT):
        images = {m: torch.randn(batch, 3, *hw, device=device) for m in model.modalities}
        stacked = torch.cat(list(images.values()))
        run_model = lambda: model(images)  # noqa: E731
    else:
        stacked = torch.randn(batch, 3, *hw, device=device)
        modality = torch.arange(batch, device=device) % 2
        run_model = lambda: model(stacked, modality)  # noqa: E731
    n_images = stacked.shape[0]
    t_model, t_bare = time_pair(run_model, lambda: bare_fn(bare, stacked), device, warmup, iters)
    return Result(name, hw, batch, n_images, n_images / t_model, n_images / t_bare, t_bare / t_model,
                  model.arch)


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny test_* models only")
    parser.add_argument("--batch", type=int, default=4, help="samples per call (default 4)")
    parser.add_argument("--iters", type=int, default=5, help="timed calls per model (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--only", nargs="*", default=None, help="restrict to these registered names")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from workbench.utils import get_device

    device = get_device(args.device)
    cases = dict(TINY) if args.quick else {**TINY, **FULL}
    if args.only:
        unknown = [n for n in args.only if n not in cases]
        if unknown:
            parser.error(f"--only {unknown}: choose from {sorted(cases)}")
        cases = {n: cases[n] for n in args.only}

    print(f"device={device} torch={torch.__version__} timm={timm.__version__} threads={torch.get_num_threads()} "
          f"cpu={platform.processor() or platform.machine()} batch={args.batch} iters={args.iters}")
    header = f"{'model':<16}{'input':>10}{'img/call':>10}{'model img/s':>14}{'bare img/s':>13}{'ratio':>8}  bare timm"
    print(header)
    print("-" * len(header))
    results = []
    for name, hw in cases.items():
        r = bench_model(name, hw, args.batch, device, args.warmup, args.iters)
        results.append(r)
        print(f"{r.model:<16}{f'{hw[0]}x{hw[1]}':>10}{r.images_per_call:>10}{r.model_images_per_s:>14.1f}"
              f"{r.bare_images_per_s:>13.1f}{r.ratio:>8.2f}  {r.bare}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(device), "threads": torch.get_num_threads(),
                       "results": [asdict(r) for r in results]}, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
