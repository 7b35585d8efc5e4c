"""The neuron search: properties known by hand, and a unit planted to track "inside quotes"."""

from __future__ import annotations

import numpy as np
import pytest

from shakegen.data.vocab import Vocabulary
from shakegen.use import neurons
from shakegen.use.engine import Engine
from shakegen.use.inspect import inspect_text

UNITS = 8
PLANTED = 5  # the unit set to follow "inside quotes"


def test_properties_by_hand():
    text = 'ROMEO:\nHe said “go (now)” "x"\n'
    found = neurons.properties(text)
    assert len(found["vowel"]) == len(text)
    inside = "".join("1" if v else "0" for v in found["inside_quotes"])
    # R O M E O : \n H e   s a i d   “ g o   ( n o w ) ”   " x " \n: after “ until ”, after the first " until the second
    assert inside == "0" * 15 + "1" * 9 + "00" + "11" + "00"
    assert "".join("1" if v else "0" for v in found["inside_brackets"]) == "".join(
        "1" if text.index("(") <= t < text.index(")") else "0" for t in range(len(text))
    )
    assert found["line_position"].tolist()[:9] == [0, 1, 2, 3, 4, 5, 6, 0, 1]  # a newline ends its line
    assert found["speaker_line"].tolist() == [1.0] * 6 + [0.0] * (len(text) - 6)
    assert found["after_newline"].nonzero()[0].tolist() == [6, len(text) - 1]
    word = [t for t in range(1, len(text)) if text[t].isalpha() and text[t - 1].isalpha()]
    assert found["inside_word"].nonzero()[0].tolist() == word
    assert "".join(text[t] for t in found["vowel"].nonzero()[0]) == "OEOeaioo"


def test_correlation_is_pearsons():
    rng = np.random.default_rng(1)
    hidden = [rng.normal(size=(50, 3)), rng.normal(size=(50, 3))]
    values = rng.normal(size=50)
    hidden[1][:, 2] = 0.0  # a constant unit correlates 0
    scores = neurons.correlations(hidden, values)
    for layer in range(2):
        for unit in range(3):
            expected = 0.0 if (layer, unit) == (1, 2) else np.corrcoef(hidden[layer][:, unit], values)[0, 1]
            assert scores[layer, unit] == pytest.approx(expected, abs=1e-12)


def planted_engine(vocab: Vocabulary, seed: int = 0) -> Engine:
    """A one-layer gru whose unit PLANTED holds its value except at a quote: “ sets it to +1, ” to -1.

    With a one-hot embedding, row c of the kernel is character c's input to the gates and
    candidate. For unit PLANTED: update gate z = σ(+12) ≈ 1 (keep the state) for every character
    but the two quotes, whose z = σ(-12) ≈ 0 (take the candidate), and candidate tanh(±6) ≈ ±1.
    Every other unit gets random weights.
    """
    rng = np.random.default_rng(seed)
    size = len(vocab)
    kernel = rng.normal(0, 0.8, (size, 3 * UNITS))
    recurrent = rng.normal(0, 0.8, (UNITS, 3 * UNITS))
    recurrent[:, [PLANTED, UNITS + PLANTED, 2 * UNITS + PLANTED]] = 0.0
    recurrent[PLANTED, :] = 0.0  # nothing else reads it either
    bias = np.zeros((2, 3 * UNITS))
    kernel[:, PLANTED] = 12.0
    kernel[:, 2 * UNITS + PLANTED] = 0.0
    for char, sign in (("“", 1.0), ("”", -1.0)):
        row = vocab.char_to_id[char]
        kernel[row, PLANTED] = -12.0
        kernel[row, 2 * UNITS + PLANTED] = 6.0 * sign
    weights = {
        "embedding/embeddings": np.eye(size),
        "rnn_0/kernel": kernel,
        "rnn_0/recurrent_kernel": recurrent,
        "rnn_0/bias": bias,
        "logits/kernel": rng.normal(0, 0.5, (UNITS, size)),
        "logits/bias": np.zeros(size),
    }
    return Engine(weights, "gru", 1)


def quoted_text(seed: int = 3, lines: int = 60) -> str:
    rng = np.random.default_rng(seed)
    words = ["thou", "art", "my", "lord", "and", "she", "said", "go", "now", "it", "is", "well"]
    out = []
    for _ in range(lines):
        line = []
        for _ in range(rng.integers(4, 10)):
            word = str(rng.choice(words))
            line.append(f"“{word} {rng.choice(words)}”" if rng.random() < 0.25 else word)
        out.append(" ".join(line))
    return "\n".join(out) + "\n"


class SeenAsIs:
    """A RunInfo's text rule for a run whose vocabulary is ``vocab`` and which cleans nothing."""

    def __init__(self, vocab):
        self.vocab = vocab

    def text_as_seen(self, text):
        unknown = self.vocab.unknown_characters(text)
        return text, text, unknown


def test_the_search_finds_a_planted_quote_unit_and_ranks_random_units_below():
    text = quoted_text()
    vocab = Vocabulary.from_characters(text)
    inspection = inspect_text(planted_engine(vocab), SeenAsIs(vocab), text, keep_hidden=True)
    findings, absent = neurons.search(inspection.hidden, inspection.text, per_property=UNITS)
    assert "inside_brackets" in absent and "inside_quotes" not in absent
    ranked = [f for f in findings if f.property == "inside_quotes"]
    assert (ranked[0].layer, ranked[0].index) == (0, PLANTED)
    assert ranked[0].correlation > 0.95
    assert all(abs(f.correlation) < ranked[0].correlation - 0.2 for f in ranked[1:])
    # The planted unit's value really follows the quotes (the search read what the model computed).
    inside = neurons.properties(text)["inside_quotes"].astype(bool)
    planted = inspection.hidden[0][:, PLANTED]
    assert planted[inside].min() > 0.9 and planted[~inside & (np.arange(len(text)) > text.index("”"))].max() < -0.9
    profile = neurons.unit_profile(inspection.hidden, text, (0, PLANTED))
    assert profile["inside_quotes"] == pytest.approx(ranked[0].correlation)
