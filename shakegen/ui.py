"""Everything a person sees in the terminal: one rich console on stderr, tables, progress bars.

stdout is kept for results (generated text, --json) so that pipes stay clean. rich already
honours NO_COLOR and drops colour and live displays when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

console = Console(stderr=True, highlight=False)


def message(text: str) -> None:
    console.print(text)


@contextlib.contextmanager
def byte_progress(description: str) -> Iterator:
    """A progress bar in bytes; yields ``update(done, total)``. Silent when not a terminal."""
    if not console.is_terminal:
        yield lambda done, total: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def key_value_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(key, value)
    return table


def show_char(char: str) -> str:
    """A character as a person can read it in a table."""
    names = {"\n": "\\n", "\t": "\\t", " ": "space"}
    return names.get(char, char)
