"""Training speed of preset variants, as ratios in one process: is a quality lever worth its time?

    python benchmarks/preset_speed.py --preset quick --variant batch_size=32 --variant batch_size=32,dropout=0.1

Each configuration builds its model, optimizer and compiled step exactly as `shakegen train`
does, then the configurations take turns (rounds of --steps steps on the same random
batches), and the median per-round characters/s ratio against the preset itself is printed.
Ratios, not absolute speeds: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse

from common import (  # benchmarks/common.py: quiet TensorFlow, medians
    alternate,
    processor_description,
    report,
    tf,
    timed_rate,
)


def parse_variant(text: str) -> dict:
    changes = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        for kind in (int, float):
            try:
                changes[name.strip()] = kind(value)
                break
            except ValueError:
                continue
        else:
            changes[name.strip()] = {"true": True, "false": False}.get(value.lower(), value)
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--variant", action="append", default=[], help="field=value[,field=value...]")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    import keras
    import numpy as np

    from shakegen.config import PRESETS
    from shakegen.model.network import build_model
    from shakegen.training.step import carried_states, make_train_step

    base = PRESETS[args.preset]
    configs = {args.preset: base} | {variant: base.replace(**parse_variant(variant)) for variant in args.variant}
    strategy = tf.distribute.get_strategy()
    runs = {}
    for name, config in configs.items():
        keras.utils.set_random_seed(config.random_seed)
        model = build_model(65, config)
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        optimizer.build(model.trainable_variables)
        step = make_train_step(model, optimizer, config, strategy, carried_states(model, config))
        rng = np.random.default_rng(0)
        batch = [tf.constant(rng.integers(0, 65, (config.batch_size, config.seq_length)), tf.int32) for _ in range(2)]
        float(step(batch))  # compile outside the timing

        def work(step=step, batch=batch):
            for _ in range(args.steps):
                loss = step(batch)
            float(loss)

        runs[name] = lambda work=work, config=config: timed_rate(
            work, config.batch_size * config.seq_length * args.steps
        )
    print(f"processor: {processor_description()}; {args.rounds} rounds of {args.steps} steps")
    report(alternate(runs, args.rounds), args.preset, "chars/s")


if __name__ == "__main__":
    main()
