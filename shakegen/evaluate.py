"""Streaming evaluation: cross-entropy of a model over a whole text, state carried throughout.

Every character is predicted from all the text before it: the text is one stream, fed in
windows, and the GRU state of one window is the initial state of the next. The figures are
therefore independent of the window size (up to float rounding).

Perplexity = exp(total cross-entropy / characters predicted); bits per character = that
cross-entropy / ln 2. Never an average of per-window exp(loss).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

DEFAULT_WINDOW = 512
MAX_STREAMS = 32
BURN_IN = 512


def safe_exp(value: float) -> float:
    """exp that gives inf instead of raising for a diverged loss."""
    return math.exp(value) if value < 700 else math.inf


@dataclass(frozen=True)
class CrossEntropy:
    """Summed negative log-likelihood (nats) over ``count`` predicted characters."""

    total_nll: float
    count: int

    @property
    def loss(self) -> float:
        return self.total_nll / self.count

    @property
    def perplexity(self) -> float:
        return safe_exp(self.loss)

    @property
    def bits_per_character(self) -> float:
        return self.loss / math.log(2)


class PerplexityMetric(keras.metrics.Metric):
    """Perplexity from summed cross-entropy over every predicted character.

    ``update_state(nll_sum, count)`` adds a batch's summed NLL (nats) and its number of
    predicted characters; ``result()`` is exp(total / count), never a mean of exp(loss).
    """

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="int64", name="count")

    def update_state(self, nll_sum, count):
        self.total.assign_add(tf.cast(nll_sum, tf.float64))
        self.count.assign_add(tf.cast(count, tf.int64))

    def loss(self) -> float:
        """Mean cross-entropy in nats per character so far."""
        count = int(self.count.numpy())
        return float(self.total.numpy()) / count if count else float("nan")

    def result(self):
        return tf.exp(self.total / tf.maximum(tf.cast(self.count, tf.float64), 1.0))


_WINDOW_FUNCTIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _window_function(model):
    """A compiled step: (inputs, targets, weights, states) -> (weighted NLL sum, new states).

    Cached per model, so validating every epoch traces the graph once, not once per epoch.
    """
    if model in _WINDOW_FUNCTIONS:
        return _WINDOW_FUNCTIONS[model]

    @tf.function(reduce_retracing=True)
    def run(inputs, targets, weights, states):
        logits, new_states = model(inputs, states=states, training=False)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        return tf.reduce_sum(tf.cast(nll, tf.float64) * weights), new_states

    _WINDOW_FUNCTIONS[model] = run
    return run


def default_streams(predicted: int) -> int:
    """Parallel streams for a text: one per 4,096 predicted characters, at most 32."""
    return int(min(MAX_STREAMS, max(1, predicted // 4096)))


def stream_layout(predicted: int, streams: int, burn_in: int) -> list[tuple[int, int, int]]:
    """(first input position, first counted prediction, end) per stream.

    Stream ``s`` counts the predictions of positions ``[counted, end)`` (position ``p``
    predicts ``ids[p + 1]``), after reading up to ``burn_in`` earlier characters
    uncounted so its state is warm.
    """
    bounds = np.linspace(0, predicted, streams + 1).astype(int)
    return [
        (max(0, int(start) - burn_in), int(start), int(end)) for start, end in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def streaming_cross_entropy(
    model,
    ids: np.ndarray,
    window: int = DEFAULT_WINDOW,
    streams: int | None = None,
    burn_in: int = BURN_IN,
    progress: Callable[[int, int], None] | None = None,
) -> CrossEntropy:
    """Cross-entropy of ``model`` over ``ids``, state carried from window to window.

    Args:
        ids: encoded text; characters 1..n-1 are predicted from everything before them.
        window: characters fed per compiled call; it does not change the figure.
        streams: the text is cut into this many contiguous pieces run side by side as one
            batch (default: ``default_streams``). With one stream every character is
            predicted from all the text before it, exactly; with more, each piece first
            reads ``burn_in`` characters of the text before it, uncounted, which agrees
            with one stream to about 1e-4 relative on Tiny Shakespeare (see README).
    """
    if len(ids) < 2:
        raise ValueError(f"Need at least 2 characters to evaluate, got {len(ids)}.")
    predicted = len(ids) - 1
    streams = default_streams(predicted) if streams is None else max(1, min(streams, predicted))
    layout = stream_layout(predicted, streams, burn_in)
    length = max(end - first for first, _, end in layout)
    inputs = np.zeros((streams, length), np.int32)
    targets = np.zeros((streams, length), np.int32)
    weights = np.zeros((streams, length), np.float64)
    for row, (first, counted, end) in enumerate(layout):
        span = end - first
        inputs[row, :span] = ids[first:end]
        targets[row, :span] = ids[first + 1 : end + 1]
        weights[row, counted - first : span] = 1.0
    run = _window_function(model)
    states = [tf.zeros((streams, layer.units)) for layer in model.rnn_layers]
    total = 0.0
    for start in range(0, length, window):
        stop = min(start + window, length)
        nll, states = run(
            tf.constant(inputs[:, start:stop]),
            tf.constant(targets[:, start:stop]),
            tf.constant(weights[:, start:stop]),
            states,
        )
        total += float(nll)
        if progress:
            progress(stop, length)
    return CrossEntropy(total, predicted)


def unigram_cross_entropy(counts: np.ndarray, ids: np.ndarray) -> float:
    """Mean cross-entropy (nats) of ``ids`` under the unigram distribution of ``counts``.

    Add-one smoothing keeps characters unseen in training at a finite cost.
    """
    probabilities = (np.asarray(counts, np.float64) + 1.0) / (np.sum(counts) + len(counts))
    frequencies = np.bincount(np.asarray(ids, np.int64), minlength=len(counts))
    return float(-(frequencies * np.log(probabilities)).sum() / max(len(ids), 1))


def evaluation_ids(info, *, split: str | None, text_path=None, data_dir="data", strict: bool = False):
    """The encoded text to evaluate a run on, and how many characters were left out as unknown.

    Raises:
        ValueError: empty text, no known character, unknown characters with ``strict``, or a
            split that was never prepared.
    """
    from pathlib import Path

    from shakegen import prepare
    from shakegen.corpus import check_readable_file, clean_text

    if text_path is not None:
        check_readable_file(Path(text_path))
        options = info.data.get("options", {})
        raw = Path(text_path).read_text(encoding="utf-8")
        text = clean_text(
            raw, lowercase=options.get("lowercase", False), strip_punctuation=options.get("strip_punctuation", False)
        )
        if not text:
            raise ValueError(f"{text_path} holds no text to evaluate; give a file with some text in it.")
        unknown = info.vocab.unknown_characters(text)
        known = "".join(char for char in text if char in info.vocab.char_to_id) if unknown else text
        left_out = len(text) - len(known)
        if unknown and strict:
            shown = ", ".join(repr(char) for char in unknown[:20])
            raise ValueError(
                f"{text_path} has {left_out} characters the model does not know ({shown}); the checkpoint at "
                f"{info.run_dir} knows {len(info.vocab)} characters. Drop --strict to leave them out of the figure."
            )
        if len(known) < 2:
            raise ValueError(f"{text_path} has fewer than 2 characters the model knows; nothing to evaluate.")
        return info.vocab.encode(known), left_out
    if not prepare.is_prepared(data_dir):
        raise ValueError(
            f"The {split} split is not prepared in {prepare.prepared_dir(data_dir)}. Run `shakegen prepare` "
            "on the corpus the model was trained on, or evaluate a file with --text."
        )
    data = prepare.load_prepared(data_dir)
    if data.vocab != info.vocab:
        raise ValueError(
            f"The prepared data in {prepare.prepared_dir(data_dir)} has a different vocabulary from the run at "
            f"{info.run_dir}; prepare the corpus it was trained on, or use --text."
        )
    return (data.train if split == "train" else data.val), 0


def evaluate_checkpoint(run_dir, which: str, ids: np.ndarray, window: int = DEFAULT_WINDOW, progress=None) -> dict:
    """The perplexity report of one checkpoint on ``ids``."""
    from shakegen import checkpoint

    model, info, best_state = checkpoint.load_model(run_dir, which)
    last_state = checkpoint.read_state(checkpoint.checkpoint_path(run_dir, "last"))
    result = streaming_cross_entropy(model, ids, window=window, progress=progress)
    counts = info.data.get("train_counts")
    unigram = unigram_cross_entropy(np.asarray(counts), np.asarray(ids[1:])) if counts else None
    return {
        "run": str(run_dir),
        "which": which,
        "cell": info.config.cell,
        "parameters": info.parameters,
        "characters": result.count,
        "loss": result.loss,
        "perplexity": result.perplexity,
        "bits_per_character": result.bits_per_character,
        "uniform_perplexity": float(len(info.vocab)),
        "unigram_perplexity": math.exp(unigram) if unigram is not None else None,
        "epoch": best_state.get("epoch") if which == "best" else last_state.get("epoch"),
        "step": best_state.get("step") if which == "best" else last_state.get("global_step"),
        "training_minutes": last_state.get("elapsed_seconds", 0.0) / 60,
    }
