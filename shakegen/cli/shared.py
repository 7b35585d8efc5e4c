"""What several commands share: their common options, the run a command loads, and the group class
that turns expected library errors into one-line messages."""

from __future__ import annotations

from pathlib import Path

import click

from shakegen.cli import ui
from shakegen.config import MAX_RANDOM_SEED
from shakegen.errors import ShakegenError
from shakegen.runs import names

# Library errors derive from ShakegenError; OSError covers the machine's own (disk full, permissions).
# Anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (ShakegenError, OSError)


class ShakegenGroup(click.Group):
    """Turns expected library errors into one-line messages (exit 1); --debug shows the traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except EXPECTED_ERRORS as error:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(str(error)) from None


def data_dir_option(help_text: str):
    """The --data-dir option shared by every command that reads or writes prepared data."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("data"),
        show_default=True,
        help=help_text,
    )


def run_options(purpose: str):
    """--checkpoint RUN and --which best|last, shared by every command that loads one run."""

    def decorate(command):
        command = click.option(
            "--which",
            type=click.Choice(["best", "last"]),
            default="best",
            show_default=True,
            help="Weights with the best validation loss, or the latest.",
        )(command)
        return click.option(
            "--checkpoint",
            "checkpoint_dir",
            type=click.Path(path_type=Path),
            default=None,
            metavar="RUN_DIR|pretrained",
            help=f"Run folder to {purpose}, or 'pretrained' for the model that ships with shakegen. "
            "[default: the most recently trained run under checkpoints/, else the pretrained model]",
        )(command)

    return decorate


def engine_option(what: str):
    """--engine auto|numpy|tensorflow, shared by generate, eval and serve."""
    return click.option(
        "--engine",
        type=click.Choice(["auto", "numpy", "tensorflow"]),
        default="auto",
        show_default=True,
        help=f"What computes the {what}; numpy or tensorflow forces one (both draw the same noise).",
    )


def random_seed_option(help_text: str, **settings):
    """--random-seed, 0 to 2**32 - 1 (config.MAX_RANDOM_SEED), shared by every command that draws at random."""
    settings.setdefault("default", None)
    return click.option("--random-seed", type=click.IntRange(0, MAX_RANDOM_SEED), help=help_text, **settings)


def run_folder(checkpoint_dir: Path | None) -> Path:
    """The run a command loads (names.resolve_run), saying so on stderr when it falls back to the
    pretrained model because no run exists under checkpoints/."""
    run_dir = names.resolve_run(checkpoint_dir)
    if checkpoint_dir is None and names.is_pretrained(run_dir):
        ui.message(f"No run under {names.DEFAULT_CHECKPOINTS}/: using the pretrained model (--checkpoint pretrained).")
    return run_dir
