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


def summed_nll(weights, inputs, targets) -> float:
    """Summed negative log-likelihood of ``targets`` (time,) after ``inputs`` (time,) from a zero state."""
    logits, _ = model_logits(weights, np.asarray(inputs)[None, :])
    return float(-log_softmax(logits[0])[np.arange(len(targets)), np.asarray(targets)].sum())


def windowed_nll(weights, ids, starts, window) -> tuple[float, int]:
    """(summed NLL, characters predicted) over windows of ``ids`` at ``starts``, each from a zero state:
    the windows protocol, nanoGPT's way of scoring."""
    total = count = 0
    for start in starts:
        stop = min(start + window, len(ids) - 1)
        total += summed_nll(weights, ids[start:stop], ids[start + 1 : stop + 1])
        count += stop - start
    return total, count


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


# -- the counter-based noise: MurmurHash3_x86_32 in plain Python integers, independent of shakegen --

MASK32 = 0xFFFFFFFF


def murmur3_32(data: bytes, seed: int) -> int:
    """MurmurHash3_x86_32 byte by byte, in plain Python integers (checked against the published vectors)."""

    def rotl(x, bits):
        return ((x << bits) | (x >> (32 - bits))) & MASK32

    def scramble(k):
        return (rotl((k * 0xCC9E2D51) & MASK32, 15) * 0x1B873593) & MASK32

    h = seed & MASK32
    whole = len(data) // 4
    for index in range(whole):
        h ^= scramble(int.from_bytes(data[4 * index : 4 * index + 4], "little"))
        h = (rotl(h, 13) * 5 + 0xE6546B64) & MASK32
    tail = data[4 * whole :]
    if tail:
        h ^= scramble(int.from_bytes(tail, "little"))
    h ^= len(data)
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & MASK32
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & MASK32
    return h ^ (h >> 16)


def reference_uniform(key: int, position: int, character: int) -> float:
    """The uniform shakegen's noise documents for (stream key, position, character), as an exact binary fraction."""
    h = murmur3_32((position & MASK32).to_bytes(4, "little") + character.to_bytes(4, "little"), key & MASK32)
    return ((h >> 9) + 0.5) / 2**23


def sampler_noise(random_seed: int, vocab_size: int):
    """``noise(t)``: the uniform noise (vocab,) of step t of the sample with random seed ``random_seed``
    (0 ... 2**32 - 1; sample i of a batch is random seed + i), from the plain-Python hash."""
    cache = {}

    def noise(t):
        if t not in cache:
            cache[t] = np.array([reference_uniform(random_seed, t, c) for c in range(vocab_size)], np.float64)
        return cache[t]

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
        sampler_noise(random_seed % 2**32, vocab_size),
    )
