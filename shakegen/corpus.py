"""The raw corpus: where it comes from and how its text is cleaned.

Cleaning is a pure function of the text and is idempotent. Large files are read and
cleaned in chunks cut at line ends, so memory stays bounded whatever the file size.
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


def iter_clean_chunks(
    path: Path,
    *,
    encoding: str = "utf-8",
    lowercase: bool = False,
    strip_punctuation: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[str]:
    """Yield the cleaned text of ``path`` in pieces, each ending at a line end.

    Cutting after ``\\n`` keeps ``\\r\\n`` pairs together and never separates a base
    character from its combining marks, so the concatenation equals ``clean_text`` of
    the whole file.

    Raises:
        CorpusError: the bytes are not valid in ``encoding`` (the message names the
            byte offset) or the encoding is unknown.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        raise CorpusError(
            f"Unknown encoding {encoding!r}. Pass a Python codec name such as utf-8 or latin-1."
        ) from None
    carry = ""
    consumed = 0
    at_start = True
    with open(path, "rb") as handle:
        while True:
            raw = handle.read(chunk_bytes)
            final = not raw
            pending = len(decoder.getstate()[0])
            try:
                text = carry + decoder.decode(raw, final=final)
            except UnicodeDecodeError as error:
                offset = consumed - pending + error.start
                raise CorpusError(
                    f"Input {path} is not valid {encoding}: byte 0x{error.object[error.start]:02x} at "
                    f"offset {offset} cannot be decoded. Convert the file to UTF-8 or pass "
                    "--encoding (for example --encoding latin-1)."
                ) from None
            consumed += len(raw)
            if final:
                cut = len(text)
            else:
                cut = text.rfind("\n") + 1
            piece, carry = text[:cut], text[cut:]
            if piece:
                yield clean_text(piece, lowercase=lowercase, strip_punctuation=strip_punctuation, at_start=at_start)
                at_start = False
            if final:
                return
