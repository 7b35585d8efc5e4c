"""Streaming evaluation: cross-entropy of a model over a whole text, state carried throughout.

Every character is predicted from all the text before it: the text is one stream, fed in
windows, and the GRU state of one window is the initial state of the next. The figures are
therefore independent of the window size (up to float rounding).

Perplexity = exp(total cross-entropy / characters predicted); bits per character = that
cross-entropy / ln 2. Never an average of per-window exp(loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

DEFAULT_WINDOW = 512


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
        return math.exp(self.loss)

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


def _window_function(model):
    """A compiled step: (window ids, targets, states) -> (summed NLL, new states)."""

    @tf.function(reduce_retracing=True)
    def run(inputs, targets, states):
        logits, new_states = model(inputs, states=states, training=False)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        return tf.reduce_sum(tf.cast(nll, tf.float64)), new_states

    return run


def streaming_cross_entropy(
    model,
    ids: np.ndarray,
    window: int = DEFAULT_WINDOW,
    progress: Callable[[int, int], None] | None = None,
) -> CrossEntropy:
    """Cross-entropy of ``model`` over ``ids`` as one stream.

    Args:
        ids: encoded text; characters 1..n-1 are predicted from everything before them.
        window: characters fed per compiled call (does not change the figure).
    """
    if len(ids) < 2:
        raise ValueError(f"Need at least 2 characters to evaluate, got {len(ids)}.")
    run = _window_function(model)
    states = [tf.zeros((1, layer.units)) for layer in model.rnn_layers]
    total = 0.0
    predicted = len(ids) - 1
    position = 0
    while position < predicted:
        end = min(position + window, predicted)
        chunk = np.asarray(ids[position : end + 1], dtype=np.int32)
        nll, states = run(tf.constant(chunk[None, :-1]), tf.constant(chunk[None, 1:]), states)
        total += float(nll)
        position = end
        if progress:
            progress(position, predicted)
    return CrossEntropy(total, predicted)
