"""Sampling on TensorFlow: the seed primed window by window, then a compiled loop, for large batches.

The seed goes through the model once, at batch 1, in windows of ``PRIME_WINDOW`` characters
that carry the GRU state, keeping only the last position's logits: memory stays bounded
however long the seed. That state is then copied to every sample of the request, and
characters are drawn by a ``tf.function`` whose while loop carries the state, ``CHUNK``
characters per call. All samples of a request run as one batch.

Randomness is Gumbel-max with the counter-based noise of ``shakegen.use.noise``: the Gumbel noise
of (random seed + sample index, position, character), the same bits the NumPy engine draws,
so both give the same text for the same random seed except at float near-ties. Sample i of a
batch is the single sample with random seed + i, and nothing depends on streaming.

One ``Sampler`` serves every option value: the temperature, top-k and top-p are run-time
inputs of one compiled loop whose signature is fixed (any batch size), so new option values
never trace, compile or cache anything. The exported SavedModel runs these same graph
functions (``export.py``).

Sampling always runs in float32 (see ``inference``): a run trained in mixed_bfloat16 gives
the same text as its weights do in float32, on any processor.
"""

from __future__ import annotations

import functools
from typing import Iterator

import numpy as np

from shakegen.errors import SamplingError
from shakegen.model import inference
from shakegen.model.backend import tf
from shakegen.model.network import step_function
from shakegen.use import noise
from shakegen.use.sampling import CHUNK, GREEDY_BELOW, PRIME_WINDOW, SamplingOptions, check_random_seed


def filter_logits(logits, top_k=None, top_p=None):
    """Set to -inf every logit outside the top-k and outside the top-p nucleus.

    The nucleus is the smallest set of most probable characters whose probability reaches
    ``top_p`` (all characters tied with its least probable member are kept too).

    Args:
        logits: (batch, vocab).
        top_k: keep the k largest; None or 0 keeps every character.
        top_p: keep the nucleus reaching p; None or 1 keeps every character.
        Either may be a Python number or a scalar tensor: the choice is made in the graph, so
        one compiled loop serves every option (and an exported SavedModel takes them as inputs).
    """
    top_k = tf.convert_to_tensor(0 if top_k is None else top_k, tf.int32)
    top_p = tf.convert_to_tensor(1.0 if top_p is None else top_p, tf.float32)
    logits = tf.cond(top_k > 0, lambda: _keep_top_k(logits, top_k), lambda: logits)
    return tf.cond(top_p < 1, lambda: _keep_nucleus(logits, top_p), lambda: logits)


def _keep_top_k(logits, top_k):
    kth = tf.math.top_k(logits, k=top_k).values[..., -1:]
    return tf.where(logits < kth, tf.constant(-np.inf, logits.dtype), logits)


def _keep_nucleus(logits, top_p):
    probabilities = tf.nn.softmax(logits)
    ordered = tf.sort(probabilities, direction="DESCENDING")
    before = tf.cumsum(ordered, axis=-1, exclusive=True)
    kept = tf.where(before < top_p, ordered, tf.ones_like(ordered))  # 1 never lowers the minimum
    # At most the largest probability: the most likely character stays even when top_p is
    # below float32's smallest normal (flushed to 0, so `before < top_p` holds nowhere).
    threshold = tf.minimum(tf.reduce_min(kept, axis=-1, keepdims=True), ordered[..., :1])
    return tf.where(probabilities < threshold, tf.constant(-np.inf, logits.dtype), logits)


def sample_next(logits, gumbel, temperature, top_k, top_p):
    """Next ids (batch,) by Gumbel-max from logits (batch, vocab) and Gumbel noise (batch, vocab):
    argmax(filter((logits - max) / T) + gumbel), as ``logits.choose`` computes it.

    ``temperature`` (at least ``GREEDY_BELOW``), ``top_k`` and ``top_p`` are scalars, tensors
    or numbers; top_k 0 and top_p 1 filter nothing.
    """
    # Shifted so the largest is 0: dividing by a tiny temperature then gives -inf at worst,
    # never +inf, and the most likely character stays finite (greedy in the limit).
    shifted = logits - tf.reduce_max(logits, axis=-1, keepdims=True)
    filtered = filter_logits(shifted / temperature, top_k, top_p)
    return tf.argmax(filtered + gumbel, axis=-1, output_type=tf.int32)


def chunk_noise(row_keys, chunk_index, vocab_size: int):
    """Gumbel noise (batch, CHUNK, vocab) of chunk ``chunk_index``: row i's from stream key row_keys[i]
    (``noise.sample_keys``) at positions chunk_index * CHUNK ... + CHUNK - 1 (``noise.gumbel_tf``)."""
    first = tf.cast(chunk_index, tf.int64) * CHUNK
    positions = tf.math.floormod(first + tf.range(CHUNK, dtype=tf.int64), noise.SEED_RANGE)
    return noise.gumbel_tf(tf.cast(row_keys, tf.int64), positions, vocab_size)


def option_tensors(options: "SamplingOptions") -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(temperature, top_k, top_p) as the scalars ``sample_chunk`` takes: 0 for greedy, 0 and 1 for no filter."""
    temperature = 0.0 if options.greedy else options.temperature
    top_k = 0 if options.top_k is None else options.top_k
    top_p = 1.0 if options.top_p is None else options.top_p
    return (tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32), tf.constant(top_p, tf.float32))


def feed_seed_window(model, ids, states):
    """Feed one window of the seed, ids (batch, time), from ``states``.

    Returns:
        (logits after its last character (batch, vocab), states [(batch, units)] per layer).
    """
    logits, states = model(ids, states=states, training=False)
    return logits[:, -1, :], states  # only the last position's logits leave the graph


def sample_chunk(model, logits, states, row_keys, chunk_index, temperature, top_k, top_p):
    """Draw ``CHUNK`` characters for a batch of streams in one compiled while loop.

    Args:
        logits: (batch, vocab) for the next character; states: [(batch, units)] per layer.
        row_keys: (batch,) int64 stream keys from 0 to 2**32 - 1 (``noise.sample_keys``): row i's
            noise depends only on (row_keys[i], position) (see ``chunk_noise``).
        chunk_index: int32 scalar, the position of this chunk in the sample (0, 1, ...).
        temperature, top_k, top_p: scalar tensors (see ``option_tensors``); a temperature
            below ``GREEDY_BELOW`` is greedy (argmax), top_k 0 and top_p 1 filter nothing.
    Returns:
        (ids (batch, CHUNK) int32, logits and states after the last of them).
    """
    step = step_function(model)
    batch = tf.shape(logits)[0]
    temperature = tf.convert_to_tensor(temperature, tf.float32)

    def loop(choose):
        def body(t, logits, states, chosen):
            ids = choose(t, logits)
            logits, states = step(ids, states)
            return t + 1, logits, states, chosen.write(t, ids)

        chosen = tf.TensorArray(tf.int32, size=CHUNK)
        _, logits_out, states_out, chosen = tf.while_loop(
            lambda t, *_: t < CHUNK, body, (tf.constant(0), logits, states, chosen)
        )
        return tf.reshape(tf.transpose(chosen.stack()), (batch, CHUNK)), logits_out, states_out

    def greedy():
        return loop(lambda t, logits: tf.argmax(logits, axis=-1, output_type=tf.int32))

    def sample():
        gumbel = chunk_noise(row_keys, chunk_index, model.vocab_size)  # (batch, CHUNK, vocab)
        return loop(lambda t, logits: sample_next(logits, gumbel[:, t, :], temperature, top_k, top_p))

    # Decided once per chunk, outside the loop: greedy draws no noise at all.
    return tf.cond(temperature < GREEDY_BELOW, greedy, sample)


class Sampler:
    """Draws text from a model; build once, sample many times, with any options.

    Args:
        model: a ``CharModel``; one that computes in mixed precision is sampled through its
            float32 twin, with the weights it has when the sampler is built.
        options: validated ``SamplingOptions``, the default of ``sample``.
        prime_window: seed characters fed per compiled call while priming.

    Its two compiled functions have fixed input signatures (any batch, any window), so each
    traces once for the sampler's life: option values, random seeds, lengths and sample
    counts are run-time inputs (``tracing_count`` stays at most 2).
    """

    def __init__(self, model, options: SamplingOptions | None = None, prime_window: int = PRIME_WINDOW):
        if prime_window < 1:
            raise SamplingError(f"prime_window must be positive, got {prime_window}.")
        self.model = inference.float32_model(model)
        self.options = SamplingOptions() if options is None else options
        self.prime_window = prime_window
        self.vocab_size = self.model.vocab_size
        states = [tf.TensorSpec((None, layer.units), tf.float32) for layer in self.model.rnn_layers]
        self._chunk = tf.function(
            functools.partial(sample_chunk, self.model),
            input_signature=[
                tf.TensorSpec((None, self.vocab_size), tf.float32),  # logits
                states,
                tf.TensorSpec((None,), tf.int64),  # row keys
                tf.TensorSpec((), tf.int32),  # chunk index
                tf.TensorSpec((), tf.float32),  # temperature
                tf.TensorSpec((), tf.int32),  # top_k
                tf.TensorSpec((), tf.float32),  # top_p
            ],
        )
        self._prime_step = tf.function(
            functools.partial(feed_seed_window, self.model),
            input_signature=[tf.TensorSpec((None, None), tf.int32), states],
        )

    def tracing_count(self) -> int:
        """How many times its compiled functions have been traced (each is traced once, when first used)."""
        return self._chunk.experimental_get_tracing_count() + self._prime_step.experimental_get_tracing_count()

    def prime(self, seed_ids) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Feed the seed at batch 1, window by window, carrying the state.

        Returns:
            (logits after the last seed character (1, vocab), states [(1, units)] per layer).
        """
        seed_ids = np.asarray(seed_ids)
        states = inference.zero_states(self.model, 1)
        logits = None
        for start in range(0, len(seed_ids), self.prime_window):
            window = np.asarray(seed_ids[start : start + self.prime_window], np.int32)[None, :]  # (1, time)
            logits, states = self._prime_step(tf.constant(window), states)
        return logits, states

    def sample(
        self,
        seed_ids: np.ndarray,
        length: int,
        num_samples: int = 1,
        random_seed: int = 0,
        options: SamplingOptions | None = None,
    ) -> Iterator[np.ndarray]:
        """Yield blocks of new ids, shape (num_samples, up to CHUNK), until ``length`` in all.

        Args:
            seed_ids: the encoded prompt (at least one id).
            length: new characters per sample.
            num_samples: samples drawn together; sample i is what ``num_samples=1`` gives
                with ``random_seed + i`` (wrapping at 2**32).
            random_seed: from 0 to 2**32 - 1.
            options: validated ``SamplingOptions``; None uses the sampler's.
        Raises:
            SamplingError: an empty seed, a length or sample count below 1, or a random seed out of range.
        """
        if length < 1:
            raise SamplingError(f"length must be a positive number of characters, got {length}.")
        if num_samples < 1:
            raise SamplingError(f"num_samples must be positive, got {num_samples}.")
        if len(seed_ids) == 0:
            raise SamplingError("The seed must hold at least one character; give a non-empty seed.")
        row_keys = tf.constant(noise.sample_keys(check_random_seed(random_seed), num_samples), tf.int64)
        option_values = option_tensors(self.options if options is None else options)
        logits, states = self.prime(seed_ids)
        # One primed state, copied to every sample: (num_samples, vocab) and (num_samples, units).
        logits = tf.tile(logits, (num_samples, 1))
        states = [tf.tile(state, (num_samples, 1)) for state in states]
        produced = 0
        chunk_index = 0
        while produced < length:
            ids, logits, states = self._chunk(
                logits, states, row_keys, tf.constant(chunk_index, tf.int32), *option_values
            )
            take = min(CHUNK, length - produced)
            yield ids.numpy()[:, :take]
            produced += take
            chunk_index += 1
