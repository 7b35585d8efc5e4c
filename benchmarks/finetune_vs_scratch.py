"""Fine-tuning a base run against training the same architecture from scratch, at equal training minutes.

Both arms use the `quick` preset's hyperparameters with the base's architecture on the new text
with ``--max-minutes M`` (minutes of optimizer steps; validation is not counted); the fine-tuned
arm starts from the base's best weights (``--base pretrained``: the model that ships) with the
fine-tuning defaults (finetune.FINE_TUNING_DEFAULTS). For each
budget the two runs go back to back, so the shared machine's load falls on both alike.
Printed: the best streaming validation loss of each run on the new text's validation split,
what each fine-tuned run still scores on the base corpus's validation split (what it forgot),
the zero-step loss of the fine-tuned model (the base with its vocabulary extended), and a
sample of each. Results go to ``<work>/results.json`` as they come; ``--plot`` draws them.

    bible -f Gen1:1-Deu34:12 > /tmp/kjv.txt        # Debian's bible-kjv: 863,164 characters
    shakegen train --preset quick --data-dir /tmp/ft/shakespeare --run-dir /tmp/ft/base
    python benchmarks/finetune_vs_scratch.py --base /tmp/ft/base --base-data /tmp/ft/shakespeare \\
        --text /tmp/kjv.txt --work /tmp/ft --minutes 1,3,10 --plot docs/finetune.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path and imports TensorFlow quietly)

import shakegen
from shakegen.config import PRESETS
from shakegen.data import prepare
from shakegen.runs import checkpoint, names
from shakegen.training import finetune
from shakegen.training import trainer as training
from shakegen.use import evaluate

SEED_TEXT = "And God said"


def zero_step_loss(base: str, data_dir: Path, work: Path) -> float:
    """Validation loss of the fine-tuned model before its first step (the base, vocabulary extended)."""
    trainer = training._open_run(
        PRESETS["quick"], work / "zero-step", data_dir, False, {}, True, "one", lambda event: None, str(base)
    )
    with trainer.holding_run_folder(), contextlib.closing(trainer):
        trainer.begin()
        return evaluate.streaming_cross_entropy(trainer.model, trainer.val_ids).loss


def one_run(arm: str, minutes: float, args, learning_rate: float | None = None) -> dict:
    name = f"{arm}-{minutes:g}min" + (f"-lr{learning_rate:g}" if learning_rate else "")
    run_dir = Path(args.work) / (name + (f"-{args.epochs}epochs" if args.epochs else ""))
    changes = {"max_minutes": minutes, "learning_rate": learning_rate, "epochs": args.epochs}
    changes = {key: value for key, value in changes.items() if value is not None}
    architecture = checkpoint.read_run(args.base_dir).config.architecture()
    config = PRESETS["quick"].replace(**architecture, **changes)
    init_from = args.base if arm == "finetune" else None
    result = training.train(config, run_dir, args.data, overwrite=True, changes=changes, init_from=init_from)
    state = result.state
    row = {
        "arm": arm,
        "minutes": minutes,
        "learning_rate": checkpoint.read_run(run_dir).config.learning_rate,
        "epochs": config.epochs,
        "best_val_loss": state.best_val_loss,
        "steps": state.global_step,
        "training_seconds": state.elapsed_seconds,
        "stop_reason": state.stop_reason,
        "history": [(row["elapsed_seconds"] / 60, row["val_loss"]) for row in result.history],
        "run_dir": str(run_dir),
    }
    model = shakegen.load(run_dir)
    if arm == "finetune":  # the scratch run does not know every character of the base corpus
        row["base_corpus_val_loss"] = model.evaluate(split="val", data_dir=args.base_data).loss
    row["sample"] = model.generate(SEED_TEXT, length=300, temperature=0.8, random_seed=1)
    print(
        f"{arm:<9} {minutes:>4g} min  lr {row['learning_rate']:<7g} best val loss {state.best_val_loss:.4f}  "
        f"{state.global_step} steps  ({state.stop_reason})"
        + (f"  base-corpus val {row['base_corpus_val_loss']:.4f}" if "base_corpus_val_loss" in row else ""),
        flush=True,
    )
    return row


def plot(results: dict, path: Path) -> None:
    from shakegen.runs.plots import _png, _pyplot

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=110)
    colors = {"scratch": "tab:blue", "finetune": "tab:orange"}
    labels = {"scratch": "from scratch", "finetune": "fine-tuned from the Shakespeare base"}
    rows = [row for row in results["runs"] if row["learning_rate"] == results["defaults"][row["arm"]]]
    for arm in ("scratch", "finetune"):
        mine = sorted((row for row in rows if row["arm"] == arm), key=lambda row: row["training_seconds"])
        longest = mine[-1]
        curve = longest["history"]
        if arm == "finetune" and "zero_step_val_loss" in results:
            curve = [(0.0, results["zero_step_val_loss"]), *curve]
        label = f"{labels[arm]}: every validation of the {longest['training_seconds'] / 60:.0f}-minute run"
        axis.plot(*zip(*curve, strict=True), color=colors[arm], alpha=0.5, label=label)
        axis.plot(
            [row["training_seconds"] / 60 for row in mine],
            [row["best_val_loss"] for row in mine],
            "o",
            color=colors[arm],
            markersize=8,
            label=f"{labels[arm]}: best of each run, at the minutes it trained",
        )
    axis.set_xlabel("training minutes (optimizer steps only)")
    axis.set_ylabel("validation cross-entropy (nats/char)")
    axis.set_title(results["title"], fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    path.write_bytes(_png(figure))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="The base run folder (e.g. quick on Tiny Shakespeare).")
    parser.add_argument("--base-data", required=True, help="The base's prepared corpus (for what it forgot).")
    parser.add_argument("--text", required=True, help="The new text (prepared into <work>/data).")
    parser.add_argument("--work", default="/tmp/shakegen-finetune")
    parser.add_argument("--minutes", default="1,3,10")
    parser.add_argument("--learning-rates", default="", help="Fine-tuning rates to compare too, e.g. 3e-3,3e-4.")
    parser.add_argument("--sweep-minutes", type=float, default=3.0, help="Budget of the learning-rate comparison.")
    parser.add_argument("--epochs", type=int, default=None, help="Epochs of both arms. [default: the preset's]")
    parser.add_argument("--append", action="store_true", help="Add to <work>/results.json instead of starting it over.")
    parser.add_argument("--plot", default=None)
    parser.add_argument("--plot-only", action="store_true", help="Redraw the plot from results.json.")
    parser.add_argument("--title", default=None, help="The plot's title. [default: the text's file name, its size]")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    args.data = work / "data"
    out = work / "results.json"
    if args.plot_only:
        results = json.loads(out.read_text())
        results["title"] = args.title or results["title"]
        plot(results, Path(args.plot))
        return
    if not prepare.is_prepared(args.data):
        prepare.prepare_corpus(args.text, args.data)
    data = prepare.load_prepared(args.data)
    args.base_dir = names.resolve_run(args.base)  # a run folder, or the bundle for "pretrained"
    base_info = checkpoint.read_run(args.base_dir)
    added = sorted(set(data.vocab.chars) - set(base_info.vocab.chars))
    results = {
        "processor": common.processor_description(),
        "text": str(args.text),
        "characters": data.meta["characters"],
        "new_characters": added,
        "base": str(args.base),
        "base_val_loss": checkpoint.read_state(args.base_dir / "best.npz").get("val_loss"),
        "defaults": {
            "scratch": PRESETS["quick"].learning_rate,
            "finetune": finetune.FINE_TUNING_DEFAULTS["learning_rate"],
        },
        "runs": json.loads(out.read_text())["runs"] if args.append and out.is_file() else [],
    }
    print(f"{results['processor']}; {data.meta['characters']:,} characters, new to the base: {''.join(added)}")
    results["zero_step_val_loss"] = zero_step_loss(args.base, args.data, work)
    print(f"fine-tuned model before any step: val loss {results['zero_step_val_loss']:.4f}", flush=True)
    for minutes in (float(value) for value in args.minutes.split(",")):
        for arm in ("scratch", "finetune"):
            results["runs"].append(one_run(arm, minutes, args))
            out.write_text(json.dumps(results, indent=1))
    for rate in (float(value) for value in args.learning_rates.split(",") if value):
        results["runs"].append(one_run("finetune", args.sweep_minutes, args, learning_rate=rate))
        out.write_text(json.dumps(results, indent=1))
    results["title"] = args.title or (
        f"{Path(args.text).name} ({data.meta['characters']:,} characters), quick preset; "
        f"{', '.join(results['processor'].split(', ')[:2])}"
    )
    out.write_text(json.dumps(results, indent=1))
    print("\n| --max-minutes | epochs | minutes trained | from scratch | fine-tuned | fine-tuned, on the base corpus |")
    print("|---:|---:|---:|---:|---:|---:|")
    for minutes, epochs in sorted({(row["minutes"], row.get("epochs", 10)) for row in results["runs"]}):
        pair = {
            row["arm"]: row
            for row in results["runs"]
            if (row["minutes"], row.get("epochs", 10)) == (minutes, epochs)
            and row["learning_rate"] == results["defaults"][row["arm"]]
        }
        if len(pair) == 2:
            used = " / ".join(f"{pair[arm]['training_seconds'] / 60:.1f}" for arm in ("scratch", "finetune"))
            print(
                f"| {minutes:g} | {epochs} | {used} | {pair['scratch']['best_val_loss']:.4f} | "
                f"{pair['finetune']['best_val_loss']:.4f} | {pair['finetune']['base_corpus_val_loss']:.4f} "
                f"(base: {results['base_val_loss']:.4f}) |"
            )
    print(f"\nuniform guess: ln {len(data.vocab)} = {math.log(len(data.vocab)):.4f}")
    for row in results["runs"]:
        print(f"\n--- {row['arm']}, {row['minutes']:g} min, lr {row['learning_rate']:g}:\n{row['sample']}")
    if args.plot:
        plot(results, Path(args.plot))


if __name__ == "__main__":
    main()
