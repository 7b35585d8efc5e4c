"""The training loop: Adam on cross-entropy, streaming validation, checkpoints that resume exactly.

Everything random is a pure function of the random seed: initial weights (Keras's global
seed), each epoch's window order (seed, epoch) and each step's dropout masks (seed, step).
The global step lives in the optimizer (``iterations``) and is saved with its moments, so
a resumed run replays the same batches, masks and learning rates as an uninterrupted one,
whether it stopped at an epoch's end, at a validation inside one, at a timed checkpoint,
or on Ctrl-C, SIGTERM or SIGHUP. Only the chief process writes the run folder, and only
through ``shakegen.runs`` (the folder's one owner).

Reading order: ``train`` opens the run (``_open_run``: what is refused is in opening.py),
then alternates a span of steps (``Trainer.train_span``) and a validation
(``Trainer.validate_and_save``) until a limit is reached, then finishes (``Trainer.finish``).
The ``Trainer`` runs the steps and the epochs; its parts each do one job: the model, its
optimizer and the compiled step (step.py); the budget and the learning rate (schedule.py);
the current epoch's batches (epochs.py; the replicas' input in distribute.py); validation
with its history and best weights (validation.py); when last.npz is written (saving.py);
the divergence guard (divergence.py); signals (interrupts.py).

A run's vocabulary is the prepared corpus's, except for a fine-tuned run (``init_from``,
see finetune.py), whose vocabulary is its base's with the corpus's new characters appended:
the prepared ids are then looked up in a table (``Trainer.id_table``) as batches are
gathered, so the corpus on disk is never copied.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shakegen.config import TrainConfig
from shakegen.data.vocab import translate
from shakegen.errors import TrainingInterrupted
from shakegen.runs import checkpoint, folder
from shakegen.runs.summaries import TrainingLog
from shakegen.training import events, finetune, interrupts, opening, schedule, step
from shakegen.training.dataset import steps_per_epoch
from shakegen.training.divergence import ExplosionGuard
from shakegen.training.epochs import EpochFeed
from shakegen.training.saving import CheckpointPolicy
from shakegen.training.validation import Validation, averaged_weights
from shakegen.use.evaluate import safe_exp


@dataclass
class TrainState:
    """Where a run stands; saved inside last.npz."""

    epoch: int = 0  # completed epochs
    epoch_start_step: int = 0  # global step at which the current epoch began
    global_step: int = 0
    best_val_loss: float | None = None
    best_epoch: float | None = None
    validations_since_best: int = 0
    last_validation_step: int = 0
    elapsed_seconds: float = 0.0
    characters_seen: int = 0
    train_nll_sum: float = 0.0  # summed training cross-entropy (nats) since the last validation
    train_count: int = 0  # characters in that sum
    stop_reason: str | None = None
    best_val_loss_windows: float | None = None  # the best weights on nanoGPT's protocol, at the end

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, values: dict) -> "TrainState":
        values = dict(values)
        if "epochs_since_best" in values:  # runs saved before validations could happen inside an epoch
            values.setdefault("validations_since_best", values.pop("epochs_since_best"))
            values.setdefault("last_validation_step", values.get("epoch_start_step", 0))
        state = cls()
        for key, value in values.items():
            if hasattr(state, key):
                setattr(state, key, value)
        return state

    def count_step(self, loss: float, characters: int, seconds: float) -> None:
        """Add one optimizer step's loss (a mean over ``characters``), characters and time to the sums."""
        self.train_nll_sum += loss * characters
        self.train_count += characters
        self.characters_seen += characters
        self.elapsed_seconds += seconds

    @property
    def train_loss(self) -> float:
        return self.train_nll_sum / self.train_count if self.train_count else math.nan


@dataclass
class TrainResult:
    run_dir: Path
    state: TrainState
    history: list[dict] = field(default_factory=list)


def train(
    config: TrainConfig | None,
    run_dir: str | Path,
    data_dir: str | Path = "data",
    *,
    resume: bool = False,
    changes: dict | None = None,
    overwrite: bool = False,
    strategy: str = "one",
    progress: events.Progress | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train a new run in ``run_dir`` with ``config``, or resume the run there.

    Args:
        config: hyperparameters of a new run (ignored when resuming).
        resume: continue the saved run with its saved hyperparameters, except ``changes``
            (only ``RESUMABLE_CHANGES`` may differ; anything else is refused by name).
        changes: the options the user gave explicitly (a fine-tuned run refuses the
            architecture ones that differ from its base's, and keeps the others).
        overwrite: start over in a ``run_dir`` that already holds a run.
        init_from: fine-tune: start a new run from this run folder's best weights (or
            ``"pretrained"``), its architecture and vocabulary extended by the corpus's new
            characters (see finetune.py). Not with ``resume``.
        strategy: ``one``, ``mirrored``, ``multi-worker`` or ``auto`` (see distribute.py). The
            global batch is split across replicas; only the chief writes the run folder.
        progress: called with an ``events`` instance as training goes.

    Raises:
        ConfigError: invalid hyperparameters, or a run folder that conflicts with the request.
        CheckpointError: the ``init_from`` run is missing or damaged.
        TrainingInterrupted: Ctrl-C, SIGTERM or SIGHUP; a checkpoint was saved first.
        TrainingDiverged: the loss became non-finite or exploded; the previous checkpoint is kept.
        CheckpointWriteError: a checkpoint could not be written; the previous one is intact.
    """
    trainer = _open_run(
        config,
        Path(run_dir),
        Path(data_dir),
        resume,
        changes or {},
        overwrite,
        strategy,
        progress or events.ignore,
        init_from,
    )
    with trainer.holding_run_folder(), interrupts.signals_interrupt() as received, contextlib.closing(trainer):
        trainer.signals = received
        trainer.begin()
        try:
            while (reason := trainer.stop_reason()) is None:
                trainer.train_span()
                trainer.validate_and_save()
        except KeyboardInterrupt:
            trainer.save_interrupted()
            raise TrainingInterrupted(trainer.run_dir, trainer.state.to_json(), received.name) from None
        return trainer.finish(reason)


def _open_run(config, run_dir, data_dir, resume, changes, overwrite, strategy, emit, init_from=None) -> "Trainer":
    """Refuse what conflicts with the run folder (``opening.open_run``), then build the model for the run."""
    opened = opening.open_run(config, run_dir, data_dir, resume, changes, overwrite, strategy, emit, init_from)
    return Trainer(
        opened.config, run_dir, opened.data, opened.strategy, opened.chief, emit, resume, opened.vocab, opened.base
    )


class Trainer:
    """One training process over one run folder: the model, its optimizer and the run's state.

    It takes the steps; its parts feed the epochs (``feed``), validate (``validation``), write
    last.npz (``saving``) and watch the loss (``guard``).
    """

    def __init__(self, config, run_dir, data, strategy, chief, emit, resumed, vocab=None, base=None):
        from shakegen.model.backend import keras

        self.config, self.run_dir, self.data = config, run_dir, data
        self.strategy, self.chief, self.emit, self.resumed = strategy, chief, emit, resumed
        self.vocab = data.vocab if vocab is None else vocab  # the run's: ids in the model's order
        self.id_table = data.vocab.translation_to(self.vocab)  # prepared id -> run id; None: the same
        self.base = None if resumed else base
        keras.utils.set_random_seed(config.random_seed)
        self.steps_per_epoch = steps_per_epoch(len(data.train), config.seq_length, config.batch_size, config.stateful)
        self.schedule = schedule.learning_rate_schedule(config, self.steps_per_epoch)
        self.model, self.optimizer, self.carried = step.build_training(len(self.vocab), config, strategy, self.schedule)
        self.train_step = step.make_train_step(self.model, self.optimizer, config, strategy, self.carried)
        self.val_ids = translate(
            data.val[: config.val_characters] if config.val_characters else data.val, self.id_table
        )
        self.guard = ExplosionGuard(len(self.vocab), run_dir, config)
        # The base's weights fitted to this model now, so a damaged base is refused before the folder is touched.
        self._base_weights = finetune.extended_weights(self.model, self.base, self.vocab) if self.base else None
        self.state = TrainState()
        self.validation = Validation(self.model, self.val_ids, self.guard, self._learning_rate, run_dir, chief)
        self.feed = EpochFeed(strategy, data.train, config, self.id_table, self.carried)
        self.saving = CheckpointPolicy(
            run_dir, self.model, self.optimizer, self.carried, chief, config.checkpoint_minutes, emit
        )
        self.log = TrainingLog(None)  # opened by begin, once the run folder is ready
        self.signals = interrupts.Received()  # train() puts the signal handlers' record here

    def holding_run_folder(self):
        """Only the chief writes the run folder, and only one process at a time."""
        return folder.lock_run(self.run_dir) if self.chief else contextlib.nullcontext()

    def begin(self) -> None:
        """Load the saved run, or start the new one's folder; then open the logs and announce."""
        if self.resumed:
            self.state = TrainState.from_json(self.saving.load_last())
            # Rows past the last committed validation: written by a process stopped before it committed.
            self.validation.history = checkpoint.read_history(self.run_dir, up_to_step=self.state.last_validation_step)
        else:
            counts = opening.run_counts(self.data, self.id_table, len(self.vocab))
            if self.chief:
                parent = self.base.record(self.run_dir) if self.base else None
                info = opening.data_info(self.data, counts)
                folder.start_run(self.run_dir, self.config, self.vocab, info, self.model.count_params(), parent)
            if self.base is not None:
                self._start_from_base(counts)
        if self.chief:
            resumed_at = self.state.global_step if self.resumed else None
            self.log = TrainingLog(checkpoint.scalar_log(self.run_dir, resumed_at=resumed_at))
        self._announce()

    def _start_from_base(self, counts: np.ndarray) -> None:
        """Assign the base's weights, set the new characters' output biases, and say what was added."""
        sample = translate(self.data.train[: finetune.BIAS_SAMPLE_CHARACTERS], self.id_table)
        finetune.start_from_base(self.model, self._base_weights, self.base, self.vocab, sample, counts)
        self._base_weights = None
        self.emit(finetune.announcement(self.base, self.vocab, self.data.vocab))

    def _announce(self) -> None:
        from shakegen.model.network import layer_summary

        self.emit(
            events.Started(
                layers=layer_summary(self.model),
                parameters=self.model.count_params(),
                steps_per_epoch=self.steps_per_epoch,
                config=self.config,
                resumed=self.resumed,
                state=self.state,
                run_dir=str(self.run_dir),
                replicas=self.strategy.num_replicas_in_sync,
                val_characters=len(self.val_ids),
                val_split_characters=len(self.data.val),
            )
        )
        steps, basis = schedule.schedule_steps(self.config, self.steps_per_epoch)
        self.emit(events.Schedule(steps, basis, self.config.lr_schedule, bool(self.config.max_minutes)))

    def close(self) -> None:
        self.log.close()

    def stop_reason(self) -> str | None:
        return schedule.stop_reason(self.config, self.state)

    def train_span(self) -> None:
        """Take optimizer steps until the epoch ends, a validation is due, or a limit is reached."""

        self.feed.open(self.state)
        config, state = self.config, self.state
        characters_per_step = config.batch_size * config.seq_length
        clock = time.perf_counter()
        while not (self.feed.finished(state) or schedule.validation_due(config, state) or self._limit_reached()):
            loss = float(self.train_step(self.feed.next_batch()))
            now = time.perf_counter()
            state.global_step = int(self.optimizer.iterations.numpy())
            self.guard.check_step(loss, state.global_step)
            self.saving.write_pending()  # this step's loss vouches for the weights it started from
            state.count_step(loss, characters_per_step, now - clock)
            self.log.step(state.global_step, loss, self._learning_rate, characters_per_step, now - clock)
            self.emit(
                events.Stepped(
                    epoch=state.epoch + 1,
                    step=state.global_step - state.epoch_start_step,
                    steps=self.feed.steps,
                    loss=loss,
                    perplexity=safe_exp(state.train_loss),
                    characters_per_second=characters_per_step / max(now - clock, 1e-9),
                )
            )
            self.saving.snapshot_if_due(state)
            clock = now

    def _limit_reached(self) -> bool:
        return self.stop_reason() in schedule.LIMITS_WITHIN_EPOCHS

    def validate_and_save(self) -> None:
        """Streaming validation, then history, best and last checkpoints (nothing if it diverged)."""
        started = time.perf_counter()
        self.saving.drop_pending()  # the checkpoint below supersedes it
        self.emit(events.Validating())
        epoch, finished = self.state.epoch, self.feed.finished(self.state)
        with averaged_weights(self.model, self.optimizer, self.config.ema_decay):  # validated, saved as best, averaged
            row, improved = self.validation.validate(self.state, self.feed.steps, finished, self.signals)
        if self.state.epoch != epoch:
            self.feed.end()
        self.saving.save_last(self.state)  # the raw weights, and the average among the optimizer's variables
        self.log.validation(row)
        self.emit(events.Validated(row, improved, time.perf_counter() - started))

    def _learning_rate(self, step: int) -> float:
        return float(self.schedule(step))

    def save_interrupted(self) -> None:
        """Save where training stands, unless the weights are no longer finite."""
        self.saving.save_interrupted(self.state, self.config.batch_size * self.config.seq_length)

    def finish(self, reason: str) -> TrainResult:
        self.state.stop_reason = reason
        self.state.best_val_loss_windows = self.validation.best_windowed_loss()
        self.validation.finish_curves()
        self.saving.save_last(self.state)
        self.emit(events.Finished(reason, self.state))
        return TrainResult(self.run_dir, self.state, self.validation.history)
