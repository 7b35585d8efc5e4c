"""The training loop: Adam on cross-entropy, per-epoch streaming validation, checkpoints that resume exactly.

Everything random is a pure function of the random seed: initial weights (Keras's global
seed), each epoch's window order (seed, epoch) and each step's dropout masks (seed, step).
The global step lives in the optimizer (``iterations``) and is saved with its moments, so
a resumed run replays the same batches, masks and learning rates as an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from shakegen import checkpoint, fileio, prepare
from shakegen.config import TrainConfig
from shakegen.errors import ConfigError, TrainingDiverged, TrainingInterrupted

HISTORY_FIELDS = (
    "epoch",
    "step",
    "train_loss",
    "val_loss",
    "val_perplexity",
    "val_bits_per_character",
    "learning_rate",
    "epoch_seconds",
    "elapsed_seconds",
    "characters_seen",
)
# Fields a resumed run may change: how long to train and how fast to step, not what is trained.
RESUMABLE_CHANGES = (
    "epochs",
    "max_steps",
    "max_minutes",
    "patience",
    "learning_rate",
    "final_learning_rate",
    "clip_norm",
)

Progress = Callable[[dict], None]


@dataclass
class TrainState:
    """Where a run stands; saved inside last.npz."""

    epoch: int = 0  # completed epochs
    epoch_start_step: int = 0  # global step at which the current epoch began
    global_step: int = 0
    best_val_loss: float | None = None
    best_epoch: int | None = None
    epochs_since_best: int = 0
    elapsed_seconds: float = 0.0
    characters_seen: int = 0
    train_nll_sum: float = 0.0  # running sums of the current epoch's training loss
    train_count: int = 0
    stop_reason: str | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, values: dict) -> "TrainState":
        state = cls()
        for key, value in values.items():
            if hasattr(state, key):
                setattr(state, key, value)
        return state


@dataclass
class TrainResult:
    run_dir: Path
    state: TrainState
    history: list[dict] = field(default_factory=list)


def ensure_prepared(data_dir: Path, progress: Progress | None) -> prepare.PreparedData:
    """Load the prepared corpus, preparing the embedded one first if nothing is prepared."""
    if not prepare.is_prepared(data_dir):
        source, which = prepare.default_input()
        if progress:
            progress({"type": "preparing", "which": which, "data_dir": str(data_dir)})
        prepare.prepare_corpus(source, data_dir)
    return prepare.load_prepared(data_dir)


def check_compatible(existing: checkpoint.RunInfo, config: TrainConfig, vocab) -> None:
    """Raise ConfigError naming what differs between a saved run and a requested one."""
    if existing.vocab != vocab:
        raise ConfigError(
            f"The run in {existing.run_dir} was trained on a vocabulary of {len(existing.vocab)} characters, "
            f"but the prepared data has {len(vocab)} (or different ones). Prepare the same corpus, or train into a new --run-dir."
        )
    mismatched = [
        f"{name} {getattr(existing.config, name)!r} (saved) vs {getattr(config, name)!r} (requested)"
        for name in existing.config.to_json()
        if name not in RESUMABLE_CHANGES and getattr(existing.config, name) != getattr(config, name)
    ]
    if mismatched:
        raise ConfigError(
            f"The run in {existing.run_dir} differs: {'; '.join(mismatched)}. "
            "Resume without changing these, or train into a new --run-dir."
        )


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """Cosine decay from learning_rate to final_learning_rate over all planned epochs."""
    import keras

    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate,
        decay_steps=max(1, config.epochs * steps_per_epoch),
        alpha=config.final_learning_rate / config.learning_rate,
    )


def train(
    config: TrainConfig | None,
    run_dir: str | Path,
    data_dir: str | Path = "data",
    *,
    resume: bool = False,
    changes: dict | None = None,
    overwrite: bool = False,
    strategy: str = "one",
    progress: Progress | None = None,
) -> TrainResult:
    """Train a new run in ``run_dir`` with ``config``, or resume the run there.

    Args:
        config: hyperparameters of a new run (ignored when resuming).
        resume: continue the saved run with its saved hyperparameters, except ``changes``
            (only ``RESUMABLE_CHANGES`` may differ; anything else is refused by name).
        overwrite: start over in a ``run_dir`` that already holds a run.
        strategy: ``one``, ``mirrored``, ``multi-worker`` or ``auto`` (see distribute.py). The
            global batch is split across replicas; only the chief writes the run folder.

    Raises:
        ConfigError: invalid hyperparameters, or a run folder that conflicts with the request.
        TrainingInterrupted: Ctrl-C; a checkpoint was saved first.
        TrainingDiverged: NaN/inf loss; the previous checkpoint is untouched.
    """
    run_dir = Path(run_dir)
    emit = progress or (lambda event: None)
    # Refuse what can be refused before any work (data preparation, TensorFlow start-up).
    has_run = (run_dir / checkpoint.CONFIG_FILE).exists()
    if resume and not has_run:
        raise ConfigError(f"Nothing to resume: {run_dir} holds no run. Train without --resume to start one.")
    if not resume:
        config.validate()
    from shakegen import distribute

    # First, before TensorFlow runs any op: it may split the CPU or join a cluster.
    strategy_object = distribute.make_strategy(strategy)
    chief = distribute.is_chief(strategy_object)
    # Only the chief prepares data and judges the run folder; other workers follow it.
    data = ensure_prepared(Path(data_dir), progress) if chief else prepare.load_prepared(data_dir)
    existing = None
    if has_run:
        existing = checkpoint.read_run(run_dir)
        if resume:
            config = existing.config.replace(**(changes or {}))
            check_compatible(existing, config, data.vocab)
        elif not overwrite and chief:
            check_compatible(existing, config, data.vocab)
            raise ConfigError(
                f"{run_dir} already holds a run. Pass --resume to continue it, --overwrite to start it over, "
                "or choose another --run-dir."
            )
    config.validate(train_characters=len(data.train))
    if existing is not None and existing.data.get("sha256") != data.meta["sha256"]:
        emit(
            {
                "type": "warning",
                "message": f"The prepared data differs from the data {run_dir} was trained on (SHA-256).",
            }
        )

    import keras

    from shakegen.dataset import epoch_window_starts, steps_per_epoch
    from shakegen.evaluate import PerplexityMetric, safe_exp, streaming_cross_entropy
    from shakegen.model import build_model, layer_summary

    replicas = strategy_object.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(
            f"batch_size {config.batch_size} must be divisible by the {replicas} replicas of --strategy {strategy}."
        )
    if config.max_minutes and distribute.is_multi_worker(strategy_object):
        raise ConfigError(
            "--max-minutes is not supported with --strategy multi-worker (workers' clocks differ); use --epochs or --max-steps."
        )
    keras.utils.set_random_seed(config.random_seed)
    steps = steps_per_epoch(len(data.train), config.seq_length, config.batch_size)
    schedule = learning_rate_schedule(config, steps)
    with strategy_object.scope():
        model = build_model(len(data.vocab), config)
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
        optimizer.build(model.trainable_variables)
    state = TrainState()
    history: list[dict] = []
    if existing is not None and resume:
        state = TrainState.from_json(checkpoint.load(checkpoint.checkpoint_path(run_dir, "last"), model, optimizer))
        history = read_history(run_dir)
    elif chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("last.npz", "best.npz", "history.csv", "curves.png"):
            (run_dir / name).unlink(missing_ok=True)
        keys = ("source", "sha256", "characters", "train_characters", "val_characters", "options")
        data_info = {key: data.meta[key] for key in keys}
        # For eval's unigram baseline, so that eval needs nothing but the run folder.
        data_info["train_counts"] = np.bincount(np.asarray(data.train), minlength=len(data.vocab)).tolist()
        checkpoint.write_run_config(run_dir, config, data.vocab, data_info, model.count_params())

    emit(
        {
            "type": "start",
            "layers": layer_summary(model),
            "parameters": model.count_params(),
            "steps_per_epoch": steps,
            "config": config,
            "resumed": resume,
            "state": state,
            "run_dir": str(run_dir),
            "replicas": replicas,
        }
    )
    metric = PerplexityMetric()
    train_step = make_train_step(model, optimizer, config, strategy_object)

    def save_last():
        if chief:
            checkpoint.save(checkpoint.checkpoint_path(run_dir, "last"), model, state.to_json(), optimizer)

    def stop_reason() -> str | None:
        if state.epoch >= config.epochs:
            return "epochs"
        if config.max_steps and state.global_step >= config.max_steps:
            return "max_steps"
        if config.max_minutes and state.elapsed_seconds >= config.max_minutes * 60:
            return "max_minutes"
        if config.patience and state.epochs_since_best >= config.patience:
            return "patience"
        return None

    characters_per_step = config.batch_size * config.seq_length
    try:
        while (reason := stop_reason()) is None:
            skip = state.global_step - state.epoch_start_step
            epoch_started = time.perf_counter()
            epoch_elapsed_before = state.elapsed_seconds
            metric.reset_state()
            metric.total.assign(state.train_nll_sum)
            metric.count.assign(state.train_count)
            epoch_steps = skip + len(
                epoch_window_starts(
                    len(data.train), config.seq_length, config.batch_size, config.random_seed, state.epoch
                )[skip:]
            )
            batches = distributed_epoch(strategy_object, data.train, config, state.epoch, skip)
            step_clock = time.perf_counter()
            for batch in batches:
                loss = float(train_step(batch))
                now = time.perf_counter()
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"The loss became {loss} at step {state.global_step + 1}; stopped. The last good checkpoint in {run_dir} is "
                        "kept. Lower --learning-rate or set --clip-norm, then --resume."
                    )
                metric.update_state(loss * characters_per_step, characters_per_step)
                state.global_step = int(optimizer.iterations.numpy())
                state.characters_seen += characters_per_step
                state.elapsed_seconds += now - step_clock
                state.train_nll_sum, state.train_count = float(metric.total), int(metric.count)
                emit(
                    {
                        "type": "step",
                        "epoch": state.epoch + 1,
                        "step": state.global_step - state.epoch_start_step,
                        "steps": epoch_steps,
                        "loss": loss,
                        "perplexity": safe_exp(metric.loss()),
                        "characters_per_second": characters_per_step / max(now - step_clock, 1e-9),
                    }
                )
                step_clock = now
                if stop_reason() in ("max_steps", "max_minutes"):
                    break
            finished_epoch = state.global_step - state.epoch_start_step >= epoch_steps
            emit({"type": "validating"})
            validation = streaming_cross_entropy(model, data.val)  # not counted as training time
            row = {
                "epoch": state.epoch
                + (1 if finished_epoch else (state.global_step - state.epoch_start_step) / epoch_steps),
                "step": state.global_step,
                "train_loss": metric.loss(),
                "val_loss": validation.loss,
                "val_perplexity": validation.perplexity,
                "val_bits_per_character": validation.bits_per_character,
                "learning_rate": float(schedule(state.global_step)),
                "epoch_seconds": state.elapsed_seconds - epoch_elapsed_before,
                "elapsed_seconds": state.elapsed_seconds,
                "characters_seen": state.characters_seen,
            }
            history.append(row)
            improved = state.best_val_loss is None or validation.loss < state.best_val_loss
            if improved:
                state.best_val_loss, state.best_epoch, state.epochs_since_best = validation.loss, row["epoch"], 0
            else:
                state.epochs_since_best += 1
            if finished_epoch:
                state.epoch += 1
                state.epoch_start_step = state.global_step
                state.train_nll_sum, state.train_count = 0.0, 0
            if improved and chief:
                checkpoint.save(
                    checkpoint.checkpoint_path(run_dir, "best"),
                    model,
                    {"epoch": row["epoch"], "step": state.global_step, "val_loss": validation.loss},
                )
            save_last()
            write_history(run_dir, history)
            emit(
                {"type": "epoch", "row": row, "improved": improved, "wall_seconds": time.perf_counter() - epoch_started}
            )
    except KeyboardInterrupt:
        state.global_step = int(optimizer.iterations.numpy())  # the step may have run before Python saw the signal
        save_last()
        if chief:
            write_history(run_dir, history)
        raise TrainingInterrupted(run_dir, state.to_json()) from None
    state.stop_reason = reason
    save_last()
    if chief:
        plot_curves(run_dir, history)
    emit({"type": "done", "reason": reason, "state": state})
    return TrainResult(run_dir, state, history)


def make_train_step(model, optimizer, config: TrainConfig, strategy):
    """A compiled step over one distributed global batch; returns the global mean loss.

    Each replica's loss is its summed cross-entropy over the global number of characters, so
    replica gradients add up to the gradient of the global mean. The sum is all-reduced here,
    before clipping, so every replica clips the same global norm; the optimizer all-reduces
    (sums) once more, hence the division by the number of replicas.
    """
    import tensorflow as tf

    variables = model.trainable_variables
    seed = tf.constant(config.random_seed, tf.int32)
    replicas = strategy.num_replicas_in_sync
    global_characters = float(config.batch_size * config.seq_length)

    def replica_step(inputs, targets):
        step = tf.cast(optimizer.iterations, tf.int32)
        context = tf.distribute.get_replica_context()
        replica_seed = tf.stack([seed, step * replicas + context.replica_id_in_sync_group])
        with tf.GradientTape() as tape:
            logits, _ = model(inputs, training=True, dropout_seed=replica_seed)
            per_character = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            loss = tf.reduce_sum(per_character) / global_characters
        gradients = tape.gradient(loss, variables)
        if replicas > 1:
            gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        if config.clip_norm:
            gradients, _ = tf.clip_by_global_norm(gradients, config.clip_norm)
        if replicas > 1:
            gradients = [gradient / replicas for gradient in gradients]
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def distributed_epoch(strategy, data, config: TrainConfig, epoch: int, skip: int):
    """The epoch's global batches, each replica fed its own slice of every global batch."""
    from shakegen.dataset import epoch_dataset

    replicas = strategy.num_replicas_in_sync

    def dataset_for(context):
        # One input pipeline per worker; it feeds its local replicas in turn, one slice each.
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local
        return epoch_dataset(
            data,
            config.seq_length,
            config.batch_size,
            config.random_seed,
            epoch,
            skip,
            slices=replicas,
            first_slice=first,
            slice_count=local,
        )

    return strategy.distribute_datasets_from_function(dataset_for)


def write_history(run_dir: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()})
    fileio.write_text(run_dir / "history.csv", buffer.getvalue())
    plot_curves(run_dir, history)


def read_history(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def plot_curves(run_dir: Path, history: list[dict]) -> None:
    """Write curves.png: train and validation loss against epoch."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, axis = plt.subplots(figsize=(6, 4), dpi=100)
    axis.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    axis.plot(epochs, [row["val_loss"] for row in history], marker="o", label="validation (streaming)")
    axis.set_xlabel("epoch")
    axis.set_ylabel("cross-entropy (nats per character)")
    axis.set_title(f"{Path(run_dir).name}: loss")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    with fileio.atomic_open(Path(run_dir) / "curves.png", "wb") as handle:
        handle.write(buffer.getvalue())
