"""Atomic, durable file writes: a crash never leaves a half-written file where a good one was."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; folder_lock then locks nothing
    fcntl = None

# A temporary file untouched for this long belongs to a process that was killed: a live
# download or checkpoint write touches its file every few seconds.
STALE_AFTER_SECONDS = 3600.0
_TEMPORARY_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    On any exception (KeyboardInterrupt included) the temporary file is removed and
    ``path`` is left exactly as it was. A kill leaves the temporary file behind under the
    name ``.<name>.<8 random characters>.tmp``; ``remove_stale_temporaries`` finds it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = _create_temporary(path)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding, newline="" if encoding else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """``atomic_open`` for a writer that opens its file by name (TensorFlow's): yields the temporary's path.

    On success the temporary is synced and renamed over ``path``; on any exception it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = _create_temporary(path)
    os.close(fd)
    try:
        yield Path(tmp_name)
        fd = os.open(tmp_name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _create_temporary(path: Path) -> tuple[int, str]:
    """Create ``.<name>.<8 random characters>.tmp`` beside ``path``, opened for writing.

    Mode 0o666 and the system applies the umask, as to any new file (``tempfile.mkstemp``
    makes 0o600, and reading the umask means setting it, which races other threads).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        suffix = "".join(secrets.choice(_TEMPORARY_CHARACTERS) for _ in range(8))
        name = str(path.parent / f".{path.name}.{suffix}.tmp")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"No unused temporary file name beside {path}")


def is_temporary_of(name: str, target: str) -> bool:
    """Whether ``name`` is what ``atomic_open`` names a temporary file for ``target``."""
    return re.fullmatch(re.escape(f".{target}.") + r"[a-z0-9_]{8}\.tmp", name) is not None


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make the entries of ``folder`` durable: a rename lives in the folder, not in the file.

    Without it, a power cut soon after a rename can bring back the old name. Does nothing on
    Windows (a folder cannot be opened there) or on file systems that refuse it (EINVAL).
    """
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno != errno.EINVAL:  # this file system does not sync folders
            raise
    finally:
        os.close(fd)


def rename(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """``os.rename`` then ``fsync_dir`` of the folder(s) involved, so the rename survives a power cut."""
    os.rename(source, target)
    fsync_dir(Path(target).parent)
    if Path(source).parent.resolve() != Path(target).parent.resolve():
        fsync_dir(Path(source).parent)


def remove_stale_temporaries(
    folder: str | os.PathLike, name: str, older_than: float = STALE_AFTER_SECONDS
) -> list[Path]:
    """Remove the temporary files a killed ``atomic_open`` of ``folder/name`` left behind.

    Only files named as ``atomic_open`` names them and not modified for ``older_than``
    seconds, so a write in progress in another process is left alone. Returns what was removed.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for entry in folder.iterdir():
        if not is_temporary_of(entry.name, name):
            continue
        with contextlib.suppress(FileNotFoundError):  # another process cleaned it first
            if entry.is_file() and now - entry.stat().st_mtime > older_than:
                entry.unlink()
                removed.append(entry)
    return removed


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, blocking: bool = False) -> Iterator[bool]:
    """Hold an exclusive advisory lock on ``folder`` itself (no lock file is left behind).

    The lock goes with the process: a killed holder releases it. Yields True when held,
    False where the system or file system has no such locks (then nothing is locked).

    Raises:
        BlockingIOError: another process holds it and ``blocking`` is False.
    """
    if fcntl is None:
        yield False
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        locked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise
        except OSError:  # ENOLCK, EBADF: some network file systems cannot lock a folder
            locked = False
        yield locked
    finally:
        os.close(fd)  # releases the lock


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in 1 MB blocks (a downloaded corpus, a parent run's weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, value) -> None:
    write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it, racing other threads).

    From /proc where the system has it (Linux); else from the mode a new file is given.
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    folder = tempfile.mkdtemp(prefix=".umask.")
    try:
        probe = os.path.join(folder, "probe")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o777))
        return 0o777 & ~os.stat(probe).st_mode
    finally:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, "probe"))
        os.rmdir(folder)


def check_export_folder(
    out_dir: Path,
    overwrite: bool,
    *,
    holds: Callable[[Path], bool],
    own: tuple[str, ...],
    thing: str,
    error: type[Exception],
) -> None:
    """Refuse ``out_dir`` as the destination of an export unless it is new, empty, or (with ``overwrite``)
    holds an earlier export, as ``holds`` tells, and nothing but the names an export writes there
    (``own``); anything else is never replaced.

    ``thing`` names what the export is (``"SavedModel"``); ``error`` is the exception raised, with one line.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise error(f"{out_dir} is a file; --out needs a folder for the {thing}. Choose another --out.")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not holds(out_dir):
        raise error(f"{out_dir} is not empty and holds no {thing}; it is never replaced. Choose a new or empty --out.")
    if not overwrite:
        raise error(f"{out_dir} already holds a {thing}. Pass --overwrite to replace it, or choose another --out.")
    foreign = sorted(entry.name for entry in out_dir.iterdir() if entry.name not in own)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise error(
            f"{out_dir} holds a {thing} and also {shown}, which the export did not write; --overwrite never "
            "deletes those. Move them out of the folder, or choose another --out."
        )


def staging_folder(out_dir: Path) -> Path:
    """A new, empty folder beside ``out_dir`` (its parent made if need be) to build an export in, with the
    usual mode (``mkdtemp`` makes 0700). Raises OSError."""
    parent = out_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=parent))
    os.chmod(staging, 0o777 & ~current_umask())
    return staging


def replace_folder(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``; an earlier export there is moved aside first, then removed
    (and put back if the rename fails)."""
    aside = None
    if out_dir.is_dir():
        if any(out_dir.iterdir()):
            aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=staging.parent))
            os.rmdir(aside)
            os.rename(out_dir, aside)
        else:
            os.rmdir(out_dir)
    try:
        rename(staging, out_dir)
    except BaseException:
        if aside is not None:
            os.rename(aside, out_dir)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
