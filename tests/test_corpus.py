import unicodedata

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
