"""Synthetic data throughput: images per second on one core, render-only and render + JPEG encode.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_synthetic.py [--n 600] [--difficulty default]

Goal (issue 2, section 2): at least 300 images/s at 128x64. The mix of modalities follows the SYSU-MM01 preset
(visible cams 1, 2, 4, 5 and near-infrared cams 3, 6); triplets (three images per pose) are timed separately.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: set before NumPy/SciPy load their thread pools

import argparse  # noqa: E402
import io  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from workbench.data.synthetic import (  # noqa: E402
    SyntheticConfig,
    make_identities,
    render,
    render_triplet,
    rgbnt201_cameras,
    sysu_cameras,
)


def _jpeg(image: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    return buf.tell()


def bench(height: int, width: int, n: int, difficulty: str, encode: bool, triplets: bool) -> tuple[float, float]:
    """Images per CPU second and per wall-clock second (a triplet counts as three images). CPU time is the figure
    to compare: it does not drop when other processes share the core."""
    config = SyntheticConfig.from_difficulty(difficulty, height=height, width=width)
    identities = make_identities(64, 0, config)
    sysu, rgbnt = sysu_cameras(), rgbnt201_cameras()
    cams = sorted(sysu)

    def one(i: int) -> int:
        ident = identities[i % len(identities)]
        rng = np.random.default_rng(i)
        if triplets:
            images, _ = render_triplet(ident, camera=rgbnt[1 + i % 4], rng=rng, config=config)
            if encode:
                for im in images.values():
                    _jpeg(im)
            return 3
        cam = sysu[cams[i % len(cams)]]
        image, _ = render(ident, cam.spectra[0], camera=cam, rng=rng, config=config)
        if encode:
            _jpeg(image)
        return 1

    for i in range(30):  # warm caches (backgrounds, identity tables)
        one(i)
    start, cpu, count = time.perf_counter(), time.process_time(), 0
    for i in range(n):
        count += one(i)
    return count / (time.process_time() - cpu), count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="renders per measurement")
    parser.add_argument("--difficulty", default="default", choices=("easy", "default", "hard"))
    args = parser.parse_args()
    try:
        import torch  # only to pin its threads if something imported it

        torch.set_num_threads(1)
    except ImportError:
        pass
    print("images/s per CPU second (wall-clock in brackets)")
    print(f"{'size':>8} {'mode':>8} {'render':>14} {'render+jpeg':>14}")
    for h, w in ((128, 64), (256, 128)):
        for triplets in (False, True):
            plain = bench(h, w, args.n, args.difficulty, encode=False, triplets=triplets)
            enc = bench(h, w, args.n, args.difficulty, encode=True, triplets=triplets)
            mode = "triplet" if triplets else "single"
            cells = [f"{cpu:6.0f} ({wall:5.0f})" for cpu, wall in (plain, enc)]
            print(f"{h}x{w:<4} {mode:>8} {cells[0]:>14} {cells[1]:>14}")


if __name__ == "__main__":
    main()
