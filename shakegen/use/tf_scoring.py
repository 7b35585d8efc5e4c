"""What TensorFlow reads when it scores a text: the compiled step, and the batches built from the ids.

``evaluate``'s two protocols run a ``CharModel`` over batches built lazily from ``ids`` (memory is
bounded by the batch, not the text): streaming cuts the text into ``stream_layout``'s contiguous
streams, each warmed on the characters before it, read window by window (``stream_windows``); the
windows protocol reads ``batches_of_windows``, each window from a zero state. A weight of 0 marks a
position that is padding or burn-in. TensorFlow is imported only by ``window_function``.
"""

from __future__ import annotations

import weakref
from typing import Iterator, Sequence

import numpy as np

MAX_STREAMS = 32


def window_function(model):
    """A compiled step: (inputs, targets, weights, states) -> (weighted NLL sum, new states).

    Cached per model (see ``inference.cache_of``), so validating every epoch traces the graph
    once; the graph reaches the model through a weak reference, so the cache never keeps a
    model alive.
    """
    from shakegen.model import inference
    from shakegen.model.backend import tf

    cache = inference.cache_of(model)
    if "evaluation" not in cache:
        model_ref = weakref.ref(model)
        # Any number of rows and characters: one trace serves every window, stream and batch.
        text = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None, None), tf.int32))
        weights = tf.TensorSpec((None, None), tf.float64)
        states = [tf.TensorSpec((None, layer.units), tf.float32) for layer in model.rnn_layers]

        @tf.function(input_signature=(*text, weights, states))
        def run(inputs, targets, weights, states):
            logits, new_states = model_ref()(inputs, states=states, training=False)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            return tf.reduce_sum(tf.cast(nll, tf.float64) * weights), new_states

        cache["evaluation"] = run
    return cache["evaluation"]


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


def stream_windows(ids: np.ndarray, layout, length: int, window: int) -> Iterator[tuple[int, tuple]]:
    """(stop, (inputs, targets, weights)) for each window of the streams, built when needed.

    Row ``s`` of a window starting at ``start`` holds positions ``first_s + start ...`` of
    stream ``s``; positions past its end are padding with weight 0, and positions before
    its first counted prediction (its burn-in) have weight 0 too.
    """
    streams = len(layout)
    for start in range(0, length, window):
        stop = min(start + window, length)
        inputs = np.zeros((streams, stop - start), np.int32)  # (streams, time)
        targets = np.zeros((streams, stop - start), np.int32)
        weights = np.zeros((streams, stop - start), np.float64)
        for row, (first, counted, end) in enumerate(layout):
            begin, finish = first + start, min(first + stop, end)
            if finish <= begin:
                continue
            span = finish - begin
            inputs[row, :span] = ids[begin:finish]
            targets[row, :span] = ids[begin + 1 : finish + 1]
            weights[row, max(0, counted - begin) : span] = 1.0
        yield stop, (inputs, targets, weights)


def batches_of_windows(ids: np.ndarray, starts: Sequence[int], window: int, batch_size: int):
    """(windows done, (inputs, targets, weights)) per batch of windows, built when needed."""
    predicted = len(ids) - 1
    width = min(window, predicted)
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        inputs = np.zeros((len(chunk), width), np.int32)  # (windows, time)
        targets = np.zeros((len(chunk), width), np.int32)
        weights = np.zeros((len(chunk), width), np.float64)
        for row, start in enumerate(map(int, chunk)):
            span = min(width, predicted - start)  # only the last window can be shorter
            inputs[row, :span] = ids[start : start + span]
            targets[row, :span] = ids[start + 1 : start + span + 1]
            weights[row, :span] = 1.0
        yield first + len(chunk), (inputs, targets, weights)
