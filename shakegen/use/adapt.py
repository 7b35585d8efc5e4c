"""Adaptive scoring (dynamic evaluation, Krause et al. 2018): the model keeps learning from the text it scores.

The text is read as one stream, in segments of ``segment`` characters, the state carried from
each segment to the next as in the streaming protocol. Each segment is first scored with the
weights as they are, and only then are the weights moved one step of plain SGD down the
gradient of that segment's mean cross-entropy (the gradient stops at the segment's start):

    loss_i = mean NLL of segment i under θ_i        (counted in the figure)
    θ_{i+1} = θ_i - learning_rate · ∇ loss_i

So every character is still predicted before the model has seen it; what the model has read
earlier in the text moves its weights. This is its own protocol, ``adaptive``: its figures are
never comparable with ``streaming`` or ``windows``. The run folder is never written: the model
is loaded into memory, adapted there, and thrown away (or, when passed in, given its weights back).

TensorFlow is imported when this module is (the gradients need it); nothing else imports it lazily here.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from shakegen.errors import EvaluationError
from shakegen.model import inference
from shakegen.model.backend import tf
from shakegen.runs import checkpoint
from shakegen.use import report as rows
from shakegen.use.evaluate import CrossEntropy

SEGMENT = 32  # characters per adaptation step
DEFAULT_LEARNING_RATE = 0.05  # plain SGD; chosen on the pretrained model (see docs/quality.md)
PROTOCOL = "adaptive"


def check(learning_rate, segment) -> None:
    """EvaluationError unless the learning rate is a finite number ≥ 0 and the segment a positive integer."""
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float))
        or not (math.isfinite(learning_rate) and learning_rate >= 0)
    ):
        raise EvaluationError(f"The adaptive learning rate must be a finite number, 0 or more; got {learning_rate!r}.")
    if isinstance(segment, bool) or not isinstance(segment, int) or segment < 1:
        raise EvaluationError(f"The adaptive segment must be a positive number of characters, got {segment!r}.")


def _step_function(model):
    """(inputs (1, T), targets (1, T), states, learning rate) -> (NLL sum before the step, new states)."""
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(inputs, targets, states, learning_rate):
        with tf.GradientTape() as tape:
            logits, new_states = model(inputs, states=states, training=False)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=tf.cast(logits, tf.float32))
            loss = tf.reduce_mean(nll)
        gradients = tape.gradient(loss, variables)
        for variable, gradient in zip(variables, gradients, strict=True):
            if gradient is not None:
                variable.assign_sub(tf.cast(learning_rate, variable.dtype) * tf.convert_to_tensor(gradient))
        return tf.reduce_sum(tf.cast(nll, tf.float64)), [tf.stop_gradient(state) for state in new_states]

    return step


def adaptive_cross_entropy(
    model,
    ids,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    segment: int = SEGMENT,
    progress: Callable[[int, int], None] | None = None,
):
    """Cross-entropy of ``ids`` under dynamic evaluation (see the module docstring).

    Args:
        model: a float32 ``CharModel``. Its weights are adapted while scoring and given back
            afterwards, whatever happens.
        ids: encoded text, at least 2 characters.
        learning_rate: SGD's step; 0 gives the streaming figure.
        segment: characters scored between two steps.
        progress: called with (characters done, characters in all) after each segment.
    Returns:
        an ``evaluate.CrossEntropy``.
    """

    check(learning_rate, segment)
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < 2:
        raise EvaluationError(f"Need a text of at least 2 characters to evaluate, got {ids.size}.")
    if not inference.is_float32(model):
        raise EvaluationError(
            "Adaptive scoring needs a float32 model (checkpoint.load_model with precision='float32' gives one)."
        )
    saved = [variable.numpy() for variable in model.trainable_variables]
    step = _step_function(model)
    states = inference.zero_states(model, 1)
    rate = tf.constant(learning_rate, tf.float32)
    predicted = len(ids) - 1
    total = 0.0
    try:
        for start in range(0, predicted, segment):
            stop = min(start + segment, predicted)
            inputs = tf.constant(np.asarray(ids[start:stop], np.int32)[None, :])
            targets = tf.constant(np.asarray(ids[start + 1 : stop + 1], np.int32)[None, :])
            nll, states = step(inputs, targets, states, rate)
            total += float(nll)
            if progress:
                progress(stop, predicted)
    finally:
        for variable, value in zip(model.trainable_variables, saved, strict=True):
            variable.assign(value)
    return CrossEntropy(total, predicted)


def report(run_dir, which: str, ids, learning_rate: float, segment: int = SEGMENT, progress=None) -> dict:
    """The figures of a run under the adaptive protocol, with the fields of ``report.report``'s
    rows (``protocol`` "adaptive", ``learning_rate`` and ``segment`` added; window, samples and
    random seed None). The run is loaded afresh into memory; its folder is only read."""

    model, info, saved_state = checkpoint.load_model(run_dir, which, precision="float32")
    result = adaptive_cross_entropy(model, ids, learning_rate, segment, progress)
    protocol = {
        "protocol": PROTOCOL,
        "window": None,
        "samples": None,
        "random_seed": None,
        "learning_rate": float(learning_rate),
        "segment": int(segment),
    }
    return rows.report_row(info, which, saved_state, ids, result, protocol)
