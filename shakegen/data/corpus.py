"""The raw corpus: where it comes from and how its text is cleaned.

Cleaning is a pure function of the text and is idempotent. Large files are read and
cleaned in chunks cut where cleaning cannot look across (a space, a line end, or before
nearly any character that is not a combining mark), so memory stays bounded whatever the
file size and its line endings; text with no such place for millions of characters is cut
anyway (see ``iter_clean_chunks``).
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

EMBEDDED_CORPUS = Path(__file__).parent / "tinyshakespeare.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
DEFAULT_RAW_PATH = Path("data") / "raw" / "tinyshakespeare.txt"

CHUNK_BYTES = 8 * 1024 * 1024
# Text with no safe cut is cut anyway past this many characters (see iter_clean_chunks).
MAX_HELD_CHARS = 8 * 1024 * 1024
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


def check_readable_file(path: Path, encoding: str = "utf-8") -> None:
    """Raise CorpusError unless ``path`` is an existing regular file that reads as text in ``encoding``."""
    if not path.exists():
        raise CorpusError(f"Input file {path} does not exist. Pass an existing text file with --input.")
    if path.is_dir():
        raise CorpusError(f"Input {path} is a directory; expected a text file. Pass a file with --input.")
    if looks_binary(path, encoding):
        with open(path, "rb") as handle:
            hint = _encoding_hint(handle.read(_BINARY_SNIFF_BYTES), encoding)
        raise CorpusError(
            f"Input {path} looks like a binary file, not {encoding} text (read so, it holds NUL or other control "
            "characters no text is made of); "
            f"expected plain text. {hint or 'Pass a text file with --input, or its --encoding.'}"
        )


# C0 controls no text is made of (tab, line ends and form feeds excluded) and DEL.
_BINARY_CONTROL = re.compile("[\x01-\x08\x0e-\x1f\x7f]")


def looks_binary(path: str | Path, encoding: str = "utf-8") -> bool:
    """Whether ``path`` starts like a binary file rather than like text written in ``encoding``.

    The one binary check, for every text shakegen reads. The first 8 kB are decoded in
    ``encoding`` (undecodable bytes replaced): text in any encoding holds no U+0000 and few
    control characters. NUL *bytes* are not counted, since UTF-16 and UTF-32 text is full
    of them. An unknown or bytes-to-bytes encoding gives False: reading the file says so.
    """
    try:
        check_encoding(encoding)
    except CorpusError:
        return False  # an unknown or bytes-to-bytes codec: reading the file says so
    with open(path, "rb") as handle:
        head = handle.read(_BINARY_SNIFF_BYTES)
    try:
        text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)
    except (UnicodeError, ValueError, TypeError):  # codecs that cannot replace (idna): judge the bytes
        return b"\x00" in head
    return "\x00" in text or len(_BINARY_CONTROL.findall(text)) > 0.3 * len(text)


def _encoding_hint(head: bytes, encoding: str) -> str:
    """A sentence naming the encoding ``head`` is likely written in, when it shows one (a BOM, NULs in turn)."""
    if codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        return ""
    for bom, name in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if head.startswith(bom):
            return f"It starts with a {name.upper()} byte-order mark: pass --encoding {name}."
    even, odd = head[0:200:2], head[1:200:2]
    if len(head) >= 8 and odd.count(0) == len(odd) and 0 not in even:
        return "Every other byte is NUL, as in UTF-16 little-endian text: pass --encoding utf-16-le."
    if len(head) >= 8 and even.count(0) == len(even) and 0 not in odd:
        return "Every other byte is NUL, as in UTF-16 big-endian text: pass --encoding utf-16-be."
    return ""


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
    max_held_chars: int = MAX_HELD_CHARS,
) -> Iterator[str]:
    """Yield the cleaned text of ``path`` in pieces whose concatenation equals ``clean_text`` of the whole file.

    Each read of ``chunk_bytes`` is decoded and cut at the last safe boundary (see
    ``_last_safe_cut``); the text after it waits for the next read. Any line end, space or
    tab is one, and so is nearly any place in running text, so the text held back stays
    below one chunk whatever the line endings (CR only, none at all). Text with no safe
    boundary at all (a run of combining marks; with ``strip_punctuation``, of punctuation)
    is cut anyway once ``max_held_chars`` are held (see ``_forced_cut``), so no piece
    exceeds ``max_held_chars`` plus one read whatever the file holds.

    Raises:
        CorpusError: the bytes are not valid in ``encoding`` (the message names the
            byte offset), or the encoding is unknown or not a text encoding.
    """
    check_encoding(encoding)
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    held: list[str] = []  # decoded text after the last cut; no safe cut inside it
    held_chars = 0
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
                cut = _last_safe_cut(held[-1][-1] if held else "", text, lowercase, strip_punctuation)
                if cut < 0:
                    if text:  # empty while a multi-byte character is incomplete
                        held.append(text)
                        held_chars += len(text)
                    if held_chars <= max_held_chars:
                        continue
                    text, held = "".join(held), []
                    cut = _forced_cut(text, max_held_chars)
            piece = "".join(held) + text[:cut]
            held = [text[cut:]] if cut < len(text) else []
            held_chars = len(text) - cut
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
# Running text with no space or line end is searched for a safe pair only this far back, so
# a pathological chunk (no safe pair at all) costs little to search.
_PAIR_SEARCH_CHARS = 64 * 1024
_SIGMA = "\u03a3"


def _last_safe_cut(previous: str, text: str, lowercase: bool = False, strip_punctuation: bool = False) -> int:
    """An index ``i`` at which cleaning ``text[:i]`` and ``text[i:]`` apart equals cleaning them whole; -1 if none.

    ``previous`` is the character just before ``text`` (or ""). The cut falls after the
    last space, tab or line end; failing that, between the last pair of characters that
    ``_safe_between`` allows under these options. Never inside a "\r\n".
    """
    after_space = max(text.rfind(char) for char in _CUT_AFTER)
    if after_space >= 0:
        return after_space + 1
    for index in range(len(text) - 1, max(-1, len(text) - 1 - _PAIR_SEARCH_CHARS), -1):
        left = text[index - 1] if index > 0 else previous
        if left and _safe_between(left, text[index], lowercase, strip_punctuation):
            return index
    return -1


def _safe_between(left: str, right: str, lowercase: bool, strip_punctuation: bool) -> bool:
    """Whether cleaning may treat the text up to ``left`` and the text from ``right`` apart.

    Step by step: the two are not the halves of a "\r\n"; with ``lowercase``, neither is
    a Σ nor lets ``str.lower``'s final-sigma rule look past it (it is not case-ignorable,
    nor a control that is dropped before lowering); and NFC has a boundary before
    ``right``: cleaning keeps it, and it (as cleaned) starts with a character of
    combining class 0 that composes with nothing before it. What comes before ``right``
    then never changes how the text from ``right`` on is normalised, nor the reverse.
    """
    if left == "\r" and right == "\n":
        return False
    if lowercase and not (_stops_sigma(left) and _stops_sigma(right)):
        return False
    return _opens(right, lowercase, strip_punctuation)


@functools.lru_cache(maxsize=None)
def _stops_sigma(char: str) -> bool:
    """Not Σ, not dropped before lowering, and not case-ignorable: the final-sigma rule stops at it.

    Asked of ``str.lower`` itself: a Σ after a cased letter is final unless a cased letter
    follows, looking past case-ignorable characters. Were ``char`` case-ignorable, "AΣ?A"
    would see the second A through it (σ) and "AΣ? " the space (ς); it is cased if both
    give σ, neither cased nor case-ignorable if both give ς.
    """
    if char == _SIGMA or (char != "\r" and _CONTROL.match(char)):
        return False
    through_letter = ("A" + _SIGMA + char + "A").lower()[1]
    through_space = ("A" + _SIGMA + char + " ").lower()[1]
    return through_letter == through_space


@functools.lru_cache(maxsize=None)
def _opens(char: str, lowercase: bool, strip_punctuation: bool) -> bool:
    """Whether NFC has a boundary before ``char`` as cleaning leaves it (and cleaning keeps it)."""
    cleaned = clean_text(char, lowercase=lowercase, strip_punctuation=strip_punctuation, at_start=False)
    first = unicodedata.normalize("NFD", cleaned)[:1]
    return bool(first) and unicodedata.combining(first) == 0 and first not in _composition_seconds()


@functools.lru_cache(maxsize=1)
def _composition_seconds() -> frozenset[str]:
    """Every character NFC may compose with the character before it.

    The second halves of the canonical two-character decompositions, and the Hangul
    vowels and trailing consonants, which compose by rule rather than by table.
    """
    seconds = {chr(code) for code in range(0x1161, 0x11C3)}
    for code in range(sys.maxunicode + 1):
        decomposition = unicodedata.decomposition(chr(code))
        if decomposition and not decomposition.startswith("<") and " " in decomposition:
            seconds.add(chr(int(decomposition.split()[-1], 16)))
    return frozenset(seconds)


def _forced_cut(text: str, max_chars: int) -> int:
    """A cut for text that holds no safe one: before a character NFC starts afresh at, if any.

    Never inside a "\r\n", and never after the last character (the next read may complete
    it). Only a run with no safe cut for ``max_chars`` characters comes here (8 million
    combining marks in a row); only that run's cleaning may then differ from a whole read.
    """
    lowest = max(1, len(text) - min(max_chars, _PAIR_SEARCH_CHARS))
    for index in range(len(text) - 1, lowest - 1, -1):
        right = text[index]
        if not (text[index - 1] == "\r" and right == "\n") and unicodedata.combining(right) == 0:
            if right not in _composition_seconds():
                return index
    return len(text) - 1


def unwritable_reason(folder: Path, error: OSError) -> str:
    """Why files cannot be written in ``folder``, for a message: a file in the way, or the system's reason."""
    in_the_way = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if in_the_way is not None and not in_the_way.is_dir():
        return f"{in_the_way} is a file, not a folder"
    return error.strerror or str(error)
