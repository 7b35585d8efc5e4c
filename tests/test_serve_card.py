"""The model card of a fine-tuned run names its parent without the server's paths."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

import shakegen  # noqa: E402
from shakegen.data import corpus  # noqa: E402
from shakegen.serve.card import bare_name, model_card  # noqa: E402
from shakegen.serve.limits import Limits  # noqa: E402
from tests.runs import train_tiny_run  # noqa: E402


def test_a_fine_tuned_runs_card_shows_its_parents_folder_name_only(tmp_path):
    text = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")[:4000]
    base = train_tiny_run(tmp_path / "somewhere" / "deep", text, epochs=1)
    typed = str(base.resolve())  # the parent as typed: an absolute path
    child = tmp_path / "child"
    shakegen.train("tiny", child, base.parent / "data", init_from=typed, max_steps=2, seq_length=16, batch_size=8)
    config_path = child / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # As a run records its parent, or as runs of earlier versions did: the name as typed, and the path.
    config["parent"].update(run=typed, path=typed)
    config_path.write_text(json.dumps(config), encoding="utf-8")

    card = model_card(shakegen.load(child), Limits())
    assert card["parent"]["run"] == "run" == base.name
    assert card["parent"]["sha256"] == config["parent"]["sha256"]
    assert str(tmp_path) not in json.dumps(card) and "somewhere" not in json.dumps(card)


@pytest.mark.parametrize(
    "typed, shown",
    [("/home/me/runs/base/", "base"), ("runs/base", "base"), ("pretrained", "pretrained"), ("C:\\runs\\base", "base")],
)
def test_bare_name(typed, shown):
    assert bare_name(typed) == shown


def test_the_cards_training_minutes_are_those_up_to_the_weights_served(tmp_path):
    """A run whose best weights came before its last: the card of the best gives the minutes up to
    them (history.csv's row at their step, independently of the server's code), as eval does; the
    run's total was reported before. The card of the last gives the total."""
    import shutil

    from shakegen.runs import checkpoint

    text = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")[:4000]
    run = train_tiny_run(tmp_path, text, epochs=1)
    shutil.copy(run / checkpoint.BEST_FILE, tmp_path / "earlier-best.npz")
    shakegen.train("tiny", run_dir=run, data_dir=tmp_path / "data", resume=True, epochs=2)
    shutil.copy(tmp_path / "earlier-best.npz", run / checkpoint.BEST_FILE)  # as if epoch 2 did worse
    history = [line.split(",") for line in (run / "history.csv").read_text().splitlines()]
    rows = [dict(zip(history[0], row, strict=True)) for row in history[1:]]
    best = model_card(shakegen.load(run), Limits())
    at_best = [float(row["elapsed_seconds"]) for row in rows if int(float(row["step"])) == best["step"]]
    assert len(rows) >= 2 and len(at_best) == 1
    assert best["training_minutes"] == pytest.approx(at_best[0] / 60, abs=1e-6)
    last = model_card(shakegen.load(run, "last"), Limits())
    assert last["training_minutes"] == pytest.approx(float(rows[-1]["elapsed_seconds"]) / 60, abs=1e-6)
    assert last["training_minutes"] > best["training_minutes"]
    assert shakegen.load(run).evaluate(text[:500]).training_minutes == pytest.approx(best["training_minutes"])
    assert best["engine"] == "auto" and best["generate_engine"] == "numpy"
