"""One checkpoint file: a model's arrays keyed by role in one .npz, written atomically, read back checked.

Keys: ``weights/<variable path>``, ``optimizer/<index>``, ``carried/<layer>`` (the GRU states a
stateful run carries between batches) and ``state`` (the training state as UTF-8 JSON). NumPy
arrays only, never pickle. Which file of a run folder holds what is ``checkpoint.py``'s.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from shakegen import fileio
from shakegen.errors import CheckpointError, CheckpointWriteError


def snapshot(model, state: dict, optimizer=None, carried: list | None = None) -> dict[str, np.ndarray]:
    """Copies of the weights (and optimizer variables) with ``state``: a checkpoint in memory.

    ``carried``: the GRU states a stateful run carries from one batch to the next, one
    array per layer, stored as ``carried/<layer>``.
    """
    arrays = {f"weights/{variable.path}": np.array(variable.numpy()) for variable in model.weights}
    for index, value in enumerate(carried or []):
        arrays[f"carried/{index:03d}"] = np.array(value)
    if optimizer is not None:
        for index, variable in enumerate(optimizer.variables):
            arrays[f"optimizer/{index:05d}"] = np.array(variable.numpy())
    arrays["state"] = np.frombuffer(json.dumps(state).encode("utf-8"), dtype=np.uint8)
    return arrays


def write_snapshot(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a snapshot into one .npz, atomically.

    Raises:
        CheckpointWriteError: the disk is full, or the folder is not writable; the file that
            was at ``path`` before is untouched.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        with fileio.atomic_open(path, "wb") as handle:
            handle.write(buffer.getvalue())
    except OSError as error:
        reason = error.strerror or str(error)
        raise CheckpointWriteError(
            f"Could not write checkpoint {path}: {reason}. The previous checkpoint there is intact; "
            "free some space or fix the folder's permissions, then continue with --resume."
        ) from None


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the .npz at ``path`` (which exists), or a CheckpointError saying it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise CheckpointError(
            f"Checkpoint {path} is damaged and cannot be read ({error}). Use the other checkpoint (--which) or retrain."
        ) from None


def check_finite_floats(path: Path, name: str, value: np.ndarray) -> None:
    """Refuse a weight array that is not floating point, or holds NaN or infinite values."""
    if not np.issubdtype(value.dtype, np.floating) or not np.isfinite(value).all():
        raise CheckpointError(
            f"Checkpoint {path} is damaged: {name} holds {value.dtype} values that are not finite floats. "
            "Use the other checkpoint (--which) or retrain."
        )


def state_of(arrays: dict[str, np.ndarray], path: Path) -> dict:
    """The training state stored in ``arrays`` (a JSON object), or a CheckpointError saying ``path`` is damaged."""
    try:
        state = json.loads(arrays["state"].tobytes().decode("utf-8"))
        if not isinstance(state, dict):
            raise ValueError(f"a JSON {type(state).__name__}, expected an object")
        return state
    except (KeyError, ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"Checkpoint {path} is damaged: its training state is missing or unreadable ({error}). "
            "Use the other checkpoint (--which) or retrain."
        ) from None
