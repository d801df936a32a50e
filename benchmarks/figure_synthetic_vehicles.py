"""Figure: a few synthetic vehicles across RGBNT100-like cameras and the three modalities, by day and by night.

Rows: one vehicle per body type, each twice (a sunny day; a night under a sodium street lamp, headlights on), the
same pose both times. Columns: cameras (each an RGBNT100 viewpoint) x RGB | NIR | TIR, as the real files hold them.

    python benchmarks/figure_synthetic_vehicles.py [--out outputs/figures/vehicles_across_cameras.png] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from workbench.data.synthetic import vehicle_sheet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/figures/vehicles_across_cameras.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--types", default="sedan,suv,van,truck", help="body types, one row pair each")
    parser.add_argument("--cameras", default="1,5,3,7", help="RGBNT100 camera ids (viewpoints)")
    args = parser.parse_args()
    rows, labels, columns = vehicle_sheet(args.types.split(","), [int(c) for c in args.cameras.split(",")],
                                          seed=args.seed)
    n_rows, n_cols = len(rows), len(columns)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.55 * n_cols, 0.84 * n_rows + 0.3), squeeze=False,
                             gridspec_kw={"wspace": 0.03, "hspace": 0.06})
    for r, (row, label) in enumerate(zip(rows, labels)):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title(columns[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(label.replace(", ", "\n"), fontsize=7, rotation=0, ha="right", va="center")
    top = axes[0][0].get_position().y1
    fig.suptitle("Synthetic vehicles (RGBNT100-like cameras): identity is the vehicle; camera, light and sensor are "
                 "style", fontsize=9, y=top + 0.45 / fig.get_figheight())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
