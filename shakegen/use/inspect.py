"""What the model saw in a text: per character its probability, rank and the model's top guesses.

Built on the inference engine (NumPy, never TensorFlow). For a text c_0 ... c_{n-1}, the record
of character t says how the model predicted it from c_0 ... c_{t-1} (the first character has no
prediction: nothing comes before it), and the hidden units asked for hold their value after
reading c_t. So the records' log-probabilities sum to the streaming cross-entropy of the text
(``shakegen eval --text``), and the top guesses at t are the softmax of the logits before c_t.

    records = inspect.inspect_text(engine, info, "ROMEO:\\nBut soft!", top_k=5, units=[(2, 17)])
    records.characters[3].rank, records.characters[3].top[0]     # 1, ('M', 0.93)
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from shakegen.errors import SamplingError

BITS_BINS = (1, 2, 4, 8)  # the colour bins of the views: below 1 bit, 1 to 2, 2 to 4, 4 to 8, 8 and more
MAX_CHARACTERS = 50_000  # a page is ~3,000; the hidden states of 50,000 are ~300 MB for the pretrained model
DEFAULT_TOP_K = 5
CHUNK = 1024  # characters per piece (bounds memory to CHUNK × vocabulary; one turn of the server)
SPAN = 10  # characters per "most surprising span"
UNIT_PATTERN = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


class InspectionError(SamplingError):
    """A text or a unit that cannot be inspected (the message says why and what to do)."""


@dataclass(frozen=True)
class CharacterRecord:
    """One character of an inspected text.

    ``log_prob`` (nats) and ``bits`` (= -log_prob / ln 2): how likely the model found ``char`` at
    ``position``; ``rank``: 1 when it was the model's top guess; ``top``: the model's ``top_k``
    guesses for this position as (character, probability), most likely first. All four are None
    for the first character, which nothing predicts. ``units``: {"L:N": value after reading
    ``char``} for the units asked for.
    """

    position: int
    char: str
    log_prob: float | None
    bits: float | None
    rank: int | None
    top: list | None
    units: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        record = asdict(self)
        record["top"] = None if self.top is None else [{"char": c, "probability": p} for c, p in self.top]
        return record


@dataclass(frozen=True)
class Inspection:
    """An inspected text: its records and, kept for neuron views, the hidden states."""

    text: str  # the text as the run sees it (cleaned, unknown characters left out)
    characters: list  # CharacterRecord per character of ``text``
    left_out: list  # characters the model does not know, left out of ``text``
    hidden: list | None  # per layer (n, units) float32 when kept, else None

    @property
    def predicted(self) -> list:
        return self.characters[1:]

    @property
    def total_log_prob(self) -> float:
        return float(sum(record.log_prob for record in self.predicted))

    @property
    def bits_per_character(self) -> float:
        return -self.total_log_prob / len(self.predicted) / math.log(2)

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "characters_predicted": len(self.predicted),
            "bits_per_character": self.bits_per_character,
            "total_log_prob": self.total_log_prob,
            "left_out_characters": self.left_out,
            "records": [record.to_json() for record in self.characters],
        }


def parse_unit(text: str, num_layers: int | None = None, units: int | None = None) -> tuple[int, int]:
    """ "L:N" (layer from 0, unit from 0) -> (L, N); InspectionError naming the bad value otherwise."""
    match = UNIT_PATTERN.match(str(text))
    if not match:
        raise InspectionError(f"A unit is written LAYER:INDEX, such as 0:17 (both from 0); got {text!r}.")
    return check_unit((int(match.group(1)), int(match.group(2))), num_layers, units)


def check_unit(unit, num_layers: int | None, units: int | None) -> tuple[int, int]:
    layer, index = (int(value) for value in unit)
    if num_layers is not None and not 0 <= layer < num_layers:
        raise InspectionError(f"Layer {layer} does not exist: the model's layers are 0 to {num_layers - 1}.")
    if units is not None and not 0 <= index < units:
        raise InspectionError(f"Unit {index} does not exist: each layer has units 0 to {units - 1}.")
    return layer, index


def unit_name(unit) -> str:
    return f"{unit[0]}:{unit[1]}"


def check_request(engine, top_k: int, units) -> list:
    """The units as (layer, index), or InspectionError for a bad ``top_k`` or a unit the model does not have."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= engine.vocab_size:
        raise InspectionError(f"top_k must be between 1 and the vocabulary size {engine.vocab_size}, got {top_k!r}.")
    return [check_unit(unit, engine.num_layers, engine.layers[0].units) for unit in units]


def iter_records(engine, chars, ids, *, top_k: int = DEFAULT_TOP_K, units=(), piece: int = CHUNK):
    """Records for ``ids`` (at least 2), ``piece`` characters at a time: yields (records, hidden per layer
    of the piece). The state is carried from piece to piece, so the records do not depend on ``piece``;
    work happens as pieces are taken (the server takes one per turn of its model's thread)."""
    ids = np.asarray(ids)
    units = check_request(engine, top_k, units)
    if len(ids) < 2:
        raise InspectionError("The text has fewer than 2 characters; give a longer text to inspect.")
    context = None
    for start in range(0, len(ids), max(2, piece)):
        window = ids[start : start + max(2, piece)]
        scores = engine.score(window, context=context, hidden=True)
        logits = scores.logits  # one row per character predicted: window[1:], or all of it after a context
        context = scores.context
        first = 0 if start > 0 else 1  # the text's first character: nothing predicts it
        records = []
        if first:
            records.append(
                CharacterRecord(0, chars[int(ids[0])], None, None, None, None, _unit_values(scores.hidden, units, 0))
            )
        targets = window[first:]
        probabilities = _softmax(logits)  # (len(targets), V)
        target_probability = probabilities[np.arange(len(targets)), targets]
        ranks = 1 + (probabilities > target_probability[:, None]).sum(axis=1)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        for offset, target in enumerate(targets):
            log_prob = float(scores.log_probs[offset])
            top = [(chars[int(i)], float(probabilities[offset, i])) for i in order[offset]]
            records.append(
                CharacterRecord(
                    start + first + offset,
                    chars[int(target)],
                    log_prob,
                    -log_prob / math.log(2),
                    int(ranks[offset]),
                    top,
                    _unit_values(scores.hidden, units, first + offset),
                )
            )
        yield records, scores.hidden


def inspect_ids(engine, chars, ids, *, top_k: int = DEFAULT_TOP_K, units=(), keep_hidden: bool = False):
    """Records for ``ids`` (at least 2) read by ``engine``; ``chars`` maps an id to its character.

    Returns:
        (list of CharacterRecord, hidden states per layer (n, u) float32 or None).
    """
    records, hidden = [], []
    for piece_records, piece_hidden in iter_records(engine, chars, ids, top_k=top_k, units=units):
        records.extend(piece_records)
        if keep_hidden:
            hidden.append(piece_hidden)
    return records, ([np.concatenate(layer) for layer in zip(*hidden, strict=True)] if keep_hidden else None)


def prepare_text(info, text: str, max_characters: int = MAX_CHARACTERS) -> tuple[str, list]:
    """(``text`` as the run sees it, with unknown characters left out; those characters).

    Raises:
        InspectionError: not a string, fewer than 2 known characters, or more than ``max_characters``.
    """
    if not isinstance(text, str):
        raise InspectionError(f"The text to inspect must be a string, got {type(text).__name__}.")
    _, known, unknown = info.text_as_seen(text)
    if len(known) < 2:
        raise InspectionError("The text has fewer than 2 characters the model knows; give a longer text to inspect.")
    if len(known) > max_characters:
        raise InspectionError(
            f"The text has {len(known):,} characters; inspect shows at most {max_characters:,}. Inspect a part of it, "
            "or score the whole with `shakegen eval --text`."
        )
    return known, list(unknown)


def inspect_text(engine, info, text: str, *, top_k: int = DEFAULT_TOP_K, units=(), keep_hidden: bool = False):
    """Inspect ``text`` as the run ``info`` sees it (cleaned as its corpus was; unknown characters left out).

    Raises:
        InspectionError: fewer than 2 known characters, more than ``MAX_CHARACTERS``, a bad
            ``top_k`` or a unit the model does not have.
    """
    known, unknown = prepare_text(info, text)
    records, hidden = inspect_ids(
        engine, info.vocab.chars, info.vocab.encode(known), top_k=top_k, units=units, keep_hidden=keep_hidden
    )
    return Inspection(known, records, list(unknown), hidden)


def with_units(inspection: Inspection, units) -> Inspection:
    """``inspection`` whose records also hold the values of ``units`` (it must have kept its hidden states)."""
    from dataclasses import replace

    if inspection.hidden is None:
        raise InspectionError("This inspection kept no hidden states; inspect again with keep_hidden=True.")
    units = [check_unit(unit, len(inspection.hidden), inspection.hidden[0].shape[1]) for unit in units]
    records = [
        replace(record, units={**record.units, **_unit_values(inspection.hidden, units, record.position)})
        for record in inspection.characters
    ]
    return replace(inspection, characters=records)


def _unit_values(hidden, units, position: int) -> dict:
    return {unit_name(unit): float(hidden[unit[0]][position, unit[1]]) for unit in units}


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


# -- the summary --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """mean bits per character; the most surprising spans (start, text, bits per character); the most
    confidently wrong characters (position, char, its probability, top guess, the guess's probability)."""

    bits_per_character: float
    characters: int
    surprising_spans: list
    confidently_wrong: list

    def to_json(self) -> dict:
        return {
            "bits_per_character": self.bits_per_character,
            "characters_predicted": self.characters,
            "surprising_spans": [
                dict(zip(("start", "text", "bits_per_character"), s, strict=True)) for s in self.surprising_spans
            ],
            "confidently_wrong": [
                dict(zip(("position", "char", "probability", "top_guess", "top_probability"), w, strict=True))
                for w in self.confidently_wrong
            ],
        }


def summarize(inspection: Inspection, count: int = 5, span: int = SPAN) -> Summary:
    """The ``count`` most surprising non-overlapping spans of ``span`` characters, and the ``count``
    characters whose top guess was wrong with the highest probability."""
    bits = np.array([0.0] + [record.bits for record in inspection.predicted])  # the first is not predicted
    span = max(1, min(span, len(bits) - 1))
    sums = np.convolve(bits[1:], np.ones(span), mode="valid")  # span totals starting at 1, 2, ...
    taken = np.zeros(len(bits), bool)
    spans = []
    for start in np.argsort(-sums, kind="stable") + 1:
        if len(spans) == count:
            break
        if taken[start : start + span].any():
            continue
        taken[start : start + span] = True
        spans.append((int(start), inspection.text[start : start + span], float(sums[start - 1] / span)))
    wrong = [r for r in inspection.predicted if r.rank != 1]
    wrong.sort(key=lambda r: -r.top[0][1])
    confidently_wrong = [(r.position, r.char, math.exp(r.log_prob), r.top[0][0], r.top[0][1]) for r in wrong[:count]]
    return Summary(inspection.bits_per_character, len(inspection.predicted), spans, confidently_wrong)
