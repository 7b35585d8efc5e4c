"""The language model: Embedding → GRU-family layers → Dense logits.

Glorot (Xavier) uniform initialisation is set explicitly on the embedding, every input
kernel and the output layer (Keras's Embedding default is a uniform(-0.05, 0.05)).
"""

from __future__ import annotations

from shakegen.config import TrainConfig
from shakegen.model.backend import keras, tf
from shakegen.model.cells import GRULayer, gpu_visible


class CharModel(keras.Model):
    """Character-level GRU language model.

    Call args:
        inputs: (batch, time) integer ids.
        states: list of (batch, rnn_units) per layer, or None for zeros.
        training: apply dropout and weight-drop (then ``dropout_seed`` is required when either is on).
        dropout_seed: (2,) int32 seed for stateless dropout, so a resumed run draws the
            same masks as an uninterrupted one.
    Returns:
        (logits (batch, time, vocab) float32, list of final states per layer).
    """

    def __init__(self, vocab_size: int, config: TrainConfig, **kwargs):
        super().__init__(name="char_model", **kwargs)
        self.vocab_size = vocab_size
        self.config = config
        policy = keras.DTypePolicy(config.resolved(gpu=gpu_visible()).precision)
        self.embedding = keras.layers.Embedding(
            vocab_size, config.embedding_dim, embeddings_initializer="glorot_uniform", name="embedding", dtype=policy
        )
        self.rnn_layers = [
            GRULayer(
                config.rnn_units,
                variant=config.cell,
                kernel_initializer="glorot_uniform",
                recurrent_initializer=config.recurrent_initializer,
                rnn_kernel=config.rnn_kernel,
                weight_drop=config.weight_drop,
                name=f"rnn_{index}",
                dtype=policy,
            )
            for index in range(config.num_layers)
        ]
        self.embedding.build((None, None))
        for index, layer in enumerate(self.rnn_layers):
            # Built here, from the true input width: the first layer is called on a
            # precomputed projection (see call), not on its input features.
            layer.build((None, None, config.embedding_dim if index == 0 else config.rnn_units))
        self.dense = keras.layers.Dense(vocab_size, kernel_initializer="glorot_uniform", name="logits", dtype=policy)
        # Last, as a first call would build it: unseeded initialisers draw their seeds in creation order.
        with keras.name_scope(self.name):  # where a call would build it: its weights are char_model/logits/...
            self.dense.build((None, None, config.rnn_units))
        self.built = True  # every weight exists: no call is needed to build the model (an eager pass costs more)

    def call(self, inputs, states=None, training=False, dropout_seed=None):
        if training and (self.config.dropout > 0 or self.config.weight_drop > 0) and dropout_seed is None:
            raise ValueError("training with dropout or weight-drop needs a dropout_seed (2,) int32.")
        final_states = []
        x = None
        for index, layer in enumerate(self.rnn_layers):
            initial_state = None if states is None else states[index]
            # Each layer's masks have their own seeds: (seed, step·layers + layer) for dropout
            # after it, the same negated minus one for weight-drop on its recurrent kernel.
            stream = None if dropout_seed is None else dropout_seed[1] * len(self.rnn_layers) + index
            recurrent = {}
            if training and self.config.weight_drop > 0:
                recurrent["weight_drop_seed"] = tf.stack([dropout_seed[0], -1 - stream])
            if index == 0 and layer.takes_projection:
                # Embedding then input kernel is a lookup in their product: project the
                # (vocab, embedding) table once instead of every (batch × time) embedding.
                table = layer.project(self.embedding.embeddings)  # (vocab, k)
                projected = tf.gather(table, tf.cast(inputs, tf.int32))  # (batch, time, k)
                x, state = layer(projected, initial_state=initial_state, projected=projected, **recurrent)
            elif index == 0:  # Keras's GRU (cuDNN) projects its inputs itself
                x, state = layer(self.embedding(inputs), initial_state=initial_state)
            else:
                x, state = layer(x, initial_state=initial_state, **recurrent)
            final_states.append(state)
            if training and self.config.dropout > 0:
                seed = tf.stack([dropout_seed[0], stream])
                x = tf.nn.experimental.stateless_dropout(x, rate=self.config.dropout, seed=seed)
        logits = tf.cast(self.dense(x), tf.float32)
        return logits, final_states


def build_model(vocab_size: int, config: TrainConfig) -> CharModel:
    """A model with its weights created (initialised from the global Keras seed)."""
    return CharModel(vocab_size, config)


def layer_summary(model: CharModel) -> list[tuple[str, str, int]]:
    """(layer name, what it is, parameter count) for each layer."""
    rows = [
        ("embedding", f"Embedding({model.vocab_size}, {model.config.embedding_dim})", model.embedding.count_params())
    ]
    for layer in model.rnn_layers:
        what = f"{layer.variant} GRU({layer.units}), {layer.kernel_in_use} loop"
        rows.append((layer.name, what, layer.count_params()))
    rows.append(("logits", f"Dense({model.vocab_size})", model.dense.count_params()))
    return rows


def step_function(model: CharModel):
    """One character for a batch of streams: (ids (batch,), states) -> (logits (batch, vocab), states).

    Used inside compiled sampling loops, where it avoids the per-call time loop of ``call``.
    """
    updates = [layer.recurrence() for layer in model.rnn_layers]

    def step(ids, states):
        x = model.embedding(ids)  # (batch, embedding_dim)
        new_states = []
        for layer, update, h in zip(model.rnn_layers, updates, states, strict=True):
            h = update(layer.project(x), h)
            new_states.append(h)
            x = tf.cast(h, model.compute_dtype)
        return tf.cast(model.dense(x), tf.float32), new_states

    return step
