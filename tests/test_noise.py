"""The counter-based sampling noise: MurmurHash3 as published, NumPy and TensorFlow bit for bit."""

import math
import subprocess
import sys

import numpy as np
import pytest

from shakegen.use import noise
from tests.reference import murmur3_32, reference_uniform

MASK = 0xFFFFFFFF


@pytest.mark.parametrize(
    "data, seed, expected",
    [
        (b"", 0, 0),
        (b"", 1, 0x514E28B7),
        (b"", 0xFFFFFFFF, 0x81F16F39),
        (b"\0\0\0\0", 0, 0x2362F9DE),
        (b"abc", 0, 0xB3DD93FA),
        (b"aaaa", 0x9747B28C, 0x5A97808A),
        (b"Hello, world!", 0x9747B28C, 0x24884CBA),
        (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
    ],
)
def test_reference_hash_matches_published_vectors(data, seed, expected):
    assert murmur3_32(data, seed) == expected


def test_hashes_and_uniforms_are_murmur3_of_seed_position_character():
    keys = np.array([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 987654321], np.uint32)
    positions = np.array([0, 1, 63, 64, 10**6, 2**32 - 1], np.uint32)
    hashes = noise.hashes_numpy(keys, positions, 9)
    uniforms = noise.uniforms_numpy(keys, positions, 9)
    assert hashes.shape == uniforms.shape == (6, 6, 9) and uniforms.dtype == np.float32
    for a, key in enumerate(keys.tolist()):
        for b, position in enumerate(positions.tolist()):
            for character in range(9):
                data = position.to_bytes(4, "little") + character.to_bytes(4, "little")
                assert hashes[a, b, character] == murmur3_32(data, key)
                assert float(uniforms[a, b, character]) == reference_uniform(key, position, character)


def test_uniforms_stay_strictly_inside_zero_one():
    keys = np.arange(64, dtype=np.uint32)
    uniforms = noise.uniforms_numpy(keys, np.arange(512), 65)
    assert uniforms.min() >= 2.0**-24 and uniforms.max() <= 1 - 2.0**-24
    assert np.isfinite(noise.gumbel_numpy(keys, np.arange(512), 65)).all()


def test_numpy_and_tensorflow_draw_the_same_bits():
    """Hashes and uniforms agree exactly, eagerly and compiled, over counters up to 2**32 - 1;
    Gumbel noise (float64 logarithms, rounded to float32) in all but rare rounding cases."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    keys = np.concatenate([[0, 1, 2**31, 2**32 - 1], rng.integers(0, 2**32, 60)]).astype(np.uint32)
    positions = np.concatenate([[0, 1, 2**32 - 1], rng.integers(0, 2**32, 125)]).astype(np.uint32)
    vocab = 97
    expected_hashes = noise.hashes_numpy(keys, positions, vocab)
    assert np.array_equal(noise.hashes_tf(keys, positions, vocab).numpy(), expected_hashes)
    expected = noise.uniforms_numpy(keys, positions, vocab)
    assert np.array_equal(noise.uniforms_tf(tf.constant(keys), tf.constant(positions), vocab).numpy(), expected)
    compiled = tf.function(lambda k, p: noise.uniforms_tf(k, p, vocab), jit_compile=True)
    assert np.array_equal(compiled(tf.constant(keys), tf.constant(positions)).numpy(), expected)
    graph = tf.function(lambda k, start: noise.uniforms_tf(k, tf.range(start, start + 64), vocab))
    int64_keys = tf.constant(keys.astype(np.int64))  # the key as any integer dtype, cast inside
    assert np.array_equal(
        graph(int64_keys, tf.constant(100)).numpy(), noise.uniforms_numpy(keys, np.arange(100, 164), vocab)
    )
    gumbel, gumbel_tf = noise.gumbel_numpy(keys, positions, vocab), noise.gumbel_tf(keys, positions, vocab).numpy()
    differ = gumbel != gumbel_tf
    assert differ.mean() < 1e-4
    assert np.all(np.abs(gumbel[differ] - gumbel_tf[differ]) <= np.spacing(np.abs(gumbel[differ])))


def _chi_square_limit(degrees: int, z: float = 5.0) -> float:
    """The chi-square quantile at a normal z-score (Wilson–Hilferty); z = 5 is a 3e-7 tail."""
    return degrees * (1 - 2 / (9 * degrees) + z * math.sqrt(2 / (9 * degrees))) ** 3


def test_uniforms_are_uniform_and_independent_of_neighbours():
    """A million uniforms fill 1,024 equal bins and 32 × 32 bins of (u at seed S, u at seed S + 1)
    as a uniform, independent draw would (chi-square below its 3e-7 tail), and every hash bit is
    set half the time: a neighbouring seed, position or character gives unrelated noise."""
    keys = np.arange(1000, 1064, dtype=np.uint32)
    uniforms = noise.uniforms_numpy(keys, np.arange(256), 65).astype(np.float64)  # 1,064,960 values
    counts = np.bincount((uniforms * 1024).astype(int).ravel(), minlength=1024)
    expected = uniforms.size / 1024
    assert ((counts - expected) ** 2 / expected).sum() < _chi_square_limit(1023)
    for pairs in (
        (uniforms[:-1], uniforms[1:]),  # neighbouring seeds: sample i and i + 1 of a batch
        (uniforms[:, :-1], uniforms[:, 1:]),  # neighbouring positions
        (uniforms[..., :-1], uniforms[..., 1:]),  # neighbouring characters
    ):
        cells = (pairs[0] * 32).astype(int) * 32 + (pairs[1] * 32).astype(int)
        joint = np.bincount(cells.ravel(), minlength=1024)
        expected = cells.size / 1024
        assert ((joint - expected) ** 2 / expected).sum() < _chi_square_limit(1023)
    hashes = noise.hashes_numpy(keys, np.arange(256), 65).ravel()
    ones = np.array([((hashes >> np.uint32(bit)) & np.uint32(1)).sum() for bit in range(32)])
    assert np.all(np.abs(ones - hashes.size / 2) < 5 * math.sqrt(hashes.size) / 2)


def test_seeds_cover_two_to_the_32_without_collisions():
    """Seeds S and S + 2**31 (which a modulo-2**31 seed would merge) draw different noise; for a
    fixed counter the hash is a bijection of the key, so 2**22 consecutive seeds give 2**22 values."""
    for seed in (0, 7, 2**31 - 1):
        low = noise.uniforms_numpy(noise.sample_keys(seed, 1), np.arange(64), 65)
        high = noise.uniforms_numpy(noise.sample_keys(seed + 2**31, 1), np.arange(64), 65)
        assert (low != high).mean() > 0.99
    keys = np.arange(2**22, dtype=np.uint32) * np.uint32(1023)  # spread over the whole range
    ordered = np.sort(noise.hashes_numpy(keys, [5], 1).ravel())  # (np.unique takes ~200 times as long here)
    assert 1 + np.count_nonzero(ordered[1:] != ordered[:-1]) == 2**22  # distinct values: one per key


def test_sample_keys_count_on_from_the_seed_and_wrap():
    assert noise.sample_keys(5, 3).tolist() == [5, 6, 7]
    assert noise.sample_keys(2**32 - 2, 4).tolist() == [2**32 - 2, 2**32 - 1, 0, 1]
    assert noise.sample_keys(2**32 - 1, 1).dtype == np.uint32
    # sample i of a batch draws exactly the single sample's noise with seed + i
    batch = noise.uniforms_numpy(noise.sample_keys(2**32 - 2, 4), np.arange(10), 5)
    for index in range(4):
        single = noise.uniforms_numpy(noise.sample_keys((2**32 - 2 + index) % 2**32, 1), np.arange(10), 5)
        assert np.array_equal(batch[index], single[0])


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "3", True, None])
def test_random_seeds_outside_the_range_are_refused(seed):
    with pytest.raises(ValueError, match="random seed must be an integer from 0 to 4294967295"):
        noise.check_random_seed(seed)


def test_the_module_does_not_import_tensorflow():
    code = (
        "import sys; from shakegen.use import noise; noise.gumbel_numpy(noise.sample_keys(1, 2), range(8), 65); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
