"""Sampling text from a trained model: primed in one pass, then a compiled loop in the graph.

The seed text goes through the model in one call to set the GRU state. Characters are then
drawn by a ``tf.function`` whose while loop carries the state, ``CHUNK`` characters per call,
so output can stream while the loop stays compiled. All samples of a request run as one batch.

Randomness is Gumbel-max with noise drawn per sample from a stateless generator seeded by
(random seed + sample index, chunk index): sample i of a batch is identical to a single
sample run with random seed + i, and nothing depends on whether the output is streamed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import tensorflow as tf

from shakegen.corpus import clean_text
from shakegen.model import step_function

CHUNK = 64


@dataclass(frozen=True)
class SamplingOptions:
    """How each next character is chosen. temperature 0 means greedy (argmax)."""

    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None

    def validate(self, vocab_size: int) -> "SamplingOptions":
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be 0 (greedy) or positive, got {self.temperature}.")
        if self.top_k is not None and not 1 <= self.top_k <= vocab_size:
            raise ValueError(f"top-k must be between 1 and the vocabulary size {vocab_size}, got {self.top_k}.")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}.")
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


def prepare_seed(seed_text: str, info, skip_unknown: bool = False) -> tuple[str, list[str]]:
    """Clean the seed as the training text was cleaned, and deal with unknown characters.

    Returns:
        (the seed to use, the characters dropped).
    Raises:
        ValueError: unknown characters without ``skip_unknown``, or nothing left.
    """
    options = info.data.get("options", {})
    seed_text = clean_text(
        seed_text, lowercase=options.get("lowercase", False), strip_punctuation=options.get("strip_punctuation", False)
    )
    unknown = info.vocab.unknown_characters(seed_text)
    if unknown and not skip_unknown:
        shown = ", ".join(repr(char) for char in unknown)
        raise ValueError(
            f"Seed text has characters the model does not know: {shown}. The checkpoint at {info.run_dir} knows "
            f"{len(info.vocab)} characters; remove them or pass --skip-unknown."
        )
    if unknown:
        seed_text = "".join(char for char in seed_text if char in info.vocab.char_to_id)
    if not seed_text:
        raise ValueError(
            "The seed text is empty after cleaning and dropping unknown characters; give a seed the model knows."
        )
    return seed_text, unknown


class Sampler:
    """Draws text from a model; build once, sample many times."""

    def __init__(self, model, options: SamplingOptions):
        self.model = model
        self.options = options
        self.vocab_size = model.vocab_size
        self._chunk = tf.function(self._chunk_graph, reduce_retracing=True)
        self._prime = tf.function(lambda ids: model(ids, training=False), reduce_retracing=True)

    def _choose(self, logits, noise):
        """Next ids (batch,) from logits (batch, vocab) and uniform noise (batch, vocab)."""
        options = self.options
        if options.temperature == 0:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        logits = filter_logits(logits / options.temperature, options.top_k, options.top_p)
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
        """
        if length < 1:
            raise ValueError(f"length must be positive, got {length}.")
        if len(seed_ids) == 0:
            raise ValueError("The seed must hold at least one character.")
        prompt = tf.constant(np.tile(np.asarray(seed_ids, np.int32)[None, :], (num_samples, 1)))
        logits, states = self._prime(prompt)
        logits = logits[:, -1, :]
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
