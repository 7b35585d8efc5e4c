"""Building the pretrained bundle from a finished run: float16 weights, portable files, a card.

The bundle is a run folder like any other (``config.json``, ``best.npz``, ``history.csv``) whose
weights are stored in float16 to keep the package small, plus ``pretrained.json`` (its card):
the command that trained it, the date and processor of the build, the training minutes at the
best epoch, and its validation loss on the embedded corpus under both protocols, evaluated from
the float16 weights as they ship (float32 arithmetic). Where it lives and how it is read:
``shakegen.runs.pretrained``.

    python -m shakegen.exports.bundle RUN_DIR --command "shakegen train ..."
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from shakegen import fileio, machine
from shakegen.errors import CheckpointError
from shakegen.runs import archive, checkpoint
from shakegen.runs.pretrained import BUNDLE_DIR, CARD_FILE, MAX_BYTES, STORAGE_TOLERANCE, portable_run_config
from shakegen.use import evaluate, scored_text


def float16_arrays(path: Path) -> dict[str, np.ndarray]:
    """A checkpoint's weights in float16 and its training state, without the optimizer's variables."""
    weights = checkpoint.read_weights(path)
    arrays = {f"weights/{name}": value.astype(np.float16) for name, value in weights.items()}
    arrays["state"] = np.frombuffer(json.dumps(checkpoint.read_state(path)).encode("utf-8"), dtype=np.uint8)
    return arrays


def validation_figures(run_dir: Path, which: str = "best") -> dict[str, float]:
    """Validation loss of a run on the embedded corpus's split, streaming and in windows of 256."""

    model, info, _ = checkpoint.load_model(run_dir, which, precision="float32")
    ids = scored_text.evaluation_ids(info, split="val", data_dir=None).ids
    return {
        protocol: evaluate.cross_entropy(model, ids, evaluate.Protocol(protocol, 256)).loss
        for protocol in ("streaming", "windows")
    }


def build(run_dir: Path, out_dir: Path, command: str, which: str = "best") -> dict:
    """Write the bundle for ``run_dir``'s ``which`` weights into ``out_dir``; return its card.

    Raises:
        CheckpointError: not a run trained on the embedded corpus, a bundle over ``MAX_BYTES``,
            or float16 storage moving the validation loss by ``STORAGE_TOLERANCE`` or more.
    """

    info = checkpoint.read_run(run_dir)
    if scored_text.embedded_corpus_text(info) is None:
        raise CheckpointError(f"{run_dir} was not trained on the embedded Tiny Shakespeare; the bundle must be.")
    if out_dir.exists() and not (out_dir / CARD_FILE).is_file():
        raise CheckpointError(f"{out_dir} exists and is not a pretrained bundle; choose another --out.")
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        values = _fill(staging, run_dir, info, command, which)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return values


def _fill(staging: Path, run_dir: Path, info, command: str, which: str) -> dict:
    # The run's config names its corpus by the path it was prepared from: the bundle names it by file name.
    raw = fileio.read_json(run_dir / checkpoint.CONFIG_FILE)
    fileio.write_json(staging / checkpoint.CONFIG_FILE, portable_run_config(raw))
    shutil.copy2(run_dir / checkpoint.HISTORY_FILE, staging / checkpoint.HISTORY_FILE)
    archive.write_snapshot(staging / checkpoint.BEST_FILE, float16_arrays(checkpoint.checkpoint_path(run_dir, which)))
    stored = validation_figures(staging)
    original = validation_figures(run_dir, which)
    moved = max(abs(stored[name] - original[name]) for name in stored)
    if moved >= STORAGE_TOLERANCE:
        raise CheckpointError(f"float16 storage moves the validation loss by {moved:.5f} nats; keep float32.")
    state = checkpoint.read_state(staging / checkpoint.BEST_FILE)
    reached = checkpoint.read_history(run_dir, up_to_step=state.get("step"))
    values = {
        "command": command,
        "source_run": run_dir.resolve().name,  # the folder it was built from, by name (a local path means nothing elsewhere)
        "which": which,
        "built": datetime.date.today().isoformat(),
        "built_on": machine.processor_description(),
        "storage": "float16",
        "parameters": info.parameters,
        "epoch": state.get("epoch"),
        "training_minutes": round(reached[-1]["elapsed_seconds"] / 60, 1) if reached else None,
        "val_loss_streaming": stored["streaming"],
        "val_loss_windows_256": stored["windows"],
        "val_loss_streaming_float32_weights": original["streaming"],
        "val_loss_windows_256_float32_weights": original["windows"],
    }
    fileio.write_json(staging / CARD_FILE, values)
    size = sum(path.stat().st_size for path in staging.iterdir())
    if size > MAX_BYTES:
        raise CheckpointError(f"The bundle is {size / 2**20:.1f} MiB; at most {MAX_BYTES / 2**20:.0f} MiB ship.")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the bundled pretrained model from a finished run.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--command", required=True, help="the exact command that trained the run (for the card)")
    parser.add_argument("--which", choices=checkpoint.WHICH, default="best")
    parser.add_argument("--out", type=Path, default=None, help="default: the package's pretrained_model/")
    args = parser.parse_args(argv)
    from shakegen.model.backend import import_tensorflow

    import_tensorflow()
    values = build(args.run_dir, args.out or BUNDLE_DIR, args.command, args.which)
    json.dump(values, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
