"""Which run folder a name means: a path, ``"pretrained"``, or nothing (the latest run)."""

from __future__ import annotations

import os
from pathlib import Path

from shakegen.errors import CheckpointError
from shakegen.runs import checkpoint, folder, pretrained

PRETRAINED = "pretrained"  # the name of the model that ships with shakegen (--checkpoint, --init-from)
DEFAULT_CHECKPOINTS = Path("checkpoints")  # where runs go, and where "the latest run" is looked for


def resolve_run(run: str | os.PathLike | None) -> Path:
    """The run folder a user means: a path, ``"pretrained"``, or ``None`` for the latest run
    under ``checkpoints/`` (the pretrained model when there is none).

    Raises:
        CheckpointError: no run there (the message says how to train one).
    """
    if run is None:
        try:
            return latest_run(DEFAULT_CHECKPOINTS)
        except CheckpointError:
            if not pretrained.available():
                raise
            return pretrained.BUNDLE_DIR
    if str(run) == PRETRAINED and not (Path(run) / checkpoint.CONFIG_FILE).is_file():  # not a run of one's own
        if not pretrained.available():
            raise CheckpointError(
                "No pretrained model ships with this installation of shakegen. Train one with "
                "`shakegen train --preset quick` and pass its run folder (for example checkpoints/quick)."
            )
        return pretrained.BUNDLE_DIR
    return Path(run)


def latest_run(root: str | Path = "checkpoints") -> Path:
    """The most recently trained run folder under ``root``."""
    root = Path(root)
    runs = [path.parent for path in root.glob(f"*/{checkpoint.CONFIG_FILE}") if folder.is_run(path.parent)]
    if not runs:
        raise CheckpointError(
            f"No trained run found under {root}/. Train one with `shakegen train`, or pass --checkpoint RUN_DIR."
        )
    return max(runs, key=lambda run: (run / checkpoint.LAST_FILE).stat().st_mtime)


def is_pretrained(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` is the bundled pretrained model's folder."""
    return Path(run_dir).resolve() == pretrained.BUNDLE_DIR.resolve()


def shown_name(run_dir: str | os.PathLike) -> str:
    """How a run is named to a user: ``"pretrained"`` for the bundle, else the path as given."""
    return PRETRAINED if is_pretrained(run_dir) else str(run_dir)
