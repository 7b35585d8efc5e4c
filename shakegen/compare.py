"""Side-by-side comparison of GRU variants: same data, same seeds, same budget per cell.

The budget is training minutes (a race: speed counts) or training characters (about the
equations: every cell sees the same text). With several random seeds each cell is trained
once per seed, and the table gives the mean and range of the best validation loss, so a
difference can be read against the seed-to-seed noise.

Each (cell, seed) trains in its own run folder under the output folder, so a comparison
resumes: a run that already finished is not trained again, one that was interrupted resumes.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path

from shakegen import checkpoint, fileio, prepare
from shakegen.config import CELLS, ConfigError, TrainConfig
from shakegen.dataset import steps_per_epoch
from shakegen.events import CellStarted
from shakegen.plots import compare_png
from shakegen.training import train

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
    return list(dict.fromkeys(seeds))


def run_folder(out_dir: Path, cell: str, seed: int, several_seeds: bool) -> Path:
    return out_dir / (f"{cell}-seed{seed}" if several_seeds else cell)


def _finished(run_dir: Path) -> bool:
    return bool(checkpoint.read_state(checkpoint.checkpoint_path(run_dir, "last")).get("stop_reason"))


def with_validation_points(base: TrainConfig, train_characters: int | None = None) -> TrainConfig:
    """A character budget validates about ``VALIDATIONS_PER_RUN`` times, so short runs have curves.

    Training validates at every epoch's end anyway: when the budget spans that many epochs of
    ``train_characters`` (known once the data is prepared), those are the points.
    """
    if base.eval_every or not base.max_characters:
        return base
    steps = math.ceil(base.max_characters / (base.batch_size * base.seq_length))
    if train_characters:
        epoch = steps_per_epoch(train_characters, base.seq_length, base.batch_size, base.stateful)
        if steps >= VALIDATIONS_PER_RUN * epoch:
            return base
    return base.replace(eval_every=max(1, steps // VALIDATIONS_PER_RUN))


def compare(
    cells: list[str],
    base: TrainConfig,
    out_dir: str | Path,
    data_dir: str | Path = "data",
    seeds: list[int] | None = None,
    progress=None,
) -> list[dict]:
    """Train every cell with ``base`` once per seed; return one summary row per cell.

    ``base.max_minutes`` and/or ``base.max_characters`` are the per-run budget. Writes
    compare.csv (one row per run), compare.json (cells and runs) and compare.png.
    """
    out_dir = Path(out_dir)
    seeds = seeds or [base.random_seed]
    train_characters = len(prepare.load_prepared(data_dir).train) if prepare.is_prepared(data_dir) else None
    base = with_validation_points(base, train_characters)
    runs = []
    for cell in cells:
        for seed in seeds:
            run_dir = run_folder(out_dir, cell, seed, len(seeds) > 1)
            finished = _finished(run_dir)
            if progress:
                progress(CellStarted(cell if len(seeds) == 1 else f"{cell}, seed {seed}", finished))
            if not finished:
                resume = checkpoint.is_run(run_dir)
                config = base.replace(cell=cell, random_seed=seed)
                train(config, run_dir, data_dir, resume=resume, overwrite=not resume, progress=progress)
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
