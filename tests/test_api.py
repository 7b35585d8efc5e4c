"""The Python API: the same text and figures as the command line, and clear ValueErrors."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import shakegen
from shakegen.cli import main
from shakegen.data.vocab import UnknownCharactersError
from shakegen.errors import CheckpointError, ConfigError, EvaluationError, SamplingError
from tests.reference import run_weights, sampling_gaps_for
from tests.runs import train_tiny_run


def _cli_texts(run_dir, *options):
    args = ["generate", "--checkpoint", str(run_dir), "--json", *options]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["texts"]


@pytest.mark.parametrize(
    "options, cli_options",
    [
        (
            dict(temperature=0.8, top_p=0.9, random_seed=7),
            ["--temperature", "0.8", "--top-p", "0.9", "--random-seed", "7"],
        ),
        (dict(temperature=1.3, top_k=5, random_seed=3), ["--temperature", "1.3", "--top-k", "5", "--random-seed", "3"]),
        (dict(temperature=0.0, random_seed=1), ["--temperature", "0", "--random-seed", "1"]),
    ],
    ids=["top-p", "top-k", "greedy"],
)
def test_generate_equals_the_cli(trained_run, options, cli_options):
    model = shakegen.load(trained_run)
    text = model.generate("First", length=150, **options)
    assert isinstance(text, str) and text.startswith("First") and len(text) == len("First") + 150
    assert [text] == _cli_texts(trained_run, "--seed", "First", "--length", "150", *cli_options)
    assert "".join(model.stream("First", length=150, **options)) == text
    several = model.generate("First", length=80, num_samples=3, **options)
    assert several == _cli_texts(trained_run, "--seed", "First", "--length", "80", "--num-samples", "3", *cli_options)
    assert several[1] == model.generate("First", length=80, **{**options, "random_seed": options["random_seed"] + 1})


def _assert_follows_the_reference(run_dir, seed: str, texts: list[str], options: dict) -> None:
    """Every character of every sample is what a float64 NumPy forward pass, the options'
    definitions and the random seed's counter noise (the plain-Python hash of tests/reference.py)
    give; only a float near-tie may pick another."""
    from shakegen.runs import checkpoint

    info = checkpoint.read_run(run_dir)
    weights = run_weights(Path(run_dir) / checkpoint.BEST_FILE, info.config.cell)  # straight from the file
    for index, text in enumerate(texts):
        assert text.startswith(seed)
        gaps = sampling_gaps_for(
            weights,
            info.vocab.encode(seed),
            info.vocab.encode(text[len(seed) :]),
            len(info.vocab),
            options.get("temperature", 0.8),
            options.get("top_k"),
            options.get("top_p"),
            (options["random_seed"] + index) % 2**32,
        )
        assert gaps.max() < 1e-4 and np.count_nonzero(gaps) <= 1, (index, gaps.max())


@pytest.fixture(scope="module")
def engine_models(tmp_path_factory, small_text):
    """``trained_run``'s run (one copy, only read) loaded once on each engine: the cases below only sample
    from it, so a TensorFlow model traces its sampler once, not once per case."""
    run_dir = train_tiny_run(tmp_path_factory.mktemp("shared"), small_text)
    return run_dir, {engine: shakegen.load(run_dir, engine=engine) for engine in ("numpy", "tensorflow")}


@pytest.mark.parametrize(
    "options",
    [
        dict(temperature=0.8, top_p=0.9, random_seed=7),
        dict(temperature=1.3, top_k=5, random_seed=3),
        dict(temperature=0.0, random_seed=1),
        dict(temperature=1.0, random_seed=2**31 + 9),
        dict(temperature=0.6, top_k=12, top_p=0.95, random_seed=2**32 - 1),  # sample 1 wraps to seed 0
    ],
    ids=["top-p", "top-k", "greedy", "seed-above-2**31", "largest-seed"],
)
@pytest.mark.parametrize("engine", ["numpy", "tensorflow"])
def test_api_and_cli_texts_follow_the_reference_probabilities_and_noise(engine_models, options, engine):
    """An independent check of what the equality tests above compare shakegen with itself on."""
    trained_run, models = engine_models
    model = models[engine]
    texts = model.generate("First", length=100, num_samples=2, **options)
    assert model.last_engine == engine
    _assert_follows_the_reference(trained_run, "First", texts, options)
    streamed = "".join(model.stream("First", length=100, **options))
    assert streamed == texts[0]
    cli_options = [f"--random-seed={options['random_seed']}", "--temperature", str(options["temperature"])]
    cli_options += ["--top-k", str(options["top_k"])] if "top_k" in options else []
    cli_options += ["--top-p", str(options["top_p"])] if "top_p" in options else []
    cli_options += ["--engine", engine]
    cli = _cli_texts(trained_run, "--seed", "First", "--length", "100", "--num-samples", "2", *cli_options)
    _assert_follows_the_reference(trained_run, "First", cli, options)


def test_random_seeds_outside_32_bits_are_refused_in_one_line(trained_run):
    model = shakegen.load(trained_run)
    for bad in (-1, 2**32):
        with pytest.raises(SamplingError, match="^Random seed must be an integer from 0 to 4294967295, got"):
            model.generate("First", length=5, random_seed=bad)
        result = CliRunner().invoke(
            main, ["generate", "--checkpoint", str(trained_run), "--seed", "A", f"--random-seed={bad}"]
        )
        assert result.exit_code == 2 and "not in the range 0<=x<=4294967295" in result.output
        assert "Traceback" not in result.output
    assert model.generate(length=20) and 0 <= model.last_random_seed < 2**32


def test_stream_yields_as_it_samples(trained_run):
    chunks = list(shakegen.load(trained_run).stream("All:", length=200, random_seed=0))
    assert chunks[0] == "All:" and len(chunks) == 1 + math.ceil(200 / 64)  # the seed, then 64-character blocks
    assert sum(len(chunk) for chunk in chunks[1:]) == 200


def test_no_seed_starts_after_a_newline_and_returns_only_new_text(trained_run):
    model = shakegen.load(trained_run)
    text = model.generate(length=50, random_seed=4)
    assert len(text) == 50 and text == _cli_texts(trained_run, "--length", "50", "--random-seed", "4")[0]
    assert model.generate(length=20) and model.last_random_seed is not None


def test_evaluate_equals_the_cli(trained_run, small_data, tmp_path):
    model = shakegen.load(trained_run, which="last")
    report = model.evaluate(split="val", data_dir=small_data)
    result = CliRunner().invoke(
        main, ["eval", "--checkpoint", str(trained_run), "--which", "last", "--data-dir", str(small_data), "--json"]
    )
    cli = json.loads(result.stdout)
    assert report.loss == pytest.approx(cli["loss"], rel=1e-6) and report.characters == cli["characters"]
    assert report.perplexity == pytest.approx(math.exp(report.loss))
    assert report.bits_per_character == pytest.approx(report.loss / math.log(2))
    windows = model.evaluate(split="val", data_dir=small_data, protocol="windows", window=64)
    assert windows.protocol == "windows" and windows.window == 64 and windows.loss >= report.loss
    # A string is scored as the same text in a file.
    text = (small_data.parent / "small.txt").read_text()[-2000:]
    (tmp_path / "piece.txt").write_text(text)
    from_string = model.evaluate(text + "€")  # an unknown character is left out and counted
    from_file = model.evaluate(path=tmp_path / "piece.txt")
    assert from_string.loss == pytest.approx(from_file.loss, rel=1e-6) and from_string.left_out_characters == 1
    assert from_string.to_json()["loss"] == from_string.loss


def test_bad_arguments_raise_value_errors_naming_the_fix(trained_run):
    model = shakegen.load(trained_run)
    with pytest.raises(SamplingError, match="temperature"):
        model.generate("First", temperature=-1)
    with pytest.raises(SamplingError, match="top-p"):
        model.generate("First", top_p=1.5)
    with pytest.raises(SamplingError, match="length must be a positive integer"):
        model.generate("First", length=0)
    with pytest.raises(UnknownCharactersError, match="'€'.*--skip-unknown"):
        model.generate("First €")
    assert model.generate("First €", length=5, skip_unknown=True, random_seed=0).startswith("First ")
    with pytest.raises(EvaluationError, match="exactly one of text, path or split"):
        model.evaluate("some text", split="val")
    with pytest.raises(UnknownCharactersError):
        model.evaluate("First €", strict=True)
    for error in (SamplingError, UnknownCharactersError, EvaluationError, CheckpointError, ConfigError):
        assert issubclass(error, ValueError)
    with pytest.raises(CheckpointError, match="does not exist"):
        shakegen.load(trained_run.parent / "nowhere")
    with pytest.raises(CheckpointError, match="'best' or 'last'"):
        shakegen.load(trained_run, which="middle")
    with pytest.raises(ConfigError, match="Unknown training option.*rnn_unit"):
        shakegen.train("tiny", run_dir=trained_run.parent / "x", rnn_unit=3)
    with pytest.raises(ConfigError, match="Unknown preset"):
        shakegen.train("huge")


def test_train_from_python(tmp_path, small_data):
    result = shakegen.train("tiny", run_dir=tmp_path / "run", data_dir=small_data, max_steps=4, rnn_units=12)
    assert result.state.global_step == 4 and (tmp_path / "run" / "best.npz").is_file()
    model = shakegen.load(tmp_path / "run")
    assert model.config.rnn_units == 12 and "F" in model.vocabulary and "12" in repr(model)


def test_importing_shakegen_does_not_import_tensorflow():
    code = "import sys, shakegen; assert 'tensorflow' not in sys.modules; print(shakegen.load.__doc__.split()[0])"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "Load"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python example, as written (its training shortened to the tiny preset's 3 steps), in
    an empty folder: the run it trains prepares the embedded corpus in tmp_path/data."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("```python\nimport shakegen")
    example = readme[start + len("```python\n") : readme.index("```", start + 10)]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    shortened = example.replace('preset="quick"', 'preset="tiny"').replace(
        "epochs=2", "max_steps=3, val_characters=2000"
    )
    exec(compile(shortened, "README.md", "exec"), namespace)
    assert np.isfinite(namespace["report"].loss)
    texts = [value for value in namespace.values() if isinstance(value, str) and value.startswith("ROMEO:")]
    assert texts and all(len(text) > len("ROMEO:") for text in texts)  # whatever the example names them
    assert namespace["run"].state.global_step == 3


def test_loading_and_sampling_on_the_engine_import_no_tensorflow(tmp_path):
    """shakegen.load(...).generate/stream/evaluate of a short text stay on the NumPy engine: a fresh
    process that does them has no TensorFlow in sys.modules. Many samples at once go to TensorFlow
    (checked here, in this process, where TensorFlow is loaded already)."""
    code = """
import sys, shakegen
model = shakegen.load("pretrained")
model.generate("ROMEO:", length=30, random_seed=1)
"".join(model.stream("ROMEO:", length=30, random_seed=1))
report = model.evaluate("First Citizen:\\nBefore we proceed any further, hear me speak.")
print(report.engine, model.last_engine, "tensorflow" in sys.modules, "keras" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["numpy", "numpy", "False", "False"]
    model = shakegen.load("pretrained")
    model.generate("ROMEO:", length=10, num_samples=8, random_seed=1)
    assert model.last_engine == "tensorflow"


def test_figures_do_not_depend_on_the_engine_or_the_turn_size(trained_run, small_data):
    """The engine (one stream at batch 1) and TensorFlow (streams and batches) give one figure, and
    characters_per_call (how much one call scores, as the server's turns do) changes nothing."""
    model = shakegen.load(trained_run)
    text = (small_data.parent / "small.txt").read_text()[:3000]
    for protocol in (dict(protocol="streaming"), dict(protocol="windows", window=100)):
        reports = [
            model.evaluate(text, engine=engine, characters_per_call=per_call, **protocol)
            for engine in ("numpy", "tensorflow")
            for per_call in (None, 13, 257, 4096)
        ]
        assert [report.engine for report in reports] == ["numpy"] * 4 + ["tensorflow"] * 4
        assert {report.characters for report in reports} == {2999}
        for report in reports[1:]:
            assert report.loss == pytest.approx(reports[0].loss, rel=1e-5), protocol
    assert model.evaluate(text).engine == "numpy"  # auto: a short text on the engine
    long = model.evaluate(text * 3, characters_per_call=2048)  # auto: TensorFlow beyond 8,191 predicted characters
    assert long.engine == "tensorflow" and long.characters == 8999
    assert long.loss == pytest.approx(model.evaluate(text * 3).loss, rel=1e-6)
    piece = small_data.parent / "piece.txt"
    piece.write_text(text)
    for engine in ("numpy", "tensorflow"):
        args = ["eval", "--checkpoint", str(trained_run), "--text", str(piece), "--engine", engine, "--json"]
        cli = json.loads(CliRunner().invoke(main, args).stdout)
        assert cli["engine"] == engine and cli["loss"] == pytest.approx(model.evaluate(text).loss, rel=1e-5)
    with pytest.raises(EvaluationError, match="characters_per_call must be a positive integer"):
        model.evaluate(text, characters_per_call=0)
    with pytest.raises(EvaluationError, match="Unknown engine 'gpu'"):
        model.evaluate(text, engine="gpu")
    with pytest.raises(SamplingError, match="Unknown engine 'gpu'; expected one of auto, numpy, tensorflow"):
        shakegen.load(trained_run, engine="gpu")


def test_characters_per_call_by_engine_picks_the_scoring_engines_count(trained_run):
    """A mapping {engine: count} uses the count of the engine that actually scores; bad counts are refused."""
    import pytest

    import shakegen
    from shakegen.use.evaluate import EvaluationError

    model = shakegen.load(trained_run)
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 3
    calls = []
    report = model.evaluate(
        text,
        engine="numpy",
        characters_per_call={"numpy": 7, "tensorflow": 100_000},
        progress=lambda done, total: calls.append(done),
    )
    predicted = len(text) - 1
    assert calls == list(range(7, predicted, 7)) + [predicted]  # pieces of 7: the numpy count was used
    assert report.loss == pytest.approx(model.evaluate(text, engine="numpy").loss, rel=1e-6)  # float rounding
    with pytest.raises(EvaluationError, match="characters_per_call"):
        model.evaluate(text, characters_per_call={"numpy": 0, "tensorflow": 10})
