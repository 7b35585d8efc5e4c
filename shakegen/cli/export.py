"""shakegen export: a run as a TensorFlow SavedModel, or as a static web page that samples in the browser."""

from __future__ import annotations

from pathlib import Path

import click

from shakegen.cli import ui
from shakegen.cli.shared import run_folder, run_options


@click.command()
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
