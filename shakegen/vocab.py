"""The vocabulary: the sorted distinct characters of a corpus and their integer ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from shakegen.errors import ShakegenError

ENCODE_CHUNK = 1 << 20


class VocabularyError(ShakegenError, ValueError):
    """A vocabulary is not a sorted list of distinct single characters."""


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
    """Sorted distinct characters; a character's id is its position."""

    chars: tuple[str, ...]
    char_to_id: dict[str, int] = field(init=False, repr=False, compare=False)
    _codepoints: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        chars = tuple(self.chars)
        if list(chars) != sorted(set(chars)) or any(len(char) != 1 for char in chars):
            raise VocabularyError(
                f"A vocabulary must be sorted, distinct single characters; got {len(chars)} entries that are not. "
                "Rebuild it with Vocabulary.from_characters (or prepare the corpus again)."
            )
        object.__setattr__(self, "chars", chars)
        object.__setattr__(self, "char_to_id", {char: index for index, char in enumerate(chars)})
        object.__setattr__(self, "_codepoints", np.array([ord(char) for char in chars], dtype=np.uint32))

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
            ids[start : start + len(piece)] = found
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(index)] for index in ids)

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: list[str]) -> "Vocabulary":
        return cls(tuple(chars))
