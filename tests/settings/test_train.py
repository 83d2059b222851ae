import pytest

from tfcovseg.config import config_path, load_config, read_yaml
from tfcovseg.errors import TfcovsegError
from tfcovseg.settings.train import TrainConfig, paper_stages


def test_ricord_config_is_the_papers_recipe():
    cfg = load_config(TrainConfig, config_path("ricord_r3d18"))
    stage1, stage2 = cfg.stages
    assert (stage1.size, stage1.batch_size, stage2.size, stage2.batch_size) == (
        (18, 112, 112), 6, (20, 256, 256), 1)
    assert [(p.epochs, p.lr, p.freeze_encoder) for p in stage1.phases] == [
        (10, 1e-2, True), (200, 1e-3, False)]
    assert [(p.epochs, p.lr, p.weight_decay) for p in stage2.phases] == [(200, 1e-4, 1e-5)]
    assert cfg.data.tuning_fraction == 0.15 and cfg.loss.dice == "milletari"
    assert cfg.stages == paper_stages()  # the dataclass defaults are the paper too


def test_demo_config_generates_phantoms_and_has_no_unknown_keys():
    cfg = load_config(TrainConfig, config_path("demo"))
    assert cfg.data.dataset is None and cfg.data.synth.cases >= 8
    assert cfg.model.encoder_weights is None
    # phantoms drawn at the model's grid: the tuning Dice is the Dice on the phantoms' own grid
    assert [s.mode for s in cfg.stages] == ["resize"] and cfg.data.synth.shape == cfg.stages[0].size


@pytest.mark.parametrize("name", ["mosmed_eval", "coronacases_eval"])
def test_evaluation_configs_use_evaluate_arguments(name):
    import inspect

    from tfcovseg.infer.evaluate import evaluate

    settings = read_yaml(config_path(name))
    assert set(settings) <= set(inspect.signature(evaluate).parameters)
    assert settings["tolerance"] == 3.0


def test_bad_values_are_named():
    with pytest.raises(TfcovsegError, match="precision"):
        load_config(TrainConfig, config_path("demo"), ["precision=fp8"])
    with pytest.raises(TfcovsegError, match="tuning_fraction"):
        load_config(TrainConfig, config_path("demo"), ["data.tuning_fraction=1.5"])
