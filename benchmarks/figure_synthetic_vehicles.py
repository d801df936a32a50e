"""Figure: a few synthetic vehicles across RGBNT100-like cameras and the three modalities, by day and by night.

Rows: one vehicle per body type, each twice (a sunny day; a night under a sodium street lamp, headlights on), the
same pose both times. Columns: cameras (each an RGBNT100 viewpoint) x RGB | NIR | TIR, as the real files hold them.
The drawing is `workbench.viz.data.vehicle_sheet` (notebook 08 shows the same figure).

    python benchmarks/figure_synthetic_vehicles.py [--out outputs/figures/vehicles_across_cameras.png] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from workbench.viz.data import vehicle_sheet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/figures/vehicles_across_cameras.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--types", default="sedan,suv,van,truck", help="body types, one row pair each")
    parser.add_argument("--cameras", default="1,5,3,7", help="RGBNT100 camera ids (viewpoints)")
    args = parser.parse_args()
    axes = vehicle_sheet(args.types.split(","), [int(c) for c in args.cameras.split(",")], seed=args.seed)
    fig = axes[0, 0].figure
    top = axes[0, 0].get_position().y1
    fig.suptitle("Synthetic vehicles (RGBNT100-like cameras): identity is the vehicle; camera, light and sensor are "
                 "style", fontsize=9, y=top + 0.45 / fig.get_figheight())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
