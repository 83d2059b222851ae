import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from tfcovseg.config import (
    apply_overrides,
    config_path,
    from_dict,
    load_config,
    named_config,
    to_dict,
)
from tfcovseg.errors import TfcovsegError

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@dataclasses.dataclass
class Inner:
    size: tuple[int, int, int] = (18, 112, 112)
    mode: Literal["resize", "patch"] = "resize"


@dataclasses.dataclass
class Outer:
    lr: float = 1e-3
    epochs: int = 10
    name: str | None = None
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_yaml_maps_onto_nested_dataclasses(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.01\ninner:\n  size: [20, 256, 256]\n")
    cfg = load_config(Outer, path)
    assert cfg.lr == 0.01 and cfg.epochs == 10
    assert cfg.inner.size == (20, 256, 256) and cfg.inner.mode == "resize"


def test_unknown_key_error_names_key_and_allowed_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  sise: [1, 2, 3]\n")
    with pytest.raises(TfcovsegError) as err:
        load_config(Outer, path)
    message = str(err.value)
    assert "inner.sise" in message and "mode, size" in message and str(path) in message


def test_literal_value_outside_allowed_is_refused():
    with pytest.raises(TfcovsegError, match="allowed values: 'resize', 'patch'"):
        from_dict(Outer, {"inner": {"mode": "slices"}})


def test_wrong_types_and_lengths_are_refused():
    with pytest.raises(TfcovsegError, match="must be a number"):
        from_dict(Outer, {"lr": "fast"})
    with pytest.raises(TfcovsegError, match="3 items"):
        from_dict(Outer, {"inner": {"size": [1, 2]}})
    with pytest.raises(TfcovsegError, match="must be an integer"):
        from_dict(Outer, {"epochs": 2.5})


def test_overrides_parse_yaml_values_and_win_over_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\n")
    cfg = load_config(Outer, path, ["epochs=7", "inner.size=[8, 32, 32]", "name=null"])
    assert cfg.epochs == 7 and cfg.inner.size == (8, 32, 32) and cfg.name is None


def test_malformed_override_is_refused():
    with pytest.raises(TfcovsegError, match="key.sub=value"):
        apply_overrides({}, ["epochs"])


def test_overrides_index_into_lists_without_touching_the_original():
    data = {"stages": [{"name": "a", "phases": [{"epochs": 1}, {"epochs": 2}]}, {"name": "b"}]}
    changed = apply_overrides(data, ["stages.0.phases.1.epochs=50", "stages.1.size=[1, 2, 3]"])
    assert changed["stages"][0]["phases"] == [{"epochs": 1}, {"epochs": 50}]
    assert changed["stages"][1] == {"name": "b", "size": [1, 2, 3]}
    assert data["stages"][0]["phases"][1] == {"epochs": 2} and "size" not in data["stages"][1]


@pytest.mark.parametrize("key", ["stages.2.name", "stages.first.name"])
def test_list_override_with_a_bad_index_names_the_list_and_its_length(key):
    with pytest.raises(TfcovsegError, match=r"stages is a list of 2 items, index it with 0\.\.1"):
        apply_overrides({"stages": [{}, {}]}, [f"{key}=x"])


def test_to_dict_round_trips():
    cfg = Outer(lr=0.5, inner=Inner(size=(1, 2, 3), mode="patch"))
    assert from_dict(Outer, to_dict(cfg)) == cfg
    assert to_dict(cfg)["inner"]["size"] == [1, 2, 3]


@pytest.mark.parametrize("name", ["demo", "bench_smoke", "ricord_r3d18"])
def test_a_name_finds_the_shipped_config_of_the_repository(name):
    found = config_path(name)
    assert found == named_config(name) and found.name == f"{name}.yaml"
    assert found.read_text() == (REPO_CONFIGS / f"{name}.yaml").read_text()


def test_a_config_file_path_is_taken_as_it_is(tmp_path):
    path = tmp_path / "demo"
    path.write_text("lr: 0.5\n")
    assert config_path(path) == path


def test_an_unknown_config_name_lists_the_named_configs():
    with pytest.raises(TfcovsegError, match=r"did you mean demo\? named configs: bench_paper, .*bench_smoke, .*demo") as err:
        config_path("dmeo")
    assert "dmeo" in str(err.value)
