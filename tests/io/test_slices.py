"""2D image/mask folders -> prepared cases: HU restored from the window, the view kept."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.io.converters import prepare
from tfcovseg.io.manifest import load_dataset
from tfcovseg.io.nifti import radiological, read_volume

WINDOW = (-1250.0, 250.0)  # Ma et al.'s radiopaedia window
SEMISEG = Path(__file__).resolve().parents[3] / "shared" / "data" / "covid-semiseg-train"


def write_slice(src, case_id, pixels, mask, suffix=".png"):
    (src / "images").mkdir(parents=True, exist_ok=True)
    (src / "lesions").mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(src / "images" / f"{case_id}{suffix}")
    if mask is not None:
        Image.fromarray(mask).save(src / "lesions" / f"{case_id}.png")


def test_slices_become_cases_in_hu_on_the_ras_grid_as_viewed(tmp_path):
    pixels = np.zeros((6, 8), np.uint8)
    pixels[0, 0] = 255  # top left as displayed: anterior, the patient's right
    mask = np.zeros((6, 8), np.uint8)
    mask[0, 0] = 255
    write_slice(tmp_path / "src", "a", pixels, mask)
    dataset = prepare("slices", tmp_path / "src", tmp_path / "out", window=WINDOW)
    [case] = dataset.cases
    image = read_volume(dataset.path(case.image))
    label = read_volume(dataset.path(case.label)).array
    assert image.array.shape == (1, 6, 8) and image.orientation == "RAS"
    np.testing.assert_array_equal(radiological(image.array[0]),
                                  np.where(pixels == 255, WINDOW[1], WINDOW[0]))
    assert radiological(label[0])[0, 0] == 1 and label.sum() == 1
    assert case.flags == ["windowed_restored", "no_spacing"]
    assert load_dataset(tmp_path / "out").extra["window_hu"] == list(WINDOW)


def test_slices_need_the_window_they_were_cut_from(tmp_path):
    write_slice(tmp_path / "src", "a", np.zeros((4, 4), np.uint8), None)
    with pytest.raises(DataError, match="--window LOW HIGH"):
        prepare("slices", tmp_path / "src", tmp_path / "out")
    with pytest.raises(ConfigError, match="LOW < HIGH"):
        prepare("slices", tmp_path / "src", tmp_path / "out", window=(250, -1250))
    with pytest.raises(TfcovsegError, match=r"--window \(slices\): not an option of mosmed"):
        prepare("mosmed", tmp_path / "src", tmp_path / "out", window=WINDOW)
    assert not (tmp_path / "out").exists()


def test_a_mask_of_another_size_skips_that_case_with_the_reason(tmp_path):
    write_slice(tmp_path / "src", "good", np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    write_slice(tmp_path / "src", "bad", np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8))
    dataset = prepare("slices", tmp_path / "src", tmp_path / "out", window=WINDOW)
    assert [c.id for c in dataset.cases] == ["good"]
    [skipped] = dataset.extra["skipped"]
    assert skipped["id"] == "bad" and "4x5 pixels, its image 4x4" in skipped["reason"]


@pytest.mark.skipif(not SEMISEG.is_dir(), reason="../shared/data/covid-semiseg-train is absent")
def test_the_real_covid_semiseg_slices_convert(tmp_path):
    dataset = prepare("slices", SEMISEG, tmp_path / "semiseg", window=WINDOW)
    assert len(dataset.cases) == 50 and not dataset.extra["skipped"]
    lesion_share = [read_volume(dataset.path(c.label)).array.mean() for c in dataset.cases]
    assert all(share > 0 for share in lesion_share)  # every slice of the set shows infection
