"""Which recurrent initialiser trains better on Tiny Shakespeare: orthogonal or Glorot uniform?

Trains the `quick` model with each initialiser for the same number of epochs and the same
seeds (so no timing noise enters: equal steps, equal data order), and prints the best
streaming validation loss of each run and the mean per initialiser.

    python benchmarks/recurrent_init.py [--epochs 2] [--seeds 1,2] [--out /tmp/shakegen-init]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path and imports TensorFlow quietly)

from shakegen.config import PRESETS
from shakegen.training.trainer import train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--out", default="/tmp/shakegen-init")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"orthogonal": [], "glorot_uniform": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        for initializer in results:  # alternate per seed
            config = PRESETS["quick"].replace(epochs=args.epochs, recurrent_initializer=initializer, random_seed=seed)
            result = train(config, Path(args.out) / f"{initializer}-{seed}", args.data_dir, overwrite=True)
            best = result.state.best_val_loss
            results[initializer].append(best)
            print(f"seed {seed}  {initializer:<15} best val loss {best:.4f}", flush=True)
    for initializer, losses in results.items():
        print(f"{initializer:<15} mean best val loss {statistics.mean(losses):.4f} over seeds {args.seeds}")


if __name__ == "__main__":
    main()
