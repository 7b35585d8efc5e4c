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


def choose(logits, temperature, top_k=None, top_p=None, uniform_noise=None):
    """The next id from float64 logits (vocab,), by the definitions: greedy argmax when the
    temperature is 0; else Gumbel-max over logits / T restricted to the top-k and to the
    nucleus (the smallest set of most likely ids whose probability reaches top_p, ties kept)."""
    logits = np.asarray(logits, np.float64)
    if temperature == 0:
        return int(np.argmax(logits))
    scaled = logits / temperature
    keep = np.ones(len(scaled), bool)
    if top_k is not None:
        keep &= scaled >= np.sort(scaled)[-top_k]
    if top_p is not None:
        probabilities = softmax(np.where(keep, scaled, -np.inf))
        ordered = np.sort(probabilities)[::-1]
        before = np.cumsum(ordered) - ordered
        keep &= probabilities >= ordered[before < top_p].min()
    gumbel = -np.log(-np.log(np.asarray(uniform_noise, np.float64)))
    return int(np.argmax(np.where(keep, scaled, -np.inf) + gumbel))


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
