"""Run folders: self-contained checkpoints that load from the folder alone.

A run folder holds
  config.json   every hyperparameter, the vocabulary, the data's SHA-256, parameter count
  last.npz      weights + optimizer state + training state (epoch, step, early stopping, time)
  best.npz      weights with the best validation loss, and when they were reached
  history.csv   one row per epoch
  curves.png    train/val loss curves
Weights are NumPy arrays keyed by variable path (JSON and .npz, never pickle). Each file is
written atomically, and ``last.npz`` holds everything resume needs in one file, so a crash
at any moment leaves a consistent checkpoint.
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shakegen import __version__, fileio
from shakegen.config import TrainConfig
from shakegen.errors import CheckpointError
from shakegen.vocab import Vocabulary

FORMAT = "shakegen-run/1"
CONFIG_FILE = "config.json"
WHICH = ("best", "last")


@dataclass(frozen=True)
class RunInfo:
    run_dir: Path
    config: TrainConfig
    vocab: Vocabulary
    data: dict
    parameters: int


def write_run_config(run_dir: Path, config: TrainConfig, vocab: Vocabulary, data: dict, parameters: int) -> None:
    fileio.write_json(
        Path(run_dir) / CONFIG_FILE,
        {
            "format": FORMAT,
            "shakegen_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "config": config.to_json(),
            "vocab": vocab.to_json(),
            "data": data,
            "parameters": parameters,
        },
    )


def read_run(run_dir: str | Path) -> RunInfo:
    """Read a run folder's config.json.

    Raises:
        CheckpointError: no such folder, or it is not a shakegen run.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
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
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT!r}")
        return RunInfo(
            run_dir,
            TrainConfig.from_json(raw["config"]),
            Vocabulary.from_json(raw["vocab"]),
            raw["data"],
            raw["parameters"],
        )
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{path} is damaged or not a shakegen run config ({error}). Retrain into a fresh --run-dir."
        ) from None


def checkpoint_path(run_dir: str | Path, which: str) -> Path:
    if which not in WHICH:
        raise CheckpointError(f"Unknown checkpoint {which!r}; expected one of {', '.join(WHICH)}.")
    return Path(run_dir) / f"{which}.npz"


def save(path: Path, model, state: dict, optimizer=None) -> None:
    """Write model weights (and optimizer variables) with ``state`` into one .npz, atomically."""
    arrays = {f"weights/{variable.path}": np.asarray(variable.numpy()) for variable in model.weights}
    if optimizer is not None:
        for index, variable in enumerate(optimizer.variables):
            arrays[f"optimizer/{index:05d}"] = np.asarray(variable.numpy())
    arrays["state"] = np.frombuffer(json.dumps(state).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with fileio.atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def _open(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {path} is missing; the run folder is incomplete. "
            "Use --which last, or train (or resume) the run to write it."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise CheckpointError(
            f"Checkpoint {path} is damaged and cannot be read ({error}). Use the other checkpoint (--which) or retrain."
        ) from None


def read_state(path: Path) -> dict:
    """The training state saved in a checkpoint, without touching its weights."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(archive["state"].tobytes().decode("utf-8"))
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
        variable.assign(arrays[key])
    if optimizer is not None:
        saved = sorted(key for key in arrays if key.startswith("optimizer/"))
        if len(saved) != len(optimizer.variables):
            raise CheckpointError(
                f"Checkpoint {path} holds {len(saved)} optimizer variables; expected {len(optimizer.variables)}."
            )
        for key, variable in zip(saved, optimizer.variables, strict=True):
            variable.assign(arrays[key])
    return json.loads(arrays["state"].tobytes().decode("utf-8"))


def latest_run(root: str | Path = "checkpoints") -> Path:
    """The most recently trained run folder under ``root``."""
    root = Path(root)
    runs = [path.parent for path in root.glob(f"*/{CONFIG_FILE}") if (path.parent / "last.npz").is_file()]
    if not runs:
        raise CheckpointError(
            f"No trained run found under {root}/. Train one with `shakegen train`, or pass --checkpoint RUN_DIR."
        )
    return max(runs, key=lambda run: (run / "last.npz").stat().st_mtime)


def load_model(run_dir: str | Path, which: str = "best"):
    """Rebuild a run's model from its folder alone; returns (model, RunInfo, state)."""
    from shakegen.model import build_model

    info = read_run(run_dir)
    model = build_model(len(info.vocab), info.config)
    state = load(checkpoint_path(run_dir, which), model)
    return model, info, state
