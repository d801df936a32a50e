"""Zero-shot visible-infrared retrieval with start weights only: how much an initialisation already knows.

No training at all: each backbone's spatially averaged last feature map embeds the *training* identities of the
cpu-demo synthetic visible-infrared set; infrared images query the visible ones (cosine distance, every cross-modal
pair counts, no junk), and rank-1 / mAP are reported next to chance (the expected rank-1 of a random ranking: the
mean fraction of the gallery that shows the query's identity). Starts compared:

    lite0-imagenet   EfficientNet-Lite0 with the offline ImageNet weights (model.pretrained="imagenet-lite0")
    lite0-random     the same network from random weights (seed 0)
    tiny-random      timm's test_resnet (the cpu-demo VI trunk) from random weights (seed 0)
    tiny-standin     test_resnet from the attribute stand-in (model.pretrained="synthetic"; built if missing)
    tiny-distilled   test_resnet distilled from Lite0's ImageNet features ("synthetic-distilled"; built if missing)

    OMP_NUM_THREADS=1 python benchmarks/bench_zero_shot_vi.py [--sizes 128x64 256x128] [--starts ...]

Each start is fed the input normalisation its weights were trained with (TF-Lite's for Lite0, ImageNet's for the
tiny ResNet). Prints one JSON line per (start, size) with CPU seconds of this process.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

STARTS = ("lite0-imagenet", "lite0-random", "tiny-random", "tiny-standin", "tiny-distilled")


def vi_training_images(size: tuple[int, int]) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """The cpu-demo synthetic VI training split as uint8 pixels per modality: {"rgb": (N, 3, H, W), "ir": ...} and
    {"rgb": pids, "ir": pids}."""
    from workbench import data
    from workbench.config import SYNTHETIC_DEMO

    ds = data.load_dataset("synthetic-vi", **SYNTHETIC_DEMO["vi"])
    images, pids = {}, {}
    for modality in ("rgb", "ir"):
        samples = [s for s in ds.train if s.modality == modality]
        arrays = [np.asarray(s.load_image().resize((size[1], size[0]))) for s in samples]
        images[modality] = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # uint8: 4x less memory
        pids[modality] = np.asarray([s.pid for s in samples])
    return images, pids


def backbone(start: str) -> tuple[torch.nn.Module, tuple]:
    """(timm backbone in eval mode, (mean, std) its input expects)."""
    import timm

    from workbench.models.imagenet import LITE0_ARCH, LITE0_MEAN_STD, lite0_imagenet_state_dict
    from workbench.models.vi_cnn import IMAGENET_MEAN_STD

    torch.manual_seed(0)
    if start.startswith("lite0"):
        net = timm.create_model(LITE0_ARCH, num_classes=0, global_pool="")
        if start == "lite0-imagenet":
            net.load_state_dict(lite0_imagenet_state_dict(), strict=False)
        return net.eval(), LITE0_MEAN_STD
    net = timm.create_model("test_resnet", num_classes=0, global_pool="")
    if start in ("tiny-standin", "tiny-distilled"):
        from safetensors.torch import load_file

        from workbench.pretrain_distill import standin_path

        source = "synthetic" if start == "tiny-standin" else "synthetic-distilled"
        net.load_state_dict(load_file(str(standin_path(source, "test_vi_resnet"))))
    return net.eval(), IMAGENET_MEAN_STD


@torch.no_grad()
def embed(net: torch.nn.Module, pixels: torch.Tensor, mean_std: tuple, batch: int = 64) -> torch.Tensor:
    """(N, 3, H, W) uint8 pixels -> (N, C) L2-normalised mean-pooled features."""
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in mean_std)
    out = [net.forward_features((pixels[i:i + batch].float() / 255 - mean) / std).mean(dim=(2, 3))
           for i in range(0, len(pixels), batch)]
    return F.normalize(torch.cat(out), dim=1)


def zero_shot(net: torch.nn.Module, mean_std: tuple, images: dict, pids: dict) -> dict[str, float]:
    """IR -> RGB rank-1, mAP and chance rank-1."""
    from workbench.metrics import rank_metrics

    q, g = embed(net, images["ir"], mean_std), embed(net, images["rgb"], mean_std)
    result = rank_metrics((1 - q @ g.T).numpy(), pids["ir"], pids["rgb"], junk="none", max_rank=10)
    chance = float(np.mean([(pids["rgb"] == p).mean() for p in pids["ir"]]))
    return {"rank1": round(float(result.cmc[0]), 4), "mAP": round(float(result.mAP), 4),
            "chance_rank1": round(chance, 4), "queries": len(q), "gallery": len(g)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["128x64", "256x128"])
    parser.add_argument("--starts", nargs="+", default=list(STARTS), choices=STARTS)
    args = parser.parse_args()
    for size_text in args.sizes:
        size = tuple(int(v) for v in size_text.split("x"))
        images, pids = vi_training_images(size)
        for start in args.starts:
            tick = time.process_time()
            net, mean_std = backbone(start)
            scores = zero_shot(net, mean_std, images, pids)
            print(json.dumps({"start": start, "size": size_text, **scores,
                              "cpu_s": round(time.process_time() - tick, 1)}), flush=True)


if __name__ == "__main__":
    main()
