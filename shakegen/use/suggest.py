"""Proposals for a text being written: the next characters, the next words, a sampled continuation.

``Suggester`` is the model's side of ``shakegen write`` (and of ``/v1/suggest``), on the inference
engine alone (never TensorFlow): for the text so far it gives the top next characters and the top
next words with their probabilities, and a sampled continuation (to the end of the line) that the
writing screen shows as ghost text. The text's context is cached at every ``MARK`` characters, so
typing at the end re-reads only the characters after the last mark; characters the model does not
know are skipped when reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shakegen.use import engine
from shakegen.use.beam import beam_search
from shakegen.use.logits import ban_mask, check_options
from shakegen.use.stopping import Stopping, StopRule

MARK = 64  # characters between cached contexts
SEPARATORS = " \n\t.,;:!?-'\""  # what ends a word (and may begin the next, as leading space or punctuation)
WORD_LENGTH = 14  # longest word the word list looks for
GHOST_LENGTH = 60  # longest ghost continuation (it ends at the end of a line)


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
        choice: how continuations are sampled; ban: ids never proposed (``logits.ban_mask``).
        start: what the model reads before the text (a newline, as ``generate``'s default seed).
    """

    def __init__(self, model: engine.Engine, vocab, choice: SamplingChoice | None = None, ban=None, start: str = "\n"):
        self.model, self.vocab = model, vocab
        self.choice = choice or SamplingChoice()
        check_options(
            self.choice.temperature, self.choice.top_k, self.choice.top_p, model.vocab_size, min_p=self.choice.min_p
        )
        self.ban = ban_mask(ban, model.vocab_size)
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
