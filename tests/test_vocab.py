import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shakegen.data import vocab as vocab_module
from shakegen.data.vocab import UnknownCharactersError, Vocabulary, VocabularyError
from shakegen.errors import ShakegenError


@given(st.text(min_size=1))
def test_encode_decode_round_trip(text):
    vocab = Vocabulary.from_characters(text)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert ids.max() < len(vocab)
    assert [vocab.chars[i] for i in ids] == list(text)


def test_ids_are_sorted_positions_and_dtype_widens():
    vocab = Vocabulary.from_characters("cab")
    assert vocab.chars == ("a", "b", "c")
    assert vocab.encode("cab").tolist() == [2, 0, 1]
    assert vocab.dtype == np.uint8
    wide = Vocabulary.from_characters(chr(0x4E00 + i) for i in range(300))
    assert wide.dtype == np.uint16
    assert wide.decode(wide.encode("一丁")) == "一丁"


def test_unknown_characters_are_listed():
    vocab = Vocabulary.from_characters("abc")
    with pytest.raises(UnknownCharactersError) as info:
        vocab.encode("abzéz")
    assert info.value.unknown == ["z", "é"]
    assert "'z', 'é'" in str(info.value) and "3 characters" in str(info.value)


def test_json_round_trip():
    vocab = Vocabulary.from_characters("hello\n")
    assert Vocabulary.from_json(vocab.to_json()) == vocab


def test_encode_in_pieces_equals_one_piece(monkeypatch):
    text = "the quick brown fox jumps over the lazy dog\n" * 7
    vocab = Vocabulary.from_characters(text)
    whole = vocab.encode(text)
    monkeypatch.setattr(vocab_module, "ENCODE_CHUNK", 5)
    assert vocab.encode(text).tolist() == whole.tolist() == [vocab.char_to_id[char] for char in text]
    with pytest.raises(UnknownCharactersError) as info:
        vocab.encode(text + "ZZé")  # unknown characters only in the last piece
    assert info.value.unknown == ["Z", "é"]


def test_errors_are_shakegen_errors():
    with pytest.raises(VocabularyError) as info:
        Vocabulary(("b", "a"))
    assert isinstance(info.value, ShakegenError) and isinstance(info.value, ValueError)
    error = UnknownCharactersError(["€"], 65, where="The checkpoint at run", subject="Seed text", advice="remove them")
    assert isinstance(error, ShakegenError)
    assert str(error) == (
        "Seed text has characters the model does not know: '€'. The checkpoint at run knows 65 characters; remove them."
    )
