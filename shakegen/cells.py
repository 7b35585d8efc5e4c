"""The GRU family as one Keras layer: Keras/cuDNN GRU, Cho et al. 2014, and Dey & Salem 2017.

Every variant shares one implementation. The input projection for all time steps is one
matrix product before the time loop; each step then does one fused recurrent product
(two for the reset-before forms, whose candidate needs ``r * h`` first). Which terms
exist decides the variant:

=========  ============================  =================================================
variant    gates z, r                    candidate h~
=========  ============================  =================================================
gru        σ(W x + b_in + U h + b_rec)   tanh(W_h x + b_in_h + r ⊙ (U_h h + b_rec_h))
classic    σ(W x + U h + b)              tanh(W_h x + U_h (r ⊙ h) + b_h)
gru1       σ(U h + b)                    tanh(W_h x + U_h (r ⊙ h) + b_h)
gru2       σ(U h)                        tanh(W_h x + U_h (r ⊙ h) + b_h)
gru3       σ(b)                          tanh(W_h x + U_h (r ⊙ h) + b_h)
=========  ============================  =================================================

and in all of them h_t = z ⊙ h_{t-1} + (1 - z) ⊙ h~. ``gru`` is Keras's ``GRU()`` (and
cuDNN's, PyTorch's ``nn.GRU``) weight for weight; ``classic`` is ``GRU(reset_after=False)``.
Gate order in every fused matrix is z, r, h as in Keras.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from shakegen.config import CELLS as VARIANTS  # one list of cell names, kept in config


def parameter_count(variant: str, input_dim: int, units: int) -> int:
    """Parameters of one layer, straight from the equations above."""
    i, u = input_dim, units
    return {
        "gru": 3 * (i * u + u * u + 2 * u),
        "classic": 3 * (i * u + u * u + u),
        "gru1": i * u + 3 * u * u + 3 * u,
        "gru2": i * u + 3 * u * u + u,
        "gru3": i * u + u * u + 3 * u,
    }[variant]


@keras.saving.register_keras_serializable(package="shakegen")
class GRULayer(keras.layers.Layer):
    """A GRU-family recurrent layer returning the full sequence and the final state.

    Args:
        units: size of the state.
        variant: one of ``VARIANTS``.
        kernel_initializer: for the input kernel (Glorot uniform by default).
        recurrent_initializer: for the recurrent kernel (``orthogonal`` or ``glorot_uniform``).
    Call args:
        inputs: (batch, time, features).
        initial_state: (batch, units) or None for zeros.
    Returns:
        (outputs (batch, time, units), final_state (batch, units)).
    """

    def __init__(
        self,
        units: int,
        variant: str = "gru",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"Unknown GRU variant {variant!r}; expected one of {', '.join(VARIANTS)}.")
        if units < 1:
            raise ValueError(f"units must be positive, got {units}.")
        self.units = units
        self.variant = variant
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.input_gates = variant in ("gru", "classic")
        self.state_gates = variant != "gru3"
        self.reset_after = variant == "gru"

    def build(self, input_shape):
        u = self.units
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(input_dim, 3 * u if self.input_gates else u), initializer=self.kernel_initializer
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(u, 3 * u if self.state_gates else u),
            initializer=self.recurrent_initializer,
        )
        bias_shape = {"gru": (2, 3 * u), "classic": (3 * u,), "gru1": (3 * u,), "gru2": (u,), "gru3": (3 * u,)}
        self.bias = self.add_weight(name="bias", shape=bias_shape[self.variant], initializer=self.bias_initializer)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            variant=self.variant,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            recurrent_initializer=keras.initializers.serialize(self.recurrent_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config

    def _biases(self):
        """(bias added to the input projection or None, bias added to the recurrent product or None,
        constant gate bias of gru3 or None)."""
        u = self.units
        bias = tf.cast(self.bias, tf.float32)
        if self.variant == "gru":
            return bias[0], bias[1], None
        if self.variant == "classic":
            return bias, None, None
        if self.variant == "gru1":
            return bias[2 * u :], bias[: 2 * u], None
        if self.variant == "gru2":
            return bias, None, None
        return bias[2 * u :], None, bias[: 2 * u]

    def project(self, inputs):
        """Input projection (plus input bias) of every step at once: (..., features) -> (..., k) float32."""
        compute = self.compute_dtype
        projected = tf.cast(tf.matmul(tf.cast(inputs, compute), tf.cast(self.kernel, compute)), tf.float32)
        input_bias = self._biases()[0]
        return projected if input_bias is None else projected + input_bias

    def recurrence(self):
        """The per-step update ``(projected x_t (batch, k), h (batch, units)) -> h_t``.

        Built once per call so weights are cast and sliced outside the time loop.
        """
        u = self.units
        compute = self.compute_dtype
        recurrent_kernel = tf.cast(self.recurrent_kernel, compute)
        _, recurrent_bias, constant_gates = self._biases()

        def matmul(left, right):
            return tf.cast(tf.matmul(tf.cast(left, compute), right), tf.float32)

        if self.reset_after:

            def step(x_t, h):
                inner = matmul(h, recurrent_kernel) + recurrent_bias  # (batch, 3u)
                x_z, x_r, x_h = tf.split(x_t, 3, axis=-1)
                in_z, in_r, in_h = tf.split(inner, 3, axis=-1)
                z = tf.sigmoid(x_z + in_z)
                r = tf.sigmoid(x_r + in_r)
                candidate = tf.tanh(x_h + r * in_h)
                return z * h + (1.0 - z) * candidate

            return step

        gate_kernel = recurrent_kernel[:, : 2 * u] if self.state_gates else None
        candidate_kernel = recurrent_kernel[:, 2 * u :] if self.state_gates else recurrent_kernel

        def step(x_t, h):
            x_h = x_t[:, 2 * u :] if self.input_gates else x_t
            if self.state_gates:
                gates = matmul(h, gate_kernel)  # (batch, 2u)
                if self.input_gates:
                    gates = gates + x_t[:, : 2 * u]
                if recurrent_bias is not None:
                    gates = gates + recurrent_bias
                z, r = tf.split(tf.sigmoid(gates), 2, axis=-1)
            else:
                z, r = tf.split(tf.sigmoid(constant_gates), 2)
            candidate = tf.tanh(x_h + matmul(r * h, candidate_kernel))
            return z * h + (1.0 - z) * candidate

        return step

    def call(self, inputs, initial_state=None, projected=None):
        """Run the layer over ``inputs``, or over ``projected`` (= ``self.project(inputs)``)
        when the caller has it cheaper, e.g. gathered from a projected embedding table."""
        if projected is None:
            projected = self.project(inputs)
        # Keras casts call arguments to the compute dtype; the recurrence runs in float32.
        projected = tf.transpose(tf.cast(projected, tf.float32), (1, 0, 2))  # time-major: (time, batch, k)
        # Static sizes where known: XLA (jit_compile) needs them for the loop's TensorArrays.
        steps = projected.shape[0] if projected.shape[0] is not None else tf.shape(projected)[0]
        batch = projected.shape[1] if projected.shape[1] is not None else tf.shape(projected)[1]
        h0 = tf.zeros((batch, self.units), tf.float32) if initial_state is None else tf.cast(initial_state, tf.float32)
        if self.reset_after and self.compute_dtype == "float32":
            recurrent_bias = self._biases()[1]
            outputs, h_final = gru_sequence_fused(
                projected, h0, tf.convert_to_tensor(self.recurrent_kernel), recurrent_bias
            )
        else:
            outputs, h_final = self._sequence_autodiff(projected, h0, steps)
        return tf.cast(tf.transpose(outputs, (1, 0, 2)), self.compute_dtype), h_final

    def _sequence_autodiff(self, projected, h0, steps):
        """The recurrence for any variant, differentiated by TensorFlow; (time, batch, units) outputs."""
        # A TensorArray: reading step t this way keeps the gradient per step small
        # (indexing a tensor would scatter into a full (time, batch, k) zero tensor each step).
        projected = tf.TensorArray(tf.float32, size=steps).unstack(projected)
        update = self.recurrence()

        def body(t, h, outputs):
            h = update(projected.read(t), h)
            return t + 1, h, outputs.write(t, h)

        outputs = tf.TensorArray(tf.float32, size=steps)
        _, h_final, outputs = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (tf.constant(0), h0, outputs),
            parallel_iterations=2,
            maximum_iterations=steps,
        )
        return outputs.stack(), h_final

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.units), (input_shape[0], self.units)


@tf.custom_gradient
def gru_sequence_fused(projected, h0, recurrent_kernel, recurrent_bias):
    """The ``gru`` (reset-after) recurrence with a hand-written backward pass, as cuDNN does it.

    Autodiff through a while loop accumulates the recurrent kernel's gradient step by step
    (a small matrix product plus a (units, 3 units) addition per step). Here the backward
    loop only carries dh back through time and stores each step's gate gradients; the
    kernel's gradient is then one large product over all steps, which is far faster on CPU.

    Args:
        projected: (time, batch, 3u) input projection with the input bias.
        h0: (batch, u) initial state.
        recurrent_kernel: (u, 3u); recurrent_bias: (3u,).
    Returns:
        (outputs (time, batch, u), final state (batch, u)).
    """
    steps = projected.shape[0] if projected.shape[0] is not None else tf.shape(projected)[0]
    u = h0.shape[-1]

    def forward(t, h, outputs, gates, inner_h):
        inner = tf.matmul(h, recurrent_kernel) + recurrent_bias  # (batch, 3u)
        x_z, x_r, x_h = tf.split(projected[t], 3, axis=-1)
        in_z, in_r, in_h = tf.split(inner, 3, axis=-1)
        z = tf.sigmoid(x_z + in_z)
        r = tf.sigmoid(x_r + in_r)
        candidate = tf.tanh(x_h + r * in_h)
        h = z * h + (1.0 - z) * candidate
        return t + 1, h, outputs.write(t, h), gates.write(t, tf.concat([z, r, candidate], -1)), inner_h.write(t, in_h)

    arrays = [tf.TensorArray(tf.float32, size=steps) for _ in range(3)]
    _, h_final, outputs, gates, inner_h = tf.while_loop(
        lambda t, *_: t < steps, forward, (tf.constant(0), h0, *arrays), maximum_iterations=steps
    )
    outputs, gates, inner_h = outputs.stack(), gates.stack(), inner_h.stack()

    def backward(d_outputs, d_h_final):
        previous = tf.concat([h0[None], outputs[:-1]], axis=0)  # h_{t-1} for every t: (time, batch, u)
        kernel_t = tf.transpose(recurrent_kernel)

        def step(i, dh, d_projected, d_inner):
            t = steps - 1 - i
            z, r, candidate = tf.split(gates[t], 3, axis=-1)
            dh = dh + d_outputs[t]
            d_a_candidate = dh * (1.0 - z) * (1.0 - tf.square(candidate))
            d_a_r = d_a_candidate * inner_h[t] * r * (1.0 - r)
            d_a_z = dh * (previous[t] - candidate) * z * (1.0 - z)
            d_x = tf.concat([d_a_z, d_a_r, d_a_candidate], -1)
            d_in = tf.concat([d_a_z, d_a_r, d_a_candidate * r], -1)
            dh = dh * z + tf.matmul(d_in, kernel_t)
            return i + 1, dh, d_projected.write(t, d_x), d_inner.write(t, d_in)

        d_arrays = [tf.TensorArray(tf.float32, size=steps) for _ in range(2)]
        d_h_final = tf.zeros_like(h0) if d_h_final is None else d_h_final
        _, d_h0, d_projected, d_inner = tf.while_loop(
            lambda i, *_: i < steps, step, (tf.constant(0), d_h_final, *d_arrays), maximum_iterations=steps
        )
        d_projected, d_inner = d_projected.stack(), d_inner.stack()
        flat_inner = tf.reshape(d_inner, (-1, 3 * u))
        d_kernel = tf.matmul(tf.reshape(previous, (-1, u)), flat_inner, transpose_a=True)  # one product for all steps
        return d_projected, d_h0, d_kernel, tf.reduce_sum(flat_inner, axis=0)

    return (outputs, h_final), backward
