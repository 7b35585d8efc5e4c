"""Writing with the model: you type, it proposes how to go on.

``Suggester`` is the model's side, on the inference engine alone (never TensorFlow): for the text
so far it gives the top next characters and the top next words with their probabilities, and a
sampled continuation (to the end of the line) that the writing screen shows as ghost text. The
text's context is cached at every ``MARK`` characters, so typing at the end re-reads only the
characters after the last mark; characters the model does not know are skipped when reading.

``run_terminal`` is the writing screen (prompt-toolkit, so it works in any terminal, over ssh
too); ``run_plain`` is the same session as a line prompt, for when stdin or stdout is not a
terminal (``shakegen write > scene.txt``): proposals go to stderr, the finished text to stdout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shakegen import engine, fileio
from shakegen.beam import beam_search
from shakegen.stopping import Stopping, StopRule

MARK = 64  # characters between cached contexts
SEPARATORS = " \n\t.,;:!?-'\""  # what ends a word (and may begin the next, as leading space or punctuation)
WORD_LENGTH = 14  # longest word the word list looks for
GHOST_LENGTH = 60  # longest ghost continuation (it ends at the end of a line)
KEYS = "Tab: a word · →/^E: all · ^R: resample · ^N: next alternative · ^Z: undo · ^S: save · ^D: quit"
PLAIN_HELP = (
    "Type lines of text. Commands: :w accept a word, :a accept all, :r resample, :n next alternative, "
    ":u undo, :s [FILE] save, :p print the text, :q quit (or end of input); '::' begins a line with ':'."
)


@dataclass
class SamplingChoice:
    """How the ghost text is sampled (as ``shakegen generate`` samples)."""

    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    random_seed: int = 0


class Suggester:
    """The model's proposals for a text: next characters, next words, a sampled continuation.

    Args:
        model: the run's ``engine.Engine``; vocab: its ``Vocabulary``.
        choice: how continuations are sampled; ban: ids never proposed (``engine.ban_mask``).
        start: what the model reads before the text (a newline, as ``generate``'s default seed).
    """

    def __init__(self, model: engine.Engine, vocab, choice: SamplingChoice | None = None, ban=None, start: str = "\n"):
        self.model, self.vocab = model, vocab
        self.choice = choice or SamplingChoice()
        engine.check_options(
            self.choice.temperature, self.choice.top_k, self.choice.top_p, model.vocab_size, min_p=self.choice.min_p
        )
        self.ban = engine.ban_mask(ban, model.vocab_size)
        self.start_ids = [int(i) for i in vocab.encode(start)]
        self._ids: list[int] = []  # the ids the marks were read from
        self._marks: dict[int, engine.Context] = {}  # ids read -> context after them (0: after the start)

    def ids(self, text: str) -> list[int]:
        """The text's ids after the start text, characters the model does not know skipped."""
        known = "".join(character for character in text if character in self.vocab.char_to_id)
        return [*self.start_ids, *(int(i) for i in self.vocab.encode(known))] if known else list(self.start_ids)

    def context(self, ids: list[int]) -> engine.Context:
        """The context after reading ``ids`` (at least one), from the nearest cached mark."""
        common = 0
        for a, b in zip(self._ids, ids, strict=False):
            if a != b:
                break
            common += 1
        self._marks = {n: c for n, c in self._marks.items() if n <= common}
        self._ids = list(ids)
        read = max(self._marks, default=0)
        context = self._marks.get(read)
        while read < len(ids):
            upto = min(len(ids), (read // MARK + 1) * MARK)
            context = self.model.prime(np.array(ids[read:upto]), context)
            read = upto
            if read % MARK == 0:
                self._marks[read] = context
        return context

    def _split(self, text: str) -> tuple[engine.Context | None, list[int]]:
        """(context before the last id, [last id]): how beam search and sampling start from the text."""
        ids = self.ids(text)
        return (self.context(ids[:-1]) if len(ids) > 1 else None), ids[-1:]

    def next_characters(self, text: str, count: int = 5) -> list[tuple[str, float]]:
        """The ``count`` likeliest next characters and their probabilities (the model's, banned ones removed)."""
        logits = np.asarray(self.context(self.ids(text)).logits[0], np.float64)
        if self.ban is not None:
            logits = np.where(self.ban, -np.inf, logits)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        order = np.lexsort((np.arange(len(probabilities)), -probabilities))[:count]
        return [(self.vocab.decode([int(i)]), float(probabilities[i])) for i in order if probabilities[i] > 0]

    def next_words(self, text: str, count: int = 5) -> list[tuple[str, float]]:
        """The ``count`` likeliest next words by beam search (``2 * count`` beams): any leading separators, then
        characters up to the next separator; each with the probability of that word followed by a separator
        (summed over the separators the beams found after it)."""
        context, last = self._split(text)
        stop_at = StopRule(tuple(SEPARATORS))

        def leading_masked(ids) -> str:  # a separator counts as the end only once the word has begun
            decoded = self.vocab.decode(np.asarray(ids))
            body = decoded.lstrip(SEPARATORS)
            return "\0" * (len(decoded) - len(body)) + body

        found = beam_search(
            self.model, last, WORD_LENGTH, 2 * count, rule=stop_at, decode=leading_masked, ban=self.ban, context=context
        )
        words: dict[str, float] = {}
        for beam in found:  # a word ended by different separators: its probabilities add up
            if beam.ids:
                word = self.vocab.decode(np.asarray(beam.ids))
                words[word] = words.get(word, 0.0) + math.exp(beam.log_prob)
        return sorted(words.items(), key=lambda pair: (-pair[1], pair[0]))[:count]

    def continuation(self, text: str, attempt: int = 0) -> str:
        """A continuation sampled with random seed ``choice.random_seed + attempt``, to the end of its line."""
        context, last = self._split(text)
        choice = self.choice
        blocks = self.model.sample(
            last,
            GHOST_LENGTH,
            random_seed=(choice.random_seed + attempt) % 2**32,
            temperature=choice.temperature,
            top_k=choice.top_k,
            top_p=choice.top_p,
            min_p=choice.min_p,
            ban=self.ban,
            context=context,
            block=16,
        )
        stopping = Stopping(StopRule(("\n",), keep_stop=True), 1)
        pieces = ([self.vocab.decode(row)] for block in blocks for row in block)
        return "".join(out[0] for out in stopping.run(pieces))


def first_word(ghost: str) -> str:
    """What one "accept a word" takes of a ghost text: leading separators, then up to the next separator."""
    body = ghost.lstrip(SEPARATORS)
    lead = len(ghost) - len(body)
    for index, character in enumerate(body):
        if character in SEPARATORS:
            return ghost[: lead + index]
    return ghost


@dataclass
class Session:
    """The writing state shared by both screens: text, its undo history, and the proposal being shown.

    The proposals cycle: alternative 0 is the sampled continuation (``attempt`` counts resamples), the
    others the next words in order of probability.
    """

    suggester: Suggester
    text: str = ""
    path: Path | None = None
    attempt: int = 0
    alternative: int = 0
    history: list = field(default_factory=list)
    _cache: dict = field(default_factory=dict)

    def proposals(self) -> list[str]:
        return [self._computed()[0], *(word for word, _ in self.words())]

    def words(self) -> list[tuple[str, float]]:
        """The next words and their probabilities (computed once per text)."""
        return self._computed()[1]

    def _computed(self):
        key = (self.text, self.attempt)
        if key not in self._cache:
            self._cache.clear()
            self._cache[key] = (
                self.suggester.continuation(self.text, self.attempt),
                self.suggester.next_words(self.text),
            )
        return self._cache[key]

    def ghost(self) -> str:
        proposals = self.proposals()
        return proposals[self.alternative % len(proposals)]

    def set_text(self, text: str) -> None:
        if text != self.text:
            self.history.append(self.text)
            self.text, self.alternative = text, 0

    def accept_word(self) -> None:
        self.set_text(self.text + first_word(self.ghost()))

    def accept_all(self) -> None:
        self.set_text(self.text + self.ghost())

    def resample(self) -> None:
        self.attempt += 1
        self.alternative = 0

    def next_alternative(self) -> None:
        self.alternative = (self.alternative + 1) % len(self.proposals())

    def undo(self) -> bool:
        if not self.history:
            return False
        self.text, self.alternative = self.history.pop(), 0
        return True

    def save(self, path: Path | None = None) -> Path:
        """Write the text to ``path`` (or the session's file), atomically; returns where."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("No file to save to: start with `shakegen write FILE`, or give one (:s FILE).")
        fileio.write_text(target, self.text)
        self.path = target
        return target

    def status(self) -> str:
        characters = "  ".join(f"{_show(c)} {p:.0%}" for c, p in self.suggester.next_characters(self.text))
        words = "  ".join(f"{_show(w)} {p:.1%}" for w, p in self.words())
        return f"next: {characters}\nwords: {words}"


def _shown_ghost(ghost: str) -> str:
    """The ghost text as the screen shows it (one line): its closing line end as a visible mark."""
    return ghost[:-1] + " ⏎" if ghost.endswith("\n") else ghost


def _show(text: str) -> str:
    """A proposal as the status line shows it: spaces and line ends visible."""
    return "'" + text.replace("\n", "⏎").replace("\t", "⇥").replace(" ", "␣") + "'"


def run_plain(session: Session, lines, err) -> str:
    """The line-prompt session: ``lines`` (an iterable of input lines) drive it; messages go to ``err``.

    Returns the finished text.
    """
    err.write(PLAIN_HELP + "\n")

    def show():
        err.write(f"{session.status()}\nsuggest: {_show(session.ghost())}\n> ")
        err.flush()

    show()
    for raw in lines:
        line = raw.rstrip("\n")
        command, _, argument = line.partition(" ")
        if line.startswith(":") and not line.startswith("::"):
            if command == ":q":
                break
            actions = {
                ":w": session.accept_word,
                ":a": session.accept_all,
                ":r": session.resample,
                ":n": session.next_alternative,
                ":u": session.undo,
            }
            if command in actions:
                actions[command]()
            elif command == ":s":
                try:
                    err.write(f"Saved {len(session.text):,} characters to {session.save(argument.strip() or None)}\n")
                except (ValueError, OSError) as error:
                    err.write(f"Error: {error}\n")
            elif command == ":p":
                err.write(session.text + "\n")
            else:
                err.write(f"Unknown command {command!r}. {PLAIN_HELP}\n")
        else:
            session.set_text(session.text + (line[1:] if line.startswith("::") else line) + "\n")
        show()
    err.write("\n")
    return session.text


def run_terminal(session: Session) -> str:
    """The writing screen: the text with the proposal as ghost text, the top characters and words below.

    Returns the finished text.
    """
    from prompt_toolkit import Application
    from prompt_toolkit.auto_suggest import AutoSuggest, Suggestion
    from prompt_toolkit.buffer import Buffer
    from prompt_toolkit.document import Document
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.layout import HSplit, Layout, Window
    from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
    from prompt_toolkit.layout.processors import AppendAutoSuggestion
    from prompt_toolkit.styles import Style

    message = [""]

    class Ghost(AutoSuggest):
        def get_suggestion(self, buffer, document):
            if document.cursor_position != len(document.text):
                return None
            sync(buffer)
            return Suggestion(_shown_ghost(session.ghost()))

    def sync(buffer):  # typing edits the buffer: the session follows (an undo step per change)
        if buffer.text != session.text:
            session.set_text(buffer.text)

    def show(buffer):
        buffer.document = Document(session.text, len(session.text))
        buffer.suggestion = Suggestion(_shown_ghost(session.ghost()))

    buffer = Buffer(multiline=True, auto_suggest=Ghost(), document=Document(session.text, len(session.text)))
    keys = KeyBindings()

    at_end = Condition(lambda: buffer.cursor_position == len(buffer.text))

    def action(key, do, only=None):
        @keys.add(key, eager=True, filter=only if only is not None else Condition(lambda: True))
        def _(event):
            sync(event.current_buffer)
            message[0] = do() or ""
            show(event.current_buffer)

    action("tab", session.accept_word)
    action("c-e", session.accept_all)
    action("right", session.accept_all, at_end)  # elsewhere → moves the cursor, as usual
    action("c-r", lambda: (session.resample(), f"resampled (random seed + {session.attempt})")[1])
    action("c-n", lambda: (session.next_alternative(), f"alternative {session.alternative}")[1])
    action("c-z", lambda: "undone" if session.undo() else "nothing to undo")

    @keys.add("c-s", eager=True)
    def _(event):
        sync(event.current_buffer)
        try:
            message[0] = f"saved {len(session.text):,} characters to {session.save()}"
        except (ValueError, OSError) as error:
            message[0] = f"Error: {error}"

    @keys.add("c-d", eager=True)
    @keys.add("c-q", eager=True)
    @keys.add("c-c", eager=True)
    def _(event):
        sync(event.current_buffer)
        event.app.exit(result=session.text)

    def toolbar():
        sync(buffer)
        return [("class:status", session.status() + "\n"), ("class:keys", KEYS + "\n"), ("class:message", message[0])]

    layout = Layout(
        HSplit(
            [
                Window(BufferControl(buffer, input_processors=[AppendAutoSuggestion()]), wrap_lines=True),
                Window(height=1, char="─", style="class:line"),
                Window(FormattedTextControl(toolbar), height=5, wrap_lines=True),
            ]
        )
    )
    style = Style.from_dict({"auto-suggestion": "#888888 italic", "keys": "#888888", "message": "bold"})
    app = Application(layout=layout, key_bindings=keys, style=style, full_screen=True, mouse_support=False)
    return app.run()
