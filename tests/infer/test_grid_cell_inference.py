"""A 2D grid cell as a whole-CT tool: predict, evaluate and export run it slice by slice with the
bench's preprocessing and write its mask on the CT's own grid; a lungs cell gives the report's
lungs (--lung-model) and a lesions_in_lungs cell's input mask."""

import json

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from standins import SHARPNESS, serve_in_plain_tensorflow, sphere_ct

import tensorflow as tf  # isort: skip

from tfcovseg.cli import main
from tfcovseg.errors import ConfigError, DataError, TfcovsegError
from tfcovseg.infer.export import export_savedmodel
from tfcovseg.infer.predict import predict_ct
from tfcovseg.infer.predictor import load_lung_predictor, load_predictor
from tfcovseg.infer.slices import slice_probabilities
from tfcovseg.io.nifti import read_volume, write_volume
from tfcovseg.metrics import dice
from tfcovseg.rundir import SliceSpec
from tfcovseg.settings.data import Intensity

BENCH_INTENSITY = Intensity(scaling="fixed", mean=-500.0, std=500.0)
# The stand-in cells' rules in normalised units ((HU + 500) / 500): lesion above -250 HU,
# lung below -750 HU.
LESION_ABOVE, LUNG_BELOW = 0.5, -0.5
CT_SPACING = (5.0, 0.8, 0.7)  # D, H, W mm of the ct_file fixture


def pointwise_cell(size, threshold, above=True):
    """A 2D "network" that is a sigmoid of each normalised pixel: SHARPNESS * (x - threshold),
    or of (threshold - x) when not ``above``."""
    sign = 1.0 if above else -1.0
    grey = tf.keras.Input((size, size, 1), name="ct")
    conv = tf.keras.layers.Conv2D(1, 1, activation="sigmoid", name="pixel")
    model = tf.keras.Model(grey, conv(grey))
    conv.set_weights([np.full((1, 1, 1, 1), sign * SHARPNESS, np.float32),
                      np.array([-sign * SHARPNESS * threshold], np.float32)])
    return model


@pytest.fixture
def make_cell(tmp_path, monkeypatch):
    """Write a finished grid cell whose network is a pointwise stand-in (lesions: bright pixels;
    lungs: dark ones); ``load_cell_model`` rebuilds it through ``build_cell_model``."""
    import tfcovseg.bench.models2d
    from tfcovseg.bench import store
    from tfcovseg.bench.cell import save_layer_weights
    from tfcovseg.bench.grid import Cell
    from tfcovseg.config import to_dict
    from tfcovseg.settings.bench import BenchConfig

    def stand_in(cell, settings, size):
        if cell.experiment == "lungs":
            return pointwise_cell(size, LUNG_BELOW, above=False)
        return pointwise_cell(size, LESION_ABOVE)

    monkeypatch.setattr(tfcovseg.bench.models2d, "build_cell_model", stand_in)
    bench = tmp_path / "bench"

    def make(experiment="lesions", size=32):
        cell = Cell(experiment, "unet", "resnet18", "random")
        save_layer_weights(stand_in(cell, None, size), store.weights_path(bench, cell.id))
        store.write_result(bench, {"id": cell.id, "cell": vars(cell), "status": store.DONE,
                                   "image_size": size, "config": to_dict(BenchConfig())})
        return store.result_path(bench, cell.id)

    return make


def bright(hu):
    return (hu + 500.0) / 500.0 > LESION_ABOVE


def test_a_lesion_cell_predicts_a_ct_on_its_own_grid(make_cell, ct_file, tmp_path):
    path, inside = ct_file
    out = tmp_path / "out" / "mask.nii.gz"
    result = CliRunner().invoke(main, ["predict", "--model", str(make_cell(size=32)), str(path),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    mask, ct = nib.load(str(out)), nib.load(str(path))
    assert mask.shape == ct.shape
    np.testing.assert_allclose(mask.affine, ct.affine)
    # 40x36 slices resized to the cell's 32x32 and back: the sphere is found, not copied
    assert dice(read_volume(out).array > 0, inside) > 0.9


def test_slices_go_through_the_network_in_batches_in_order(make_cell):
    """At the cell's own size nothing is resized: each slice's output is the network's output
    on that normalised slice, whatever the number of slices per call."""
    hu = np.random.default_rng(0).uniform(-1000, 200, (1, 7, 16, 16)).astype(np.float32)
    model = load_predictor(make_cell(size=16))
    spec = SliceSpec(size=(16, 16), intensity=BENCH_INTENSITY)
    expected = model_on_slices(hu[0], spec)
    for batch_size in (1, 3, 8):
        got = slice_probabilities(pointwise_cell(16, LESION_ABOVE), hu, spec,
                                  batch_size=batch_size)
        np.testing.assert_allclose(got.numpy()[0], expected, atol=1e-6)
    np.testing.assert_allclose(model(hu[0], CT_SPACING), expected, atol=2e-5)  # in a graph


def model_on_slices(hu, spec):
    scaled = (hu - spec.intensity.mean) / spec.intensity.std
    return 1 / (1 + np.exp(-SHARPNESS * (scaled - LESION_ABOVE)))


def test_mirroring_a_cell_flips_slices_in_plane_only(make_cell, ct_file):
    path, _ = ct_file
    hu = read_volume(path).array
    plain = load_predictor(make_cell())
    mirrored = load_predictor(make_cell(), tta_axes=(0, 1, 2))
    assert (plain.tta_axes, mirrored.tta_axes) == (None, (1, 2))  # D only reorders slices
    only_depth = load_predictor(make_cell(), tta_axes=(0,))
    assert only_depth.tta_axes is None
    # a pointwise network is symmetric: mirroring changes nothing
    np.testing.assert_allclose(mirrored(hu, CT_SPACING), plain(hu, CT_SPACING), atol=1e-5)


def test_a_lesions_in_lungs_cell_sees_only_the_lungs(make_cell, ct_file):
    path, inside = ct_file
    hu = read_volume(path).array
    predictor = load_predictor(make_cell("lesions_in_lungs"))
    assert predictor.takes_lungs
    with pytest.raises(DataError, match="needs the lung mask"):
        predictor(hu, CT_SPACING)
    # outside the lungs the input is 0 (-500 HU): the sphere is hidden when the lungs exclude it
    without_sphere = predictor(hu, CT_SPACING, lungs=~inside)
    with_sphere = predictor(hu, CT_SPACING, lungs=np.ones_like(inside))
    assert (without_sphere > 0.5).sum() == 0
    assert dice(with_sphere > 0.5, inside) > 0.9


def test_predict_takes_the_report_lungs_from_a_lungs_cell(make_cell, ct_file, tmp_path):
    path, inside = ct_file
    lung_cell = make_cell("lungs")
    report = predict_ct(make_cell(), path, out=tmp_path / "o" / "m.nii.gz", lung_model=lung_cell)
    assert report["lung_source"] == f"model: {lung_cell}"
    lungs = load_lung_predictor(lung_cell)(read_volume(path).array, CT_SPACING) > 0.5
    assert dice(lungs, ~inside) > 0.9
    voxel_ml = np.prod(CT_SPACING) / 1000
    assert report["lung_ml"]["total"] == pytest.approx(lungs.sum() * voxel_ml, rel=1e-3)


def test_a_lesions_in_lungs_cell_takes_the_lungs_of_the_lung_cell(make_cell, ct_file, tmp_path):
    path, inside = ct_file
    out = tmp_path / "o" / "m.nii.gz"
    with pytest.raises(ConfigError, match="give the lungs with --lung-mask or --lung-model"):
        predict_ct(make_cell("lesions_in_lungs"), path, out=out)
    assert not out.parent.exists()
    predict_ct(make_cell("lesions_in_lungs"), path, out=out, lung_model=make_cell("lungs"))
    # the lung cell finds everything dark, so the sphere lies outside its lungs: no lesion
    assert not read_volume(out).array.any()


@pytest.mark.parametrize("model, lung_model, message", [
    pytest.param("lungs", None, "segments lungs, not lesions: give it as --lung-model",
                 id="lungs-cell-as-model"),
    pytest.param("lesions", "lesions", "--lung-model must be a grid cell of the lungs experiment",
                 id="lesion-cell-as-lung-model"),
])
def test_cells_in_the_wrong_role_are_refused(make_cell, ct_file, tmp_path, model, lung_model,
                                             message):
    path, _ = ct_file
    out = tmp_path / "o" / "m.nii.gz"
    with pytest.raises(TfcovsegError, match=message):
        predict_ct(make_cell(model), path, out=out,
                   lung_model=None if lung_model is None else make_cell(lung_model))
    assert not out.parent.exists()


def test_a_cell_has_no_sliding_window_overlap(make_cell):
    with pytest.raises(ConfigError, match="a grid cell runs on whole slices"):
        load_predictor(make_cell(), overlap=0.25)


def test_an_exported_cell_serves_what_the_cell_predicts(make_cell, ct_file, tmp_path):
    path, _ = ct_file
    hu = read_volume(path).array
    version = export_savedmodel(make_cell(), tmp_path / "export")
    info = json.loads((tmp_path / "export" / "tfcovseg_export.json").read_text())
    assert (info["input"]["mode"], info["sliding_window"]["overlap"]) == ("slices", None)
    served = serve_in_plain_tensorflow(version, hu[None], CT_SPACING, tmp_path)[0]
    np.testing.assert_allclose(served, load_predictor(make_cell())(hu, CT_SPACING), atol=1e-5)
    with pytest.raises(ConfigError, match="slices-mode export runs its model"):
        load_predictor(tmp_path / "export", batch_size=2)
    # --tta means the in-plane flips for a cell: an export made with it takes it back
    export_savedmodel(make_cell(), tmp_path / "mirrored", tta_axes=(0, 1, 2))
    assert load_predictor(tmp_path / "mirrored", tta_axes=(0, 1, 2)).tta_axes == (1, 2)
    with pytest.raises(ConfigError, match=r"mirrors along axes \[1, 2\]"):
        load_predictor(tmp_path / "mirrored", tta_axes=(2,))


def test_a_lesions_in_lungs_cell_exports_with_its_lung_cell(make_cell, ct_file, tmp_path):
    path, inside = ct_file
    hu = read_volume(path).array
    cell, lung_cell = make_cell("lesions_in_lungs"), make_cell("lungs")
    with pytest.raises(ConfigError, match="export it with --lung-model"):
        export_savedmodel(cell, tmp_path / "export")
    with pytest.raises(ConfigError, match="--lung-model is the input mask"):
        export_savedmodel(make_cell(), tmp_path / "export", lung_model=lung_cell)
    assert not (tmp_path / "export").exists()
    export_savedmodel(cell, tmp_path / "export", lung_model=lung_cell)
    exported = load_predictor(tmp_path / "export")
    assert not exported.takes_lungs
    lungs = load_lung_predictor(lung_cell)(hu, CT_SPACING) > 0.5
    np.testing.assert_allclose(exported(hu, CT_SPACING),
                               load_predictor(cell)(hu, CT_SPACING, lungs=lungs), atol=1e-5)


@pytest.fixture
def sphere_dataset(tmp_path):
    """A prepared dataset of two sphere CTs with lesion labels and lung masks (the spheres'
    complement); ``lungs=False`` leaves the lung masks out."""
    from tfcovseg.io.manifest import Case, Dataset, case_files, write_dataset

    def make(lungs=True):
        root = tmp_path / f"spheres-{int(lungs)}"
        cases = []
        for i, centre in enumerate([(0.5, 0.5, 0.5), (0.5, 0.4, 0.6)]):
            hu, inside = sphere_ct(centre=centre)
            affine = np.diag([0.7, 0.8, 5.0, 1.0])
            files = case_files(f"s{i}")
            write_volume(root / files["image"], hu.astype(np.int16), affine)
            write_volume(root / files["label"], inside.astype(np.uint8), affine)
            if lungs:
                write_volume(root / files["lung"], (~inside).astype(np.uint8), affine)
            else:
                del files["lung"]
            cases.append(Case(id=f"s{i}", **files))
        write_dataset(Dataset(root=root, name="spheres", cases=cases))
        return root

    return make


def test_evaluate_gives_a_lesions_in_lungs_cell_the_cases_lung_masks(make_cell, sphere_dataset,
                                                                     tmp_path):
    from tfcovseg.infer.evaluate import evaluate

    cell = make_cell("lesions_in_lungs")
    with pytest.raises(DataError, match="case 's0' has no lung mask"):
        evaluate(model_dir=cell, data=sphere_dataset(lungs=False), out=tmp_path / "none")
    assert not (tmp_path / "none").exists()
    evaluate(model_dir=cell, data=sphere_dataset(), out=tmp_path / "masked")
    # the lung masks exclude the spheres, so the cell finds nothing: Dice 0 on every case
    rows = (tmp_path / "masked" / "cases.csv").read_text().splitlines()[1:]
    assert [float(row.split(",")[2]) for row in rows] == [0.0, 0.0]
    cell = make_cell()
    summary = evaluate(model_dir=cell, data=sphere_dataset())
    assert summary[0]["mean"] > 0.9
    # results beside the cell's file, not inside it
    assert (cell.parent / f"{cell.stem}_evaluation" / "spheres" / "summary.md").is_file()


def test_a_real_grid_network_runs_on_every_slice_and_serves(tmp_path):
    """The paper's Unet-resnet18 (random weights) as a cell: the predictor's output on a volume
    at the cell's size is the network's sigmoid output on each normalised slice, and its export
    serves the same in a process without tfcovseg."""
    from tfcovseg.bench import store
    from tfcovseg.bench.cell import save_layer_weights
    from tfcovseg.bench.grid import Cell
    from tfcovseg.bench.models2d import build_cell_model
    from tfcovseg.config import to_dict
    from tfcovseg.settings.bench import Architectures, BenchConfig

    tf.keras.utils.set_random_seed(0)
    cell = Cell("lesions", "unet", "resnet18", "random")
    network = build_cell_model(cell, Architectures(), 32)
    save_layer_weights(network, store.weights_path(tmp_path, cell.id))
    store.write_result(tmp_path, {"id": cell.id, "cell": vars(cell), "status": store.DONE,
                                  "image_size": 32, "config": to_dict(BenchConfig())})
    hu = np.random.default_rng(1).uniform(-1000, 200, (5, 32, 32)).astype(np.float32)
    expected = network(((hu + 500.0) / 500.0)[..., None], training=False).numpy()[..., 0]
    got = load_predictor(store.result_path(tmp_path, cell.id), batch_size=2)(hu, CT_SPACING)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    version = export_savedmodel(store.result_path(tmp_path, cell.id), tmp_path / "export")
    served = serve_in_plain_tensorflow(version, hu[None], CT_SPACING, tmp_path)[0]
    np.testing.assert_allclose(served, expected, atol=1e-5)
