"""The shakegen command line: the group ``main`` and its commands, one module each.

Each command parses its options, calls one library function and renders the result; what several
share (options, the run a command loads, one-line errors) is in ``shared``.
"""

from __future__ import annotations

import click

from shakegen.cli import compare, download, export, generate, inspect, prepare, serve, train, write
from shakegen.cli import eval as evaluate
from shakegen.cli.shared import ShakegenGroup
from shakegen.version import __version__


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


main.add_command(download.download)
main.add_command(prepare.prepare)
main.add_command(train.train)
main.add_command(generate.generate)
main.add_command(evaluate.eval_command)
main.add_command(compare.compare)
main.add_command(export.export)
main.add_command(serve.serve)
main.add_command(inspect.inspect)
main.add_command(write.write)
