import json

import numpy as np
import pytest

from shakegen import corpus, prepare
from shakegen.corpus import CorpusError


def test_embedded_corpus_statistics(tmp_path):
    meta = prepare.prepare_corpus(corpus.EMBEDDED_CORPUS, tmp_path)
    assert meta["characters"] == 1_115_394
    assert meta["vocab_size"] == 65
    assert meta["sha256"] == corpus.TINY_SHAKESPEARE_SHA256
    # nanoGPT's split: the first int(0.9 n) characters train, the rest validate.
    assert meta["train_characters"] == int(1_115_394 * 0.9) == 1_003_854
    data = prepare.load_prepared(tmp_path)
    text = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")
    assert data.vocab.chars == tuple(sorted(set(text)))
    assert data.train.dtype == np.uint8
    assert data.vocab.decode(data.train[:200]) == text[:200]
    assert data.vocab.decode(data.val) == text[1_003_854:]


def test_chunked_encoding_matches_whole_text(tmp_path, monkeypatch):
    source = tmp_path / "in.txt"
    text = "".join(f"line {i} – ünïcödé\r\n" for i in range(200))
    source.write_text(text, encoding="utf-8", newline="")
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 37)
    prepare.prepare_corpus(source, tmp_path / "d", prepare.PrepareOptions(val_fraction=0.25))
    data = prepare.load_prepared(tmp_path / "d")
    cleaned = corpus.clean_text(text)
    split = int(len(cleaned) * 0.75)
    assert data.vocab.decode(data.train) == cleaned[:split]
    assert data.vocab.decode(data.val) == cleaned[split:]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "no text"),
        (b"   \n\t \n", "no text"),
        (b"tiny text", "too small"),
        (b"\x00\x01\x02binary" * 20, "binary"),
    ],
)
def test_bad_inputs_are_refused_and_write_nothing(tmp_path, content, expected):
    source = tmp_path / "in.txt"
    source.write_bytes(content)
    with pytest.raises(CorpusError, match=expected):
        prepare.prepare_corpus(source, tmp_path / "d")
    assert not (tmp_path / "d" / "prepared").exists()


def test_failure_keeps_previous_preparation(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("To be, or not to be, that is the question.\n" * 10)
    prepare.prepare_corpus(good, tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()}
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"valid start\n" * 10 + b"\xff")
    with pytest.raises(CorpusError, match="offset 120"):
        prepare.prepare_corpus(bad, tmp_path)
    after = {p.name: p.read_bytes() for p in (tmp_path / "prepared").iterdir()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert json.loads(after["meta.json"])["source"] == str(good)
