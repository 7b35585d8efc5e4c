"""What a person sees while a run trains: the model's summary, a live bar per epoch, one line per
validation and why it stopped (plain lines only, when stderr is not a terminal)."""

from __future__ import annotations

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from shakegen.cli.ui import console, message, show_char
from shakegen.training import events


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


def optimizer_summary(config) -> str:
    """'Adam 0.002 → 0.0002 (cosine)', with AdamW's decay and the warm-up when they are on."""
    name = f"AdamW (weight decay {config.weight_decay:g})" if config.weight_decay else "Adam"
    if config.lr_schedule == "constant":
        rate = f"{config.learning_rate:g} (constant)"
    else:
        rate = f"{config.learning_rate:g} → {config.final_learning_rate:g} (cosine)"
    warmup = f" after {config.warmup_steps:,} warm-up steps" if config.warmup_steps else ""
    return f"{name} {rate}{warmup}"
