"""README's "Fine-tuning" Keras loop runs as printed: the code between its markers is executed
as it stands, in a folder with the run and the dataset it names, so the README cannot drift."""

import re
from pathlib import Path

import pytest

import tfcovseg  # noqa: F401  (first: selects Keras 2 before TensorFlow loads)

README = Path(__file__).resolve().parents[2] / "README.md"
MARKERS = re.compile(r"<!-- finetune-snippet -->\s*```python\n(.*?)```\s*<!-- /finetune-snippet -->",
                     re.DOTALL)


def snippet() -> str:
    found = MARKERS.findall(README.read_text())
    if len(found) != 1:
        pytest.fail(f"{README}: expected one fine-tuning snippet between its markers, found {len(found)}")
    return found[0]


def save_demo_like_run(folder: Path):
    """A run folder holding a random quarter-width U-Net, as README's ``runs/demo``."""
    import tensorflow as tf

    from tfcovseg.files import save_weights
    from tfcovseg.models import unet3d
    from tfcovseg.rundir import InputSpec, RunFolder, RunInfo

    tf.keras.utils.set_random_seed(0)
    arguments = {"width": 0.25, "lesion_prior": 0.01}
    run = RunFolder(folder)
    run.checkpoints.mkdir(parents=True)
    save_weights(unet3d(**arguments), run.root / run.best_weights("s1"))
    run.write_info(RunInfo(model=arguments, input=InputSpec(size=(16, 32, 32)),
                           weights=run.best_weights("s1")))


def test_readme_finetuning_loop_runs_as_printed(phantom_dataset, tmp_path, monkeypatch):
    code = snippet()
    assert 'tfcovseg.load_model("runs/demo")' in code and 'load_dataset("data/mine")' in code
    save_demo_like_run(tmp_path / "runs" / "demo")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine").symlink_to(phantom_dataset.root, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, f"{README}:finetune-snippet", "exec"), namespace)
    assert namespace["loaded"].kind == "run"
    assert (tmp_path / "finetuned.h5").is_file()  # written by BestDiceCheckpoint
