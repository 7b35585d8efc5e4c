"""Side-by-side comparison of GRU variants: same data, same seed, same time budget per cell.

Each cell trains in its own run folder under the output folder, so a comparison resumes:
a cell whose run already finished is not trained again, one that was interrupted resumes.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from shakegen import checkpoint, fileio
from shakegen.config import CELLS, ConfigError, TrainConfig
from shakegen.events import CellStarted
from shakegen.plots import compare_png
from shakegen.train import train

RESULT_FIELDS = (
    "cell",
    "parameters",
    "characters_per_second",
    "best_val_loss",
    "perplexity",
    "bits_per_character",
    "characters_seen",
    "minutes",
)


def parse_cells(text: str) -> list[str]:
    cells = [cell.strip() for cell in text.split(",") if cell.strip()]
    unknown = [cell for cell in cells if cell not in CELLS]
    if not cells or unknown:
        raise ConfigError(
            f"Unknown cell(s) {', '.join(unknown) or '(none given)'}; expected a comma-separated list of {', '.join(CELLS)}."
        )
    return list(dict.fromkeys(cells))


def _finished(run_dir: Path) -> bool:
    return bool(checkpoint.read_state(checkpoint.checkpoint_path(run_dir, "last")).get("stop_reason"))


def compare(
    cells: list[str], base: TrainConfig, out_dir: str | Path, data_dir: str | Path = "data", progress=None
) -> list[dict]:
    """Train every cell with ``base`` (its ``max_minutes`` is the per-cell budget); return the table rows."""
    out_dir = Path(out_dir)
    rows = []
    for cell in cells:
        run_dir = out_dir / cell
        if progress:
            progress(CellStarted(cell, _finished(run_dir)))
        if not _finished(run_dir):
            resume = checkpoint.is_run(run_dir)
            train(base.replace(cell=cell), run_dir, data_dir, resume=resume, overwrite=not resume, progress=progress)
        rows.append(summarise(run_dir))
    write_results(out_dir, rows)
    return rows


def summarise(run_dir: Path) -> dict:
    info = checkpoint.read_run(run_dir)
    state = checkpoint.read_state(checkpoint.checkpoint_path(run_dir, "last"))
    best = min(checkpoint.read_history(run_dir), key=lambda row: row["val_loss"])
    seconds = state["elapsed_seconds"]
    return {
        "cell": info.config.cell,
        "parameters": info.parameters,
        "characters_per_second": state["characters_seen"] / seconds if seconds else 0.0,
        "best_val_loss": best["val_loss"],
        "perplexity": math.exp(best["val_loss"]),
        "bits_per_character": best["val_loss"] / math.log(2),
        "characters_seen": state["characters_seen"],
        "minutes": seconds / 60,
    }


def write_results(out_dir: Path, rows: list[dict]) -> None:
    """compare.csv, compare.json and compare.png (val loss against time and characters seen)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    fileio.write_text(out_dir / "compare.csv", buffer.getvalue())
    fileio.write_json(out_dir / "compare.json", rows)
    curves = {row["cell"]: checkpoint.read_history(out_dir / row["cell"]) for row in rows}
    png = compare_png(curves, "GRU variants on the same data, seed and time budget")
    with fileio.atomic_open(out_dir / "compare.png", "wb") as handle:
        handle.write(png)
