"""When a sample ends: at its length, at the first stop text, or after a number of lines.

A ``StopRule`` holds the stop texts (``--stop``, escapes already read by ``unescape``), whether
the stop text is kept (``--keep-stop``) and a line count (``--lines``). ``Stopping`` applies it
to every sample of a batch as its text arrives, block by block, and hands back only text that
is final: with stop texts dropped, the last ``longest stop - 1`` characters wait until it is
known they do not begin a stop text, so a stop straddling two blocks is cut all the same.

Only the generated text is searched (never the seed). A sample ends where the first stop text
is complete or its ``lines``-th line end is generated, whichever comes first; when two stop
texts are complete at the same character (one ends the other) the longer counts. The text ends
exactly there: the line end is kept, a stop text kept or dropped per ``keep_stop``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LENGTH, STOP, LINES = "length", "stop", "lines"  # why a sample ended
REASONS = (LENGTH, STOP, LINES)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def unescape(text: str) -> str:
    r"""``\n``, ``\t``, ``\r`` and ``\\`` typed as two characters mean a newline, a tab, a carriage
    return and one backslash (real ones stay as they are); any other backslash is kept as typed."""
    out, index = [], 0
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text) and text[index + 1] in _ESCAPES:
            out.append(_ESCAPES[text[index + 1]])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def ban_ids(characters: str, vocab) -> list[int]:
    """The ids of ``characters`` (``--ban``, its escapes already read by ``unescape``) in ``vocab``.

    Raises:
        ValueError: a character the model does not know (it could never be emitted anyway), or all of them.
    """
    unknown = vocab.unknown_characters(characters)
    if unknown:
        raise ValueError(
            f"Cannot ban characters the model does not know: {', '.join(map(repr, unknown))} "
            f"(it never emits them); ban only some of its {len(vocab)} characters."
        )
    ids = sorted({vocab.char_to_id[character] for character in characters})
    if len(ids) == len(vocab):
        raise ValueError(f"That bans every one of the model's {len(vocab)} characters: nothing could be emitted.")
    return ids


@dataclass(frozen=True)
class StopRule:
    """stops: texts that end a sample; keep_stop: keep the stop text; lines: end after this many line ends."""

    stops: tuple[str, ...] = ()
    keep_stop: bool = False
    lines: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "stops", tuple(self.stops))
        if any(not isinstance(stop, str) or not stop for stop in self.stops):
            raise ValueError("A stop text must be at least one character; remove the empty --stop.")
        if self.lines is not None and (
            isinstance(self.lines, bool) or not isinstance(self.lines, int) or self.lines < 1
        ):
            raise ValueError(f"lines must be a positive integer, got {self.lines!r}.")

    @property
    def active(self) -> bool:
        return bool(self.stops) or self.lines is not None

    @property
    def holdback(self) -> int:
        """Characters that may begin a dropped stop text and so wait before being handed out."""
        return 0 if self.keep_stop or not self.stops else max(map(len, self.stops)) - 1

    def find(self, text: str, start: int = 0) -> tuple[int, str, str | None] | None:
        """The first end in ``text`` whose completion is at or after ``start``: (end of the kept text, reason,
        the stop text found or None), or None when nothing ends it."""
        best = None  # (completed at, -length, kept end, reason, stop)
        for stop in self.stops:
            found = text.find(stop, max(0, start - len(stop) + 1))
            if found >= 0:
                done = found + len(stop)
                candidate = (done, -len(stop), done if self.keep_stop else found, STOP, stop)
                best = candidate if best is None or candidate[:2] < best[:2] else best
        if self.lines is not None:
            done = _nth_line_end(text, self.lines)
            if done is not None and done >= start and (best is None or done < best[0]):
                best = (done, 0, done, LINES, None)
        return None if best is None else best[2:]


def _nth_line_end(text: str, count: int) -> int | None:
    """The position just after the ``count``-th newline of ``text``, or None when it has fewer."""
    position = -1
    for _ in range(count):
        position = text.find("\n", position + 1)
        if position < 0:
            return None
    return position + 1


@dataclass
class Ended:
    """How one sample ended: its reason (``REASONS``) and the stop text that ended it (or None)."""

    reason: str
    stop: str | None = None

    def as_dict(self) -> dict:
        return {"stop_reason": self.reason, "stop_text": self.stop}


@dataclass
class Stopping:
    """The rule applied to ``num_samples`` texts arriving piece by piece (``feed``), then ``finish``.

    ``ended`` holds how each sample ended (None while it runs), set before the piece that ends it is
    handed out; ``texts`` each sample's kept text, accumulated only when the rule is active.
    """

    rule: StopRule
    num_samples: int
    texts: list = field(init=False)
    handed: list = field(init=False)
    ended: list = field(init=False)

    def __post_init__(self):
        self.texts = [""] * self.num_samples
        self.handed = [0] * self.num_samples  # characters of each text already handed out
        self.ended = [None] * self.num_samples

    @property
    def done(self) -> bool:
        """Every sample has ended at a stop text or its lines: sampling further is wasted."""
        return all(ended is not None for ended in self.ended)

    def feed(self, pieces) -> list[str]:
        """Append each sample's new text; return what of each is now final ('' for an ended sample)."""
        if not self.rule.active:  # nothing ends a sample early: every piece is final as it comes
            return list(pieces)
        out = []
        for index, piece in enumerate(pieces):
            if self.ended[index] is not None:
                out.append("")
                continue
            before = len(self.texts[index])
            text = self.texts[index] = self.texts[index] + piece
            found = self.rule.find(text, before)
            if found is not None:
                end, reason, stop = found
                self.texts[index] = text = text[:end]
                self.ended[index] = Ended(reason, stop)
                upto = end
            else:
                upto = max(self.handed[index], len(text) - self.rule.holdback)
            out.append(text[self.handed[index] : upto])
            self.handed[index] = upto
        return out

    def run(self, pieces):
        """Each item of ``pieces`` (one new text per sample) through ``feed``, then ``finish``: yields what
        is final per sample. Stops taking pieces once every sample has ended, so a lazy sampler does no
        more work; ``ended`` then says why each sample ended."""
        for piece in pieces:
            yield self.feed(piece)
            if self.done:
                break
        yield self.finish()

    def finish(self) -> list[str]:
        """The samples reached their length: hand out what was held back; those not ended end by ``length``."""
        out = []
        for index, text in enumerate(self.texts):
            if self.ended[index] is None:
                self.ended[index] = Ended(LENGTH)
            out.append(text[self.handed[index] :])
            self.handed[index] = len(text)
        return out


def stop_text(text: str, rule: StopRule) -> tuple[str, Ended]:
    """One whole generated text cut by the rule: (the kept text, how it ended)."""
    stopping = Stopping(rule, 1)
    kept = "".join(piece[0] for piece in stopping.run([[text]]))
    return kept, stopping.ended[0]
