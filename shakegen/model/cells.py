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

and in all of them h_t = z ⊙ h_{t-1} + (1 - z) ⊙ h~. Gate order in every fused matrix is
z, r, h as in Keras. ``gru`` is Keras's ``GRU()`` weight for weight (same shapes, same
layout) and ``classic`` is ``GRU(reset_after=False)``. ``gru`` is also the function that
cuDNN and PyTorch's ``nn.GRU`` compute, but their weights are laid out differently:
PyTorch orders the gates r, z, n (n = our h~) and stores each matrix transposed, so

    weight_ih_l0 = kernel[:, [r, z, h]].T           (3u, input)
    weight_hh_l0 = recurrent_kernel[:, [r, z, h]].T (3u, u)
    bias_ih_l0 = bias[0][[r, z, h]],  bias_hh_l0 = bias[1][[r, z, h]]

where ``[r, z, h]`` picks the column blocks u:2u, 0:u, 2u:3u (see
``benchmarks/torch_reference.py``, which checks the mapping).

Two implementations run the time loop (``rnn_kernel``), with the same weights and results:

- ``fused``: shakegen's loop with a hand-written backward pass (``fused_loop.py``), for
  every variant, in float32 or mixed bfloat16;
- ``keras``: Keras's own ``GRU`` layer on this layer's variables, for ``gru`` and ``classic``
  only. On a GPU, Keras runs ``gru`` in float32 with cuDNN; cuDNN has no reset-before
  GRU and no bfloat16 RNN kernel, so ``classic`` or bfloat16 gets Keras's generic loop.
``auto`` picks ``keras`` exactly where cuDNN can take the layer, else ``fused``.
"""

from __future__ import annotations

import types

from shakegen.config import CELLS as VARIANTS  # one list of cell names, kept in config
from shakegen.config import RNN_KERNELS
from shakegen.model import fused_loop
from shakegen.model.backend import keras, tf

KERAS_VARIANTS = ("gru", "classic")  # the cells keras.layers.GRU computes (reset_after True / False)


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


def gpu_visible() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


def choose_rnn_kernel(rnn_kernel: str, variant: str, compute_dtype: str, gpu: bool | None = None) -> str:
    """The implementation that runs a layer's time loop: ``"fused"`` or ``"keras"``.

    Args:
        rnn_kernel: ``auto``, ``fused`` or ``keras`` (``keras`` applies to ``gru`` and
            ``classic``; the other variants always run fused).
        compute_dtype: the layer's compute dtype (cuDNN has no bfloat16 RNN kernel).
        gpu: whether a GPU is visible; looked up when None.
    """
    if rnn_kernel not in RNN_KERNELS:
        raise ValueError(f"Unknown rnn_kernel {rnn_kernel!r}; expected one of {', '.join(RNN_KERNELS)}.")
    if rnn_kernel == "fused" or variant not in KERAS_VARIANTS:
        return "fused"
    if rnn_kernel == "keras":
        return "keras"
    cudnn_can = variant == "gru" and compute_dtype == "float32"  # cuDNN: reset-after form; half/float/double
    if cudnn_can and (gpu_visible() if gpu is None else gpu):
        return "keras"
    return "fused"


class GRULayer(keras.layers.Layer):
    """A GRU-family recurrent layer returning the full sequence and the final state.

    Args:
        units: size of the state.
        variant: one of ``VARIANTS``.
        kernel_initializer: for the input kernel (Glorot uniform by default).
        recurrent_initializer: for the recurrent kernel (``orthogonal`` or ``glorot_uniform``).
        rnn_kernel: ``auto``, ``fused`` or ``keras`` (see ``choose_rnn_kernel``); it decides
            how the time loop runs, never the weights.
        weight_drop: fraction of the recurrent kernel's entries dropped in training when a
            ``weight_drop_seed`` is given; above 0 the layer always runs the fused loop (the
            Keras GRU reads its recurrent kernel itself). Inference models are built with 0.
    Call args:
        inputs: (batch, time, features).
        initial_state: (batch, units) or None for zeros.
        projected: ``self.project(inputs)`` when the caller has it cheaper (fused kernel only).
        weight_drop_seed: (2,) int32: in training, drop this fraction (``weight_drop``) of the
            recurrent kernel's entries for the whole call (DropConnect, one mask per batch).
    Returns:
        (outputs (batch, time, units), final_state (batch, units) float32).
    """

    def __init__(
        self,
        units: int,
        variant: str = "gru",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        rnn_kernel: str = "auto",
        weight_drop: float = 0.0,
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
        self.rnn_kernel = rnn_kernel
        self.weight_drop = weight_drop
        # Weight-drop masks the recurrent kernel before the loop: only the fused loop can take that.
        self.kernel_in_use = "fused" if weight_drop else choose_rnn_kernel(rnn_kernel, variant, self.compute_dtype)
        self.input_gates = variant in ("gru", "classic")
        self.state_gates = variant != "gru3"
        self.reset_after = variant == "gru"

    @property
    def takes_projection(self) -> bool:
        """Whether ``call`` accepts a precomputed input projection (Keras's GRU wants the inputs)."""
        return self.kernel_in_use == "fused"

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
        if self.kernel_in_use == "keras":
            self._build_keras_gru()

    def _build_keras_gru(self):
        """A ``keras.layers.GRU`` that runs on this layer's own variables.

        Its kernel, recurrent kernel and bias have exactly our shapes and gate order, so the
        variables are handed over as they are. It is kept out of Keras's tracking (in a
        plain namespace) so that the model's weights and their paths, and hence the
        checkpoint format, are the same whichever kernel runs.
        """
        gru = keras.layers.GRU(
            self.units,
            return_sequences=True,
            return_state=True,
            reset_after=self.reset_after,
            dtype=self.dtype_policy,
            name=f"{self.name}_keras_gru",
        )
        gru.cell.kernel = self.kernel
        gru.cell.recurrent_kernel = self.recurrent_kernel
        gru.cell.bias = self.bias
        gru.cell.built = True
        gru.built = True
        self._keras = types.SimpleNamespace(gru=gru)

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

        Built once per call so weights are cast and sliced outside the time loop. Used by
        the sampler's compiled loop (one character at a time); ``call`` runs the fused
        sequence instead, whose forward pass takes the same step (``fused_loop.step_function``).
        """
        recurrent_kernel = tf.cast(self.recurrent_kernel, self.compute_dtype)
        return fused_loop.step_function(self.form(), recurrent_kernel, self.loop_bias())

    def form(self) -> fused_loop.Form:
        """Which terms this variant's recurrence has, for ``fused_sequence``."""
        return fused_loop.Form(
            reset_after=self.reset_after,
            input_gates=self.input_gates,
            state_gates=self.state_gates,
            loop_bias=self.variant in ("gru", "gru1", "gru3"),
            compute_dtype=self.compute_dtype,
        )

    def loop_bias(self):
        """The bias ``fused_sequence`` adds inside the loop: b_rec (3u,) for gru, the gate bias
        (2u,) for gru1 and gru3; a placeholder (0,) where the variant has none."""
        _, recurrent_bias, constant_gates = self._biases()
        if recurrent_bias is not None:
            return recurrent_bias
        if constant_gates is not None:
            return constant_gates
        return tf.zeros((0,), tf.float32)

    def call(self, inputs, initial_state=None, projected=None, weight_drop_seed=None):
        """Run the layer over ``inputs``, or over ``projected`` (= ``self.project(inputs)``)
        when the caller has it cheaper, e.g. gathered from a projected embedding table."""
        if self.kernel_in_use == "keras":
            return self._call_keras(inputs, initial_state)
        if projected is None:
            projected = self.project(inputs)
        # Keras casts call arguments to the compute dtype; the recurrence runs in float32.
        projected = tf.transpose(tf.cast(projected, tf.float32), (1, 0, 2))  # time-major: (time, batch, k)
        batch = projected.shape[1] if projected.shape[1] is not None else tf.shape(projected)[1]
        h0 = tf.zeros((batch, self.units), tf.float32) if initial_state is None else tf.cast(initial_state, tf.float32)
        recurrent_kernel = tf.cast(self.recurrent_kernel, self.compute_dtype)
        if weight_drop_seed is not None and self.weight_drop > 0:
            # Drawn in the compute dtype, like the loop's product: in bfloat16 the kept fraction
            # and the 1/(1 - rate) scale are rounded to bfloat16 (0.3 drops about 0.301).
            recurrent_kernel = tf.nn.experimental.stateless_dropout(
                recurrent_kernel, rate=self.weight_drop, seed=weight_drop_seed
            )
        outputs, h_final = fused_loop.fused_sequence(self.form())(projected, h0, recurrent_kernel, self.loop_bias())
        return tf.cast(tf.transpose(outputs, (1, 0, 2)), self.compute_dtype), h_final

    def _call_keras(self, inputs, initial_state):
        inputs = tf.cast(inputs, self.compute_dtype)
        if initial_state is None:
            outputs, h_final = self._keras.gru(inputs)
        else:
            outputs, h_final = self._keras.gru(inputs, initial_state=tf.cast(initial_state, self.compute_dtype))
        return tf.cast(outputs, self.compute_dtype), tf.cast(h_final, tf.float32)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.units), (input_shape[0], self.units)
