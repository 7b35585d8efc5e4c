"""Beam search on the inference engine: the K most likely continuations of a seed.

Every step extends each of the K live beams by every character, scores each extension by its
total log-probability (the sum of log P(character | everything before) under the model, float64,
temperature 1) and keeps the K best. Nothing is random: ties go to the lower character ids.

The length rule: without stop texts or a line count every beam is exactly ``length`` characters,
so beams are ranked by total log-probability. With them, a beam that completes a stop text or its
last line ends there (the others run on to ``length``), and since a shorter text always has a
higher total the finished beams are ranked by log-probability per character (total / characters
generated, the stop text included) — which, when all have the same length, is the same ranking.
Banned characters are never chosen; a beam's log-probability stays the model's own (not
renormalised over the allowed characters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shakegen.errors import SamplingError
from shakegen.use import blas_threads, engine
from shakegen.use.logits import ban_mask, log_softmax
from shakegen.use.stopping import LENGTH, Ended, StopRule

MAX_BEAMS = 4096  # each step runs the model once at batch K: bounded so a request cannot take the memory


@dataclass(frozen=True)
class Beam:
    """One continuation: ``ids`` generated (without a dropped stop text), ``log_prob`` the total log-probability
    of every character generated (a stop text included), ``length`` their count, ``ended`` how it ended."""

    ids: tuple
    log_prob: float
    length: int
    ended: Ended

    @property
    def per_character(self) -> float:
        return self.log_prob / self.length

    def as_dict(self, prefix: str, decode) -> dict:
        """The record ``TextModel.beam_search`` returns: the text (``prefix`` then the ids decoded), the
        log-probabilities, the characters generated and how it ended (``Ended.as_dict``)."""
        return {
            "text": prefix + decode(self.ids),
            "log_prob": self.log_prob,
            "log_prob_per_character": self.per_character,
            "characters": self.length,
            **self.ended.as_dict(),
        }


def beam_search(
    model: engine.Engine,
    seed_ids,
    length: int,
    beams: int = 5,
    *,
    rule: StopRule | None = None,
    decode=None,
    ban=None,
    context: engine.Context | None = None,
) -> list[Beam]:
    """The ``beams`` best continuations of ``seed_ids``, best first (see the module's length rule).

    Args:
        decode: ids -> text, needed when ``rule`` has stop texts or a line count.
        ban: ids never chosen (``logits.ban_mask``).
    Raises:
        SamplingError: a length or beam count below 1, more than ``MAX_BEAMS`` beams, a bad ban or seed.
    """
    for name, value in (("length", length), ("beams", beams)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SamplingError(f"{name} must be a positive integer, got {value!r}.")
    if beams > MAX_BEAMS:
        raise SamplingError(f"beams must be at most {MAX_BEAMS}, got {beams}; ask for fewer beams.")
    rule = rule or StopRule()
    if rule.active and decode is None:
        raise SamplingError("Stop texts and line counts need the vocabulary's decode to read the beams' text.")
    banned = ban_mask(ban, model.vocab_size)
    primed = model.prime(seed_ids, context)
    vocab = model.vocab_size

    tokens = np.zeros((1, 0), np.int64)  # (live, t): the live beams' characters so far
    totals = np.zeros(1)  # (live,)
    logits, states = primed.logits, list(primed.states)
    finished: list[Beam] = []
    with blas_threads.limited(engine.BLAS_THREADS):
        for t in range(length):
            scores = totals[:, None] + log_softmax(logits)  # (live, V) float64
            if banned is not None:
                scores[:, banned] = -np.inf
            flat = scores.reshape(-1)
            order = np.lexsort((np.arange(flat.size), -flat))  # best first; ties to the lower beam, then id
            last = t == length - 1
            keep_rows, keep_ids = [], []
            for index in order:
                if len(keep_rows) == beams or not np.isfinite(flat[index]):
                    break
                row, char = divmod(int(index), vocab)
                ids = (*tokens[row].tolist(), char)
                ended = _ends(rule, decode, ids) if rule.active else None
                if ended is None and not last:
                    keep_rows.append(row)
                    keep_ids.append(char)
                    continue
                kept_ids, how = ended if ended is not None else (ids, Ended(LENGTH))
                finished.append(Beam(tuple(kept_ids), float(flat[index]), len(ids), how))
                if last:
                    keep_rows.append(row)  # counts towards the K taken at the last step
                    keep_ids.append(char)
            if last or not keep_rows:
                break
            rows = np.array(keep_rows)
            tokens = np.concatenate([tokens[rows], np.array(keep_ids)[:, None]], axis=1)
            totals = flat[rows * vocab + np.array(keep_ids)]
            logits, states = model.step(np.array(keep_ids), [state[rows] for state in states])
    finished.sort(key=lambda beam: (-beam.per_character, beam.ids))
    return finished[:beams]


def _ends(rule: StopRule, decode, ids) -> tuple[tuple, Ended] | None:
    """Whether the beam ``ids`` ends at its last character: (the ids kept, how), else None."""
    text = decode(np.asarray(ids))
    found = rule.find(text, len(text) - 1)
    if found is None:
        return None
    end, reason, stop = found
    return tuple(ids[:end]), Ended(reason, stop)  # one id per character: text positions are id positions
