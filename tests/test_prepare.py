import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from shakegen import fileio
from shakegen.cli import main
from shakegen.data import corpus, prepare
from shakegen.data.corpus import CorpusError
from shakegen.errors import PreparedDataError


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


def test_train_counts_are_stored_by_id(tmp_path, monkeypatch):
    from shakegen.data import encoding

    # Over 256 distinct characters (uint16 ids), encoded and counted in many small blocks.
    monkeypatch.setattr(encoding, "ENCODE_BLOCK", 1000)
    monkeypatch.setattr(encoding, "COUNT_BLOCK", 77, raising=False)
    source = tmp_path / "in.txt"
    source.write_text("".join(chr(0x4E00 + (i * 7919) % 300) + " ab\n"[i % 4] for i in range(20_000)))
    meta = prepare.prepare_corpus(source, tmp_path)
    data = prepare.load_prepared(tmp_path)
    assert data.train.dtype == np.uint16
    expected = np.bincount(np.asarray(data.train, np.int64), minlength=len(data.vocab)).tolist()
    assert meta["train_counts"] == data.meta["train_counts"] == expected
    assert json.loads((tmp_path / "prepared" / "meta.json").read_text())["train_counts"] == expected


def test_folders_prepared_before_train_counts_still_load(tmp_path, monkeypatch):
    from shakegen.data import encoding

    prepare.prepare_corpus(corpus.EMBEDDED_CORPUS, tmp_path)
    meta_path = tmp_path / "prepared" / "meta.json"
    old = json.loads(meta_path.read_text())
    del old["train_counts"]
    meta_path.write_text(json.dumps(old))
    monkeypatch.setattr(encoding, "ENCODE_BLOCK", 100_000)  # counted block by block, not in one go
    data = prepare.load_prepared(tmp_path)
    expected = np.bincount(np.asarray(data.train), minlength=65).tolist()
    assert "train_counts" in data.meta and data.meta.get("train_counts") == expected
    assert data.meta["train_counts"] == expected and sum(expected) == 1_003_854


def test_inconsistent_train_counts_are_refused(tmp_path):
    prepare.prepare_corpus(corpus.EMBEDDED_CORPUS, tmp_path)
    meta_path = tmp_path / "prepared" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["train_counts"][0] += 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(PreparedDataError, match="train_counts inconsistent.*prepare --data-dir"):
        prepare.load_prepared(tmp_path)


@pytest.mark.parametrize("meta", ["[1, 2]", '{"characters": "many"}'])
def test_damaged_meta_json_is_one_clear_error(tmp_path, meta):
    prepare.prepare_corpus(corpus.EMBEDDED_CORPUS, tmp_path)
    (tmp_path / "prepared" / "meta.json").write_text(meta)
    with pytest.raises(PreparedDataError, match="damaged meta.json.*prepare --data-dir"):
        prepare.load_prepared(tmp_path)


@pytest.mark.parametrize(
    "encoding, message", [("base64", "not a text encoding"), ("no-such-codec", "Unknown encoding")]
)
def test_cli_refuses_an_encoding_that_is_not_a_text_encoding(tmp_path, encoding, message):
    source = tmp_path / "in.txt"
    source.write_text("To be, or not to be, that is the question.\n" * 10)
    args = ["prepare", "--input", str(source), "--data-dir", str(tmp_path / "d"), "--encoding", encoding]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


# A prepare killed (no cleanup, no finally) when it reaches a given point, in a child process.
_KILLED_PREPARE = """
import os, sys
from shakegen.data import encoding, prepare
where, count = sys.argv[3], int(sys.argv[4])
calls = []
def step(real):
    def wrapped(*args, **kwargs):
        calls.append(1)
        if where in ("before", "encode") and len(calls) == count:
            os._exit(3)
        result = real(*args, **kwargs)
        if where == "after" and len(calls) == count:
            os._exit(3)
        return result
    return wrapped
if where == "encode":
    encoding.encode_splits = step(encoding.encode_splits)
else:
    os.rename = step(os.rename)  # what every rename of a folder comes down to
prepare.prepare_corpus(sys.argv[1], sys.argv[2])
"""


def _killed_prepare(source, data_dir, where, count=1):
    result = subprocess.run(
        [sys.executable, "-c", _KILLED_PREPARE, str(source), str(data_dir), where, str(count)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3, result.stderr


def _two_corpora(tmp_path):
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_text("To be, or not to be, that is the question.\n" * 10)
    new.write_text("Now is the winter of our discontent.\n" * 10)
    prepare.prepare_corpus(old, tmp_path / "d")
    return old, new


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_kill_between_the_two_renames_keeps_the_previous_preparation(tmp_path):
    old, new = _two_corpora(tmp_path)
    _killed_prepare(new, tmp_path / "d", "before", count=2)  # prepared/ moved aside, new one not in
    assert not (tmp_path / "d" / "prepared").exists()
    # train's first question: is anything prepared? The swap is undone, not forgotten.
    assert prepare.is_prepared(tmp_path / "d")
    assert prepare.load_prepared(tmp_path / "d").meta["source"] == str(old)
    assert len(_hidden(tmp_path / "d")) == 1  # the killed run's staging folder
    prepare.prepare_corpus(new, tmp_path / "d")
    assert prepare.load_prepared(tmp_path / "d").meta["source"] == str(new)
    assert _hidden(tmp_path / "d") == []


def test_kill_after_the_swap_keeps_the_new_preparation(tmp_path):
    old, new = _two_corpora(tmp_path)
    _killed_prepare(new, tmp_path / "d", "after", count=2)  # new one in, old one not yet removed
    assert _hidden(tmp_path / "d") == [".prepared.old"]
    assert prepare.load_prepared(tmp_path / "d").meta["source"] == str(new)
    prepare.prepare_corpus(old, tmp_path / "d")
    assert prepare.load_prepared(tmp_path / "d").meta["source"] == str(old)
    assert _hidden(tmp_path / "d") == []


def test_stale_staging_of_a_killed_run_is_removed(tmp_path):
    old, new = _two_corpora(tmp_path)
    _killed_prepare(new, tmp_path / "d", "encode")
    leftovers = _hidden(tmp_path / "d")
    assert len(leftovers) == 1 and (tmp_path / "d" / leftovers[0] / "codepoints.u32").exists()
    (tmp_path / "d" / ".retired.abcd1234" / "old").mkdir(parents=True)  # left by earlier versions
    (tmp_path / "d" / "notes").mkdir()
    prepare.prepare_corpus(new, tmp_path / "d")
    assert _hidden(tmp_path / "d") == [] and (tmp_path / "d" / "notes").is_dir()
    assert prepare.load_prepared(tmp_path / "d").meta["source"] == str(new)


def test_an_error_between_the_renames_puts_the_previous_back(tmp_path, monkeypatch):
    old, new = _two_corpora(tmp_path)
    real_rename, calls = fileio.rename, []

    def failing_second(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_rename(source, target)

    monkeypatch.setattr(fileio, "rename", failing_second)
    with pytest.raises(OSError, match="No space"):
        prepare.prepare_corpus(new, tmp_path / "d")
    monkeypatch.undo()
    assert (tmp_path / "d" / "prepared").is_dir() and _hidden(tmp_path / "d") == []
    assert prepare.load_prepared(tmp_path / "d").meta["source"] == str(old)


def test_files_and_renames_are_made_durable(tmp_path, monkeypatch):
    old, new = _two_corpora(tmp_path)
    events = []
    real_rename, real_fsync, real_fsync_dir = os.rename, os.fsync, fileio.fsync_dir

    def fsync(fd):
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if path.is_file():  # folders are recorded by fsync_dir
            events.append(("fsync", path.name))
        real_fsync(fd)

    monkeypatch.setattr(os, "rename", lambda a, b: (events.append(("rename", Path(b).name)), real_rename(a, b)))
    monkeypatch.setattr(fileio, "fsync_dir", lambda d: (events.append(("fsync dir", Path(d).name)), real_fsync_dir(d)))
    monkeypatch.setattr(os, "fsync", fsync)
    prepare.prepare_corpus(new, tmp_path / "d")
    renames = [i for i, event in enumerate(events) if event[0] == "rename"]
    assert [events[i][1] for i in renames] == [".prepared.old", "prepared"]
    for i in renames:  # each rename is followed by an fsync of the folder holding it
        assert events[i + 1] == ("fsync dir", "d")
    before = events[: renames[0]]
    assert {("fsync", name) for name in ("train.npy", "val.npy")} <= set(before)
    assert before[-1][0] == "fsync dir" and before[-1][1].startswith(".prepared.")  # staging, after its last file


# --- one binary check; UTF-16 and UTF-32 corpora (issue 25 item 11) ---------------------------

_TEXT = "First Citizen:\r\nBefore we proceed any further, hear me speak.\r\nCafé, naïve, Σίσυφος 🎭\r\n" * 20
# PNG's signature and header chunk, zeros (as in any image's rows), then noise.
_PNG_LIKE = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(24) + np.random.default_rng(0).bytes(4000)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_corpora_prepare_to_the_ids_of_the_utf8_one(tmp_path, encoding):
    utf8 = tmp_path / "utf8.txt"
    utf8.write_bytes(_TEXT.encode("utf-8"))
    wide = tmp_path / "wide.txt"
    wide.write_bytes(_TEXT.encode(encoding))  # "utf-16" and "utf-32" write a byte-order mark, the others none
    assert b"\x00" in wide.read_bytes()
    expected = prepare.prepare_corpus(utf8, tmp_path / "a")
    meta = prepare.prepare_corpus(wide, tmp_path / "b", prepare.PrepareOptions(encoding=encoding))
    assert meta["sha256"] == expected["sha256"] == hashlib.sha256(corpus.clean_text(_TEXT).encode()).hexdigest()
    a, b = prepare.load_prepared(tmp_path / "a"), prepare.load_prepared(tmp_path / "b")
    assert b.vocab.chars == a.vocab.chars == tuple(sorted(set(corpus.clean_text(_TEXT))))
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    assert b.vocab.decode(np.concatenate([b.train, b.val])) == _TEXT.replace("\r\n", "\n")
    # eval --text reads it as prepare does: the same ids as the UTF-8 file.
    from shakegen.runs import checkpoint, pretrained
    from shakegen.use import scored_text

    info = checkpoint.read_run(pretrained.BUNDLE_DIR)
    narrow = scored_text.evaluation_ids(info, split=None, text_path=utf8)
    read = scored_text.evaluation_ids(info, split=None, text_path=wide, encoding=encoding)
    assert np.array_equal(narrow.ids, read.ids) and narrow.left_out == read.left_out > 0  # é, Σ, 🎭: unknown


def _one_line_error(result, *expected):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("Error:") and all(text in lines[0] for text in expected), lines[0]


def test_cli_prepares_utf16_and_names_the_encoding_of_a_misread_one(tmp_path):
    source = tmp_path / "wide.txt"
    source.write_bytes(_TEXT.encode("utf-16"))
    misread = CliRunner().invoke(main, ["prepare", "--input", str(source), "--data-dir", str(tmp_path / "d")])
    _one_line_error(misread, "binary", "--encoding utf-16")
    assert not (tmp_path / "d" / "prepared").exists()
    args = ["prepare", "--input", str(source), "--data-dir", str(tmp_path / "d"), "--encoding", "utf-16"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert prepare.load_prepared(tmp_path / "d").meta["characters"] == len(_TEXT.replace("\r\n", "\n"))


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "utf-16", "utf-16-le", "utf-32", "utf-32-be"])
def test_a_binary_file_is_refused_in_every_encoding_by_prepare_and_eval(tmp_path, encoding):
    from shakegen.errors import EvaluationError
    from shakegen.runs import checkpoint, pretrained
    from shakegen.use import scored_text

    image = tmp_path / "picture.png"
    image.write_bytes(_PNG_LIKE)
    args = ["prepare", "--input", str(image), "--data-dir", str(tmp_path / "d"), "--encoding", encoding]
    _one_line_error(CliRunner().invoke(main, args), "binary", encoding)
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())
    info = checkpoint.read_run(pretrained.BUNDLE_DIR)
    with pytest.raises(EvaluationError, match="binary"):
        scored_text.evaluation_ids(info, split=None, text_path=image, encoding=encoding)


def test_eval_text_refuses_a_binary_file_named_utf16_in_one_line(tmp_path):
    image = tmp_path / "picture.png"
    image.write_bytes(_PNG_LIKE)
    args = ["eval", "--checkpoint", "pretrained", "--text", str(image), "--encoding", "utf-16"]
    _one_line_error(CliRunner().invoke(main, args), "binary")


# --- preparations started together take turns (issue 25 item 11) --------------------------------

# Prepares the embedded corpus into argv[1] as training.ensure_prepared does, saying on stdout
# when it waits for the folder lock and whether it read the corpus itself.
_PREPARER = """
import sys
from shakegen.data import prepare
stages = []
def progress(stage, done, total):
    if stage == "wait" and "wait" not in stages:
        print("waiting", flush=True)
    stages.append(stage)
if not prepare.is_prepared(sys.argv[1]):
    source, _ = prepare.default_input()
    prepare.prepare_corpus(source, sys.argv[1], progress=progress)
prepare.load_prepared(sys.argv[1])
print("read" if "read" in stages else "reused", flush=True)
"""


def test_two_preparations_started_together_both_succeed_and_prepare_once(tmp_path):
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    root = Path(__file__).resolve().parent.parent
    with fileio.folder_lock(data_dir):  # both start while the folder is busy, as when one is mid-way
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _PREPARER, str(data_dir)],
                cwd=tmp_path,  # where no data/raw corpus is: both prepare the embedded one
                env={**os.environ, "PYTHONPATH": str(root)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        assert [child.stdout.readline() for child in children] == ["waiting\n", "waiting\n"]
    outcomes = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["read", "reused"]  # one prepared, the other found its work done
    single = prepare.prepare_corpus(corpus.EMBEDDED_CORPUS, tmp_path / "single")
    folder, expected = data_dir / "prepared", tmp_path / "single" / "prepared"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in expected.iterdir())
    for name in ("train.npy", "val.npy", "vocab.json"):
        assert (folder / name).read_bytes() == (expected / name).read_bytes()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["sha256"] == single["sha256"] == corpus.TINY_SHAKESPEARE_SHA256
    assert _hidden(data_dir) == []


def test_a_waiting_preparation_of_another_file_still_prepares_it(tmp_path, monkeypatch):
    old, new = _two_corpora(tmp_path)
    stages = []
    real_lock = fileio.folder_lock

    def busy_then_free(folder, *, blocking=False):  # the first try finds the folder busy
        if not blocking:
            raise BlockingIOError
        return real_lock(folder, blocking=True)

    monkeypatch.setattr(fileio, "folder_lock", busy_then_free)
    meta = prepare.prepare_corpus(new, tmp_path / "d", progress=lambda stage, done, total: stages.append(stage))
    assert stages[0] == "wait" and "read" in stages
    assert meta["source"] == str(new) and prepare.load_prepared(tmp_path / "d").meta["source"] == str(new)
    # The same file again, after waiting: the preparation just made is returned, not redone.
    stages.clear()
    assert prepare.prepare_corpus(new, tmp_path / "d", progress=lambda *a: stages.append(a[0])) == meta
    assert stages == ["wait"]
    # Changed since, or other options: prepared again.
    new.write_text("Now is the winter of our discontent, made glorious summer.\n" * 10)
    assert prepare.prepare_corpus(new, tmp_path / "d")["sha256"] != meta["sha256"]
    lowered = prepare.prepare_corpus(new, tmp_path / "d", prepare.PrepareOptions(lowercase=True))
    assert lowered["options"]["lowercase"] is True


# --- what a person might type (issue 25) ---------------------------------------------------------


def test_a_data_dir_that_cannot_be_written_is_one_line(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("To be, or not to be, that is the question.\n" * 10)
    (tmp_path / "file").write_text("not a folder")
    args = ["prepare", "--input", str(source), "--data-dir", str(tmp_path / "file" / "d")]
    _one_line_error(CliRunner().invoke(main, args), "Cannot write the prepared corpus", "--data-dir")
    assert (tmp_path / "file").read_text() == "not a folder"


def test_reuse_returns_a_matching_preparation_without_reading_again(tmp_path):
    old, new = _two_corpora(tmp_path)  # old is prepared in tmp_path / "d"
    stages = []
    meta = prepare.prepare_corpus(old, tmp_path / "d", reuse=True, progress=lambda *a: stages.append(a[0]))
    assert stages == [] and meta == json.loads((tmp_path / "d" / "prepared" / "meta.json").read_text())
    assert prepare.prepare_corpus(new, tmp_path / "d", reuse=True)["source"] == str(new)  # another file: prepared


@pytest.mark.parametrize("encoding", ["hex", "base64", "no-such-codec", "undefined", "punycode"])
def test_eval_text_in_an_encoding_that_cannot_read_text_is_one_line(tmp_path, encoding):
    text = tmp_path / "t.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 5)
    args = ["eval", "--checkpoint", "pretrained", "--text", str(text), "--encoding", encoding]
    _one_line_error(CliRunner().invoke(main, args), encoding)


def test_a_failed_first_preparation_leaves_no_empty_data_dir(tmp_path):
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds no text"):
        prepare.prepare_corpus(tmp_path / "empty.txt", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds no text"):
        prepare.prepare_corpus(tmp_path / "empty.txt", tmp_path / "mine")
    assert sorted(path.name for path in (tmp_path / "mine").iterdir()) == ["notes.txt"]
