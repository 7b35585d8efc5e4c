"""The graphs the exported SavedModel's ``generate`` and ``log_prob`` signatures run, in plain TensorFlow.

Built on the very graph functions TensorFlow's sampler compiles (``tf_sampler.feed_seed_window``,
``tf_sampler.sample_chunk``), with the sampling options as run-time inputs: ``prime`` is
``Sampler.prime`` (the seed in windows of ``PRIME_WINDOW``), ``draw`` is ``Sampler.sample`` for
one sample (chunks of ``CHUNK``, the counter-based noise of ``shakegen.use.noise``), and
``log_prob`` is ``evaluate.streaming_cross_entropy`` with one stream. A bad input fails with an
InvalidArgumentError whose message says what is wrong (``check``).
"""

from __future__ import annotations

from shakegen.model.backend import tf
from shakegen.use import noise, sampling, tf_sampler

SCORE_WINDOW = 512  # characters per step of log_prob's loop (evaluate's streaming window); not the figure


def check(condition, message: str, *values):
    """An assertion op whose error message is ``message`` followed by ``values``."""
    return tf.debugging.Assert(condition, [message, *values], summarize=1)


def option_checks(length, temperature, top_k, top_p, random_seed, vocab_size: int) -> list:
    """The assertions of ``generate``'s options: each fails naming the option, its range and the value given."""
    in_range = tf.logical_and(random_seed >= 0, random_seed < noise.SEED_RANGE)
    return [
        check(length > 0, "length must be a positive number of characters; got", length),
        check(
            tf.logical_and(tf.math.is_finite(temperature), temperature >= 0),
            "temperature must be a finite number, 0 (greedy) or positive; got",
            temperature,
        ),
        check(
            tf.logical_and(top_k >= 0, top_k <= vocab_size),
            f"top_k must be between 1 and the vocabulary size {vocab_size}, or 0 for none; got",
            top_k,
        ),
        check(tf.logical_and(top_p > 0, top_p <= 1), "top_p must be a number in (0, 1], 1 for none; got", top_p),
        check(in_range, f"random_seed must be an integer from 0 to {noise.SEED_RANGE - 1}; got", random_seed),
    ]


def zero_states(model, batch: int) -> list:
    return [tf.zeros((batch, layer.units), tf.float32) for layer in model.rnn_layers]


def prime(model, ids, vocab_size: int):
    """``Sampler.prime``: the seed at batch 1 in windows of ``PRIME_WINDOW``, carrying the state."""
    window = sampling.PRIME_WINDOW
    windows = (tf.size(ids) + window - 1) // window

    def body(index, logits, states):
        piece = ids[index * window : (index + 1) * window][tf.newaxis, :]  # (1, time)
        logits, states = tf_sampler.feed_seed_window(model, piece, states)
        return index + 1, logits, states

    initial = (tf.constant(0), tf.zeros((1, vocab_size), tf.float32), zero_states(model, 1))
    _, logits, states = tf.while_loop(lambda index, *_: index < windows, body, initial)
    return logits, states


def draw(model, logits, states, length, temperature, top_k, top_p, random_seed):
    """``Sampler.sample`` for one sample: chunks of ``CHUNK`` characters, then the first ``length``."""
    row_keys = tf.reshape(random_seed, (1,))  # (1,) int64, checked to be from 0 to 2**32 - 1: sample 0's key
    chunks = (length + sampling.CHUNK - 1) // sampling.CHUNK

    def body(index, logits, states, pieces):
        ids, logits, states = tf_sampler.sample_chunk(model, logits, states, row_keys, index, temperature, top_k, top_p)
        return index + 1, logits, states, pieces.write(index, ids[0])

    pieces = tf.TensorArray(tf.int32, size=chunks)
    _, _, _, pieces = tf.while_loop(lambda index, *_: index < chunks, body, (tf.constant(0), logits, states, pieces))
    return tf.reshape(pieces.stack(), (-1,))[:length]


def log_prob(model, ids) -> dict:
    """``evaluate.streaming_cross_entropy`` with one stream: the state carried through the text's ids."""
    predicted = tf.size(ids) - 1
    enough = check(predicted > 0, "Need a text of at least 2 characters to score; got", tf.size(ids))
    windows = (predicted + SCORE_WINDOW - 1) // SCORE_WINDOW

    def body(index, total, states):
        start = index * SCORE_WINDOW
        stop = tf.minimum(start + SCORE_WINDOW, predicted)
        inputs, targets = ids[start:stop][tf.newaxis, :], ids[start + 1 : stop + 1][tf.newaxis, :]  # (1, time)
        logits, states = model(inputs, states=states, training=False)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        return index + 1, total + tf.reduce_sum(tf.cast(nll, tf.float64)), states

    with tf.control_dependencies([enough]):
        initial = (tf.constant(0), tf.constant(0.0, tf.float64), zero_states(model, 1))
        _, total, _ = tf.while_loop(lambda index, *_: index < windows, body, initial)
    characters = tf.cast(predicted, tf.int64)
    return {
        "log_prob": -total,
        "cross_entropy": total,
        "characters": characters,
        "loss": total / tf.cast(characters, tf.float64),
    }
