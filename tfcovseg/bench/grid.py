"""The grid's cells, ``--only`` filters and deterministic ``--shard K/N`` partitions.

A cell is one trained model: architecture x encoder x initialisation x experiment. Its id,
``<experiment>-<arch>-<encoder>-<init>``, names its result and weights files.

Shards are taken by position in the sorted full grid (before ``--only``), so every machine that
uses the same config gets the same partition without talking to the others, and each shard
holds the same number of cells (+-1).
"""

import dataclasses
import itertools

from tfcovseg.errors import TfcovsegError

CELL_KEYS = ("arch", "encoder", "init", "experiment")


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
    experiment: str
    arch: str
    encoder: str
    init: str

    @property
    def id(self) -> str:
        return f"{self.experiment}-{self.arch}-{self.encoder}-{self.init}"


def grid_cells(archs, encoders, inits, experiments) -> list[Cell]:
    """Every combination, sorted by id (the order shards are taken from)."""
    cells = [
        Cell(experiment=e, arch=a, encoder=enc, init=i)
        for e, a, enc, i in itertools.product(experiments, archs, encoders, inits)
    ]
    return sorted(set(cells), key=lambda c: c.id)


def parse_only(text: str | None) -> dict[str, frozenset]:
    """``"arch=unet,encoder=resnet18|vgg16"`` -> ``{"arch": {"unet"}, "encoder": {...}}``."""
    if not text:
        return {}
    only: dict[str, frozenset] = {}
    for part in text.split(","):
        key, sep, values = part.strip().partition("=")
        if not sep or not key or not values:
            raise TfcovsegError(f"--only: {part!r} is not KEY=VALUE[|VALUE...]")
        if key not in CELL_KEYS:
            raise TfcovsegError(f"--only: unknown key {key!r}; allowed keys: {', '.join(CELL_KEYS)}")
        if key in only:
            raise TfcovsegError(f"--only: {key!r} given twice; use {key}=a|b for several values")
        only[key] = frozenset(v.strip() for v in values.split("|"))
    return only


def select(cells, only: dict) -> list[Cell]:
    """The cells matching every ``--only`` key (any of its values)."""
    return [c for c in cells if all(getattr(c, k) in values for k, values in only.items())]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` (1-based K) -> ``(K, N)``; ``None`` -> ``(1, 1)``."""
    if not text:
        return 1, 1
    k, sep, n = text.partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit():
        raise TfcovsegError(f"--shard must be K/N with integers, e.g. 2/8; got {text!r}")
    k, n = int(k), int(n)
    if not 1 <= k <= n:
        raise TfcovsegError(f"--shard {text}: K must be between 1 and N")
    return k, n


def shard(cells, k: int, n: int) -> list[Cell]:
    """The K-th (1-based) of N interleaved shards of the sorted cells."""
    ordered = sorted(cells, key=lambda c: c.id)
    return [c for i, c in enumerate(ordered) if i % n == k - 1]
