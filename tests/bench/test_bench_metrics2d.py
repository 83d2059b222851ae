import numpy as np
import pytest

from tfcovseg.bench.metrics2d import confusion, image_scores, mean_scores, soft_dice_loss

EPS = 1e-5


def masks():
    """A 4x4 case with TP 2, FP 1, FN 3, TN 10."""
    mask = np.zeros((4, 4), bool)
    mask[0, :] = True
    mask[1, 0] = True
    prediction = np.zeros((4, 4), bool)
    prediction[0, :2] = True
    prediction[3, 3] = True
    return prediction, mask


def test_confusion_counts():
    assert confusion(*masks()) == (2, 1, 3, 10)


def test_paper_scores_with_eps():
    prediction, mask = masks()
    scores = image_scores(prediction.astype(float) * 0.9, mask)
    assert scores["sensitivity"] == pytest.approx(2 / (2 + 3 + EPS))
    assert scores["specificity"] == pytest.approx(10 / (10 + 1 + EPS))
    assert scores["dice"] == pytest.approx(4 / (4 + 1 + 3 + EPS))


def test_threshold_is_strictly_greater_than_half():
    mask = np.ones((2, 2))
    assert image_scores(np.full((2, 2), 0.5), mask)["dice"] == 1.0  # nothing predicted: rule
    assert image_scores(np.full((2, 2), 0.51), mask)["dice"] == pytest.approx(8 / (8 + EPS))


def test_paper_rule_nothing_predicted_scores_one_even_with_lesions():
    mask = np.zeros((8, 8))
    mask[2:4, 2:4] = 1
    assert image_scores(np.zeros((8, 8)), mask) == {"sensitivity": 1.0, "specificity": 1.0,
                                                    "dice": 1.0}


def test_authors_code_rule_fires_on_empty_true_mask():
    prediction = np.zeros((8, 8))
    prediction[0, 0] = 1
    empty = np.zeros((8, 8))
    assert image_scores(prediction, empty, convention="authors_code")["dice"] == 1.0
    assert image_scores(prediction, empty)["dice"] == pytest.approx(0.0)


def test_authors_code_swaps_false_positives_and_negatives():
    prediction, mask = masks()
    scores = image_scores(prediction, mask, convention="authors_code")
    assert scores["sensitivity"] == pytest.approx(2 / (2 + 1 + EPS))  # TP / (TP + FP)
    assert scores["specificity"] == pytest.approx(10 / (10 + 3 + EPS))  # TN / (TN + FN)
    assert scores["dice"] == pytest.approx(image_scores(prediction, mask)["dice"])


def test_mean_scores_average_images():
    means = mean_scores([{"sensitivity": 1, "specificity": 0.5, "dice": 0.2},
                         {"sensitivity": 0, "specificity": 0.5, "dice": 0.6}])
    assert means == pytest.approx({"sensitivity": 0.5, "specificity": 0.5, "dice": 0.4})
    assert np.isnan(mean_scores([])["dice"])


def test_soft_dice_loss_paper_formula_over_the_batch():
    rng = np.random.default_rng(0)
    y = (rng.random((2, 8, 8, 1)) > 0.5).astype(np.float32)
    p = rng.random((2, 8, 8, 1)).astype(np.float32)
    expected = 1 - 2 * (y * p).sum() / ((y**2).sum() + (p**2).sum() + 1e-5)
    assert float(soft_dice_loss(y, p)) == pytest.approx(expected, rel=1e-5)


def test_soft_dice_loss_later_code_form_is_smps_dice_loss():
    rng = np.random.default_rng(1)
    y = (rng.random((2, 8, 8, 1)) > 0.5).astype(np.float32)
    p = rng.random((2, 8, 8, 1)).astype(np.float32)
    expected = 1 - (2 * (y * p).sum() + 1) / (y.sum() + p.sum() + 1)
    assert float(soft_dice_loss(y, p, form="later_code")) == pytest.approx(expected, rel=1e-5)


def test_soft_dice_loss_paper_era_code_is_per_image_and_ignores_empty_masks():
    rng = np.random.default_rng(2)
    y = (rng.random((3, 8, 8, 1)) > 0.5).astype(np.float32)
    y[1] = 0  # a lesion-free image: no loss, no gradient
    p = rng.random((3, 8, 8, 1)).astype(np.float32)
    per_image = [1 - 2 * (y[i] * p[i]).sum() / (y[i].sum() + p[i].sum() + 1e-6) for i in range(3)]
    expected = (per_image[0] + per_image[2]) / 3
    assert float(soft_dice_loss(y, p, form="paper_era_code")) == pytest.approx(expected, rel=1e-5)


def test_soft_dice_loss_is_zero_for_a_perfect_prediction():
    y = np.zeros((1, 4, 4, 1), np.float32)
    y[0, 1:3, 1:3] = 1
    assert float(soft_dice_loss(y, y)) == pytest.approx(0.0, abs=1e-5)
