"""Adaptive scoring (dynamic evaluation): repeats learnt while scoring, nothing written to the run."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from shakegen import fileio
from shakegen.errors import EvaluationError  # noqa: E402
from shakegen.runs import checkpoint
from shakegen.use import (
    adapt,
    evaluate,  # noqa: E402
)
from tests.runs import train_tiny_run  # noqa: E402

LINE = "Now is the winter of our discontent made glorious, said he.\n"


def folder_hashes(folder):
    return {
        str(path.relative_to(folder)): fileio.file_sha256(path) for path in sorted(folder.rglob("*")) if path.is_file()
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory, small_text):
    return train_tiny_run(tmp_path_factory.mktemp("adapt"), small_text)


def test_adaptive_scoring_learns_the_repeats_that_streaming_cannot(run):
    model, info, _ = checkpoint.load_model(run, precision="float32")
    ids = info.vocab.encode(LINE * 60)
    before = [variable.numpy().copy() for variable in model.weights]
    streaming = evaluate.streaming_cross_entropy(model, ids)
    adaptive = adapt.adaptive_cross_entropy(model, ids, learning_rate=3.0, segment=16)
    assert adaptive.count == streaming.count == len(ids) - 1
    assert adaptive.bits_per_character < 0.4 * streaming.bits_per_character
    for variable, value in zip(model.weights, before, strict=True):  # the weights are given back
        np.testing.assert_array_equal(variable.numpy(), value)
    # With no step at all it is the streaming protocol: each segment is scored before the model learns from it.
    still = adapt.adaptive_cross_entropy(model, ids, learning_rate=0.0, segment=16)
    assert still.total_nll == pytest.approx(streaming.total_nll, rel=1e-6)


def test_the_report_is_its_own_protocol_and_the_run_folder_is_unchanged(run):
    before = folder_hashes(run)
    info = checkpoint.read_run(run)
    ids = info.vocab.encode(LINE * 10)
    row = adapt.report(run, "best", ids, learning_rate=1.0, segment=32)
    assert row["protocol"] == "adaptive" and row["learning_rate"] == 1.0 and row["segment"] == 32
    assert row["window"] is None and row["samples"] is None
    assert row["characters"] == len(ids) - 1
    assert row["perplexity"] == pytest.approx(np.exp(row["loss"]))
    assert folder_hashes(run) == before


def test_bad_settings_are_refused():
    for rate, segment, message in [(-1.0, 8, "learning rate"), (float("nan"), 8, "learning rate"), (0.1, 0, "segment")]:
        with pytest.raises(EvaluationError, match=message):
            adapt.check(rate, segment)


def test_eval_adapt_reports_its_own_protocol_and_leaves_the_run_folder_as_it_was(run, tmp_path):
    import json

    from click.testing import CliRunner

    from shakegen.cli import main

    path = tmp_path / "repeats.txt"
    path.write_text(LINE * 30, encoding="utf-8")
    before = folder_hashes(run)
    runner = CliRunner()
    common = ["eval", "--checkpoint", str(run), "--text", str(path), "--json"]
    streaming = json.loads(runner.invoke(main, common, catch_exceptions=False).stdout)
    result = runner.invoke(main, [*common, "--adapt", "--adapt-learning-rate", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    adaptive = json.loads(result.stdout)
    assert streaming["protocol"] == "streaming" and adaptive["protocol"] == "adaptive"
    assert adaptive["learning_rate"] == 3.0 and adaptive["segment"] == adapt.SEGMENT
    assert adaptive["characters"] == streaming["characters"] == len(LINE) * 30 - 1
    assert adaptive["loss"] < 0.6 * streaming["loss"]
    assert folder_hashes(run) == before  # byte for byte
    table = runner.invoke(main, ["eval", "--checkpoint", str(run), "--text", str(path), "--adapt"])
    assert table.exit_code == 0 and "adaptive (SGD 0.05, segments of 32)" in table.output
    for extra, message in [
        (["--adapt-learning-rate", "0.1"], "add --adapt"),
        (["--adapt", "--protocol", "windows"], "drop --protocol windows"),
        (["--adapt", "--engine", "numpy"], "drop --engine numpy"),
    ]:
        refused = runner.invoke(main, ["eval", "--checkpoint", str(run), "--text", str(path), *extra])
        assert refused.exit_code == 2 and message in refused.output


def test_eval_adapt_prints_no_tensorflow_start_up_log(run, tmp_path):
    """TensorFlow's C++ start-up lines (I0000 …, oneDNN, cudart) stay out of eval --adapt's stderr
    (on the tiny run: which model adapts does not change how TensorFlow is imported)."""
    import subprocess
    import sys

    text = tmp_path / "lines.txt"
    text.write_text("ROMEO: I love thee.\n" * 6, encoding="utf-8")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "shakegen", "eval", "--checkpoint", str(run), "--adapt", "--text", str(text)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for marker in ("I0000", "oneDNN custom operations", "cudart_stub", "absl::InitializeLog"):
        assert marker not in done.stderr, done.stderr
