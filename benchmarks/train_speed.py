"""Training speed: characters per second of shakegen's cells, and of the TensorFlow tutorial's
plain Keras model of the same size, in the same process, after warm-up, alternating.

Default: the `standard` model, Embedding(65, 256) → GRU(1024) → Dense(65), float32, batch 64,
sequence 100, Adam, cross-entropy from logits; one compiled train step each (tf.function), on
the same batches. shakegen's `gru` and the tutorial's GRU compute the same function
(tests/test_cells.py checks outputs and gradients), so equal characters mean equal loss.

With ``--cell classic,gru1,gru2,gru3`` those cells run too, each at the same size, and are
reported against shakegen's `gru` (which always runs), with each cell's FLOPs per character
relative to `gru`'s, so a ratio can be read against what its equations cost. With
``--autodiff`` each cell also runs with its time loop left to TensorFlow's autodiff (the
recurrence of tests/test_cells.py), which is how every cell but `gru` trained before the
hand-written backward pass covered them all.

    python benchmarks/train_speed.py [--cell gru1,gru3] [--no-tutorial] [--autodiff] [--rounds 5] [--steps 3]
        [--units 1024] [--num-layers 1] [--precision float32] [--rnn-kernel fused]
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
from common import alternate, report, tf, timed_rate

from shakegen.config import CELLS, PRECISIONS, PRESETS, RNN_KERNELS
from shakegen.model import fused_loop
from shakegen.model.network import build_model

VOCAB = 65
TUTORIAL = "keras.layers.GRU (tutorial)"


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


def tutorial_model(units: int, embedding_dim: int, num_layers: int):
    """The TensorFlow text-generation tutorial's model, in Keras 3."""
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, embedding_dim)(inputs)
    for _ in range(num_layers):
        x = keras.layers.GRU(units, return_sequences=True)(x)
    return keras.Model(inputs, keras.layers.Dense(VOCAB)(x))


def recurrent_flops(cell: str, units: int) -> int:
    """Multiply-adds ×2 per character of one layer's recurrent products, forward and backward.

    Forward: h U (3u² for the gru family, u² for gru3, whose gates read no state). Backward:
    the same product again for dh and once more for the kernel's gradient.
    """
    per_step = (units * units if cell == "gru3" else 3 * units * units) * 2
    return 3 * per_step


def flops_per_character(cell: str, config) -> int:
    """Training FLOPs per character that depend on the cell: the recurrent products of every
    layer and the input products of layers after the first (the first is a table lookup),
    plus the output layer (the same for every cell)."""
    u = config.rnn_units
    input_width = 3 * u if cell in ("gru", "classic") else u
    deeper_inputs = (config.num_layers - 1) * 3 * (2 * u * input_width)
    return config.num_layers * recurrent_flops(cell, u) + deeper_inputs + 3 * 2 * u * VOCAB


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="", help="comma-separated cells to time besides gru, e.g. classic,gru1")
    parser.add_argument("--no-tutorial", action="store_true", help="skip the tutorial's Keras model")
    parser.add_argument("--autodiff", action="store_true", help="also time each cell with autodiff's backward pass")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="train steps per timed run")
    parser.add_argument("--units", type=int, default=PRESETS["standard"].rnn_units)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seq-length", type=int, default=100)
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--rnn-kernel", choices=RNN_KERNELS, default="fused")
    args = parser.parse_args()
    cells = ["gru"] + [cell for cell in args.cell.split(",") if cell and cell != "gru"]
    unknown = [cell for cell in cells if cell not in CELLS]
    if unknown:
        parser.error(f"unknown cell(s) {', '.join(unknown)}; expected some of {', '.join(CELLS)}")
    config = PRESETS["standard"].replace(
        rnn_units=args.units,
        num_layers=args.num_layers,
        precision=args.precision,
        rnn_kernel=args.rnn_kernel,
        batch_size=args.batch_size,
        seq_length=args.seq_length,
    )
    rng = np.random.default_rng(0)
    inputs = tf.constant(rng.integers(0, VOCAB, (args.batch_size, args.seq_length)), tf.int32)
    targets = tf.constant(rng.integers(0, VOCAB, (args.batch_size, args.seq_length)), tf.int32)

    steps = {}
    autodiff = set()  # the steps to trace with autodiff's backward pass
    if not args.no_tutorial:
        plain = tutorial_model(config.rnn_units, config.embedding_dim, config.num_layers)
        steps[f"{TUTORIAL}, float32"] = train_step_for(plain, plain.trainable_variables)
    for cell in cells:
        for backward in ("fused", "autodiff") if args.autodiff else ("fused",):
            model = build_model(VOCAB, config.replace(cell=cell))
            kernel = model.rnn_layers[0].kernel_in_use
            name = f"shakegen {cell} ({kernel if backward == 'fused' else 'autodiff'}), {args.precision}"
            steps[name] = train_step_for(lambda x, model=model: model(x)[0], model.trainable_variables)
            if backward == "autodiff":
                autodiff.add(name)
    fused_sequence = fused_loop.fused_sequence
    for name, step in steps.items():  # warm-up: tracing (which fixes the backward pass) and first allocations
        if name in autodiff:
            from tests.test_cells import autodiff_sequence

            fused_loop.fused_sequence = autodiff_sequence
        step(inputs, targets)
        fused_loop.fused_sequence = fused_sequence
        step(inputs, targets)

    def run(step):
        def work():
            for _ in range(args.steps):
                loss = step(inputs, targets)
            loss.numpy()

        return lambda: timed_rate(work, args.steps * args.batch_size * args.seq_length)

    print(
        f"{args.num_layers} x GRU {config.rnn_units}, embedding {config.embedding_dim}, "
        f"batch {args.batch_size} x {args.seq_length}, {args.precision}; "
        f"{args.rounds} alternating rounds of {args.steps} steps"
    )
    rates = alternate({name: run(step) for name, step in steps.items()}, args.rounds)
    reference = next(name for name in steps if name.startswith("shakegen gru ") and name not in autodiff)
    report(rates, reference, "chars/s")
    if len(cells) > 1:
        base = flops_per_character("gru", config)
        print("FLOPs per character that depend on the cell, relative to gru (so the ratio speed allows):")
        for cell in cells:
            print(f"  {cell:<8} {flops_per_character(cell, config) / base:.2f}")


if __name__ == "__main__":
    main()
