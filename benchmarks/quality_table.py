"""README's "What quality to expect" table: each run's best weights scored under both protocols.

    python benchmarks/quality_table.py tiny=checkpoints/tiny quick=checkpoints/quick \
        large=checkpoints/large pretrained=pretrained --samples

For each NAME=RUN (a run folder, or ``pretrained``): streaming and windowed (256, zero state)
validation loss of the best weights on the embedded corpus's split, perplexity and bits per
character of the streaming figure, parameters, and the training minutes at the best epoch as the
run's history.csv records them. ``--samples`` adds a short sample from each at the same
temperature and random seed. Prints Markdown.
"""

from __future__ import annotations

import argparse
import math

import common  # noqa: F401  (quiet TensorFlow)

import shakegen
from shakegen.machine import processor_description
from shakegen.runs import checkpoint


def row(name: str, run: str, data_dir: str) -> dict:
    model = shakegen.load(run)
    streaming = model.evaluate(split="val", data_dir=data_dir)
    windows = model.evaluate(split="val", data_dir=data_dir, protocol="windows", window=256)
    history = checkpoint.read_history(model.run_dir)
    best = min(history, key=lambda entry: entry["val_loss"]) if history else {}
    return {
        "name": name,
        "run": str(model.run_dir),
        "streaming": streaming.loss,
        "windows": windows.loss,
        "perplexity": streaming.perplexity,
        "bits": streaming.bits_per_character,
        "parameters": model.info.parameters,
        "epoch": best.get("epoch"),
        "minutes": best.get("elapsed_seconds", math.nan) / 60,
        "precision": model.config.precision,
        "model": model,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR (or NAME=pretrained)")
    parser.add_argument("--data-dir", default="data", help="prepared embedded corpus (else scored in memory)")
    parser.add_argument("--samples", action="store_true", help="also print a sample from each run")
    parser.add_argument("--seed", default="ROMEO:")
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--random-seed", type=int, default=7)
    args = parser.parse_args()
    rows = [row(*spec.split("=", 1), args.data_dir) for spec in args.runs]
    print(f"processor: {processor_description()}\n")
    print("| run | streaming | windows of 256 | perplexity | bits/char | parameters | best epoch | training minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['streaming']:.4f} | {r['windows']:.4f} | {r['perplexity']:.3f} | {r['bits']:.3f} | "
            f"{r['parameters']:,} | {r['epoch']:g} | {r['minutes']:.1f} ({r['precision']}) |"
        )
    if args.samples:
        for r in rows:
            text = r["model"].generate(
                args.seed, length=args.length, temperature=args.temperature, random_seed=args.random_seed
            )
            print(
                f"\n{r['name']} (temperature {args.temperature}, --random-seed {args.random_seed}):\n\n```\n{text}\n```"
            )


if __name__ == "__main__":
    main()
