"""Run folders: self-contained checkpoints that load from the folder alone.

This module names every file of a run folder, writes and reads them (one .npz's own format is
``archive.py``'s; which folders are runs, and what starting one over may remove, ``folder.py``'s);
training, comparison, sampling and evaluation go through it. A run folder holds
  config.json   every hyperparameter, the vocabulary (in id order), the data's SHA-256, parameter
                count, and for a fine-tuned run its parent (which run, its best.npz's SHA-256)
  last.npz      weights + optimizer state + training state (epoch, step, early stopping, time)
  best.npz      weights with the best validation loss, and when they were reached
  history.csv   one row per validation (once per epoch, or every --eval-every steps)
  curves.png    train/val loss curves
  logs/         TensorBoard event files (scalars by global step)
A run folder is recognisable as shakegen's by the format marker in its config.json
(``FORMAT``); a folder that lacks one counts as a run only in shakegen's own layout (config.json
and last.npz, nothing but the files listed above). A folder holding anything else is never
written to, and starting a run over removes only the files listed above (``folder.clear_run``).
A folder is a run to resume once it holds config.json *and* last.npz: a start that failed before
its first checkpoint leaves no weights behind, so a plain rerun simply starts again.
Weights are NumPy arrays keyed by variable path (JSON and .npz, never pickle). Each file is
written atomically, and ``last.npz`` holds everything resume needs in one file, so a crash
at any moment leaves a consistent checkpoint. history.csv is written before best.npz and
last.npz; rows past the last validation last.npz records are dropped on resume (that
validation is done again), so a kill between them loses nothing and counts nothing twice.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shakegen import fileio
from shakegen.config import TrainConfig
from shakegen.data.corpus import clean_text
from shakegen.data.vocab import Vocabulary
from shakegen.errors import CheckpointError, CheckpointWriteError
from shakegen.runs import archive, plots, summaries
from shakegen.version import __version__

FORMAT_NAME = "shakegen-run/"  # config.json's "format": this and a version
FORMAT = FORMAT_NAME + "1"
CONFIG_FILE = "config.json"
LAST_FILE = "last.npz"
BEST_FILE = "best.npz"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
LOGS_DIR = "logs"  # TensorBoard event files (summaries.py)
EVENTS_PREFIX = "events.out.tfevents."  # how TensorFlow names an event file
RUN_FILES = (CONFIG_FILE, LAST_FILE, BEST_FILE, HISTORY_FILE, CURVES_FILE)
WHICH = ("best", "last")
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


@dataclass(frozen=True)
class RunInfo:
    run_dir: Path
    config: TrainConfig
    vocab: Vocabulary
    data: dict
    parameters: int
    parent: dict | None = None  # a fine-tuned run's base: run, path, sha256, val_loss, vocab_size

    def clean(self, text: str) -> str:
        """``text`` cleaned as this run's corpus was (line ends, controls, NFC, its options)."""

        options = self.data.get("options", {})
        return clean_text(
            text, lowercase=options.get("lowercase", False), strip_punctuation=options.get("strip_punctuation", False)
        )

    def drop_unknown(self, text: str) -> tuple[str, list[str]]:
        """(``text`` without the characters this run does not know, those characters in order of appearance)."""
        unknown = self.vocab.unknown_characters(text)
        return (text.translate({ord(char): None for char in unknown}) if unknown else text), unknown

    def text_as_seen(self, text: str) -> tuple[str, str, list[str]]:
        """Text as this run sees it, the one rule sampling and evaluation share.

        Returns:
            (the cleaned text, the cleaned text without unknown characters, the unknown characters).
        """
        cleaned = self.clean(text)
        known, unknown = self.drop_unknown(cleaned)
        return cleaned, known, unknown


def write_run_config(
    run_dir: Path, config: TrainConfig, vocab: Vocabulary, data: dict, parameters: int, parent: dict | None = None
) -> None:
    """Write config.json; ``parent`` (a fine-tuned run's base, see ``RunInfo.parent``) when given."""
    values = {
        "format": FORMAT,
        "shakegen_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config.to_json(),
        "vocab": vocab.to_json(),
        "data": data,
        "parameters": parameters,
    }
    if parent is not None:
        values["parent"] = parent
    fileio.write_json(Path(run_dir) / CONFIG_FILE, values)


def read_run(run_dir: str | Path) -> RunInfo:
    """Read a run folder's config.json.

    Raises:
        CheckpointError: no such folder, or it is not a shakegen run.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is a file, not a run folder; pass the folder `shakegen train` wrote.")
    if not run_dir.is_dir():
        raise CheckpointError(
            f"Run folder {run_dir} does not exist. Train one with `shakegen train --run-dir {run_dir}`."
        )
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} is not a shakegen run folder: it has no {CONFIG_FILE}. Pass a folder written by `shakegen train`."
        )
    try:
        raw = fileio.read_json(path)
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON {type(raw).__name__}, expected an object")
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
        if not isinstance(raw["config"], dict) or not isinstance(raw["data"], dict):
            raise ValueError("'config' and 'data' must be objects")
        if not isinstance(raw["vocab"], list) or not isinstance(raw.get("parent", {}), dict):
            raise ValueError("'vocab' must be a list and 'parent' an object")
        if not isinstance(raw["data"].get("options", {}), dict):
            raise ValueError("'data.options' must be an object")
        info = RunInfo(
            run_dir,
            TrainConfig.from_json(raw["config"]).validate(),
            Vocabulary.in_id_order(raw["vocab"]),  # a fine-tuned run's need not be sorted
            raw["data"],
            int(raw["parameters"]),
            raw.get("parent"),
        )
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        raise CheckpointError(
            f"{path} is damaged or not a shakegen run config ({error}). "
            "Retrain into a fresh --run-dir, or start this one over with --overwrite."
        ) from None
    return info


def checkpoint_path(run_dir: str | Path, which: str) -> Path:
    if which not in WHICH:
        raise CheckpointError(f"Unknown checkpoint {which!r}; expected one of {', '.join(WHICH)}.")
    return Path(run_dir) / f"{which}.npz"


def save(path: Path, model, state: dict, optimizer=None, carried: list | None = None) -> None:
    """Write model weights (and optimizer variables) with ``state`` into one .npz, atomically."""
    archive.write_snapshot(path, archive.snapshot(model, state, optimizer, carried))


def read_carried(path: Path) -> list[np.ndarray]:
    """The carried GRU states saved with ``archive.snapshot(carried=...)``, in layer order ([] if none)."""
    arrays = _open(path)
    return [arrays[key] for key in sorted(key for key in arrays if key.startswith("carried/"))]


def _open(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        other = "best" if path.name == LAST_FILE else "last"
        if (path.parent / f"{other}.npz").is_file() and not (path.parent / LAST_FILE).is_file():
            raise CheckpointError(
                f"{path.parent} holds only its {other} weights (no {path.name}); use --which {other}."
            )
        raise CheckpointError(
            f"Checkpoint {path} is missing; the run folder is incomplete. "
            f"Use --which {other}, or train (or resume) the run to write it."
        )
    return archive.read_arrays(path)


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """A checkpoint's weights keyed by variable path, without a model to load them into.

    Raises:
        CheckpointError: missing or damaged file, no weights, or weights that are not finite floats.
    """
    path = Path(path)
    arrays = _open(path)
    weights = {key.removeprefix("weights/"): value for key, value in arrays.items() if key.startswith("weights/")}
    if not weights:
        raise CheckpointError(
            f"Checkpoint {path} is damaged: it holds no weights. Use the other checkpoint or retrain."
        )
    for name, value in weights.items():
        archive.check_finite_floats(path, name, value)
    archive.state_of(arrays, path)
    return weights


def last_state(run_dir: str | Path) -> dict:
    """The training state saved with a run's last weights (time trained, best loss so far); for
    a folder that ships only its best weights (the pretrained model), what its history records."""
    state = read_state(checkpoint_path(run_dir, "last"))
    if state:
        return state
    try:
        history = read_history(run_dir)
    except CheckpointError:
        return {}
    if not history:
        return {}
    final = history[-1]
    return {
        "epoch": final["epoch"],
        "global_step": int(final["step"]),
        "elapsed_seconds": final["elapsed_seconds"],
        "best_val_loss": min(row["val_loss"] for row in history),
    }


def read_state(path: str | Path) -> dict:
    """The training state saved in a checkpoint, without touching its weights."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as stored:
            return json.loads(stored["state"].tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return {}


def load(path: Path, model, optimizer=None) -> dict:
    """Assign weights (and optimizer variables) from ``path``; return the saved state.

    Raises:
        CheckpointError: missing or damaged file, or weights that do not fit ``model``.
    """
    arrays = _open(path)
    for variable in model.weights:
        key = f"weights/{variable.path}"
        if key not in arrays or arrays[key].shape != tuple(variable.shape):
            found = arrays[key].shape if key in arrays else "nothing"
            raise CheckpointError(
                f"Checkpoint {path} does not fit the model: {variable.path} expected shape {tuple(variable.shape)}, found {found}."
            )
        value = arrays[key]
        if np.issubdtype(variable.dtype, np.floating):
            archive.check_finite_floats(path, variable.path, value)
            value = value.astype(variable.dtype)  # the bundled model stores float16
        variable.assign(value)
    if optimizer is not None:
        saved = sorted(key for key in arrays if key.startswith("optimizer/"))
        if len(saved) != len(optimizer.variables):
            raise CheckpointError(
                f"Checkpoint {path} holds {len(saved)} optimizer variables; expected {len(optimizer.variables)}."
            )
        for key, variable in zip(saved, optimizer.variables, strict=True):
            variable.assign(arrays[key])
    return archive.state_of(arrays, path)


def load_model(
    run_dir: str | Path, which: str = "best", *, precision: str | None = None, rnn_kernel: str | None = None
):
    """Rebuild a run's Keras model from its folder alone: the one TensorFlow loader.

    Args:
        precision: ``"float32"`` for sampling, evaluation and export (a run trained in
            mixed_bfloat16 then computes in float32, with no weight-drop mask, so a GPU may run
            cuDNN); None keeps the run's own, as training does.
        rnn_kernel: the GRU loop to build (``"fused"``: shakegen's own, which runs anywhere, as an
            export needs); None keeps the run's.
    Returns:
        (model, RunInfo, the checkpoint's saved state).
    Raises:
        CheckpointError: no such run, or a missing or damaged checkpoint.
    """
    from shakegen.model.network import build_model

    info = read_run(run_dir)
    config = info.config
    if precision is not None:
        config = config.replace(precision=precision, weight_drop=0.0)
    if rnn_kernel is not None:
        config = config.replace(rnn_kernel=rnn_kernel)
    model = build_model(len(info.vocab), config)
    state = load(checkpoint_path(run_dir, which), model)
    return model, info, state


def scalar_log(run_dir: str | Path, resumed_at: int | None = None):
    """The run's TensorBoard log (``logs/``), appended to across resumes.

    ``resumed_at``: the step a resumed run continues from; the points an earlier process wrote
    after it (it stopped later than its last checkpoint) are dropped first, so each step has one.
    """

    logs = Path(run_dir) / LOGS_DIR
    if resumed_at is not None:
        summaries.trim(logs, resumed_at, prefix=EVENTS_PREFIX)
    return summaries.ScalarLog(logs)


def write_history(run_dir: str | Path, history: list[dict]) -> None:
    """Write history.csv (one row per validation); ``write_curves`` draws them."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()})
    try:
        fileio.write_text(Path(run_dir) / HISTORY_FILE, buffer.getvalue())
    except OSError as error:
        raise CheckpointWriteError(
            f"Could not write {Path(run_dir) / HISTORY_FILE}: {error.strerror or error}. The checkpoint is intact; "
            "free some space or fix the folder's permissions, then continue with --resume."
        ) from None


def read_history(run_dir: str | Path, up_to_step: int | None = None) -> list[dict]:
    """history.csv's rows as floats; with ``up_to_step``, only rows at or before that step."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in HISTORY_FIELDS if name not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"it lacks the column(s) {', '.join(missing)}")
            rows = [{key: float(value) for key, value in row.items()} for row in reader]
    except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{path} is damaged ({error}). Restore it, or rename it (to history.csv.damaged, say) to start a new one; the weights do not depend on it."
        ) from None
    if up_to_step is not None:
        rows = [row for row in rows if row["step"] <= up_to_step]
    return rows


def write_curves(run_dir: str | Path, history: list[dict]) -> None:
    """Write curves.png: train and validation loss against epoch (best effort: a plot is not a checkpoint)."""
    if not history:
        return

    try:
        with fileio.atomic_open(Path(run_dir) / CURVES_FILE, "wb") as handle:
            handle.write(plots.loss_curves_png(history, f"{Path(run_dir).name}: loss"))
    except OSError:
        pass
