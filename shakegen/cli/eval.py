"""shakegen eval: perplexity and bits per character of one or several runs, by the streaming, windows
or adaptive protocol, as a table or JSON."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from shakegen.cli import eval_rows, ui
from shakegen.cli.shared import data_dir_option, engine_option, random_seed_option, run_folder
from shakegen.runs import names


@click.command(name="eval")
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="RUN_DIR|pretrained",
    help="Run folder(s) to evaluate, or 'pretrained'; repeat to compare runs side by side. "
    "[default: the latest run under checkpoints/, else the pretrained model]",
)
@click.option(
    "--which",
    type=click.Choice(["best", "last", "both"]),
    default="best",
    show_default=True,
    help="Which weights of each run.",
)
@click.option(
    "--split",
    type=click.Choice(["val", "train"]),
    default="val",
    show_default=True,
    help="Prepared split to evaluate on.",
)
@click.option(
    "--text",
    "text_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Evaluate this text file instead of a prepared split.",
)
@data_dir_option("Prepared data folder holding the split.")
@click.option(
    "--strict", is_flag=True, help="With --text, refuse characters the model does not know instead of leaving them out."
)
@click.option(
    "--encoding",
    default=None,
    help="Encoding of --text. [default: the encoding the run's corpus was prepared with]",
)
@click.option(
    "--protocol",
    type=click.Choice(["streaming", "windows"]),
    default="streaming",
    show_default=True,
    help="streaming: the state is carried through the whole text; windows: windows that each start "
    "from a zero state (nanoGPT's protocol), every position counted.",
)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=None,
    help="Characters per window of --protocol windows. [default: 256]",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=None,
    help="With --protocol windows: score this many windows at random starts (nanoGPT's way) "
    "instead of non-overlapping windows covering the text.",
)
@random_seed_option("Seed of the random windows of --samples, from 0 to 2**32 - 1. [default: 0]")
@engine_option("figures: auto uses the NumPy engine for texts up to 8,191 predicted characters, TensorFlow beyond")
@click.option(
    "--adapt",
    is_flag=True,
    help="Adaptive scoring (dynamic evaluation): after each segment of 32 characters is scored, the model takes one "
    "SGD step on it. Its own protocol, never comparable with the others; the run folder is not written.",
)
@click.option(
    "--adapt-learning-rate",
    type=click.FloatRange(min=0),
    default=None,
    help="SGD's learning rate for --adapt. [default: 0.05]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout (it names the engine).")
def eval_command(
    checkpoints,
    which,
    split,
    text_path,
    data_dir,
    strict,
    encoding,
    protocol,
    window,
    samples,
    random_seed,
    engine,
    adapt,
    adapt_learning_rate,
    as_json,
) -> None:
    """Report perplexity and bits per character of trained runs.

    Two protocols. streaming (the default): the state is carried through the whole text,
    so every character is predicted from all the text before it. windows: the text is cut
    into non-overlapping windows of --window characters that each start from a zero
    state, as nanoGPT and char-rnn score; the first characters of each window are
    predicted almost blind, so this figure is higher. Compare a figure only with one
    measured the same way. Weights are evaluated in float32 whatever the run was trained
    in. Baselines for scale: uniform (perplexity = vocabulary size) and the training
    split's character frequencies (unigram). A split of a corpus other than the one the
    run was trained on is scored all the same, with a note (and "same_corpus": false in
    --json); a run of the embedded Tiny Shakespeare (the pretrained model) is scored on its
    own split, with a note naming the corpus passed over. Training minutes are those up to the weights evaluated. --adapt scores a third
    way, adaptive (dynamic evaluation): streaming, and after each segment is scored the model
    learns from it (one SGD step, in memory only), so its figure is lower still and only
    comparable with another adaptive one.

    \b
    Example:
      shakegen eval
      shakegen eval --checkpoint checkpoints/quick --checkpoint checkpoints/standard --which both
      shakegen eval --protocol windows --window 256 --json
      shakegen eval --protocol windows --samples 2400 --random-seed 1337
      shakegen eval --text sonnets.txt --json
      shakegen eval --checkpoint pretrained --adapt
    """
    import json

    _refuse_options_that_do_not_apply(protocol, window, samples, random_seed, engine, adapt, adapt_learning_rate)
    from shakegen import api
    from shakegen.use import evaluate

    measure = dict(
        protocol=protocol,
        window=window or evaluate.EVAL_WINDOW,
        samples=samples,
        random_seed=0 if random_seed is None else random_seed,
    )
    evaluate.Protocol(measure["protocol"], measure["window"], measure["samples"], measure["random_seed"]).validate()
    runs = [names.resolve_run(run) for run in checkpoints] or [run_folder(None)]
    # Every run and its weights loaded before any is scored: a missing one fails at once, not
    # after the others' figures were computed and thrown away.
    models = [
        (run_dir, api.load(run_dir, kind, engine))
        for run_dir in runs
        for kind in eval_rows.weights_to_evaluate(run_dir, which)
    ]
    what = {"path": text_path} if text_path else {"split": split}
    read = dict(what=what, data_dir=data_dir, strict=strict, encoding=encoding)
    if adapt:
        score = partial(eval_rows.adaptive_row, **read, learning_rate=adapt_learning_rate)
    else:
        score = partial(eval_rows.measured_row, **read, measure=measure)
    rows = eval_rows.score_all(models, score)
    if as_json:
        click.echo(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
    else:
        ui.console.print(ui.eval_table(rows))


def _refuse_options_that_do_not_apply(protocol, window, samples, random_seed, engine, adapt, adapt_learning_rate):
    """Refuse (exit 2, naming the option) an option that the chosen protocol or --adapt would ignore."""
    if adapt_learning_rate is not None and not adapt:
        raise click.BadParameter(
            "is the learning rate of --adapt; add --adapt or drop it.", param_hint="--adapt-learning-rate"
        )
    if adapt and protocol != "streaming":
        raise click.BadParameter(
            "scores the text as one stream (its own protocol, adaptive); drop --protocol windows.", param_hint="--adapt"
        )
    if adapt and engine == "numpy":
        raise click.BadParameter("needs TensorFlow's gradients; drop --engine numpy.", param_hint="--adapt")

    if protocol == "streaming":
        for name, value in (("--window", window), ("--samples", samples), ("--random-seed", random_seed)):
            if value is not None:
                raise click.BadParameter(
                    "applies to --protocol windows only; streaming carries the state through the whole text. "
                    "Add --protocol windows or drop it.",
                    param_hint=name,
                )
    if random_seed is not None and samples is None:
        raise click.BadParameter(
            "seeds the random windows of --samples; add --samples K or drop it.", param_hint="--random-seed"
        )
