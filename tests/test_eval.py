import gc
import json
import math
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import shakegen
from shakegen.cli import main
from shakegen.config import TrainConfig
from shakegen.data import prepare
from shakegen.errors import EvaluationError
from shakegen.model import inference
from shakegen.model.network import build_model
from shakegen.runs import checkpoint
from shakegen.use import evaluate, tf_scoring
from shakegen.use import report as scoring_report
from tests.reference import log_softmax, model_logits, model_weights, summed_nll, windowed_nll
from tests.runs import train_tiny_run


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
    layout = tf_scoring.stream_layout(1000, 7, 50)
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
    [
        ("", "no text"),
        ("€€€ ¤¤", "fewer than 2 characters the model knows"),
        ("First\x00\x00Citizen", "looks like a binary file"),
    ],
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
    no_text = CliRunner().invoke(main, ["eval", "--checkpoint", str(trained_run), "--text", str(tmp_path / "no.txt")])
    assert no_text.exit_code == 1 and "does not exist; pass an existing text file with --text" in no_text.output


# --- protocols (issue 19) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, small_text):
    """A tiny run (conftest's configuration) trained once for the tests that only read it."""
    return train_tiny_run(tmp_path_factory.mktemp("shared"), small_text)


@pytest.fixture(scope="module")
def shared_model(shared_run):
    model, _, _ = checkpoint.load_model(shared_run, "best")
    return model


def _shared_ids(shared_run, split="val"):
    data = prepare.load_prepared(shared_run.parent / "data")
    return np.asarray(data.val if split == "val" else data.train)


@pytest.mark.parametrize("window, batch_size", [(50, None), (50, 5), (64, 3), (1, None)])
def test_windowed_figure_equals_numpy(shared_model, shared_run, window, batch_size):
    """Non-overlapping windows covering the split, each from a zero state, every position
    counted (the last window is shorter): the float64 NumPy forward pass gives the same."""
    ids = _shared_ids(shared_run)
    predicted = len(ids) - 1
    result = evaluate.windowed_cross_entropy(shared_model, ids, window=window, batch_size=batch_size)
    total, count = windowed_nll(model_weights(shared_model), ids, range(0, predicted, window), window)
    assert predicted % window != 0 or window == 1  # a partial last window is part of the check
    assert result.count == count == predicted
    assert result.loss == pytest.approx(total / count, rel=1e-6)


def test_random_window_starts_by_their_properties():
    """Starts of --samples K: K of them, each a start whose full window fits (0 .. predicted -
    window, both ends reachable), uniform enough that every one is drawn, fixed by the seed."""
    # By hand: a text predicting exactly one window's worth has one start; one more, two.
    assert list(evaluate.window_starts(40, 40, samples=5, random_seed=3)) == [0] * 5
    assert set(evaluate.window_starts(41, 40, samples=200, random_seed=3)) == {0, 1}
    predicted, window = 1000, 40
    starts = np.asarray(evaluate.window_starts(predicted, window, samples=20_000, random_seed=3))
    assert starts.shape == (20_000,) and np.issubdtype(starts.dtype, np.integer)
    assert set(starts.tolist()) == set(range(predicted - window + 1))  # 961 starts, about 21 draws each
    counts = np.bincount(starts)
    assert counts.min() > 0 and counts.max() < 3 * 20_000 / 961
    again = np.asarray(evaluate.window_starts(predicted, window, samples=20_000, random_seed=3))
    other = np.asarray(evaluate.window_starts(predicted, window, samples=20_000, random_seed=4))
    assert np.array_equal(starts, again) and not np.array_equal(starts, other)
    assert list(evaluate.window_starts(10, 4)) == [0, 4, 8]  # without samples: non-overlapping, the last short


def test_random_windows_equal_numpy_and_follow_the_seed(shared_model, shared_run):
    """--samples K: the figure is NumPy's over K full windows at the starts drawn (their
    properties: the test above), and a seed always draws the same ones."""
    ids = _shared_ids(shared_run, "train")
    window, samples = 40, 25
    result = evaluate.windowed_cross_entropy(shared_model, ids, window=window, samples=samples, random_seed=3)
    starts = evaluate.window_starts(len(ids) - 1, window, samples, random_seed=3)
    assert len(set(map(int, starts))) > 1 and max(starts) + window <= len(ids) - 1
    total, count = windowed_nll(model_weights(shared_model), ids, starts, window)
    assert result.count == count == samples * window
    assert result.loss == pytest.approx(total / count, rel=1e-6)
    again = evaluate.windowed_cross_entropy(shared_model, ids, window=window, samples=samples, random_seed=3)
    other = evaluate.windowed_cross_entropy(shared_model, ids, window=window, samples=samples, random_seed=4)
    assert again == result and other.loss != result.loss
    # By hand: a text of one window has one start, so K samples are K copies of that window.
    short = ids[: window + 1]
    one = evaluate.windowed_cross_entropy(shared_model, short, window=window, samples=3, random_seed=9)
    expected = summed_nll(model_weights(shared_model), short[:-1], short[1:]) / window
    assert one.count == 3 * window and one.loss == pytest.approx(expected, rel=1e-6)


def test_window_as_long_as_the_text_equals_streaming(shared_model, shared_run):
    ids = _shared_ids(shared_run)
    streaming = evaluate.streaming_cross_entropy(shared_model, ids, streams=1, window=37)
    for window in (len(ids) - 1, 10 * len(ids)):
        windowed = evaluate.windowed_cross_entropy(shared_model, ids, window=window)
        assert windowed.count == streaming.count
        assert windowed.loss == pytest.approx(streaming.loss, rel=1e-7)


def test_windowed_figure_of_a_trained_model_is_not_lower_than_streaming(shared_model, shared_run):
    """Cold windows predict their first characters almost blind: a model that uses context
    scores worse on them, and the shorter the window the worse."""
    ids = _shared_ids(shared_run, "train")
    streaming = evaluate.streaming_cross_entropy(shared_model, ids, streams=1).loss
    by_window = [evaluate.windowed_cross_entropy(shared_model, ids, window=window).loss for window in (256, 32, 4)]
    assert streaming <= by_window[0] <= by_window[1] <= by_window[2]
    assert by_window[2] - streaming > 0.02


def test_cli_names_the_protocol(shared_run):
    data_dir = str(shared_run.parent / "data")
    streaming = _eval_json("--checkpoint", str(shared_run), "--data-dir", data_dir)
    assert (streaming["protocol"], streaming["window"], streaming["samples"]) == ("streaming", None, None)
    windows = _eval_json("--checkpoint", str(shared_run), "--data-dir", data_dir, "--protocol", "windows")
    assert (windows["protocol"], windows["window"], windows["samples"]) == ("windows", 256, None)
    model, _, _ = checkpoint.load_model(shared_run, "best")
    ids = _shared_ids(shared_run)
    total, count = windowed_nll(model_weights(model), ids, range(0, len(ids) - 1, 256), 256)
    assert windows["characters"] == count and windows["loss"] == pytest.approx(total / count, rel=1e-6)
    sampled = _eval_json(
        "--checkpoint", str(shared_run), "--data-dir", data_dir, "--protocol", "windows", "--window", "64",
        "--samples", "9", "--random-seed", "5",
    )  # fmt: skip
    assert (sampled["window"], sampled["samples"], sampled["random_seed"], sampled["characters"]) == (64, 9, 5, 576)
    table = CliRunner().invoke(
        main,
        ["eval", "--checkpoint", str(shared_run), "--data-dir", data_dir, "--protocol", "windows", "--window", "64"],
    )
    assert table.exit_code == 0 and "windows of 64" in table.output and "zero state" in table.output
    table = CliRunner().invoke(main, ["eval", "--checkpoint", str(shared_run), "--data-dir", data_dir])
    assert table.exit_code == 0 and "streaming" in table.output and "zero state" not in table.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--window", "64"], 2, "applies to --protocol windows only"),
        (["--samples", "3"], 2, "applies to --protocol windows only"),
        (["--protocol", "windows", "--random-seed", "3"], 2, "add --samples"),
        (["--protocol", "windows", "--window", "0"], 2, "--window"),
        (["--protocol", "windows", "--samples", "0"], 2, "--samples"),
        (["--protocol", "cold"], 2, "--protocol"),
        (["--protocol", "windows", "--window", "5000", "--samples", "2"], 1, "fewer than one window of 5000"),
    ],
)
def test_cli_protocol_errors(shared_run, args, code, message):
    data_dir = str(shared_run.parent / "data")
    result = CliRunner().invoke(main, ["eval", "--checkpoint", str(shared_run), "--data-dir", data_dir, *args])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_library_errors_are_evaluation_errors(shared_model):
    for call in (
        lambda: evaluate.streaming_cross_entropy(shared_model, np.array([1])),
        lambda: evaluate.windowed_cross_entropy(shared_model, np.array([1, 2, 3]), window=0),
        lambda: evaluate.windowed_cross_entropy(shared_model, np.array([1, 2, 3]), batch_size=0),
        lambda: evaluate.Protocol("cold").validate(),
    ):
        with pytest.raises(EvaluationError):
            call()


# --- float32 evaluation, caches, memory (issue 14 items 6 and 12) -----------------------------


@pytest.fixture(scope="module")
def bfloat16_run(tmp_path_factory, small_text):
    return train_tiny_run(tmp_path_factory.mktemp("bf16"), small_text, precision="mixed_bfloat16", epochs=4)


def test_bfloat16_run_is_evaluated_in_float32(bfloat16_run):
    """Its figure is its float32 weights' figure (NumPy's, to 1e-6; bfloat16 arithmetic is
    ~3e-5 off) under either protocol, and does not depend on the window size."""
    mixed, _, _ = checkpoint.load_model(bfloat16_run, "best")
    assert not inference.is_float32(mixed)
    weights = model_weights(mixed)
    ids = np.asarray(prepare.load_prepared(bfloat16_run.parent / "data").val)
    expected = summed_nll(weights, ids[:-1], ids[1:]) / (len(ids) - 1)
    by_window = [evaluate.streaming_cross_entropy(mixed, ids, window=w, streams=1).loss for w in (7, 64, 4096)]
    assert by_window == pytest.approx([expected] * 3, rel=1e-6)
    assert max(by_window) - min(by_window) < 1e-6 * by_window[0]
    total, count = windowed_nll(weights, ids, range(0, len(ids) - 1, 50), 50)
    assert evaluate.windowed_cross_entropy(mixed, ids, window=50).loss == pytest.approx(total / count, rel=1e-6)
    report = _eval_json("--checkpoint", str(bfloat16_run), "--data-dir", str(bfloat16_run.parent / "data"))
    assert report["loss"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_evaluation_caches_do_not_keep_models_alive(precision):
    model = build_model(8, TrainConfig(embedding_dim=4, rnn_units=8, precision=precision))
    ids = np.arange(300) % 8
    evaluate.streaming_cross_entropy(model, ids)
    evaluate.windowed_cross_entropy(model, ids, window=32)
    alive = [weakref.ref(model), weakref.ref(inference.float32_model(model))]  # the model, and its float32 twin
    del model
    gc.collect()
    gc.collect()  # the twin becomes garbage only once the first collection has freed the model
    assert [ref() for ref in alive] == [None, None]


def test_evaluation_memory_does_not_grow_with_the_text(tmp_path):
    """40 million characters: windows are built as they are fed, so the peak memory barely
    moves when evaluation starts (the whole-text arrays took 16 bytes per character, 640 MB)."""
    code = """
import resource
import numpy as np
from shakegen.use import evaluate
from shakegen.config import TrainConfig
from shakegen.model.network import build_model

class Started(Exception):
    pass

def stop(done, total):
    raise Started

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

model = build_model(8, TrainConfig(embedding_dim=4, rnn_units=8))
evaluate.streaming_cross_entropy(model, np.ones(40_000, np.uint8), streams=32)  # trace and warm up first
evaluate.windowed_cross_entropy(model, np.ones(40_000, np.uint8))
ids = np.ones(40_000_000, np.uint8)
before = peak_mb()
for measure in (evaluate.streaming_cross_entropy, evaluate.windowed_cross_entropy):
    try:
        measure(model, ids, progress=stop)
    except Started:
        pass
print(peak_mb() - before)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(shakegen.__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) < 100


def test_unigram_baseline_counts_in_pieces(monkeypatch):
    counts = np.array([5, 0, 3, 9])
    ids = np.random.default_rng(0).integers(0, 4, 1000).astype(np.uint8)
    probabilities = (counts + 1.0) / (counts.sum() + 4)
    expected = -np.log(probabilities[ids]).mean()
    monkeypatch.setattr(scoring_report, "BINCOUNT_CHUNK", 7)
    assert scoring_report.unigram_cross_entropy(counts, ids) == pytest.approx(expected, rel=1e-12)


# --- --text in the run's encoding (issue 14 item 11) ------------------------------------------


def test_text_is_read_in_the_runs_encoding(tmp_path, small_text):
    text = small_text[:3000] + "Café, déjà vu: naïve façade!\n" * 40
    run = train_tiny_run(tmp_path, text, encoding="latin-1", epochs=1)
    sample = tmp_path / "sample.txt"
    sample.write_bytes("Un café, déjà: façade naïve.\r\n".encode("latin-1"))
    report = _eval_json("--checkpoint", str(run), "--text", str(sample))
    assert report["characters"] == len("Un café, déjà: façade naïve.\n") - 1 and report["left_out_characters"] == 0
    utf8 = CliRunner().invoke(main, ["eval", "--checkpoint", str(run), "--text", str(sample), "--encoding", "utf-8"])
    assert utf8.exit_code == 1 and "not valid utf-8" in utf8.output and "Traceback" not in utf8.output


# --- figures that mislead (issue 25 items 9 and 10) ---------------------------------------------


def test_a_split_of_another_corpus_is_scored_with_a_note(shared_run, tmp_path, small_text):
    """A run scored on a prepared corpus other than its own (by SHA-256) says so: one line on
    stderr, ``same_corpus`` false in --json; its own corpus and a --text say nothing."""
    other = tmp_path / "other"
    (tmp_path / "plays.txt").write_text(small_text[:3000], encoding="utf-8")  # characters the run knows
    prepare.prepare_corpus(tmp_path / "plays.txt", other)
    result = CliRunner().invoke(main, ["eval", "--json", "--checkpoint", str(shared_run), "--data-dir", str(other)])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["same_corpus"] is False and row["characters"] == len(prepare.load_prepared(other).val) - 1
    notes = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("Note:") and notes[0] == "Note: " + row["corpus_note"]
    assert "corpus.txt" in notes[0] and "plays.txt" in notes[0] and "not the run's own" in notes[0]
    own = CliRunner().invoke(
        main, ["eval", "--json", "--checkpoint", str(shared_run), "--data-dir", str(shared_run.parent / "data")]
    )
    assert own.exit_code == 0 and "Note" not in own.stderr
    assert (json.loads(own.stdout)["same_corpus"], json.loads(own.stdout)["corpus_note"]) == (True, None)
    model = shakegen.load(shared_run)
    assert model.evaluate(split="train", data_dir=other).same_corpus is False
    assert model.evaluate("First Citizen: speak.").same_corpus is None


def test_which_both_on_a_best_only_folder_reports_what_it_holds(shared_run, tmp_path, monkeypatch):
    """A folder shipping only best.npz (as the pretrained model does): --which both scores the
    best and says the last is missing; --which last fails before any run is scored."""
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(shared_run, bundle)
    (bundle / "last.npz").unlink()
    data_dir = str(shared_run.parent / "data")
    result = CliRunner().invoke(
        main, ["eval", "--json", "--checkpoint", str(bundle), "--which", "both", "--data-dir", data_dir]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["which"] == "best"
    assert "holds only its best weights (no last.npz); evaluating best only" in result.stderr
    both = _eval_json(
        "--checkpoint", str(shared_run), "--checkpoint", str(bundle), "--which", "both", "--data-dir", data_dir
    )
    assert [(row["run"], row["which"]) for row in both] == [
        (str(shared_run), "best"), (str(shared_run), "last"), (str(bundle), "best")
    ]  # fmt: skip
    scored = []
    real = evaluate.cross_entropy
    monkeypatch.setattr(evaluate, "cross_entropy", lambda *args, **kwargs: scored.append(1) or real(*args, **kwargs))
    last = CliRunner().invoke(
        main,
        [
            "eval",
            "--checkpoint",
            str(shared_run),
            "--checkpoint",
            str(bundle),
            "--which",
            "last",
            "--data-dir",
            data_dir,
        ],
    )
    assert last.exit_code == 1 and "holds only its best weights" in last.output and "Traceback" not in last.output
    assert scored == []  # refused up front: no figure computed and thrown away


def test_best_weights_report_the_training_minutes_up_to_them():
    """The pretrained model's best weights are from epoch 48 of 50: their minutes are history's at their step."""
    model = shakegen.load("pretrained")
    report = model.evaluate(split="val", data_dir=None, protocol="windows", window=8, samples=1)
    history = checkpoint.read_history(model.run_dir)
    at_best = [row for row in history if row["step"] == report.step]
    assert len(at_best) == 1 and at_best[0]["val_loss"] == min(row["val_loss"] for row in history)
    assert report.training_minutes == pytest.approx(at_best[0]["elapsed_seconds"] / 60)
    assert report.training_minutes < history[-1]["elapsed_seconds"] / 60 - 1  # not the run's total


def test_last_weights_report_the_runs_minutes(shared_run):
    report = shakegen.load(shared_run, "last").evaluate(split="val", data_dir=shared_run.parent / "data")
    state = checkpoint.read_state(shared_run / "last.npz")
    assert report.training_minutes == pytest.approx(state["elapsed_seconds"] / 60)
    assert report.step == state["global_step"]


def test_an_unknown_split_is_refused(shared_run):
    model = shakegen.load(shared_run)
    with pytest.raises(EvaluationError, match="Unknown split 'tset'; expected one of val, train"):
        model.evaluate(split="tset", data_dir=shared_run.parent / "data")


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_cli_random_seed_out_of_range_is_one_line(shared_run, seed):
    data_dir = str(shared_run.parent / "data")
    args = ["eval", "--checkpoint", str(shared_run), "--data-dir", data_dir, "--protocol", "windows"]
    result = CliRunner().invoke(main, [*args, "--samples", "2", "--random-seed", seed])
    assert result.exit_code == 2 and "--random-seed" in result.output and "Traceback" not in result.output
    assert "0<=x<=4294967295" in result.output


def test_random_seed_range_in_the_library(shared_run, shared_model):
    ids = _shared_ids(shared_run)
    edge = _eval_json(
        "--checkpoint", str(shared_run), "--data-dir", str(shared_run.parent / "data"), "--protocol", "windows",
        "--window", "16", "--samples", "2", "--random-seed", "4294967295",
    )  # fmt: skip
    assert edge["random_seed"] == 2**32 - 1 and edge["characters"] == 32
    for seed in (-1, 2**32, 1.5, "3", True):
        with pytest.raises(EvaluationError, match="random seed must be an integer from 0 to"):
            evaluate.Protocol("windows", 16, 2, seed).validate()
        with pytest.raises(EvaluationError, match="random seed must be an integer from 0 to"):
            evaluate.windowed_cross_entropy(shared_model, ids, window=16, samples=2, random_seed=seed)
    with pytest.raises(EvaluationError, match="random seed"):
        evaluate.window_starts(100, 10, samples=2, random_seed=-1)
    with pytest.raises(EvaluationError, match="random seed"):
        shakegen.load(shared_run).evaluate(
            "First Citizen: speak.", protocol="windows", window=4, samples=1, random_seed=-5
        )


def test_a_run_of_the_embedded_corpus_scores_its_own_split_and_names_the_corpus_passed_over(tmp_path, small_text):
    """The pretrained model, pointed at another prepared corpus, is scored on its own val split,
    as without one, and the report names the corpus it passed over."""
    (tmp_path / "plays.txt").write_text(small_text[:3000], encoding="utf-8")
    prepare.prepare_corpus(tmp_path / "plays.txt", tmp_path / "other")
    model = shakegen.load("pretrained")
    protocol = dict(split="val", protocol="windows", samples=2, random_seed=1)
    alone = model.evaluate(data_dir=None, **protocol)
    beside = model.evaluate(data_dir=tmp_path / "other", **protocol)
    assert (beside.loss, beside.characters, beside.same_corpus) == (alone.loss, alone.characters, True)
    assert alone.corpus_note is None
    assert "plays.txt" in beside.corpus_note and "the run's own val split" in beside.corpus_note
