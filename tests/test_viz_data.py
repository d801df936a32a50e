"""Data figures render headless, and their helpers convert images exactly."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from workbench.data.samples import Sample
from workbench.viz.data import augmentation_sheet, identity_sheet, image_grid, plot_split_summary, to_image


def test_to_image_denormalises_exactly():
    rgb = torch.rand(3, 4, 2)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)
    normed = (rgb - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    np.testing.assert_allclose(to_image(normed, mean, std), rgb.permute(1, 2, 0).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="3, H, W"):
        to_image(torch.rand(4, 4))


def _samples(tmp_path, triplets=False):
    out = []
    for pid in range(3):
        for cam in (1, 3):
            paths = {}
            for m in (("rgb", "nir", "tir") if triplets else ("rgb" if cam == 1 else "ir",)):
                p = tmp_path / f"{pid}_{cam}_{m}.png"
                Image.fromarray(np.full((8, 4, 3), 40 * pid + cam, np.uint8)).save(p)
                paths[m] = str(p)
            out.append(Sample(paths, pid, cam, "rgb+nir+tir" if triplets else next(iter(paths))))
    return out


@pytest.mark.parametrize("triplets", [False, True])
def test_identity_sheet_shape(tmp_path, triplets):
    axes = identity_sheet(_samples(tmp_path, triplets), n_ids=2)
    assert np.asarray(axes).shape == ((2, 6) if triplets else (2, 2))


def test_grid_summary_and_augmentation_sheet(tmp_path):
    assert np.asarray(image_grid([np.zeros((4, 2, 3), np.uint8)] * 5, ncols=3)).shape == (2, 3)
    df = pd.DataFrame({"split": ["train", "train"], "modality": ["rgb", "ir"], "camid": ["all", "all"],
                       "ids": [3, 3], "images": [10, 7]})
    ax = plot_split_summary(df)
    assert [p.get_height() for p in ax.patches] == [10, 7]
    img = Image.fromarray(np.zeros((8, 4, 3), np.uint8))
    axes = augmentation_sheet(img, {"id": lambda x: x, "flip": lambda x: x.transpose(Image.FLIP_LEFT_RIGHT)}, draws=2)
    assert np.asarray(axes).shape == (2, 3)
    with pytest.raises(ValueError, match="columns"):
        plot_split_summary(pd.DataFrame({"x": [1]}))


def test_vehicle_sheet_draws_each_render_in_its_cell():
    """Each cell shows exactly the image the generator rendered for that (vehicle, time of day, camera, modality),
    and the labels name them, in the order `data.synthetic.vehicle_sheet` returns them."""
    from workbench.data.synthetic import VehicleConfig
    from workbench.data.synthetic import vehicle_sheet as render_sheet
    from workbench.viz.data import vehicle_sheet

    config = VehicleConfig.smoke(occlusion_rate=0.0)
    rows, labels, columns = render_sheet(["sedan", "bus"], [1, 3], seed=0, config=config)
    axes = vehicle_sheet(["sedan", "bus"], [1, 3], seed=0, config=config)
    assert axes.shape == (4, 6) and len(rows) == 4 and len(columns) == 6
    for r in range(4):
        for c in range(6):
            (shown,) = axes[r, c].get_images()
            np.testing.assert_array_equal(shown.get_array(), rows[r][c])
        assert axes[r, 0].get_ylabel() == labels[r].replace(", ", "\n")
    assert [ax.get_title() for ax in axes[0]] == columns
    assert labels[0].endswith("day") and labels[1].endswith("night") and "bus" in labels[2]
    with pytest.raises(ValueError, match="tank"):
        vehicle_sheet(["tank"], [1], config=config)
