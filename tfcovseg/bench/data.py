"""Which slices a grid cell trains, validates and is tested on.

Paper setting: the prepared MedSeg dataset (one case per slice, ``medseg_000..099``) trains
on its first 80 cases and validates on the last 20 (``data.validation_cases``; sorted ids, as
the authors' index ranges 0-79 / 80-99); every slice of the prepared Radiopaedia volumes is a
test image. Without a test dataset (``data.test: null``, the smoke config on phantoms), the
last ``data.test_cases`` cases of the training dataset are held out for testing instead.
Slices and batches come from ``tfcovseg.data.pipeline2d.slice_dataset``.
"""

import dataclasses
from pathlib import Path

from tfcovseg.errors import TfcovsegError
from tfcovseg.io.manifest import MANIFEST, Dataset, load_dataset
from tfcovseg.settings.bench import BenchData
from tfcovseg.settings.data import EXPERIMENTS

LUNG_EXPERIMENTS = ("lungs", "lesions_in_lungs")  # the lung mask is the target, or masks the input


@dataclasses.dataclass
class Splits:
    train: Dataset
    train_cases: list
    validation_cases: list
    test: Dataset
    test_cases: list

    def summary(self) -> str:
        return (f"{len(self.train_cases)} training / {len(self.validation_cases)} validation cases "
                f"of {self.train.root}, {len(self.test_cases)} test cases of {self.test.root}")


def load_splits(data: BenchData, experiments=EXPERIMENTS) -> Splits:
    """Load (synthesising phantoms first when configured) and split the bench datasets.

    A case takes part when it has the masks the grid's ``experiments`` need: a lesion label
    always, a lung mask only for ``lungs`` and ``lesions_in_lungs``.
    """
    train_root = Path(data.train)
    if data.phantoms is not None and not (train_root / MANIFEST).is_file():
        from tfcovseg.io.phantoms import synthesize_dataset

        synthesize_dataset(train_root, data.phantoms)
    train = load_dataset(train_root)
    cases = sorted(_labelled(train, experiments), key=lambda c: c.id)
    if data.test is None:
        test, held_out = train, data.test_cases
    else:
        test, held_out = load_dataset(data.test), 0
    n_fit = len(cases) - held_out - data.validation_cases
    if held_out < 0 or data.validation_cases < 1 or n_fit < 1:
        raise TfcovsegError(
            f"{len(cases)} labelled cases cannot give {data.validation_cases} validation and "
            f"{held_out} test cases and leave some for training", train_root / MANIFEST)
    test_cases = cases[n_fit + data.validation_cases:] if held_out else sorted(
        _labelled(test, experiments), key=lambda c: c.id)
    if not test_cases:
        raise TfcovsegError("no labelled test cases", test.root / MANIFEST)
    return Splits(train=train, train_cases=cases[:n_fit],
                  validation_cases=cases[n_fit:n_fit + data.validation_cases],
                  test=test, test_cases=test_cases)


def _labelled(dataset: Dataset, experiments) -> list:
    with_lungs = [e for e in experiments if e in LUNG_EXPERIMENTS]
    cases = [c for c in dataset.cases if c.label and (c.lung or not with_lungs)]
    if not cases:
        need = (f"both a lesion label and a lung mask (experiments {', '.join(with_lungs)} need "
                "lung masks; run only experiment=lesions without them)" if with_lungs
                else "a lesion label")
        raise TfcovsegError(f"no case has {need}", dataset.root / MANIFEST)
    return cases


def slice_count(dataset: Dataset, cases) -> int:
    """Slices per pass over ``cases`` (from the NIfTI headers)."""
    from tfcovseg.data.pipeline2d import count_slices

    return count_slices(dataset, cases)


def batches(dataset: Dataset, cases, pipeline, experiment: str, batch_size: int, training: bool,
            seed: int):
    """``(image [B, H, W, 1], mask [B, H, W, 1])`` float32 batches of the cases' slices."""
    from tfcovseg.data.pipeline2d import slice_dataset

    return slice_dataset(dataset, cases, pipeline, experiment=experiment, batch_size=batch_size,
                         training=training, seed=seed)
