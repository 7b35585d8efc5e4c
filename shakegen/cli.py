"""The shakegen command line: parse options, call one library function, render the result."""

from __future__ import annotations

from pathlib import Path

import click

from shakegen import __version__, corpus, ui

EXPECTED_ERRORS = (ValueError, FileNotFoundError, RuntimeError, OSError)


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
    help="Retries on connection errors, HTTP 429 and 5xx (with backoff, honouring Retry-After).",
)
def download(url: str, out: Path, sha256: str | None, force: bool, timeout: float, retries: int) -> None:
    """Download a text corpus over HTTP and store it atomically.

    \b
    Example:
      shakegen download
      shakegen download --url https://example.org/corpus.txt --out data/raw/mine.txt
    """
    from shakegen import download as downloader

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
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Where the prepared corpus goes (in <data-dir>/prepared).",
)
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
    from shakegen import prepare as preparing

    if input_path is None:
        input_path, which = preparing.default_input()
        ui.message(f"Preparing {which}.")
    options = preparing.PrepareOptions(lowercase, strip_punctuation, val_fraction, encoding)
    with ui.byte_progress("Preparing") as update:
        meta = preparing.prepare_corpus(
            input_path, data_dir, options, progress=lambda stage, done, total: update(done, total)
        )
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
