"""Opening a run: everything refused before the run folder is touched, and what a new run records.

``open_run`` settles what a process trains (the configuration, resumed or fine-tuned or new;
the prepared data; the distribution strategy; the run's vocabulary) and refuses, by name,
whatever conflicts with the run folder, the data or the strategy. A new run's config.json then
records ``data_info`` about its corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shakegen.config import TrainConfig
from shakegen.data import prepare
from shakegen.data.vocab import Vocabulary
from shakegen.errors import ConfigError, PreparedDataError
from shakegen.runs import checkpoint, folder
from shakegen.training import distribute, events, finetune

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
MIN_VALIDATION_CHARACTERS = 2  # one character to predict, one to predict it from


@dataclass
class OpenedRun:
    """What one training process trains, once nothing conflicts: ``open_run``'s answer."""

    config: TrainConfig  # resolved: precision "auto" made concrete, as saved
    data: prepare.PreparedData
    strategy: object  # the tf.distribute strategy
    chief: bool  # whether this process writes the run folder
    vocab: Vocabulary  # the run's: ids in the model's order
    base: finetune.Base | None  # the run fine-tuning starts from


def open_run(config, run_dir, data_dir, resume, changes, overwrite, strategy, emit, init_from=None) -> OpenedRun:
    """Refuse what conflicts with the run folder, then settle the configuration, data and strategy.

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
    has_run = folder.is_run(run_dir)
    if resume and not has_run:
        raise ConfigError(f"Nothing to resume: {run_dir} holds no saved run. Train without --resume to start one.")
    if not resume:
        check_run_folder_free(run_dir, overwrite)
    if base is not None and folder.holds_weights(run_dir) and not overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run. Pass --overwrite to replace it with the fine-tuned run, or choose another "
            "--run-dir (to continue that run instead, pass --resume without --init-from)."
        )
    # An --overwrite never reads the old run, so a damaged one can still be replaced.
    existing = checkpoint.read_run(run_dir) if has_run and (resume or not overwrite) else None
    config = existing.config.replace(**changes) if resume else config
    config.validate()
    from shakegen.model import cells

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
    if chief:
        _check_existing(existing, run_dir, config, data, resume, overwrite, emit)
    config.validate(train_characters=len(data.train))
    check_validation_split(config, len(data.val))
    _check_strategy(config, strategy_object, strategy)
    if resume:
        vocab = existing.vocab
    elif base is not None:
        vocab = finetune.run_vocabulary(base, data.vocab)
    else:
        vocab = data.vocab
    return OpenedRun(config, data, strategy_object, chief, vocab, base)


def _check_existing(existing, run_dir, config, data, resume, overwrite, emit) -> None:
    """The chief's judgement of the run already in ``run_dir`` (``existing``, or None) against the request."""
    if existing is not None:
        check_compatible(existing, config, data.vocab, resume)
        if not resume:
            raise ConfigError(
                f"{run_dir} already holds a run. Pass --resume to continue it, --overwrite to start it over, "
                "or choose another --run-dir."
            )
        if existing.data.get("sha256") != data.meta["sha256"]:
            emit(events.Notice(f"The prepared data differs from the data {run_dir} was trained on (SHA-256)."))
    elif not resume and not overwrite and folder.holds_weights(run_dir):
        raise ConfigError(
            f"{run_dir} already holds a run's weights (no {checkpoint.LAST_FILE} to resume from). Pass --overwrite to "
            "start it over, or choose another --run-dir."
        )


def _check_strategy(config: TrainConfig, strategy_object, strategy: str) -> None:
    """Refuse what the distribution strategy cannot train (``strategy``: its name, as the user gave it)."""

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


def check_run_folder_free(run_dir: Path, overwrite: bool) -> None:
    """Refuse to start a run in a folder that holds anything shakegen did not write there.

    Free: a new or empty folder, or one shakegen recognises as its run folder (then starting
    over removes only its own files: ``folder.clear_run``).
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder; choose another --run-dir.")
    if folder.is_empty_folder(run_dir) or folder.is_run_folder(run_dir):
        return
    config = [checkpoint.CONFIG_FILE + " (not a shakegen run's)"] if (run_dir / checkpoint.CONFIG_FILE).exists() else []
    held = config + folder.foreign_entries(run_dir) or sorted(entry.name for entry in run_dir.iterdir())
    shown = ", ".join(held[:6]) + (f" and {len(held) - 6} more" if len(held) > 6 else "")
    only = " (--overwrite replaces only a shakegen run)" if overwrite else ""
    raise ConfigError(
        f"{run_dir} is not a shakegen run folder: it holds {shown}, so shakegen will not train there{only}. "
        f"Choose another --run-dir: a new or empty folder, such as {_unused_name(run_dir / 'run')}."
    )


def _unused_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, ...: the first that does not exist yet."""
    number = 1
    candidate = path
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


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


def data_info(data: prepare.PreparedData, counts: np.ndarray) -> dict:
    """What config.json records about the data (eval's unigram baseline uses the counts)."""
    keys = ("source", "sha256", "characters", "train_characters", "val_characters", "options")
    info = {key: data.meta[key] for key in keys}
    info["source"] = Path(str(info["source"])).name  # the file's name: its folder is this machine's business
    info["train_counts"] = counts.tolist()
    return info


def run_counts(data: prepare.PreparedData, id_table: np.ndarray | None, vocab_size: int) -> np.ndarray:
    """Character counts of the training split indexed by the run's ids (0 for characters it lacks)."""
    counts = np.asarray(data.meta["train_counts"], np.int64)  # stored by prepare (counted once for older folders)
    if id_table is None:
        return counts
    by_run_id = np.zeros(vocab_size, np.int64)
    by_run_id[id_table] = counts
    return by_run_id
