"""shakegen inspect: per-character records against eval's streaming total and a float64 forward pass."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from shakegen.cli import main
from shakegen.data import corpus
from shakegen.runs import checkpoint, pretrained
from shakegen.use import engine
from shakegen.use.inspect import InspectionError, inspect_text, parse_unit, summarize
from tests import reference

# A page of the validation split (the last tenth of Tiny Shakespeare): text the model never trained on.
PAGE = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")[1_050_000:1_052_000]


@pytest.fixture(scope="module")
def pretrained_engine():
    loaded, info, _ = engine.load(pretrained.BUNDLE_DIR)
    return loaded, info


def inspect_json(*arguments, input=None):
    result = CliRunner().invoke(main, ["inspect", "--checkpoint", "pretrained", "--json", *arguments], input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_log_probabilities_sum_to_evals_streaming_total(tmp_path):
    pytest.importorskip("tensorflow")
    text = PAGE[:1500]  # under 4,096 characters: eval reads it as one stream, every character in context
    path = tmp_path / "page.txt"
    path.write_text(text, encoding="utf-8")
    report = inspect_json("--file", str(path))
    records = report["records"]
    assert [record["char"] for record in records] == list(text)
    assert records[0]["log_prob"] is None  # nothing predicts the first character
    total = sum(record["log_prob"] for record in records[1:])
    result = CliRunner().invoke(main, ["eval", "--checkpoint", "pretrained", "--text", str(path), "--json"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["protocol"] == "streaming" and evaluated["characters"] == len(text) - 1
    assert -total == pytest.approx(evaluated["loss"] * evaluated["characters"], rel=1e-6)
    assert report["bits_per_character"] == pytest.approx(evaluated["bits_per_character"], rel=1e-6)
    for record in records[1:]:
        assert record["bits"] == pytest.approx(-record["log_prob"] / math.log(2), rel=1e-12)


def test_guesses_and_ranks_are_the_softmax_of_the_float64_reference(pretrained_engine):
    loaded, info = pretrained_engine
    text = PAGE[:400]
    inspection = inspect_text(loaded, info, text, top_k=5)
    weights = reference.run_weights(pretrained.BUNDLE_DIR / "best.npz", info.config.cell)
    ids = info.vocab.encode(text)
    logits, _ = reference.model_logits(weights, ids[None, :])
    probabilities = reference.softmax(logits[0, :-1])  # (n - 1, V): row t predicts character t + 1
    index_of = {char: i for i, char in enumerate(info.vocab.chars)}
    for record, row, target in zip(inspection.characters[1:], probabilities, ids[1:], strict=True):
        guessed = [index_of[char] for char, _ in record.top]
        assert len(set(guessed)) == 5
        # Each guess carries the reference's probability, in decreasing order, and nothing left out is likelier.
        np.testing.assert_allclose([p for _, p in record.top], row[guessed], atol=1e-4)
        assert np.all(np.diff([p for _, p in record.top]) <= 0)
        assert np.delete(row, guessed).max(initial=0) <= row[guessed].min() + 1e-4
        surely_above = int((row > row[target] + 1e-4).sum())
        maybe_above = int((row > row[target] - 1e-4).sum()) - 1  # the target itself excluded
        assert 1 + surely_above <= record.rank <= 1 + maybe_above  # exact unless a near-tie
        assert record.log_prob == pytest.approx(math.log(row[target]), abs=1e-4)


def test_a_unit_asked_for_holds_the_hidden_state_after_its_character(pretrained_engine):
    loaded, info = pretrained_engine
    text = PAGE[:120]
    inspection = inspect_text(loaded, info, text, units=[(2, 17), (0, 3)])
    weights = reference.run_weights(pretrained.BUNDLE_DIR / "best.npz", info.config.cell)
    x = np.asarray(weights[0], np.float64)[info.vocab.encode(text)][None]
    layers = []
    for variant, kernel, recurrent, bias in weights[1]:
        x, _ = reference.gru_sequence(variant, x, kernel, recurrent, bias)
        layers.append(x[0])
    for record in inspection.characters:
        assert record.units["2:17"] == pytest.approx(layers[2][record.position, 17], abs=1e-4)
        assert record.units["0:3"] == pytest.approx(layers[0][record.position, 3], abs=1e-4)


def test_the_summary_names_the_worst_spans_and_the_most_confident_mistakes(pretrained_engine):
    loaded, info = pretrained_engine
    inspection = inspect_text(loaded, info, PAGE[:800])
    summary = summarize(inspection, count=3, span=10)
    bits = [0.0] + [r.bits for r in inspection.characters[1:]]
    best = max(range(1, len(bits) - 9), key=lambda s: sum(bits[s : s + 10]))
    start, text, mean = summary.surprising_spans[0]
    assert start == best and text == PAGE[best : best + 10]
    assert mean == pytest.approx(sum(bits[best : best + 10]) / 10)
    wrong = sorted(
        (r for r in inspection.characters[1:] if r.top[0][0] != r.char), key=lambda r: r.top[0][1], reverse=True
    )
    assert [w[0] for w in summary.confidently_wrong] == [r.position for r in wrong[:3]]
    assert all(w[3] != w[1] and w[4] > 0.5 for w in summary.confidently_wrong)
    assert summary.bits_per_character == pytest.approx(np.mean(bits[1:]))


def test_the_terminal_view_without_colour_puts_each_characters_bits_under_it(tmp_path):
    text = "ROMEO:\nBut soft, what light\nthrough yonder window breaks?\n"
    records = inspect_json("--text", text)["records"]
    result = CliRunner(env={"NO_COLOR": "1"}).invoke(main, ["inspect", "--checkpoint", "pretrained", "--text", text])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    expected_digits = "".join("0" if r["bits"] is None else str(min(9, int(r["bits"]))) for r in records)
    position = 0
    for line in text.split("\n")[:-1]:
        index = lines.index(line)
        assert lines[index + 1] == expected_digits[position : position + len(line)]
        position += len(line) + 1
    assert "\x1b[" not in result.stdout  # no colour codes when not a terminal
    assert "bits per character" in result.stdout
    assert "Most surprising spans" in result.stdout and "Most confidently wrong" in result.stdout


def test_text_comes_from_text_file_or_stdin_alike(tmp_path):
    text = "JULIET:\nO Romeo, Romeo!\n"
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    from_text = inspect_json("--text", text)
    assert inspect_json("--file", str(path)) == from_text
    assert inspect_json(input=text) == from_text


def test_bad_inputs_are_refused_in_one_line(tmp_path):
    runner = CliRunner()
    both = runner.invoke(main, ["inspect", "--checkpoint", "pretrained", "--text", "ab", "--file", "x"])
    assert both.exit_code == 2 and "not both" in both.output
    missing = runner.invoke(main, ["inspect", "--checkpoint", "pretrained", "--file", str(tmp_path / "none.txt")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    unit = runner.invoke(main, ["inspect", "--checkpoint", "pretrained", "--text", "abc", "--unit", "9:0"])
    assert unit.exit_code == 2 and "layers are 0 to 2" in unit.output
    short = runner.invoke(main, ["inspect", "--checkpoint", "pretrained", "--text", "a"])
    assert short.exit_code == 1 and "fewer than 2 characters" in short.output and "Traceback" not in short.output
    with pytest.raises(InspectionError, match="LAYER:INDEX"):
        parse_unit("2-17")


def test_inspect_never_imports_tensorflow(tmp_path):
    html = tmp_path / "page.html"
    code = (
        "import sys; from shakegen.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')), file=sys.stderr)"
    )
    arguments = ["inspect", "--checkpoint", "pretrained", "--text", PAGE[:300], "--neurons", "--html", str(html)]
    result = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True, check=True)
    assert result.stderr.strip().splitlines()[-1] == "[]"
    assert html.is_file() and "Most surprising spans" in result.stdout


def test_the_run_folder_is_left_as_it_was(tmp_path):
    before = {path.name: checkpoint.fileio.file_sha256(path) for path in pretrained.BUNDLE_DIR.iterdir()}
    inspect_json("--text", PAGE[:200], "--neurons")
    after = {path.name: checkpoint.fileio.file_sha256(path) for path in pretrained.BUNDLE_DIR.iterdir()}
    assert before == after


def test_records_do_not_depend_on_the_piece_they_are_computed_in(pretrained_engine):
    from shakegen.use.inspect import iter_records

    loaded, info = pretrained_engine
    ids = info.vocab.encode(PAGE[:300])
    whole = [
        r for records, _ in iter_records(loaded, info.vocab.chars, ids, units=[(1, 5)], piece=300) for r in records
    ]
    pieces = [r for records, _ in iter_records(loaded, info.vocab.chars, ids, units=[(1, 5)], piece=7) for r in records]
    assert [r.position for r in pieces] == list(range(300))
    for a, b in zip(whole, pieces, strict=True):
        assert (a.char, a.rank, a.log_prob is None) == (b.char, b.rank, b.log_prob is None)
        if a.log_prob is not None:
            assert a.log_prob == pytest.approx(b.log_prob, abs=1e-5)
            np.testing.assert_allclose([p for _, p in a.top], [p for _, p in b.top], atol=1e-5)
        assert a.units["1:5"] == pytest.approx(b.units["1:5"], abs=1e-5)


@pytest.fixture(scope="module")
def pretrained_server(tmp_path_factory):
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
    from tests.test_serve import Server

    running = Server(Path("pretrained"), tmp_path_factory.mktemp("inspect-serve"))
    yield running
    running.stop()


def test_the_server_and_the_api_give_the_clis_records(pretrained_server):
    import shakegen

    text = "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    expected = inspect_json("--text", text, "--unit", "2:17", "--top-k", "3")
    answer = pretrained_server.post("/v1/inspect", {"text": text, "top_k": 3, "units": ["2:17"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["run"] == "pretrained_model"  # the folder's name, never its path
    assert body["records"] == expected["records"]
    assert body["summary"] == expected["summary"]
    model = shakegen.load("pretrained")
    records = [record.to_json() for record in model.inspect(text, top_k=3, units=["2:17"]).characters]
    assert records == expected["records"]


def test_the_server_refuses_what_it_cannot_inspect_naming_the_field(pretrained_server):
    too_long = pretrained_server.post("/v1/inspect", {"text": "a" * 20_001})
    assert too_long.status_code == 413 and too_long.json()["field"] == "text"
    assert "20,000" in too_long.json()["detail"]
    unit = pretrained_server.post("/v1/inspect", {"text": "ROMEO:", "units": ["7:1"]})
    assert unit.status_code == 422 and unit.json()["field"] == "units" and "layers are 0 to 2" in unit.json()["detail"]
    short = pretrained_server.post("/v1/inspect", {"text": "R"})
    assert short.status_code == 422 and "fewer than 2" in short.json()["detail"]
    top = pretrained_server.post("/v1/inspect", {"text": "ROMEO:", "top_k": 0})
    assert top.status_code == 422 and top.json()["field"] == "top_k"
    assert pretrained_server.post("/v1/inspect", {"text": "ROMEO:"}).status_code == 200  # still serving


def test_inspect_file_that_is_not_a_regular_file_says_so(tmp_path):
    """/dev/null exists: it is not a regular file, and the error says that rather than 'does not exist'."""
    from click.testing import CliRunner

    from shakegen.cli import main

    result = CliRunner().invoke(main, ["inspect", "--checkpoint", "pretrained", "--file", "/dev/null"])
    assert result.exit_code == 2
    assert "is not a regular file" in result.output and "does not exist" not in result.output
