"""shakegen prepare: clean a corpus, build its vocabulary, split and encode it, and show what came out."""

from __future__ import annotations

from pathlib import Path

import click

from shakegen.cli import ui
from shakegen.cli.shared import data_dir_option


@click.command()
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
