import pytest

from tfcovseg.bench.grid import Cell, grid_cells, parse_only, parse_shard, select, shard
from tfcovseg.errors import TfcovsegError
from tfcovseg.settings.bench import PAPER_ENCODERS

ARCHS = ("unet", "linknet", "fpn", "pspnet")
INITS = ("random", "imagenet")
EXPERIMENTS = ("lungs", "lesions", "lesions_in_lungs")


def paper_grid():
    return grid_cells(ARCHS, PAPER_ENCODERS, INITS, EXPERIMENTS)


def test_paper_grid_has_600_distinct_cells():
    cells = paper_grid()
    assert len(cells) == 600
    assert len({c.id for c in cells}) == 600


def test_cell_id_names_experiment_arch_encoder_init():
    assert Cell("lesions", "unet", "resnet18", "imagenet").id == "lesions-unet-resnet18-imagenet"


@pytest.mark.parametrize("n", [1, 2, 7, 600, 601])
def test_shards_partition_the_grid_disjointly_and_evenly(n):
    cells = paper_grid()
    parts = [shard(cells, k, n) for k in range(1, n + 1)]
    ids = [c.id for part in parts for c in part]
    assert sorted(ids) == sorted(c.id for c in cells)
    assert len(ids) == len(set(ids))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shards_do_not_depend_on_input_order():
    cells = paper_grid()
    assert shard(cells, 2, 5) == shard(list(reversed(cells)), 2, 5)


def test_parse_only_several_keys_and_values():
    only = parse_only("arch=unet,encoder=resnet18|vgg16")
    assert only == {"arch": {"unet"}, "encoder": {"resnet18", "vgg16"}}
    chosen = select(paper_grid(), only)
    assert len(chosen) == 1 * 1 * 2 * 3  # vgg16 is not in the paper grid
    assert {c.arch for c in chosen} == {"unet"}


def test_empty_only_selects_everything():
    assert parse_only(None) == {}
    assert select(paper_grid(), {}) == paper_grid()


@pytest.mark.parametrize("text", ["arch", "colour=red", "arch=unet,arch=fpn", "arch="])
def test_parse_only_rejects_bad_filters(text):
    with pytest.raises(TfcovsegError, match="--only"):
        parse_only(text)


def test_parse_shard():
    assert parse_shard("3/8") == (3, 8)
    assert parse_shard(None) == (1, 1)


@pytest.mark.parametrize("text", ["0/4", "5/4", "a/b", "3", "1/0"])
def test_parse_shard_rejects_bad_values(text):
    with pytest.raises(TfcovsegError, match="--shard"):
        parse_shard(text)
