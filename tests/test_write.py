"""`shakegen write`: the proposals against the float64 reference, the line prompt, and the writing screen
driven in a pseudo-terminal (keystrokes in, the screen read back through a terminal emulator)."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from shakegen.cli import main
from shakegen.cli import writing as write
from shakegen.runs import checkpoint
from shakegen.use import engine, suggest
from tests import reference
from tests.test_engine import write_random_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, small_text):
    run_dir = write_random_run(tmp_path_factory.mktemp("write") / "run", small_text, "gru", 2, seed=4)
    loaded, info, _ = engine.load(run_dir)
    weights = reference.run_weights(checkpoint.checkpoint_path(run_dir, "best"), "gru")
    return run_dir, loaded, info.vocab, weights


def suggester(run, **choice):
    _, loaded, vocab, _ = run
    return suggest.Suggester(loaded, vocab, suggest.SamplingChoice(**{"random_seed": 5, **choice}))


def reference_log_probs_after(weights, vocab, text):
    logits, _ = reference.model_logits(weights, vocab.encode("\n" + text)[None, :].astype(np.int64))
    return reference.log_softmax(logits[0, -1])


def test_next_characters_are_the_reference_softmax_through_cached_contexts(run, small_text):
    """Typing on, deleting back into the text and editing its middle: every context the cache gives is
    the reference's forward over the whole text, and the top characters are its softmax."""
    _, _, vocab, weights = run
    proposals = suggester(run)
    text = small_text[:300]
    for edited in (text[:5], text[:150], text, text[:140], text[:70] + "q" + text[71:200], text[:200]):
        top = proposals.next_characters(edited, 5)
        probabilities = np.exp(reference_log_probs_after(weights, vocab, edited))
        order = np.argsort(-probabilities)[:5]
        assert [character for character, _ in top] == [vocab.chars[i] for i in order]
        np.testing.assert_allclose([p for _, p in top], probabilities[order], atol=1e-5)


def test_next_words_have_the_reference_probability_of_word_then_separator(run):
    _, _, vocab, weights = run
    text = "First Citizen:\nBefore we"
    words = suggester(run).next_words(text, 5)
    assert len(words) == 5 and [p for _, p in words] == sorted((p for _, p in words), reverse=True)
    separators = [s for s in suggest.SEPARATORS if s in vocab.char_to_id]
    for word, probability in words:
        body = word.lstrip(suggest.SEPARATORS)
        assert body and not any(character in suggest.SEPARATORS for character in body)
        ids = vocab.encode("\n" + text + word)
        logits, _ = reference.model_logits(weights, ids[None, :].astype(np.int64))
        log_probs = reference.log_softmax(logits[0])
        start = len(ids) - len(word) - 1
        total = sum(log_probs[t, ids[t + 1]] for t in range(start, len(ids) - 1))
        then = np.exp(total + log_probs[-1][[vocab.char_to_id[s] for s in separators]])
        if len(body) < suggest.WORD_LENGTH:  # the word's probability: followed by one or more separators found
            assert then.max() - 1e-6 <= probability <= then.sum() + 1e-6


def test_the_ghost_continuation_is_the_engines_sample_to_the_line_end(run):
    _, loaded, vocab, _ = run
    text = "MENENIUS:\nWhat"
    for attempt in (0, 1):
        blocks = loaded.sample(
            vocab.encode("\n" + text), suggest.GHOST_LENGTH, random_seed=5 + attempt, temperature=0.8
        )
        whole = vocab.decode(np.concatenate(list(blocks), axis=1)[0])
        expected = whole[: whole.index("\n") + 1] if "\n" in whole else whole
        assert suggester(run).continuation(text, attempt) == expected


def test_the_session_accepts_cycles_undoes_and_saves(run, tmp_path):
    session = write.Session(suggester(run), "ROMEO:")
    ghost = session.ghost()
    session.accept_word()
    assert session.text == "ROMEO:" + suggest.first_word(ghost) and suggest.first_word(ghost)
    first = session.ghost()
    session.resample()
    assert session.ghost() == suggester(run).continuation(session.text, 1)
    session.next_alternative()
    assert session.ghost() == session.words()[0][0]
    assert session.undo() and session.text == "ROMEO:"
    assert not session.undo() and session.text == "ROMEO:"  # the text it started from stays
    session.set_text("To be")
    assert session.save(tmp_path / "scene.txt") == tmp_path / "scene.txt"
    assert (tmp_path / "scene.txt").read_text() == "To be"
    assert first
    with pytest.raises(ValueError, match="No file to save to"):
        write.Session(suggester(run)).save()


def command(run_dir, *extra):
    return [sys.executable, "-m", "shakegen", "write", *extra, "--checkpoint", str(run_dir), "--random-seed", "5"]


def in_process(run_dir, *extra):
    """``command``'s ``shakegen write`` run in this process (stdin empty and not a terminal, as there)."""
    return CliRunner().invoke(main, command(run_dir, *extra)[3:], input="")


def test_without_a_terminal_a_line_prompt_takes_commands_and_prints_the_text(run, tmp_path):
    run_dir = run[0]
    out = tmp_path / "scene.txt"
    lines = "ROMEO:\n:w\n:w\n:u\n:s\n:q\n"
    result = subprocess.run(
        command(run_dir, str(out)), input=lines, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    session = write.Session(suggester(run), "ROMEO:\n")
    session.accept_word()
    expected = session.text
    assert result.stdout == expected + "\n" and out.read_text() == expected
    assert "suggest: " in result.stderr and "next: " in result.stderr and "Saved" in result.stderr
    refused = in_process(run_dir, "--ban", "\u00e9")  # refused before anything is read or shown
    assert refused.exit_code == 2 and "Cannot ban characters the model does not know" in refused.stderr
    assert "Traceback" not in refused.stderr and isinstance(refused.exception, SystemExit)


class Terminal:
    """A child process in a pseudo-terminal, its output rendered by a VT100 emulator."""

    def __init__(self, argv, cwd, rows=30, columns=110):
        pexpect, pyte = pytest.importorskip("pexpect"), pytest.importorskip("pyte")
        self.eof, self.timeout = pexpect.EOF, pexpect.TIMEOUT
        env = {**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", "NO_COLOR": "1"}
        self.child = pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), env=env, dimensions=(rows, columns))
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.2))
            except self.timeout:
                pass
            except self.eof:
                break
            if predicate(self.text()):
                return self.text()
        raise AssertionError(f"The screen never showed what was expected; it shows:\n{self.text()}")

    def send(self, keys: str):
        self.child.send(keys)


def test_the_writing_screen_accepts_resamples_cycles_undoes_and_saves(run, tmp_path):
    run_dir = run[0]
    out = tmp_path / "scene.txt"
    terminal = Terminal(command(run_dir, str(out)), tmp_path)
    proposals = write.Session(suggester(run), "ROMEO:")

    def first_line(ghost):
        return "ROMEO:" + write._shown_ghost(ghost)

    terminal.wait_for(lambda screen: "next:" in screen and "Tab: a word" in screen)
    terminal.send("ROMEO:")
    ghost = proposals.ghost()
    terminal.wait_for(lambda screen: screen.splitlines()[0] == first_line(ghost))
    words = "  ".join(f"{write._show(w)} {p:.1%}" for w, p in proposals.words())
    terminal.wait_for(lambda screen: "words: " + words in screen)

    terminal.send("\t")  # accept one word
    proposals.accept_word()
    accepted = proposals.text
    terminal.wait_for(lambda screen: screen.splitlines()[0].startswith(accepted.split("\n")[0]))
    terminal.wait_for(lambda screen: screen.splitlines()[0] == accepted + write._shown_ghost(proposals.ghost()))

    terminal.send("\x12")  # Ctrl-R: resample
    proposals.resample()
    terminal.wait_for(lambda screen: "resampled" in screen)
    terminal.wait_for(lambda screen: screen.splitlines()[0] == accepted + write._shown_ghost(proposals.ghost()))

    terminal.send("\x0e")  # Ctrl-N: the next alternative, the likeliest word
    proposals.next_alternative()
    terminal.wait_for(lambda screen: screen.splitlines()[0] == accepted + write._shown_ghost(proposals.words()[0][0]))

    terminal.send("\x1a")  # Ctrl-Z: undo the accepted word
    proposals.undo()
    terminal.wait_for(lambda screen: "undone" in screen and screen.splitlines()[0].startswith("ROMEO:"))
    terminal.send("\x13")  # Ctrl-S: save
    terminal.wait_for(lambda screen: "saved 6 characters" in screen)
    assert out.read_text() == "ROMEO:"

    terminal.send("\t\x04")  # accept a word again, then Ctrl-D: quit (saving first)
    terminal.child.expect(terminal.eof, timeout=60)
    terminal.child.close()
    assert terminal.child.exitstatus == 0
    assert out.read_text() == "ROMEO:" + suggest.first_word(proposals.ghost())  # the resampled one: seed + 1


def test_writing_never_imports_tensorflow(run, tmp_path):
    code = (
        "import sys; from shakegen.cli import main\n"
        "try:\n    main(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n    print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')), file=sys.stderr)"
    )
    argv = [sys.executable, "-c", code, "write", "--checkpoint", str(run[0]), "--random-seed", "1"]
    result = subprocess.run(argv, input="ROMEO:\n:w\n:q\n", capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ROMEO:\n") and result.stderr.rstrip().endswith("[]")


def test_a_file_that_is_not_utf8_is_refused_in_one_line(run, tmp_path):
    (tmp_path / "scene.txt").write_bytes(b"\xff\xfe\x00bad")
    result = in_process(run[0], str(tmp_path / "scene.txt"))  # refused before anything is shown
    assert result.exit_code == 1 and "is not UTF-8 text" in result.stderr and "Traceback" not in result.stderr
    assert isinstance(result.exception, SystemExit) and len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "scene.txt").read_bytes() == b"\xff\xfe\x00bad"  # left as it was
