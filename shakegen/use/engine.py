"""The inference engine: a run's model in NumPy, float32, for priming, sampling and scoring.

It computes what ``CharModel`` computes (see ``cells.py`` for the five GRU variants) from the
run folder alone, never importing TensorFlow or Keras. With batch b, vocabulary V, embedding E,
units u, and k = 3u for ``gru``/``classic`` (gates and candidate from the input), u for the others:

    table   = embedding @ W_0 + b_in_0                 (V, k)   computed once, in float64
    x_t     = table[id_t]  (first layer),  h_{l-1,t} @ W_l + b_in_l  (the others)   (b, k)
    h_{l,t} = z ⊙ h_{l,t-1} + (1 - z) ⊙ h~            (b, u)   gates z, r and candidate h~ per variant
    logits  = h_{L,t} @ W_out + b_out                  (b, V)

Each layer's weights are kept as float32 C-contiguous arrays in the layout the step multiplies
by, so one step is a few matrix-vector products and elementwise operations. Priming and
scoring run layer by layer over a window of text: the input projection of a layer above the
first is then one matrix product for the whole window, and only the recurrence loops in time. The loops run
on one OpenBLAS thread (``blas_threads``): more only fight over the cores for products this small.

Sampling draws its noise from ``shakegen.use.noise``: Gumbel-max over logits / temperature,
restricted to the top-k and to the top-p nucleus (as ``tf_sampler.filter_logits`` defines them),
with the Gumbel noise of (random seed + sample index, position, character). Greedy (temperature
below ``GREEDY_BELOW``) takes the argmax and draws no noise. Banned characters (``ban``) get -inf
before anything else, so they are never chosen, greedy included, and the others' probabilities
renormalise; ``min_p`` keeps only the characters at least ``min_p`` times as likely as the most
likely one (after the temperature, the ban, top-k and top-p). The filter and the choice are
``logits.py``'s, shared with beam search and the writing suggestions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from shakegen.errors import CheckpointError, SamplingError
from shakegen.runs import checkpoint
from shakegen.use import blas_threads, noise
from shakegen.use.logits import ban_mask, check_options, choose, log_softmax
from shakegen.use.sampling import CHUNK, GREEDY_BELOW

BLOCK = CHUNK  # characters per yielded block (and per draw of noise)
WINDOW = 2048  # characters per layer-by-layer pass while priming or scoring: bounds memory
BLAS_THREADS = 1  # OpenBLAS threads for the loops (see blas_threads)


def _f32(array) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def _sigmoid_(x: np.ndarray) -> np.ndarray:
    """σ(x) in place, as (1 + tanh(x / 2)) / 2: no overflow for any float32."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


class Layer:
    """One GRU-family layer: ``project`` (its input projection) and ``step`` (its recurrence).

    Args:
        variant: one of ``config.CELLS``.
        kernel: (input, k); recurrent_kernel: (u, 3u), or (u, u) for ``gru3``; bias as ``cells.GRULayer``
            stores it: (2, 3u) for ``gru``, (3u,) for ``classic``, ``gru1`` and ``gru3``, (u,) for ``gru2``.
    """

    def __init__(self, variant: str, kernel, recurrent_kernel, bias):
        u = recurrent_kernel.shape[0]
        bias = np.asarray(bias, np.float64)
        self.variant, self.units = variant, u
        self.kernel = _f32(kernel)  # float16 bundles widen exactly
        self.gate_bias = self.recurrent_bias = self.constant_gates = None
        if variant == "gru":
            self.input_bias, self.recurrent_bias = bias[0], _f32(bias[1])
            self.recurrent_kernel = _f32(recurrent_kernel)
        else:
            self.input_bias = {"classic": bias, "gru1": bias[2 * u :], "gru2": bias, "gru3": bias[2 * u :]}[variant]
            if variant == "gru1":
                self.gate_bias = _f32(bias[: 2 * u])
            if variant == "gru3":
                self.constant_gates = _f32(1.0 / (1.0 + np.exp(-bias[: 2 * u])))[None, :]  # (1, 2u): σ(b_z), σ(b_r)
                self.candidate_kernel = _f32(recurrent_kernel)
            else:
                self.gate_kernel = _f32(recurrent_kernel[:, : 2 * u])  # (u, 2u)
                self.candidate_kernel = _f32(recurrent_kernel[:, 2 * u :])  # (u, u)
        self.input_bias32 = _f32(self.input_bias)
        self.step = {"gru": self._step_reset_after, "gru3": self._step_constant_gates}.get(
            variant, self._step_reset_before
        )

    def table(self, embedding) -> np.ndarray:
        """The input projection of every character, embedding @ W + b_in: (V, k) float32 from float64."""
        return _f32(np.asarray(embedding, np.float64) @ self.kernel.astype(np.float64) + self.input_bias)

    def project(self, x: np.ndarray) -> np.ndarray:
        """x (..., input) -> x @ W + b_in (..., k)."""
        projected = x @ self.kernel
        projected += self.input_bias32
        return projected

    def _step_reset_after(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """gru: z, r = σ(x_zr + h U_zr + b_zr); h~ = tanh(x_h + r ⊙ (h U_h + b_h)). x (b, 3u), h (b, u)."""
        u = self.units
        inner = h @ self.recurrent_kernel  # (b, 3u)
        inner += self.recurrent_bias
        gates = _sigmoid_(x[:, : 2 * u] + inner[:, : 2 * u])  # (b, 2u): z, r
        candidate = inner[:, 2 * u :]
        candidate *= gates[:, u:]
        candidate += x[:, 2 * u :]
        np.tanh(candidate, out=candidate)
        return candidate + gates[:, :u] * (h - candidate)  # z h + (1 - z) h~

    def _step_reset_before(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """classic, gru1, gru2: z, r = σ(h U_zr [+ x_zr] [+ b_zr]); h~ = tanh(x_h + (r ⊙ h) U_h). x (b, k)."""
        u = self.units
        gates = h @ self.gate_kernel  # (b, 2u)
        if self.variant == "classic":
            gates += x[:, : 2 * u]
            x = x[:, 2 * u :]
        elif self.gate_bias is not None:
            gates += self.gate_bias
        _sigmoid_(gates)
        return self._mix(gates, x, h)

    def _step_constant_gates(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """gru3: z, r = σ(b_zr) constants; h~ = tanh(x_h + (r ⊙ h) U). x (b, u)."""
        return self._mix(self.constant_gates, x, h)

    def _mix(self, gates: np.ndarray, x_h: np.ndarray, h: np.ndarray) -> np.ndarray:
        u = self.units
        candidate = (gates[:, u:] * h) @ self.candidate_kernel  # (b, u)
        candidate += x_h
        np.tanh(candidate, out=candidate)
        return candidate + gates[:, :u] * (h - candidate)


@dataclass(frozen=True)
class Context:
    """What the model has read: the logits for the next character and every layer's state."""

    logits: np.ndarray  # (batch, V) float32
    states: tuple  # (batch, u) float32 per layer


@dataclass(frozen=True)
class Scores:
    """A scored text.

    log_probs: (n - 1,) float64, log P(ids[t + 1] | ids[: t + 1]) from a zero state; (n,) with a
        ``context`` given, the first entry then predicted from it.
    hidden: with ``hidden=True``, per layer (n, u) float32, the state after reading ids[t]; else None.
    context: after the whole text, to score or sample on from.
    logits: with ``hidden=True``, the float32 logits behind ``log_probs``, one row per entry; else None.
    """

    log_probs: np.ndarray
    hidden: list | None
    context: Context
    logits: np.ndarray | None = None


class Engine:
    """A run's model in NumPy. Build with ``load`` (a run folder) or from weights keyed by variable path.

    Args:
        weights: {variable path: array} as a checkpoint stores them (``checkpoint.read_weights``).
        cell, num_layers: the run's ``TrainConfig.cell`` and ``num_layers``.
    Raises:
        CheckpointError: weights missing, or not of the shapes the cell needs.
    """

    def __init__(self, weights: dict, cell: str, num_layers: int):
        embedding = _weight(weights, "embedding/embeddings", 2)
        self.vocab_size = embedding.shape[0]
        self.layers = []
        for index in range(num_layers):
            kernel = _weight(weights, f"rnn_{index}/kernel", 2)
            recurrent = _weight(weights, f"rnn_{index}/recurrent_kernel", 2)
            bias = _weight(weights, f"rnn_{index}/bias", 2 if cell == "gru" else 1)
            _check_layer(index, cell, kernel, recurrent, bias, embedding.shape[1] if index == 0 else None)
            self.layers.append(Layer(cell, kernel, recurrent, bias))
        self.output_kernel = _f32(_weight(weights, "logits/kernel", 2))  # (u, V)
        self.output_bias = _f32(_weight(weights, "logits/bias", 1))
        if self.output_kernel.shape != (self.layers[-1].units, self.vocab_size):
            raise CheckpointError(
                f"The checkpoint's logits/kernel has shape {self.output_kernel.shape}; expected "
                f"{(self.layers[-1].units, self.vocab_size)}. Use another checkpoint or retrain."
            )
        self.table = self.layers[0].table(embedding)  # (V, k)
        self.cell, self.num_layers = cell, num_layers

    def zero_context(self, batch: int = 1) -> Context:
        """No text read: zero states (its logits are zeros, never used: nothing predicts the first character)."""
        states = tuple(np.zeros((batch, layer.units), np.float32) for layer in self.layers)
        return Context(np.zeros((batch, self.vocab_size), np.float32), states)

    def step(self, ids, states) -> tuple[np.ndarray, list]:
        """Read one character per stream: ids (b,), states per layer (b, u) -> (logits (b, V), states)."""
        h = None
        new_states = []
        for index, layer in enumerate(self.layers):
            x = self.table[ids] if index == 0 else layer.project(h)  # (b, k)
            h = layer.step(x, states[index])
            new_states.append(h)
        logits = h @ self.output_kernel
        logits += self.output_bias
        return logits, new_states

    def _read(self, ids: np.ndarray, states, keep: bool):
        """Read ids (time,) at batch 1 layer by layer: (logits (time, V), final states, outputs per layer)."""
        out = None
        finals, outputs = [], []
        for index, layer in enumerate(self.layers):
            x = self.table[ids] if index == 0 else layer.project(out)  # (time, k)
            out = np.empty((len(ids), layer.units), np.float32)
            h = states[index]
            for t in range(len(ids)):
                h = layer.step(x[t : t + 1], h)
                out[t] = h[0]
            finals.append(h)
            outputs.append(out if keep else None)
        logits = out @ self.output_kernel
        logits += self.output_bias
        return logits, finals, outputs

    def prime(self, ids, context: Context | None = None) -> Context:
        """Read ``ids`` (any length, at least one) from ``context`` (zero states when None), at batch 1."""
        ids = self._check_ids(ids, 1)
        states = (context or self.zero_context()).states
        with blas_threads.limited(BLAS_THREADS):
            for start in range(0, len(ids), WINDOW):
                logits, states, _ = self._read(ids[start : start + WINDOW], states, keep=False)
        return Context(logits[-1:], tuple(states))

    def score(self, ids, context: Context | None = None, hidden: bool = False) -> Scores:
        """Log-probability of each character of ``ids`` (see ``Scores``), at batch 1, windows of ``WINDOW``."""
        ids = self._check_ids(ids, 1 if context is not None else 2)
        states = (context or self.zero_context()).states
        previous = None if context is None else np.asarray(context.logits, np.float32)[-1:]
        pieces, layers_out, predicted = [], [[] for _ in self.layers], []
        for start in range(0, len(ids), WINDOW):
            window = ids[start : start + WINDOW]
            with blas_threads.limited(BLAS_THREADS):
                logits, states, outputs = self._read(window, states, keep=hidden)
            predicting = logits[:-1] if previous is None else np.concatenate([previous, logits[:-1]])
            targets = window if previous is not None else window[1:]
            pieces.append(log_softmax(predicting)[np.arange(len(targets)), targets])
            previous = logits[-1:]
            for collected, out in zip(layers_out, outputs, strict=True):
                collected.append(out)
            if hidden:
                predicted.append(predicting)
        if not hidden:
            return Scores(np.concatenate(pieces), None, Context(previous, tuple(states)))
        hidden_states = [np.concatenate(parts) for parts in layers_out]
        return Scores(
            np.concatenate(pieces), hidden_states, Context(previous, tuple(states)), np.concatenate(predicted)
        )

    def sample(
        self,
        seed_ids,
        length: int,
        *,
        num_samples: int = 1,
        random_seed: int = 0,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        block: int = BLOCK,
        context: Context | None = None,
        ban=None,
        min_p: float | None = None,
    ) -> Iterator[np.ndarray]:
        """Yield blocks of new ids, (num_samples, up to ``block``) int32, until ``length`` per sample.

        The seed is primed once at batch 1 (after ``context`` when given) and its state copied to
        every sample. Sample i is what ``num_samples=1`` gives with ``random_seed + i`` (mod 2**32),
        and the text does not depend on ``block``. Work happens as blocks are taken. ``ban``: ids
        never emitted (see ``logits.ban_mask``); ``min_p``: see ``logits.filter_logits``.

        Raises:
            SamplingError: an empty seed, a length, sample count or block below 1, or bad options.
        """
        check_options(temperature, top_k, top_p, self.vocab_size, min_p=min_p)
        banned = ban_mask(ban, self.vocab_size)
        for name, value in (("length", length), ("num_samples", num_samples), ("block", block)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise SamplingError(f"{name} must be a positive integer, got {value!r}.")
        try:
            keys = noise.sample_keys(random_seed, num_samples)
        except ValueError as error:
            raise SamplingError(str(error)) from None
        primed = self.prime(seed_ids, context)
        return self._sample_blocks(primed, keys, length, (temperature, top_k, top_p, banned, min_p), block)

    def _sample_blocks(self, primed: Context, keys, length, options, block) -> Iterator[np.ndarray]:
        temperature, top_k, top_p, banned, min_p = options
        greedy = temperature < GREEDY_BELOW
        batch = len(keys)
        logits = np.repeat(primed.logits, batch, axis=0)  # (b, V)
        states = [np.repeat(state, batch, axis=0) for state in primed.states]  # (b, u) each
        for start in range(0, length, block):
            count = min(block, length - start)
            gumbel = None if greedy else noise.gumbel_numpy(keys, np.arange(start, start + count), self.vocab_size)
            chosen = np.empty((batch, count), np.int32)
            with blas_threads.limited(BLAS_THREADS):  # not while the caller holds the block
                for t in range(count):
                    if greedy:
                        ids = np.argmax(logits if banned is None else np.where(banned, -np.inf, logits), axis=-1)
                    else:
                        ids = choose(logits, gumbel[:, t], temperature, top_k, top_p, ban=banned, min_p=min_p)
                    chosen[:, t] = ids
                    if start + t + 1 < length:  # the last character needs no forward pass
                        logits, states = self.step(ids, states)
            yield chosen

    def _check_ids(self, ids, minimum: int) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or len(ids) < minimum or not np.issubdtype(ids.dtype, np.integer):
            raise SamplingError(f"Expected a sequence of at least {minimum} character id(s), got shape {ids.shape}.")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise SamplingError(
                f"Character ids must be in 0 ... {self.vocab_size - 1}; got {ids.min()} ... {ids.max()}."
            )
        return ids.astype(np.intp)


def _weight(weights: dict, name: str, ndim: int) -> np.ndarray:
    """The weight at variable path ``name`` (or the one path ending in /``name``), of ``ndim`` dimensions."""
    found = weights.get(name)
    if found is None:
        matches = [key for key in weights if key.endswith("/" + name)]
        found = weights[matches[0]] if len(matches) == 1 else None
    if found is None or np.ndim(found) != ndim:
        raise CheckpointError(
            f"The checkpoint has no {ndim}-dimensional weight {name!r} (it holds {', '.join(sorted(weights))}). "
            "It does not fit its config.json; use another checkpoint or retrain."
        )
    return np.asarray(found)


def _check_layer(index, cell, kernel, recurrent, bias, input_dim) -> None:
    u = recurrent.shape[0]
    k = 3 * u if cell in ("gru", "classic") else u
    bias_shape = {"gru": (2, 3 * u), "gru2": (u,)}.get(cell, (3 * u,))
    expected = ((input_dim or u, k), (u, u if cell == "gru3" else 3 * u), bias_shape)
    found = (kernel.shape, recurrent.shape, bias.shape)
    if found != expected:
        raise CheckpointError(
            f"Layer rnn_{index} of the checkpoint has kernel, recurrent kernel and bias shapes {found}; a {cell} "
            f"layer needs {expected}. The checkpoint does not fit its config.json; use another checkpoint or retrain."
        )


def load(run_dir: str | Path, which: str = "best"):
    """A run's engine from its folder alone (config.json and best.npz or last.npz; float16 bundles too).

    Returns:
        (Engine, RunInfo, the checkpoint's saved state).
    Raises:
        CheckpointError: no such run, a missing or damaged checkpoint, or weights that do not fit.
    """

    info = checkpoint.read_run(run_dir)
    path = checkpoint.checkpoint_path(run_dir, which)
    weights = checkpoint.read_weights(path)
    engine = Engine(weights, info.config.cell, info.config.num_layers)
    if engine.vocab_size != len(info.vocab):
        raise CheckpointError(
            f"{path} has {engine.vocab_size} characters' embeddings but its config.json names {len(info.vocab)}. "
            "Use another checkpoint or retrain."
        )
    return engine, info, checkpoint.read_state(path)
