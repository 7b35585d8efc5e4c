"""Training speed: characters per second of shakegen's `standard` model against the TensorFlow
tutorial's plain Keras model of the same size, in the same process, after warm-up.

Both: Embedding(65, 256) → GRU(1024) → Dense(65), float32, batch 64, sequence 100, Adam,
cross-entropy from logits; one compiled train step each (tf.function), on the same batches.
The two GRUs compute the same function (tests/test_cells.py checks outputs and gradients),
so equal characters mean equal loss.

    python benchmarks/train_speed.py [--rounds 5] [--steps 3] [--units 1024]
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
from common import alternate, report, tf, timed_rate

from shakegen.config import PRESETS
from shakegen.model import build_model

VOCAB = 65


def train_step_for(model_call, variables):
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)

    @tf.function
    def step(inputs, targets):
        with tf.GradientTape() as tape:
            logits = model_call(inputs)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits))
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss

    return step


def tutorial_model(units: int, embedding_dim: int):
    """The TensorFlow text-generation tutorial's model, in Keras 3."""
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, embedding_dim)(inputs)
    x = keras.layers.GRU(units, return_sequences=True)(x)
    return keras.Model(inputs, keras.layers.Dense(VOCAB)(x))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="train steps per timed run")
    parser.add_argument("--units", type=int, default=PRESETS["standard"].rnn_units)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seq-length", type=int, default=100)
    args = parser.parse_args()
    config = PRESETS["standard"].replace(rnn_units=args.units)
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.integers(0, VOCAB, (args.batch_size, args.seq_length)), tf.int32)
    targets = tf.constant(rng.integers(0, VOCAB, (args.batch_size, args.seq_length)), tf.int32)

    plain = tutorial_model(config.rnn_units, config.embedding_dim)
    ours = build_model(VOCAB, config)
    steps = {
        "keras.layers.GRU (tutorial), float32": train_step_for(plain, plain.trainable_variables),
        "shakegen GRULayer (fused backward), float32": train_step_for(lambda x: ours(x)[0], ours.trainable_variables),
    }
    for step in steps.values():  # warm-up: tracing and first allocations
        step(inputs, targets)
        step(inputs, targets)

    def run(step):
        def work():
            for _ in range(args.steps):
                loss = step(inputs, targets)
            loss.numpy()

        return lambda: timed_rate(work, args.steps * args.batch_size * args.seq_length)

    print(
        f"GRU {config.rnn_units}, embedding {config.embedding_dim}, batch {args.batch_size} x {args.seq_length}; "
        f"{args.rounds} alternating rounds of {args.steps} steps"
    )
    rates = alternate({name: run(step) for name, step in steps.items()}, args.rounds)
    report(rates, "keras.layers.GRU (tutorial), float32", "chars/s")


if __name__ == "__main__":
    main()
