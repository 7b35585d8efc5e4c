"""The optimizer step: the model and its Adam optimizer, and one compiled step over a global batch.

The step's dropout masks are a pure function of (random seed, global step, replica), and the
global step lives in the optimizer (``iterations``), so a resumed run draws the same masks as
an uninterrupted one. A stateful run carries each layer's final state from one batch to the
next in non-trainable variables (``carried_states``).
"""

from __future__ import annotations

import numpy as np

from shakegen.config import TrainConfig


def build_training(vocab_size: int, config: TrainConfig, strategy, schedule):
    """The model, its built Adam optimizer and a stateful run's carried states, under ``strategy``'s scope.

    Adam follows ``schedule``; with --ema-decay it keeps a moving average of the weights, and
    with --weight-decay it is AdamW (matrices and embeddings decay, biases do not).
    """
    from shakegen.model.backend import keras
    from shakegen.model.network import build_model

    with strategy.scope():
        model = build_model(vocab_size, config)
        average = {"use_ema": True, "ema_momentum": config.ema_decay} if config.ema_decay else {}
        decay = {"weight_decay": config.weight_decay} if config.weight_decay else {}
        optimizer = keras.optimizers.Adam(learning_rate=schedule, **average, **decay)
        if config.weight_decay:  # AdamW's practice: matrices and embeddings decay, biases do not
            optimizer.exclude_from_weight_decay(var_names=["bias"])
        optimizer.build(model.trainable_variables)
        carried = carried_states(model, config)
    return model, optimizer, carried


def carried_states(model, config: TrainConfig) -> list:
    """Stateful runs: one (batch, units) float32 variable per layer, the state carried between batches."""
    from shakegen.model.backend import tf

    if not config.stateful:
        return []
    return [
        tf.Variable(tf.zeros((config.batch_size, layer.units)), trainable=False, name=f"carried_{index}")
        for index, layer in enumerate(model.rnn_layers)
    ]


def make_train_step(model, optimizer, config: TrainConfig, strategy, carried: list | None = None):
    """A compiled step over one distributed global batch; returns the global mean loss.

    Each replica's loss is its summed cross-entropy over the global number of characters, so
    replica gradients add up to the gradient of the global mean. The sum is all-reduced here,
    before clipping, so every replica clips the same global norm; the optimizer all-reduces
    (sums) once more, hence the division by the number of replicas.
    """
    from shakegen.model.backend import tf

    variables = model.trainable_variables
    carried = carried or []
    layers = model.rnn_layers[: len(carried)]
    # The seed's 32 bits as int32: seeds below 2**31 keep their value, those above get their own masks.
    seed = tf.constant(np.array(config.random_seed, np.uint32).view(np.int32), tf.int32)
    replicas = strategy.num_replicas_in_sync
    global_characters = float(config.batch_size * config.seq_length)

    def replica_step(inputs, targets):
        step = tf.cast(optimizer.iterations, tf.int32)
        context = tf.distribute.get_replica_context()
        replica_seed = tf.stack([seed, step * replicas + context.replica_id_in_sync_group])
        # Stateful runs start from the state the previous batch ended in; others from zeros.
        initial = [tf.cast(carry, layer.compute_dtype) for carry, layer in zip(carried, layers, strict=True)] or None
        with tf.GradientTape() as tape:
            logits, final_states = model(inputs, states=initial, training=True, dropout_seed=replica_seed)
            per_character = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            loss = tf.reduce_sum(per_character) / global_characters
        gradients = tape.gradient(loss, variables)
        if replicas > 1:
            gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        if config.clip_norm:
            gradients, _ = tf.clip_by_global_norm(gradients, config.clip_norm)
        if replicas > 1:
            gradients = [gradient / replicas for gradient in gradients]
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        for carry, state in zip(carried, final_states if carried else [], strict=True):
            carry.assign(tf.cast(tf.stop_gradient(state), tf.float32))  # truncated: no gradient flows back
        return loss

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step
