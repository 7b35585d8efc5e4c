"""Sampling text from a trained model: the seed primed window by window, then a compiled loop.

The seed goes through the model once, at batch 1, in windows of ``PRIME_WINDOW`` characters
that carry the GRU state, keeping only the last position's logits: memory stays bounded
however long the seed. That state is then copied to every sample of the request, and
characters are drawn by a ``tf.function`` whose while loop carries the state, ``CHUNK``
characters per call, so output can stream while the loop stays compiled. All samples of a
request run as one batch.

Randomness is Gumbel-max with noise drawn per sample from a stateless generator seeded by
(random seed + sample index, chunk index) as int64, so every random seed from 0 to 2**32 - 1
has its own noise (seeds below 2**31 draw exactly what they drew as int32): sample i of a
batch is identical to a single sample run with random seed + i, and nothing depends on
whether the output is streamed.

One ``Sampler`` serves every option value: the temperature, top-k and top-p are run-time
inputs of one compiled loop whose signature is fixed (any batch size), so new option values
never trace, compile or cache anything.

Sampling always runs in float32 (see ``inference``): a run trained in mixed_bfloat16 gives
the same text as its weights do in float32, on any processor.
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import tensorflow as tf

from shakegen import inference, noise
from shakegen.errors import SamplingError
from shakegen.model import step_function
from shakegen.vocab import UnknownCharactersError

CHUNK = 64
PRIME_WINDOW = 256
# Below float32's smallest normal number a temperature cannot scale logits meaningfully
# (it would round to 0 or turn every gap into infinity): such temperatures are greedy.
GREEDY_BELOW = float(np.finfo(np.float32).tiny)
# The largest temperature float32 holds; above it the temperature would become inf and the
# logits all 0: uniform sampling, whatever the model says.
LARGEST_TEMPERATURE = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class SamplingOptions:
    """How each next character is chosen.

    temperature: 0 means greedy (argmax); so does any temperature below ``GREEDY_BELOW``
        (1.2e-38), which is greedy in the limit anyway. At most ``LARGEST_TEMPERATURE``
        (3.4e38, float32's largest).
    top_k: sample only among the k most likely characters.
    top_p: sample only in the nucleus, the smallest set of most likely characters whose
        probability reaches top_p; it always holds the most likely character, so a top_p
        too small for float32 (below 1.2e-38, or rounding to 0) samples greedily.
    """

    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    def validate(self, vocab_size: int) -> "SamplingOptions":
        """Return self, or raise SamplingError naming the bad value and what is expected."""
        if not (math.isfinite(self.temperature) and 0 <= self.temperature <= LARGEST_TEMPERATURE):
            raise SamplingError(
                f"temperature must be a finite number, 0 (greedy) or positive up to {LARGEST_TEMPERATURE:.7g} "
                f"(float32's largest), got {self.temperature}."
            )
        if self.top_k is not None and not 1 <= self.top_k <= vocab_size:
            raise SamplingError(f"top-k must be between 1 and the vocabulary size {vocab_size}, got {self.top_k}.")
        if self.top_p is not None and not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise SamplingError(f"top-p must be a number in (0, 1], got {self.top_p}.")
        return self


def check_random_seed(value) -> int:
    """``value`` as an int, or SamplingError unless it is an integer from 0 to 2**32 - 1."""
    try:
        return noise.check_random_seed(value)
    except ValueError as error:
        message = str(error)
        raise SamplingError(f"{message[0].upper()}{message[1:-1]}; pick one in that range.") from None


def draw_random_seed() -> int:
    """A random seed from the whole range 0 ... 2**32 - 1, from the operating system (reported, so the text
    can be had again)."""
    return int.from_bytes(os.urandom(4), "little")


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


def sample_next(logits, noise, temperature, top_k, top_p):
    """Next ids (batch,) drawn by Gumbel-max from logits (batch, vocab) and uniform noise (batch, vocab).

    ``temperature`` (at least ``GREEDY_BELOW``), ``top_k`` and ``top_p`` are scalars, tensors
    or numbers; top_k 0 and top_p 1 filter nothing.
    """
    # Shifted so the largest is 0: dividing by a tiny temperature then gives -inf at worst,
    # never +inf, and the most likely character stays finite (greedy in the limit).
    shifted = logits - tf.reduce_max(logits, axis=-1, keepdims=True)
    filtered = filter_logits(shifted / temperature, top_k, top_p)
    gumbel = -tf.math.log(-tf.math.log(noise))
    return tf.argmax(filtered + gumbel, axis=-1, output_type=tf.int32)


def chunk_noise(row_seeds, chunk_index, vocab_size: int):
    """Uniform noise in [tiny, 1), (batch, CHUNK, vocab): row i's from the stateless seed (row_seeds[i], chunk_index).

    ``row_seeds`` (batch,) int64 from 0 to 2**32 - 1: as int64 every seed has its own noise,
    and a seed below 2**31 draws what it drew as an int32.
    """
    tiny = np.finfo(np.float32).tiny
    chunk_index = tf.cast(chunk_index, tf.int64)
    return tf.map_fn(
        lambda seed: tf.random.stateless_uniform(
            (CHUNK, vocab_size), seed=tf.stack([seed, chunk_index]), minval=tiny, maxval=1.0
        ),
        tf.cast(row_seeds, tf.int64),
        fn_output_signature=tf.float32,
    )


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


def sample_chunk(model, logits, states, row_seeds, chunk_index, temperature, top_k, top_p):
    """Draw ``CHUNK`` characters for a batch of streams in one compiled while loop.

    Args:
        logits: (batch, vocab) for the next character; states: [(batch, units)] per layer.
        row_seeds: (batch,) int64 from 0 to 2**32 - 1; the noise of row i depends only on
            (row_seeds[i], chunk_index) (see ``chunk_noise``).
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
        uniform = chunk_noise(row_seeds, chunk_index, model.vocab_size)  # (batch, CHUNK, vocab)
        return loop(lambda t, logits: sample_next(logits, uniform[:, t, :], temperature, top_k, top_p))

    # Decided once per chunk, outside the loop: greedy draws no noise at all.
    return tf.cond(temperature < GREEDY_BELOW, greedy, sample)


def read_seed_file(path, encoding: str | None = None) -> str:
    """The text of a seed file, decoded with ``encoding`` (UTF-8 when None); cleaning is ``prepare_seed``'s.

    Raises:
        SamplingError: no such file, an unknown encoding, or bytes not valid in it.
    """
    from pathlib import Path

    path, encoding = Path(path), encoding or "utf-8"
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SamplingError(
            f"Cannot read the seed file {path}: {error.strerror or error}. Pass an existing text file with --seed-file."
        ) from None
    try:
        return raw.decode(encoding)
    except LookupError:
        raise SamplingError(
            f"Unknown text encoding {encoding!r} for the seed file {path}. Pass a Python codec name such as utf-8 "
            "or latin-1 with --encoding."
        ) from None
    except UnicodeDecodeError as error:
        raise SamplingError(
            f"The seed file {path} is not valid {encoding}: byte 0x{raw[error.start]:02x} at offset {error.start} "
            "cannot be decoded. Pass its encoding with --encoding (for example --encoding latin-1)."
        ) from None


def prepare_seed(seed_text: str, info, skip_unknown: bool = False) -> tuple[str, list[str]]:
    """Clean the seed as the training text was cleaned, and deal with unknown characters.

    Returns:
        (the seed to use, the characters dropped).
    Raises:
        UnknownCharactersError: unknown characters without ``skip_unknown``.
        SamplingError: nothing left after cleaning.
    """
    _, known, unknown = info.text_as_seen(seed_text)
    if unknown and not skip_unknown:
        raise UnknownCharactersError(
            unknown,
            len(info.vocab),
            subject="Seed text",
            where=f"The checkpoint at {info.run_dir}",
            advice="remove them or pass --skip-unknown",
        )
    seed_text = known
    if not seed_text:
        raise SamplingError(
            "The seed text is empty after cleaning and dropping unknown characters; give a seed the model knows."
        )
    return seed_text, unknown


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
                tf.TensorSpec((None,), tf.int64),  # row seeds
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
        row_seeds = tf.constant(noise.sample_keys(check_random_seed(random_seed), num_samples), tf.int64)
        option_values = option_tensors(self.options if options is None else options)
        logits, states = self.prime(seed_ids)
        # One primed state, copied to every sample: (num_samples, vocab) and (num_samples, units).
        logits = tf.tile(logits, (num_samples, 1))
        states = [tf.tile(state, (num_samples, 1)) for state in states]
        produced = 0
        chunk_index = 0
        while produced < length:
            ids, logits, states = self._chunk(
                logits, states, row_seeds, tf.constant(chunk_index, tf.int32), *option_values
            )
            take = min(CHUNK, length - produced)
            yield ids.numpy()[:, :take]
            produced += take
            chunk_index += 1


@dataclass
class GenerationResult:
    texts: list[str]
    seconds: float
    characters: int

    @property
    def characters_per_second(self) -> float:
        return self.characters / self.seconds if self.seconds else float("inf")


def generate_text(
    sampler: Sampler, vocab, seed_text: str, length: int, num_samples: int, random_seed: int, on_chunk=None
):
    """Sample ``num_samples`` continuations; ``on_chunk(list of str)`` sees each block as it comes."""
    started = time.perf_counter()
    pieces: list[list[str]] = [[] for _ in range(num_samples)]
    for block in sampler.sample(vocab.encode(seed_text), length, num_samples, random_seed):
        decoded = [vocab.decode(row) for row in block]
        for index, text in enumerate(decoded):
            pieces[index].append(text)
        if on_chunk:
            on_chunk(decoded)
    seconds = time.perf_counter() - started
    return GenerationResult(["".join(parts) for parts in pieces], seconds, length * num_samples)
