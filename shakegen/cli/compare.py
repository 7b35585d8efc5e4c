"""shakegen compare: train several cell variants on the same data, seeds and budget, and tabulate them."""

from __future__ import annotations

import math
from pathlib import Path

import click

from shakegen.cli import train_display, ui
from shakegen.cli.shared import data_dir_option, random_seed_option
from shakegen.config import PRESETS
from shakegen.errors import ConfigError


@click.command()
@click.option(
    "--cells", default="gru,classic,gru1,gru2,gru3", show_default=True, help="Comma-separated cell variants to compare."
)
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="quick",
    show_default=True,
    help="Hyperparameters shared by every cell.",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Training minutes per run (a race: speed counts). [default: 5, unless --characters is given]",
)
@click.option(
    "--characters",
    type=click.IntRange(min=1),
    default=None,
    help="Training characters per run (about the equations: every cell sees the same text).",
)
@click.option(
    "--seeds",
    default=None,
    help="Comma-separated random seeds; each cell is trained once per seed (mean and range). [default: --random-seed]",
)
@random_seed_option(
    "Seed shared by every cell when --seeds is not given (0 to 2**32 - 1).",
    default=PRESETS["quick"].random_seed,
    show_default=True,
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("checkpoints") / "compare",
    show_default=True,
    help="One run folder per cell (and seed), plus compare.csv/.json/.png.",
)
@data_dir_option("Prepared data folder (prepared from the embedded corpus if empty).")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Train again, from scratch, the runs in --out-dir made with other settings (only shakegen's own run "
    "files are removed).",
)
def compare(cells, preset, minutes, characters, seeds, random_seed, out_dir, data_dir, overwrite) -> None:
    """Train several GRU variants on the same data, seeds and budget, and compare them.

    Resumes: a run in --out-dir made with exactly these settings (preset, budget, seed,
    corpus) is reused if finished and resumed if not; a run made otherwise is refused
    before anything trains, unless --overwrite. The budget alone decides how long each run
    trains: the preset's step cap is lifted, and a character budget gets the epochs it
    needs. With a character budget, each run validates about ten times, so short budgets
    still have curves.

    \b
    Example:
      shakegen compare --cells gru,classic,gru1,gru2,gru3 --minutes 3
      shakegen compare --seeds 1,2,3 --characters 10000000
      shakegen compare --preset tiny --seeds 1,2 --characters 200000
    """
    from shakegen.training import compare as comparing

    cell_list = comparing.parse_cells(cells)
    seed_list = comparing.parse_seeds(seeds) if seeds is not None else [random_seed]
    if minutes is None and characters is None:
        minutes = 5.0
    if minutes is not None and not math.isfinite(minutes):  # the option's range lets nan and inf through
        raise ConfigError(f"--minutes must be a finite number of minutes (e.g. 3), got {minutes}.")
    # The budget is the comparison's: a budget given replaces the preset's caps (tiny's 20 steps).
    base = PRESETS[preset].replace(max_minutes=minutes, max_characters=characters, random_seed=random_seed)
    base.validate()  # before the corpus is prepared or a run folder made
    display = train_display.TrainDisplay()
    try:
        rows = comparing.compare(
            cell_list, base, out_dir, data_dir, seeds=seed_list, progress=display, overwrite=overwrite
        )
    finally:
        display.close()
    ui.console.print(ui.compare_table(rows))
    ui.message(f"Wrote {out_dir}/compare.csv, compare.json and compare.png.")
