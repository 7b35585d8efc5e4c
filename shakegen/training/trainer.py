"""The training loop: Adam on cross-entropy, streaming validation, checkpoints that resume exactly.

Everything random is a pure function of the random seed: initial weights (Keras's global
seed), each epoch's window order (seed, epoch) and each step's dropout masks (seed, step).
The global step lives in the optimizer (``iterations``) and is saved with its moments, so
a resumed run replays the same batches, masks and learning rates as an uninterrupted one,
whether it stopped at an epoch's end, at a validation inside one, at a timed checkpoint,
or on Ctrl-C, SIGTERM or SIGHUP. Only the chief process writes the run folder, and only
through ``checkpoint`` (the folder's one owner).

Reading order: ``train`` opens the run (``_open_run``), then alternates a span of steps
(``Trainer.train_span``) and a validation (``Trainer.validate_and_save``) until a limit
is reached, then finishes (``Trainer.finish``).

A run's vocabulary is the prepared corpus's, except for a fine-tuned run (``init_from``,
see finetune.py), whose vocabulary is its base's with the corpus's new characters appended:
the prepared ids are then looked up in a table (``Trainer.id_table``) as batches are
gathered, so the corpus on disk is never copied.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shakegen.config import TrainConfig
from shakegen.data import prepare
from shakegen.data.vocab import Vocabulary, translate
from shakegen.errors import ConfigError, PreparedDataError, TrainingDiverged, TrainingInterrupted
from shakegen.runs import checkpoint
from shakegen.runs.summaries import TrainingLog
from shakegen.training import events, finetune

# Fields a resumed run may change: how long and how fast to train, not what is trained.
RESUMABLE_CHANGES = (
    "epochs",
    "max_steps",
    "max_minutes",
    "max_characters",
    "patience",
    "learning_rate",
    "final_learning_rate",
    "lr_schedule",
    "warmup_steps",
    "weight_decay",
    "clip_norm",
    "checkpoint_minutes",
    "eval_every",
    "val_characters",
    "rnn_kernel",
)
EXPLOSION_FACTOR = 3.0  # char-rnn's rule: the loss passed three times its first value
EXPLOSION_WINDOW = 8  # steps averaged before comparing with the threshold
MIN_VALIDATION_CHARACTERS = 2  # one character to predict, one to predict it from


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
    with trainer.holding_run_folder(), _signals_interrupt() as received, contextlib.closing(trainer):
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
    """Refuse what conflicts with the run folder, then build the model and load or start the run.

    Everything that can be refused is refused here, before the run folder is touched.
    """
    if init_from is not None and resume:
        raise ConfigError(
            "--init-from starts a new run from another run's weights and --resume continues the run in --run-dir; "
            "pass one of them."
        )
    base = finetune.open_base(init_from, run_dir) if init_from is not None else None
    if base is not None:
        config = finetune.fine_tuning_config(base, config, changes)
    has_run = checkpoint.is_run(run_dir)
    if resume and not has_run:
        raise ConfigError(f"Nothing to resume: {run_dir} holds no saved run. Train without --resume to start one.")
    if not resume:
        check_run_folder_free(run_dir, overwrite)
    if base is not None and checkpoint.holds_weights(run_dir) and not overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run. Pass --overwrite to replace it with the fine-tuned run, or choose another "
            "--run-dir (to continue that run instead, pass --resume without --init-from)."
        )
    # An --overwrite never reads the old run, so a damaged one can still be replaced.
    existing = checkpoint.read_run(run_dir) if has_run and (resume or not overwrite) else None
    config = existing.config.replace(**changes) if resume else config
    config.validate()
    from shakegen.model import cells
    from shakegen.training import distribute

    # First, before TensorFlow runs any op: it may split the CPU or join a cluster.
    strategy_object = distribute.make_strategy(strategy)
    config = config.resolved(gpu=cells.gpu_visible())  # precision "auto" made concrete, as saved
    chief = distribute.is_chief(strategy_object)
    if base is not None and not prepare.is_prepared(data_dir):  # not the embedded corpus behind the user's back
        raise PreparedDataError(
            f"No prepared corpus in {prepare.prepared_dir(data_dir)} to fine-tune on. Prepare your text first: "
            f"shakegen prepare --input YOUR_TEXT.txt --data-dir {data_dir}"
        )
    # Only the chief prepares data and judges the run folder; other workers follow it.
    data = ensure_prepared(data_dir, emit) if chief else prepare.load_prepared(data_dir)
    if existing is not None and chief:
        check_compatible(existing, config, data.vocab, resume)
        if not resume:
            raise ConfigError(
                f"{run_dir} already holds a run. Pass --resume to continue it, --overwrite to start it over, "
                "or choose another --run-dir."
            )
        if existing.data.get("sha256") != data.meta["sha256"]:
            emit(events.Notice(f"The prepared data differs from the data {run_dir} was trained on (SHA-256)."))
    elif chief and not resume and not overwrite and checkpoint.holds_weights(run_dir):
        raise ConfigError(
            f"{run_dir} already holds a run's weights (no {checkpoint.LAST_FILE} to resume from). Pass --overwrite to "
            "start it over, or choose another --run-dir."
        )
    config.validate(train_characters=len(data.train))
    check_validation_split(config, len(data.val))
    replicas = strategy_object.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(
            f"batch_size {config.batch_size} must be divisible by the {replicas} replicas of --strategy {strategy}."
        )
    if config.stateful and replicas > 1:
        raise ConfigError(
            f"--stateful carries one state per batch row and runs on one device; --strategy {strategy} gives {replicas} "
            "replicas. Use --strategy one, or train without --stateful."
        )
    if config.max_minutes and distribute.is_multi_worker(strategy_object):
        raise ConfigError(
            "--max-minutes is not supported with --strategy multi-worker (workers' clocks differ); use --epochs or --max-steps."
        )
    if resume:
        vocab = existing.vocab
    elif base is not None:
        vocab = finetune.run_vocabulary(base, data.vocab)
    else:
        vocab = data.vocab
    return Trainer(config, run_dir, data, strategy_object, chief, emit, resumed=resume, vocab=vocab, base=base)


def check_run_folder_free(run_dir: Path, overwrite: bool) -> None:
    """Refuse to start a run in a folder that holds anything shakegen did not write there.

    Free: a new or empty folder, or one shakegen recognises as its run folder (then starting
    over removes only its own files: ``checkpoint.clear_run``).
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder; choose another --run-dir.")
    if checkpoint.is_empty_folder(run_dir) or checkpoint.is_run_folder(run_dir):
        return
    config = [checkpoint.CONFIG_FILE + " (not a shakegen run's)"] if (run_dir / checkpoint.CONFIG_FILE).exists() else []
    held = config + checkpoint.foreign_entries(run_dir) or sorted(entry.name for entry in run_dir.iterdir())
    shown = ", ".join(held[:6]) + (f" and {len(held) - 6} more" if len(held) > 6 else "")
    only = " (--overwrite replaces only a shakegen run)" if overwrite else ""
    raise ConfigError(
        f"{run_dir} is not a shakegen run folder: it holds {shown}, so shakegen will not train there{only}. "
        f"Choose another --run-dir: a new or empty folder, such as {run_dir / 'run'}."
    )


def check_validation_split(config: TrainConfig, val_split_characters: int) -> None:
    """Refuse a validation text too short to score, before any training (validation predicts each
    character from those before it, so it needs at least ``MIN_VALIDATION_CHARACTERS``)."""
    scored = min(val_split_characters, config.val_characters or val_split_characters)
    if scored >= MIN_VALIDATION_CHARACTERS:
        return
    if config.val_characters is not None and config.val_characters < val_split_characters:
        raise ConfigError(
            f"--val-characters {config.val_characters} leaves nothing to validate on: validation needs at least "
            f"{MIN_VALIDATION_CHARACTERS} characters. Pass --val-characters {MIN_VALIDATION_CHARACTERS} or more."
        )
    raise ConfigError(
        f"The prepared validation split holds {val_split_characters} character(s); validation needs at least "
        f"{MIN_VALIDATION_CHARACTERS}. Prepare a longer corpus, or a larger --val-fraction."
    )


def ensure_prepared(data_dir: Path, emit: events.Progress = events.ignore) -> prepare.PreparedData:
    """Load the prepared corpus, preparing the embedded one first if nothing is prepared."""
    if not prepare.is_prepared(data_dir):
        source, which = prepare.default_input()
        emit(events.Preparing(which, str(data_dir)))
        prepare.prepare_corpus(source, data_dir)
    return prepare.load_prepared(data_dir)


def check_compatible(existing: checkpoint.RunInfo, config: TrainConfig, vocab: Vocabulary, resume: bool = True) -> None:
    """Raise ConfigError naming what differs between a saved run and a requested one.

    The run's vocabulary must hold every character of the prepared data's ``vocab``: the
    same one, or (a fine-tuned run) one that extends it.
    """
    if not existing.vocab.covers(vocab):
        lacking = [char for char in vocab.chars if char not in existing.vocab.char_to_id]
        shown = ", ".join(repr(char) for char in lacking[:10]) + (" …" if len(lacking) > 10 else "")
        raise ConfigError(
            f"The run in {existing.run_dir} was trained on a vocabulary of {len(existing.vocab)} characters, "
            f"but the prepared data has {len(lacking)} it lacks ({shown}). Prepare the same corpus, train into a "
            "new --run-dir"
            + ("" if resume else " (or start this one over with --overwrite)")
            + ", or fine-tune the run on this corpus with --init-from."
        )
    mismatched = [
        f"{name} {getattr(existing.config, name)!r} (saved) vs {getattr(config, name)!r} (requested)"
        for name in existing.config.to_json()
        if name not in RESUMABLE_CHANGES and getattr(existing.config, name) != getattr(config, name)
    ]
    if mismatched:
        fix = (
            "Resume without changing these, pass --overwrite to start it over with yours, or train into a new --run-dir."
            if resume
            else "Pass --resume (without these options) to continue it, --overwrite to start it over with yours, "
            "or train into a new --run-dir."
        )
        raise ConfigError(f"The run in {existing.run_dir} differs: {'; '.join(mismatched)}. {fix}")


def _data_info(data: prepare.PreparedData, counts: np.ndarray) -> dict:
    """What config.json records about the data (eval's unigram baseline uses the counts)."""
    keys = ("source", "sha256", "characters", "train_characters", "val_characters", "options")
    info = {key: data.meta[key] for key in keys}
    info["source"] = Path(str(info["source"])).name  # the file's name: its folder is this machine's business
    info["train_counts"] = counts.tolist()
    return info


def _run_counts(data: prepare.PreparedData, id_table: np.ndarray | None, vocab_size: int) -> np.ndarray:
    """Character counts of the training split indexed by the run's ids (0 for characters it lacks)."""
    counts = np.asarray(data.meta["train_counts"], np.int64)  # stored by prepare (counted once for older folders)
    if id_table is None:
        return counts
    by_run_id = np.zeros(vocab_size, np.int64)
    by_run_id[id_table] = counts
    return by_run_id


def schedule_steps(config: TrainConfig, steps_per_epoch: int) -> tuple[int, str]:
    """How many optimizer steps the learning-rate schedule spans, and which budget set it.

    The budget the run will stop at: the fewest steps among the planned epochs, ``max_steps``
    and ``max_characters`` (in steps of ``batch_size × seq_length``). ``max_minutes`` cannot
    be counted in steps, so alone it leaves the schedule to the epochs (``"epochs"``).
    """
    budgets = {"epochs": config.epochs * steps_per_epoch}
    if config.max_steps:
        budgets["max_steps"] = config.max_steps
    if config.max_characters:
        budgets["max_characters"] = math.ceil(config.max_characters / (config.batch_size * config.seq_length))
    basis = min(budgets, key=lambda name: (budgets[name], name != "epochs"))
    return max(1, budgets[basis]), basis


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """The learning rate at each optimizer step: Keras's ``CosineDecay``.

    Linear warm-up from 0 to learning_rate over warmup_steps (Keras's ``warmup_target``), then
    a cosine to final_learning_rate (``alpha``, as a fraction of the peak) at the end of the
    budget (``schedule_steps``), or constant (``alpha`` 1). Past the end it stays at the final rate.
    """
    from shakegen.model.backend import keras

    total, _ = schedule_steps(config, steps_per_epoch)
    peak, warmup = config.learning_rate, config.warmup_steps
    alpha = 1.0 if config.lr_schedule == "constant" else config.final_learning_rate / peak
    decay_steps = max(1, total - warmup)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, alpha=alpha, warmup_target=peak, warmup_steps=warmup
    )


class ExplosionGuard:
    """Stops a run whose loss is non-finite, or has clearly exploded while staying finite.

    Exploded: the mean training loss over the last ``EXPLOSION_WINDOW`` steps is above both
    ``EXPLOSION_FACTOR`` times the first loss of this process (the run's start or its resume)
    and ln(vocabulary), the loss of a uniform guess. A validation loss above the same
    threshold counts too. Either way nothing from the bad span is saved.
    """

    def __init__(self, vocab_size: int, run_dir: Path, config: TrainConfig):
        self.uniform_loss = math.log(vocab_size)
        self.run_dir, self.config = run_dir, config
        self.first_loss: float | None = None
        self.recent: deque[float] = deque(maxlen=EXPLOSION_WINDOW)

    @property
    def threshold(self) -> float:
        first = self.uniform_loss if self.first_loss is None else self.first_loss
        return max(EXPLOSION_FACTOR * first, self.uniform_loss)

    def check_step(self, loss: float, step: int) -> None:
        if not math.isfinite(loss):
            self._stop(f"The training loss became {loss} at step {step}")
        if self.first_loss is None:
            self.first_loss = loss
        self.recent.append(loss)
        mean = sum(self.recent) / len(self.recent)
        if mean > self.threshold:
            self._stop(
                f"The training loss exploded: {mean:.4g} (mean of the last {len(self.recent)} steps) at step {step}, "
                f"above {self.threshold:.4g} ({EXPLOSION_FACTOR:g} × the first loss {self.first_loss:.4g} and above "
                f"ln {math.exp(self.uniform_loss):.0f}, a uniform guess)"
            )

    def check_validation(self, loss: float, step: int) -> None:
        if not math.isfinite(loss) or loss > self.threshold:
            self._stop(f"The validation loss became {loss:.4g} at step {step} (limit {self.threshold:.4g})")

    def _stop(self, what: str):
        clip = f"--clip-norm (now {self.config.clip_norm:g})" if self.config.clip_norm else "--clip-norm 1"
        raise TrainingDiverged(
            f"{what}; stopped. The last good checkpoint in {self.run_dir} is kept. "
            f"Lower --learning-rate (now {self.config.learning_rate:g}) or set {clip}, then --resume."
        )


class Trainer:
    """One training process over one run folder: the model, its optimizer and the run's state."""

    def __init__(self, config, run_dir, data, strategy, chief, emit, resumed, vocab=None, base=None):
        from shakegen.model.backend import keras
        from shakegen.model.network import build_model
        from shakegen.training.dataset import steps_per_epoch

        self.config, self.run_dir, self.data = config, run_dir, data
        self.strategy, self.chief, self.emit, self.resumed = strategy, chief, emit, resumed
        self.vocab = data.vocab if vocab is None else vocab  # the run's: ids in the model's order
        self.id_table = data.vocab.translation_to(self.vocab)  # prepared id -> run id; None: the same
        self.base = None if resumed else base
        keras.utils.set_random_seed(config.random_seed)
        self.steps_per_epoch = steps_per_epoch(len(data.train), config.seq_length, config.batch_size, config.stateful)
        self.schedule = learning_rate_schedule(config, self.steps_per_epoch)
        with strategy.scope():
            self.model = build_model(len(self.vocab), config)
            average = {"use_ema": True, "ema_momentum": config.ema_decay} if config.ema_decay else {}
            decay = {"weight_decay": config.weight_decay} if config.weight_decay else {}
            self.optimizer = keras.optimizers.Adam(learning_rate=self.schedule, **average, **decay)
            if config.weight_decay:  # AdamW's practice: matrices and embeddings decay, biases do not
                self.optimizer.exclude_from_weight_decay(var_names=["bias"])
            self.optimizer.build(self.model.trainable_variables)
            self.carried = _carried_states(self.model, config)
        self.train_step = make_train_step(self.model, self.optimizer, config, strategy, self.carried)
        self.val_ids = translate(
            data.val[: config.val_characters] if config.val_characters else data.val, self.id_table
        )
        self.guard = ExplosionGuard(len(self.vocab), run_dir, config)
        # The base's weights fitted to this model now, so a damaged base is refused before the folder is touched.
        self._base_weights = finetune.extended_weights(self.model, self.base, self.vocab) if self.base else None
        self.state = TrainState()
        self.history: list[dict] = []
        self._batches = None  # iterator over the rest of the current epoch
        self._epoch_steps = 0
        self._pending = None  # a timed checkpoint waiting for the next step to vouch for it
        self._last_save = time.monotonic()
        self.log = TrainingLog(None)  # opened by begin, once the run folder is ready
        self.signals = _Received()  # train() puts the signal handlers' record here

    def holding_run_folder(self):
        """Only the chief writes the run folder, and only one process at a time."""
        return checkpoint.lock_run(self.run_dir) if self.chief else contextlib.nullcontext()

    def begin(self) -> None:
        """Load the saved run, or start the new one's folder; then open the logs and announce."""
        from shakegen.model.network import layer_summary

        if self.resumed:
            last = checkpoint.checkpoint_path(self.run_dir, "last")
            saved = checkpoint.load(last, self.model, self.optimizer)
            self.state = TrainState.from_json(saved)
            for variable, value in zip(self.carried, checkpoint.read_carried(last), strict=False):
                variable.assign(value)
            # Rows past the last committed validation: written by a process stopped before it committed.
            self.history = checkpoint.read_history(self.run_dir, up_to_step=self.state.last_validation_step)
        else:
            counts = _run_counts(self.data, self.id_table, len(self.vocab))
            if self.chief:
                parent = self.base.record(self.run_dir) if self.base else None
                info = _data_info(self.data, counts)
                checkpoint.start_run(self.run_dir, self.config, self.vocab, info, self.model.count_params(), parent)
            if self.base is not None:
                self._start_from_base(counts)
        if self.chief:
            resumed_at = self.state.global_step if self.resumed else None
            self.log = TrainingLog(checkpoint.scalar_log(self.run_dir, resumed_at=resumed_at))

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
        steps, basis = schedule_steps(self.config, self.steps_per_epoch)
        self.emit(events.Schedule(steps, basis, self.config.lr_schedule, bool(self.config.max_minutes)))

    def _start_from_base(self, counts: np.ndarray) -> None:
        """Assign the base's weights, set the new characters' output biases, and say what was added."""
        sample = translate(self.data.train[: finetune.BIAS_SAMPLE_CHARACTERS], self.id_table)
        finetune.start_from_base(self.model, self._base_weights, self.base, self.vocab, sample, counts)
        self._base_weights = None
        added = self.vocab.chars[len(self.base.info.vocab) :]
        self.emit(
            events.FineTuning(
                base=str(self.base.info.run_dir),
                base_val_loss=self.base.val_loss,
                base_characters=len(self.base.info.vocab),
                added=tuple(added),
                unused=sum(1 for char in self.base.info.vocab.chars if char not in self.data.vocab.char_to_id),
            )
        )

    def close(self) -> None:
        self.log.close()

    def stop_reason(self) -> str | None:
        config, state = self.config, self.state
        if state.epoch >= config.epochs:
            return "epochs"
        if config.max_steps and state.global_step >= config.max_steps:
            return "max_steps"
        if config.max_minutes and state.elapsed_seconds >= config.max_minutes * 60:
            return "max_minutes"
        if config.max_characters and state.characters_seen >= config.max_characters:
            return "max_characters"
        if config.patience and state.validations_since_best >= config.patience:
            return "patience"
        return None

    def train_span(self) -> None:
        """Take optimizer steps until the epoch ends, a validation is due, or a limit is reached."""
        from shakegen.use.evaluate import safe_exp

        self._open_epoch()
        characters_per_step = self.config.batch_size * self.config.seq_length
        clock = time.perf_counter()
        while not (self._epoch_finished() or self._validation_due() or self._limit_reached()):
            loss = float(self.train_step(next(self._batches)))
            now = time.perf_counter()
            state = self.state
            state.global_step = int(self.optimizer.iterations.numpy())
            self.guard.check_step(loss, state.global_step)
            self._write_pending()  # this step's loss vouches for the weights it started from
            state.train_nll_sum += loss * characters_per_step
            state.train_count += characters_per_step
            state.characters_seen += characters_per_step
            state.elapsed_seconds += now - clock
            self.log.step(state.global_step, loss, self._learning_rate, characters_per_step, now - clock)
            self.emit(
                events.Stepped(
                    epoch=state.epoch + 1,
                    step=state.global_step - state.epoch_start_step,
                    steps=self._epoch_steps,
                    loss=loss,
                    perplexity=safe_exp(state.train_loss),
                    characters_per_second=characters_per_step / max(now - clock, 1e-9),
                )
            )
            self._snapshot_if_due()
            clock = now

    def _open_epoch(self) -> None:
        if self._batches is not None:
            return
        from shakegen.training.dataset import epoch_batches

        skip = self.state.global_step - self.state.epoch_start_step
        config = self.config
        if skip == 0:
            for variable in self.carried:  # each epoch's streams start from nothing
                variable.assign(np.zeros(variable.shape, np.float32))
        self._epoch_steps = epoch_batches(
            len(self.data.train),
            config.seq_length,
            config.batch_size,
            config.random_seed,
            self.state.epoch,
            config.stateful,
        )
        self._batches = iter(
            distributed_epoch(self.strategy, self.data.train, config, self.state.epoch, skip, self.id_table)
        )

    def _epoch_finished(self) -> bool:
        return self.state.global_step - self.state.epoch_start_step >= self._epoch_steps

    def _validation_due(self) -> bool:
        every = self.config.eval_every
        return bool(every) and self.state.global_step - self.state.last_validation_step >= every

    def _limit_reached(self) -> bool:
        return self.stop_reason() in ("max_steps", "max_minutes", "max_characters")

    def _snapshot_if_due(self) -> None:
        """Keep a timed checkpoint in memory; it is written once the next step's loss passes the guard."""
        minutes = self.config.checkpoint_minutes
        if self.chief and minutes and time.monotonic() - self._last_save >= minutes * 60:
            self._pending = (
                self.state.global_step,
                checkpoint.snapshot(self.model, self.state.to_json(), self.optimizer, self._carried_arrays()),
            )
            self._last_save = time.monotonic()

    def _write_pending(self) -> None:
        if self._pending is not None:
            (step, arrays), self._pending = self._pending, None
            path = checkpoint.checkpoint_path(self.run_dir, "last")
            checkpoint.write_snapshot(path, arrays)
            self.emit(events.Checkpointed(step, str(path)))

    def validate_and_save(self) -> None:
        """Streaming validation, then history, best and last checkpoints (nothing if it diverged)."""
        started = time.perf_counter()
        self._pending = None  # the checkpoint below supersedes it
        self.emit(events.Validating())
        with self.averaged_weights():  # validated, and saved as best, averaged (--ema-decay)
            row, improved = self._validate_and_record()
        self.save_last()  # the raw weights, and the average among the optimizer's variables
        self.log.validation(row)
        self.emit(events.Validated(row, improved, time.perf_counter() - started))

    @contextlib.contextmanager
    def averaged_weights(self):
        """The model holds the moving average of its weights inside (with --ema-decay), its own after."""
        if not self.config.ema_decay:
            yield
            return
        variables = self.model.trainable_variables
        raw = [variable.numpy() for variable in variables]
        self.optimizer.finalize_variable_values(variables)  # Keras: assign the averages
        try:
            yield
        finally:
            for variable, value in zip(variables, raw, strict=True):
                variable.assign(value)

    def _validate_and_record(self) -> tuple[dict, bool]:
        from shakegen.use.evaluate import streaming_cross_entropy

        state = self.state
        validation = streaming_cross_entropy(self.model, self.val_ids)  # not counted as training time
        self.guard.check_validation(validation.loss, state.global_step)
        finished_epoch = self._epoch_finished()
        into_epoch = (state.global_step - state.epoch_start_step) / max(self._epoch_steps, 1)
        row = {
            "epoch": state.epoch + (1 if finished_epoch else into_epoch),
            "step": state.global_step,
            "train_loss": state.train_loss,
            "val_loss": validation.loss,
            "val_perplexity": validation.perplexity,
            "val_bits_per_character": validation.bits_per_character,
            "learning_rate": self._learning_rate(state.global_step),
            "epoch_seconds": state.elapsed_seconds - (self.history[-1]["elapsed_seconds"] if self.history else 0.0),
            "elapsed_seconds": state.elapsed_seconds,
            "characters_seen": state.characters_seen,
        }
        improved = state.best_val_loss is None or validation.loss < state.best_val_loss
        # Persist, then commit: an interrupt before the commit leaves the state as it was, so
        # last.npz never records a best that best.npz does not hold, and the validation is
        # simply done again on resume (rows past the last committed one are dropped then).
        if self.chief:
            checkpoint.write_history(self.run_dir, [*self.history, row])  # before last.npz: see checkpoint.py
        with self.signals.deferred():  # best.npz and the state it matches change together
            if self.chief and improved:
                best = {"epoch": row["epoch"], "step": state.global_step, "val_loss": validation.loss}
                checkpoint.save(checkpoint.checkpoint_path(self.run_dir, "best"), self.model, best)
            self.history.append(row)
            if improved:
                state.best_val_loss, state.best_epoch, state.validations_since_best = validation.loss, row["epoch"], 0
            else:
                state.validations_since_best += 1
            state.last_validation_step = state.global_step
            state.train_nll_sum, state.train_count = 0.0, 0
            if finished_epoch:
                state.epoch += 1
                state.epoch_start_step = state.global_step
                self._batches = None
        return row, improved

    def _best_windowed_loss(self) -> float | None:
        """The best weights scored as nanoGPT scores (windows of 256 from a zero state), for the summary.

        The streaming figure (history.csv) picks the best checkpoint; this one is for comparing
        with other tools, which measure that way.
        """
        from shakegen.use import evaluate

        if not self.chief or not checkpoint.checkpoint_path(self.run_dir, "best").is_file():
            return None
        model, _, _ = checkpoint.load_model(self.run_dir, "best", precision="float32")
        return evaluate.windowed_cross_entropy(model, self.val_ids, window=evaluate.EVAL_WINDOW).loss

    def _carried_arrays(self) -> list:
        return [variable.numpy() for variable in self.carried]

    def _learning_rate(self, step: int) -> float:
        return float(self.schedule(step))

    def save_last(self) -> None:
        if self.chief:
            path = checkpoint.checkpoint_path(self.run_dir, "last")
            checkpoint.save(path, self.model, self.state.to_json(), self.optimizer, self._carried_arrays())
            self._last_save = time.monotonic()

    def save_interrupted(self) -> None:
        """Save where training stands, unless the weights are no longer finite."""
        steps = int(self.optimizer.iterations.numpy())
        if steps != self.state.global_step:  # the step ran before Python saw the signal
            self.state.characters_seen += (
                (steps - self.state.global_step) * self.config.batch_size * self.config.seq_length
            )
            self.state.global_step = steps
        if all(np.isfinite(variable.numpy()).all() for variable in self.model.trainable_variables):
            self.save_last()

    def finish(self, reason: str) -> TrainResult:
        self.state.stop_reason = reason
        self.state.best_val_loss_windows = self._best_windowed_loss()
        self.save_last()
        self.emit(events.Finished(reason, self.state))
        return TrainResult(self.run_dir, self.state, self.history)


@dataclass
class _Received:
    name: str = "Ctrl-C"
    signalled: bool = False
    deferring: bool = False  # inside ``deferred``: a signal waits for its end
    pending: bool = False

    @contextlib.contextmanager
    def deferred(self):
        """A block no signal interrupts: one that arrives inside stops training at its end."""
        if self.deferring:
            yield
            return
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_interrupt():
    """Within the block, Ctrl-C, SIGTERM and SIGHUP stop training (the checkpoint is saved).

    Kubernetes, Slurm and spot instances send SIGTERM before killing; a closed terminal
    sends SIGHUP. Yields which signal arrived, for the message, and ``deferred`` blocks.
    """
    received = _Received()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(number, frame):
        if received.signalled:  # already stopping: let the checkpoint be written
            return
        received.name = "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name
        received.signalled = True
        if received.deferring:
            received.pending = True
            return
        raise KeyboardInterrupt

    numbers = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {number: signal.signal(number, handler) for number in numbers}
    try:
        yield received
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def _carried_states(model, config: TrainConfig) -> list:
    """Stateful runs: one (batch, units) float32 variable per layer, the state carried between batches."""
    from shakegen.model.backend import tf

    if not config.stateful:
        return []
    return [
        tf.Variable(tf.zeros((config.batch_size, layer.units)), trainable=False, name=f"carried_{index}")
        for index, layer in enumerate(model.rnn_layers)
    ]


def make_train_step(model, optimizer, config: TrainConfig, strategy, carried: list | None = None):
    """A compiled step over one distributed global batch; returns the global mean loss.

    Each replica's loss is its summed cross-entropy over the global number of characters, so
    replica gradients add up to the gradient of the global mean. The sum is all-reduced here,
    before clipping, so every replica clips the same global norm; the optimizer all-reduces
    (sums) once more, hence the division by the number of replicas.
    """
    from shakegen.model.backend import tf

    variables = model.trainable_variables
    carried = carried or []
    layers = model.rnn_layers[: len(carried)]
    # The seed's 32 bits as int32: seeds below 2**31 keep their value, those above get their own masks.
    seed = tf.constant(np.array(config.random_seed, np.uint32).view(np.int32), tf.int32)
    replicas = strategy.num_replicas_in_sync
    global_characters = float(config.batch_size * config.seq_length)

    def replica_step(inputs, targets):
        step = tf.cast(optimizer.iterations, tf.int32)
        context = tf.distribute.get_replica_context()
        replica_seed = tf.stack([seed, step * replicas + context.replica_id_in_sync_group])
        # Stateful runs start from the state the previous batch ended in; others from zeros.
        initial = [tf.cast(carry, layer.compute_dtype) for carry, layer in zip(carried, layers, strict=True)] or None
        with tf.GradientTape() as tape:
            logits, final_states = model(inputs, states=initial, training=True, dropout_seed=replica_seed)
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
        for carry, state in zip(carried, final_states if carried else [], strict=True):
            carry.assign(tf.cast(tf.stop_gradient(state), tf.float32))  # truncated: no gradient flows back
        return loss

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def distributed_epoch(strategy, data, config: TrainConfig, epoch: int, skip: int, id_table=None):
    """The epoch's global batches, each replica fed its own slice of every global batch.

    ``id_table``: the prepared ids' run ids (a fine-tuned run's), looked up batch by batch.
    """
    from shakegen.training.dataset import epoch_dataset

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
            stateful=config.stateful,
            id_table=id_table,
        )

    return strategy.distribute_datasets_from_function(dataset_for)
