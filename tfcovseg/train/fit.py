"""The staged fit of Bressem et al.: stages (input sizes) of one-cycle phases, resumable.

After every epoch the run folder gets a history row, a checkpoint of the model and optimizer
(``checkpoints/last-*``, written before ``checkpoints/state.json`` points to it, so a kill at any
moment leaves a complete one) and, when the tuning Dice improved, the stage's best weights.
``state.json`` says where the run is (stage, phase, completed epochs of that phase, best Dice
per stage); a resumed run continues from there with the same one-cycle position.
"""

import dataclasses
import math
import shutil
import time

import tensorflow as tf

from tfcovseg.data.pipeline3d import volume_dataset, whole_volume_dataset
from tfcovseg.errors import TfcovsegError
from tfcovseg.rundir import Position, RunFolder
from tfcovseg.settings.train import Stage, TrainConfig, pipeline_config
from tfcovseg.train.callbacks import BestDiceCheckpoint, FreezeEncoder, OneCycle
from tfcovseg.train.finetune import init_model_file
from tfcovseg.train.losses import DiceCrossEntropy
from tfcovseg.train.optimizer import FastaiAdam, base_optimizer, reset_optimizer_state


def best_key(config: TrainConfig, stage: Stage, phase: int) -> str:
    """Whose best a tuning Dice is: the session's (``stage1/2``) or the stage's (``stage1``)."""
    return f"{stage.name}/{phase + 1}" if config.checkpoint.best_of == "session" else stage.name


def done(config: TrainConfig, position: Position) -> bool:
    return position.stage >= len(config.stages)


def stage_best(config: TrainConfig, stage: Stage, position: Position) -> float | None:
    """The tuning Dice of the weights a stage hands on: its last session's (or the stage's) best."""
    return position.best.get(best_key(config, stage, len(stage.phases) - 1))


def stage_epoch(stage: Stage, phase: int, epoch: int) -> int:
    """Epochs of ``stage`` done after ``epoch`` epochs of ``phase`` (history counts per stage)."""
    return sum(p.epochs for p in stage.phases[:phase]) + epoch


def trim_history(run: RunFolder, config: TrainConfig, position: Position) -> None:
    """Drop rows of epochs after ``position`` (trained, then lost with the killed process)."""
    names = [s.name for s in config.stages]

    def kept(row):
        index = names.index(row["stage"]) if row["stage"] in names else len(names)
        if index != position.stage:
            return index < position.stage
        limit = stage_epoch(config.stages[index], position.phase, position.epoch)
        return int(row["epoch"]) <= limit

    run.write_history([row for row in run.read_history() if kept(row)])


def _number(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.6g}"


class RunRecorder(tf.keras.callbacks.Callback):
    """Per epoch: history row, model+optimizer checkpoint, then the state pointing to it."""

    def __init__(self, run: RunFolder, config: TrainConfig, position: Position,
                 best: BestDiceCheckpoint, chief: bool = True):
        super().__init__()
        self.run = run
        self.config = config
        self.position = position
        self.best = best
        self.chief = chief
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        position = self.position
        stage = self.config.stages[position.stage]
        row = {"stage": stage.name, "phase": position.phase + 1,
               "epoch": stage_epoch(stage, position.phase, epoch + 1),
               "seconds": f"{time.time() - self._started:.1f}"}
        row.update({k: _number(logs.get(k)) for k in ("lr", "loss", "val_loss", "val_dice")})
        folder = self.run.last_checkpoint(stage.name, position.phase + 1, epoch + 1)
        self.save_checkpoint(folder)
        if self.best.best is not None:
            position.best[best_key(self.config, stage, position.phase)] = self.best.best
        position.epoch, previous, position.checkpoint = epoch + 1, position.checkpoint, folder
        if self.chief:
            self.run.write_history(self.run.read_history() + [row])
            self.run.write_position(position)
            if previous and previous != folder:
                shutil.rmtree(self.run.root / previous, ignore_errors=True)

    def save_checkpoint(self, folder: str) -> None:
        # Workers other than the chief must take part in saving too; their copy is thrown away.
        target = self.run.root / (folder if self.chief else ".worker-tmp")
        checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer)
        checkpoint.write(str(target / "ckpt"))
        if not self.chief:
            shutil.rmtree(target, ignore_errors=True)


def restore_checkpoint(model, run: RunFolder, folder: str) -> None:
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    prefix = run.root / folder / "ckpt"
    try:
        checkpoint.read(str(prefix)).assert_existing_objects_matched()
    except (tf.errors.NotFoundError, AssertionError, ValueError) as err:
        raise TfcovsegError(f"cannot restore the last checkpoint ({err})", prefix) from None


def build_network(config: TrainConfig):
    """The configured U-Net (uncompiled)."""
    from tfcovseg.models import unet3d

    return unet3d(**model_kwargs(config))


def build_model(config: TrainConfig, strategy):
    """The network compiled with fastai's Adam and Dice + CE; optimizer built over all weights."""
    with strategy.scope():
        model = build_network(config)
        model.compile(
            optimizer=FastaiAdam(),
            loss=dice_cross_entropy(config),
        )
        base_optimizer(model.optimizer).build(model.trainable_variables)
    return model


def dice_cross_entropy(config: TrainConfig) -> DiceCrossEntropy:
    return DiceCrossEntropy(config.loss.dice, config.loss.dice_weight, config.loss.ce_weight,
                            dice_eps=config.loss.dice_eps)


def model_kwargs(config: TrainConfig) -> dict:
    return dataclasses.asdict(config.model)


def stage_data(dataset, split: dict, config: TrainConfig, stage: Stage, seed: int):
    """``(train, tuning, steps per epoch)`` for a stage; ``train`` repeats forever.

    Patch mode tunes on whole volumes (``whole_volume_dataset``), the way prediction sees them.
    """
    pipeline = pipeline_config(config.data, stage)
    train_cases = [dataset.case(i) for i in split["train"]]
    tuning_cases = [dataset.case(i) for i in split["tuning"]]
    train = volume_dataset(dataset, train_cases, pipeline, batch_size=stage.batch_size,
                           training=True, seed=seed)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = train.repeat().with_options(options)
    if stage.mode == "patch":
        tuning = whole_volume_dataset(dataset, tuning_cases, pipeline)
    else:
        tuning = volume_dataset(dataset, tuning_cases, pipeline, batch_size=stage.batch_size,
                                training=False, seed=seed)
    samples = len(train_cases) * (config.data.patches_per_volume if stage.mode == "patch" else 1)
    return train, tuning, math.ceil(samples / stage.batch_size)


def fit_stages(config: TrainConfig, dataset, split: dict, run: RunFolder, strategy, position: Position,
               chief: bool = True, on_stage_start=None) -> Position:
    """Train every stage from ``position`` on; returns the final position.

    The first stage starts from ``config.init``'s weights when it names a model (fine-tuning).
    ``on_stage_start(stage, model)`` runs before a stage trains, its starting weights loaded
    (the run writes run.json there and scores the loaded model).
    """
    while not done(config, position):
        stage = config.stages[position.stage]
        model = build_model(config, strategy)
        if position.checkpoint and (position.phase or position.epoch):
            restore_checkpoint(model, run, position.checkpoint)
            if not position.epoch:  # a finished phase ended on its best weights
                model.load_weights(str(run.root / run.best_weights(stage.name)))
        elif position.stage > 0:
            previous = config.stages[position.stage - 1]
            model.load_weights(str(run.root / run.best_weights(previous.name)))
        elif config.init:
            model.load_weights(str(init_model_file(config.init).weights))
        if on_stage_start is not None:
            on_stage_start(stage, model)
        fit_phases(model, config, stage, dataset, split, run, position, chief)
        position = dataclasses.replace(position, stage=position.stage + 1, phase=0, epoch=0)
        if chief:
            run.write_position(position)
        tf.keras.backend.clear_session()
    return position


def fit_phases(model, config: TrainConfig, stage: Stage, dataset, split, run: RunFolder,
               position: Position, chief: bool) -> None:
    train, tuning, steps = stage_data(dataset, split, config, stage, config.seed + position.stage)
    loss = dice_cross_entropy(config)
    while position.phase < len(stage.phases):
        phase = stage.phases[position.phase]
        if position.epoch == 0 and freeze_changes(config, stage, position.phase):
            reset_optimizer_state(model.optimizer)
        best = BestDiceCheckpoint(tuning, run.root / run.best_weights(stage.name), loss=loss,
                                  best=position.best.get(best_key(config, stage, position.phase)),
                                  verbose=False, metric=config.checkpoint.metric,
                                  window=stage.patch_size if stage.mode == "patch" else None)
        callbacks = [
            OneCycle(phase.lr, phase.epochs * steps, weight_decay=phase.weight_decay,
                     **dataclasses.asdict(config.one_cycle)),
            best,
            RunRecorder(run, config, position, best, chief),
        ]
        if phase.freeze_encoder:
            callbacks.insert(1, FreezeEncoder(phase.epochs))
        if config.tensorboard and chief:
            callbacks.append(tf.keras.callbacks.TensorBoard(
                str(run.tensorboard / stage.name), update_freq="epoch"))
        print(f"{stage.name}, phase {position.phase + 1}/{len(stage.phases)}: {phase.epochs} "
              f"epochs at lr {phase.lr:g}{' (encoder frozen)' if phase.freeze_encoder else ''}, "
              f"{steps} steps of batch {stage.batch_size} at {stage.mode} {list(stage.size)}",
              flush=True)
        model.fit(train, epochs=phase.epochs, initial_epoch=position.epoch, steps_per_epoch=steps,
                  callbacks=callbacks, verbose=1 if chief else 0)
        position.phase, position.epoch = position.phase + 1, 0
        if chief:
            run.write_position(position)


def freeze_changes(config: TrainConfig, stage: Stage, phase: int) -> bool:
    """Whether session ``phase`` starts with a fresh optimizer: fastai's ``freeze()`` and
    ``unfreeze()`` clear Adam's state, so a session whose encoder freezing differs from the
    previous session's (of the same stage) starts afresh (``optimizer.reset_on_freeze_change``)."""
    if phase == 0 or not config.optimizer.reset_on_freeze_change:
        return False
    return stage.phases[phase].freeze_encoder != stage.phases[phase - 1].freeze_encoder
