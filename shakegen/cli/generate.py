"""shakegen generate: sample texts from a run (streamed to a terminal, printed, or as JSON), or the
likeliest continuations by beam search."""

from __future__ import annotations

from pathlib import Path

import click

from shakegen.cli import generate_output, ui
from shakegen.cli.shared import engine_option, random_seed_option, run_folder, run_options


@click.command()
@click.option("--seed", "seed_text", default=None, help="Text to start from. [default: a newline]")
@click.option(
    "--seed-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the seed text from a file (any length: it is fed in windows).",
)
@click.option(
    "--encoding",
    default=None,
    help="Encoding of --seed-file. [default: the encoding the run's corpus was prepared with]",
)
@run_options("sample from")
@click.option("--length", type=int, default=500, show_default=True, help="Characters to generate per sample.")
@click.option(
    "--temperature",
    type=float,
    default=0.8,
    show_default=True,
    help="Sampling temperature; 0 (or anything below 1.2e-38) is greedy.",
)
@click.option("--top-k", type=int, default=None, help="Sample only among the K most likely characters.")
@click.option(
    "--top-p",
    type=float,
    default=None,
    help="Sample only among the most likely characters whose probability reaches P.",
)
@click.option(
    "--min-p",
    type=float,
    default=None,
    help="Sample only among the characters at least P times as likely as the most likely one.",
)
@click.option(
    "--ban", default=None, metavar="CHARS", help='Never emit these characters ("\\n" and "\\t" typed as escapes).'
)
@click.option(
    "--stop",
    "stops",
    multiple=True,
    metavar="TEXT",
    help='End a sample where TEXT first appears (repeatable; "\\n" and "\\t" typed as escapes).',
)
@click.option("--keep-stop", is_flag=True, help="Keep the stop text at the end of the sample (dropped by default).")
@click.option("--lines", type=click.IntRange(min=1), default=None, help="End a sample once N line ends are generated.")
@click.option(
    "--beam",
    type=click.IntRange(1, 4096),  # beam.MAX_BEAMS
    default=None,
    metavar="K",
    help="Print the K most likely continuations (beam search; deterministic) and their log-probabilities.",
)
@click.option(
    "--num-samples",
    type=click.IntRange(min=1, max=1024),
    default=1,
    show_default=True,
    help="Independent samples, drawn together as one batch.",
)
@random_seed_option("Seed for sampling, 0 to 2**32 - 1 (sample i uses seed + i). [default: random, printed]")
@click.option("--skip-unknown", is_flag=True, help="Drop seed characters the model does not know, with a warning.")
@engine_option("samples: auto uses the NumPy engine (no TensorFlow), TensorFlow for 8 samples or more")
@click.option("--no-stream", is_flag=True, help="Print the text only when it is complete.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"texts": [...], "random_seed", "engine", ...} as JSON on stdout.',
)
def generate(
    seed_text,
    seed_file,
    encoding,
    checkpoint_dir,
    which,
    length,
    temperature,
    top_k,
    top_p,
    num_samples,
    random_seed,
    skip_unknown,
    engine,
    no_stream,
    as_json,
    min_p=None,
    ban=None,
    stops=(),
    keep_stop=False,
    lines=None,
    beam=None,
) -> None:
    """Generate text from a trained run, streaming it to stdout.

    \b
    Example:
      shakegen generate --seed "ROMEO:"
      shakegen generate --seed "JULIET:" --length 1000 --temperature 0.6 --top-p 0.9 > scene.txt
      shakegen generate --checkpoint checkpoints/quick --num-samples 3 --random-seed 7 --json
      shakegen generate --seed "ROMEO:" --stop "\\n\\n"           # one speech
      shakegen generate --seed "ROMEO:" --length 80 --beam 5       # the five likeliest
    """
    import sys

    _refuse_bad_seed_or_length(seed_text, seed_file, length)
    implicit_seed = seed_text is None and seed_file is None
    from shakegen import api
    from shakegen.use import sampling, stopping

    model = api.load(run_folder(checkpoint_dir), which, engine)  # float32 whatever the run was trained in
    try:
        options = model.sampling_options(temperature, top_k, top_p)
    except sampling.SamplingError as error:
        raise click.BadParameter(str(error)) from None
    ban = stopping.unescape(ban) if ban else None
    rule, banned = _stop_and_ban(model, stops, keep_stop, lines, ban, min_p, options)
    if beam is not None:
        _refuse_with_beam(click.get_current_context(), num_samples)
    seed_text = _seed_text(model, seed_text, seed_file, encoding, skip_unknown)
    if beam is not None:
        generate_output.print_beams(
            model, None if implicit_seed else seed_text, length, beam, rule, ban, as_json, which
        )
        return
    if random_seed is None:
        random_seed = sampling.draw_random_seed()
    how = "greedy" if options.greedy else f"temperature {temperature:g}"
    used = sampling.sampling_engine(model.engine_choice, num_samples, numpy_only=bool(banned or min_p))
    ui.message(f"[dim]{model.info.run_dir} ({which}), {how}, random seed {random_seed}, {used} engine[/]")

    out = sys.stdout
    stream = not no_stream and not as_json and num_samples == 1 and out.isatty()
    prefix = "" if implicit_seed else seed_text
    sampled = dict(seed_text=seed_text, length=length, options=options, num_samples=num_samples)
    texts, seconds = generate_output.sample(
        model, prefix, out if stream else None, random_seed, ban, min_p, rule, **sampled
    )
    if as_json:
        asked = dict(which=which, length=length, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
        asked.update(ban=ban, keep_stop=keep_stop, lines=lines)
        generate_output.write_json(out, generate_output.sample_report(model, texts, random_seed, rule, **asked))
    elif stream:
        out.write("\n")
    else:
        generate_output.write_texts(out, texts, "sample", several=num_samples > 1)
    out.flush()
    generate_output.report_end(model, rule, sum(len(text) - len(prefix) for text in texts), seconds)


def _refuse_bad_seed_or_length(seed_text, seed_file, length) -> None:
    if seed_text is not None and seed_file is not None:
        raise click.BadParameter("give --seed or --seed-file, not both.", param_hint="--seed-file")
    if length < 1:
        raise click.BadParameter(f"must be a positive number of characters, got {length}.", param_hint="--length")


def _seed_text(model, seed_text, seed_file, encoding, skip_unknown) -> str:
    """The text sampling starts from: --seed, --seed-file's (in --encoding or the corpus's) or a newline,
    checked against the vocabulary (with --skip-unknown, unknown characters dropped with a warning)."""
    from shakegen.use import sampling

    if seed_file is not None:
        seed_text = sampling.read_seed_file(seed_file, encoding or model.info.data.get("options", {}).get("encoding"))
    elif seed_text is None:
        seed_text = "\n"
    seed_text, dropped = model.seed_text(seed_text, skip_unknown)
    if dropped:
        ui.message(f"[yellow]Warning:[/] dropped characters the model does not know: {', '.join(map(repr, dropped))}.")
    return seed_text


def _stop_and_ban(model, stops, keep_stop, lines, ban, min_p, options):
    """generate's --stop/--keep-stop/--lines as a StopRule and --ban's ids, refusing bad values (exit 2)."""
    from shakegen.errors import SamplingError
    from shakegen.use import logits, stopping

    try:
        rule = model.stop_rule([stopping.unescape(text) for text in stops], keep_stop, lines)
    except SamplingError as error:
        raise click.BadParameter(str(error), param_hint="--stop") from None
    try:
        banned = model.ban_ids(ban)
    except SamplingError as error:
        raise click.BadParameter(str(error), param_hint="--ban") from None
    try:
        logits.check_options(options.temperature, options.top_k, options.top_p, len(model.vocabulary), min_p=min_p)
    except SamplingError as error:
        raise click.BadParameter(str(error), param_hint="--min-p") from None
    return rule, banned


def _refuse_with_beam(ctx: click.Context, num_samples: int) -> None:
    """Beam search is deterministic and gives K texts itself: the sampling options do not apply to it."""
    if num_samples != 1:
        raise click.BadParameter("--beam K gives K texts itself; drop --num-samples.", param_hint="--beam")
    for name in ("temperature", "top_k", "top_p", "min_p", "random_seed", "engine", "no_stream"):
        if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None):
            option = "--" + name.replace("_", "-")
            raise click.BadParameter(
                f"beam search is deterministic and runs on the NumPy engine: {option} does not apply; drop it.",
                param_hint="--beam",
            )
