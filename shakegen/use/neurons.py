"""Which hidden units track simple properties of a text: a search by correlation.

For each character of a text, each property below is a number (1 or 0, or the column in the
line), and each unit (layer, index) has a value after reading that character (the engine's
hidden states). A unit whose values rise and fall with a property's has a Pearson correlation
near +1 or -1 with it. That is a hint where to look, not an explanation: a unit may track
something else that happens to go with the property in this text.

Properties (of the character just read, c_t, and the text before it):
    inside_quotes    after reading c_t the reader is inside a quotation: past an opening quote
                     (“ or «, or a straight " opening a pair) and not yet past its closing one.
    inside_brackets  likewise inside ( ), [ ] or { } (nested pairs counted).
    line_position    the column of c_t in its line, from 0 (a newline ends its line: its column is
                     the line's length).
    speaker_line     on a line that is a speaker's name: capitals (and spaces, apostrophes, dots,
                     hyphens) then a colon, such as "ROMEO:" or "First Citizen:".
    after_newline    c_t is a newline: the next character starts a line.
    inside_word      c_t is a letter that follows a letter.
    vowel            c_t is a vowel (a, e, i, o, u, either case).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

OPENING_QUOTES, CLOSING_QUOTES = "“«", "”»"
OPENING_BRACKETS, CLOSING_BRACKETS = "([{", ")]}"
SPEAKER_LINE = re.compile(r"^[A-Z][A-Za-z '.\-]*:\s*$")
VOWELS = set("aeiouAEIOU")
PROPERTIES = (
    "inside_quotes",
    "inside_brackets",
    "line_position",
    "speaker_line",
    "after_newline",
    "inside_word",
    "vowel",
)
HINT = "A correlation is a hint where to look, not an explanation: a unit may follow something else that goes with it."


def properties(text: str) -> dict[str, np.ndarray]:
    """Each property of ``PROPERTIES`` for each character of ``text``: {name: (n,) float64}."""
    n = len(text)
    quotes = np.zeros(n)
    brackets = np.zeros(n)
    column = np.zeros(n)
    newline = np.zeros(n)
    word = np.zeros(n)
    vowel = np.zeros(n)
    inside, depth, straight, position = 0, 0, False, 0
    for t, char in enumerate(text):
        # As the reader stands after c_t: an opening quote or bracket puts it inside, a closing one outside.
        if char in OPENING_QUOTES:
            inside += 1
        elif char in CLOSING_QUOTES:
            inside = max(0, inside - 1)
        elif char == '"':
            straight = not straight
        quotes[t] = inside > 0 or straight
        if char in OPENING_BRACKETS:
            depth += 1
        elif char in CLOSING_BRACKETS:
            depth = max(0, depth - 1)
        brackets[t] = depth > 0
        column[t] = position
        position = 0 if char == "\n" else position + 1
        newline[t] = char == "\n"
        word[t] = char.isalpha() and t > 0 and text[t - 1].isalpha()
        vowel[t] = char in VOWELS
    speaker = np.zeros(n)
    start = 0
    for line in text.split("\n"):
        if SPEAKER_LINE.match(line):
            speaker[start : start + len(line)] = 1.0
        start += len(line) + 1
    return {
        "inside_quotes": quotes,
        "inside_brackets": brackets,
        "line_position": column,
        "speaker_line": speaker,
        "after_newline": newline,
        "inside_word": word,
        "vowel": vowel,
    }


def correlations(hidden: list, values: np.ndarray) -> np.ndarray:
    """Pearson correlation of every unit with ``values``: hidden per layer (n, u) -> (layers, u).

    A unit (or a property) that never changes over the text correlates 0 with anything.
    """
    values = np.asarray(values, np.float64)
    centred = values - values.mean()
    norm = np.sqrt((centred**2).sum())
    out = []
    for layer in hidden:
        states = np.asarray(layer, np.float64)
        states = states - states.mean(axis=0)
        norms = np.sqrt((states**2).sum(axis=0)) * norm
        dot = centred @ states
        out.append(np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 1e-12))
    return np.array(out)


@dataclass(frozen=True)
class Finding:
    """A unit and how well it tracks a property: ``correlation`` in [-1, 1] (negative: it falls as the
    property rises)."""

    property: str
    layer: int
    index: int
    correlation: float

    @property
    def unit(self) -> str:
        return f"{self.layer}:{self.index}"

    def to_json(self) -> dict:
        return {"property": self.property, "unit": self.unit, "correlation": self.correlation}


def search(hidden: list, text: str, per_property: int = 3, names=PROPERTIES) -> tuple[list, list]:
    """The ``per_property`` units correlating best (by absolute value) with each property of ``text``.

    Returns:
        (findings, most relevant first within each property; the properties absent from the text
        (constant over it), which have no findings).
    """
    found, absent = [], []
    table = properties(text)
    for name in names:
        values = table[name]
        if np.ptp(values) == 0:
            absent.append(name)
            continue
        scores = correlations(hidden, values)
        flat = np.argsort(-np.abs(scores), axis=None, kind="stable")[:per_property]
        for layer, index in zip(*np.unravel_index(flat, scores.shape), strict=True):
            found.append(Finding(name, int(layer), int(index), float(scores[layer, index])))
    return found, absent


def unit_profile(hidden: list, text: str, unit) -> dict[str, float]:
    """One unit's correlation with every property present in ``text`` ({} entries for absent ones omitted)."""
    layer, index = unit
    column = np.asarray(hidden[layer])[:, index : index + 1]
    out = {}
    for name, values in properties(text).items():
        if np.ptp(values) > 0:
            out[name] = float(correlations([column], values)[0, 0])
    return out
