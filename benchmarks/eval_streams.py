"""Evaluation protocols side by side on one checkpoint: figures and seconds.

streaming, 1 stream      every character predicted from all the text before it (exact)
streaming, N streams     the default: N pieces side by side, each after a 512-character burn-in
windows of W             non-overlapping windows from a zero state covering the split
random windows of W      --samples windows at random starts (nanoGPT's estimate), seeded

The relative difference of the parallel streams from one stream is the price of their speed;
the gap between the streaming and the windowed figures is what a protocol changes.

python benchmarks/eval_streams.py --checkpoint checkpoints/quick [--data-dir data] [--window 256] [--samples 2400]
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (puts the repository on sys.path and imports TensorFlow quietly)
import numpy as np

from shakegen.data import prepare
from shakegen.runs import checkpoint
from shakegen.use import evaluate, tf_scoring


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--which", default="best", choices=("best", "last"))
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--window", type=int, default=evaluate.EVAL_WINDOW)
    parser.add_argument("--samples", type=int, default=2400, help="random windows (nanoGPT: 200 batches of 12)")
    args = parser.parse_args()
    model, _, _ = checkpoint.load_model(args.checkpoint, args.which, precision="float32")
    ids = np.asarray(prepare.load_prepared(args.data_dir).val)
    streams = tf_scoring.default_streams(len(ids) - 1)
    measures = {
        "streaming, 1 stream": lambda part: evaluate.streaming_cross_entropy(model, part, streams=1),
        f"streaming, {streams} streams": lambda part: evaluate.streaming_cross_entropy(model, part, streams=streams),
        f"windows of {args.window}": lambda part: evaluate.windowed_cross_entropy(model, part, args.window),
        f"{args.samples} random windows of {args.window}": lambda part: evaluate.windowed_cross_entropy(
            model, part, args.window, samples=args.samples, random_seed=0
        ),
    }
    print(f"{args.checkpoint} ({args.which}), val split of {len(ids):,} characters")
    part = ids[: 8 * args.window + 1]  # trace every shape first
    for count in (1, streams):
        evaluate.streaming_cross_entropy(model, part, streams=count)
    evaluate.windowed_cross_entropy(model, part, args.window)
    results = {}
    for name, measure in measures.items():
        started = time.perf_counter()
        results[name] = measure(ids)
        print(
            f"{name:<32} loss {results[name].loss:.6f} nats/char  perplexity {results[name].perplexity:.5f}  "
            f"{results[name].count:>9,} predictions  {time.perf_counter() - started:6.1f} s"
        )
    exact, fast = results["streaming, 1 stream"], results[f"streaming, {streams} streams"]
    windowed = results[f"windows of {args.window}"]
    print(f"relative difference, {streams} streams vs 1 stream: {abs(fast.loss - exact.loss) / exact.loss:.2e}")
    print(f"windows of {args.window} minus streaming (1 stream): {windowed.loss - exact.loss:+.4f} nats/char")


if __name__ == "__main__":
    main()
