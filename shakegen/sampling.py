"""Sampling text from a trained model: the seed primed window by window, then a compiled loop.

The seed goes through the model once, at batch 1, in windows of ``PRIME_WINDOW`` characters
that carry the GRU state, keeping only the last position's logits: memory stays bounded
however long the seed. That state is then copied to every sample of the request, and
characters are drawn by a ``tf.function`` whose while loop carries the state, ``CHUNK``
characters per call, so output can stream while the loop stays compiled. All samples of a
request run as one batch.

Randomness is Gumbel-max with noise drawn per sample from a stateless generator seeded by
(random seed + sample index, chunk index): sample i of a batch is identical to a single
sample run with random seed + i, and nothing depends on whether the output is streamed.

Sampling always runs in float32 (see ``inference``): a run trained in mixed_bfloat16 gives
the same text as its weights do in float32, on any processor.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import tensorflow as tf

from shakegen import inference
from shakegen.corpus import clean_text
from shakegen.errors import SamplingError
from shakegen.model import step_function
from shakegen.vocab import UnknownCharactersError

CHUNK = 64
PRIME_WINDOW = 256
# Below float32's smallest normal number a temperature cannot scale logits meaningfully
# (it would round to 0 or turn every gap into infinity): such temperatures are greedy.
GREEDY_BELOW = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class SamplingOptions:
    """How each next character is chosen.

    temperature: 0 means greedy (argmax); so does any temperature below ``GREEDY_BELOW``
        (1.2e-38), which is greedy in the limit anyway.
    top_k: sample only among the k most likely characters.
    top_p: sample only in the nucleus, the smallest set of most likely characters whose
        probability reaches top_p.
    """

    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    def validate(self, vocab_size: int) -> "SamplingOptions":
        """Return self, or raise SamplingError naming the bad value and what is expected."""
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise SamplingError(f"temperature must be a finite number, 0 (greedy) or positive, got {self.temperature}.")
        if self.top_k is not None and not 1 <= self.top_k <= vocab_size:
            raise SamplingError(f"top-k must be between 1 and the vocabulary size {vocab_size}, got {self.top_k}.")
        if self.top_p is not None and not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise SamplingError(f"top-p must be a number in (0, 1], got {self.top_p}.")
        return self


def filter_logits(logits, top_k: int | None, top_p: float | None):
    """Set to -inf every logit outside the top-k and outside the top-p nucleus.

    The nucleus is the smallest set of most probable characters whose probability reaches
    ``top_p`` (all characters tied with its least probable member are kept too).
    """
    negative_infinity = tf.constant(-np.inf, logits.dtype)
    if top_k is not None:
        kth = tf.math.top_k(logits, k=top_k).values[..., -1:]
        logits = tf.where(logits < kth, negative_infinity, logits)
    if top_p is not None and top_p < 1:
        probabilities = tf.nn.softmax(logits)
        ordered = tf.sort(probabilities, direction="DESCENDING")
        before = tf.cumsum(ordered, axis=-1, exclusive=True)
        kept = tf.where(before < top_p, ordered, tf.ones_like(ordered))  # 1 never lowers the minimum
        threshold = tf.reduce_min(kept, axis=-1, keepdims=True)
        logits = tf.where(probabilities < threshold, negative_infinity, logits)
    return logits


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
    options = info.data.get("options", {})
    seed_text = clean_text(
        seed_text, lowercase=options.get("lowercase", False), strip_punctuation=options.get("strip_punctuation", False)
    )
    unknown = info.vocab.unknown_characters(seed_text)
    if unknown and not skip_unknown:
        raise UnknownCharactersError(
            unknown,
            len(info.vocab),
            subject="Seed text",
            where=f"The checkpoint at {info.run_dir}",
            advice="remove them or pass --skip-unknown",
        )
    if unknown:
        seed_text = seed_text.translate({ord(char): None for char in unknown})
    if not seed_text:
        raise SamplingError(
            "The seed text is empty after cleaning and dropping unknown characters; give a seed the model knows."
        )
    return seed_text, unknown


class Sampler:
    """Draws text from a model; build once, sample many times.

    Args:
        model: a ``CharModel``; one that computes in mixed precision is sampled through its
            float32 twin, with the weights it has when the sampler is built.
        options: validated ``SamplingOptions``.
        prime_window: seed characters fed per compiled call while priming.
    """

    def __init__(self, model, options: SamplingOptions, prime_window: int = PRIME_WINDOW):
        if prime_window < 1:
            raise SamplingError(f"prime_window must be positive, got {prime_window}.")
        self.model = inference.float32_model(model)
        self.options = options
        self.prime_window = prime_window
        self.vocab_size = self.model.vocab_size
        self._chunk = tf.function(self._chunk_graph, reduce_retracing=True)
        self._prime_step = tf.function(self._prime_graph, reduce_retracing=True)

    def _prime_graph(self, ids, states):
        logits, states = self.model(ids, states=states, training=False)
        return logits[:, -1, :], states  # only the last position's logits leave the graph

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

    def _choose(self, logits, noise):
        """Next ids (batch,) from logits (batch, vocab) and uniform noise (batch, vocab)."""
        options = self.options
        if options.greedy:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        # Shifted so the largest is 0: dividing by a tiny temperature then gives -inf at worst,
        # never +inf, and the most likely character stays finite (greedy in the limit).
        shifted = logits - tf.reduce_max(logits, axis=-1, keepdims=True)
        logits = filter_logits(shifted / options.temperature, options.top_k, options.top_p)
        gumbel = -tf.math.log(-tf.math.log(noise))
        return tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)

    def _chunk_graph(self, logits, states, row_seeds, chunk_index):
        step = step_function(self.model)
        batch = tf.shape(logits)[0]
        tiny = np.finfo(np.float32).tiny
        # (batch, CHUNK, vocab) noise; row i depends only on (row_seeds[i], chunk_index).
        noise = tf.map_fn(
            lambda seed: tf.random.stateless_uniform(
                (CHUNK, self.vocab_size), seed=tf.stack([seed, chunk_index]), minval=tiny, maxval=1.0
            ),
            row_seeds,
            fn_output_signature=tf.float32,
        )
        chosen = tf.TensorArray(tf.int32, size=CHUNK)

        def body(t, logits, states, chosen):
            ids = self._choose(logits, noise[:, t, :])
            logits, states = step(ids, states)
            return t + 1, logits, states, chosen.write(t, ids)

        _, logits, states, chosen = tf.while_loop(
            lambda t, *_: t < CHUNK, body, (tf.constant(0), logits, states, chosen)
        )
        ids = tf.reshape(tf.transpose(chosen.stack()), (batch, CHUNK))
        return ids, logits, states

    def sample(
        self, seed_ids: np.ndarray, length: int, num_samples: int = 1, random_seed: int = 0
    ) -> Iterator[np.ndarray]:
        """Yield blocks of new ids, shape (num_samples, up to CHUNK), until ``length`` in all.

        Args:
            seed_ids: the encoded prompt (at least one id).
            length: new characters per sample.
            num_samples: samples drawn together; sample i is what ``num_samples=1`` gives
                with ``random_seed + i``.
        Raises:
            SamplingError: an empty seed, or a length or sample count below 1.
        """
        if length < 1:
            raise SamplingError(f"length must be a positive number of characters, got {length}.")
        if num_samples < 1:
            raise SamplingError(f"num_samples must be positive, got {num_samples}.")
        if len(seed_ids) == 0:
            raise SamplingError("The seed must hold at least one character; give a non-empty seed.")
        logits, states = self.prime(seed_ids)
        # One primed state, copied to every sample: (num_samples, vocab) and (num_samples, units).
        logits = tf.tile(logits, (num_samples, 1))
        states = [tf.tile(state, (num_samples, 1)) for state in states]
        row_seeds = tf.constant([(random_seed + index) % (2**31) for index in range(num_samples)], tf.int32)
        produced = 0
        chunk_index = 0
        while produced < length:
            ids, logits, states = self._chunk(logits, states, row_seeds, tf.constant(chunk_index, tf.int32))
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
