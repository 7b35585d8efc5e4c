"""The fused GRU time loop: a GRU-family recurrence over a whole sequence, with a hand-written backward pass.

``cells.GRULayer`` runs its ``fused`` kernel through ``fused_sequence``; the equations of every
variant are in ``cells.py``. Autodiff through a while loop accumulates the recurrent kernel's
gradient step by step (a small matrix product plus a (units, 3 units) addition per step). Here
the backward loop only carries dh back through time and stores each step's pre-activation
gradients; the kernel's gradient is then one large product over all steps (as cuDNN does it),
which is far faster on CPU. One implementation serves every variant: the terms a ``Form`` lacks
are simply not computed, forward or backward. Shapes: time T, batch B, units u.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from shakegen.model.backend import tf


class Form(NamedTuple):
    """The shape of a GRU-family recurrence, which is all ``fused_sequence`` needs to know.

    reset_after: r multiplies (U_h h + b_rec_h) (gru) rather than h before U_h (the others).
    input_gates: the projection holds z, r and h~ columns (3u); else h~ only (u).
    state_gates: the gates read h through U_zr; else they are constants σ(b_zr) (gru3).
    loop_bias: a bias is added inside the loop: b_rec (3u) for reset-after, b_zr (2u) else.
    compute_dtype: the dtype of the recurrent products; everything else is float32.
    """

    reset_after: bool
    input_gates: bool
    state_gates: bool
    loop_bias: bool
    compute_dtype: str


@functools.lru_cache(maxsize=None)
def fused_sequence(form: Form):
    """The recurrence of ``form`` over a whole sequence, with a hand-written backward pass.

    Returns a function ``(projected, h0, recurrent_kernel, loop_bias) -> (outputs, h_final)``:
        projected: (time, batch, 3u or u) float32, the input projection with the input bias.
        h0: (batch, u) float32 initial state.
        recurrent_kernel: (u, 3u or u) in ``form.compute_dtype``.
        loop_bias: (3u,) b_rec for reset-after, (2u,) gate bias for gru1 and gru3, else (0,).
        outputs: (time, batch, u) float32; h_final: (batch, u) float32.
    """
    if form.reset_after and not (form.input_gates and form.state_gates and form.loop_bias):
        raise ValueError(f"The reset-after recurrence has every term; got {form}.")
    compute = tf.as_dtype(form.compute_dtype)
    return _reset_after_sequence(compute) if form.reset_after else _reset_before_sequence(form, compute)


def step_function(form: Form, recurrent_kernel, loop_bias):
    """One step of ``form``'s recurrence, ``(projected x_t (batch, k), h (batch, u)) -> h_t``: the step
    ``fused_sequence`` takes, for loops that feed one character at a time (arguments as there)."""
    compute = tf.as_dtype(form.compute_dtype)
    if form.reset_after:
        return lambda x_t, h: _reset_after_step(x_t, h, recurrent_kernel, loop_bias, compute)[0]
    kernels = _reset_before_kernels(form, recurrent_kernel, loop_bias, recurrent_kernel.shape[0])
    return lambda x_t, h: _reset_before_step(form, x_t, h, kernels, loop_bias, compute)[0]


def _matmul(left, right, compute):
    """A product in the compute dtype with a float32 result; ``right`` is already cast."""
    return tf.cast(tf.matmul(tf.cast(left, compute), right), tf.float32)


def _weight_gradient(left, right, compute):
    """sum over (time, batch) of left^T right: one product, (time, batch, a) x (time, batch, b) -> (a, b)."""
    left = tf.reshape(left, (-1, left.shape[-1]))
    right = tf.reshape(right, (-1, right.shape[-1]))
    return tf.matmul(tf.cast(left, compute), tf.cast(right, compute), transpose_a=True)


def _loop(body, initial, steps):
    """``body(i, *values)`` for i = 0 .. steps - 1; the values it returns last."""
    return tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(0), *initial), maximum_iterations=steps)[1:]


def _arrays(count, steps):
    """``count`` float32 TensorArrays of ``steps`` entries, one per per-step value to keep."""
    return [tf.TensorArray(tf.float32, size=steps) for _ in range(count)]


def _length(projected):
    """The number of time steps, static where known."""
    return projected.shape[0] if projected.shape[0] is not None else tf.shape(projected)[0]


def _reset_after_step(x_t, h, recurrent_kernel, recurrent_bias, compute):
    """One gru step: (h_t, z, r, h~, U_h h + b_rec_h), each (batch, u), from x_t (batch, 3u) and h."""
    inner = _matmul(h, recurrent_kernel, compute) + recurrent_bias  # (batch, 3u)
    x_z, x_r, x_h = tf.split(x_t, 3, axis=-1)
    in_z, in_r, in_h = tf.split(inner, 3, axis=-1)
    z = tf.sigmoid(x_z + in_z)
    r = tf.sigmoid(x_r + in_r)
    candidate = tf.tanh(x_h + r * in_h)
    return z * h + (1.0 - z) * candidate, z, r, candidate, in_h


class _Kernels(NamedTuple):
    """A reset-before recurrence's weights, split once outside the loop."""

    gate: object  # U_zr (u, 2u), or None where the gates are constants (gru3)
    candidate: object  # U_h (u, u)
    constant_gates: tuple | None  # (z, r), each (u,): gru3's σ(b_zr); else None


def _reset_before_kernels(form: Form, recurrent_kernel, gate_bias, u: int) -> _Kernels:
    if form.state_gates:
        return _Kernels(recurrent_kernel[:, : 2 * u], recurrent_kernel[:, 2 * u :], None)
    return _Kernels(None, recurrent_kernel, tuple(tf.split(tf.sigmoid(gate_bias), 2)))  # (u,) each


def _reset_before_step(form: Form, x_t, h, kernels, gate_bias, compute):
    """One reset-before step: (h_t, z, r, h~) from x_t (batch, 3u or u) and h (batch, u); z and r
    are (u,) where the gates are constants."""
    u = kernels.candidate.shape[0]
    if form.state_gates:
        pre = _matmul(h, kernels.gate, compute)  # (batch, 2u)
        if form.input_gates:
            pre = pre + x_t[:, : 2 * u]
        if form.loop_bias:
            pre = pre + gate_bias
        z, r = tf.split(tf.sigmoid(pre), 2, axis=-1)
    else:
        z, r = kernels.constant_gates
    x_h = x_t[:, 2 * u :] if form.input_gates else x_t
    candidate = tf.tanh(x_h + _matmul(r * h, kernels.candidate, compute))
    return z * h + (1.0 - z) * candidate, z, r, candidate


def _reset_after_sequence(compute):
    """The gru (reset-after) recurrence: every gate reads x and h, r multiplies U_h h + b_rec_h."""

    @tf.custom_gradient
    def reset_after_sequence(projected, h0, recurrent_kernel, recurrent_bias):
        steps = _length(projected)

        def forward(t, h, outputs, saved, inner_h):
            h, z, r, candidate, in_h = _reset_after_step(projected[t], h, recurrent_kernel, recurrent_bias, compute)
            saved = saved.write(t, tf.concat([z, r, candidate], -1))
            return t + 1, h, outputs.write(t, h), saved, inner_h.write(t, in_h)

        h_final, outputs, saved, inner_h = _loop(forward, (h0, *_arrays(3, steps)), steps)
        outputs, saved, inner_h = outputs.stack(), saved.stack(), inner_h.stack()

        def backward(d_outputs, d_h_final):
            return _reset_after_backward(
                compute, steps, h0, outputs, saved, inner_h, recurrent_kernel, d_outputs, d_h_final
            )

        return (outputs, h_final), backward

    return reset_after_sequence


def _reset_after_backward(compute, steps, h0, outputs, saved, inner_h, recurrent_kernel, d_outputs, d_h_final):
    """Gradients of the reset-after sequence: (d projected, d h0, d recurrent kernel, d recurrent bias).

    ``saved``: z, r, h~ of every step (time, batch, 3u); ``inner_h``: U_h h + b_rec_h (time, batch, u).
    """
    u = h0.shape[-1]
    previous = tf.concat([h0[None], outputs[:-1]], axis=0)  # h_{t-1} for every t: (time, batch, u)
    kernel_t = tf.transpose(recurrent_kernel)

    def step(i, dh, d_projected, d_inner):
        t = steps - 1 - i
        z, r, candidate = tf.split(saved[t], 3, axis=-1)
        dh = dh + d_outputs[t]
        d_a_candidate = dh * (1.0 - z) * (1.0 - tf.square(candidate))
        d_a_r = d_a_candidate * inner_h[t] * r * (1.0 - r)
        d_a_z = dh * (previous[t] - candidate) * z * (1.0 - z)
        d_in = tf.concat([d_a_z, d_a_r, d_a_candidate * r], -1)  # (batch, 3u)
        d_x = tf.concat([d_a_z, d_a_r, d_a_candidate], -1)  # (batch, 3u)
        dh = dh * z + _matmul(d_in, kernel_t, compute)
        return i + 1, dh, d_projected.write(t, d_x), d_inner.write(t, d_in)

    d_h_final = tf.zeros_like(h0) if d_h_final is None else d_h_final
    d_h0, d_projected, d_inner = _loop(step, (d_h_final, *_arrays(2, steps)), steps)
    d_inner = d_inner.stack()  # (time, batch, 3u)
    d_kernel = _weight_gradient(previous, d_inner, compute)
    d_bias = tf.reduce_sum(tf.reshape(d_inner, (-1, 3 * u)), axis=0)
    return d_projected.stack(), d_h0, d_kernel, d_bias


def _reset_before_sequence(form: Form, compute):
    """The classic, gru1, gru2 and gru3 recurrences: h~ reads r ⊙ h through U_h."""

    @tf.custom_gradient
    def reset_before_sequence(projected, h0, recurrent_kernel, gate_bias):
        steps = _length(projected)
        u = h0.shape[-1]
        kernels = _reset_before_kernels(form, recurrent_kernel, gate_bias, u)

        def forward(t, h, outputs, saved):
            h, z, r, candidate = _reset_before_step(form, projected[t], h, kernels, gate_bias, compute)
            # Constant gates need not be saved: only the candidate then.
            saved = saved.write(t, tf.concat([z, r, candidate], -1) if form.state_gates else candidate)
            return t + 1, h, outputs.write(t, h), saved

        h_final, outputs, saved = _loop(forward, (h0, *_arrays(2, steps)), steps)
        outputs, saved = outputs.stack(), saved.stack()

        def backward(d_outputs, d_h_final):
            return _reset_before_backward(
                form, compute, steps, h0, outputs, saved, kernels, gate_bias, d_outputs, d_h_final
            )

        return (outputs, h_final), backward

    return reset_before_sequence


def _reset_before_backward(form, compute, steps, h0, outputs, saved, kernels, gate_bias, d_outputs, d_h_final):
    """Gradients of a reset-before sequence: (d projected, d h0, d recurrent kernel, d gate bias).

    ``saved``: z, r, h~ of every step (time, batch, 3u), or h~ alone (time, batch, u) where the
    gates are constants.
    """
    u = h0.shape[-1]
    previous = tf.concat([h0[None], outputs[:-1]], axis=0)  # h_{t-1} for every t: (time, batch, u)
    candidate_kernel_t = tf.transpose(kernels.candidate)
    gate_kernel_t = tf.transpose(kernels.gate) if form.state_gates else None

    def step(i, dh, d_pre):
        t = steps - 1 - i
        if form.state_gates:
            z, r, candidate = tf.split(saved[t], 3, axis=-1)
        else:
            (z, r), candidate = kernels.constant_gates, saved[t]
        h_previous = previous[t]
        dh = dh + d_outputs[t]
        d_a_candidate = dh * (1.0 - z) * (1.0 - tf.square(candidate))
        d_reset_h = _matmul(d_a_candidate, candidate_kernel_t, compute)  # d(r ⊙ h): (batch, u)
        d_a_z = dh * (h_previous - candidate) * z * (1.0 - z)
        d_a_r = d_reset_h * h_previous * r * (1.0 - r)
        d_gates = tf.concat([d_a_z, d_a_r], -1)  # (batch, 2u)
        dh = dh * z + d_reset_h * r
        if form.state_gates:
            dh = dh + _matmul(d_gates, gate_kernel_t, compute)
        return i + 1, dh, d_pre.write(t, tf.concat([d_gates, d_a_candidate], -1))

    d_h_final = tf.zeros_like(h0) if d_h_final is None else d_h_final
    d_h0, d_pre = _loop(step, (d_h_final, *_arrays(1, steps)), steps)
    d_pre = d_pre.stack()  # (time, batch, 3u): gates z, r, then candidate
    d_gates, d_a_candidate = d_pre[..., : 2 * u], d_pre[..., 2 * u :]
    reset = saved[..., u : 2 * u] if form.state_gates else kernels.constant_gates[1]
    d_kernel = _weight_gradient(reset * previous, d_a_candidate, compute)  # U_h: (u, u)
    if form.state_gates:
        d_kernel = tf.concat([_weight_gradient(previous, d_gates, compute), d_kernel], axis=1)  # (u, 3u)
    if form.loop_bias:
        d_bias = tf.reduce_sum(tf.reshape(d_gates, (-1, 2 * u)), axis=0)
    else:
        d_bias = tf.zeros_like(gate_bias)
    return (d_pre if form.input_gates else d_a_candidate), d_h0, d_kernel, d_bias
