import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from shakegen import checkpoint, evaluate, prepare
from shakegen.cli import main
from shakegen.config import TrainConfig
from shakegen.model import build_model
from tests.reference import log_softmax, model_logits, model_weights


def _eval_json(*args):
    result = CliRunner().invoke(main, ["eval", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_perplexity_matches_numpy_forward_pass(trained_run, small_data):
    report = _eval_json("--checkpoint", str(trained_run), "--data-dir", str(small_data))
    model, _, _ = checkpoint.load_model(trained_run, "best")
    ids = np.asarray(prepare.load_prepared(small_data).val)
    logits, _ = model_logits(model_weights(model), ids[None, :-1])
    nll = -log_softmax(logits[0])[np.arange(len(ids) - 1), ids[1:]]
    expected = math.exp(nll.sum() / len(nll))
    assert report["characters"] == len(ids) - 1
    assert report["perplexity"] == pytest.approx(expected, rel=1e-4)
    assert report["bits_per_character"] == pytest.approx(nll.mean() / math.log(2), rel=1e-4)
    assert report["uniform_perplexity"] == len(model.embedding.embeddings.numpy())
    assert report["perplexity"] < report["unigram_perplexity"] < report["uniform_perplexity"]


def test_untrained_model_is_near_uniform(small_data):
    data = prepare.load_prepared(small_data)
    model = build_model(len(data.vocab), TrainConfig(embedding_dim=8, rnn_units=16))
    result = evaluate.streaming_cross_entropy(model, np.asarray(data.val))
    assert result.perplexity == pytest.approx(len(data.vocab), rel=0.05)


def test_figure_does_not_depend_on_window_size(trained_run, small_data):
    model, _, _ = checkpoint.load_model(trained_run, "best")
    ids = np.asarray(prepare.load_prepared(small_data).val)
    by_window = [
        evaluate.streaming_cross_entropy(model, ids, window=window, streams=1).loss for window in (7, 64, 4096)
    ]
    assert max(by_window) - min(by_window) < 1e-6 * by_window[0]


def test_parallel_streams_agree_with_one_stream(trained_run, small_data):
    model, _, _ = checkpoint.load_model(trained_run, "best")
    ids = np.asarray(prepare.load_prepared(small_data).train)  # ~5,400 characters
    one = evaluate.streaming_cross_entropy(model, ids, streams=1, window=100)
    many = evaluate.streaming_cross_entropy(model, ids, streams=6, window=37, burn_in=256)
    assert many.count == one.count
    assert many.loss == pytest.approx(one.loss, rel=1e-4)


def test_stream_layout_counts_every_prediction_once():
    layout = evaluate.stream_layout(1000, 7, 50)
    counted = [position for _, start, end in layout for position in range(start, end)]
    assert counted == list(range(1000))
    assert all(first == max(0, start - 50) for first, start, _ in layout)


def test_text_file_with_unknown_characters(trained_run, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("First Citizen: € Before we proceed any further, hear me speak. €€\n")
    report = _eval_json("--checkpoint", str(trained_run), "--text", str(text))
    assert report["left_out_characters"] == 3
    assert report["characters"] == len("First Citizen:  Before we proceed any further, hear me speak. \n") - 1
    strict = CliRunner().invoke(main, ["eval", "--checkpoint", str(trained_run), "--text", str(text), "--strict"])
    assert strict.exit_code == 1 and "'€'" in strict.output and "Traceback" not in strict.output


def test_several_checkpoints_side_by_side(trained_run, small_data):
    rows = _eval_json(
        "--checkpoint",
        str(trained_run),
        "--checkpoint",
        str(trained_run),
        "--which",
        "both",
        "--data-dir",
        str(small_data),
    )
    assert [row["which"] for row in rows] == ["best", "last", "best", "last"]
    table = CliRunner().invoke(
        main, ["eval", "--checkpoint", str(trained_run), "--which", "both", "--data-dir", str(small_data)]
    )
    assert table.exit_code == 0 and "perplexity" in table.output


@pytest.mark.parametrize(
    "content, message",
    [("", "no text"), ("€€€ ¤¤", "fewer than 2 characters the model knows")],
)
def test_bad_texts(trained_run, tmp_path, content, message):
    text = tmp_path / "t.txt"
    text.write_text(content)
    result = CliRunner().invoke(main, ["eval", "--checkpoint", str(trained_run), "--text", str(text)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_missing_things(trained_run, tmp_path):
    unprepared = CliRunner().invoke(
        main, ["eval", "--checkpoint", str(trained_run), "--data-dir", str(tmp_path / "none")]
    )
    assert unprepared.exit_code == 1 and "not prepared" in unprepared.output
    missing = CliRunner().invoke(main, ["eval", "--checkpoint", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
