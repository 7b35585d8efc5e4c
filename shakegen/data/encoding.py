"""The cleaned corpus as ids in one bounded-memory pass: code points counted, the vocabulary, the encoded splits.

``prepare.py`` runs these inside its staging folder: ``read_codepoints`` writes every code point
of the cleaned text to a scratch file (4 bytes each) while counting them, ``vocabulary_of`` makes
the vocabulary from the counts, and ``encode_splits`` maps the scratch file to ids block by block
into ``train.npy`` and ``val.npy``. Memory stays bounded whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from shakegen.data import corpus
from shakegen.data.vocab import Vocabulary

UNICODE_SIZE = 0x110000
ENCODE_BLOCK = 16 * 1024 * 1024
# np.bincount casts its input to 8-byte integers: count in slices this long.
COUNT_BLOCK = 1024 * 1024


def read_codepoints(pieces: Iterable[str], scratch: Path, total_bytes: int, progress):
    """One pass over the cleaned text's ``pieces``: code point counts, SHA-256, length; code points to ``scratch``.

    ``progress``, if given, is called with ("read", UTF-8 bytes so far, ``total_bytes``) after each piece.
    """
    counts = np.zeros(UNICODE_SIZE, np.int64)
    digest = hashlib.sha256()
    total_chars = 0
    bytes_seen = 0
    with open(scratch, "wb") as handle:
        for piece in pieces:
            wide = piece.encode("utf-32-le")  # 4 bytes per character: the scratch file's format
            counts += bincount(np.frombuffer(wide, dtype="<u4"), UNICODE_SIZE)
            handle.write(wide)
            encoded = piece.encode("utf-8")
            digest.update(encoded)
            total_chars += len(wide) // 4
            bytes_seen += len(encoded)
            if progress:
                progress("read", min(bytes_seen, total_bytes), total_bytes)
    return counts, digest.hexdigest(), total_chars


def vocabulary_of(counts: np.ndarray, input_path: Path) -> Vocabulary:
    """The vocabulary of the code points ``counts`` counts (in code point order); refuses a text of only whitespace."""
    chars = [chr(code) for code in np.flatnonzero(counts)]
    if not chars or all(char.isspace() for char in chars):
        raise corpus.CorpusError(
            f"Input {input_path} holds no text after cleaning (it is empty or only whitespace). "
            "Pass a file with some text in it."
        )
    return Vocabulary(tuple(chars))


def encode_splits(scratch: Path, vocab: Vocabulary, train_chars: int, staging: Path) -> np.ndarray:
    """Map the scratch file's code points to ids, block by block, into train.npy and val.npy.

    Plain reads and writes rather than memory maps: mapped pages would count in the
    process's resident memory, and this must stay small whatever the corpus size.

    Returns:
        How often each id occurs in the val split (the smaller one: the train split's
        counts are the whole text's minus these).
    """
    table = np.zeros(UNICODE_SIZE, vocab.dtype)
    table[[ord(char) for char in vocab.chars]] = np.arange(len(vocab))
    total = scratch.stat().st_size // 4
    val_counts = np.zeros(len(vocab), np.int64)
    with open(scratch, "rb") as codes:
        for name, count in (("train", train_chars), ("val", total - train_chars)):
            with open(staging / f"{name}.npy", "wb") as out:
                header = {"descr": np.lib.format.dtype_to_descr(vocab.dtype), "fortran_order": False, "shape": (count,)}
                np.lib.format.write_array_header_1_0(out, header)
                for block in range(0, count, ENCODE_BLOCK):
                    ids = table[np.fromfile(codes, dtype="<u4", count=min(ENCODE_BLOCK, count - block))]
                    ids.tofile(out)
                    if name == "val":
                        val_counts += bincount(ids, len(vocab))
                out.flush()
                os.fsync(out.fileno())
    return val_counts


def bincount(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """``np.bincount`` in slices: it widens its input to 8 bytes per id."""
    counts = np.zeros(vocab_size, np.int64)
    for start in range(0, len(ids), COUNT_BLOCK):
        counts += np.bincount(ids[start : start + COUNT_BLOCK], minlength=vocab_size)
    return counts


def count_ids(npy_path: Path, vocab_size: int) -> np.ndarray:
    """How often each id occurs in a 1-D ``.npy`` file, read in blocks (not mapped: flat memory)."""
    counts = np.zeros(vocab_size, np.int64)
    with open(npy_path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(handle)
        for start in range(0, shape[0], ENCODE_BLOCK):
            counts += bincount(np.fromfile(handle, dtype=dtype, count=min(ENCODE_BLOCK, shape[0] - start)), vocab_size)
    return counts
