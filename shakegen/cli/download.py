"""shakegen download: fetch a text corpus over HTTP, verify it and store it atomically."""

from __future__ import annotations

from pathlib import Path

import click

from shakegen.cli import ui
from shakegen.data import corpus


@click.command()
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
@click.option(
    "--force", is_flag=True, help="Fetch even when a verified copy is already present; replace a file already at --out."
)
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
