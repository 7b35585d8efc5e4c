"""Everything a person sees in the terminal: one rich console on stderr, tables, progress bars.

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

from shakegen.training import events

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


class TrainDisplay:
    """Renders training events: a model summary, a live bar per epoch, one line per validation.

    When stderr is not a terminal it prints only plain lines, suitable for logs.
    """

    def __init__(self):
        self.progress: Progress | None = None
        self.task = None
        self.total_epochs = 0
        self.handlers = {
            events.CellStarted: self.on_cell,
            events.Preparing: self.on_preparing,
            events.Notice: self.on_notice,
            events.FineTuning: self.on_fine_tuning,
            events.Started: self.on_start,
            events.Schedule: self.on_schedule,
            events.Stepped: self.on_step,
            events.Validating: self.on_validating,
            events.Validated: self.on_validated,
            events.Checkpointed: self.on_checkpointed,
            events.Finished: self.on_done,
        }

    def __call__(self, event: events.Event) -> None:
        self.handlers[type(event)](event)  # KeyError: an event class this display does not know

    def on_cell(self, event: events.CellStarted):
        note = " (already finished, not trained again)" if event.skipped else ""
        console.rule(f"cell {escape(event.cell)}{note}")

    def on_preparing(self, event: events.Preparing):
        message(f"Nothing is prepared in {escape(event.data_dir)}; preparing {escape(event.which)} first.")

    def on_notice(self, event: events.Notice):
        message(f"[yellow]Warning:[/] {escape(event.message)}")

    def on_fine_tuning(self, event: events.FineTuning):
        loss = f" (val loss {event.base_val_loss:.4f})" if event.base_val_loss is not None else ""
        if event.added:
            shown = " ".join(escape(show_char(char)) for char in event.added[:40]) + (
                " …" if len(event.added) > 40 else ""
            )
            grown = (
                f"{len(event.added)} characters added to its {event.base_characters} "
                f"(ids {event.base_characters}–{event.base_characters + len(event.added) - 1}): {shown}"
            )
        else:
            grown = f"no characters added: the corpus uses only characters among its {event.base_characters}"
        unused = f"; {event.unused} of its characters do not occur in this corpus and are kept" if event.unused else ""
        message(f"Fine-tuning from {escape(event.base)}{loss}: {grown}{unused}.")

    def on_start(self, event: events.Started):
        config = event.config
        self.total_epochs = config.epochs
        table = Table(title="Model", title_justify="left")
        table.add_column("layer")
        table.add_column("kind")
        table.add_column("parameters", justify="right")
        for name, kind, count in event.layers:
            table.add_row(name, kind, f"{count:,}")
        table.add_row("[bold]total", "", f"[bold]{event.parameters:,}")
        console.print(table)
        state = event.state
        verb = f"Resuming at epoch {state.epoch + 1}, step {state.global_step}" if event.resumed else "Training"
        message(
            f"{verb} in {escape(event.run_dir)}: {config.epochs} epochs of {event.steps_per_epoch} steps "
            f"(batch {config.batch_size} × {config.seq_length} characters), {optimizer_summary(config)}, {config.precision}"
            + (f", across {event.replicas} replicas." if event.replicas > 1 else ".")
        )
        every = f"every {config.eval_every} steps" if config.eval_every else "at the end of each epoch"
        capped = (
            f" (the first {event.val_characters:,} of {event.val_split_characters:,} characters: --val-characters)"
            if event.val_characters < event.val_split_characters
            else ""
        )
        saving = f", last.npz every {config.checkpoint_minutes:g} min" if config.checkpoint_minutes else ""
        message(f"Validating {every}{capped}{saving}.")

    def on_schedule(self, event: events.Schedule):
        if event.lr_schedule == "constant":
            return
        if event.basis == "epochs" and event.minutes_budget:
            message(
                f"The learning-rate schedule follows the planned epochs ({event.steps:,} steps): a --max-minutes "
                "budget cannot be counted in steps; give --max-steps or --max-characters to anneal within the budget."
            )
            return
        budgets = {"epochs": "the planned epochs", "max_steps": "--max-steps", "max_characters": "the character budget"}
        message(f"The learning rate anneals over {event.steps:,} steps ({budgets.get(event.basis, event.basis)}).")

    def on_step(self, event: events.Stepped):
        if not console.is_terminal:
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]:.3f}  ppl {task.fields[ppl]:.2f}  {task.fields[cps]:,.0f} char/s"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=event.steps, epoch="", loss=0.0, ppl=0.0, cps=0.0)
        self.progress.update(
            self.task,
            completed=event.step,
            total=event.steps,
            epoch=f"{event.epoch}/{self.total_epochs}",
            loss=event.loss,
            ppl=event.perplexity,
            cps=event.characters_per_second,
        )

    def on_validating(self, event: events.Validating):
        if self.progress is not None:
            self.progress.update(self.task, epoch="… validating")

    def on_checkpointed(self, event: events.Checkpointed):
        if not console.is_terminal:
            message(f"checkpoint at step {event.step} saved to {escape(event.path)}")

    def _stop_bar(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_validated(self, event: events.Validated):
        self._stop_bar()
        row = event.row
        epoch = row["epoch"]
        label = f"{epoch:g}" if float(epoch).is_integer() else f"{epoch:.2f}"
        best = "  [green]★ best[/]" if event.improved else ""
        message(
            f"epoch {label}/{self.total_epochs}  step {row['step']}  train {row['train_loss']:.4f}  "
            f"val {row['val_loss']:.4f}  val ppl {row['val_perplexity']:.3f}  {row['val_bits_per_character']:.3f} bits/char  "
            f"{row['epoch_seconds']:.0f} s  ({row['elapsed_seconds'] / 60:.1f} min in all){best}"
        )

    def on_done(self, event: events.Finished):
        self._stop_bar()
        reasons = {
            "epochs": "all epochs done",
            "max_steps": "--max-steps reached",
            "max_minutes": "--max-minutes reached",
            "max_characters": "the character budget was reached",
            "patience": "validation loss stopped improving (--patience)",
        }
        from shakegen.use.evaluate import safe_exp  # training has loaded TensorFlow by now; ui never does itself

        state = event.state
        best = (
            f" Best val loss {state.best_val_loss:.4f} streaming (perplexity {safe_exp(state.best_val_loss):.3f}) "
            f"at epoch {state.best_epoch:.3g}"
            if state.best_val_loss is not None
            else ""
        )
        if best and state.best_val_loss_windows is not None:
            best += f"; {state.best_val_loss_windows:.4f} in windows of 256 from a zero state (nanoGPT's protocol)"
        best += "." if best else ""
        message(f"Stopped: {reasons.get(event.reason, event.reason)}.{best}")

    def close(self):
        self._stop_bar()


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


def optimizer_summary(config) -> str:
    """'Adam 0.002 → 0.0002 (cosine)', with AdamW's decay and the warm-up when they are on."""
    name = f"AdamW (weight decay {config.weight_decay:g})" if config.weight_decay else "Adam"
    if config.lr_schedule == "constant":
        rate = f"{config.learning_rate:g} (constant)"
    else:
        rate = f"{config.learning_rate:g} → {config.final_learning_rate:g} (cosine)"
    warmup = f" after {config.warmup_steps:,} warm-up steps" if config.warmup_steps else ""
    return f"{name} {rate}{warmup}"
