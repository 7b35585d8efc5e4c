"""What shakegen generate prints: the samples (streamed to a terminal as they come, or printed when
complete), the JSON report, the beams of --beam with their log-probabilities, and the closing lines
on stderr."""

from __future__ import annotations

from shakegen.cli import ui


def sample(model, prefix, stream, random_seed, ban, min_p, rule, *, seed_text, length, options, num_samples):
    """The sampled texts (each starting with ``prefix``) and the seconds they took; each block is also
    written to ``stream`` (a terminal) as it comes, after the prefix, when one is given."""
    import time

    from shakegen.use import sampling

    if stream is not None:
        stream.write(prefix)
        stream.flush()
    started = time.perf_counter()
    collected = sampling.TextCollector(num_samples, prefix)
    blocks = model.sample_blocks(seed_text, length, options, num_samples, random_seed, ban=ban, min_p=min_p, stop=rule)
    for block in blocks:
        collected.add(block)
        if stream is not None:
            stream.write(block[0])
            stream.flush()
    return collected.texts(), time.perf_counter() - started


def sample_report(
    model, texts, random_seed, rule, *, which, length, temperature, top_k, top_p, min_p, ban, keep_stop, lines
) -> dict:
    """--json's report of the sampled texts: they, the options asked for and what ended each."""
    report = {"texts": texts, "random_seed": random_seed, "engine": model.last_engine, "run": str(model.info.run_dir)}
    report.update(which=which, length=length, temperature=temperature, top_k=top_k, top_p=top_p)
    report.update(min_p=min_p, ban=ban, stop=list(rule.stops))
    report.update(keep_stop=keep_stop, lines=lines, stopped=model.last_stop_reasons)
    return report


def write_json(out, report: dict) -> None:
    import json

    out.write(json.dumps(report, ensure_ascii=False) + "\n")


def write_texts(out, texts: list[str], label: str, several: bool) -> None:
    """Texts on stdout: one bare, or (``several`` asked for) each under a '--- sample N ---' line (or beam)."""
    for index, text in enumerate(texts):
        if several:
            out.write(f"{'' if index == 0 else chr(10)}--- {label} {index + 1} ---\n")
        out.write(text)
        if out.isatty() or several:
            out.write("\n")
    out.flush()


def report_end(model, rule, characters: int, seconds: float) -> None:
    """On stderr: what ended each sample (when a stop rule is set), and the speed."""
    if rule.active:
        ended = ", ".join(f"{reason['stop_reason']}" for reason in model.last_stop_reasons)
        ui.message(f"[dim]ended by: {ended}[/]")
    ui.message(f"[dim]{characters:,} characters in {seconds:.2f} s ({characters / max(seconds, 1e-9):,.0f} char/s)[/]")


def print_beams(model, seed, length, beams, rule, ban, as_json, which) -> None:
    """--beam K: the texts on stdout as samples are printed, each beam's log-probability on stderr (or --json)."""
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
        write_json(out, report)
    else:
        write_texts(out, [found_beam["text"] for found_beam in found], "beam", several=beams > 1)
    for index, found_beam in enumerate(found):
        stopped = found_beam["stop_reason"] + (f" {found_beam['stop_text']!r}" if found_beam["stop_text"] else "")
        ui.message(
            f"[dim]beam {index + 1}: log-probability {found_beam['log_prob']:.3f} "
            f"({found_beam['log_prob_per_character']:.4f} per character), {found_beam['characters']} characters, "
            f"ended by {stopped}[/]"
        )
