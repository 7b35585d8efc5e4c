"""The rows shakegen eval reports: which weights of a run it scores, each scored by the streaming or
windows protocol or adaptively (--adapt), with a run's notes said once."""

from __future__ import annotations

from pathlib import Path

from shakegen.cli import ui


def score_all(models, score) -> list[dict]:
    """Each loaded (run, weights) scored with a progress bar, a run's notes (characters left out, another
    corpus) said once per run."""
    from rich.markup import escape

    rows = []
    for index, (run_dir, model) in enumerate(models):
        first_of_run = index == 0 or models[index - 1][0] != run_dir
        with ui.byte_progress(f"Evaluating {run_dir} ({model.which})") as update:
            row = score(model, progress=update)
        if row["left_out_characters"] and first_of_run:
            ui.message(
                f"[yellow]Left out {row['left_out_characters']:,} characters {escape(str(run_dir))} does not know "
                "(--strict refuses them).[/]"
            )
        if row["corpus_note"] and first_of_run:
            ui.console.print(f"[yellow]Note: {escape(row['corpus_note'])}[/]", soft_wrap=True)  # one line
        rows.append(row)
    return rows


def measured_row(model, *, what: dict, data_dir, strict, encoding, measure: dict, progress) -> dict:
    """eval's row for a loaded run under the streaming or windows protocol."""
    return model.evaluate(
        **what, data_dir=data_dir, strict=strict, encoding=encoding, progress=progress, **measure
    ).to_json()


def weights_to_evaluate(run_dir: Path, which: str) -> list[str]:
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


def adaptive_row(model, *, what: dict, data_dir, strict, encoding, learning_rate, progress) -> dict:
    """eval --adapt's row for a loaded run: the adaptive protocol (``shakegen.use.adapt``), named as its own."""
    from shakegen.use import adapt, scored_text

    found = scored_text.evaluation_ids(
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
