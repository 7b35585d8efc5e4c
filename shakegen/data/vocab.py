"""The vocabulary: the distinct characters of a corpus or a run and their integer ids.

A prepared corpus's vocabulary is sorted; a run's keeps the ids it was born with and grows at
the end when the run is fine-tuned on a text with new characters (see ``Vocabulary``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from shakegen.errors import ShakegenError

ENCODE_CHUNK = 1 << 20


class VocabularyError(ShakegenError, ValueError):
    """A vocabulary is not a list of distinct single characters (sorted, for a prepared corpus)."""


class UnknownCharactersError(ShakegenError, ValueError):
    """Text holds characters outside the vocabulary.

    Args:
        unknown: the characters, in order of first appearance (20 are shown).
        vocab_size: how many characters the model knows.
        subject: what holds them ("Seed text", a file name).
        where: what knows the vocabulary ("The checkpoint at checkpoints/quick").
        advice: how to fix it ("remove them or pass --skip-unknown").
    """

    def __init__(
        self, unknown: list[str], vocab_size: int, where: str = "", *, subject: str = "Text", advice: str = ""
    ):
        self.unknown = unknown
        self.vocab_size = vocab_size
        shown = ", ".join(repr(char) for char in unknown[:20])
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        knower = where or "The model"
        fix = f"; {advice}" if advice else ""
        super().__init__(
            f"{subject} has characters the model does not know: {shown}{more}. {knower} knows "
            f"{vocab_size} characters{fix}."
        )


@dataclass(frozen=True)
class Vocabulary:
    """Distinct single characters; a character's id is its position.

    A prepared corpus's vocabulary is sorted, and ``Vocabulary(chars)`` checks that. A run's
    vocabulary is in the order its characters were learnt: a fine-tuned run keeps every id of
    its base and appends the characters new to it (``extended``), so it is sorted only in part.
    ``Vocabulary.in_id_order(chars)`` reads one back; both kinds encode and decode alike, and
    two vocabularies are equal when they hold the same characters in the same id order.
    """

    chars: tuple[str, ...]
    require_sorted: bool = field(default=True, repr=False, compare=False)
    char_to_id: dict[str, int] = field(init=False, repr=False, compare=False)
    _codepoints: np.ndarray = field(init=False, repr=False, compare=False)  # sorted, for searchsorted
    _ids: np.ndarray | None = field(init=False, repr=False, compare=False)  # id of each sorted code point

    def __post_init__(self):
        chars = tuple(self.chars)
        if any(not isinstance(char, str) or len(char) != 1 for char in chars) or len(set(chars)) != len(chars):
            raise VocabularyError(
                f"A vocabulary must be distinct single characters; got {len(chars)} entries that are not. "
                "Rebuild it with Vocabulary.from_characters (or prepare the corpus again)."
            )
        in_order = list(chars) == sorted(chars)
        if self.require_sorted and not in_order:
            raise VocabularyError(
                f"A vocabulary must be sorted, distinct single characters; got {len(chars)} entries that are not. "
                "Rebuild it with Vocabulary.from_characters (or prepare the corpus again)."
            )
        codepoints = np.array([ord(char) for char in chars], dtype=np.uint32)
        order = None if in_order else np.argsort(codepoints, kind="stable")
        object.__setattr__(self, "chars", chars)
        object.__setattr__(self, "char_to_id", {char: index for index, char in enumerate(chars)})
        object.__setattr__(self, "_codepoints", codepoints if order is None else codepoints[order])
        object.__setattr__(self, "_ids", None if order is None else order.astype(self.dtype))

    @classmethod
    def in_id_order(cls, chars: Iterable[str]) -> "Vocabulary":
        """A run's vocabulary: distinct characters in id order, sorted or not."""
        return cls(tuple(chars), require_sorted=False)

    def extended(self, characters: Iterable[str]) -> "Vocabulary":
        """This vocabulary with the characters of ``characters`` it lacks appended, sorted among
        themselves: every id of this vocabulary is kept, and nothing is dropped."""
        new = sorted(set(characters) - set(self.chars))
        return Vocabulary.in_id_order(self.chars + tuple(new))

    def covers(self, other: "Vocabulary") -> bool:
        """Whether every character of ``other`` has an id here."""
        return set(other.chars) <= set(self.char_to_id)

    def translation_to(self, other: "Vocabulary") -> np.ndarray | None:
        """A lookup table from this vocabulary's ids to ``other``'s ids of the same characters
        (``table[id_here] == id_there``), or None when the ids are the same (no lookup needed).

        Raises:
            UnknownCharactersError: a character here has no id in ``other``.
        """
        missing = [char for char in self.chars if char not in other.char_to_id]
        if missing:
            raise UnknownCharactersError(missing, len(other))
        table = np.array([other.char_to_id[char] for char in self.chars], dtype=other.dtype)
        return None if np.array_equal(table, np.arange(len(self))) else table

    @classmethod
    def from_characters(cls, characters: Iterable[str]) -> "Vocabulary":
        return cls(tuple(sorted(set(characters))))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        """The narrowest unsigned integer type that holds every id."""
        if len(self) <= 256:
            return np.dtype(np.uint8)
        if len(self) <= 65536:
            return np.dtype(np.uint16)
        return np.dtype(np.uint32)

    def unknown_characters(self, text: str) -> list[str]:
        """Characters of ``text`` outside the vocabulary, in order of first appearance."""
        return [char for char in dict.fromkeys(text) if char not in self.char_to_id]

    def encode(self, text: str) -> np.ndarray:
        """Map ``text`` to ids (array of ``self.dtype``), ``ENCODE_CHUNK`` characters at a time
        so the temporary arrays stay small (the result is 1 byte per character for ≤ 256 ids).

        Raises:
            UnknownCharactersError: ``text`` holds characters outside the vocabulary.
        """
        ids = np.empty(len(text), self.dtype)
        for start in range(0, len(text), ENCODE_CHUNK):
            piece = text[start : start + ENCODE_CHUNK]
            codes = np.frombuffer(piece.encode("utf-32-le"), dtype="<u4")
            found = np.searchsorted(self._codepoints, codes)
            found = np.minimum(found, len(self) - 1) if len(self) else found
            if len(self) == 0 or not np.array_equal(self._codepoints[found], codes):
                raise UnknownCharactersError(self.unknown_characters(text), len(self))
            ids[start : start + len(piece)] = found if self._ids is None else self._ids[found]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(index)] for index in ids)

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: list[str]) -> "Vocabulary":
        return cls(tuple(chars))


TRANSLATE_CHUNK = 1 << 24


def translate(ids: np.ndarray, table: np.ndarray | None) -> np.ndarray:
    """``table[ids]`` (ids of one vocabulary as another's, see ``translation_to``), in chunks so
    a memory-mapped split is read piece by piece; ``ids`` itself when ``table`` is None."""
    if table is None:
        return ids
    out = np.empty(len(ids), table.dtype)
    for start in range(0, len(ids), TRANSLATE_CHUNK):
        out[start : start + TRANSLATE_CHUNK] = table[np.asarray(ids[start : start + TRANSLATE_CHUNK])]
    return out
