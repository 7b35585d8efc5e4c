"""From logits to the next character, in NumPy: the checks of the sampling options, the ban mask,
the top-k / top-p / min-p filter and the Gumbel-max choice.

The samplers that run on NumPy share these: the engine's (``engine.Engine.sample``), beam search
(``beam``) and the writing suggestions (``suggest``); ``tf_sampler`` computes the same filter and
choice in TensorFlow. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np

from shakegen.errors import SamplingError
from shakegen.use.sampling import SamplingOptions


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(n, V) float32 logits -> float64 log-probabilities."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def check_options(temperature, top_k, top_p, vocab_size: int, *, min_p=None) -> None:
    """Raise SamplingError naming the bad value (``sampling.SamplingOptions.validate``'s rules; min-p in [0, 1])."""
    SamplingOptions(temperature, top_k, top_p).validate(vocab_size)
    if min_p is not None and not (
        isinstance(min_p, (int, float, np.integer, np.floating)) and math.isfinite(min_p) and 0 <= min_p <= 1
    ):
        raise SamplingError(f"min-p must be a number in [0, 1], got {min_p}.")


def ban_mask(ban, vocab_size: int) -> np.ndarray | None:
    """``ban`` (ids, or a boolean mask (V,)) as a boolean mask (V,), True where banned; None when nothing is.

    Raises:
        SamplingError: an id outside the vocabulary, or every character banned (nothing left to emit).
    """
    if ban is None:
        return None
    ban = np.asarray(ban)
    if ban.dtype == bool and ban.shape == (vocab_size,):
        mask = ban.copy()
    else:
        ban = ban.reshape(-1)
        if ban.size and (not np.issubdtype(ban.dtype, np.integer) or ban.min() < 0 or ban.max() >= vocab_size):
            raise SamplingError(f"Banned character ids must be in 0 ... {vocab_size - 1}; got {ban.tolist()}.")
        mask = np.zeros(vocab_size, bool)
        mask[ban.astype(np.intp)] = True
    if mask.all():
        raise SamplingError(
            f"Every one of the model's {vocab_size} characters is banned: nothing could be emitted. Ban fewer characters."
        )
    return mask if mask.any() else None


def filter_logits(
    scaled: np.ndarray, top_k: int | None = None, top_p: float | None = None, *, ban=None, min_p: float | None = None
) -> np.ndarray:
    """``tf_sampler.filter_logits`` in NumPy: -inf outside the top-k, then outside the top-p nucleus.

    scaled: (b, V) float32. Ties with the k-th largest, and with the nucleus's least likely member, are kept.
    ``ban`` (a boolean mask (V,), see ``ban_mask``) sets its characters to -inf first, so top-k and top-p
    count only the others; ``min_p`` last keeps the characters whose probability is at least ``min_p``
    times the most likely one's (scaled >= max + log(min_p)): the most likely is always kept.
    """
    if ban is not None:
        scaled = np.where(ban, np.float32(-np.inf), scaled)
    if top_k:
        kth = np.partition(scaled, scaled.shape[-1] - top_k, axis=-1)[:, -top_k, None]  # (b, 1)
        scaled = np.where(scaled < kth, np.float32(-np.inf), scaled)
    if top_p is not None and top_p < 1:
        exp = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        probabilities = exp / exp.sum(axis=-1, keepdims=True)
        ordered = -np.sort(-probabilities, axis=-1)  # descending
        before = np.zeros_like(ordered)
        np.cumsum(ordered[:, :-1], axis=-1, out=before[:, 1:])  # exclusive cumulative sum
        threshold = np.where(before < top_p, ordered, np.float32(1)).min(axis=-1, keepdims=True)
        scaled = np.where(probabilities < threshold, np.float32(-np.inf), scaled)
    if min_p:
        floor = scaled.max(axis=-1, keepdims=True) + np.float32(math.log(min_p))
        scaled = np.where(scaled < floor, np.float32(-np.inf), scaled)
    return scaled


def choose(
    logits: np.ndarray, gumbel: np.ndarray, temperature: float, top_k=None, top_p=None, *, ban=None, min_p=None
) -> np.ndarray:
    """Gumbel-max: argmax(filter((logits - max) / T) + gumbel) per row; logits, gumbel (b, V) -> ids (b,)."""
    if ban is not None:  # the largest allowed logit is the shift: the others' scale does not depend on banned ones
        logits = np.where(ban, np.float32(-np.inf), logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)  # largest 0: a tiny T gives -inf, never +inf
    # Banned logits are -inf already and stay so through the shift and the scale: no second mask.
    scaled = filter_logits(shifted / np.float32(temperature), top_k, top_p, min_p=min_p)
    return np.argmax(scaled + gumbel, axis=-1)
