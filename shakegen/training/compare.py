"""Side-by-side comparison of GRU variants: same data, same seeds, same budget per cell.

The budget is training minutes (a race: speed counts) or training characters (about the
equations: every cell sees the same text). With several random seeds each cell is trained
once per seed, and the table gives the mean and range of the best validation loss, so a
difference can be read against the seed-to-seed noise.

Each (cell, seed) trains in its own run folder under the output folder, so a comparison
resumes: a run that already finished is not trained again, one that was interrupted resumes.
Only a run whose recorded settings (every field of its TrainConfig, budget included, and the
corpus's SHA-256) are those asked is reused or resumed; any other is refused before anything
is trained, unless ``overwrite`` asks to train it again from scratch.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import statistics
from pathlib import Path

from shakegen import fileio
from shakegen.config import CELLS, MAX_RANDOM_SEED, ConfigError, TrainConfig
from shakegen.errors import CheckpointError
from shakegen.runs import checkpoint, folder
from shakegen.runs.plots import compare_png
from shakegen.training import events
from shakegen.training.dataset import epoch_batches, steps_per_epoch
from shakegen.training.events import CellStarted
from shakegen.training.opening import ensure_prepared
from shakegen.training.schedule import character_steps
from shakegen.training.trainer import train

RUN_FIELDS = (
    "cell",
    "random_seed",
    "parameters",
    "characters_per_second",
    "best_val_loss",
    "perplexity",
    "bits_per_character",
    "characters_seen",
    "minutes",
)
VALIDATIONS_PER_RUN = 10  # with a character budget: validation points on each curve
SHOWN_DIFFERENCES = 3  # settings named when a run in --out-dir differs from the one asked


def parse_cells(text: str) -> list[str]:
    cells = [cell.strip() for cell in text.split(",") if cell.strip()]
    unknown = [cell for cell in cells if cell not in CELLS]
    if not cells or unknown:
        raise ConfigError(
            f"Unknown cell(s) {', '.join(unknown) or '(none given)'}; expected a comma-separated list of {', '.join(CELLS)}."
        )
    return list(dict.fromkeys(cells))


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers such as 1,2,3; got {text!r}.") from None
    if not seeds:
        raise ConfigError("--seeds needs at least one integer, such as 1,2,3.")
    outside = [seed for seed in seeds if not 0 <= seed <= MAX_RANDOM_SEED]
    if outside:
        raise ConfigError(
            f"--seeds must be integers from 0 to {MAX_RANDOM_SEED:,} (2**32 - 1); got {', '.join(map(str, outside))}."
        )
    return list(dict.fromkeys(seeds))


def run_folder(out_dir: Path, cell: str, seed: int, several_seeds: bool) -> Path:
    return out_dir / (f"{cell}-seed{seed}" if several_seeds else cell)


def _finished(run_dir: Path) -> bool:
    return bool(checkpoint.read_state(checkpoint.checkpoint_path(run_dir, "last")).get("stop_reason"))


def with_budget_epochs(config: TrainConfig, train_characters: int) -> TrainConfig:
    """A character budget is the run's length: enough epochs that it, not ``epochs``, ends the run.

    Epochs' step counts differ by up to one with their random offsets, so they are counted
    for this run's seed, epoch by epoch (``dataset.epoch_batches``).
    """
    if not config.max_characters:
        return config
    steps = character_steps(config)
    epochs, covered = 0, 0
    while covered < steps:
        covered += epoch_batches(
            train_characters, config.seq_length, config.batch_size, config.random_seed, epochs, config.stateful
        )
        epochs += 1
    # dataclasses.replace: TrainConfig.replace would take a new epochs as a new budget and clear the cap.
    return config if epochs <= config.epochs else dataclasses.replace(config, epochs=epochs)


def with_validation_points(base: TrainConfig, train_characters: int | None = None) -> TrainConfig:
    """A character budget validates about ``VALIDATIONS_PER_RUN`` times, so short runs have curves.

    Training validates at every epoch's end anyway: when the budget spans that many epochs of
    ``train_characters`` (known once the data is prepared), those are the points.
    """
    if base.eval_every or not base.max_characters:
        return base
    steps = character_steps(base)
    if train_characters:
        epoch = steps_per_epoch(train_characters, base.seq_length, base.batch_size, base.stateful)
        if steps >= VALIDATIONS_PER_RUN * epoch:
            return base
    return base.replace(eval_every=max(1, steps // VALIDATIONS_PER_RUN))


def run_config(base: TrainConfig, cell: str, seed: int, train_characters: int) -> TrainConfig:
    """The exact configuration the (cell, seed) run trains with, as its config.json records it."""
    from shakegen.model import cells

    config = with_budget_epochs(base.replace(cell=cell, random_seed=seed), train_characters)
    return config.resolved(gpu=cells.gpu_visible())  # precision "auto" made concrete, as training does


def differences(existing: checkpoint.RunInfo, config: TrainConfig, sha256: str | None) -> list[str]:
    """What differs between a run's recorded settings and ``config`` (and the corpus), by name."""
    saved, asked = existing.config.to_json(), config.to_json()
    found = [f"{name} {saved[name]!r} there, {asked[name]!r} asked" for name in asked if saved[name] != asked[name]]
    if existing.data.get("sha256") != sha256:
        found.append("another corpus (SHA-256)")
    return found


def _check_free(run_dir: Path) -> None:
    """Refuse, before anything trains, a cell's folder holding what shakegen did not write (training would too)."""
    if run_dir.exists() and not run_dir.is_dir():
        held = ["is a file, not a folder"]
    elif folder.is_empty_folder(run_dir) or folder.is_run_folder(run_dir):
        return
    else:
        found = folder.foreign_entries(run_dir) or [f"a {checkpoint.CONFIG_FILE} that is not a shakegen run's"]
        held = ["holds " + ", ".join(found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")]
    raise ConfigError(
        f"{run_dir} {held[0]}, not a shakegen run, so compare will not train there (--overwrite replaces only "
        "shakegen's runs). Choose another --out-dir."
    )


def _plan(run_dir: Path, config: TrainConfig, sha256: str | None, overwrite: bool) -> str:
    """``reuse``, ``resume``, ``new`` or ``overwrite`` for one run folder; refuses a run made otherwise.

    Raises:
        ConfigError: ``run_dir`` holds a run with other settings (or a damaged one), and not ``overwrite``;
            or it holds files that are not a shakegen run's.
    """
    if not folder.is_run(run_dir):
        _check_free(run_dir)
        return "new"
    try:
        existing = checkpoint.read_run(run_dir)
    except CheckpointError:
        if overwrite:
            return "overwrite"
        raise
    found = differences(existing, config, sha256)
    if not found:
        return "reuse" if _finished(run_dir) else "resume"
    if overwrite:
        return "overwrite"
    shown = "; ".join(found[:SHOWN_DIFFERENCES]) + (
        f"; {len(found) - SHOWN_DIFFERENCES} more" if len(found) > SHOWN_DIFFERENCES else ""
    )
    raise ConfigError(
        f"{run_dir} holds a {existing.config.cell} run made with other settings ({shown}), so its figures are not "
        "this comparison's. Choose another --out-dir, or pass --overwrite to train it again with these settings."
    )


def compare(
    cells: list[str],
    base: TrainConfig,
    out_dir: str | Path,
    data_dir: str | Path = "data",
    seeds: list[int] | None = None,
    progress=None,
    overwrite: bool = False,
) -> list[dict]:
    """Train every cell with ``base`` once per seed; return one summary row per cell.

    ``base.max_minutes`` and/or ``base.max_characters`` are the per-run budget (a character
    budget raises ``epochs`` where needed, so every run trains on that many characters).
    Writes compare.csv (one row per run), compare.json (cells and runs) and compare.png.

    A run already in ``out_dir`` is reused (finished) or resumed (interrupted) only when it was
    made with exactly these settings; every run is checked before any trains.

    Args:
        overwrite: train again, from scratch, the runs in ``out_dir`` made with other settings
            (training removes only its own files there); matching runs are still reused.
    Raises:
        ConfigError: a run in ``out_dir`` was made with other settings, and not ``overwrite``.
    """
    out_dir = Path(out_dir)
    seeds = seeds or [base.random_seed]
    data = ensure_prepared(Path(data_dir), progress or events.ignore)  # the runs' settings depend on its length
    train_characters, sha256 = len(data.train), data.meta.get("sha256")
    base = with_validation_points(base, train_characters)
    planned = []
    for cell in cells:
        for seed in seeds:
            run_dir = run_folder(out_dir, cell, seed, len(seeds) > 1)
            config = run_config(base, cell, seed, train_characters)
            planned.append((cell, seed, run_dir, config, _plan(run_dir, config, sha256, overwrite)))
    runs = []
    for cell, seed, run_dir, config, action in planned:
        if progress:
            progress(CellStarted(cell if len(seeds) == 1 else f"{cell}, seed {seed}", action == "reuse"))
        if action != "reuse":
            resume = action == "resume"
            # A folder that holds no run yet is training's to judge; --overwrite lets it clear its own leftovers.
            start_over = action == "overwrite" or (action == "new" and overwrite)
            train(config, run_dir, data_dir, resume=resume, overwrite=start_over, progress=progress)
        runs.append(summarise(run_dir))
    cell_rows = [summarise_cell([run for run in runs if run["cell"] == cell]) for cell in cells]
    write_results(out_dir, cell_rows, runs, len(seeds) > 1)
    return cell_rows


def summarise(run_dir: Path) -> dict:
    info = checkpoint.read_run(run_dir)
    state = checkpoint.read_state(checkpoint.checkpoint_path(run_dir, "last"))
    best = min(checkpoint.read_history(run_dir), key=lambda row: row["val_loss"])
    seconds = state["elapsed_seconds"]
    return {
        "cell": info.config.cell,
        "random_seed": info.config.random_seed,
        "parameters": info.parameters,
        "characters_per_second": state["characters_seen"] / seconds if seconds else 0.0,
        "best_val_loss": best["val_loss"],
        "perplexity": math.exp(best["val_loss"]),
        "bits_per_character": best["val_loss"] / math.log(2),
        "characters_seen": state["characters_seen"],
        "minutes": seconds / 60,
        "run_dir": str(run_dir),
    }


def summarise_cell(runs: list[dict]) -> dict:
    """Mean over seeds, with the range of the best validation loss."""
    losses = [run["best_val_loss"] for run in runs]
    mean_loss = statistics.fmean(losses)
    return {
        "cell": runs[0]["cell"],
        "seeds": [run["random_seed"] for run in runs],
        "parameters": runs[0]["parameters"],
        "characters_per_second": statistics.fmean(run["characters_per_second"] for run in runs),
        "best_val_loss": mean_loss,
        "best_val_loss_min": min(losses),
        "best_val_loss_max": max(losses),
        "perplexity": math.exp(mean_loss),
        "bits_per_character": mean_loss / math.log(2),
        "characters_seen": statistics.fmean(run["characters_seen"] for run in runs),
        "minutes": statistics.fmean(run["minutes"] for run in runs),
    }


def write_results(out_dir: Path, cell_rows: list[dict], runs: list[dict], several_seeds: bool) -> None:
    """compare.csv (one row per run), compare.json and compare.png (mean curves, bands over seeds)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RUN_FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(runs)
    fileio.write_text(out_dir / "compare.csv", buffer.getvalue())
    fileio.write_json(out_dir / "compare.json", {"cells": cell_rows, "runs": runs})
    curves = {
        row["cell"]: [
            checkpoint.read_history(run_folder(out_dir, row["cell"], seed, several_seeds)) for seed in row["seeds"]
        ]
        for row in cell_rows
    }
    seeds = len(cell_rows[0]["seeds"])
    title = "GRU variants: same data and budget" + (f", mean and range over {seeds} seeds" if seeds > 1 else "")
    png = compare_png(curves, title)
    with fileio.atomic_open(out_dir / "compare.png", "wb") as handle:
        handle.write(png)
