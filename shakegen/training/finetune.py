"""Fine-tuning: a new run that starts from another run's best weights, its vocabulary extended.

A character keeps its id for life. The new run's vocabulary is its base's, followed by the
characters of the new corpus that the base lacks (sorted among themselves); the base's
characters that the new corpus lacks stay. Each new character gets an embedding row and an
output unit, initialised so that it is neither ignored nor dominant:

- its embedding row is the mean of the base's rows (an "average character" as input);
- its output kernel column is zero, so before the first step its logit is the same in
  every context;
- its output bias makes the model give it, on average over a sample of the new corpus, its
  frequency there (add-one smoothed), on the base's own logit scale:
  ``b_c = log p_c - log(1 - P_new) - log mean_x exp(-logsumexp(base logits at x))``,
  where ``P_new`` is the new characters' total frequency. (With zero biases a new character's
  probability would be 1 / Z(x), which depends on how peaked the base happens to be.)

The base's weights are copied as they are, so before any step the logits of the base's
characters are exactly the base model's. Only the weights come from the base: the optimizer
starts fresh, and the run's architecture (``TrainConfig.architecture``) is the base's.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shakegen import fileio
from shakegen.config import TrainConfig
from shakegen.data.vocab import Vocabulary
from shakegen.errors import CheckpointError, ConfigError
from shakegen.runs import checkpoint, names
from shakegen.training import events

# Defaults of a fine-tuned run for what the user does not set (measured on the King James
# Bible from a quick-preset Tiny Shakespeare base: benchmarks/finetune_vs_scratch.py). The
# pretrained weights want smaller steps than a fresh start; early stopping guards a small
# corpus against overfitting. No weight decay (a preset's AdamW, e.g. quick's, would pull the
# base's weights towards zero; the figures were measured without it) unless asked for.
FINE_TUNING_DEFAULTS = {"learning_rate": 1e-3, "patience": 3, "weight_decay": 0.0}
FINAL_LEARNING_RATE_RATIO = 0.1  # the cosine schedule ends at learning_rate × this, unless set
BIAS_SAMPLE_CHARACTERS = 4096  # characters of the new corpus the output biases are fitted on
BIAS_SAMPLE_WINDOW = 256


@dataclass(frozen=True)
class Base:
    """The run a fine-tuned run starts from, read once: its config, vocabulary and best weights."""

    name: str  # as the user gave it: a path, or "pretrained"
    info: checkpoint.RunInfo
    weights: dict[str, np.ndarray]  # best.npz's, keyed by variable path
    sha256: str  # of best.npz
    state: dict  # best.npz's: epoch, step, val_loss

    @property
    def val_loss(self) -> float | None:
        return self.state.get("val_loss")

    def record(self, run_dir: str | Path) -> dict:
        """What the fine-tuned run ``run_dir``'s config.json says about its parent.

        ``run`` and ``path`` name it without this machine's folders: ``pretrained``, or its
        folder relative to ``run_dir`` (``../quick``), so the record means the same after the
        runs are moved together, and leaks no absolute path into what the run carries.
        """
        relative = relative_folder(self.info.run_dir, run_dir)
        return {
            "run": names.PRETRAINED if self.name == names.PRETRAINED else relative,
            "path": None if self.name == names.PRETRAINED else relative,
            "sha256": self.sha256,
            "val_loss": self.val_loss,
            "step": self.state.get("step"),
            "vocab_size": len(self.info.vocab),
        }


def relative_folder(folder: str | Path, run_dir: str | Path) -> str:
    """``folder`` relative to ``run_dir`` (POSIX separators); its bare name where no relative path exists."""
    folder, run_dir = Path(folder).resolve(), Path(run_dir).resolve()
    try:
        return Path(os.path.relpath(folder, run_dir)).as_posix()
    except ValueError:  # another drive (Windows)
        return folder.name


def open_base(init_from: str | Path, run_dir: Path) -> Base:
    """Find and read the base run (a run folder, or ``"pretrained"``), touching nothing.

    Raises:
        CheckpointError: no such run, or a damaged or incomplete one.
        ConfigError: the base is ``run_dir`` itself.
    """
    try:
        base_dir = names.resolve_run(str(init_from))
    except CheckpointError as error:
        raise CheckpointError(f"Cannot fine-tune from {init_from}: {error}") from None
    if base_dir.resolve() == Path(run_dir).resolve():
        raise ConfigError(
            f"--init-from {init_from} is the --run-dir itself; fine-tune into another --run-dir, so the base stays as it is."
        )
    best = checkpoint.checkpoint_path(base_dir, "best")
    try:
        info = checkpoint.read_run(base_dir)
        if not best.is_file():
            raise CheckpointError(
                f"{best} is missing (the run never finished a validation); train or resume it until it writes one."
            )
        weights = checkpoint.read_weights(best)
    except CheckpointError as error:
        raise CheckpointError(f"Cannot fine-tune from {init_from}: {error}") from None
    return Base(str(init_from), info, weights, fileio.file_sha256(best), checkpoint.read_state(best))


def fine_tuning_config(base: Base, config: TrainConfig, changes: dict) -> TrainConfig:
    """``config`` with the base's architecture and the fine-tuning defaults the user did not override.

    Args:
        changes: the options the user gave explicitly.
    Raises:
        ConfigError: an explicit option would change the base's architecture (named, one line).
    """
    architecture = base.info.config.architecture()
    for name, value in architecture.items():
        if name in changes and changes[name] != value:
            option = "--" + name.replace("_", "-")
            raise ConfigError(
                f"{option} {changes[name]} would change the shape of the base's weights ({base.name} has {name} "
                f"{value}); a fine-tuned run keeps its base's architecture: drop {option}."
            )
    config = config.replace(**architecture, **{k: v for k, v in FINE_TUNING_DEFAULTS.items() if k not in changes})
    if "final_learning_rate" not in changes:
        config = config.replace(final_learning_rate=config.learning_rate * FINAL_LEARNING_RATE_RATIO)
    return config


def run_vocabulary(base: Base, corpus_vocab: Vocabulary) -> Vocabulary:
    """The base's vocabulary with the corpus's new characters appended (ids of the base's kept)."""
    return base.info.vocab.extended(corpus_vocab.chars)


def _vocabulary_axes(model) -> dict[str, int]:
    """The weights with one slice per character, and which axis that is."""
    return {model.embedding.embeddings.path: 0, model.dense.kernel.path: 1, model.dense.bias.path: 0}


def extended_weights(model, base: Base, vocab: Vocabulary) -> dict[str, np.ndarray]:
    """The base's weights grown to ``model``'s vocabulary, keyed by variable path.

    New embedding rows are the mean of the base's; new output columns and biases are zero
    (``start_from_base`` sets the biases).

    Raises:
        CheckpointError: the base's weights do not fit its own config (a damaged base).
    """
    base_size, added = len(base.info.vocab), len(vocab) - len(base.info.vocab)
    axes = _vocabulary_axes(model)
    arrays = {}
    for variable in model.weights:
        path = variable.path
        expected = list(variable.shape)
        if path in axes:
            expected[axes[path]] = base_size
        value = base.weights.get(path)
        if value is None or value.shape != tuple(expected):
            found = "nothing" if value is None else value.shape
            raise CheckpointError(
                f"Cannot fine-tune from {base.name}: its best.npz does not fit its config.json ({path} expected shape "
                f"{tuple(expected)}, found {found}); the run is damaged, retrain it."
            )
        if path in axes and added:
            if path == model.embedding.embeddings.path:
                new = np.repeat(value.mean(axis=0, keepdims=True), added, axis=0)
            else:
                shape = list(value.shape)
                shape[axes[path]] = added
                new = np.zeros(shape, value.dtype)
            value = np.concatenate([value, new], axis=axes[path])
        arrays[path] = value.astype(np.float32)
    return arrays


def start_from_base(
    model, arrays: dict[str, np.ndarray], base: Base, vocab: Vocabulary, sample_ids: np.ndarray, counts: np.ndarray
) -> None:
    """Assign ``extended_weights`` to ``model``, then fit the new characters' output biases.

    Args:
        sample_ids: the start of the new corpus's training split, in the run's ids.
        counts: how often each of the run's ids occurs in the new corpus's training split.
    """
    for variable in model.weights:
        variable.assign(arrays[variable.path])
    base_size = len(base.info.vocab)
    if len(vocab) == base_size:
        return
    bias = np.array(model.dense.bias.numpy())
    bias[base_size:] = new_character_biases(model, sample_ids, counts, base_size)
    model.dense.bias.assign(bias)


def announcement(base: Base, vocab: Vocabulary, corpus_vocab: Vocabulary) -> events.FineTuning:
    """What a fine-tuned run says as it starts: its base, and the characters added and unused."""
    return events.FineTuning(
        base=str(base.info.run_dir),
        base_val_loss=base.val_loss,
        base_characters=len(base.info.vocab),
        added=tuple(vocab.chars[len(base.info.vocab) :]),
        unused=sum(1 for char in base.info.vocab.chars if char not in corpus_vocab.char_to_id),
    )


def new_character_biases(model, sample_ids: np.ndarray, counts: np.ndarray, base_size: int) -> np.ndarray:
    """Output biases of the characters from ``base_size`` on (see the module docstring)."""
    from shakegen.model.backend import tf

    ids = np.asarray(sample_ids[:BIAS_SAMPLE_CHARACTERS], np.int32)
    rows = len(ids) // BIAS_SAMPLE_WINDOW
    windows = ids[: rows * BIAS_SAMPLE_WINDOW].reshape(rows, BIAS_SAMPLE_WINDOW) if rows else ids[None, :]
    logits, _ = model(tf.constant(windows), training=False)  # (windows, time, vocab)
    base_logits = np.asarray(logits, np.float64)[..., :base_size]
    peak = base_logits.max(axis=-1, keepdims=True)
    log_z = (peak[..., 0] + np.log(np.exp(base_logits - peak).sum(axis=-1))).ravel()  # (windows × time,)
    low = (-log_z).max()
    log_mean_inverse_z = low + math.log(np.exp(-log_z - low).mean())
    frequencies = (np.asarray(counts, np.float64) + 1.0) / (np.sum(counts) + len(counts))
    new = frequencies[base_size:]
    return (np.log(new) - math.log1p(-new.sum()) - log_mean_inverse_z).astype(np.float32)
