import json

import numpy as np
import pytest
from standins import pointwise_probability, sphere_ct, tiny_unet

from tfcovseg.data.intensity import normalise
from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.infer.predictor import (
    EXPORT_FILE,
    EXPORT_KIND,
    check_fits,
    keras_predictor,
    load_predictor,
)
from tfcovseg.metrics import dice
from tfcovseg.models.sliding_window import lesion_mask, mirror_flips
from tfcovseg.rundir import InputSpec, RunFolder, RunInfo
from tfcovseg.settings.data import Intensity
from tfcovseg.settings.inference import Inference

SPEC = InputSpec(mode="resize", size=(8, 16, 16), intensity=Intensity(clip=(-1000.0, 500.0)))
PATCH_SPEC = InputSpec(mode="patch", size=(4, 8, 8), intensity=SPEC.intensity)
SPACING = np.array([5.0, 0.8, 0.7], np.float32)  # D, H, W mm of the sphere CTs


def test_resize_mode_returns_probabilities_on_the_input_grid():
    hu, inside = sphere_ct()
    probabilities = keras_predictor(tiny_unet(pointwise=True), SPEC)(hu, SPACING)
    assert probabilities.shape == hu.shape and probabilities.dtype == np.float32
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    # the pointwise model marks bright voxels; resizing to 8x16x16 and back keeps the sphere
    assert dice(inside, lesion_mask(probabilities)) > 0.9


def test_patch_mode_blends_a_pointwise_model_exactly():
    hu, _ = sphere_ct(shape=(11, 23, 19))
    inference = Inference(overlap=0.5, batch_size=4)
    probabilities = keras_predictor(tiny_unet(pointwise=True), PATCH_SPEC, inference)(hu, SPACING)
    expected = pointwise_probability(normalise(hu, SPEC.intensity).numpy())
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_single_channel_models_get_grey_input():
    hu, inside = sphere_ct()
    probabilities = keras_predictor(tiny_unet(channels=1, pointwise=True), SPEC)(hu, SPACING)
    assert dice(inside, lesion_mask(probabilities)) > 0.9


def test_run_folder_loads_as_a_predictor(make_run):
    hu, _ = sphere_ct()
    predictor = load_predictor(make_run())
    assert predictor.spec.size == (8, 16, 16)
    expected = keras_predictor(tiny_unet(), SPEC)(hu, SPACING)
    np.testing.assert_allclose(predictor(hu, SPACING), expected, atol=1e-6)


def test_folder_that_is_neither_run_nor_export_is_refused(tmp_path):
    with pytest.raises(TfcovsegError, match="not a model tfcovseg can predict with"):
        load_predictor(tmp_path)


def test_an_encoder_alone_is_no_model_to_predict_with(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from tfcovseg.models.convert import convert_weights

    torch.save(torchvision.models.video.r3d_18(weights=None).state_dict(), tmp_path / "r3d.pth")
    convert_weights(torchvision=tmp_path / "r3d.pth", out=tmp_path / "r3d18.h5")
    with pytest.raises(TfcovsegError, match="an R3D-18 encoder, not a segmentation model"):
        load_predictor(tmp_path / "r3d18.h5")


def test_sliding_window_settings_are_checked_before_the_model_loads(tmp_path):
    with pytest.raises(ConfigError, match=r"overlap must be in \[0, 1\)"):
        load_predictor(tmp_path, overlap=1.0)  # not even a run: the settings come first


def _fake_export(folder, mode, overlap, batch_size):
    """An export's info file beside a version folder; the SavedModel is never loaded."""
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "saved_model.pb").write_bytes(b"")
    spec = {"mode": mode, "size": [4, 8, 8]}
    (folder / EXPORT_FILE).write_text(json.dumps({
        "kind": EXPORT_KIND, "input": spec,
        "sliding_window": {"overlap": overlap, "batch_size": batch_size}}))
    return folder


@pytest.mark.parametrize("asked", [
    pytest.param({"overlap": 0.25}, id="other-overlap"),
    pytest.param({"batch_size": 1}, id="other-batch-size"),
])
def test_a_patch_mode_export_refuses_other_sliding_window_settings(tmp_path, asked):
    export = _fake_export(tmp_path, "patch", overlap=0.5, batch_size=3)
    with pytest.raises(ConfigError, match="patch-mode export runs its model with overlap 0.5 and "
                       "batch size 3, fixed when it was exported") as err:
        load_predictor(export, **asked)
    assert err.value.path == str(export / EXPORT_FILE)


def test_patch_mode_resamples_to_the_target_spacing_and_back_onto_the_input_grid():
    hu, inside = sphere_ct(shape=(12, 40, 36))
    spec = InputSpec(mode="patch", size=(4, 8, 8), intensity=SPEC.intensity,
                     spacing=(2.5, 1.6, 1.4))  # 24 x 20 x 18 voxels at the model's spacing
    probabilities = keras_predictor(tiny_unet(pointwise=True), spec)(hu, SPACING)
    assert probabilities.shape == hu.shape
    assert dice(inside, lesion_mask(probabilities)) > 0.9
    native = keras_predictor(tiny_unet(pointwise=True), PATCH_SPEC)(hu, SPACING)
    assert not np.allclose(probabilities, native, atol=1e-3)  # the resampling did happen


def test_a_model_without_a_target_spacing_ignores_the_spacing():
    hu, _ = sphere_ct(shape=(11, 23, 19))
    predictor = keras_predictor(tiny_unet(), PATCH_SPEC)
    np.testing.assert_array_equal(predictor(hu, SPACING), predictor(hu, [1.0, 2.0, 3.0]))


@pytest.mark.parametrize("spec", [
    pytest.param(SPEC, id="resize"),
    pytest.param(PATCH_SPEC, id="patch"),
    pytest.param(InputSpec(mode="patch", size=(4, 8, 8), intensity=SPEC.intensity,
                           spacing=(2.5, 1.6, 1.4)), id="patch-resampled"),
])
def test_mirroring_a_flip_symmetric_model_changes_nothing(spec):
    hu, _ = sphere_ct(shape=(11, 23, 19), centre=(0.4, 0.35, 0.7))  # the input is not symmetric
    model = tiny_unet(pointwise=True)  # voxel by voxel: flipping commutes with the model
    plain = keras_predictor(model, spec)(hu, SPACING)
    mirrored = keras_predictor(model, spec, Inference(tta_axes=(0, 1, 2)))(hu, SPACING)
    np.testing.assert_allclose(mirrored, plain, atol=1e-6)


@pytest.mark.parametrize("axes", [pytest.param((0, 1, 2), id="all-8"),
                                  pytest.param((2,), id="W-only")])
def test_mirroring_averages_the_flipped_predictions_flipped_back(axes):
    hu, _ = sphere_ct(shape=(10, 20, 18), centre=(0.4, 0.35, 0.7))
    model = tiny_unet(seed=3)  # a 3x3x3 convolution: not flip-symmetric
    plain = keras_predictor(model, SPEC)
    flipped_back = []
    for flip in mirror_flips(axes):
        dims = [axis for axis in range(3) if flip[axis]]
        flipped_back.append(np.flip(plain(np.flip(hu, dims).copy(), SPACING), dims))
    assert len(flipped_back) == 2 ** len(axes)
    mirrored = keras_predictor(model, SPEC, Inference(tta_axes=axes))(hu, SPACING)
    np.testing.assert_allclose(mirrored, np.mean(flipped_back, axis=0), atol=1e-5)
    assert not np.allclose(mirrored, plain(hu, SPACING), atol=1e-4)


def test_mirror_flips_are_every_combination_of_the_axes():
    assert mirror_flips((0, 1, 2)).shape == (8, 3)
    assert {tuple(row) for row in mirror_flips((0, 1, 2))} == {
        (d, h, w) for d in (False, True) for h in (False, True) for w in (False, True)}
    assert mirror_flips((1,)).tolist() == [[False, False, False], [False, True, False]]


@pytest.mark.parametrize("spacing", [
    pytest.param([0.0, 0.8, 0.7], id="zero"),
    pytest.param([5.0, -0.8, 0.7], id="negative"),
    pytest.param([5.0, 0.8], id="two-values"),
])
def test_a_spacing_that_is_not_three_positive_sizes_is_refused(spacing):
    hu, _ = sphere_ct()
    with pytest.raises(DataError, match=r"voxel spacing .* mm: expected 3 positive sizes"):
        keras_predictor(tiny_unet(), SPEC)(hu, spacing)


def test_a_volume_thinner_than_half_a_target_voxel_is_refused(tmp_path):
    spec = InputSpec(mode="patch", size=(4, 8, 8), spacing=(5.0, 1.0, 1.0))
    with pytest.raises(DataError, match=r"thinner than half a voxel of the model's target "
                       r"spacing \[5.0, 1.0, 1.0\] mm .*resampled size \[0, 20, 20\]") as err:
        check_fits(spec, (1, 20, 20), (1.0, 1.0, 1.0), tmp_path / "slice.nii.gz")
    assert err.value.path == str(tmp_path / "slice.nii.gz")
    check_fits(spec, (3, 20, 20), (1.0, 1.0, 1.0))  # 0.6 slices round up to one


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param({"mode": "resize", "size": [4, 8, 8], "spacing": [1.0, 1.0, 1.0]},
                 "a target spacing is for patch mode", id="spacing-in-resize-mode"),
    pytest.param({"mode": "patch", "size": [4, 8, 8], "spacing": [0.0, 1.0, 1.0]},
                 r"input.spacing is \[0.0, 1.0, 1.0\]; allowed: > 0", id="zero-spacing"),
])
def test_a_run_whose_input_spec_is_wrong_is_refused_naming_run_json(tmp_path, spec, message):
    run = RunFolder(tmp_path)
    run.write_info(RunInfo(model={}, input=InputSpec()))
    data = json.loads(run.info_file.read_text())
    data["input"] = spec
    run.info_file.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as err:
        load_predictor(tmp_path)
    assert err.value.path == str(run.info_file)


@pytest.mark.parametrize("axes", [pytest.param((), id="empty"), pytest.param((0, 0), id="twice"),
                                  pytest.param((3,), id="no-such-axis")])
def test_mirroring_axes_are_checked_before_the_model_loads(tmp_path, axes):
    with pytest.raises(ConfigError, match="test-time mirroring: axes must be distinct values "
                       "among 0, 1, 2"):
        load_predictor(tmp_path, tta_axes=axes)


def test_an_export_refuses_other_mirroring_than_it_was_exported_with(tmp_path):
    export = _fake_export(tmp_path, "resize", overlap=0.5, batch_size=1)
    with pytest.raises(ConfigError, match="this export does not mirror at test time, "
                       "fixed when it was exported") as err:
        load_predictor(export, tta_axes=(0, 1, 2))
    assert err.value.path == str(export / EXPORT_FILE)
