"""Plain NumPy forward passes written straight from the GRU equations: the independent check."""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def gru_sequence(variant, x, kernel, recurrent_kernel, bias, h0=None):
    """Run one GRU-family layer over x (batch, time, features); returns (outputs, final state)."""
    x = np.asarray(x, np.float64)
    W, U, b = (np.asarray(a, np.float64) for a in (kernel, recurrent_kernel, bias))
    units = U.shape[0]
    h = np.zeros((x.shape[0], units)) if h0 is None else np.asarray(h0, np.float64)
    outputs = []
    for t in range(x.shape[1]):
        xt = x[:, t, :]
        if variant == "gru":  # Keras reset_after=True: bias[0] input, bias[1] recurrent
            xp = xt @ W + b[0]
            inner = h @ U + b[1]
            z = sigmoid(xp[:, :units] + inner[:, :units])
            r = sigmoid(xp[:, units : 2 * units] + inner[:, units : 2 * units])
            candidate = np.tanh(xp[:, 2 * units :] + r * inner[:, 2 * units :])
        elif variant == "classic":  # Cho et al. 2014, Keras reset_after=False
            xp = xt @ W + b
            z = sigmoid(xp[:, :units] + h @ U[:, :units])
            r = sigmoid(xp[:, units : 2 * units] + h @ U[:, units : 2 * units])
            candidate = np.tanh(xp[:, 2 * units :] + (r * h) @ U[:, 2 * units :])
        elif variant == "gru1":  # z = σ(U_z h + b_z), r = σ(U_r h + b_r)
            z = sigmoid(h @ U[:, :units] + b[:units])
            r = sigmoid(h @ U[:, units : 2 * units] + b[units : 2 * units])
            candidate = np.tanh(xt @ W + (r * h) @ U[:, 2 * units :] + b[2 * units :])
        elif variant == "gru2":  # z = σ(U_z h), r = σ(U_r h)
            z = sigmoid(h @ U[:, :units])
            r = sigmoid(h @ U[:, units : 2 * units])
            candidate = np.tanh(xt @ W + (r * h) @ U[:, 2 * units :] + b)
        elif variant == "gru3":  # z = σ(b_z), r = σ(b_r)
            z = sigmoid(b[:units])[None, :]
            r = sigmoid(b[units : 2 * units])[None, :]
            candidate = np.tanh(xt @ W + (r * h) @ U + b[2 * units :])
        else:
            raise ValueError(variant)
        h = z * h + (1.0 - z) * candidate
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def model_weights(model):
    """The model's weights as NumPy arrays, by role."""
    layers = [
        (layer.variant, layer.kernel.numpy(), layer.recurrent_kernel.numpy(), layer.bias.numpy())
        for layer in model.rnn_layers
    ]
    return model.embedding.embeddings.numpy(), layers, model.dense.kernel.numpy(), model.dense.bias.numpy()


def model_logits(weights, ids, states=None):
    """Logits (batch, time, vocab) and final states of the whole model, in float64."""
    embedding, layers, dense_kernel, dense_bias = weights
    x = np.asarray(embedding, np.float64)[np.asarray(ids)]
    finals = []
    for index, (variant, kernel, recurrent_kernel, bias) in enumerate(layers):
        x, h = gru_sequence(variant, x, kernel, recurrent_kernel, bias, None if states is None else states[index])
        finals.append(h)
    return x @ dense_kernel + dense_bias, finals


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits):
    return np.exp(log_softmax(logits))


def scores(logits, temperature, top_k=None, top_p=None, uniform_noise=None):
    """What the next id is the argmax of, by the definitions, from float64 logits (vocab,): the logits
    themselves when greedy (temperature 0); else logits / T plus Gumbel noise, -inf outside the
    top-k and outside the nucleus (the smallest set of most likely ids whose probability reaches
    top_p, ties kept; never empty: the most likely id is always in it)."""
    logits = np.asarray(logits, np.float64)
    if temperature == 0:
        return logits
    scaled = logits / temperature
    keep = np.ones(len(scaled), bool)
    if top_k is not None:
        keep &= scaled >= np.sort(scaled)[-top_k]
    if top_p is not None:
        probabilities = softmax(np.where(keep, scaled, -np.inf))
        ordered = np.sort(probabilities)[::-1]
        before = np.cumsum(ordered) - ordered
        keep &= probabilities >= ordered[before < top_p].min(initial=ordered[0])
    gumbel = -np.log(-np.log(np.asarray(uniform_noise, np.float64)))
    return np.where(keep, scaled, -np.inf) + gumbel


def choose(logits, temperature, top_k=None, top_p=None, uniform_noise=None):
    """The next id from float64 logits (vocab,), by the definitions (see ``scores``)."""
    return int(np.argmax(scores(logits, temperature, top_k, top_p, uniform_noise)))


def sample_ids(weights, seed_ids, length, temperature, top_k=None, top_p=None, noise=None):
    """A whole sample in float64: the seed read in one pass, then one character at a time.

    ``noise(t)`` gives the uniform noise (vocab,) for step t (ignored when greedy).
    """
    logits, states = model_logits(weights, np.asarray(seed_ids)[None, :])
    last = logits[0, -1]
    chosen = []
    for t in range(length):
        next_id = choose(last, temperature, top_k, top_p, None if temperature == 0 else noise(t))
        chosen.append(next_id)
        logits, states = model_logits(weights, np.array([[next_id]]), states)
        last = logits[0, -1]
    return chosen


def sampling_gaps(weights, seed_ids, sampled_ids, temperature, top_k=None, top_p=None, noise=None):
    """How far each sampled id's score falls below the best score the definitions give at its step,
    with the sample itself fed back (float64, one pass): 0 where it is the reference's own choice,
    a float rounding's worth at a near-tie, inf where the definitions exclude it.

    ``noise(t)`` gives the uniform noise (vocab,) for step t (ignored when greedy).
    """
    seed_ids, sampled_ids = np.asarray(seed_ids), np.asarray(sampled_ids)
    inputs = np.concatenate([seed_ids, sampled_ids[:-1]])[None, :]
    logits, _ = model_logits(weights, inputs)
    predicting = logits[0, len(seed_ids) - 1 :]  # (length, vocab): the logits each sampled id was drawn from
    gaps = []
    for t, chosen in enumerate(sampled_ids):
        step = scores(predicting[t], temperature, top_k, top_p, None if temperature == 0 else noise(t))
        gaps.append(float(step.max() - step[chosen]))
    return np.array(gaps)


def run_weights(npz_path, cell: str):
    """A run's weights read straight from its .npz (any storage precision), in ``model_weights``'s layout."""
    with np.load(npz_path) as stored:
        arrays = {name[len("weights/") :]: stored[name] for name in stored.files if name.startswith("weights/")}
    count = len([name for name in arrays if name.endswith("/recurrent_kernel")])
    layers = [
        (cell, arrays[f"rnn_{i}/kernel"], arrays[f"rnn_{i}/recurrent_kernel"], arrays[f"rnn_{i}/bias"])
        for i in range(count)
    ]
    dense = [name for name in arrays if name.endswith("logits/kernel")][0]
    return arrays["embedding/embeddings"], layers, arrays[dense], arrays[dense[: -len("kernel")] + "bias"]


# -- TensorFlow's stateless uniform noise, recomputed: Philox-4x32-10 as tf.random.stateless_uniform runs it --

_PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_PHILOX_W = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))
_MASK32 = np.uint64(0xFFFFFFFF)


def _philox(counters, key):
    """Philox-4x32 with 10 rounds: counters (n, 4) uint32, key (2,) uint32 -> (n, 4) uint32."""
    c = [counters[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    with np.errstate(over="ignore"):
        for round_index in range(10):
            product0, product1 = _PHILOX_M[0] * c[0], _PHILOX_M[1] * c[2]
            hi0, lo0 = product0 >> np.uint64(32), product0 & _MASK32
            hi1, lo1 = product1 >> np.uint64(32), product1 & _MASK32
            c = [hi1 ^ c[1] ^ np.uint64(k0), lo1, hi0 ^ c[3] ^ np.uint64(k1), lo0]
            if round_index < 9:
                k0, k1 = k0 + _PHILOX_W[0], k1 + _PHILOX_W[1]
    return np.stack(c, axis=1).astype(np.uint32)


def stateless_uniform(seed0: int, seed1: int, count: int) -> np.ndarray:
    """The first ``count`` float32 uniforms in [0, 1) that TensorFlow's stateless generator gives for the
    seed pair (seed0, seed1), each taken as a 64-bit integer (an int32 seed is sign-extended to it).

    TensorFlow scrambles the seed into a Philox key and counter by one Philox call from a fixed
    key, then draws four 32-bit words per call, the counter counting up; each word's low 23
    bits become the mantissa of a float in [1, 2), minus 1.
    """
    words = [int(seed0) & 0xFFFFFFFF, (int(seed0) >> 32) & 0xFFFFFFFF]
    words += [int(seed1) & 0xFFFFFFFF, (int(seed1) >> 32) & 0xFFFFFFFF]
    mix = _philox(np.array([words], np.uint32), (0x3EC8F720, 0x02461E29))[0]
    key = (mix[0], mix[1])
    calls = (count + 3) // 4
    base = (int(mix[3]) << 96) | (int(mix[2]) << 64)  # counter words 0 and 1 start at 0
    numbers = [base + index for index in range(calls)]
    counters = np.array([[(n >> shift) & 0xFFFFFFFF for shift in (0, 32, 64, 96)] for n in numbers], np.uint32)
    bits = _philox(counters, key).reshape(-1)[:count]
    return ((bits & np.uint32(0x7FFFFF)) | np.uint32(127 << 23)).view(np.float32) - np.float32(1.0)


def sampler_noise(random_seed: int, vocab_size: int, chunk: int = 64):
    """``noise(t)``: the uniform noise (vocab,) shakegen's sampler draws at step t of the sample with
    random seed ``random_seed`` (0 ... 2**32 - 1): chunk c of ``chunk`` steps is TensorFlow's stateless
    uniform for the seed pair (random seed, c), in [float32's tiny, 1)."""
    tiny = np.finfo(np.float32).tiny
    chunks = {}

    def noise(t):
        index = t // chunk
        if index not in chunks:
            uniform = stateless_uniform(random_seed, index, chunk * vocab_size).reshape(chunk, vocab_size)
            chunks[index] = np.where(uniform == 0, np.float32(tiny), uniform)
        return chunks[index][t % chunk]

    return noise


def sampling_gaps_for(weights, seed_ids, sampled_ids, vocab_size, temperature, top_k=0, top_p=1.0, random_seed=0):
    """``sampling_gaps`` with shakegen's option conventions (top_k 0 and top_p 1: no filter; greedy
    below float32's smallest normal temperature) and the noise of ``random_seed`` (``sampler_noise``)."""
    greedy = temperature < np.finfo(np.float32).tiny
    return sampling_gaps(
        weights,
        seed_ids,
        sampled_ids,
        0 if greedy else temperature,
        top_k or None,
        None if top_p is None or top_p >= 1 else top_p,
        sampler_noise(random_seed, vocab_size),
    )
