"""shakegen inspect: what the model expected at each character of a text, as a coloured terminal
view (cli/inspect_terminal.py), a web page (cli/inspect_page.py) or JSON."""

from __future__ import annotations

from pathlib import Path

import click

from shakegen.cli import inspect_terminal, ui
from shakegen.cli.shared import run_folder, run_options
from shakegen.runs import names


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


@click.command()
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

    from rich.markup import escape

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
    strongest = [f for f in findings if f == _first_of(findings, f.property)]  # the first of each property
    drawn = list(dict.fromkeys([*chosen, *((f.layer, f.index) for f in strongest)]))
    inspection = with_units(inspection, drawn) if drawn else inspection
    summary = summarize(inspection)
    if html_path is not None:
        title = f"shakegen inspect: {file_path.name if file_path else 'text'}"
        _write_page(html_path, title, inspection, summary, f"{names.shown_name(run_dir)} ({which})", drawn, findings)
    if as_json:
        report = {"run": str(run_dir), "which": which, **inspection.to_json(), "summary": summary.to_json()}
        if neurons or chosen:
            report["neurons"] = _neurons_report(inspection, findings, absent, chosen)
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    inspect_terminal.show(inspection, summary, findings, absent, strongest, chosen, neurons)


def _write_page(html_path: Path, title: str, inspection, summary, run: str, drawn, findings) -> None:
    """--html: the self-contained page (cli/inspect_page.py) of the text, its guesses and the drawn units."""
    from rich.markup import escape

    from shakegen import fileio
    from shakegen.cli import inspect_page
    from shakegen.use import neurons as neuron_search

    page = inspect_page.render(
        inspection,
        title=title,
        meta=f"{run}: {summary.bits_per_character:.3f} bits per character over "
        f"{summary.characters:,} characters predicted. Hover or tap a character for the model's guesses.",
        units=[f"{layer}:{index}" for layer, index in drawn],
        findings=findings,
        hint=neuron_search.HINT,
    )
    fileio.write_text(html_path, page)
    ui.message(f"[dim]Wrote {escape(str(html_path))}[/]")


def _neurons_report(inspection, findings, absent, chosen) -> dict:
    """--json's "neurons": the units found (--neurons) and the profile of each unit asked for (--unit)."""
    from shakegen.use import neurons as neuron_search

    return {
        "hint": neuron_search.HINT,
        "findings": [f.to_json() for f in findings],
        "absent_properties": absent,
        "units": {
            f"{layer}:{index}": neuron_search.unit_profile(inspection.hidden, inspection.text, (layer, index))
            for layer, index in chosen
        },
    }


def _first_of(findings, name):
    return next(f for f in findings if f.property == name)
