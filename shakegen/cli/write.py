"""shakegen write: load a run, read FILE and the options, and start the writing session (cli/writing.py)."""

from __future__ import annotations

from pathlib import Path

import click

from shakegen.cli import ui
from shakegen.cli.shared import random_seed_option, run_folder, run_options


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@run_options("write with")
@click.option("--seed", "seed_text", default=None, help="Text to start with (after FILE's text when FILE exists).")
@click.option(
    "--temperature",
    type=float,
    default=0.8,
    show_default=True,
    help="Temperature of the proposed continuation; 0 is greedy.",
)
@click.option("--top-k", type=int, default=None, help="Propose only among the K most likely characters.")
@click.option("--top-p", type=float, default=None, help="Propose only inside the top-p nucleus.")
@click.option(
    "--min-p", type=float, default=None, help="Propose only characters at least P times as likely as the top one."
)
@click.option("--ban", default=None, metavar="CHARS", help='Characters never proposed ("\\n" and "\\t" as escapes).')
@random_seed_option(
    "Seed of the first proposal (each resample adds one). [default: random]",
)
@click.option("--plain", is_flag=True, help="Use the line prompt even in a terminal.")
def write(file, checkpoint_dir, which, seed_text, temperature, top_k, top_p, min_p, ban, random_seed, plain) -> None:
    """Write with the model: you type, it proposes how to go on.

    The proposal shows as grey ghost text after the cursor; below it, the likeliest next
    characters and words with their probabilities. Tab accepts a word, → or Ctrl-E all of it,
    Ctrl-R resamples, Ctrl-N cycles through the alternatives (the sample, then the top words),
    Ctrl-Z undoes, Ctrl-S saves to FILE, Ctrl-D quits (saving to FILE first). FILE, when it
    exists, is where you start from. When stdin or stdout is not a terminal, a line prompt
    takes its place (it prints its commands) and the text goes to stdout at the end.

    \b
    Example:
      shakegen write scene.txt --seed "ROMEO:"
      shakegen write --checkpoint pretrained --temperature 0.6 --ban "\\t"
    """
    import sys

    from shakegen.cli import writing
    from shakegen.errors import SamplingError
    from shakegen.use import engine as numpy_engine
    from shakegen.use import sampling, stopping, suggest

    model, info, _ = numpy_engine.load(run_folder(checkpoint_dir), which)
    text = ""
    if file is not None and file.exists():
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise click.ClickException(
                f"{file} is not UTF-8 text (byte {error.start}); write to a new file or convert it to UTF-8."
            ) from None
    if seed_text is not None:
        text += stopping.unescape(seed_text)
    try:
        ban_ids = stopping.ban_ids(stopping.unescape(ban), info.vocab) if ban else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--ban") from None
    if random_seed is None:
        random_seed = sampling.draw_random_seed()
    choice = suggest.SamplingChoice(temperature, top_k, top_p, min_p, random_seed)
    try:
        suggester = suggest.Suggester(model, info.vocab, choice, ban=ban_ids)
    except SamplingError as error:
        raise click.BadParameter(str(error)) from None
    unknown = info.vocab.unknown_characters(text)
    if unknown:
        ui.message(f"[yellow]Note:[/] the model skips characters it does not know: {', '.join(map(repr, unknown))}.")
    session = writing.Session(suggester, text, file)
    if plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
        text = writing.run_plain(session, sys.stdin, sys.stderr)
    else:
        text = writing.run_terminal(session)
    if file is not None:
        session.save()
        ui.message(f"[dim]Saved {len(text):,} characters to {file}[/]")
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
