"""Prepared data: the cleaned corpus as a vocabulary and encoded train/val splits.

Layout of ``<data_dir>/prepared/``: ``vocab.json``, ``train.npy``, ``val.npy`` (integer ids,
read memory-mapped) and ``meta.json``. The folder is built beside its final place and
swapped in by renames under a lock on ``<data_dir>``: the previous folder is kept as
``.prepared.old`` until the new one is in place, so a kill at any moment leaves a complete
preparation (the old or the new), and the next start finishes or undoes the swap. A second
preparation of the same folder waits for the lock (and takes over the first's work if it
prepared the same file): trainings started together on an unprepared folder all start.
This module owns the folder (its layout, the lock and the swap, reading it back); turning the
text into ids in bounded memory is ``encoding.py``'s.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from shakegen import fileio
from shakegen.data import corpus, encoding
from shakegen.data.vocab import Vocabulary
from shakegen.errors import ConfigError, PreparedDataError

PREPARED_DIR = "prepared"
# The previous preparation during a swap; its name cannot be mistaken for a staging folder.
PREVIOUS_DIR = ".prepared.old"
# Staging folders (mkdtemp's 8 random characters), and ".retired." from earlier versions.
_STAGING = re.compile(r"\.(prepared|retired)\.[a-z0-9_]{8}")
TRAIN_COUNTS = "train_counts"
# The smallest preset trains on windows of 32 characters; a corpus must hold one of them.
MIN_TRAIN_CHARS = 33
MIN_VAL_CHARS = 2


@dataclass(frozen=True)
class PrepareOptions:
    lowercase: bool = False
    strip_punctuation: bool = False
    val_fraction: float = 0.1
    encoding: str = "utf-8"

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(
                f"val_fraction must be between 0 and 1 (exclusive), got {self.val_fraction}. "
                "Pass a fraction such as --val-fraction 0.1."
            )
        corpus.check_encoding(self.encoding)


@dataclass(frozen=True)
class PreparedData:
    """A prepared corpus, with the splits memory-mapped.

    ``meta["train_counts"]`` is a list of ``len(vocab)`` ints: how often each id occurs in
    the train split (stored by ``prepare``; counted on first use for older folders).
    """

    vocab: Vocabulary
    train: np.ndarray
    val: np.ndarray
    meta: dict


ProgressCallback = Callable[[str, int, int], None]


def prepared_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / PREPARED_DIR


def default_input() -> tuple[Path, str]:
    """The input ``prepare`` uses when none is given, and a phrase saying which it is."""
    if corpus.DEFAULT_RAW_PATH.is_file():
        return corpus.DEFAULT_RAW_PATH, f"the downloaded corpus at {corpus.DEFAULT_RAW_PATH}"
    return corpus.EMBEDDED_CORPUS, "the Tiny Shakespeare copy embedded in shakegen (offline)"


def _chunks(path: Path, options: PrepareOptions):
    return corpus.iter_clean_chunks(
        path,
        encoding=options.encoding,
        lowercase=options.lowercase,
        strip_punctuation=options.strip_punctuation,
    )


def prepare_corpus(
    input_path: str | Path,
    data_dir: str | Path,
    options: PrepareOptions = PrepareOptions(),
    progress: ProgressCallback | None = None,
    *,
    reuse: bool = False,
) -> dict:
    """Clean ``input_path``, build its vocabulary, split and encode it under ``data_dir``.

    The file is read and cleaned once, in chunks: each chunk's code points are counted and
    appended to a scratch file; once the vocabulary is known, the scratch file is mapped to
    ids block by block. Memory stays bounded whatever the file size.

    Preparations of one ``data_dir`` take turns under a lock on it. One that had to wait
    for another, and finds that it prepared this same file (same path, size and
    modification time) with the same options, returns that preparation instead of doing it
    again: two trainings started together on an unprepared folder prepare it once. With
    ``reuse`` a matching preparation is returned even without waiting.

    Args:
        progress: called with (stage, done, total): stages "read" and "encode" in bytes of
            the input, and "wait" (0, 0) once if another process holds the lock.
    Returns:
        The metadata written to ``meta.json``.
    Raises:
        CorpusError: the file is missing, binary, undecodable, empty or too small.
        PreparedDataError: ``data_dir`` cannot be created.
    """
    input_path = Path(input_path)
    corpus.check_readable_file(input_path, options.encoding)
    target = prepared_dir(data_dir)
    made = not target.parent.exists()
    _make_data_dir(target.parent)
    try:
        with _preparation_lock(target.parent, progress) as (locked, waited):
            _recover(target)
            if locked:  # only then is no other prepare writing a staging folder here
                _remove_stale_staging(target.parent)
            if waited or reuse:
                meta = _matching_preparation(target, input_path, options)
                if meta is not None:
                    return meta
            return _prepare_locked(input_path, target, options, progress)
    except BaseException:
        if made:  # a failed first preparation leaves no empty --data-dir behind (one that held anything stays)
            with contextlib.suppress(OSError):
                target.parent.rmdir()
        raise


def _make_data_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=folder)  # a folder one may not write into fails here, not halfway
        probe.close()
    except OSError as error:
        raise PreparedDataError(
            f"Cannot write the prepared corpus into {folder}: {corpus.unwritable_reason(folder, error)}. "
            "Pass a --data-dir you can create and write to."
        ) from None


@contextlib.contextmanager
def _preparation_lock(folder: Path, progress):
    """Hold the folder lock, waiting for another process's preparation if need be; yields (locked, waited)."""
    with contextlib.ExitStack() as stack:
        try:
            locked, waited = stack.enter_context(fileio.folder_lock(folder)), False
        except BlockingIOError:
            if progress:
                progress("wait", 0, 0)
            locked, waited = stack.enter_context(fileio.folder_lock(folder, blocking=True)), True
        yield locked, waited


def _source_stat(input_path: Path) -> list[int]:
    """What identifies the input's version: its size and modification time (nanoseconds)."""
    stat = input_path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _matching_preparation(target: Path, input_path: Path, options: PrepareOptions) -> dict | None:
    """The meta of the preparation in ``target`` if it was made from this file as it is now, with ``options``."""
    try:
        meta = fileio.read_json(target / "meta.json")
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    same = (
        meta.get("source") == str(input_path)
        and meta.get("source_stat") == _source_stat(input_path)
        and meta.get("options") == asdict(options)
    )
    return meta if same else None


def _prepare_locked(input_path: Path, target: Path, options: PrepareOptions, progress) -> dict:
    source_stat = _source_stat(input_path)  # before reading: a change while reading shows as a mismatch
    total_bytes = max(1, source_stat[0])
    staging = Path(tempfile.mkdtemp(prefix=".prepared.", dir=target.parent))
    staging.chmod(0o777 & ~fileio.current_umask())
    try:
        scratch = staging / "codepoints.u32"
        pieces = _chunks(input_path, options)
        counts, digest, total_chars = encoding.read_codepoints(pieces, scratch, total_bytes, progress)
        vocab = encoding.vocabulary_of(counts, input_path)
        train_chars = int(total_chars * (1.0 - options.val_fraction))
        val_chars = total_chars - train_chars
        if train_chars < MIN_TRAIN_CHARS or val_chars < MIN_VAL_CHARS:
            raise corpus.CorpusError(
                f"Input {input_path} is too small: {total_chars} characters after cleaning give "
                f"{train_chars} for training and {val_chars} for validation; expected at least "
                f"{MIN_TRAIN_CHARS} and {MIN_VAL_CHARS}. Use a longer text or change --val-fraction."
            )
        val_counts = encoding.encode_splits(scratch, vocab, train_chars, staging)
        scratch.unlink()
        if progress:
            progress("encode", total_bytes, total_bytes)
        codepoints = np.flatnonzero(counts)
        order = np.argsort(-counts[codepoints], kind="stable")[:10]
        meta = {
            "source": str(input_path),
            "source_stat": source_stat,
            "sha256": digest,
            "characters": total_chars,
            "vocab_size": len(vocab),
            "train_characters": train_chars,
            "val_characters": val_chars,
            "dtype": vocab.dtype.name,
            "options": asdict(options),
            "most_frequent": [[chr(codepoints[i]), int(counts[codepoints[i]])] for i in order],
            # Indexed by id; codepoints is sorted, as the vocabulary is.
            TRAIN_COUNTS: (counts[codepoints] - val_counts).tolist(),
        }
        fileio.write_json(staging / "vocab.json", vocab.to_json())
        fileio.write_json(staging / "meta.json", meta)  # the last entry: staging is fsynced after it
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _recover(target)  # an exception (not a kill) between the two renames: put the old folder back
        raise
    return meta


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging``; at every instant one complete preparation exists.

    A kill after the first rename leaves only ``.prepared.old`` (``_recover`` renames it
    back); a kill after the second leaves both (``_recover`` removes the old one).
    """
    previous = target.parent / PREVIOUS_DIR
    if target.exists():
        fileio.rename(target, previous)
    fileio.rename(staging, target)
    shutil.rmtree(previous, ignore_errors=True)


def _recover(target: Path) -> None:
    """Finish or undo a swap that a killed ``prepare`` left half done (call under the folder lock)."""
    previous = target.parent / PREVIOUS_DIR
    if not previous.exists():
        return
    if target.exists():
        shutil.rmtree(previous, ignore_errors=True)  # the new folder made it in place
    else:
        fileio.rename(previous, target)


def _remove_stale_staging(folder: Path) -> None:
    """Remove staging folders of killed runs (only the lock holder may: no prepare is running)."""
    for entry in folder.iterdir():
        if _STAGING.fullmatch(entry.name) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _recover_for_reading(data_dir: str | Path) -> None:
    """If a killed ``prepare`` left the previous folder aside, put it back before reading."""
    target = prepared_dir(data_dir)
    if target.exists() or not (target.parent / PREVIOUS_DIR).exists():
        return
    # Blocking: a live holder is either within its swap (done in moments) or about to recover.
    with fileio.folder_lock(target.parent, blocking=True):
        _recover(target)


def is_prepared(data_dir: str | Path) -> bool:
    """Whether a prepared corpus exists (finishing the swap of a killed ``prepare`` first)."""
    _recover_for_reading(data_dir)
    return (prepared_dir(data_dir) / "meta.json").is_file()


class PreparedMeta(dict):
    """The contents of ``meta.json``; a missing ``train_counts`` (older folders) is counted on first use."""

    def __init__(self, values: dict, train_path: Path, vocab_size: int):
        super().__init__(values)
        self._train_path = train_path
        self._vocab_size = vocab_size

    def __missing__(self, key):
        if key != TRAIN_COUNTS:
            raise KeyError(key)
        counts = self[key] = encoding.count_ids(self._train_path, self._vocab_size).tolist()
        return counts

    def __contains__(self, key) -> bool:
        return key == TRAIN_COUNTS or super().__contains__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


_META_KEYS = {"characters": int, "vocab_size": int, "train_characters": int, "val_characters": int, "sha256": str}


def load_prepared(data_dir: str | Path) -> PreparedData:
    """Open a prepared corpus, splits memory-mapped.

    Raises:
        PreparedDataError: nothing is prepared under ``data_dir``, or the preparation is
            incomplete, damaged or inconsistent.
    """
    folder = prepared_dir(data_dir)
    again = f"Run `shakegen prepare --data-dir {data_dir}` again."
    if not is_prepared(data_dir):
        raise PreparedDataError(f"No prepared corpus in {folder}. Run `shakegen prepare --data-dir {data_dir}` first.")
    try:
        meta = fileio.read_json(folder / "meta.json")
        vocab = Vocabulary.from_json(fileio.read_json(folder / "vocab.json"))
        train = np.load(folder / "train.npy", mmap_mode="r")
        val = np.load(folder / "val.npy", mmap_mode="r")
    except (OSError, ValueError, TypeError) as error:
        raise PreparedDataError(
            f"The prepared corpus in {folder} is incomplete or damaged ({error}). {again}"
        ) from None
    if not isinstance(meta, dict) or any(not isinstance(meta.get(key), kind) for key, kind in _META_KEYS.items()):
        raise PreparedDataError(
            f"The prepared corpus in {folder} has a damaged meta.json (expected an object with "
            f"{', '.join(_META_KEYS)}). {again}"
        )
    if len(train) != meta["train_characters"] or len(val) != meta["val_characters"] or len(vocab) != meta["vocab_size"]:
        raise PreparedDataError(f"The prepared corpus in {folder} is inconsistent with its meta.json. {again}")
    counts = meta.get(TRAIN_COUNTS)
    if counts is not None and (
        not isinstance(counts, list) or len(counts) != len(vocab) or sum(counts) != meta["train_characters"]
    ):
        raise PreparedDataError(
            f"The prepared corpus in {folder} has train_counts inconsistent with its vocabulary. {again}"
        )
    return PreparedData(vocab=vocab, train=train, val=val, meta=PreparedMeta(meta, folder / "train.npy", len(vocab)))
