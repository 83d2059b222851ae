import pytest

from tfcovseg.bench.data import load_splits, slice_count
from tfcovseg.errors import TfcovsegError
from tfcovseg.settings.bench import BenchData
from tfcovseg.settings.phantoms import Phantoms


def ids(cases):
    return [c.id for c in cases]


def test_held_out_split_takes_validation_then_test_from_the_end(phantom_dataset):
    splits = load_splits(BenchData(train=str(phantom_dataset.root), test=None,
                                      validation_cases=1, test_cases=1))
    assert ids(splits.train_cases) == ["phantoms_000", "phantoms_001"]
    assert ids(splits.validation_cases) == ["phantoms_002"]
    assert ids(splits.test_cases) == ["phantoms_003"]
    assert slice_count(splits.train, splits.train_cases) == 2 * 24


def test_separate_test_dataset_is_tested_whole(phantom_dataset):
    root = str(phantom_dataset.root)
    splits = load_splits(BenchData(train=root, test=root, validation_cases=2))
    assert ids(splits.train_cases) == ["phantoms_000", "phantoms_001"]
    assert len(splits.test_cases) == 4


def test_too_few_cases_is_a_clear_error(phantom_dataset):
    with pytest.raises(TfcovsegError, match="4 labelled cases cannot give 3 validation and 1 test"):
        load_splits(BenchData(train=str(phantom_dataset.root), test=None,
                                 validation_cases=3, test_cases=1))


def test_phantoms_are_synthesised_on_first_use(tmp_path):
    data = BenchData(train=str(tmp_path / "ph"), test=None, validation_cases=1, test_cases=1,
                     phantoms=Phantoms(cases=3, shape=(4, 16, 16)))
    splits = load_splits(data)
    assert (tmp_path / "ph" / "dataset.json").is_file()
    assert len(splits.train_cases) == 1


def test_lesion_only_data_serves_the_lesions_experiment_but_not_the_lung_ones(phantom_dataset,
                                                                                tmp_path):
    import dataclasses

    from tfcovseg.io.manifest import Dataset, write_dataset

    root = tmp_path / "lesions-only"
    cases = [dataclasses.replace(c, image=str(phantom_dataset.root / c.image),
                                 label=str(phantom_dataset.root / c.label), lung=None)
             for c in phantom_dataset.cases]
    write_dataset(Dataset(root=root, name="lesions-only", cases=cases))
    data = BenchData(train=str(root), test=None, validation_cases=1, test_cases=1)
    assert len(load_splits(data, experiments=("lesions",)).train_cases) == 2
    with pytest.raises(TfcovsegError, match="experiments lungs need lung masks; run only "
                                            "experiment=lesions without them"):
        load_splits(data, experiments=("lungs", "lesions"))
