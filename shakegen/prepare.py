"""Prepared data: the cleaned corpus as a vocabulary and encoded train/val splits.

Layout of ``<data_dir>/prepared/``: ``vocab.json``, ``train.npy``, ``val.npy`` (integer ids,
read memory-mapped) and ``meta.json``. The folder is built beside its final place and
swapped in by rename, so a crash leaves the previous preparation intact.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from shakegen import corpus, fileio
from shakegen.errors import PreparedDataError
from shakegen.vocab import Vocabulary

PREPARED_DIR = "prepared"
# The smallest preset trains on windows of 32 characters; a corpus must hold one of them.
MIN_TRAIN_CHARS = 33
MIN_VAL_CHARS = 2
UNICODE_SIZE = 0x110000
ENCODE_BLOCK = 16 * 1024 * 1024


@dataclass(frozen=True)
class PrepareOptions:
    lowercase: bool = False
    strip_punctuation: bool = False
    val_fraction: float = 0.1
    encoding: str = "utf-8"

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {self.val_fraction}.")


@dataclass(frozen=True)
class PreparedData:
    """A prepared corpus, with the splits memory-mapped."""

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
) -> dict:
    """Clean ``input_path``, build its vocabulary, split and encode it under ``data_dir``.

    The file is read and cleaned once, in chunks: each chunk's code points are counted and
    appended to a scratch file; once the vocabulary is known, the scratch file is mapped to
    ids block by block. Memory stays bounded whatever the file size.

    Returns:
        The metadata written to ``meta.json``.
    Raises:
        CorpusError: the file is missing, binary, undecodable, empty or too small.
    """
    input_path = Path(input_path)
    corpus.check_readable_file(input_path)
    total_bytes = max(1, input_path.stat().st_size)
    target = prepared_dir(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".prepared.", dir=target.parent))
    staging.chmod(0o777 & ~fileio.current_umask())
    try:
        scratch = staging / "codepoints.u32"
        counts, digest, total_chars = _read_codepoints(input_path, options, scratch, total_bytes, progress)
        vocab = _vocabulary(counts, input_path)
        train_chars = int(total_chars * (1.0 - options.val_fraction))
        val_chars = total_chars - train_chars
        if train_chars < MIN_TRAIN_CHARS or val_chars < MIN_VAL_CHARS:
            raise corpus.CorpusError(
                f"Input {input_path} is too small: {total_chars} characters after cleaning give "
                f"{train_chars} for training and {val_chars} for validation; expected at least "
                f"{MIN_TRAIN_CHARS} and {MIN_VAL_CHARS}. Use a longer text or change --val-fraction."
            )
        _encode_splits(scratch, vocab, train_chars, staging)
        scratch.unlink()
        if progress:
            progress("encode", total_bytes, total_bytes)
        codepoints = np.flatnonzero(counts)
        order = np.argsort(-counts[codepoints], kind="stable")[:10]
        meta = {
            "source": str(input_path),
            "sha256": digest,
            "characters": total_chars,
            "vocab_size": len(vocab),
            "train_characters": train_chars,
            "val_characters": val_chars,
            "dtype": vocab.dtype.name,
            "options": asdict(options),
            "most_frequent": [[chr(codepoints[i]), int(counts[codepoints[i]])] for i in order],
        }
        fileio.write_json(staging / "vocab.json", vocab.to_json())
        fileio.write_json(staging / "meta.json", meta)
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def _read_codepoints(input_path: Path, options: PrepareOptions, scratch: Path, total_bytes: int, progress):
    """One pass over the cleaned text: code point counts, SHA-256, length; code points to ``scratch``."""
    counts = np.zeros(UNICODE_SIZE, np.int64)
    digest = hashlib.sha256()
    total_chars = 0
    bytes_seen = 0
    with open(scratch, "wb") as handle:
        for piece in _chunks(input_path, options):
            codes = np.frombuffer(piece.encode("utf-32-le"), dtype="<u4")
            counts += np.bincount(codes, minlength=UNICODE_SIZE)
            encoded = piece.encode("utf-8")
            digest.update(encoded)
            handle.write(codes.tobytes())
            total_chars += len(codes)
            bytes_seen += len(encoded)
            if progress:
                progress("read", min(bytes_seen, total_bytes), total_bytes)
    return counts, digest.hexdigest(), total_chars


def _vocabulary(counts: np.ndarray, input_path: Path) -> Vocabulary:
    chars = [chr(code) for code in np.flatnonzero(counts)]
    if not chars or all(char.isspace() for char in chars):
        raise corpus.CorpusError(
            f"Input {input_path} holds no text after cleaning (it is empty or only whitespace). "
            "Pass a file with some text in it."
        )
    return Vocabulary(tuple(chars))


def _encode_splits(scratch: Path, vocab: Vocabulary, train_chars: int, staging: Path) -> None:
    """Map the scratch file's code points to ids, block by block, into train.npy and val.npy.

    Plain reads and writes rather than memory maps: mapped pages would count in the
    process's resident memory, and this must stay small whatever the corpus size.
    """
    table = np.zeros(UNICODE_SIZE, vocab.dtype)
    table[[ord(char) for char in vocab.chars]] = np.arange(len(vocab))
    total = scratch.stat().st_size // 4
    with open(scratch, "rb") as codes:
        for name, count in (("train", train_chars), ("val", total - train_chars)):
            with open(staging / f"{name}.npy", "wb") as out:
                header = {"descr": np.lib.format.dtype_to_descr(vocab.dtype), "fortran_order": False, "shape": (count,)}
                np.lib.format.write_array_header_1_0(out, header)
                for block in range(0, count, ENCODE_BLOCK):
                    ids = np.fromfile(codes, dtype="<u4", count=min(ENCODE_BLOCK, count - block))
                    table[ids].tofile(out)


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with renames only."""
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=".retired.", dir=target.parent))
        target.rename(retired / "old")
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(target)


def is_prepared(data_dir: str | Path) -> bool:
    return (prepared_dir(data_dir) / "meta.json").is_file()


def load_prepared(data_dir: str | Path) -> PreparedData:
    """Open a prepared corpus, splits memory-mapped.

    Raises:
        FileNotFoundError: nothing is prepared under ``data_dir``.
        CorpusError: the preparation is incomplete or inconsistent.
    """
    folder = prepared_dir(data_dir)
    if not is_prepared(data_dir):
        raise PreparedDataError(f"No prepared corpus in {folder}. Run `shakegen prepare --data-dir {data_dir}` first.")
    try:
        meta = fileio.read_json(folder / "meta.json")
        vocab = Vocabulary.from_json(fileio.read_json(folder / "vocab.json"))
        train = np.load(folder / "train.npy", mmap_mode="r")
        val = np.load(folder / "val.npy", mmap_mode="r")
    except (OSError, ValueError) as error:
        raise corpus.CorpusError(
            f"The prepared corpus in {folder} is incomplete or damaged ({error}). "
            f"Run `shakegen prepare --data-dir {data_dir}` again."
        ) from None
    if len(train) != meta["train_characters"] or len(val) != meta["val_characters"] or len(vocab) != meta["vocab_size"]:
        raise corpus.CorpusError(
            f"The prepared corpus in {folder} is inconsistent with its meta.json. "
            f"Run `shakegen prepare --data-dir {data_dir}` again."
        )
    return PreparedData(vocab=vocab, train=train, val=val, meta=meta)
