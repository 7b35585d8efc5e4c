"""How often the NumPy engine (behind ``shakegen generate``) and the exported SavedModel give the same text.

Both draw the same counter-based noise (``shakegen.use.noise``); they can only differ where two
characters' scores are a float near-tie, because NumPy and TensorFlow round the logits' last
bits differently.

(greedy)  the run's greedy text after the seed, ``--greedy-length`` characters (2,000), from the
          engine (``shakegen.load(run, engine="numpy").generate``) and from the SavedModel's
          ``generate`` signature (the run exported with ``shakegen.exports.savedmodel.export_run``).
(sampled) ``--seeds`` random seeds (100) × ``--length`` characters (500) at ``--temperature``
          (and top-k / top-p when given): the fraction of texts identical between the two, and
          for every text that differs, where it first differs and the gap between the two
          characters' scores there (logits / T + Gumbel, from the engine fed the common prefix):
          a float near-tie when it is tiny.

    python benchmarks/engine_agreement.py [--run pretrained] [--seeds 100] [--length 500] [--greedy-length 2000]
    python benchmarks/engine_agreement.py --seeds 3 --length 50 --greedy-length 100      # a smoke run
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import processor_description, tf

import shakegen
from shakegen.exports import savedmodel as export
from shakegen.use import noise
from shakegen.use.logits import filter_logits

SEED = "ROMEO:"


def gap_at(loaded, seed_ids, prefix, position, key, options, pair) -> float:
    """|score(a) - score(b)| at ``position`` for the engine fed ``prefix``: how near the tie is."""
    temperature, top_k, top_p = options
    context = loaded.prime(np.concatenate([seed_ids, prefix]).astype(np.intp))
    if temperature == 0:
        scores = context.logits
    else:
        shifted = context.logits - context.logits.max(axis=-1, keepdims=True)
        scores = filter_logits(shifted / np.float32(temperature), top_k, top_p)
        scores = scores + noise.gumbel_numpy(np.array([key], np.uint32), [position], loaded.vocab_size)[:, 0]
    return float(abs(scores[0, pair[0]] - scores[0, pair[1]]))


def savedmodel_text(saved, length, temperature, top_k, top_p, random_seed) -> str:
    return (
        saved.signatures["generate"](
            seed=tf.constant(SEED),
            length=tf.constant(length, tf.int32),
            temperature=tf.constant(temperature, tf.float32),
            top_k=tf.constant(top_k or 0, tf.int32),
            top_p=tf.constant(1.0 if top_p is None else top_p, tf.float32),
            random_seed=tf.constant(random_seed, tf.int64),
        )["text"]
        .numpy()
        .decode("utf-8")
    )


def compare(model, seed_ids, ours: str, theirs: str, random_seed: int, options) -> str:
    """'identical', or where the texts first differ and the score gap there."""
    if ours == theirs:
        return "identical"
    vocab = model.info.vocab
    position = next(index for index, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b)
    pair = (int(vocab.encode(ours[position])[0]), int(vocab.encode(theirs[position])[0]))
    prefix = vocab.encode(ours[:position])
    gap = gap_at(model.engine, seed_ids, prefix, position, random_seed % 2**32, options, pair)
    return (
        f"first differs at character {position} ({ours[position]!r} against {theirs[position]!r}), score gap {gap:.2e}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="pretrained", help="run folder, or 'pretrained' (the default)")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--greedy-length", type=int, default=2000)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()
    model = shakegen.load(args.run, engine="numpy")
    seed_ids = model.info.vocab.encode(SEED)
    print(f"processor: {processor_description()}; run {model.run_dir.name}, seed {SEED!r}")
    with tempfile.TemporaryDirectory() as folder:
        export.export_run(model.run_dir, Path(folder) / "saved", model.which)
        saved = tf.saved_model.load(str(Path(folder) / "saved"))

        ours = model.generate(SEED, length=args.greedy_length, temperature=0)[len(SEED) :]
        theirs = savedmodel_text(saved, args.greedy_length, 0.0, None, None, 0)
        print(f"greedy, {args.greedy_length} characters: {compare(model, seed_ids, ours, theirs, 0, (0, None, None))}")

        options = (args.temperature, args.top_k, args.top_p)
        ours = model.generate(
            SEED,
            length=args.length,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            num_samples=args.seeds,
            random_seed=args.first_seed,
        )  # sample i has random seed first + i
        verdicts = []
        for index, text in enumerate(ours):
            random_seed = (args.first_seed + index) % 2**32
            theirs = savedmodel_text(saved, args.length, *options, random_seed)
            verdicts.append((random_seed, compare(model, seed_ids, text[len(SEED) :], theirs, random_seed, options)))
    same = sum(verdict == "identical" for _, verdict in verdicts)
    print(
        f"sampled at T={args.temperature}, top-k {args.top_k}, top-p {args.top_p}: {same} of {args.seeds} texts of "
        f"{args.length} characters identical between the engine and the SavedModel ({same / args.seeds:.0%}); "
        f"{args.seeds - same} differ"
    )
    for random_seed, verdict in verdicts:
        if verdict != "identical":
            print(f"  random seed {random_seed}: {verdict}")


if __name__ == "__main__":
    main()
