"""shakegen train: its hyperparameter options generated from TrainConfig's fields, the run's own
options written out, and the call that trains with a live display."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from shakegen.cli import train_display, ui
from shakegen.cli.shared import data_dir_option
from shakegen.config import PRESETS, TrainConfig
from shakegen.errors import TrainingInterrupted
from shakegen.training.distribute import STRATEGIES

# The order `shakegen train --help` lists TrainConfig's options in (config.json keeps the fields' own
# order); a field not named here is listed after these, so a new hyperparameter needs only its field.
HELP_ORDER = (
    "cell",
    "num_layers",
    "rnn_units",
    "embedding_dim",
    "dropout",
    "weight_drop",
    "ema_decay",
    "recurrent_initializer",
    "seq_length",
    "batch_size",
    "epochs",
    "max_steps",
    "max_minutes",
    "max_characters",
    "learning_rate",
    "final_learning_rate",
    "lr_schedule",
    "warmup_steps",
    "weight_decay",
    "clip_norm",
    "patience",
    "checkpoint_minutes",
    "eval_every",
    "val_characters",
    "stateful",
    "precision",
    "rnn_kernel",
    "random_seed",
)


def _preset_help(name: str, text: str) -> str:
    values = {preset: getattr(config, name) for preset, config in PRESETS.items()}
    shown = ", ".join(f"{preset} {value}" for preset, value in values.items())
    return f"{text} [preset: {shown}]"


def _listed_fields() -> list[dataclasses.Field]:
    """TrainConfig's fields in HELP_ORDER, those it does not name last (in their own order)."""
    place = {name: index for index, name in enumerate(HELP_ORDER)}
    return sorted(dataclasses.fields(TrainConfig), key=lambda field: place.get(field.name, len(HELP_ORDER)))


def _hyperparameter_option(field: dataclasses.Field):
    """The option for one TrainConfig field, from its metadata (config.Option); unset (None) when not given."""
    option = field.metadata["option"]
    flag = "--" + field.name.replace("_", "-")
    help_text = _preset_help(field.name, option.help) if option.presets else option.help
    kind = option.type or type(field.default)
    if kind is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", field.name, default=None, help=help_text)
    if option.choices is not None:
        click_type = click.Choice(option.choices)
    elif option.range is not None:
        click_type = click.IntRange(*option.range)
    else:
        click_type = kind
    return click.option(flag, field.name, type=click_type, default=None, help=help_text)


def hyperparameter_options(command):
    """Give ``command`` one option per TrainConfig field, listed in HELP_ORDER."""
    for field in reversed(_listed_fields()):  # the last decorator applied is listed first
        command = _hyperparameter_option(field)(command)
    return command


@click.command()
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="quick",
    show_default=True,
    help="Named set of hyperparameters; the options below override it.",
)
@hyperparameter_options
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder. [default: checkpoints/<preset>]",
)
@data_dir_option("Prepared data folder (prepared from the embedded corpus if empty).")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir exactly where it stopped.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Start over in a --run-dir that already holds a run (only the files shakegen wrote there are removed).",
)
@click.option(
    "--init-from",
    default=None,
    metavar="RUN_DIR|pretrained",
    help="Fine-tune: start from this run's best weights (its architecture; its vocabulary extended by the corpus's "
    "new characters; a fresh optimizer; learning rate 1e-3 and --patience 3 unless given).",
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default="one",
    show_default=True,
    help="Distribution: one device; mirrored over local GPUs (or 2 logical CPUs); multi-worker from TF_CONFIG; "
    "auto picks mirrored when more than one GPU is visible.",
)
def train(
    preset: str,
    run_dir: Path | None,
    data_dir: Path,
    resume: bool,
    overwrite: bool,
    init_from: str | None,
    strategy: str,
    **overrides,
) -> None:
    """Train the GRU language model and checkpoint it in a run folder.

    \b
    Example:
      shakegen train --preset quick
      shakegen train --preset standard --epochs 30 --run-dir checkpoints/big
      shakegen train --resume --run-dir checkpoints/quick --epochs 8
      shakegen train --init-from checkpoints/quick --data-dir data/mine --run-dir checkpoints/mine
      TF_CONFIG='{...}' shakegen train --strategy multi-worker --run-dir /shared/run
    """
    from shakegen import api

    run_dir = run_dir or Path("checkpoints") / preset
    display = train_display.TrainDisplay()
    try:
        api.train(
            preset,
            run_dir,
            data_dir,
            resume=resume,
            overwrite=overwrite,
            strategy=strategy,
            progress=display,
            init_from=init_from,
            **overrides,
        )
    except TrainingInterrupted as interrupted:
        display.close()
        raise click.ClickException(f"{interrupted} Resume with: shakegen train --resume --run-dir {run_dir}") from None
    finally:
        display.close()
    from rich.markup import escape

    shown = escape(str(run_dir))
    seed = "" if _lacks_the_seed(run_dir) else ' --seed "ROMEO:"'
    ui.message(f"Run folder: {shown} (generate with: shakegen generate --checkpoint {shown}{seed})")


def _lacks_the_seed(run_dir: Path) -> bool:
    """Whether the run cannot read the hint's seed "ROMEO:" (a corpus of one's own may lack R, M, E or ':').
    A worker of a multi-worker run writes no folder of its own: nothing to tell, the hint keeps its seed."""
    from shakegen.errors import CheckpointError
    from shakegen.runs import checkpoint

    try:
        return bool(checkpoint.read_run(run_dir).vocab.unknown_characters("ROMEO:"))
    except CheckpointError:
        return False
