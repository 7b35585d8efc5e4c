"""How far the parallel-stream evaluation is from one exact stream, and how much faster it is.

python benchmarks/eval_streams.py --checkpoint checkpoints/quick [--data-dir data]
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (puts the repository on sys.path and imports TensorFlow quietly)
import numpy as np

from shakegen import checkpoint, evaluate, prepare


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    model, _, _ = checkpoint.load_model(args.checkpoint, "best")
    ids = np.asarray(prepare.load_prepared(args.data_dir).val)
    results = {}
    for streams in (1, evaluate.default_streams(len(ids) - 1)):
        evaluate.streaming_cross_entropy(model, ids[:2000], streams=streams)  # trace first
        started = time.perf_counter()
        results[streams] = evaluate.streaming_cross_entropy(model, ids, streams=streams)
        print(
            f"{streams:>2} stream(s): loss {results[streams].loss:.6f} nats/char, "
            f"perplexity {results[streams].perplexity:.5f}, {time.perf_counter() - started:.1f} s"
        )
    exact, fast = results[1], results[max(results)]
    print(f"relative difference of the loss: {abs(fast.loss - exact.loss) / exact.loss:.2e}")


if __name__ == "__main__":
    main()
