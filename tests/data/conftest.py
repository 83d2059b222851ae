"""A tiny dataset whose lesion is a bright marker block, to check image/label alignment."""

import numpy as np
import pytest

from tfcovseg.io.manifest import Case, Dataset, case_files, write_dataset
from tfcovseg.io.nifti import write_volume

AIR_HU = -1000.0
TISSUE_HU = 40.0
MARKER_HU = 800.0
MARKER_SHAPES = [(10, 20, 24), (12, 24, 20), (8, 16, 16)]


def marker_case(shape, offset):
    """Air with a tissue block, a marker block (the lesion) and a lung box around it."""
    image = np.full(shape, AIR_HU, np.float32)
    d, h, w = shape
    image[1:-1, 2:-2, 2:-2] = TISSUE_HU
    marker = tuple(slice(o, o + s) for o, s in zip(offset, (3, 5, 6)))
    image[marker] = MARKER_HU
    label = np.zeros(shape, np.uint8)
    label[marker] = 1
    lung = np.zeros(shape, np.uint8)
    lung[1:-1, 2 : h // 2 + 4, 2 : w - 2] = 2
    return image, label, lung


@pytest.fixture(scope="session")
def marker_dataset(tmp_path_factory):
    """3 cases of different shapes, each with one marker block labelled as lesion."""
    root = tmp_path_factory.mktemp("markers")
    cases = []
    for i, shape in enumerate(MARKER_SHAPES):
        image, label, lung = marker_case(shape, offset=(2 + i, 4, 3 + 2 * i))
        files = case_files(f"m{i}")
        affine = np.diag([0.8, 0.8, 2.5, 1.0])
        write_volume(root / files["image"], image, affine, np.int16)
        write_volume(root / files["label"], label, affine, np.uint8)
        write_volume(root / files["lung"], lung, affine, np.uint8)
        cases.append(Case(id=f"m{i}", **files))
    dataset = Dataset(root=root, name="markers", cases=cases)
    write_dataset(dataset)
    return dataset
