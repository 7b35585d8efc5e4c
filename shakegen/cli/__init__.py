"""The shakegen command line: parse options, call one library function, render the result."""

from __future__ import annotations

from pathlib import Path

import click

from shakegen.cli import ui
from shakegen.config import (
    CELLS,
    LR_SCHEDULES,
    MAX_RANDOM_SEED,
    PRECISIONS,
    PRESETS,
    RECURRENT_INITIALIZERS,
    RNN_KERNELS,
)
from shakegen.data import corpus
from shakegen.errors import ShakegenError, TrainingInterrupted
from shakegen.runs import names
from shakegen.serve.limits import Limits as ServeLimits
from shakegen.training.distribute import STRATEGIES
from shakegen.version import __version__

# Library errors derive from ShakegenError; OSError covers the machine's own (disk full, permissions).
# Anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (ShakegenError, OSError)


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


def run_folder(checkpoint_dir: Path | None) -> Path:
    """The run a command loads (names.resolve_run), saying so on stderr when it falls back to the
    pretrained model because no run exists under checkpoints/."""
    run_dir = names.resolve_run(checkpoint_dir)
    if checkpoint_dir is None and names.is_pretrained(run_dir):
        ui.message(f"No run under {names.DEFAULT_CHECKPOINTS}/: using the pretrained model (--checkpoint pretrained).")
    return run_dir


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


@click.group(cls=ShakegenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shakegen")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
def main(debug: bool) -> None:
    """Character-level text generation with a GRU language model.

    \b
    The whole demo, offline, on the embedded Tiny Shakespeare:
      shakegen train --preset quick
      shakegen generate --seed "ROMEO:"
      shakegen eval
    """


@main.command()
@click.option("--url", default=corpus.TINY_SHAKESPEARE_URL, show_default=True, help="Where to fetch the corpus from.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=corpus.DEFAULT_RAW_PATH,
    show_default=True,
    help="Where to store it.",
)
@click.option(
    "--sha256",
    default=None,
    help="Expected SHA-256 (hex). Default: the known hash for the default URL, none otherwise; '' skips the check.",
)
@click.option("--force", is_flag=True, help="Fetch even when a verified copy is already present.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the connection and for each read.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Retries on connection errors, HTTP 429 and 5xx (with backoff, honouring Retry-After up to 60 s per wait).",
)
def download(url: str, out: Path, sha256: str | None, force: bool, timeout: float, retries: int) -> None:
    """Download a text corpus over HTTP and store it atomically.

    \b
    Example:
      shakegen download
      shakegen download --url https://example.org/corpus.txt --out data/raw/mine.txt
    """
    from shakegen.data import download as downloader

    expected = downloader.default_sha256(url) if sha256 is None else (sha256 or None)
    with ui.byte_progress("Downloading") as update:
        result = downloader.download(
            url, out, sha256=expected, force=force, timeout=timeout, retries=retries, progress=update
        )
    verified = " (SHA-256 verified)" if expected else ""
    if result.fetched:
        ui.message(f"Saved {result.size:,} bytes to {result.path}{verified}.")
    else:
        ui.message(f"{result.path} is already present{verified}; nothing to fetch (use --force to fetch again).")


@main.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Text file to prepare. Default: data/raw/tinyshakespeare.txt if present, else the embedded copy.",
)
@data_dir_option("Where the prepared corpus goes (in <data-dir>/prepared).")
@click.option("--lowercase", is_flag=True, help="Lower-case the text.")
@click.option("--strip-punctuation", is_flag=True, help="Remove Unicode punctuation characters.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of the text, taken from its end, held out for validation.",
)
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of the input file.")
def prepare(
    input_path: Path | None,
    data_dir: Path,
    lowercase: bool,
    strip_punctuation: bool,
    val_fraction: float,
    encoding: str,
) -> None:
    """Clean a corpus, build its vocabulary, split it into train/val and encode it.

    \b
    Example:
      shakegen prepare
      shakegen prepare --input my_corpus.txt --lowercase --val-fraction 0.05
    """
    from shakegen.data import prepare as preparing

    if input_path is None:
        input_path, which = preparing.default_input()
        ui.message(f"Preparing {which}.")
    options = preparing.PrepareOptions(lowercase, strip_punctuation, val_fraction, encoding)
    with ui.byte_progress("Preparing") as update:

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "wait":
                ui.message(f"Another shakegen process is preparing data in {data_dir}; waiting for it to finish.")
            else:
                update(done, total)

        meta = preparing.prepare_corpus(input_path, data_dir, options, progress=progress)
    ui.console.print(prepare_table(meta, preparing.prepared_dir(data_dir)))


def prepare_table(meta: dict, folder: Path):
    rows = [
        ("source", meta["source"]),
        ("characters", f"{meta['characters']:,}"),
        ("vocabulary", f"{meta['vocab_size']:,} distinct"),
        ("train split", f"{meta['train_characters']:,}"),
        ("val split", f"{meta['val_characters']:,} (last {meta['options']['val_fraction']:.0%})"),
        (
            "most frequent",
            "  ".join(f"{ui.show_char(c)} {n / meta['characters']:.1%}" for c, n in meta["most_frequent"][:6]),
        ),
        ("SHA-256", meta["sha256"][:16] + "…"),
        ("written to", str(folder)),
    ]
    return ui.key_value_table("Prepared corpus", rows)


def _preset_help(name: str, text: str) -> str:
    values = {preset: getattr(config, name) for preset, config in PRESETS.items()}
    shown = ", ".join(f"{preset} {value}" for preset, value in values.items())
    return f"{text} [preset: {shown}]"


@main.command()
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="quick",
    show_default=True,
    help="Named set of hyperparameters; the options below override it.",
)
@click.option(
    "--cell",
    type=click.Choice(CELLS),
    default=None,
    help=_preset_help("cell", "Recurrent cell variant."),
)
@click.option("--num-layers", type=int, default=None, help=_preset_help("num_layers", "GRU layers."))
@click.option("--rnn-units", type=int, default=None, help=_preset_help("rnn_units", "Units per GRU layer."))
@click.option("--embedding-dim", type=int, default=None, help=_preset_help("embedding_dim", "Embedding size."))
@click.option(
    "--dropout", type=float, default=None, help=_preset_help("dropout", "Dropout after each GRU layer, in [0, 1).")
)
@click.option(
    "--weight-drop",
    type=float,
    default=None,
    help=_preset_help("weight_drop", "Fraction of each recurrent kernel dropped per batch (DropConnect), in [0, 1)."),
)
@click.option(
    "--ema-decay",
    type=float,
    default=None,
    help=_preset_help(
        "ema_decay",
        "Validate, and keep as best.npz, an exponential moving average of the weights with this decay "
        "(0.999: about the last 1,000 steps); 0: off. last.npz keeps the raw weights for --resume.",
    ),
)
@click.option(
    "--recurrent-initializer",
    type=click.Choice(RECURRENT_INITIALIZERS),
    default=None,
    help=_preset_help("recurrent_initializer", "Initialiser of the recurrent kernels."),
)
@click.option(
    "--seq-length", type=int, default=None, help=_preset_help("seq_length", "Characters per training window.")
)
@click.option("--batch-size", type=int, default=None, help=_preset_help("batch_size", "Windows per batch."))
@click.option(
    "--epochs",
    type=int,
    default=None,
    help=_preset_help(
        "epochs", "Epochs. Any budget given (this or --max-*) replaces the preset's: tiny's 20-step cap goes."
    ),
)
@click.option(
    "--max-steps",
    type=int,
    default=None,
    help="Stop after this many optimizer steps in all; the learning-rate schedule ends there.",
)
@click.option(
    "--max-minutes",
    type=float,
    default=None,
    help="Stop after this many minutes of training in all (the schedule then follows the epochs).",
)
@click.option(
    "--max-characters",
    type=int,
    default=None,
    help="Stop after training on this many characters in all; the learning-rate schedule ends there.",
)
@click.option(
    "--learning-rate", type=float, default=None, help=_preset_help("learning_rate", "Adam's initial learning rate.")
)
@click.option(
    "--final-learning-rate",
    type=float,
    default=None,
    help=_preset_help("final_learning_rate", "Where the cosine schedule ends: at the end of the budget."),
)
@click.option(
    "--lr-schedule",
    type=click.Choice(LR_SCHEDULES),
    default=None,
    help=_preset_help("lr_schedule", "After the warm-up: cosine decay to --final-learning-rate, or constant."),
)
@click.option(
    "--warmup-steps",
    type=int,
    default=None,
    help=_preset_help("warmup_steps", "Raise the learning rate linearly from 0 over this many steps first."),
)
@click.option(
    "--weight-decay",
    type=float,
    default=None,
    help=_preset_help(
        "weight_decay", "Decoupled weight decay (AdamW; times the learning rate) on every matrix, not biases; 0: off."
    ),
)
@click.option(
    "--clip-norm",
    type=float,
    default=None,
    help=_preset_help("clip_norm", "Clip gradients to this global norm; 0 disables."),
)
@click.option(
    "--patience", type=int, default=None, help="Stop when val loss has not improved for this many validations."
)
@click.option(
    "--checkpoint-minutes",
    type=float,
    default=None,
    help=_preset_help("checkpoint_minutes", "Write last.npz this often inside an epoch; 0: only at validations."),
)
@click.option(
    "--eval-every",
    type=int,
    default=None,
    help="Validate (history row, best.npz, early stopping) every this many steps. [default: once per epoch]",
)
@click.option(
    "--val-characters",
    type=int,
    default=None,
    help="Validate on the first N characters of the validation split (for huge corpora). [default: all]",
)
@click.option(
    "--stateful/--no-stateful",
    default=None,
    help=_preset_help(
        "stateful",
        "Carry the GRU state from one training window to the next (contiguous streams per batch row, "
        "truncated backpropagation through time, as char-rnn trains).",
    ),
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=None,
    help=_preset_help(
        "precision",
        "Compute precision; auto: mixed_bfloat16 on CPUs with AMX or AVX512-BF16 (where it is faster), else "
        "float32. Saved concrete in config.json.",
    ),
)
@click.option(
    "--rnn-kernel",
    type=click.Choice(RNN_KERNELS),
    default=None,
    help="What runs the GRU time loop: fused (shakegen's loop), keras (Keras's GRU, cuDNN on a GPU, for the gru and "
    "classic cells), or auto (keras for gru in float32 when a GPU is visible, else fused). Same weights either way; "
    "a resumed run may change it. [default: auto]",
)
@click.option(
    "--random-seed",
    type=click.IntRange(0, MAX_RANDOM_SEED),
    default=None,
    help=_preset_help("random_seed", "Seed for weights, data order and dropout, 0 to 2**32 - 1."),
)
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
    display = ui.TrainDisplay()
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
    ui.message(f'Run folder: {shown} (generate with: shakegen generate --checkpoint {shown} --seed "ROMEO:")')


@main.command()
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
@click.option(
    "--random-seed",
    type=click.IntRange(0, MAX_RANDOM_SEED),
    default=None,
    help="Seed for sampling, 0 to 2**32 - 1 (sample i uses seed + i). [default: random, printed]",
)
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
    import json
    import sys
    import time

    if seed_text is not None and seed_file is not None:
        raise click.BadParameter("give --seed or --seed-file, not both.", param_hint="--seed-file")
    if length < 1:
        raise click.BadParameter(f"must be a positive number of characters, got {length}.", param_hint="--length")
    implicit_seed = seed_text is None and seed_file is None
    from shakegen import api
    from shakegen.use import sampling, stopping

    model = api.load(run_folder(checkpoint_dir), which, engine)  # float32 whatever the run was trained in
    info = model.info
    try:
        options = model.sampling_options(temperature, top_k, top_p)
    except sampling.SamplingError as error:
        raise click.BadParameter(str(error)) from None
    ban = stopping.unescape(ban) if ban else None
    rule, banned = _stop_and_ban(model, stops, keep_stop, lines, ban, min_p, options)
    if beam is not None:
        _refuse_with_beam(click.get_current_context(), num_samples)
    if seed_file is not None:
        seed_text = sampling.read_seed_file(seed_file, encoding or info.data.get("options", {}).get("encoding"))
    elif seed_text is None:
        seed_text = "\n"
    seed_text, dropped = model.seed_text(seed_text, skip_unknown)
    if dropped:
        ui.message(f"[yellow]Warning:[/] dropped characters the model does not know: {', '.join(map(repr, dropped))}.")
    if beam is not None:
        _print_beams(model, None if implicit_seed else seed_text, length, beam, rule, ban, as_json, which)
        return
    if random_seed is None:
        random_seed = sampling.draw_random_seed()
    how = "greedy" if options.greedy else f"temperature {temperature:g}"
    used = "numpy" if banned or min_p else model.sampling_engine(num_samples)  # ban and min-p: the engine's
    ui.message(f"[dim]{info.run_dir} ({which}), {how}, random seed {random_seed}, {used} engine[/]")

    out = sys.stdout
    stream = not no_stream and not as_json and num_samples == 1 and out.isatty()
    prefix = "" if implicit_seed else seed_text
    if stream:
        out.write(prefix)
        out.flush()

    started = time.perf_counter()
    collected = sampling.TextCollector(num_samples, prefix)
    blocks = model.sample_blocks(seed_text, length, options, num_samples, random_seed, ban=ban, min_p=min_p, stop=rule)
    for block in blocks:
        collected.add(block)
        if stream:
            out.write(block[0])
            out.flush()
    seconds = time.perf_counter() - started
    texts = collected.texts()
    if as_json:
        report = {"texts": texts, "random_seed": random_seed, "engine": model.last_engine, "run": str(info.run_dir)}
        report.update(which=which, length=length, temperature=temperature, top_k=top_k, top_p=top_p)
        report.update(min_p=min_p, ban=ban, stop=list(rule.stops))
        report.update(keep_stop=keep_stop, lines=lines, stopped=model.last_stop_reasons)
        out.write(json.dumps(report, ensure_ascii=False) + "\n")
    elif stream:
        out.write("\n")
    else:
        for index, text in enumerate(texts):
            if num_samples > 1:
                out.write(f"{'' if index == 0 else chr(10)}--- sample {index + 1} ---\n")
            out.write(text)
            if out.isatty() or num_samples > 1:
                out.write("\n")
    out.flush()
    characters = sum(len(text) - len(prefix) for text in texts)
    if rule.active:
        ended = ", ".join(f"{reason['stop_reason']}" for reason in model.last_stop_reasons)
        ui.message(f"[dim]ended by: {ended}[/]")
    ui.message(f"[dim]{characters:,} characters in {seconds:.2f} s ({characters / max(seconds, 1e-9):,.0f} char/s)[/]")


def _stop_and_ban(model, stops, keep_stop, lines, ban, min_p, options):
    """generate's --stop/--keep-stop/--lines as a StopRule and --ban's ids, refusing bad values (exit 2)."""
    from shakegen.errors import SamplingError
    from shakegen.use import engine as numpy_engine
    from shakegen.use import stopping

    try:
        rule = model.stop_rule([stopping.unescape(text) for text in stops], keep_stop, lines)
    except SamplingError as error:
        raise click.BadParameter(str(error), param_hint="--stop") from None
    try:
        banned = model.ban_ids(ban)
    except SamplingError as error:
        raise click.BadParameter(str(error), param_hint="--ban") from None
    try:
        numpy_engine.check_options(
            options.temperature, options.top_k, options.top_p, len(model.vocabulary), min_p=min_p
        )
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


def _print_beams(model, seed, length, beams, rule, ban, as_json, which) -> None:
    """--beam K: the texts on stdout as samples are printed, each beam's log-probability on stderr (or --json)."""
    import json
    import sys

    found = model.beam_search(
        seed, length, beams, stop=list(rule.stops), keep_stop=rule.keep_stop, lines=rule.lines, ban=ban
    )
    ui.message(f"[dim]{model.info.run_dir} ({which}), beam search with {beams} beams, numpy engine[/]")
    out = sys.stdout
    if as_json:
        report = {
            "texts": [b["text"] for b in found],
            "beams": found,
            "engine": "numpy",
            "run": str(model.info.run_dir),
        }
        report.update(which=which, length=length, beam=beams, stop=list(rule.stops), keep_stop=rule.keep_stop)
        report.update(lines=rule.lines, ban=ban)
        out.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        for index, found_beam in enumerate(found):
            if beams > 1:
                out.write(f"{'' if index == 0 else chr(10)}--- beam {index + 1} ---\n")
            out.write(found_beam["text"])
            if out.isatty() or beams > 1:
                out.write("\n")
        out.flush()
    for index, found_beam in enumerate(found):
        stopped = found_beam["stop_reason"] + (f" {found_beam['stop_text']!r}" if found_beam["stop_text"] else "")
        ui.message(
            f"[dim]beam {index + 1}: log-probability {found_beam['log_prob']:.3f} "
            f"({found_beam['log_prob_per_character']:.4f} per character), {found_beam['characters']} characters, "
            f"ended by {stopped}[/]"
        )


def _weights_to_evaluate(run_dir: Path, which: str) -> list[str]:
    """``best``, ``last`` or, for ``both``, those of the two the run holds (saying so when one is missing)."""
    from rich.markup import escape

    from shakegen.runs import checkpoint

    if which != "both":
        return [which]
    held = [kind for kind in ("best", "last") if checkpoint.checkpoint_path(run_dir, kind).is_file()]
    if len(held) == 1:
        missing = "last" if held == ["best"] else "best"
        ui.console.print(  # one line, however long the path
            f"[yellow]Note: {escape(str(run_dir))} holds only its {held[0]} weights (no {missing}.npz); "
            f"evaluating {held[0]} only.[/]",
            soft_wrap=True,
        )
        return held
    return ["best", "last"]  # both, or neither: loading then says what is missing


def _adaptive_row(model, what: dict, data_dir, strict, encoding, learning_rate, progress) -> dict:
    """eval --adapt's row for a loaded run: the adaptive protocol (``shakegen.use.adapt``), named as its own."""
    from shakegen.use import adapt, evaluate

    found = evaluate.evaluation_ids(
        model.info,
        split=what.get("split"),
        text_path=what.get("path"),
        data_dir=data_dir,
        strict=strict,
        encoding=encoding,
    )
    rate = adapt.DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate
    row = adapt.report(model.run_dir, model.which, found.ids, rate, progress=progress)
    return {
        **row,
        "text": str(what["path"]) if "path" in what else f"{what['split']} split",
        "left_out_characters": found.left_out,
        "same_corpus": found.same_corpus,
        "corpus_note": found.corpus_note,
        "engine": "tensorflow",
    }


@main.command(name="eval")
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
@click.option(
    "--random-seed",
    type=click.IntRange(0, MAX_RANDOM_SEED),
    default=None,
    help="Seed of the random windows of --samples, from 0 to 2**32 - 1. [default: 0]",
)
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
    --json). Training minutes are those up to the weights evaluated. --adapt scores a third
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
    from rich.markup import escape

    # Every run and its weights loaded before any is scored: a missing one fails at once, not
    # after the others' figures were computed and thrown away.
    models = [
        (run_dir, api.load(run_dir, kind, engine)) for run_dir in runs for kind in _weights_to_evaluate(run_dir, which)
    ]
    what = {"path": text_path} if text_path else {"split": split}
    rows = []
    for index, (run_dir, model) in enumerate(models):
        first_of_run = index == 0 or models[index - 1][0] != run_dir
        with ui.byte_progress(f"Evaluating {run_dir} ({model.which})") as update:
            if adapt:
                row = _adaptive_row(model, what, data_dir, strict, encoding, adapt_learning_rate, update)
            else:
                row = model.evaluate(
                    **what, data_dir=data_dir, strict=strict, encoding=encoding, progress=update, **measure
                ).to_json()
        if row["left_out_characters"] and first_of_run:
            ui.message(
                f"[yellow]Left out {row['left_out_characters']:,} characters {escape(str(run_dir))} does not know "
                "(--strict refuses them).[/]"
            )
        if row["corpus_note"] and first_of_run:
            ui.console.print(f"[yellow]Note: {escape(row['corpus_note'])}[/]", soft_wrap=True)  # one line
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
    else:
        ui.console.print(ui.eval_table(rows))


@main.command()
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
@click.option(
    "--random-seed",
    type=click.IntRange(0, MAX_RANDOM_SEED),
    default=PRESETS["quick"].random_seed,
    show_default=True,
    help="Seed shared by every cell when --seeds is not given (0 to 2**32 - 1).",
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
    # The budget is the comparison's: a budget given replaces the preset's caps (tiny's 20 steps).
    base = PRESETS[preset].replace(max_minutes=minutes, max_characters=characters, random_seed=random_seed)
    display = ui.TrainDisplay()
    try:
        rows = comparing.compare(
            cell_list, base, out_dir, data_dir, seeds=seed_list, progress=display, overwrite=overwrite
        )
    finally:
        display.close()
    ui.console.print(ui.compare_table(rows))
    ui.message(f"Wrote {out_dir}/compare.csv, compare.json and compare.png.")


@main.command()
@run_options("export")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["savedmodel", "web"]),
    default="savedmodel",
    show_default=True,
    help="savedmodel: a TensorFlow SavedModel; web: a static web page that samples in the browser "
    "(index.html, shakegen.js, the float16 weights in weights.js, card.json), opened from disk or any static host.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the SavedModel or the web page (new or empty; see --overwrite).",
)
@click.option("--overwrite", is_flag=True, help="Replace an export of the same format already in --out.")
def export(checkpoint_dir, which, export_format, out_dir, overwrite) -> None:
    """Export a run as a TensorFlow SavedModel, or as a web page, that samples without shakegen.

    The SavedModel's `generate` signature gives exactly the text `shakegen generate` gives for
    the same seed, length, temperature, top-k, top-p and random seed (without the seed);
    `log_prob` scores a text as `shakegen eval --text` does. The web page (`--format web`)
    samples the float16 weights in the browser with the engine's noise, with no server.

    \b
    Examples:
      shakegen export --checkpoint checkpoints/quick --out exported/quick
      python -c 'import tensorflow as tf; m = tf.saved_model.load("exported/quick"); print(m.signatures)'
      shakegen export --format web --checkpoint pretrained --out site    # then open site/index.html
    """
    run_dir = run_folder(checkpoint_dir)
    if export_format == "web":  # no TensorFlow: the page needs only the run folder
        from shakegen.exports import webpage as webexport

        page = webexport.export_web(run_dir, out_dir, which, overwrite=overwrite)
        ui.message(
            f"Exported {page.run_dir} ({which}) to {page.out_dir} as a web page ({page.folder_bytes / 2**20:.1f} MiB): "
            f"open {page.out_dir / 'index.html'} in a browser, or put the folder on any static host."
        )
        return
    from shakegen.model.backend import import_tensorflow

    import_tensorflow()
    from shakegen.exports import savedmodel as exporting

    result = exporting.export_run(run_dir, out_dir, which, overwrite=overwrite)
    ui.message(
        f"Exported {result.run_dir} ({which}) to {result.out_dir}: signatures {', '.join(result.signatures)}; "
        "load it with tf.saved_model.load."
    )


@main.command()
@run_options("serve, or 'pretrained'")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback lets other machines in (a warning is printed; use --token).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port; 0 picks a free one."
)
@click.option(
    "--token",
    envvar="SHAKEGEN_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' on every /v1 route (/healthz and the page stay open). "
    "[env: SHAKEGEN_TOKEN]",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=1),
    default=ServeLimits.max_length,
    show_default=True,
    help="Most new characters per sample a request may ask for.",
)
@click.option(
    "--max-seed-characters",
    type=click.IntRange(min=1),
    default=ServeLimits.max_seed_characters,
    show_default=True,
    help="Longest seed a request may send.",
)
@click.option(
    "--max-samples",
    type=click.IntRange(min=1, max=1024),
    default=ServeLimits.max_samples,
    show_default=True,
    help="Most samples one request may ask for.",
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1),
    default=ServeLimits.max_request_bytes,
    show_default=True,
    help="Largest request body, in bytes.",
)
@click.option(
    "--max-evaluate-characters",
    type=click.IntRange(min=1),
    default=ServeLimits.max_evaluate_characters,
    show_default=True,
    help="Longest text /v1/evaluate scores (it takes turns with sampling; this bounds one request's share).",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests whose Host header names NAME (a proxy's or DNS name of this machine; '*' for any, "
    "which gives up the defence against DNS rebinding). By default only the --host address (and, on loopback, "
    "localhost, 127.0.0.1 and [::1]). Repeatable.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let web pages of ORIGIN (such as https://app.example) use the API: CORS headers and preflights for it. "
    "Pages of any other site are refused. Repeatable.",
)
@engine_option("samples and figures: auto as in generate and eval")
def serve(
    checkpoint_dir,
    which,
    host,
    port,
    token,
    max_length,
    max_seed_characters,
    max_samples,
    max_request_bytes,
    max_evaluate_characters,
    allow_hosts,
    cors_origins,
    engine,
):
    """Serve a run over HTTP: a JSON API, text streamed as server-sent events, and a web page.

    \b
    POST /v1/generate  seed, length, temperature, top_k, top_p, random_seed, num_samples, stream
    POST /v1/evaluate  text (protocol, window) -> loss, perplexity, bits per character
    POST /v1/inspect   text (top_k, units) -> per-character records, as shakegen inspect --json
    GET  /v1/model     the run's card;  GET /healthz;  GET /docs (works offline);  GET / (the page)

    Bodies must be JSON (Content-Type: application/json); a request must name this server in
    its Host header (--allow-host adds names), and web pages of other sites are refused
    unless allowed with --cors-origin, so a page you visit cannot drive a local server.

    \b
    Needs the serve extra: pip install 'shakegen[serve]'. Example:
      shakegen serve --checkpoint checkpoints/quick
      curl -s localhost:8000/v1/generate -H 'Content-Type: application/json' -d '{"seed": "ROMEO:", "length": 200}'
    """
    try:
        from shakegen.serve import server
    except ImportError as error:
        raise click.ClickException(
            f"shakegen serve needs the serve extra ({error.name or error} is missing): pip install 'shakegen[serve]'."
        ) from None
    if token is not None and not token.strip():
        raise click.BadParameter("is empty; give a token, or unset SHAKEGEN_TOKEN for none.", param_hint="--token")
    limits = ServeLimits(max_length, max_seed_characters, max_samples, max_request_bytes, max_evaluate_characters)
    try:
        cors_origins = server.check_cors_origins(cors_origins)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--cors-origin") from None
    if not server.is_loopback(host):
        ui.message(
            f"[yellow]Warning:[/] listening on {host}: other machines can reach this server"
            + ("." if token else " and there is no --token; anyone who can reach it can use it.")
        )
    sock = server.bind(host, port)

    try:
        try:
            hosts = server.host_rule(host, sock, allow_hosts)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--allow-host") from None
        run_dir = run_folder(checkpoint_dir)
        ui.message(f"[dim]Loading {run_dir} ({which})...[/]")
        server.serve(
            sock,
            run_dir,
            which,
            limits,
            token,
            message=lambda text: ui.console.print(text, soft_wrap=True),
            hosts=hosts,
            cors_origins=cors_origins,
            engine=engine,
        )
    finally:
        sock.close()


# -- inspect: per-character surprisal, the model's guesses and the units behind them ----------------------

INSPECT_STYLES = ("", "black on #fde2c8", "black on #fbb47a", "black on #f0703c", "bold white on #b3001b")
ACTIVATION_STYLES = ("white on #1f3fbf", "black on #a9b8f0", "", "black on #f5b0b0", "white on #c0182a")
DRAWN_CHARACTERS = 600  # characters of the text drawn per unit in the terminal


def _read_inspected_text(text: str | None, file_path: Path | None, encoding: str) -> str:
    import sys

    if text is not None and file_path is not None:
        raise click.BadParameter("give the text with --text or --file, not both.", param_hint="--text")
    if text is not None:
        return text
    if file_path is not None:
        if not file_path.is_file():
            if file_path.is_dir():
                what = "is a directory"
            else:
                what = "is not a regular file" if file_path.exists() else "does not exist"
            raise click.BadParameter(f"{file_path} {what}; pass an existing text file.", param_hint="--file")
        raw = file_path.read_bytes()
        where = str(file_path)
    elif sys.stdin is None or sys.stdin.isatty():
        raise click.UsageError("Give a text to inspect: --text '...', --file FILE, or pipe it on stdin.")
    else:
        raw = sys.stdin.buffer.read()
        where = "stdin"
    try:
        return raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as error:
        raise click.ClickException(
            f"Cannot read {where} as {encoding} ({error}); pass its encoding with --encoding."
        ) from None


def _bin(value: float, bounds) -> int:
    return sum(value >= bound for bound in bounds)


def _coloured(chars, levels, styles, colour: bool):
    """The text as rich Text, each character styled by its level (0-4); without colour, each line is
    followed by a line of digits: the level (0-9) of each of its characters."""
    from rich.text import Text

    out = Text()
    if colour:
        for char, level in zip(chars, levels, strict=True):
            out.append("↵\n" if char == "\n" else char, style=styles[min(level // 2, 4)] or None)
        return out
    line, digits = [], []
    for char, level in zip(chars, levels, strict=True):
        if char == "\n":
            out.append("".join(line) + "\n" + "".join(digits) + "\n")
            line, digits = [], []
        else:
            line.append(char)
            digits.append(str(min(level, 9)))
    if line:
        out.append("".join(line) + "\n" + "".join(digits) + "\n")
    return out


def _surprisal_levels(inspection) -> list[int]:
    """0-9 per character: bits rounded down (9 for 9 or more); the first character, not predicted, is 0."""
    return [0 if r.bits is None else min(9, int(r.bits)) for r in inspection.characters]


def _surprisal_style_levels(inspection) -> list[int]:
    from shakegen.use.inspect import BITS_BINS

    return [0 if r.bits is None else 2 * _bin(r.bits, BITS_BINS) for r in inspection.characters]


def _activation_levels(values, colour: bool) -> list[int]:
    if colour:
        return [2 * _bin(v, (-0.6, -0.2, 0.2, 0.6)) for v in values]
    return [min(9, max(0, int((v + 1) / 2 * 10))) for v in values]


def _print_inspection(out, inspection, summary, colour: bool) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from shakegen.use.inspect import BITS_BINS

    levels = _surprisal_style_levels(inspection) if colour else _surprisal_levels(inspection)
    out.print(_coloured(inspection.text, levels, INSPECT_STYLES, colour), end="")
    if colour:
        legend = Text("\nbits per character: ")
        edges = (0, *BITS_BINS)
        for index, style in enumerate(INSPECT_STYLES):
            label = f" ≥ {edges[index]} " if index == len(BITS_BINS) else f" {edges[index]}–{edges[index + 1]} "
            legend.append(label, style=style or "black on white")
            legend.append(" ")
        out.print(legend)
    else:
        out.print("(under each line: the bits of each character, rounded down, 9 for 9 or more)")
    out.print(
        f"\n[bold]{summary.bits_per_character:.3f} bits per character[/] over {summary.characters:,} characters "
        f"predicted (perplexity {2**summary.bits_per_character:.2f})"
    )
    spans = Table(title="Most surprising spans", title_justify="left")
    spans.add_column("position", justify="right")
    spans.add_column("text")
    spans.add_column("bits/char", justify="right")
    for start, text, bits in summary.surprising_spans:
        spans.add_row(str(start), escape(repr(text)), f"{bits:.2f}")
    out.print(spans)
    wrong = Table(title="Most confidently wrong", title_justify="left")
    for name in ("position", "character", "its probability", "top guess", "guess's probability"):
        wrong.add_column(name, justify="right" if name == "position" else "left")
    for position, char, probability, guess, guess_probability in summary.confidently_wrong:
        wrong.add_row(
            str(position),
            escape(ui.show_char(char)),
            f"{probability:.4f}",
            escape(ui.show_char(guess)),
            f"{guess_probability:.3f}",
        )
    out.print(wrong)


def _print_unit(out, inspection, unit, heading: str, colour: bool) -> None:
    from rich.markup import escape

    layer, index = unit
    values = [float(v) for v in inspection.hidden[layer][:DRAWN_CHARACTERS, index]]
    out.print(f"\n[bold]{escape(heading)}[/]")
    levels = _activation_levels(values, colour)
    out.print(_coloured(inspection.text[:DRAWN_CHARACTERS], levels, ACTIVATION_STYLES, colour), end="")
    if not colour:
        out.print("(under each line: the unit's value, 0 for -1 ... 9 for +1)")
    elif len(inspection.text) > DRAWN_CHARACTERS:
        out.print(f"[dim]… (the first {DRAWN_CHARACTERS} characters; blue -1, white 0, red +1)[/]")
    else:
        out.print("[dim](blue -1, white 0, red +1)[/]")


@main.command()
@run_options("inspect")
@click.option("--text", "text", default=None, help="The text to inspect.")
@click.option(
    "--file",
    "file_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Inspect this text file. [default: --text, else the text piped on stdin]",
)
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --file or stdin.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Guesses kept per character.")
@click.option(
    "--neurons", is_flag=True, help="Find the units whose activation tracks simple properties of the text best."
)
@click.option(
    "--unit",
    "units",
    multiple=True,
    metavar="L:N",
    help="Show unit N of layer L (both from 0), and its values in --json and --html. Repeatable.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write a self-contained HTML page: hover a character for the model's guesses.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the per-character records as JSON on stdout.")
def inspect(checkpoint_dir, which, text, file_path, encoding, top_k, neurons, units, html_path, as_json) -> None:
    """Show what the model expected at each character of a text.

    The text is coloured by surprisal (bits for each character: how unlikely the model found
    it, given everything before it), then summed up: mean bits per character, the most
    surprising spans and the characters where the model was most confidently wrong. Each
    character's record holds its log-probability, its rank among the model's guesses and the
    top guesses; --neurons lists the units whose values follow simple properties of the text
    (inside quotes or brackets, position in the line, a speaker's line, after a newline,
    inside a word, vowels) and draws them. Runs on the inference engine, without TensorFlow.

    \b
    Example:
      shakegen inspect --text "ROMEO:\\nBut soft, what light through yonder window breaks?"
      shakegen inspect --file scene.txt --html scene.html --neurons
      cat scene.txt | shakegen inspect --json --unit 2:17
    """
    import json

    from rich.console import Console
    from rich.markup import escape

    from shakegen import fileio
    from shakegen.cli import inspect_page
    from shakegen.use import engine
    from shakegen.use import neurons as neuron_search
    from shakegen.use.inspect import inspect_text, parse_unit, summarize, with_units

    raw = _read_inspected_text(text, file_path, encoding)
    run_dir = run_folder(checkpoint_dir)
    model, info, _ = engine.load(run_dir, which)
    try:
        chosen = [parse_unit(unit, model.num_layers, model.layers[0].units) for unit in units]
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--unit") from None
    inspection = inspect_text(model, info, raw, top_k=top_k, units=chosen, keep_hidden=bool(neurons or chosen))
    if inspection.left_out:
        shown = ", ".join(repr(char) for char in inspection.left_out[:10])
        ui.message(f"[yellow]Left out characters the model does not know: {escape(shown)}.[/]")
    findings, absent = ([], [])
    if neurons:
        findings, absent = neuron_search.search(inspection.hidden, inspection.text, per_property=3)
    best = list(dict.fromkeys((f.layer, f.index) for f in findings if f == _first_of(findings, f.property)))
    drawn = list(dict.fromkeys([*chosen, *best]))
    inspection = with_units(inspection, drawn) if drawn else inspection
    summary = summarize(inspection)
    if html_path is not None:
        page = inspect_page.render(
            inspection,
            title=f"shakegen inspect: {file_path.name if file_path else 'text'}",
            meta=f"{_run_label(run_dir)} ({which}): {summary.bits_per_character:.3f} bits per character over "
            f"{summary.characters:,} characters predicted. Hover or tap a character for the model's guesses.",
            units=[f"{layer}:{index}" for layer, index in drawn],
            findings=findings,
            hint=neuron_search.HINT,
        )
        fileio.write_text(html_path, page)
        ui.message(f"[dim]Wrote {escape(str(html_path))}[/]")
    if as_json:
        report = {
            "run": str(run_dir),
            "which": which,
            **inspection.to_json(),
            "summary": summary.to_json(),
        }
        if neurons or chosen:
            report["neurons"] = {
                "hint": neuron_search.HINT,
                "findings": [f.to_json() for f in findings],
                "absent_properties": absent,
                "units": {
                    f"{layer}:{index}": neuron_search.unit_profile(inspection.hidden, inspection.text, (layer, index))
                    for layer, index in chosen
                },
            }
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    out = Console(highlight=False)
    colour = out.color_system is not None
    _print_inspection(out, inspection, summary, colour)
    if neurons:
        from rich.table import Table

        found = Table(title="Units that track simple properties", title_justify="left")
        for name in ("property", "unit (layer:index)", "correlation"):
            found.add_column(name)
        for f in findings:
            found.add_row(f.property, f.unit, f"{f.correlation:+.3f}")
        out.print(found)
        out.print(f"[dim]{neuron_search.HINT}[/]")
        if absent:
            out.print(f"[dim]Not in this text (so not searched): {', '.join(absent)}[/]")
        for finding in findings:
            if finding == _first_of(findings, finding.property):
                heading = f"{finding.property}: unit {finding.unit}, correlation {finding.correlation:+.3f}"
                _print_unit(out, inspection, (finding.layer, finding.index), heading, colour)
    for unit in chosen:
        profile = neuron_search.unit_profile(inspection.hidden, inspection.text, unit)
        scores = ", ".join(f"{name} {value:+.2f}" for name, value in profile.items())
        _print_unit(out, inspection, unit, f"unit {unit[0]}:{unit[1]}: correlation with {scores}", colour)
    if chosen and not neurons:
        out.print(f"[dim]{neuron_search.HINT}[/]")


def _first_of(findings, name):
    return next(f for f in findings if f.property == name)


def _run_label(run_dir: Path) -> str:
    """The run as a page names it: 'pretrained' for the bundle (no path of this machine), else its folder."""
    return names.shown_name(run_dir)


# --- write: the interactive writing mode (shakegen.cli.writing) ---


@main.command()
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
@click.option(
    "--random-seed",
    type=click.IntRange(0, MAX_RANDOM_SEED),
    default=None,
    help="Seed of the first proposal (each resample adds one). [default: random]",
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
