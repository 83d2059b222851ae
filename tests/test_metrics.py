import math

import numpy as np
import pytest
import surface_distance

from tfcovseg.metrics import LESION_TOLERANCE_MM, dice, surface_dice


def cube(shape=(12, 12, 12), start=(4, 4, 4), size=3):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def test_identical_masks_score_one():
    mask = cube()
    assert dice(mask, mask) == 1.0
    assert surface_dice(mask, mask, (1.0, 1.0, 1.0)) == 1.0


def test_dice_of_cube_shifted_by_one_voxel_is_two_thirds():
    # 3x3x3 cubes overlapping in 2x3x3 = 18 voxels: 2 * 18 / (27 + 27)
    assert dice(cube(), cube(start=(5, 4, 4))) == pytest.approx(2 / 3)


def test_disjoint_masks_far_apart_have_zero_surface_dice():
    far = cube(shape=(12, 12, 24), start=(4, 4, 18))
    gt = cube(shape=(12, 12, 24))
    assert surface_dice(gt, far, (1.0, 1.0, 1.0), tolerance_mm=3.0) == 0.0


def test_shift_within_tolerance_scores_one():
    assert surface_dice(cube(), cube(start=(5, 4, 4)), (1.0, 1.0, 1.0), 3.0) == pytest.approx(1.0)


def test_slice_thickness_applies_to_the_first_axis():
    gt, shifted_in_d = cube(), cube(start=(5, 4, 4))
    shifted_in_w = cube(start=(4, 4, 5))
    spacing = (5.0, 1.0, 1.0)  # thick slices along D, as Volume.spacing gives them
    # a one-slice shift is 5 mm, beyond the 3 mm tolerance; a one-column shift is 1 mm
    assert surface_dice(gt, shifted_in_d, spacing, 3.0) < 0.9
    assert surface_dice(gt, shifted_in_w, spacing, 3.0) == pytest.approx(1.0)


def test_matches_a_direct_call_of_deepmind_surface_distance():
    rng = np.random.default_rng(0)
    gt = cube(shape=(10, 16, 16), start=(2, 3, 3), size=7)
    seg = gt ^ (rng.random(gt.shape) < 0.05)
    spacing = (2.5, 0.7, 0.8)
    distances = surface_distance.compute_surface_distances(gt, seg, spacing)
    expected = surface_distance.compute_surface_dice_at_tolerance(distances, LESION_TOLERANCE_MM)
    assert surface_dice(gt, seg, spacing) == expected
    assert dice(gt, seg) == surface_distance.compute_dice_coefficient(gt, seg)


def test_empty_masks_follow_the_benchmark_convention():
    empty, mask = np.zeros((6, 6, 6), bool), cube(shape=(6, 6, 6), start=(1, 1, 1))
    assert math.isnan(dice(empty, empty))
    assert math.isnan(surface_dice(empty, empty, (1, 1, 1)))
    assert dice(mask, empty) == 0.0 and dice(empty, mask) == 0.0
    assert surface_dice(mask, empty, (1, 1, 1)) == 0.0
    assert surface_dice(empty, mask, (1, 1, 1)) == 0.0


def test_label_arrays_are_read_as_binary_masks():
    mask = cube().astype(np.uint8) * 255
    assert dice(mask, cube()) == 1.0


def test_mismatched_shapes_or_spacing_are_refused():
    with pytest.raises(ValueError, match="shape"):
        dice(cube(), cube(shape=(12, 12, 13)))
    with pytest.raises(ValueError, match="spacing"):
        surface_dice(cube(), cube(), (1.0, 1.0))
