import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shakegen import corpus

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


def test_inert_characters_are_safe_to_cut_between_in_all_of_unicode():
    """Checks, over every code point, the facts the cut rule rests on."""
    second_halves = set()  # characters that compose with the one before them under NFC
    for code in range(sys.maxunicode + 1):
        decomposition = unicodedata.decomposition(chr(code))
        if decomposition and not decomposition.startswith("<") and len(decomposition.split()) == 2:
            second_halves.add(chr(int(decomposition.split()[1], 16)))
    second_halves.update(chr(code) for code in range(0x1161, 0x11C3))  # Hangul vowels and trailing consonants
    inert = [chr(code) for code in range(sys.maxunicode + 1) if corpus._is_inert.__wrapped__(chr(code))]
    assert len(inert) > 100_000  # letters and digits of every script
    for char in inert:
        assert char not in second_halves and unicodedata.combining(char) == 0
        assert corpus.clean_text(char) == char
        # Not case-ignorable (str.lower's final-sigma rule would look past it): were it,
        # "AcΣ" would see the cased "A" through it, while "cΣ" sees nothing cased.
        assert not (("A" + char + "\u03a3").lower().endswith("ς") and (char + "\u03a3").lower().endswith("σ"))
