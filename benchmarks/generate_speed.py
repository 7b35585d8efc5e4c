"""Generation speed at batch 1 for the `standard` (1024-unit) model, same weights, same process:

(a) the per-character ``model.predict`` on the whole window (textgenrnn, the Keras example),
(b) the TensorFlow tutorial's compiled one-step function called from a Python loop,
(c) shakegen's sampler: the seed primed in one pass, then a compiled while loop in chunks.

    python benchmarks/generate_speed.py [--rounds 3] [--length 2000]
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
from common import alternate, report, tf, timed_rate

from shakegen.config import PRESETS
from shakegen.model import build_model
from shakegen.sampling import Sampler, SamplingOptions

VOCAB = 65
WINDOW = 100


def keras_copy(ours, config):
    """A plain Keras model (Embedding → keras.layers.GRU → Dense) holding our weights."""
    inputs = keras.Input((None,), dtype="int32")
    state_in = keras.Input((config.rnn_units,))
    x = keras.layers.Embedding(VOCAB, config.embedding_dim)(inputs)
    x, state = keras.layers.GRU(config.rnn_units, return_sequences=True, return_state=True)(x, initial_state=state_in)
    logits = keras.layers.Dense(VOCAB)(x)
    model = keras.Model([inputs, state_in], [logits, state])
    model.set_weights([w.numpy() for w in ours.weights])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--length", type=int, default=2000, help="characters for (c)")
    parser.add_argument("--tutorial-length", type=int, default=400, help="characters for (b)")
    parser.add_argument("--predict-length", type=int, default=20, help="characters for (a), it is slow")
    args = parser.parse_args()
    config = PRESETS["standard"]
    ours = build_model(VOCAB, config)
    plain = keras_copy(ours, config)
    rng = np.random.default_rng(0)
    seed_ids = rng.integers(0, VOCAB, WINDOW).astype(np.int32)
    zero_state = np.zeros((1, config.rnn_units), np.float32)

    def predict_loop():  # (a): the whole window through model.predict for every character
        window = list(seed_ids)
        for _ in range(args.predict_length):
            logits, _ = plain.predict([np.array([window[-WINDOW:]]), zero_state], verbose=0)
            window.append(int(tf.random.categorical(logits[:, -1, :] / 0.8, 1)[0, 0]))

    @tf.function
    def one_step(ids, state):  # (b): the tutorial's OneStep
        logits, state = plain([ids, state])
        chosen = tf.random.categorical(logits[:, -1, :] / 0.8, 1)
        return chosen, state

    def tutorial_loop():
        logits, state = plain([np.array([seed_ids]), zero_state])
        ids = tf.random.categorical(logits[:, -1, :] / 0.8, 1)
        for _ in range(args.tutorial_length):
            ids, state = one_step(ids, state)
        ids.numpy()

    sampler = Sampler(ours, SamplingOptions(temperature=0.8))

    def ours_loop():
        for _ in sampler.sample(seed_ids, args.length, 1, random_seed=0):
            pass

    for work in (predict_loop, tutorial_loop, ours_loop):  # warm-up
        work()
    runs = {
        "(a) model.predict per character": lambda: timed_rate(predict_loop, args.predict_length),
        "(b) tutorial one-step from Python": lambda: timed_rate(tutorial_loop, args.tutorial_length),
        "(c) shakegen compiled sampler": lambda: timed_rate(ours_loop, args.length),
    }
    print(f"GRU {config.rnn_units}, embedding {config.embedding_dim}, batch 1; {args.rounds} alternating rounds")
    rates = alternate(runs, args.rounds)
    report(rates, "(b) tutorial one-step from Python", "chars/s")
    a = np.median(rates["(a) model.predict per character"])
    c = np.median(rates["(c) shakegen compiled sampler"])
    print(f"(c) / (a): {c / a:,.0f}x")


if __name__ == "__main__":
    main()
