"""The model card of a fine-tuned run names its parent without the server's paths."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

import shakegen  # noqa: E402
from shakegen import corpus  # noqa: E402
from shakegen.serve.limits import Limits  # noqa: E402
from shakegen.serve.worker import bare_name, model_card  # noqa: E402
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
