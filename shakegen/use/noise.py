"""Sampling noise from a counter: the same bits in NumPy and in TensorFlow, whatever the batch or block.

Every uniform is a pure function of four integers, with no generator state:

    key       = (random seed + sample index) mod 2**32      one stream per sample
    position  = index of the generated character in its sample (0, 1, ...), mod 2**32
    character = id of the vocabulary entry the uniform belongs to
    h         = MurmurHash3_x86_32(message = position, character as two little-endian uint32; seed = key)
    u         = ((h >> 9) + 0.5) * 2**-23                    in (0, 1): 2**-24 ... 1 - 2**-24

MurmurHash3 (Austin Appleby, public domain; the 32-bit x86 variant) is used as the reference
implementation computes it, so its published test vectors check it. Every operation is on
uint32 with wrap-around (multiply, add, xor, shifts), which NumPy and TensorFlow compute
exactly, and the uniform is built from 23 bits with float32 operations that are all exact, so
both give the same float32 bit for bit. For a fixed (position, character) every step of the hash
is a bijection of ``key``, so two random seeds never share a stream's 32-bit values: seeds cover
0 ... 2**32 - 1 without collisions. Sample i of a batch drawn with random seed S is the single
sample drawn with random seed S + i; a block of characters does not change the noise of any
position, so streamed and unstreamed text agree.

Sampling turns the uniforms into Gumbel noise, -log(-log(u)), computed in float64 and rounded to
float32 (``gumbel_numpy``/``gumbel_tf``): a float64 logarithm off by an ulp changes the float32
result only in rare rounding cases, so both sides draw the same Gumbel noise in practice. The
logits themselves differ in their last bits between NumPy and TensorFlow, so texts sampled by
the two agree except where two characters' scores are a float near-tie.

This module never imports TensorFlow itself; only the ``*_tf`` functions do, when called.
"""

from __future__ import annotations

import numpy as np

from shakegen.config import SEED_RANGE  # random seeds are 0 ... 2**32 - 1 (the one source)

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_ADD = 0xE6546B64
_F1 = 0x85EBCA6B
_F2 = 0xC2B2AE35
_MESSAGE_BYTES = 8  # (position, character)


def check_random_seed(random_seed) -> int:
    """``random_seed`` as an int, or ValueError unless it is an integer in 0 ... 2**32 - 1."""
    if isinstance(random_seed, bool) or not isinstance(random_seed, (int, np.integer)):
        raise ValueError(f"random seed must be an integer from 0 to {SEED_RANGE - 1}, got {random_seed!r}.")
    if not 0 <= int(random_seed) < SEED_RANGE:
        raise ValueError(f"random seed must be an integer from 0 to {SEED_RANGE - 1}, got {random_seed}.")
    return int(random_seed)


def sample_keys(random_seed: int, num_samples: int) -> np.ndarray:
    """The stream key of each sample: (random_seed + i) mod 2**32 for i < num_samples, as (num_samples,) uint32."""
    random_seed = check_random_seed(random_seed)
    return ((random_seed + np.arange(num_samples, dtype=np.uint64)) % SEED_RANGE).astype(np.uint32)


# --- NumPy ------------------------------------------------------------------------------------


def _rotl_numpy(x, bits):
    return (x << np.uint32(bits)) | (x >> np.uint32(32 - bits))


def _scramble_numpy(k):
    """The message-word scramble of MurmurHash3: k * c1, rotate left 15, * c2."""
    return _rotl_numpy(k * np.uint32(_C1), 15) * np.uint32(_C2)


def _absorb_numpy(h, scrambled):
    """One block of MurmurHash3: h ^= k, rotate left 13, h * 5 + 0xe6546b64 (a bijection of h)."""
    return _rotl_numpy(h ^ scrambled, 13) * np.uint32(5) + np.uint32(_ADD)


def _finalize_numpy(h):
    """MurmurHash3's fmix32 after xoring in the message length (a bijection of h)."""
    h = h ^ np.uint32(_MESSAGE_BYTES)
    h = (h ^ (h >> np.uint32(16))) * np.uint32(_F1)
    h = (h ^ (h >> np.uint32(13))) * np.uint32(_F2)
    return h ^ (h >> np.uint32(16))


def hashes_numpy(keys, positions, vocab_size: int) -> np.ndarray:
    """MurmurHash3_x86_32 of (position, character) seeded by key, for every combination.

    Args:
        keys: (batch,) stream keys (``sample_keys``), uint32 values.
        positions: (time,) positions of generated characters, uint32 values.
        vocab_size: characters 0 ... vocab_size - 1.
    Returns:
        (batch, time, vocab_size) uint32.
    """
    keys = np.asarray(keys, np.uint32).reshape(-1, 1, 1)
    positions = np.asarray(positions, np.uint32).reshape(1, -1, 1)
    characters = np.arange(vocab_size, dtype=np.uint32).reshape(1, 1, -1)
    h = _absorb_numpy(keys, _scramble_numpy(positions))  # (batch, time, 1)
    h = _absorb_numpy(h, _scramble_numpy(characters))  # (batch, time, vocab)
    return _finalize_numpy(h)


def uniforms_numpy(keys, positions, vocab_size: int) -> np.ndarray:
    """Uniforms in (0, 1), (batch, time, vocab_size) float32, from ``hashes_numpy``'s arguments."""
    top = (hashes_numpy(keys, positions, vocab_size) >> np.uint32(9)).astype(np.float32)  # < 2**23: exact
    return (top * np.float32(2.0) + np.float32(1.0)) * np.float32(2.0**-24)  # (2 top + 1) / 2**24: exact


def gumbel_numpy(keys, positions, vocab_size: int) -> np.ndarray:
    """Gumbel noise -log(-log(u)), computed in float64, as (batch, time, vocab_size) float32."""
    u = uniforms_numpy(keys, positions, vocab_size).astype(np.float64)
    return (-np.log(-np.log(u))).astype(np.float32)


# --- TensorFlow -------------------------------------------------------------------------------


def _rotl_tf(tf, x, bits):
    left = tf.bitwise.left_shift(x, tf.constant(bits, tf.uint32))
    return tf.bitwise.bitwise_or(left, tf.bitwise.right_shift(x, tf.constant(32 - bits, tf.uint32)))


def _scramble_tf(tf, k):
    return _rotl_tf(tf, k * tf.constant(_C1, tf.uint32), 15) * tf.constant(_C2, tf.uint32)


def _absorb_tf(tf, h, scrambled):
    return _rotl_tf(tf, tf.bitwise.bitwise_xor(h, scrambled), 13) * tf.constant(5, tf.uint32) + tf.constant(
        _ADD, tf.uint32
    )


def _finalize_tf(tf, h):
    def shift_xor(x, bits):
        return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(bits, tf.uint32)))

    h = tf.bitwise.bitwise_xor(h, tf.constant(_MESSAGE_BYTES, tf.uint32))
    h = shift_xor(h, 16) * tf.constant(_F1, tf.uint32)
    h = shift_xor(h, 13) * tf.constant(_F2, tf.uint32)
    return shift_xor(h, 16)


def hashes_tf(keys, positions, vocab_size: int):
    """``hashes_numpy`` in TensorFlow ops (graph- and XLA-safe): keys (batch,), positions (time,)
    as uint32 tensors (or anything ``tf.cast`` takes); returns (batch, time, vocab_size) uint32."""
    from shakegen.model.backend import tf

    keys = tf.reshape(tf.cast(keys, tf.uint32), (-1, 1, 1))
    positions = tf.reshape(tf.cast(positions, tf.uint32), (1, -1, 1))
    characters = tf.reshape(tf.range(vocab_size, dtype=tf.int32), (1, 1, -1))
    h = _absorb_tf(tf, keys, _scramble_tf(tf, positions))
    h = _absorb_tf(tf, h, _scramble_tf(tf, tf.cast(characters, tf.uint32)))
    return _finalize_tf(tf, h)


def uniforms_tf(keys, positions, vocab_size: int):
    """``uniforms_numpy`` in TensorFlow ops: the same float32 values bit for bit."""
    from shakegen.model.backend import tf

    top = tf.cast(tf.bitwise.right_shift(hashes_tf(keys, positions, vocab_size), tf.constant(9, tf.uint32)), tf.float32)
    return (top * 2.0 + 1.0) * (2.0**-24)


def gumbel_tf(keys, positions, vocab_size: int):
    """``gumbel_numpy`` in TensorFlow ops: -log(-log(u)) in float64, as float32."""
    from shakegen.model.backend import tf

    u = tf.cast(uniforms_tf(keys, positions, vocab_size), tf.float64)
    return tf.cast(-tf.math.log(-tf.math.log(u)), tf.float32)
