"""Which folders are shakegen's run folders, and what starting one over may touch.

A run folder is recognisable by the format marker in its config.json (``checkpoint.FORMAT``);
a folder that lacks one counts as a run only in shakegen's own layout (config.json and last.npz,
nothing but the files ``checkpoint.py`` names). A folder holding anything else is never written
to, and starting a run over removes only those files (``clear_run``). One training process at a
time holds a run folder (``lock_run``). Reading and writing the files themselves is
``checkpoint.py``'s.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from shakegen import fileio
from shakegen.config import TrainConfig
from shakegen.data.vocab import Vocabulary
from shakegen.errors import CheckpointError
from shakegen.runs.checkpoint import (
    BEST_FILE,
    CONFIG_FILE,
    EVENTS_PREFIX,
    FORMAT_NAME,
    LAST_FILE,
    LOGS_DIR,
    RUN_FILES,
    write_run_config,
)


def is_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run to resume: shakegen's config and its last checkpoint."""
    run_dir = Path(run_dir)
    return _holds_config_and_last(run_dir) and (has_format_marker(run_dir) or not foreign_entries(run_dir))


def has_format_marker(run_dir: str | Path) -> bool:
    """Whether ``run_dir``'s config.json says it is a shakegen run (its ``format``), damaged or not otherwise."""
    try:
        raw = fileio.read_json(Path(run_dir) / CONFIG_FILE)
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and isinstance(raw.get("format"), str) and raw["format"].startswith(FORMAT_NAME)


def is_run_folder(run_dir: str | Path) -> bool:
    """Whether shakegen recognises ``run_dir`` as one of its run folders (see the module docstring).

    A config.json with the format marker; or, without one (a damaged config), config.json and
    last.npz with nothing but shakegen's files beside them.
    """
    run_dir = Path(run_dir)
    if has_format_marker(run_dir):
        return True
    return _holds_config_and_last(run_dir) and not foreign_entries(run_dir)


def _holds_config_and_last(run_dir: Path) -> bool:
    return (run_dir / CONFIG_FILE).is_file() and (run_dir / LAST_FILE).is_file()


def holds_weights(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds trained weights (last.npz or best.npz): starting over needs --overwrite."""
    return any((Path(run_dir) / name).is_file() for name in (LAST_FILE, BEST_FILE))


def foreign_entries(run_dir: str | Path) -> list[str]:
    """What ``run_dir`` holds that shakegen does not write in a run folder (names; ``logs/...`` inside logs)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    foreign = []
    for entry in sorted(run_dir.iterdir()):
        if entry.name == LOGS_DIR and entry.is_dir() and not entry.is_symlink():
            foreign += [f"{LOGS_DIR}/{child.name}" for child in sorted(entry.iterdir()) if not _is_event_file(child)]
        elif not (entry.is_file() and not entry.is_symlink() and _is_run_file_name(entry.name)):
            foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    return foreign


def is_empty_folder(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` is absent, or holds nothing but what a killed write of a run file left (or an empty logs/)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return True
    return run_dir.is_dir() and all(
        (entry.is_file() and _is_temporary(entry.name, RUN_FILES))
        or (entry.name == LOGS_DIR and entry.is_dir() and not entry.is_symlink() and not any(entry.iterdir()))
        for entry in run_dir.iterdir()
    )


def _is_run_file_name(name: str) -> bool:
    return name in RUN_FILES or _is_temporary(name, RUN_FILES)


def _is_temporary(name: str, of: tuple[str, ...]) -> bool:
    """A temporary file ``fileio.atomic_open`` names for one of ``of``: ``.<name>.<8 characters>.tmp``."""
    return any(fileio.is_temporary_of(name, target) for target in of)


def _is_event_file(path: Path) -> bool:
    """A TensorBoard event file shakegen's ScalarLog writes (or a temporary of one being trimmed)."""
    if not path.is_file() or path.is_symlink():
        return False
    name = path.name
    if name.startswith(EVENTS_PREFIX):
        return True
    return name.startswith("." + EVENTS_PREFIX) and name.endswith(".tmp")


def clear_run(run_dir: str | Path) -> None:
    """Remove the files shakegen writes in a run folder, and nothing else.

    logs/ goes only when nothing but shakegen's event files was in it.
    """
    run_dir = Path(run_dir)
    for entry in list(run_dir.iterdir()) if run_dir.is_dir() else []:
        if entry.is_file() and not entry.is_symlink() and _is_run_file_name(entry.name):
            entry.unlink(missing_ok=True)
    logs = run_dir / LOGS_DIR
    if logs.is_dir() and not logs.is_symlink():
        for entry in list(logs.iterdir()):
            if _is_event_file(entry):
                entry.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: someone else's files stay, and so does logs/
            logs.rmdir()


@contextlib.contextmanager
def lock_run(run_dir: str | Path) -> Iterator[None]:
    """Hold ``run_dir`` for one training process; clear what a killed one left half-written.

    Raises:
        CheckpointError: another process is training in ``run_dir``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with fileio.folder_lock(run_dir):
            for name in RUN_FILES:  # we hold the folder: any temporary file is a dead writer's
                fileio.remove_stale_temporaries(run_dir, name, older_than=0)
            yield
    except BlockingIOError:
        raise CheckpointError(
            f"Another shakegen process is training in {run_dir}. Wait for it to finish, or choose another --run-dir."
        ) from None


def start_run(
    run_dir: str | Path,
    config: TrainConfig,
    vocab: Vocabulary,
    data: dict,
    parameters: int,
    parent: dict | None = None,
) -> None:
    """Clear ``run_dir`` of an earlier run's files (``clear_run``: only those) and write the new run's config.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    clear_run(run_dir)
    write_run_config(run_dir, config, vocab, data, parameters, parent)
