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

VARIANTS = ("gru", "classic", "gru1", "gru2", "gru3")


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

    def call(self, inputs, initial_state=None):
        # Static sizes where known: XLA (jit_compile) needs them for the loop's TensorArrays.
        steps = inputs.shape[1] if inputs.shape[1] is not None else tf.shape(inputs)[1]
        batch = inputs.shape[0] if inputs.shape[0] is not None else tf.shape(inputs)[0]
        # Time-major TensorArray: reading step t this way keeps the gradient per step small
        # (indexing a tensor would scatter into a full (time, batch, k) zero tensor each step).
        projected = tf.TensorArray(tf.float32, size=steps).unstack(tf.transpose(self.project(inputs), (1, 0, 2)))
        h0 = tf.zeros((batch, self.units), tf.float32) if initial_state is None else tf.cast(initial_state, tf.float32)
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
        sequence = tf.transpose(outputs.stack(), (1, 0, 2))
        return tf.cast(sequence, self.compute_dtype), h_final

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.units), (input_shape[0], self.units)
