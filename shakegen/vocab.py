"""The vocabulary: the sorted distinct characters of a corpus and their integer ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from shakegen.errors import ShakegenError


class UnknownCharactersError(ShakegenError, ValueError):
    """Text holds characters outside the vocabulary."""

    def __init__(self, unknown: list[str], vocab_size: int, where: str = ""):
        self.unknown = unknown
        self.vocab_size = vocab_size
        shown = ", ".join(repr(char) for char in unknown[:20])
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        place = f" {where}" if where else ""
        super().__init__(
            f"Text has characters the model does not know: {shown}{more}. The model{place} knows "
            f"{vocab_size} characters."
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
            raise ValueError("A vocabulary must be sorted, distinct single characters.")
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
        """Map ``text`` to ids (array of ``self.dtype``).

        Raises:
            UnknownCharactersError: ``text`` holds characters outside the vocabulary.
        """
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        ids = np.searchsorted(self._codepoints, codes)
        ids = np.minimum(ids, len(self) - 1) if len(self) else ids
        if len(self) == 0 or not np.array_equal(self._codepoints[ids], codes):
            raise UnknownCharactersError(self.unknown_characters(text), len(self))
        return ids.astype(self.dtype)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(index)] for index in ids)

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: list[str]) -> "Vocabulary":
        return cls(tuple(chars))
