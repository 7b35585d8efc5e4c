"""Generation speed at batch 1 for the `standard` (1024-unit) model, same weights, same process:

(a) the per-character ``model.predict`` on the whole window (textgenrnn, the Keras example),
(b) the TensorFlow tutorial's compiled one-step function called from a Python loop,
(c) shakegen's sampler: the seed primed at batch 1 in windows, then a compiled while loop in chunks.

With --prime, also the priming of a long seed for many samples, each way in a fresh child
process (seconds and peak memory growth):

(old) the whole seed at once, tiled to every sample, keeping every position's logits,
(new) shakegen's: the seed once at batch 1 in windows of 256 carrying the state, last logits
      only, the state then tiled to every sample.

    python benchmarks/generate_speed.py [--rounds 3] [--length 2000]
    python benchmarks/generate_speed.py --prime [--prime-length 2000] [--prime-samples 32]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import keras
import numpy as np
from common import alternate, report, tf, timed_rate

from shakegen.config import PRESETS
from shakegen.model.network import build_model
from shakegen.use.sampling import SamplingOptions
from shakegen.use.tf_sampler import Sampler

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


def prime_child(way: str, seed_length: int, samples: int) -> None:
    """In a fresh process: prime one way and print (seconds, peak memory growth in MB)."""
    ours = build_model(VOCAB, PRESETS["standard"])
    seed_ids = np.random.default_rng(0).integers(0, VOCAB, seed_length).astype(np.int32)
    whole = tf.function(lambda ids: ours(ids, training=False), reduce_retracing=True)
    sampler = Sampler(ours, SamplingOptions(temperature=0.8))

    def prime(ids, count):
        if way == "old":  # (count, time, vocab) logits and (count, time, 3 × units) projections held at once
            logits, states = whole(tf.constant(np.tile(ids[None, :], (count, 1))))
            return logits[:, -1, :], states
        logits, states = sampler.prime(ids)
        return tf.tile(logits, (count, 1)), [tf.tile(state, (count, 1)) for state in states]

    prime(seed_ids[:300], samples)  # trace, and let the allocator settle, before measuring
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    logits, _ = prime(seed_ids, samples)
    logits.numpy()
    seconds = time.perf_counter() - started
    print(seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def compare_priming(seed_length: int, samples: int) -> None:
    print(f"Priming a {seed_length:,}-character seed for {samples} samples (standard model), fresh process each:")
    figures = {}
    for way in ("old", "new"):
        command = [sys.executable, __file__, "--child-prime", way]
        command += ["--prime-length", str(seed_length), "--prime-samples", str(samples)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        figures[way] = [float(value) for value in result.stdout.split()[-2:]]
        print(f"  {way}: {figures[way][0]:7.2f} s, peak memory +{figures[way][1]:8,.0f} MB")
    print(f"  old / new: {figures['old'][0] / figures['new'][0]:.2f}x the time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--length", type=int, default=2000, help="characters for (c)")
    parser.add_argument("--tutorial-length", type=int, default=400, help="characters for (b)")
    parser.add_argument("--predict-length", type=int, default=20, help="characters for (a), it is slow")
    parser.add_argument("--prime", action="store_true", help="compare the priming of a long seed instead")
    parser.add_argument("--prime-length", type=int, default=2000, help="seed characters for --prime")
    parser.add_argument("--prime-samples", type=int, default=32, help="samples for --prime")
    parser.add_argument("--child-prime", choices=("old", "new"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_prime:
        return prime_child(args.child_prime, args.prime_length, args.prime_samples)
    if args.prime:
        return compare_priming(args.prime_length, args.prime_samples)
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
