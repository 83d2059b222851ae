"""The pipeline preview: a PNG grid of augmented samples."""

import matplotlib.image
import pytest

from tfcovseg.data.preview import PANEL_INCHES, preview_png
from tfcovseg.settings.data import Pipeline2D, Pipeline3D


@pytest.mark.parametrize("cfg", [Pipeline3D(size=(6, 32, 32)), Pipeline2D(size=(32, 32))])
def test_preview_writes_a_grid_even_with_more_panels_than_cases(marker_dataset, tmp_path, cfg):
    out = preview_png(marker_dataset.root, cfg, tmp_path / "preview.png", n=5, seed=1)
    picture = matplotlib.image.imread(out)
    dots = int(PANEL_INCHES * 100)
    assert picture.shape[:2] == (2 * dots, 4 * dots)
