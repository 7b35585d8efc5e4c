"""How shakegen inspect draws in the terminal: the text coloured by surprisal (or, without colour, a
line of digits under each line), the summary tables, the units that track properties of the text,
and each unit drawn over the text."""

from __future__ import annotations

from shakegen.cli import ui

INSPECT_STYLES = ("", "black on #fde2c8", "black on #fbb47a", "black on #f0703c", "bold white on #b3001b")
ACTIVATION_STYLES = ("white on #1f3fbf", "black on #a9b8f0", "", "black on #f5b0b0", "white on #c0182a")
DRAWN_CHARACTERS = 600  # characters of the text drawn per unit in the terminal


def show(inspection, summary, findings, absent, strongest, chosen, neurons: bool) -> None:
    """Draw ``inspection`` on stdout: the text and its summary, then (--neurons) the units found and
    the strongest of each property, then each unit asked for with --unit."""
    from rich.console import Console

    from shakegen.use import neurons as neuron_search

    out = Console(highlight=False)
    colour = out.color_system is not None
    _print_inspection(out, inspection, summary, colour)
    if neurons:
        _print_findings(out, findings, absent)
        for finding in strongest:
            heading = f"{finding.property}: unit {finding.unit}, correlation {finding.correlation:+.3f}"
            _print_unit(out, inspection, (finding.layer, finding.index), heading, colour)
    for unit in chosen:
        profile = neuron_search.unit_profile(inspection.hidden, inspection.text, unit)
        scores = ", ".join(f"{name} {value:+.2f}" for name, value in profile.items())
        _print_unit(out, inspection, unit, f"unit {unit[0]}:{unit[1]}: correlation with {scores}", colour)
    if chosen and not neurons:
        out.print(f"[dim]{neuron_search.HINT}[/]")


def _print_findings(out, findings, absent) -> None:
    """--neurons' table of the units that track simple properties, and what the text did not hold."""
    from rich.table import Table

    from shakegen.use import neurons as neuron_search

    found = Table(title="Units that track simple properties", title_justify="left")
    for name in ("property", "unit (layer:index)", "correlation"):
        found.add_column(name)
    for f in findings:
        found.add_row(f.property, f.unit, f"{f.correlation:+.3f}")
    out.print(found)
    out.print(f"[dim]{neuron_search.HINT}[/]")
    if absent:
        out.print(f"[dim]Not in this text (so not searched): {', '.join(absent)}[/]")


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
