"""Everything a person sees in the terminal: one rich console on stderr, tables, progress bars
(training's live display is in train_display.py).

stdout is kept for results (generated text, --json) so that pipes stay clean. rich already
honours NO_COLOR and drops colour and live displays when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

# Logs and pipes get lines of 120 columns (rich's 80 wrapped each epoch's line and squeezed
# compare's ranges); a terminal, or COLUMNS, sets the width itself.
LOG_WIDTH = 120
console = Console(
    stderr=True, highlight=False, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else LOG_WIDTH
)


def message(text: str) -> None:
    """Print ``text`` on stderr; it is rich markup, so user text in it goes through ``escape`` first."""
    console.print(text)


@contextlib.contextmanager
def byte_progress(description: str) -> Iterator:
    """A progress bar in bytes; yields ``update(done, total)``. Silent when not a terminal."""
    if not console.is_terminal:
        yield lambda done, total: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def key_value_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(escape(key), escape(value))  # plain text: a path may hold [brackets]
    return table


def show_char(char: str) -> str:
    """A character as a person can read it in a table."""
    names = {"\n": "\\n", "\t": "\\t", " ": "space"}
    return names.get(char, char)


def eval_table(rows: list[dict]) -> Table:
    """One column per evaluated checkpoint, so runs compare side by side; the first line and the
    caption name the protocol, so a figure is never read against one measured another way."""
    first = rows[0]
    if first.get("protocol", "streaming") == "streaming":
        caption = "streaming: the state is carried through the whole text, every character in context"
    elif first["protocol"] == "adaptive":
        caption = "adaptive: streaming, and the model learns (one SGD step per segment) from what it has scored"
    else:
        caption = "windows: each window starts from a zero state, every position counts"
    table = Table(title=f"Perplexity on the {first['text']}", caption=caption, title_justify="left")
    table.add_column("")
    for row in rows:
        table.add_column(f"{escape(str(row['run']))}\n({row['which']})", justify="right")

    def line(label, render):
        table.add_row(label, *(render(row) for row in rows))

    def protocol(row):
        if row.get("protocol", "streaming") == "streaming":
            return "streaming"
        if row["protocol"] == "adaptive":
            return f"adaptive (SGD {row['learning_rate']:g}, segments of {row['segment']})"
        if row.get("samples") is None:
            return f"windows of {row['window']}"
        return f"{row['samples']:,} random windows of {row['window']} (seed {row['random_seed']})"

    line("protocol", protocol)
    line("characters evaluated", lambda r: f"{r['characters']:,}")
    line("cross-entropy (nats/char)", lambda r: f"{r['loss']:.4f}")
    line("[bold]perplexity", lambda r: f"[bold]{r['perplexity']:.3f}")
    line("bits per character", lambda r: f"{r['bits_per_character']:.3f}")
    line("uniform baseline ppl", lambda r: f"{r['uniform_perplexity']:.0f}")
    line("unigram baseline ppl", lambda r: f"{r['unigram_perplexity']:.2f}" if r["unigram_perplexity"] else "–")
    line("cell, parameters", lambda r: f"{r['cell']}, {r['parameters']:,}")
    line("epoch, step", lambda r: f"{'–' if r['epoch'] is None else format(r['epoch'], '.3g')}, {r['step']}")
    line("training minutes", lambda r: "–" if r["training_minutes"] is None else f"{r['training_minutes']:.1f}")
    if any(r["left_out_characters"] for r in rows):
        line("unknown chars left out", lambda r: f"{r['left_out_characters']:,}")
    return table


def compare_table(rows: list[dict]) -> Table:
    """One row per cell; with several seeds the loss is the mean, with its range over seeds."""
    seeds = len(rows[0]["seeds"])
    title = "GRU variants, equal budget" + (f" (mean over {seeds} seeds, range in parentheses)" if seeds > 1 else "")
    table = Table(title=title, title_justify="left")
    for heading in ("cell", "params", "chars/s", "val loss", "ppl", "bits/char", "seen", "min"):
        table.add_column(heading, justify="left" if heading == "cell" else "right")
    best = min(row["best_val_loss"] for row in rows)
    for row in rows:
        style = "bold green" if row["best_val_loss"] == best else ""
        loss = f"{row['best_val_loss']:.4f}"
        if seeds > 1:
            loss += f" ({row['best_val_loss_min']:.4f}–{row['best_val_loss_max']:.4f})"
        table.add_row(
            row["cell"],
            f"{row['parameters']:,}",
            f"{row['characters_per_second']:,.0f}",
            loss,
            f"{row['perplexity']:.3f}",
            f"{row['bits_per_character']:.3f}",
            f"{row['characters_seen'] / 1e6:.1f}M",
            f"{row['minutes']:.1f}",
            style=style,
        )
    return table
