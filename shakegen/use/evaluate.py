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
TensorFlow only when a TensorFlow model is scored.
"""

from __future__ import annotations

import math
import operator
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from shakegen.config import MAX_RANDOM_SEED
from shakegen.errors import EvaluationError

DEFAULT_WINDOW = 512  # streaming: characters per compiled call (does not change the figure)
MAX_STREAMS = 32
BURN_IN = 512
PROTOCOLS = ("streaming", "windows")
EVAL_WINDOW = 256  # windows protocol: nanoGPT's block size on Tiny Shakespeare
WINDOW_BATCH_CHARACTERS = 32768  # windows protocol: characters per compiled call
BINCOUNT_CHUNK = 1 << 22
SPLITS = ("val", "train")


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


def check_random_seed(random_seed) -> int:
    """``random_seed`` as an int, or EvaluationError unless it is an integer in 0..2**32 - 1."""
    try:
        seed = operator.index(random_seed)  # an integer (NumPy's too), never a float or a string
    except TypeError:
        seed = None
    if seed is None or isinstance(random_seed, bool) or not 0 <= seed <= MAX_RANDOM_SEED:
        raise EvaluationError(
            f"The random seed must be an integer from 0 to {MAX_RANDOM_SEED:,} (2**32 - 1), got {random_seed!r}."
        )
    return seed


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
        check_random_seed(self.random_seed)
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


def _window_function(model):
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

        @tf.function(reduce_retracing=True)
        def run(inputs, targets, weights, states):
            logits, new_states = model_ref()(inputs, states=states, training=False)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            return tf.reduce_sum(tf.cast(nll, tf.float64) * weights), new_states

        cache["evaluation"] = run
    return cache["evaluation"]


def _check_ids(ids) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < 2:
        raise EvaluationError(f"Need a text of at least 2 characters to evaluate, got {len(ids.reshape(-1))}.")
    return ids


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


def _stream_windows(ids: np.ndarray, layout, length: int, window: int) -> Iterator[tuple[int, tuple]]:
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
    run = _window_function(model)
    states = inference.zero_states(model, streams)
    total = 0.0
    for stop, (inputs, targets, weights) in _stream_windows(ids, layout, length, window):
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
    check_random_seed(random_seed)
    # A start s reads ids[s : s + window] and predicts ids[s + 1 : s + window + 1].
    return np.random.default_rng(random_seed).integers(0, predicted - window + 1, size=samples, dtype=np.int64)


def _batches_of_windows(ids: np.ndarray, starts: Sequence[int], window: int, batch_size: int):
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
    run = _window_function(model)
    total, count = 0.0, 0
    for done, (inputs, targets, weights) in _batches_of_windows(ids, starts, window, batch_size):
        nll, _ = run(
            tf.constant(inputs), tf.constant(targets), tf.constant(weights), inference.zero_states(model, len(inputs))
        )
        total += float(nll)
        count += int(weights.sum())
        if progress:
            progress(done, len(starts))
    return CrossEntropy(total, count)


def check_characters_per_call(characters_per_call) -> None:
    """EvaluationError unless ``characters_per_call`` is None or a positive integer."""
    if characters_per_call is not None and (
        isinstance(characters_per_call, bool) or not isinstance(characters_per_call, int) or characters_per_call < 1
    ):
        raise EvaluationError(f"characters_per_call must be a positive integer, got {characters_per_call!r}.")


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
    from shakegen.use.engine import WINDOW

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


def unigram_cross_entropy(counts: np.ndarray, ids: np.ndarray) -> float:
    """Mean cross-entropy (nats) of ``ids`` under the unigram distribution of ``counts``.

    Add-one smoothing keeps characters unseen in training at a finite cost. ``ids`` is
    counted in pieces, so a memory-mapped split is never copied whole.
    """
    probabilities = (np.asarray(counts, np.float64) + 1.0) / (np.sum(counts) + len(counts))
    frequencies = np.zeros(len(counts), np.int64)
    for start in range(0, len(ids), BINCOUNT_CHUNK):
        frequencies += np.bincount(np.asarray(ids[start : start + BINCOUNT_CHUNK]), minlength=len(counts))
    return float(-(frequencies * np.log(probabilities)).sum() / max(len(ids), 1))


def _looks_binary(path, encoding: str, sniff_bytes: int = 8192) -> bool:
    """NUL bytes near the start, in an encoding where text never holds them (UTF-16 and -32 do)."""
    import codecs

    try:
        if codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
            return False
    except LookupError:
        return False  # reading it will say the encoding is unknown
    with open(path, "rb") as handle:
        return b"\x00" in handle.read(sniff_bytes)


def _text_ids(info, text_path, encoding: str | None, strict: bool) -> tuple[np.ndarray, int]:
    """Encode a text file as the run's corpus was read and cleaned; unknown characters left out."""
    from pathlib import Path

    from shakegen.data.corpus import iter_clean_chunks, looks_binary
    from shakegen.data.vocab import UnknownCharactersError

    path = Path(text_path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
        raise EvaluationError(f"The text to evaluate, {path}, {what}; pass an existing text file with --text.")
    options = info.data.get("options", {})
    encoding = encoding or options.get("encoding") or "utf-8"
    if looks_binary(path, encoding):
        raise EvaluationError(
            f"{path} looks like a binary file (it holds NUL bytes), not {encoding} text; pass a text file with --text "
            "(or its encoding with --encoding)."
        )
    pieces, unknown, left_out = [], {}, 0
    for text in iter_clean_chunks(
        path,
        encoding=encoding,
        lowercase=options.get("lowercase", False),
        strip_punctuation=options.get("strip_punctuation", False),
    ):
        known, missing = info.drop_unknown(text)  # chunks arrive cleaned as the run's corpus was
        if missing:
            unknown.update(dict.fromkeys(missing))
            left_out += len(text) - len(known)
            text = known
        pieces.append(info.vocab.encode(text))
    ids = np.concatenate(pieces) if pieces else np.zeros(0, info.vocab.dtype)
    if unknown and strict:
        raise UnknownCharactersError(
            list(unknown),
            len(info.vocab),
            subject=f"{path} ({left_out:,} characters)",
            where=f"The checkpoint at {info.run_dir}",
            advice="drop --strict to leave them out of the figure",
        )
    if len(ids) + left_out == 0:
        raise EvaluationError(f"{path} holds no text to evaluate; give a file with some text in it.")
    if len(ids) < 2:
        raise EvaluationError(f"{path} has fewer than 2 characters the model knows; nothing to evaluate.")
    return ids, left_out


@dataclass(frozen=True)
class EvaluationText:
    """What ``evaluation_ids`` found to evaluate.

    ``ids``: the encoded text. ``left_out``: characters left out as unknown to the run.
    ``same_corpus``: for a split, whether it is of the corpus the run was trained on (by the
    cleaned text's SHA-256; ``None`` for a text file, or a run that records no hash), and
    ``corpus_note``: one sentence saying so when it is not.
    """

    ids: np.ndarray
    left_out: int = 0
    same_corpus: bool | None = None
    corpus_note: str | None = None


def evaluation_ids(
    info, *, split: str | None, text_path=None, data_dir="data", strict: bool = False, encoding: str | None = None
) -> EvaluationText:
    """The encoded text to evaluate a run on (see ``EvaluationText``).

    Args:
        info: the run's ``RunInfo``.
        split: ``val`` or ``train`` of the prepared corpus in ``data_dir``, unless ``text_path``;
            for a run trained on the embedded Tiny Shakespeare, its split is cut in memory unless
            ``data_dir`` holds that same corpus prepared. A prepared corpus other than the run's
            own is scored all the same, and said so (``corpus_note``).
        text_path: a text file, read in ``encoding`` (default: the encoding the run's corpus
            was prepared with) and cleaned as the corpus was.
        strict: refuse characters the model does not know instead of leaving them out.
    Raises:
        EvaluationError: an unknown split, empty text, no known character, or a split that was
            never prepared or holds characters the run does not know.
        UnknownCharactersError: unknown characters with ``strict``.
        CorpusError: the file is not valid in its encoding, or the encoding is unknown.
    """
    from shakegen.data import prepare

    if text_path is not None:
        return EvaluationText(*_text_ids(info, text_path, encoding, strict))
    if split not in SPLITS:
        raise EvaluationError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)} (or a text to evaluate).")
    prepared = data_dir is not None and prepare.is_prepared(data_dir)
    data = prepare.load_prepared(data_dir) if prepared else None
    run_sha256 = info.data.get("sha256")
    if data is None or data.meta.get("sha256") != run_sha256:
        # A run trained on the embedded corpus (the pretrained model) is scored on its own split,
        # cut in memory, whatever else is (or is not) prepared in data_dir.
        embedded = embedded_corpus_text(info)
        if embedded is not None:
            cut = info.data["train_characters"]
            return EvaluationText(info.vocab.encode(embedded[:cut] if split == "train" else embedded[cut:]), 0, True)
    if data is None:
        where = "anywhere" if data_dir is None else f"in {prepare.prepared_dir(data_dir)}"
        raise EvaluationError(
            f"The {split} split is not prepared {where}. Run `shakegen prepare` "
            "on the corpus the model was trained on, or evaluate a file with --text."
        )
    from shakegen.data.vocab import translate

    if not info.vocab.covers(data.vocab):
        raise EvaluationError(
            f"The prepared data in {prepare.prepared_dir(data_dir)} has characters the run at {info.run_dir} does not "
            "know; prepare the corpus it was trained on, or use --text."
        )
    same = None if not run_sha256 else data.meta.get("sha256") == run_sha256
    note = None if same is not False else _other_corpus_note(info, data.meta, prepare.prepared_dir(data_dir), split)
    # The run's ids: a fine-tuned run's vocabulary extends the prepared one's, in another order.
    ids = translate(data.train if split == "train" else data.val, data.vocab.translation_to(info.vocab))
    return EvaluationText(ids, 0, same, note)


def _other_corpus_note(info, meta: dict, folder, split: str) -> str:
    """One line: the prepared corpus is not the one the run was trained on (file names only)."""
    from pathlib import PurePath

    def named(values: dict) -> str:
        source = values.get("source")
        name = PurePath(str(source)).name if source else "a corpus"
        return f"{name} (SHA-256 {str(values.get('sha256', '?'))[:12]})"

    return (
        f"{info.run_dir} was trained on {named(info.data)}, but {folder} holds {named(meta)}: "
        f"this figure is that corpus's {split} split, not the run's own. Pass --data-dir with the run's corpus "
        "prepared to score it on its own."
    )


def embedded_corpus_text(info) -> str | None:
    """The embedded Tiny Shakespeare cleaned as ``info``'s run prepared it, if that run was
    trained on it (its recorded SHA-256 is the cleaned text's); None for any other run."""
    import hashlib

    from shakegen.data import corpus

    text = info.clean(corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8"))
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != info.data.get("sha256"):
        return None
    return None if info.vocab.unknown_characters(text) else text


def report(
    model,
    info,
    which: str,
    saved_state: dict,
    ids: np.ndarray,
    protocol: Protocol,
    progress=None,
    characters_per_call: int | None = None,
) -> dict:
    """The figures of a loaded run's ``model`` (TensorFlow's or the NumPy engine) on ``ids``.

    Returns:
        A dict naming the run, the protocol (``protocol``, ``window``, ``samples``,
        ``random_seed``) and giving ``characters`` (predictions counted), ``loss`` (nats per
        character), ``perplexity``, ``bits_per_character``, the uniform and unigram
        baselines, and when the weights were reached: epoch, step and training minutes up to
        them (``None`` where the run does not record it).
    """
    result = cross_entropy(model, ids, protocol, progress=progress, characters_per_call=characters_per_call)
    return report_row(info, which, saved_state, ids, result, protocol.to_json())


def report_row(info, which: str, saved_state: dict, ids: np.ndarray, result: CrossEntropy, protocol: dict) -> dict:
    """The row ``report`` returns, for a ``result`` already computed on ``ids`` under the protocol whose
    fields are ``protocol`` (they follow ``run`` and ``which``, in their order)."""
    counts = info.data.get("train_counts")
    unigram = unigram_cross_entropy(np.asarray(counts), ids[1:]) if counts else None
    epoch, step, seconds = reached(info.run_dir, which, saved_state)
    return {
        "run": str(info.run_dir),
        "which": which,
        **protocol,
        "cell": info.config.cell,
        "parameters": info.parameters,
        "characters": result.count,
        "loss": result.loss,
        "perplexity": result.perplexity,
        "bits_per_character": result.bits_per_character,
        "uniform_perplexity": float(len(info.vocab)),
        "unigram_perplexity": math.exp(unigram) if unigram is not None else None,
        "epoch": epoch,
        "step": step,
        "training_minutes": seconds / 60 if seconds is not None else None,
    }


def reached(run_dir, which: str, saved_state: dict, last_state: dict | None = None):
    """(epoch, step, training seconds) up to the ``which`` weights whose saved state is ``saved_state``:
    the best weights' own (their history row's seconds when their state lacks them), else the run's last."""
    from shakegen.runs import checkpoint

    if which == "best":
        epoch, step = saved_state.get("epoch"), saved_state.get("step")
        return epoch, step, _seconds_at(run_dir, saved_state, step)
    last_state = checkpoint.last_state(run_dir) if last_state is None else last_state
    return last_state.get("epoch"), last_state.get("global_step"), last_state.get("elapsed_seconds")


def _seconds_at(run_dir, saved_state: dict, step) -> float | None:
    """Training seconds up to the best weights: their own state's, else history.csv's row at their step."""
    from shakegen.errors import CheckpointError
    from shakegen.runs import checkpoint

    if saved_state.get("elapsed_seconds") is not None:
        return float(saved_state["elapsed_seconds"])
    if step is None:
        return None
    try:
        history = checkpoint.read_history(run_dir)
    except CheckpointError:
        return None
    reached = [row.get("elapsed_seconds") for row in history if row.get("step") == step]
    return reached[-1] if reached else None


def string_ids(info, text: str, strict: bool = False) -> tuple[np.ndarray, int]:
    """Encode a string as the run sees text (``RunInfo.text_as_seen``); unknown characters left out.

    Raises:
        UnknownCharactersError: unknown characters with ``strict``.
        EvaluationError: fewer than 2 known characters.
    """
    from shakegen.data.vocab import UnknownCharactersError

    if not isinstance(text, str):
        raise EvaluationError(f"The text to evaluate must be a string, got {type(text).__name__}.")
    cleaned, known, unknown = info.text_as_seen(text)
    if unknown and strict:
        raise UnknownCharactersError(
            unknown,
            len(info.vocab),
            subject=f"The text ({len(cleaned) - len(known):,} characters)",
            where=f"The checkpoint at {info.run_dir}",
            advice="pass strict=False to leave them out of the figure",
        )
    if len(known) < 2:
        raise EvaluationError("The text has fewer than 2 characters the model knows; nothing to evaluate.")
    return info.vocab.encode(known), len(cleaned) - len(known)
