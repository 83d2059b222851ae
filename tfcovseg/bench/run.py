"""``tfcovseg bench``: run the cells of a grid (here, sharded, or on Ray), then write the report.

Every cell writes its own result file (``store``), so the executor keeps no state: re-running
skips finished cells, a killed run loses only the cells in flight, and shards or Ray tasks need
no coordination beyond the shared bench folder.
"""

import dataclasses
import time
from pathlib import Path

from tfcovseg.bench import store
from tfcovseg.bench.grid import Cell, grid_cells, parse_only, parse_shard, select, shard
from tfcovseg.config import config_path, load_config
from tfcovseg.errors import TfcovsegError
from tfcovseg.settings.bench import BenchConfig

LOCAL_RAY = "local"


def load_bench_config(name_or_path, data: str | None = None, out: str | None = None) -> BenchConfig:
    """A bench config by name or path; ``data`` is ``TRAIN[,TEST]`` folders, ``out`` the bench folder."""
    overrides = []
    if data:
        train, _, test = data.partition(",")
        overrides.append(f"data.train={train}")
        if test:
            overrides.append(f"data.test={test}")
    if out:
        overrides.append(f"out={out}")
    return load_config(BenchConfig, config_path(name_or_path), overrides)


def plan(config: BenchConfig, only: str | None = None, shard_spec: str | None = None) -> list[Cell]:
    """The cells this invocation is responsible for: its shard of the grid, then ``--only``."""
    grid = config.grid
    cells = grid_cells(grid.archs, grid.encoders, grid.inits, grid.experiments)
    k, n = parse_shard(shard_spec)
    filters = parse_only(only)
    for key, values in filters.items():
        unknown = values - {getattr(c, key) for c in cells}
        if unknown:
            raise TfcovsegError(f"--only {key}={'|'.join(sorted(unknown))}: not in the config's grid")
    return select(shard(cells, k, n), filters)


class Progress:
    """Prints which cell and epoch runs, with a rough ETA (epochs left x mean epoch time).

    ``scope="cell"`` (a Ray task, which runs beside others) estimates its own cell only.
    """

    def __init__(self, cells: int, epochs: int, scope: str = "grid"):
        self.cells, self.epochs, self.scope = cells, epochs, scope
        self.epoch_seconds: list[float] = []

    def epoch_printer(self, index: int, cell: Cell):
        def on_epoch(epoch, train_loss, validation_loss, seconds):
            self.epoch_seconds.append(seconds)
            left = self.epochs - epoch
            if self.scope == "grid":
                left += (self.cells - index) * self.epochs
            eta = _duration(left * sum(self.epoch_seconds) / len(self.epoch_seconds))
            print(f"[{index}/{self.cells}] {cell.id} epoch {epoch}/{self.epochs} "
                  f"loss {train_loss:.4f} val {validation_loss:.4f} ({seconds:.1f} s), "
                  f"{self.scope} ETA {eta}", flush=True)

        return on_epoch


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{int(seconds) % 60:02d}s"


def run_bench(config="bench_smoke", data=None, out=None, only=None, shard=None,
              ray_address=None) -> Path:
    """Run the config's grid (this shard, ``--only`` cells) into ``out`` and write the report."""
    from tfcovseg.bench import data as bench_data
    from tfcovseg.bench.models2d import check_encoders
    from tfcovseg.bench.report import write_report

    cfg = load_bench_config(config, data=data, out=out)
    # absolute paths: Ray workers do not share the driver's working directory
    test = None if cfg.data.test is None else str(Path(cfg.data.test).resolve())
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(
        cfg.data, train=str(Path(cfg.data.train).resolve()), test=test))
    bench_dir = Path(cfg.out).resolve()
    cells = plan(cfg, only, shard)
    # the selected cells' experiments decide which masks a case needs (and so the splits)
    chosen = tuple(e for e in cfg.grid.experiments if e in {c.experiment for c in cells})
    cfg = dataclasses.replace(cfg, grid=dataclasses.replace(cfg.grid, experiments=chosen))
    todo = [c for c in cells if not store.is_finished(bench_dir, c.id)]
    check_encoders(sorted({c.encoder for c in todo}), cfg.architectures.networks)
    splits = bench_data.load_splits(cfg.data, cfg.grid.experiments)
    print(f"bench {cfg.name}: {len(cells)} cells selected, {len(cells) - len(todo)} already "
          f"finished, {len(todo)} to run into {bench_dir}; {splits.summary()}", flush=True)
    if ray_address:
        _run_on_ray(todo, cfg, bench_dir, ray_address)
    else:
        _run_here(todo, cfg, bench_dir, splits)
    _print_unavailable(bench_dir, cells)
    if store.read_results(bench_dir):
        write_report(bench_dir)
    else:
        print("no cell results yet: no report", flush=True)
    return bench_dir


def _run_here(cells, cfg: BenchConfig, bench_dir: Path, splits) -> None:
    from tfcovseg.bench.cell import run_cell

    progress = Progress(len(cells), cfg.training.epochs)
    for index, cell in enumerate(cells, start=1):
        print(f"[{index}/{len(cells)}] {cell.id}: training", flush=True)
        result = run_cell(cell, cfg, bench_dir, splits, progress.epoch_printer(index, cell))
        print(f"[{index}/{len(cells)}] {cell.id}: {_outcome(result)}", flush=True)


def _outcome(result: dict) -> str:
    if result["status"] != store.DONE:
        return result.get("reason", result["status"])
    outcome = f"test Dice {100 * result['metrics']['dice']:.2f}%"
    if result["missed_images"]:
        outcome += (f" ({result['missed_images']} of {result['test_images']} test images with a "
                    "target got no prediction)")
    return outcome


def _ray_cell(cell: Cell, cfg: BenchConfig, bench_dir: str, index: int, total: int) -> dict:
    """A Ray task: one cell, its result written by the task itself."""
    from tfcovseg.bench.cell import run_cell

    progress = Progress(total, cfg.training.epochs, scope="cell")
    result = run_cell(cell, cfg, bench_dir, on_epoch=progress.epoch_printer(index, cell))
    return {"id": result["id"], "status": result["status"], "outcome": _outcome(result)}


def _run_on_ray(cells, cfg: BenchConfig, bench_dir: Path, address: str) -> None:
    """Cells as Ray tasks (one GPU each when the cluster has GPUs); results go to ``bench_dir``."""
    try:
        import ray
    except ModuleNotFoundError:
        raise TfcovsegError("--ray needs Ray: pip install 'tfcovseg[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address == LOCAL_RAY else address)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_gpus=gpus)(_ray_cell)
        pending = {task.remote(cell, cfg, str(bench_dir), i, len(cells)): cell
                   for i, cell in enumerate(cells, start=1)}
        start, finished = time.perf_counter(), 0
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            result = ray.get(done[0])
            pending.pop(done[0])
            finished += 1
            eta = _duration((time.perf_counter() - start) / finished * len(pending))
            print(f"[{finished}/{len(cells)} done] {result['id']}: {result['outcome']}; "
                  f"grid ETA {eta}", flush=True)
    finally:
        if started_here:
            ray.shutdown()


def _print_unavailable(bench_dir: Path, cells) -> None:
    missing = [c.id for c in cells
               if (r := store.read_result(bench_dir, c.id)) and r["status"] == store.NO_IMAGENET]
    if missing:
        print(f"{len(missing)} cell(s) got no ImageNet weights (offline, not in the Keras cache; "
              f"they rerun next time): {', '.join(missing)}", flush=True)
