import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shakegen.data import corpus

text_strategy = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("\r\n\t\ufeff\x00\x85e\u0301.,")
)


def test_clean_rules():
    raw = "\ufeffHello\r\nworld\rnew\x00 line\x07\tend\n" + "e\u0301"
    assert corpus.clean_text(raw) == "Hello\nworld\nnew line\tend\n\u00e9"


def test_clean_options():
    assert corpus.clean_text("Hello, World!", lowercase=True) == "hello, world!"
    assert corpus.clean_text("Hello, World! «quoted»", strip_punctuation=True) == "Hello World quoted"


@settings(max_examples=300, deadline=None)
@given(text_strategy, st.booleans(), st.booleans())
def test_cleaning_is_idempotent(text, lowercase, strip_punctuation):
    once = corpus.clean_text(text, lowercase=lowercase, strip_punctuation=strip_punctuation)
    assert corpus.clean_text(once, lowercase=lowercase, strip_punctuation=strip_punctuation) == once
    assert "\r" not in once
    assert unicodedata.is_normalized("NFC", once)


def test_tiny_shakespeare_is_unchanged_by_cleaning():
    text = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")
    assert len(text) == 1_115_394
    assert corpus.clean_text(text) == text


@settings(max_examples=100, deadline=None)
@given(text_strategy, st.integers(min_value=1, max_value=9))
def test_chunked_cleaning_equals_whole(tmp_path_factory, text, chunk_bytes):
    path = tmp_path_factory.mktemp("c") / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    pieces = list(corpus.iter_clean_chunks(path, chunk_bytes=chunk_bytes))
    assert "".join(pieces) == corpus.clean_text(text)


def test_invalid_utf8_names_the_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good text\n" * 3 + b"caf\xe9\n")
    try:
        list(corpus.iter_clean_chunks(path, chunk_bytes=7))
    except corpus.CorpusError as error:
        assert "offset 33" in str(error) and "--encoding" in str(error)
    else:
        raise AssertionError("expected CorpusError")
    assert "".join(corpus.iter_clean_chunks(path, encoding="latin-1")).endswith("café\n")


# A compact alphabet holding every character that makes a cut unsafe: CR/LF halves,
# controls cleaning drops, Σ (lowered by its neighbours), case-ignorable marks and
# apostrophes, combining marks, Hangul jamo that compose, punctuation that stripping drops.
tricky_text = st.text(
    alphabet=st.sampled_from(list("ab Σσ'.:\r\n\t\x00\x85\ufeffe\u0301\u0327\u1100\u1161\u11a8가İ1中,«")),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(tricky_text, st.integers(min_value=1, max_value=7), st.booleans(), st.booleans())
def test_chunked_cleaning_equals_whole_with_every_option(tmp_path_factory, text, chunk_bytes, lowercase, strip):
    path = tmp_path_factory.mktemp("c") / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    options = {"lowercase": lowercase, "strip_punctuation": strip}
    pieces = list(corpus.iter_clean_chunks(path, chunk_bytes=chunk_bytes, **options))
    assert "".join(pieces) == corpus.clean_text(text, **options)


@pytest.mark.parametrize(
    "name, text",
    [
        ("CR only", "To be, or not to be:\rthat is the question.\r" * 40),
        ("no line ends", "To be, or not to be: that is the question. " * 40),
        ("no spaces either", "Tobeornottobethatisthequestion" * 40),
        ("CJK, no spaces", "生存还是毁灭这是一个值得考虑的问题" * 40),
        ("CRLF", "To be, or not to be:\r\nthat is the question.\r\n" * 40),
        ("dashes only", "-" * 2000),
        ("em dashes and CRs", "\u2014\u2014\r" * 300),
    ],
)
def test_chunks_stay_small_whatever_the_line_ends(tmp_path, name, text):
    # Every piece is at most two reads long (the text held back from one read, plus the
    # next read up to its cut), however long the file: memory does not grow with it.
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    chunk_bytes = 16
    pieces = list(corpus.iter_clean_chunks(path, chunk_bytes=chunk_bytes))
    assert "".join(pieces) == corpus.clean_text(text)
    assert max(len(piece.encode("utf-8")) for piece in pieces) <= 2 * chunk_bytes
    assert len(pieces) >= len(text.encode("utf-8")) // (2 * chunk_bytes)


@pytest.mark.parametrize("lowercase", [False, True])
def test_crlf_and_sigma_split_at_a_read_boundary(tmp_path, lowercase):
    # Reads of 3 bytes cut "ab\r|\ncd": the pair must still become one "\n". "ΑΣ" and the
    # apostrophe after it decide whether Σ lowers to the final form across the read boundary.
    text = "ab\r\ncd\rΑΣ' x\r\n"
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    for chunk_bytes in range(1, 8):
        pieces = corpus.iter_clean_chunks(path, chunk_bytes=chunk_bytes, lowercase=lowercase)
        assert "".join(pieces) == corpus.clean_text(text, lowercase=lowercase)


def test_characters_cuts_open_at_are_safe_in_all_of_unicode():
    """Checks, over every assigned code point, the facts the cut rule rests on, with facts derived apart from it."""
    # Unassigned and private-use code points are starters that compose with nothing: skipped for speed.
    assigned = [chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) not in ("Cn", "Co")]
    second_halves = set()  # characters NFC composes with the one before, found by NFC itself
    for char in assigned:
        nfd = unicodedata.normalize("NFD", char)
        if len(nfd) >= 2 and unicodedata.normalize("NFC", nfd) != unicodedata.normalize("NFC", nfd[:-1]) + nfd[-1]:
            second_halves.add(nfd[-1])
    assert {"\u0301", "\u0327", "\u11a8", "\u1161"} <= second_halves
    for lowercase, strip in ((False, False), (True, True)):
        opening = [char for char in assigned if corpus._opens.__wrapped__(char, lowercase, strip)]
        assert len(opening) > 100_000  # letters, digits and symbols of every script
        for char in opening:
            cleaned = corpus.clean_text(char, lowercase=lowercase, strip_punctuation=strip, at_start=False)
            first = unicodedata.normalize("NFD", cleaned)[0]
            assert first not in second_halves and unicodedata.combining(first) == 0, hex(ord(char))
    stops = [char for char in assigned if corpus._stops_sigma.__wrapped__(char)]
    assert {"-", "a", "1", " ", "\r"} <= set(stops) and not {".", "'", ":", "\u03a3", "\u0301", "\x00"} & set(stops)
    for char in stops:
        # Unicode's Case_Ignorable: marks, format characters, modifiers, and the apostrophe, period and colon kin.
        ignorable = unicodedata.category(char) in ("Mn", "Me", "Cf", "Lm", "Sk") or char in "'.:\u00b7\u2018\u2019"
        assert not ignorable and char != "\u03a3", hex(ord(char))


# Texts in which no cut is safe under these options: a run of combining marks; with
# --lowercase, case-ignorable marks (the final-sigma rule looks through them) and CRs; with
# --strip-punctuation, punctuation (dropped, it lets its neighbours meet). Multi-byte
# characters (U+00B7, U+2019, U+2014: 2 and 3 bytes in UTF-8) are cut across by the reads.
_NO_SAFE_CUT = [
    ("combining marks", "e" + "\u0301" * 3000 + "x", {}),
    ("case-ignorable marks", "A" + ".\u00b7'\r\u2019:" * 500 + "b", {"lowercase": True}),
    ("punctuation stripped", "a" + "\u2014-.\u00ab" * 600 + "z", {"strip_punctuation": True}),
]


@pytest.mark.parametrize("name, text, options", _NO_SAFE_CUT, ids=[case[0] for case in _NO_SAFE_CUT])
@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 16])
def test_text_without_a_safe_cut_is_cut_anyway_and_cleans_the_same(tmp_path, name, text, options, chunk_bytes):
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    assert corpus._last_safe_cut(text[0], text[1:-1], **options) < 0  # none between its first and last character
    max_held = 40
    pieces = list(corpus.iter_clean_chunks(path, chunk_bytes=chunk_bytes, max_held_chars=max_held, **options))
    assert "".join(pieces) == corpus.clean_text(text, **options)
    # Nothing in these texts grows when cleaned: a piece is at most what was held plus one read.
    assert max(len(piece) for piece in pieces) <= max_held + chunk_bytes
    if "strip_punctuation" not in options:  # stripped pieces are mostly empty, hence not yielded
        assert len(pieces) >= len(text) // (max_held + chunk_bytes)


def test_forced_cuts_never_split_a_crlf_nor_the_last_character():
    for text in ("\u0301\u0301\r", "\u0301\r\u0301", "ab\u0301\u0301"):
        cut = corpus._forced_cut(text, 100)
        assert 0 < cut < len(text) and text[cut - 1 : cut + 1] != "\r\n"
    assert corpus._forced_cut("e\u0301\u0301\u0301", 100) == 3  # no character NFC starts at: the last place
    assert corpus._forced_cut("ab\u0301\u0301\u0301", 100) == 1  # before the "b" the marks compose with
