"""``tfcovseg train``: a config and a dataset in, a run folder out (its layout:
``tfcovseg.rundir``).

Everything is checked before the run folder is made: the config at load, the dataset's files,
grids and label values (``check_cases``).
"""

import dataclasses
import datetime
import importlib.metadata
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

import tfcovseg
from tfcovseg.config import config_path, load_config, to_dict
from tfcovseg.data.pipeline3d import median_spacing
from tfcovseg.data.reader import check_cases
from tfcovseg.errors import TfcovsegError
from tfcovseg.files import write_json, write_text
from tfcovseg.io.manifest import MANIFEST, Dataset, load_dataset
from tfcovseg.rundir import InputSpec, Position, RunFolder, RunInfo
from tfcovseg.settings.data import Pipeline3D
from tfcovseg.settings.phantoms import Phantoms
from tfcovseg.settings.train import DataConfig, TrainConfig, pipeline_config
from tfcovseg.train.finetune import describe_scores, resolve_init, tuning_scores
from tfcovseg.train.fit import done, fit_stages, model_kwargs, stage_best, trim_history

REPO = Path(__file__).resolve().parent.parent.parent


def train(config="demo", data=None, out=None, resume=None, strategy=None, overrides=(),
          init=None) -> Path:
    """Train as ``config`` says (a name in configs/ or a YAML path); returns the run folder.

    ``data`` replaces ``data.dataset``; ``strategy`` replaces ``strategy``; ``init`` replaces
    ``init`` (fine-tuning: start from that model, ``tfcovseg.train.finetune``); ``overrides``
    are ``key.sub=value`` strings. ``resume`` continues the run in that folder from its last
    completed epoch, with the config stored there (overrides still apply).
    """
    if resume:
        run = RunFolder(resume)
        if not run.config.is_file():
            raise TfcovsegError(f"cannot resume: no {run.config.name} (not a training run)",
                                run.root)
        cfg = load_config(TrainConfig, run.config, overrides)
    else:
        path = config_path(config)
        cfg = load_config(TrainConfig, path, overrides)
        run = RunFolder(out or cfg.out or default_run_dir(path.stem))
        if run.config.exists():
            raise TfcovsegError("already holds a training run: use --resume or another --out",
                                run.root)
    if data:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=str(data)))
    if strategy:
        cfg = dataclasses.replace(cfg, strategy=strategy)
    if init:
        cfg = dataclasses.replace(cfg, init=str(init))
    return run_training(cfg, run, resume=bool(resume)).root


def run_training(cfg: TrainConfig, run: RunFolder, resume: bool = False) -> RunFolder:
    """Train ``cfg`` into ``run``. With ``cfg.init`` (fine-tuning) the model's settings fill the
    config (``resolve_init``; a resumed run's stored config has them already) and the tuning
    split is scored with the loaded weights before the first step and with the best weights
    after the last (summary.json "before" and "after")."""
    from tfcovseg.train.precision import set_precision
    from tfcovseg.train.strategy import is_chief, make_strategy, resolve_strategy_name

    if cfg.init and not resume:
        cfg, init = resolve_init(cfg)
        print(f"starting from {init.kind} {init.path}", flush=True)
    started = time.time()
    strategy_name = resolve_strategy_name(cfg.strategy)
    strategy = make_strategy(strategy_name)  # before other TensorFlow work (multiworker)
    chief = is_chief(strategy)
    precision = set_precision(cfg.precision)
    print(f"tfcovseg train on {describe_devices(precision, strategy_name, strategy)}", flush=True)
    dataset = training_dataset(cfg.data)
    run.root.mkdir(parents=True, exist_ok=True)
    split = run.read_split() if resume else make_split(dataset, cfg.data)
    cfg = with_target_spacing(cfg, dataset, split)
    position = run.read_position() if resume else Position()
    if chief:
        write_text(run.config, yaml.safe_dump(to_dict(cfg), sort_keys=False))
        write_json(run.environment,
                   environment(precision, strategy_name, strategy.num_replicas_in_sync))
        run.write_split(split)
        run.copy_manifest(dataset.root / MANIFEST)
        if resume:
            trim_history(run, cfg, position)
    print(f"training {len(split['train'])} cases, tuning on {len(split['tuning'])}, from "
          f"{dataset.root}; run folder {run.root}", flush=True)

    tuning = TuningSet(dataset, [dataset.case(i) for i in split["tuning"]],
                       pipeline_config(cfg.data, cfg.stages[-1]))

    def on_stage_start(stage, model):
        if chief:
            patch = stage.mode == "patch"
            spec = InputSpec(mode=stage.mode, size=stage.patch_size if patch else stage.size,
                             intensity=cfg.data.intensity,
                             spacing=cfg.data.target_spacing if patch else None)
            run.write_info(RunInfo(model=model_kwargs(cfg), input=spec,
                                   weights=run.best_weights(stage.name),
                                   dataset=str(dataset.root.resolve())))
        if chief and cfg.init and stage is cfg.stages[0] and "before" not in run.read_summary():
            score_init(run, cfg, model, tuning)

    position = fit_stages(cfg, dataset, split, run, strategy, position, chief, on_stage_start)
    if chief:
        after = score_best(run, tuning) if cfg.init and done(cfg, position) else None
        summary = write_summary(run, cfg, position, time.time() - started, after)
        print(next_steps(run, cfg, dataset, split, summary))
    return run


@dataclasses.dataclass(frozen=True)
class TuningSet:
    """The tuning cases a fine-tuning run scores before and after, on its last stage's grid."""

    dataset: Dataset
    cases: list
    pipeline: Pipeline3D


def score_init(run: RunFolder, cfg: TrainConfig, model, tuning: TuningSet) -> None:
    """The loaded model's tuning scores, kept in summary.json before the first step."""
    before = tuning_scores(model, tuning.dataset, tuning.cases, tuning.pipeline)
    print(f"tuning split with the loaded weights: {describe_scores(before)}", flush=True)
    run.write_summary({**run.read_summary(), "init": cfg.init, "before": before})


def score_best(run: RunFolder, tuning: TuningSet) -> dict:
    """The tuning scores of the run's best weights (what run.json points to)."""
    from tfcovseg.models.runs import load_run_model

    model, _ = load_run_model(run.root)
    after = tuning_scores(model, tuning.dataset, tuning.cases, tuning.pipeline)
    before = run.read_summary().get("before")
    print(f"tuning split with the best weights: {describe_scores(after)}"
          + (f" (loaded weights: {describe_scores(before)})" if before else ""), flush=True)
    return after


def default_run_dir(name: str) -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-{stamp}"


def training_dataset(data: DataConfig):
    """The configured dataset (phantoms made on first use), refused unless it has labels."""
    if data.dataset:
        dataset = load_dataset(data.dataset)
    elif data.synth is not None:
        dataset = synthetic_dataset(data.synth, data.phantoms_cache)
    else:
        raise TfcovsegError("the config names no data: give --data DATASET or set data.synth")
    labelled = dataset.labelled
    if len(labelled) < 2:
        raise TfcovsegError(
            f"train needs lesion labels for at least 2 cases (train + tuning); {len(labelled)} of "
            f"{len(dataset.cases)} cases have a 'label' file", dataset.root / MANIFEST)
    check_cases(dataset, labelled)  # headers, grids, declared label values: before any file
    return dataclasses.replace(dataset, cases=labelled)


def synthetic_dataset(phantoms: Phantoms, cache: str):
    """Phantoms in a folder of ``cache`` named by their setting, generated when missing."""
    from tfcovseg.io.phantoms import synthesize_dataset

    shape = "x".join(str(s) for s in phantoms.shape)
    spacing = "x".join(f"{s:g}" for s in phantoms.spacing)
    lesions = ("-".join(str(n) for n in phantoms.lesion_count) + "-r"
               + "-".join(f"{r:g}" for r in phantoms.lesion_radius))
    folder = Path(cache) / f"{phantoms.cases}-{shape}-{spacing}mm-lesions{lesions}-seed{phantoms.seed}"
    if (folder / MANIFEST).is_file():
        return load_dataset(folder)
    print(f"writing {phantoms.cases} phantoms to {folder}", flush=True)
    return synthesize_dataset(folder, phantoms)


def with_target_spacing(cfg: TrainConfig, dataset, split: dict) -> TrainConfig:
    """``cfg`` with ``data.target_spacing`` resolved when a stage trains on patches: null
    becomes the median voxel spacing of the training cases per axis (nnU-Net's plan)."""
    if cfg.data.target_spacing is not None or all(s.mode != "patch" for s in cfg.stages):
        return cfg
    spacing = median_spacing(dataset, [dataset.case(i) for i in split["train"]])
    print(f"patch mode at the training cases' median spacing "
          f"{' x '.join(f'{s:g}' for s in spacing)} mm (D, H, W)", flush=True)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, target_spacing=spacing))


def make_split(dataset, data: DataConfig) -> dict:
    """fastai ``RandomSplitter``-like: floor(fraction x n) tuning cases (at least 1), seeded."""
    ids = [case.id for case in dataset.cases]
    order = np.random.default_rng(data.split_seed).permutation(len(ids))
    tuning_count = max(1, math.floor(data.tuning_fraction * len(ids)))
    tuning = sorted(ids[i] for i in order[:tuning_count])
    return {"seed": data.split_seed, "train": [i for i in ids if i not in tuning], "tuning": tuning}


def environment(precision: str, strategy: str, replicas: int) -> dict:
    import tensorflow as tf

    return {
        "tfcovseg": tfcovseg.__version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tf_keras": importlib.metadata.version("tf-keras"),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "host": platform.node(),
        "cpu": cpu_name(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "precision": precision,
        "strategy": strategy,
        "replicas": replicas,
        "command": sys.argv,
    }


def describe_devices(precision: str, strategy_name: str, strategy) -> str:
    """The first line a user reads: device, precision and strategy in words."""
    import tensorflow as tf

    from tfcovseg.train.precision import BF16_CPU_FLAGS, cpu_flags

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        device = f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''}"
    else:
        amx = "with" if set(BF16_CPU_FLAGS) <= cpu_flags() else "without"
        device = f"the CPU ({cpu_name()}, {os.cpu_count()} cores, {amx} AMX)"
    replicas = strategy.num_replicas_in_sync
    return (f"{device}, {precision} precision, {strategy_name} distribution strategy "
            f"({replicas} replica{'s' if replicas > 1 else ''})")


def git_revision() -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def write_summary(run: RunFolder, cfg: TrainConfig, position: Position, seconds: float,
                  after: dict | None = None) -> dict:
    """summary.json; a fine-tuning run keeps its "init" and "before" and adds "after"."""
    previous = run.read_summary()
    summary = {
        "best_tuning_dice": {s.name: stage_best(cfg, s, position) for s in cfg.stages},
        "wall_seconds": round(previous.get("wall_seconds", 0.0) + seconds, 1),
        "finished": done(cfg, position),
        "weights": run.best_weights(cfg.stages[-1].name),
    }
    summary.update({key: previous[key] for key in ("init", "before") if key in previous})
    if after is not None:
        summary["after"] = after
    run.write_summary(summary)
    return summary


def next_steps(run: RunFolder, cfg: TrainConfig, dataset, split: dict, summary: dict) -> str:
    """The commands to run next; everything they write goes under the run folder."""
    dice = summary["best_tuning_dice"][cfg.stages[-1].name]
    example = dataset.path(dataset.case(split["tuning"][0]).image)
    mask = run.predictions / f"{example.name.split('.')[0]}_lesions.nii.gz"
    dice_text = "no finite tuning Dice" if dice is None else f"best tuning Dice {dice:.3f}"
    return "\n".join([
        f"\nModel: {run.root} ({dice_text}; weights {summary['weights']}; "
        f"{summary['wall_seconds'] / 60:.1f} min)",
        "Next:",
        f"  tfcovseg evaluate --model {run.root} --split tuning",
        f"  tfcovseg predict --model {run.root} {example} --out {mask}",
        f"  tfcovseg export --model {run.root} --out {run.root / 'export'}",
    ])
