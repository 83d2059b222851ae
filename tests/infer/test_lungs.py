import numpy as np
import pytest

from tfcovseg.infer.lungs import body_midline, extract_lungs, split_sides
from tfcovseg.io.phantoms import LEFT_LUNG, RIGHT_LUNG, phantom
from tfcovseg.metrics import dice


@pytest.fixture(scope="module")
def chest():
    return phantom(np.random.default_rng(1), shape=(24, 64, 64))


def test_threshold_extraction_finds_the_phantom_lungs(chest):
    image, lesion, lung = chest
    extracted = extract_lungs(image) | lesion.astype(bool)
    assert dice(lung > 0, extracted) > 0.95


def test_extraction_ignores_air_outside_the_body(chest):
    image, _, _ = chest
    extracted = extract_lungs(image)
    assert not extracted[:, 0, :].any() and not extracted[:, :, 0].any()


def test_binary_mask_is_split_at_the_body_midline(chest):
    image, _, lung = chest
    sides = split_sides(lung > 0, body_midline(image))
    assert dice(lung == RIGHT_LUNG, sides["right"]) > 0.99
    assert dice(lung == LEFT_LUNG, sides["left"]) > 0.99


@pytest.mark.parametrize("right_value, left_value", [(1, 2), (2, 1)])
def test_two_label_masks_keep_their_labels_whatever_the_convention(right_value, left_value):
    lung = np.zeros((4, 8, 10), np.int16)
    lung[:, 2:6, 6:9] = right_value  # high columns: the patient's right on the RAS+ grid
    lung[:, 2:6, 1:4] = left_value
    sides = split_sides(lung, midline=0.0)  # the midline is not used for labelled masks
    assert sides["right"].sum() == 4 * 4 * 3 and sides["right"][:, 2:6, 6:9].all()
    assert sides["left"][:, 2:6, 1:4].all()


def test_volume_without_inner_air_has_no_lungs():
    assert not extract_lungs(np.full((4, 8, 8), 40.0)).any()
