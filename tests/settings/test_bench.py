import pytest

from tfcovseg.bench.grid import grid_cells
from tfcovseg.bench.run import load_bench_config
from tfcovseg.errors import TfcovsegError
from tfcovseg.settings.bench import PAPER_ENCODERS, BenchConfig

# PAPERS.md section 2 / the authors' encoder list, in their (PyTorch) names
AUTHORS_ENCODERS = [
    "vgg11", "vgg13", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "densenet121", "densenet161", "densenet169", "densenet201", "resnext50_32x4d", "dpn68",
    "dpn98", "mobilenet_v2", "xception", "inceptionv4", "efficientnet-b0", "efficientnet-b1",
    "efficientnet-b2", "efficientnet-b3", "efficientnet-b4", "efficientnet-b5", "efficientnet-b6",
]  # fmt: skip
SM_NAMES = {"resnext50_32x4d": "resnext50", "mobilenet_v2": "mobilenetv2"}


def sm_name(name: str) -> str:
    return SM_NAMES.get(name, name.replace("efficientnet-", "efficientnet"))


def test_paper_config_is_the_full_600_cell_grid_with_the_papers_25_encoders():
    config = load_bench_config("bench_paper")
    assert list(config.grid.encoders) == [sm_name(e) for e in AUTHORS_ENCODERS]
    assert config.grid.encoders == PAPER_ENCODERS == BenchConfig().grid.encoders
    g = config.grid
    assert len(grid_cells(g.archs, g.encoders, g.inits, g.experiments)) == 600


def test_paper_config_matches_the_paper_defaults():
    paper = load_bench_config("bench_paper")
    defaults = BenchConfig()
    assert paper.architectures == defaults.architectures
    assert paper.training == defaults.training
    assert paper.evaluation == defaults.evaluation
    assert (paper.training.epochs, paper.training.batch_size) == (200, 2)
    assert paper.data.validation_cases == 20


def test_smoke_config_is_two_archs_two_encoders_one_experiment_one_epoch():
    smoke = load_bench_config("bench_smoke")
    g = smoke.grid
    assert (len(g.archs), len(g.encoders), len(g.inits), len(g.experiments)) == (2, 2, 1, 1)
    assert smoke.training.epochs == 1
    assert smoke.data.phantoms is not None and smoke.data.test is None


def test_unknown_keys_name_the_allowed_ones(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("grid:\n  encoder: [resnet18]\n")
    with pytest.raises(TfcovsegError, match="unknown key.*encoder.*allowed keys: archs, encoders"):
        load_bench_config(str(path))


def test_bad_architecture_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("grid:\n  archs: [unet, segformer]\n")
    with pytest.raises(TfcovsegError, match="segformer"):
        load_bench_config(str(path))


def test_slices_config_runs_the_lesions_experiment_on_real_slices():
    config = load_bench_config("bench_slices")
    assert config.grid.experiments == ("lesions",) and config.architectures.networks == "paper"
    assert config.data.validation_cases == 10 and config.pipeline.size == (256, 256)
