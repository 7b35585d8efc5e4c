"""How often the NumPy engine and TensorFlow, fed the same counter noise, sample the same text.

(greedy)  the pretrained model's greedy text from the engine and from TensorFlow's sampler
          (``sampling.Sampler``, no noise involved), ``--greedy-length`` characters.
(sampled) ``--seeds`` random seeds × ``--length`` characters at ``--temperature`` (and top-k /
          top-p when given): the engine against a compiled TensorFlow loop over the same model
          (``model.step_function``, ``sampling.filter_logits``) drawing ``noise.gumbel_tf``, the
          noise the TensorFlow sampler and the SavedModel are to draw. Both run the seeds as one
          batch (row i has random seed + i). For every text that differs: where it first
          differs, and the gap between the two characters' scores there (logits / T + Gumbel,
          from the engine fed the common prefix): a float near-tie when it is tiny.

    python benchmarks/engine_agreement.py [--seeds 100] [--length 500] [--greedy-length 2000]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import processor_description, tf

from shakegen import engine, inference, noise, pretrained, sampling
from shakegen.model import step_function

SEED = "ROMEO:"
CHUNK = 64


def tensorflow_samples(model, seed_ids, length, keys, temperature, top_k, top_p) -> np.ndarray:
    """(len(keys), length) ids from a compiled loop: Gumbel-max on ``noise.gumbel_tf``."""
    step = step_function(model)
    vocab = model.vocab_size
    logits, states = model(tf.constant(np.asarray(seed_ids, np.int32)[None, :]), training=False)
    batch = len(keys)
    logits = tf.tile(logits[:, -1, :], (batch, 1))
    states = [tf.tile(state, (batch, 1)) for state in states]

    @tf.function
    def chunk(logits, states, keys, start):
        gumbel = noise.gumbel_tf(keys, tf.range(start, start + CHUNK), vocab)  # (batch, CHUNK, vocab)
        chosen = []
        for t in range(CHUNK):
            shifted = logits - tf.reduce_max(logits, axis=-1, keepdims=True)
            filtered = sampling.filter_logits(shifted / temperature, top_k, top_p)
            ids = tf.argmax(filtered + gumbel[:, t], axis=-1, output_type=tf.int32)
            chosen.append(ids)
            logits, states = step(ids, states)
        return tf.stack(chosen, axis=1), logits, states

    blocks = []
    for start in range(0, length, CHUNK):
        ids, logits, states = chunk(logits, states, tf.constant(keys), tf.constant(start, tf.int64))
        blocks.append(ids.numpy())
    return np.concatenate(blocks, axis=1)[:, :length]


def gap_at(loaded, seed_ids, prefix, position, key, options, pair) -> float:
    """|score(a) - score(b)| at ``position`` for the engine fed ``prefix``: how near the tie is."""
    temperature, top_k, top_p = options
    context = loaded.prime(np.concatenate([seed_ids, prefix]).astype(np.intp))
    shifted = context.logits - context.logits.max(axis=-1, keepdims=True)
    scores = engine.filter_logits(shifted / np.float32(temperature), top_k, top_p)
    scores = scores + noise.gumbel_numpy(np.array([key], np.uint32), [position], loaded.vocab_size)[:, 0]
    return float(abs(scores[0, pair[0]] - scores[0, pair[1]]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--greedy-length", type=int, default=2000)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    run_dir = pretrained.BUNDLE_DIR
    loaded, info, _ = engine.load(run_dir)
    model, _, _ = inference.load_model(run_dir)
    seed_ids = info.vocab.encode(SEED)
    print(f"processor: {processor_description()}; the pretrained model, seed {SEED!r}")

    ours = np.concatenate(list(loaded.sample(seed_ids, args.greedy_length, temperature=0)), axis=1)[0]
    sampler = sampling.Sampler(model, sampling.SamplingOptions(temperature=0))
    theirs = np.concatenate(list(sampler.sample(seed_ids, args.greedy_length, 1, 0)), axis=1)[0]
    differ = np.flatnonzero(ours != theirs)
    verdict = "identical" if not len(differ) else f"first differs at character {differ[0]}"
    print(f"greedy, {args.greedy_length} characters: {verdict}")

    options = (args.temperature, args.top_k, args.top_p)
    keys = noise.sample_keys(args.first_seed, args.seeds)
    ours = np.concatenate(
        list(
            loaded.sample(
                seed_ids,
                args.length,
                num_samples=args.seeds,
                random_seed=args.first_seed,
                temperature=args.temperature,
                top_k=args.top_k,
                top_p=args.top_p,
            )
        ),
        axis=1,
    )
    theirs = tensorflow_samples(model, seed_ids, args.length, keys, *options)
    same = [np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True)]
    print(
        f"sampled at T={args.temperature}, top-k {args.top_k}, top-p {args.top_p}: {sum(same)} of {args.seeds} "
        f"texts of {args.length} characters identical ({sum(same) / args.seeds:.0%})"
    )
    for row in np.flatnonzero(~np.array(same)):
        position = int(np.flatnonzero(ours[row] != theirs[row])[0])
        pair = (int(ours[row, position]), int(theirs[row, position]))
        gap = gap_at(loaded, seed_ids, ours[row, :position], position, int(keys[row]), options, pair)
        print(
            f"  random seed {args.first_seed + row}: first differs at character {position} "
            f"({info.vocab.decode([pair[0]])!r} against {info.vocab.decode([pair[1]])!r}), score gap {gap:.2e}"
        )


if __name__ == "__main__":
    main()
