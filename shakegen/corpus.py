"""The raw corpus: where it comes from and how its text is cleaned.

Cleaning is a pure function of the text and is idempotent. Large files are read and
cleaned in chunks cut where cleaning cannot look across (a space, a line end, or between
two letters), so memory stays bounded whatever the file size and its line endings.
"""

from __future__ import annotations

import codecs
import functools
import re
import sys
import unicodedata
from pathlib import Path
from typing import Iterator

from shakegen.errors import CorpusError  # noqa: F401  (re-exported: corpus.CorpusError)

EMBEDDED_CORPUS = Path(__file__).parent / "data" / "tinyshakespeare.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
DEFAULT_RAW_PATH = Path("data") / "raw" / "tinyshakespeare.txt"

CHUNK_BYTES = 8 * 1024 * 1024
_BINARY_SNIFF_BYTES = 8192
# Every Cc (control) character except "\n" and "\t"; "\r" is handled before this runs.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@functools.lru_cache(maxsize=1)
def _punctuation_table() -> dict[int, None]:
    return {code: None for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)).startswith("P")}


def clean_text(
    text: str,
    *,
    lowercase: bool = False,
    strip_punctuation: bool = False,
    at_start: bool = True,
) -> str:
    """Return ``text`` cleaned for training.

    Line endings become ``\\n``, control characters other than ``\\n`` and ``\\t`` are
    dropped, a leading byte-order mark is stripped (only when ``at_start``), and the
    result is normalised to Unicode NFC. NFC runs last because dropping a character can
    bring a base letter and a combining mark together; this order keeps cleaning
    idempotent.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = text.translate(_punctuation_table())
    if at_start:
        text = text.lstrip("\ufeff")
    return unicodedata.normalize("NFC", text)


def check_readable_file(path: Path) -> None:
    """Raise CorpusError unless ``path`` is an existing, non-binary regular file."""
    if not path.exists():
        raise CorpusError(f"Input file {path} does not exist. Pass an existing text file with --input.")
    if path.is_dir():
        raise CorpusError(f"Input {path} is a directory; expected a text file. Pass a file with --input.")
    with open(path, "rb") as handle:
        head = handle.read(_BINARY_SNIFF_BYTES)
    if b"\x00" in head:
        raise CorpusError(
            f"Input {path} looks like a binary file (it holds NUL bytes); expected plain text. "
            "Pass a UTF-8 text file with --input."
        )


def check_encoding(encoding: str) -> None:
    """Raise CorpusError unless ``encoding`` names a codec that turns bytes into text.

    ``bytes.decode`` refuses bytes-to-bytes codecs (base64, zlib, rot13) with a LookupError,
    which tells them apart from text encodings without reading private attributes.
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CorpusError(
            f"Unknown encoding {encoding!r}. Pass a Python codec name such as utf-8 or latin-1."
        ) from None
    try:
        b"x".decode(encoding)
    except LookupError:
        raise CorpusError(
            f"Encoding {encoding!r} is not a text encoding (it maps bytes to bytes); expected the encoding "
            "the input file is written in. Pass one such as --encoding utf-8, latin-1 or cp1252."
        ) from None
    except UnicodeError:
        pass  # a text encoding in which one byte alone is not valid (utf-16, utf-32)


def iter_clean_chunks(
    path: Path,
    *,
    encoding: str = "utf-8",
    lowercase: bool = False,
    strip_punctuation: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[str]:
    """Yield the cleaned text of ``path`` in pieces whose concatenation equals ``clean_text`` of the whole file.

    Each read of ``chunk_bytes`` is decoded and cut at the last safe boundary (see
    ``_last_safe_cut``); the text after it waits for the next read. Any line end, space or
    tab is one, and so is nearly any place in running text, so the text held back stays
    below one chunk whatever the line endings (CR only, none at all).

    Raises:
        CorpusError: the bytes are not valid in ``encoding`` (the message names the
            byte offset), or the encoding is unknown or not a text encoding.
    """
    check_encoding(encoding)
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    held: list[str] = []  # decoded text after the last cut; no safe cut inside it
    consumed = 0
    at_start = True
    with open(path, "rb") as handle:
        while True:
            raw = handle.read(chunk_bytes)
            final = not raw
            text = _decode(decoder, raw, final, consumed, path, encoding)
            consumed += len(raw)
            if final:
                cut = len(text)
            else:
                cut = _last_safe_cut(held[-1][-1] if held else "", text)
                if cut < 0:
                    if text:  # empty while a multi-byte character is incomplete
                        held.append(text)
                    continue
            piece = "".join(held) + text[:cut]
            held = [text[cut:]] if cut < len(text) else []
            cleaned = clean_text(piece, lowercase=lowercase, strip_punctuation=strip_punctuation, at_start=at_start)
            if cleaned:
                # A piece that cleans to nothing (byte-order marks only) leaves the next at the start.
                at_start = False
                yield cleaned
            if final:
                return


def _decode(decoder, raw: bytes, final: bool, consumed: int, path: Path, encoding: str) -> str:
    pending = len(decoder.getstate()[0])
    try:
        return decoder.decode(raw, final=final)
    except UnicodeDecodeError as error:
        offset = consumed - pending + error.start
        raise CorpusError(
            f"Input {path} is not valid {encoding}: byte 0x{error.object[error.start]:02x} at "
            f"offset {offset} cannot be decoded. Convert the file to UTF-8 or pass "
            "--encoding (for example --encoding latin-1)."
        ) from None
    except UnicodeError as error:  # codecs such as idna raise the base class, without an offset
        raise CorpusError(
            f"Input {path} cannot be decoded as {encoding} ({error}). Convert the file to UTF-8 or pass "
            "the --encoding it is written in."
        ) from None


# After a space, tab or line end no cleaning step looks back across the cut: these are kept
# as they are, are neither cased nor case-ignorable, and compose with nothing under NFC.
_CUT_AFTER = (" ", "\t", "\n")
# Running text with no space or line end is searched for a pair of inert characters only
# this far back, so a pathological chunk (no inert pair at all) costs little to search.
_PAIR_SEARCH_CHARS = 64 * 1024


def _last_safe_cut(previous: str, text: str) -> int:
    """An index ``i`` at which cleaning ``text[:i]`` and ``text[i:]`` apart equals cleaning them whole; -1 if none.

    ``previous`` is the character just before ``text`` (or ""). The cut falls after the
    last space, tab or line end; failing that, between the last two inert characters
    (see ``_is_inert``). Never after a "\\r", which may be the first half of a "\\r\\n".
    """
    after_space = max(text.rfind(char) for char in _CUT_AFTER)
    if after_space >= 0:
        return after_space + 1
    for index in range(len(text) - 1, max(-1, len(text) - 1 - _PAIR_SEARCH_CHARS), -1):
        left = text[index - 1] if index > 0 else previous
        if left and _is_inert(text[index]) and _is_inert(left):
            return index
    return -1


@functools.lru_cache(maxsize=None)
def _is_inert(char: str) -> bool:
    """Whether every cleaning step treats ``char`` and its neighbours independently.

    A letter, digit or space separator that cleaning keeps, that is not case-ignorable
    (so ``str.lower``'s final-sigma rule stops at it), that NFC leaves alone and never
    composes with the character before it. Between two such characters a cut is safe.
    """
    if char == "\u03a3" or "\u1100" <= char <= "\u11ff":
        return False  # Σ lowers to σ or ς by its neighbours; Hangul jamo compose with theirs
    if unicodedata.category(char) not in _INERT_CATEGORIES or unicodedata.combining(char):
        return False
    lowered = char.lower()[:1]
    return unicodedata.normalize("NFC", char) == char and unicodedata.category(lowered) in _INERT_CATEGORIES


# Letters (but not modifier letters, which are case-ignorable), numbers and space separators.
# No character in these categories is the second half of a canonical composition except the
# Hangul jamo excluded above (checked over the whole Unicode database in tests/test_corpus.py).
_INERT_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lo", "Nd", "Nl", "No", "Zs"})
