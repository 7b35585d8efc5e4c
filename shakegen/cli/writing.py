"""Writing with the model: you type, it proposes how to go on (``shakegen write``).

The proposals come from ``shakegen.use.suggest``. ``run_terminal`` is the writing screen
(prompt-toolkit, so it works in any terminal, over ssh too); ``run_plain`` is the same session as a
line prompt, for when stdin or stdout is not a terminal (``shakegen write > scene.txt``):
proposals go to stderr, the finished text to stdout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shakegen import fileio
from shakegen.use.suggest import Suggester, first_word

KEYS = "Tab: a word · →/^E: all · ^R: resample · ^N: next alternative · ^Z: undo · ^S: save · ^D: quit"
PLAIN_HELP = (
    "Type lines of text. Commands: :w accept a word, :a accept all, :r resample, :n next alternative, "
    ":u undo, :s [FILE] save, :p print the text, :q quit (or end of input); '::' begins a line with ':'."
)


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
    keys = _key_bindings(session, buffer, message, sync, show)

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


def _key_bindings(session: Session, buffer, message: list[str], sync, show):
    """The writing screen's keys: each edits ``session`` (after ``sync``), leaves a line in ``message``
    and shows the result (``show``); Ctrl-S saves, Ctrl-D (or Ctrl-Q, Ctrl-C) ends with the text."""
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.key_binding import KeyBindings

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

    return keys
