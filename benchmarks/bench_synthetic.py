"""Synthetic data throughput on one core: people images and vehicle triplets per second, render-only and with JPEG
encoding.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_synthetic.py [--n 600] [--difficulty default]
        [--mode all|people|vehicles]

Goals: at least 300 people images/s at 128x64 (issue 2, section 2), and at least 300 vehicle triplets/s at 128x256
(RGB + NIR + TIR of one capture; issue 21). People follow the SYSU-MM01 preset's mix of modalities (visible cams
1, 2, 4, 5, near-infrared cams 3, 6), with RGBNT201 triplets (three images per pose) timed separately; vehicles
follow the RGBNT100 rig (8 cameras) with scenes and driving states drawn as the export draws them.

CPU time of this process (`time.process_time`) is the figure to compare: on a shared machine the wall-clock time
depends on the other load (printed: the load average), the CPU time much less (it still grows somewhat when other
processes compete for caches and memory bandwidth).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: set before NumPy/SciPy load their thread pools

import argparse  # noqa: E402
import io  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from workbench.data.synthetic import (  # noqa: E402
    SyntheticConfig,
    VehicleConfig,
    draw_scene,
    draw_state,
    make_identities,
    make_vehicles,
    render,
    render_triplet,
    render_vehicle,
    rgbnt100_cameras,
    rgbnt201_cameras,
    sysu_cameras,
)


def _jpeg(image: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    return buf.tell()


def _time(one: Callable[[int], int], n: int) -> tuple[float, float]:
    """(units per CPU second, units per wall second) over n calls after 30 warm-up calls (caches: backgrounds,
    identity tables, geometry)."""
    for i in range(30):
        one(i)
    start, cpu, count = time.perf_counter(), time.process_time(), 0
    for i in range(n):
        count += one(i)
    return count / (time.process_time() - cpu), count / (time.perf_counter() - start)


def bench_people(height: int, width: int, n: int, difficulty: str, encode: bool, triplets: bool) -> tuple[float, float]:
    """Images per CPU second and per wall-clock second (a triplet counts as three images)."""
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

    return _time(one, n)


def bench_vehicles(height: int, width: int, n: int, difficulty: str, encode: bool) -> tuple[float, float]:
    """Vehicle triplets (one capture in RGB, NIR and TIR) per CPU second and per wall-clock second; with `encode`,
    the three panels are written as one RGBNT100 JPEG (W x 3 by H)."""
    config = VehicleConfig.from_difficulty(difficulty, height=height, width=width)
    vehicles = make_vehicles(64, 0, config)
    cams = rgbnt100_cameras()
    draws = np.random.default_rng(0)
    jobs = []
    for _ in range(64):
        scene = draw_scene(draws, config)
        jobs.append((scene, draw_state(draws, config, scene)))

    def one(i: int) -> int:
        scene, state = jobs[i % len(jobs)]
        images, _ = render_vehicle(vehicles[i % len(vehicles)], camera=cams[1 + i % 8], scene=scene, state=state,
                                   rng=np.random.default_rng(i), config=config)
        if encode:
            _jpeg(np.concatenate([images["rgb"], images["nir"], images["tir"]], axis=1))
        return 1

    return _time(one, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="renders per measurement")
    parser.add_argument("--difficulty", default="default", choices=("easy", "default", "medium", "hard"))
    parser.add_argument("--mode", default="all", choices=("all", "people", "vehicles"))
    args = parser.parse_args()
    try:
        import torch  # only to pin its threads if something imported it

        torch.set_num_threads(1)
    except ImportError:
        pass
    print(f"load average (1, 5, 15 min): {', '.join(f'{v:.1f}' for v in os.getloadavg())} on "
          f"{os.cpu_count()} CPUs")
    if args.mode in ("all", "people"):
        print("people: images/s per CPU second (wall-clock in brackets); goal >= 300 at 128x64")
        print(f"{'size':>8} {'mode':>8} {'render':>14} {'render+jpeg':>14}")
        for h, w in ((128, 64), (256, 128)):
            for triplets in (False, True):
                plain = bench_people(h, w, args.n, args.difficulty, encode=False, triplets=triplets)
                enc = bench_people(h, w, args.n, args.difficulty, encode=True, triplets=triplets)
                mode = "triplet" if triplets else "single"
                cells = [f"{cpu:6.0f} ({wall:5.0f})" for cpu, wall in (plain, enc)]
                print(f"{h}x{w:<4} {mode:>8} {cells[0]:>14} {cells[1]:>14}")
    if args.mode in ("all", "vehicles"):
        print("vehicles: RGB+NIR+TIR triplets/s per CPU second (wall-clock in brackets), CPU ms per triplet; "
              "goal >= 300 at 128x256")
        print(f"{'size':>8} {'render':>22} {'render+jpeg':>22}")
        for h, w in ((128, 256), (64, 128)):
            cells = []
            for encode in (False, True):
                cpu, wall = bench_vehicles(h, w, args.n, args.difficulty, encode=encode)
                cells.append(f"{cpu:5.0f} ({wall:5.0f}) {1000 / cpu:5.2f} ms")
            print(f"{h}x{w:<4} {cells[0]:>22} {cells[1]:>22}")


if __name__ == "__main__":
    main()
