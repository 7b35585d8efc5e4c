"""Cross-entropy of a model over a text, under two protocols.

streaming (``streaming_cross_entropy``): the text is one stream fed in windows, the GRU
    state of one window being the initial state of the next, so every character is
    predicted from all the text before it. The figure does not depend on the window size.
windows (``windowed_cross_entropy``): the text is cut into windows that each start from a
    zero state, and every position of every window counts; non-overlapping windows covering
    the text, or (``samples``) a seeded random sample of full windows, as nanoGPT does. The
    first characters of each window are predicted almost blind, so this figure is higher;
    it is the one to put beside other tools' figures measured that way.

Both run the model in float32 (see ``inference``), build their windows lazily from ``ids``
(memory is bounded by the batch, not the text), and sum the negative log-likelihood in
float64. Perplexity = exp(total cross-entropy / characters predicted); bits per character =
that cross-entropy / ln 2. Never an average of per-window exp(loss).

``cross_entropy`` runs either protocol on a TensorFlow model or on the NumPy engine
(``engine.Engine``: one stream at batch 1, for short texts), and this module imports
TensorFlow only when a TensorFlow model is scored. The batches TensorFlow reads are built in
``tf_scoring``; which text is scored is ``scored_text``'s, and the row a run reports ``report``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from shakegen.config import MAX_RANDOM_SEED
from shakegen.errors import EvaluationError
from shakegen.use import noise
from shakegen.use.engine import WINDOW
from shakegen.use.tf_scoring import batches_of_windows, default_streams, stream_layout, stream_windows, window_function

DEFAULT_WINDOW = 512  # streaming: characters per compiled call (does not change the figure)
BURN_IN = 512
PROTOCOLS = ("streaming", "windows")
EVAL_WINDOW = 256  # windows protocol: nanoGPT's block size on Tiny Shakespeare
WINDOW_BATCH_CHARACTERS = 32768  # windows protocol: characters per compiled call


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


def _check_random_seed(random_seed) -> int:
    """``random_seed`` as an int (``noise.check_random_seed``'s rule), or EvaluationError saying the range."""
    try:
        return noise.check_random_seed(random_seed)
    except ValueError:
        raise EvaluationError(
            f"The random seed must be an integer from 0 to {MAX_RANDOM_SEED:,} (2**32 - 1), got {random_seed!r}."
        ) from None


@dataclass(frozen=True)
class Protocol:
    """How a figure is measured: which protocol, and for ``windows`` its window and sampling.

    Args:
        name: ``streaming`` (state carried through the whole text) or ``windows`` (each
            window from a zero state).
        window: characters per window (``windows`` only).
        samples: ``None`` for non-overlapping windows covering the text, or this many
            windows at random starts (``windows`` only).
        random_seed: seed of the random starts (``windows`` with ``samples`` only).
    """

    name: str = "streaming"
    window: int = EVAL_WINDOW
    samples: int | None = None
    random_seed: int = 0

    def validate(self) -> "Protocol":
        """Return self, or raise EvaluationError naming the bad value and what is expected."""
        if self.name not in PROTOCOLS:
            raise EvaluationError(f"Unknown protocol {self.name!r}; expected one of {', '.join(PROTOCOLS)}.")
        if self.window < 1:
            raise EvaluationError(f"The window must be a positive number of characters, got {self.window}.")
        if self.samples is not None and self.samples < 1:
            raise EvaluationError(f"samples must be a positive number of windows, got {self.samples}.")
        _check_random_seed(self.random_seed)
        return self

    def describe(self) -> str:
        """A short phrase naming the protocol, for tables and messages."""
        if self.name == "streaming":
            return "streaming: state carried through the whole text"
        if self.samples is None:
            return f"non-overlapping windows of {self.window} from a zero state"
        return f"{self.samples} random windows of {self.window} from a zero state (random seed {self.random_seed})"

    def to_json(self) -> dict:
        """The fields a report names; ``None`` where a field does not apply to the protocol."""
        windowed = self.name == "windows"
        return {
            "protocol": self.name,
            "window": self.window if windowed else None,
            "samples": self.samples if windowed else None,
            "random_seed": self.random_seed if windowed and self.samples is not None else None,
        }


def _check_ids(ids) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < 2:
        raise EvaluationError(f"Need a text of at least 2 characters to evaluate, got {len(ids.reshape(-1))}.")
    return ids


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
        model: a ``CharModel``; run in float32 whatever its precision.
        ids: encoded text (any integer array, memory-mapped is fine); characters 1..n-1
            are predicted from everything before them.
        window: characters fed per compiled call; it does not change the figure.
        streams: the text is cut into this many contiguous pieces run side by side as one
            batch (default: ``default_streams``). With one stream every character is
            predicted from all the text before it, exactly; with more, each piece first
            reads ``burn_in`` characters of the text before it, uncounted, which agrees
            with one stream to about 1e-4 relative on Tiny Shakespeare (see README).
        progress: called with (positions done, positions in all) after each window.
    Raises:
        EvaluationError: fewer than 2 characters, or a window below 1.
    """
    from shakegen.model import inference
    from shakegen.model.backend import tf

    ids = _check_ids(ids)
    if window < 1:
        raise EvaluationError(f"The window must be a positive number of characters, got {window}.")
    model = inference.float32_model(model)
    predicted = len(ids) - 1
    streams = default_streams(predicted) if streams is None else max(1, min(streams, predicted))
    layout = stream_layout(predicted, streams, burn_in)
    length = max(end - first for first, _, end in layout)
    run = window_function(model)
    states = inference.zero_states(model, streams)
    total = 0.0
    for stop, (inputs, targets, weights) in stream_windows(ids, layout, length, window):
        nll, states = run(tf.constant(inputs), tf.constant(targets), tf.constant(weights), states)
        total += float(nll)
        if progress:
            progress(stop, length)
    return CrossEntropy(total, predicted)


def window_starts(predicted: int, window: int, samples: int | None = None, random_seed: int = 0) -> Sequence[int]:
    """First input position of each window of the ``windows`` protocol.

    Without ``samples``: 0, window, 2 × window, ... — non-overlapping windows covering all
    ``predicted`` predictions (the last one may be shorter). With ``samples``: that many
    starts drawn uniformly (with replacement) from every start whose full window fits, from
    a generator seeded by ``random_seed``, as nanoGPT draws its evaluation batches.

    Raises:
        EvaluationError: ``samples`` given for a text no longer than one window.
    """
    if samples is None:
        return range(0, predicted, window)  # a range, not an array: no memory per window
    if predicted < window:
        raise EvaluationError(
            f"The text predicts {predicted:,} characters, fewer than one window of {window}; random windows need "
            "a longer text. Lower --window, or drop --samples to score the whole text as one window."
        )
    _check_random_seed(random_seed)
    # A start s reads ids[s : s + window] and predicts ids[s + 1 : s + window + 1].
    return np.random.default_rng(random_seed).integers(0, predicted - window + 1, size=samples, dtype=np.int64)


def windowed_cross_entropy(
    model,
    ids: np.ndarray,
    window: int = EVAL_WINDOW,
    samples: int | None = None,
    random_seed: int = 0,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CrossEntropy:
    """Cross-entropy of ``model`` over windows of ``ids`` that each start from a zero state.

    Every position of every window counts. Without ``samples`` the windows are
    non-overlapping and cover the text, so every character but the first is predicted once
    (the same count as streaming); with ``samples``, that many full windows at random
    starts (see ``window_starts``). A window as long as the text gives the streaming figure
    of one stream.

    Args:
        model: a ``CharModel``; run in float32 whatever its precision.
        ids: encoded text (any integer array, memory-mapped is fine).
        window: characters per window (256 is nanoGPT's block size on Tiny Shakespeare).
        samples: ``None`` for non-overlapping windows covering the text, or a number of
            random windows.
        random_seed: seed of the random starts.
        batch_size: windows per compiled call (default: ``WINDOW_BATCH_CHARACTERS`` / window);
            it does not change the figure beyond float rounding.
        progress: called with (windows done, windows in all) after each batch.
    Returns:
        CrossEntropy over ``count`` predicted characters.
    Raises:
        EvaluationError: fewer than 2 characters, a window or batch size below 1, or
            random windows on a text shorter than one window.
    """
    ids = _check_ids(ids)
    Protocol("windows", window, samples, random_seed).validate()
    if batch_size is not None and batch_size < 1:
        raise EvaluationError(f"batch_size must be a positive number of windows, got {batch_size}.")
    from shakegen.model import inference
    from shakegen.model.backend import tf

    model = inference.float32_model(model)
    predicted = len(ids) - 1
    starts = window_starts(predicted, window, samples, random_seed)
    batch_size = batch_size or max(1, WINDOW_BATCH_CHARACTERS // window)
    run = window_function(model)
    total, count = 0.0, 0
    for done, (inputs, targets, weights) in batches_of_windows(ids, starts, window, batch_size):
        nll, _ = run(
            tf.constant(inputs), tf.constant(targets), tf.constant(weights), inference.zero_states(model, len(inputs))
        )
        total += float(nll)
        count += int(weights.sum())
        if progress:
            progress(done, len(starts))
    return CrossEntropy(total, count)


def check_characters_per_call(characters_per_call) -> None:
    """EvaluationError unless ``characters_per_call`` is None or a positive integer, or a mapping (engine
    name to count) of such."""
    given = characters_per_call.values() if isinstance(characters_per_call, dict) else [characters_per_call]
    for count in given:
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise EvaluationError(f"characters_per_call must be a positive integer, got {count!r}.")


def predicted_characters(length: int, protocol: Protocol) -> int:
    """How many characters ``protocol`` predicts in a text of ``length`` ids (what scoring it costs)."""
    if protocol.name == "windows" and protocol.samples is not None:
        return protocol.samples * protocol.window
    return max(0, length - 1)


def cross_entropy(
    model, ids: np.ndarray, protocol: Protocol = Protocol(), progress=None, characters_per_call: int | None = None
) -> CrossEntropy:
    """Cross-entropy of ``model`` over ``ids`` under ``protocol`` (streaming by default).

    Args:
        model: a TensorFlow ``CharModel``, or the NumPy ``engine.Engine`` (one stream at batch 1).
        characters_per_call: at most about this many characters per compiled call (streaming:
            window = max(1, n // streams); windows: max(1, n // window) windows per batch), and so
            between two ``progress`` calls; None: the defaults. The figure does not change.
    """
    protocol.validate()
    check_characters_per_call(characters_per_call)
    if hasattr(model, "score"):  # the NumPy engine
        return engine_cross_entropy(model, ids, protocol, progress, characters_per_call)
    if protocol.name == "streaming":
        window = DEFAULT_WINDOW
        if characters_per_call is not None:
            window = max(1, characters_per_call // default_streams(len(_check_ids(ids)) - 1))
        return streaming_cross_entropy(model, ids, window=window, progress=progress)
    batch_size = None if characters_per_call is None else max(1, characters_per_call // protocol.window)
    return windowed_cross_entropy(
        model, ids, protocol.window, protocol.samples, protocol.random_seed, batch_size=batch_size, progress=progress
    )


def engine_cross_entropy(
    engine, ids: np.ndarray, protocol: Protocol = Protocol(), progress=None, characters_per_call: int | None = None
) -> CrossEntropy:
    """``cross_entropy`` on the NumPy engine: streaming as one stream (every character predicted from
    all the text before it, exactly), windows each scored from a zero state; float64 sums.

    ``progress`` is called with (positions done, positions in all) for streaming, (windows done,
    windows in all) for windows, after each piece of at most about ``characters_per_call``
    characters (default: the engine's window).
    """

    ids = _check_ids(ids)
    per_call = characters_per_call or WINDOW
    predicted = len(ids) - 1
    if protocol.name == "streaming":
        total, context = 0.0, None
        for start in range(0, predicted, per_call):
            # From a context the first entry is predicted by it; the very first piece starts one earlier.
            stop = min(start + per_call, predicted)
            scored = engine.score(ids[start : stop + 1] if context is None else ids[start + 1 : stop + 1], context)
            total -= float(np.sum(scored.log_probs))
            context = scored.context
            if progress:
                progress(stop, predicted)
        return CrossEntropy(total, predicted)
    starts = window_starts(predicted, protocol.window, protocol.samples, protocol.random_seed)
    per_turn = max(1, per_call // protocol.window)
    total, count = 0.0, 0
    for index, start in enumerate(map(int, starts)):
        span = min(protocol.window, predicted - start)
        total -= float(np.sum(engine.score(ids[start : start + span + 1]).log_probs))
        count += span
        if progress and ((index + 1) % per_turn == 0 or index + 1 == len(starts)):
            progress(index + 1, len(starts))
    return CrossEntropy(total, count)
