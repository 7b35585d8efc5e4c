import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import shakegen
from shakegen.cli import main
from shakegen.data.vocab import UnknownCharactersError
from shakegen.errors import SamplingError, ShakegenError
from shakegen.model import inference
from shakegen.runs import checkpoint
from shakegen.use import sampling, tf_sampler
from shakegen.use.sampling import PRIME_WINDOW
from tests.reference import (
    model_logits,
    model_weights,
    run_weights,
    sample_ids,
    sampler_noise,
    sampling_gaps,
    sampling_gaps_for,
    softmax,
)
from tests.runs import train_tiny_run


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, small_text):
    """A tiny run (conftest's configuration) trained once for the tests that only read it."""
    return train_tiny_run(tmp_path_factory.mktemp("shared"), small_text)


@pytest.fixture(scope="module")
def loaded(shared_run):
    model, info, _ = checkpoint.load_model(shared_run, "best")
    return model, info


@pytest.fixture(scope="module")
def bfloat16_run(tmp_path_factory, small_text):
    """A tiny run trained in mixed_bfloat16 (long enough that bfloat16 sampling drifts from float32)."""
    return train_tiny_run(tmp_path_factory.mktemp("bf16"), small_text, precision="mixed_bfloat16", epochs=4)


_SAMPLERS: dict[tuple[int, int], tuple] = {}  # (id(model), prime window) -> (model, its sampler)


@pytest.fixture(scope="module", autouse=True)
def _forget_samplers():
    """``_generate``'s samplers (and the models they hold) last one module, not the whole process."""
    yield
    _SAMPLERS.clear()


def _generate(model, info, seed_text, length, options, num_samples=1, random_seed=0, prime_window=PRIME_WINDOW):
    """TensorFlow's sampler (``tf_sampler.Sampler``) on a Keras model: the new texts.

    One sampler per model and prime window serves every call, the options passed to ``sample`` (they are
    run-time inputs of its one compiled loop, as the API's are): a new sampler would trace it again.
    Build the sampler after the weights are final: a mixed-precision model's float32 twin keeps the
    weights it had then."""
    key = (id(model), prime_window)
    if key not in _SAMPLERS:  # the model is kept with its sampler, so its id cannot be reused meanwhile
        _SAMPLERS[key] = (model, tf_sampler.Sampler(model, prime_window=prime_window))
    sampler = _SAMPLERS[key][1]
    texts = sampling.TextCollector(num_samples)
    for block in sampler.sample(info.vocab.encode(seed_text), length, num_samples, random_seed, options=options):
        texts.add([info.vocab.decode(row) for row in block])
    return texts.texts()


def _engine_generate(run_dir, seed_text, length, options, num_samples=1, random_seed=0):
    """The NumPy engine, through the API's one sampling function: the new texts."""
    model = shakegen.load(run_dir, engine="numpy")
    texts = sampling.TextCollector(num_samples)
    for block in model.sample_blocks(seed_text, length, options, num_samples, random_seed):
        texts.add(block)
    assert model.last_engine == "numpy"
    return texts.texts()


def _reference_texts(model, info, seed_text, length, options, num_samples=1, random_seed=0):
    weights = model_weights(model)
    seed_ids = info.vocab.encode(seed_text)
    return [
        info.vocab.decode(
            sample_ids(
                weights,
                seed_ids,
                length,
                options.temperature,
                options.top_k,
                options.top_p,
                sampler_noise((random_seed + index) % 2**32, len(info.vocab)),
            )
        )
        for index in range(num_samples)
    ]


def test_same_random_seed_same_text(loaded):
    model, info = loaded
    options = sampling.SamplingOptions(temperature=1.0)
    first = _generate(model, info, "ROMEO:", 150, options, random_seed=5)
    assert first == _generate(model, info, "ROMEO:", 150, options, random_seed=5)
    assert first != _generate(model, info, "ROMEO:", 150, options, random_seed=6)


def test_greedy_equals_numpy_argmax(loaded):
    model, info = loaded
    weights = model_weights(model)
    seed = "First Citizen:"
    text = _generate(model, info, seed, 40, sampling.SamplingOptions(temperature=0))[0]
    ids = list(info.vocab.encode(seed))
    expected = []
    for _ in range(40):
        logits, _ = model_logits(weights, np.array([ids]))
        next_id = int(np.argmax(logits[0, -1]))
        expected.append(next_id)
        ids.append(next_id)
    assert text == info.vocab.decode(expected)


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(0.8, None, None), (1.4, None, None), (0.6, 5, None), (1.0, None, 0.9), (0.7, 10, 0.8)],
)
def test_samples_equal_a_numpy_sampler_fed_the_same_noise(loaded, temperature, top_k, top_p):
    """Every character of every sample, across a chunk boundary, is the one the definitions
    give (softmax of logits / T, top-k, nucleus, Gumbel-max) in float64: a wrong temperature
    or filter changes the text."""
    model, info = loaded
    options = sampling.SamplingOptions(temperature, top_k, top_p)
    texts = _generate(model, info, "ROMEO:", 80, options, num_samples=2, random_seed=3)
    assert texts == _reference_texts(model, info, "ROMEO:", 80, options, num_samples=2, random_seed=3)
    assert _engine_generate(info.run_dir, "ROMEO:", 80, options, num_samples=2, random_seed=3) == texts


@pytest.mark.parametrize("prime_window", [1, 7, 64, 1000])
def test_long_seed_primed_in_windows_equals_one_pass(loaded, small_text, prime_window):
    """Priming in windows that carry the state gives the text a one-pass float64 forward gives."""
    model, info = loaded
    seed = small_text[1000:1300]  # 300 characters: several windows, a partial last one
    for options in (sampling.SamplingOptions(temperature=0), sampling.SamplingOptions(temperature=0.9, top_k=8)):
        texts = _generate(model, info, seed, 30, options, num_samples=2, random_seed=1, prime_window=prime_window)
        assert texts == _reference_texts(model, info, seed, 30, options, num_samples=2, random_seed=1)


def test_priming_keeps_memory_flat_for_long_seeds_and_many_samples(fresh_process):
    """A 10,000-character seed for 128 samples: priming runs once at batch 1 in windows, so
    the peak memory barely moves (one pass over the whole seed per sample needed ~0.5 GB).

    Measured in a fresh interpreter (``fresh_process``, after its commands), from the peak its own
    warm-up reached."""
    assert fresh_process["memory_error"] is None, fresh_process["memory_error"]
    assert fresh_process["peak_growth_mb"] < 100


def test_top_k_one_equals_greedy(loaded):
    model, info = loaded
    greedy = _generate(model, info, "First", 100, sampling.SamplingOptions(temperature=0))
    top1 = _generate(model, info, "First", 100, sampling.SamplingOptions(temperature=0.9, top_k=1), random_seed=3)
    assert top1 == greedy


@pytest.fixture(scope="module")
def confident(shared_run):
    """The shared run's model with its logits made ten times larger (as a confident model's are; the
    greedy choice is unchanged), its info, and its greedy text after "First"; the tests only read them."""
    model, info, _ = checkpoint.load_model(shared_run, "best")
    model.dense.kernel.assign(model.dense.kernel * 10.0)
    model.dense.bias.assign(model.dense.bias * 10.0)
    return model, info, _generate(model, info, "First", 100, sampling.SamplingOptions(temperature=0))


@pytest.mark.parametrize("temperature", [1e-30, 1e-37, 2e-38, 1.2e-38, 1e-38, 1e-40, 1e-45, 1e-300])
def test_tiny_temperatures_are_greedy(confident, temperature):
    """Logits / 1e-38 overflow to +inf; the sampler must still pick the most likely character.

    The logits are made ten times larger (``confident``) so that several of them overflow even
    at temperatures just above 1.2e-38."""
    model, info, greedy = confident
    assert _generate(model, info, "First", 100, sampling.SamplingOptions(temperature=temperature)) == greedy


@pytest.mark.parametrize(
    "top_p, kept",
    [(0.5, [0]), (0.6, [0, 1]), (0.74, [0, 1]), (0.76, [0, 1, 2]), (0.95, [0, 1, 2, 3]), (0.99, [0, 1, 2, 3, 4])],
)
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    probabilities = np.array([[0.5, 0.25, 0.15, 0.07, 0.03]])
    order = np.array([3, 0, 4, 1, 2])  # shuffled so the filter cannot rely on positions
    logits = tf.constant(np.log(probabilities[:, order]), tf.float32)
    filtered = tf_sampler.filter_logits(logits, top_k=None, top_p=top_p).numpy()[0]
    kept_original = sorted(int(order[i]) for i in np.flatnonzero(np.isfinite(filtered)))
    assert kept_original == kept


def test_top_k_keeps_k_largest():
    logits = tf.constant([[0.1, 3.0, -1.0, 2.0, 0.5]])
    filtered = tf_sampler.filter_logits(logits, top_k=2, top_p=None).numpy()[0]
    assert np.flatnonzero(np.isfinite(filtered)).tolist() == [1, 3]


def test_batch_of_n_equals_n_single_samples(loaded):
    model, info = loaded
    options = sampling.SamplingOptions(temperature=0.8, top_p=0.95)
    batch = _generate(model, info, "ROMEO:", 130, options, num_samples=3, random_seed=11)
    singles = [_generate(model, info, "ROMEO:", 130, options, random_seed=11 + index)[0] for index in range(3)]
    assert batch == singles
    assert len(set(batch)) == 3


def _chi_square(counts, probabilities):
    """Pearson's statistic and degrees of freedom, pooling cells expected fewer than 5 times."""
    expected = counts.sum() * probabilities
    big = expected >= 5
    observed, expected = np.append(counts[big], counts[~big].sum()), np.append(expected[big], expected[~big].sum())
    if expected[-1] == 0:  # nothing to pool
        observed, expected = observed[:-1], expected[:-1]
    return float(((observed - expected) ** 2 / expected).sum()), len(expected) - 1


def _chi_square_limit(degrees: int, z: float = 5.0) -> float:
    """The chi-square quantile at a normal z-score (Wilson–Hilferty); z = 5 is a 3e-7 tail."""
    return degrees * (1 - 2 / (9 * degrees) + z * math.sqrt(2 / (9 * degrees))) ** 3


def test_sampling_follows_the_model_distribution_at_its_temperature(loaded):
    """The first sampled character's frequencies fit softmax(logits / T), and fit neither a
    lower nor a higher temperature (±20%): the check can see a wrong one."""
    model, info = loaded
    seed = "First Citizen:\nBefo"  # a position where even the tiny model is fairly sure
    logits, _ = model_logits(model_weights(model), np.array([info.vocab.encode(seed)]))
    texts = _generate(model, info, seed, 1, sampling.SamplingOptions(temperature=0.7), num_samples=4000)
    counts = np.bincount(info.vocab.encode("".join(texts)), minlength=len(info.vocab))

    def fit(temperature):
        statistic, degrees = _chi_square(counts, softmax(logits[0, -1] / temperature))
        return statistic / _chi_square_limit(degrees)

    assert fit(0.7) < 1
    assert fit(0.55) > 1 and fit(0.9) > 1


def _cli(*args):
    return CliRunner().invoke(main, ["generate", *args])


def test_cli_piped_output_is_exactly_seed_plus_sample(shared_run):
    result = _cli("--checkpoint", str(shared_run), "--seed", "ROMEO:", "--length", "77", "--random-seed", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ROMEO:") and len(result.stdout) == len("ROMEO:") + 77
    assert "char/s" in result.stderr
    again = _cli(
        "--checkpoint", str(shared_run), "--seed", "ROMEO:", "--length", "77", "--random-seed", "1", "--no-stream"
    )
    assert again.stdout == result.stdout


def test_cli_json_and_seed_file(shared_run, tmp_path):
    seed_file = tmp_path / "seed.txt"
    seed_file.write_text("Citizen:\r\n")
    result = _cli(
        "--checkpoint",
        str(shared_run),
        "--seed-file",
        str(seed_file),
        "--length",
        "20",
        "--num-samples",
        "2",
        "--json",
    )
    report = json.loads(result.stdout)
    samples = report["texts"]
    assert len(samples) == 2 and all(s.startswith("Citizen:\n") and len(s) == 29 for s in samples)
    assert report["engine"] == "numpy" and 0 <= report["random_seed"] < 2**32  # auto: the engine for 2 samples
    again = _cli("--checkpoint", str(shared_run), "--seed-file", str(seed_file), "--length", "20")
    assert again.exit_code == 0
    forced = _cli(
        *["--checkpoint", str(shared_run), "--seed-file", str(seed_file), "--length", "20", "--num-samples", "2"],
        *["--random-seed", str(report["random_seed"]), "--engine", "tensorflow", "--json"],
    )
    assert json.loads(forced.stdout)["engine"] == "tensorflow"
    assert json.loads(forced.stdout)["texts"] == samples  # the same noise on both engines


def test_cli_unknown_characters(shared_run):
    result = _cli("--checkpoint", str(shared_run), "--seed", "ROMEO€é", "--length", "5")
    assert result.exit_code == 1
    assert "'€', 'é'" in result.output and "knows" in result.output and "--skip-unknown" in result.output
    assert "Traceback" not in result.output
    skipped = _cli(
        "--checkpoint", str(shared_run), "--seed", "ROMEO€", "--length", "5", "--skip-unknown", "--random-seed", "2"
    )
    assert skipped.exit_code == 0 and skipped.stdout.startswith("ROMEO") and "dropped" in skipped.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--length", "0"], 2, "positive"),
        (["--length", "-5"], 2, "positive"),
        (["--temperature", "-1"], 2, "temperature"),
        (["--temperature", "inf"], 2, "temperature must be a finite number"),
        (["--temperature", "nan"], 2, "temperature must be a finite number"),
        (["--top-k", "0"], 2, "top-k"),
        (["--top-k", "1000"], 2, "top-k"),
        (["--top-p", "0"], 2, "top-p"),
        (["--top-p", "1.5"], 2, "top-p"),
        (["--top-p", "nan"], 2, "top-p"),
        (["--top-p", "inf"], 2, "top-p"),
        (["--temperature", "1e300"], 2, "positive up to 3.402823e+38 (float32's largest), got 1e+300"),
        (["--random-seed", "-1"], 2, "-1 is not in the range 0<=x<=4294967295"),
        (["--random-seed", "4294967296"], 2, "4294967296 is not in the range 0<=x<=4294967295"),
        (["--seed-file", "missing.txt"], 1, "Cannot read the seed file missing.txt"),
        (["--seed-file", "seed.txt", "--encoding", "base64"], 1, "Unknown text encoding 'base64'"),
        (["--seed-file", "seed.txt", "--encoding", "nope"], 1, "Unknown text encoding 'nope'"),
    ],
)
def test_cli_bad_options(shared_run, tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seed.txt").write_text("ROMEO:")
    seed = [] if "--seed-file" in args else ["--seed", "A"]
    result = _cli("--checkpoint", str(shared_run), *seed, *args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_sampling_errors_are_shakegen_errors(loaded):
    model, info = loaded
    with pytest.raises(SamplingError, match="finite"):
        sampling.SamplingOptions(temperature=math.inf).validate(len(info.vocab))
    sampler = tf_sampler.Sampler(model, sampling.SamplingOptions(0))
    for bad in (lambda: next(sampler.sample([], 5)), lambda: next(sampler.sample([1], 0))):
        with pytest.raises(SamplingError):
            bad()
    with pytest.raises(UnknownCharactersError) as unknown:
        sampling.prepare_seed("ROMEO€", info)
    assert isinstance(unknown.value, ShakegenError) and "--skip-unknown" in str(unknown.value)
    with pytest.raises(SamplingError, match="empty"):
        sampling.prepare_seed("€", info, skip_unknown=True)


def test_cli_bad_run_folders(trained_run, tmp_path):
    missing = _cli("--checkpoint", str(tmp_path / "nope"), "--seed", "A")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    assert "not a shakegen run folder" in _cli("--checkpoint", str(not_a_run), "--seed", "A").output
    (trained_run / "best.npz").unlink()
    incomplete = _cli("--checkpoint", str(trained_run), "--seed", "A")
    assert incomplete.exit_code == 1 and "best.npz is missing" in incomplete.output
    (trained_run / "last.npz").write_bytes(b"PK\x03\x04 garbage")
    corrupt = _cli("--checkpoint", str(trained_run), "--seed", "A", "--which", "last")
    assert corrupt.exit_code == 1 and "damaged" in corrupt.output and "Traceback" not in corrupt.output


BFLOAT16_SEEDS = ["First Citizen:", "ROMEO:", "\n", "We are accounted poor citizens", "What"]


def test_bfloat16_run_samples_as_its_float32_weights(bfloat16_run):
    """A run trained in mixed_bfloat16 is sampled in float32: its greedy text is the float32
    (here float64) reference's, whichever way the model was loaded, on any processor."""
    mixed, info, _ = checkpoint.load_model(bfloat16_run, "best")
    assert not inference.is_float32(mixed)
    weights = model_weights(mixed)  # float32 variables even under mixed precision
    for seed in BFLOAT16_SEEDS:
        expected = info.vocab.decode(sample_ids(weights, info.vocab.encode(seed), 200, 0))
        assert _generate(mixed, info, seed, 200, sampling.SamplingOptions(temperature=0)) == [expected], seed
        result = _cli("--checkpoint", str(bfloat16_run), "--seed", seed, "--length", "200", "--temperature", "0")
        assert result.exit_code == 0 and result.stdout == seed + expected, seed


def test_seed_file_is_read_in_the_runs_encoding(tmp_path, small_text):
    text = small_text[:3000] + "Café, déjà vu: naïve façade!\n" * 40
    run = train_tiny_run(tmp_path, text, encoding="latin-1", epochs=1)
    seed_file = tmp_path / "seed.txt"
    seed_file.write_bytes("Café déjà".encode("latin-1"))
    result = _cli("--checkpoint", str(run), "--seed-file", str(seed_file), "--length", "10", "--random-seed", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Café déjà") and len(result.stdout) == len("Café déjà") + 10
    utf8 = _cli("--checkpoint", str(run), "--seed-file", str(seed_file), "--length", "10", "--encoding", "utf-8")
    assert utf8.exit_code == 1 and "not valid utf-8" in utf8.output and "--encoding" in utf8.output


# -- one compiled loop for every option value ---------------------------------------------------


def test_one_compiled_loop_serves_every_option_value(shared_run, monkeypatch):
    """Fifty temperatures, top-k and top-p values, greedy, and one and three samples: no new
    sampler and no new trace after the first request (each new value used to trace two)."""
    built = []
    real_init = tf_sampler.Sampler.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(tf_sampler.Sampler, "__init__", recording_init)

    def traces():
        return sum(
            f.experimental_get_tracing_count() for sampler in built for f in (sampler._chunk, sampler._prime_step)
        )

    model = shakegen.load(shared_run, engine="tensorflow")
    first = model.generate("First", length=70, temperature=0.5, random_seed=1)
    after_first = traces()
    texts = {first}
    for index in range(50):
        texts.add(model.generate("First", length=70, temperature=0.3 + index * 0.05, random_seed=1))
    for options in (dict(top_k=3), dict(top_p=0.7), dict(top_k=9, top_p=0.95), dict(temperature=0)):
        model.generate("First", length=70, random_seed=2, **options)
    model.generate("First Citizen", length=130, num_samples=3, temperature=1.7, random_seed=3)
    assert len(built) == 1 and traces() == after_first <= 2
    assert len(texts) > 10  # the temperatures did change the texts: they reached the loop


# -- random seeds: 0 ... 2**32 - 1, each its own text, the counter noise's ------------------------


@pytest.fixture(scope="module")
def pretrained_bundle():
    """``load(engine)``: the pretrained bundle loaded on that engine, once per engine (the cases only
    sample from it; a TensorFlow model's sampler then traces once, not once per case), and the
    bundle's weights read straight from its file for the float64 reference."""
    from shakegen.runs import pretrained

    models = {}

    def load(engine):
        if engine not in models:
            models[engine] = shakegen.load("pretrained", engine=engine)
        return models[engine]

    cell = checkpoint.read_run(pretrained.BUNDLE_DIR).config.cell
    return load, run_weights(pretrained.BUNDLE_DIR / checkpoint.BEST_FILE, cell)


@pytest.mark.parametrize("engine", ["numpy", "tensorflow"])
@pytest.mark.parametrize(
    "seed, options",
    [
        ("ROMEO:", dict(temperature=0.8, random_seed=7)),
        ("JULIET:", dict(temperature=1.0, top_p=0.9, random_seed=2**31 - 1)),
        ("KING", dict(temperature=1.2, top_k=5, random_seed=2**32 - 1, num_samples=2)),
        ("First Citizen:", dict(temperature=0)),
    ],
)
def test_the_pretrained_models_texts_follow_the_reference_and_the_counter_noise(
    pretrained_bundle, engine, seed, options
):
    """The whole path (load, clean, prime, sample, decode) on the float16 bundle: every character is
    what a float64 forward pass from the bundle's own file, the options' definitions and the random
    seed's noise (the plain-Python hash of tests/reference.py) give; only a float near-tie may differ."""
    load, weights = pretrained_bundle
    model = load(engine)
    texts = model.generate(seed, length=150, **{**options, "num_samples": options.get("num_samples", 1)})
    assert model.last_engine == engine
    info = model.info
    for index, text in enumerate(texts):
        assert text.startswith(seed) and len(text) == len(seed) + 150
        gaps = sampling_gaps_for(
            weights,
            info.vocab.encode(seed),
            info.vocab.encode(text[len(seed) :]),
            len(info.vocab),
            options["temperature"],
            options.get("top_k", 0),
            options.get("top_p", 1.0),
            options.get("random_seed", 0) + index,
        )
        assert gaps.max() < 1e-4, (index, int(np.argmax(gaps)), gaps.max())


def test_random_seeds_cover_32_bits_without_collisions(loaded):
    """Every seed up to 2**32 - 1 has its own text, the one a float64 sampler fed that seed's counter
    noise (the plain-Python hash) gives, on either engine, and sample i of a batch stays the single
    sample with seed + i, wrapping at 2**32."""
    model, info = loaded
    options = sampling.SamplingOptions(temperature=1.0)
    for low in (0, 5, 2**31 - 1):
        [below] = _generate(model, info, "ROMEO:", 70, options, random_seed=low)
        [above] = _generate(model, info, "ROMEO:", 70, options, random_seed=low + 2**31)
        assert below != above
    for seed in (2**31, 2**31 + 5, 2**32 - 1):
        reference = _reference_texts(model, info, "ROMEO:", 70, options, random_seed=seed)
        assert _generate(model, info, "ROMEO:", 70, options, random_seed=seed) == reference
        assert _engine_generate(info.run_dir, "ROMEO:", 70, options, random_seed=seed) == reference
    batch = _generate(model, info, "ROMEO:", 70, options, num_samples=2, random_seed=2**32 - 1)
    assert batch[1] == _generate(model, info, "ROMEO:", 70, options, random_seed=0)[0]
    assert _engine_generate(info.run_dir, "ROMEO:", 70, options, num_samples=2, random_seed=2**32 - 1) == batch


@pytest.mark.parametrize("bad", [-1, 2**32, 2**40, 1.5, "7", True])
def test_random_seeds_out_of_range_are_refused_in_one_line(loaded, shared_run, bad):
    model, info = loaded
    with pytest.raises(SamplingError, match=r"^Random seed must be an integer from 0 to 4294967295, got .*range\.$"):
        next(tf_sampler.Sampler(model).sample(np.array([1, 2]), 5, random_seed=bad))
    text_model = shakegen.load(shared_run)
    for call in (text_model.generate, lambda *a, **k: next(text_model.stream(*a, **k))):
        with pytest.raises(SamplingError, match="Random seed must be an integer from 0 to 4294967295"):
            call("First", length=5, random_seed=bad)


# -- options float32 cannot hold ------------------------------------------------------------------


@pytest.mark.parametrize("top_p", [1e-38, 1e-40, 1e-45, 1e-50, 1e-300])
def test_a_nucleus_always_holds_the_most_likely_character(loaded, top_p):
    """A top_p below float32's smallest normal (flushed to 0, or 0 outright) used to keep
    nothing and emit id 0 forever; the nucleus it asks for is the most likely character."""
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 2.0, (6, 20)).astype(np.float32)
    filtered = tf_sampler.filter_logits(tf.constant(logits), top_p=top_p).numpy()
    for row, kept in zip(logits, filtered, strict=True):
        assert np.flatnonzero(np.isfinite(kept)).tolist() == [int(np.argmax(softmax(row.astype(np.float64))))]
    model, info = loaded
    tiny_nucleus = _generate(model, info, "ROMEO:", 100, sampling.SamplingOptions(1.0, top_p=top_p), random_seed=3)
    assert tiny_nucleus == _generate(model, info, "ROMEO:", 100, sampling.SamplingOptions(temperature=0))
    assert tiny_nucleus == _reference_texts(model, info, "ROMEO:", 100, sampling.SamplingOptions(0))


@pytest.mark.parametrize("temperature", [1e300, 3.5e38, float(np.finfo(np.float64).max)])
def test_temperatures_float32_cannot_hold_are_refused(loaded, temperature):
    """1e300 used to become inf in float32 and sample uniformly whatever the model said."""
    model, info = loaded
    with pytest.raises(SamplingError, match=r"positive up to 3.402823e\+38 \(float32's largest\), got"):
        sampling.SamplingOptions(temperature).validate(len(info.vocab))
    largest = sampling.SamplingOptions(3.4e38).validate(len(info.vocab))  # still a number in float32
    texts = _generate(model, info, "ROMEO:", 64, largest, num_samples=2, random_seed=5)
    for index, text in enumerate(texts):  # what softmax(logits / 3.4e38) and the noise give: nearly uniform
        noise = sampler_noise(5 + index, len(info.vocab))
        seed_ids, ids = info.vocab.encode("ROMEO:"), info.vocab.encode(text)
        assert sampling_gaps(model_weights(model), seed_ids, ids, 3.4e38, noise=noise).max() < 1e-4


# -- shakegen generate never imports TensorFlow ---------------------------------------------------

FRESH_PROCESS = """
import contextlib, io, json, resource, runpy, sys, traceback

def tensorflow_modules():
    return sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras"))

def run_shakegen(args):
    # ``python -m shakegen ARGS`` in this interpreter: its stdout and exit code, and the modules loaded after it.
    sys.argv = ["shakegen", *args]
    out = io.StringIO()
    code, error = 0, None
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_module("shakegen", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = 0 if stop.code is None else stop.code
    except Exception:
        code, error = 1, traceback.format_exc()
    return {"stdout": out.getvalue(), "code": code, "error": error, "modules": tensorflow_modules()}

def peak_growth_mb():
    import numpy as np
    from shakegen.config import TrainConfig
    from shakegen.model.network import build_model
    from shakegen.use.sampling import SamplingOptions
    from shakegen.use.tf_sampler import Sampler

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    sampler = Sampler(build_model(8, TrainConfig(embedding_dim=4, rnn_units=8)), SamplingOptions(0.8))
    next(sampler.sample(np.ones(600, np.int32), 1, num_samples=128))  # trace and warm up first
    before = peak_mb()
    next(sampler.sample(np.arange(10_000) % 8, 1, num_samples=128))
    return peak_mb() - before

results = {"commands": {name: run_shakegen(args) for name, args in json.loads(sys.argv[1])}}
try:
    results["peak_growth_mb"], results["memory_error"] = peak_growth_mb(), None
except Exception:
    results["peak_growth_mb"], results["memory_error"] = None, traceback.format_exc()
print("RESULTS", json.dumps(results))
"""


@pytest.fixture(scope="module")
def fresh_process(shared_run, tmp_path_factory):
    """One fresh interpreter importing this very shakegen, for the checks that need one, in this order:
    ``shakegen --help`` and the ``shakegen generate`` commands that must not import TensorFlow (the
    modules are read right after each one, so each is checked as if it ran alone: a command that
    imported TensorFlow would leave it behind for the reading that follows it); then ``--engine
    tensorflow``, which does import it; then, TensorFlow loaded, the priming memory measurement.

    Returns {"commands": {name: {stdout, code, error, modules}}, "peak_growth_mb", "memory_error"}."""
    args = ["generate", "--checkpoint", str(shared_run), "--seed", "ROMEO:", "--length", "100", "--random-seed", "3"]
    commands = [
        ("help", ["--help"]),
        ("numpy", [*args, "--json"]),
        ("pretrained", ["generate", "--checkpoint", "pretrained", "--seed", "ROMEO:", "--length", "50"]),
        ("samples", [*args, "--num-samples", "3"]),
        ("tensorflow", [*args, "--json", "--engine", "tensorflow"]),  # last of the commands: it imports TensorFlow
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(shakegen.__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, json.dumps(commands)],
        capture_output=True,
        text=True,
        cwd=tmp_path_factory.mktemp("fresh"),
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = [line for line in result.stdout.splitlines() if line.startswith("RESULTS ")][-1]
    return json.loads(line[len("RESULTS ") :])


def test_generate_and_help_never_import_tensorflow(fresh_process):
    """In a fresh process (``fresh_process``: one for all these commands, the modules read after each),
    ``shakegen generate`` (a run folder and the pretrained model, one sample and several) and
    ``shakegen --help`` leave tensorflow and keras out of sys.modules; ``--engine tensorflow`` does
    import it (the check can see it), and its text is the engine's."""
    ran = fresh_process["commands"]
    for name in ("help", "numpy", "pretrained", "samples"):
        assert ran[name]["code"] == 0 and ran[name]["modules"] == [], (name, ran[name]["error"])
    assert "generate" in ran["help"]["stdout"]
    assert json.loads(ran["numpy"]["stdout"])["engine"] == "numpy"
    forced = ran["tensorflow"]
    assert forced["code"] == 0 and "tensorflow" in forced["modules"], forced["error"]
    assert json.loads(forced["stdout"])["engine"] == "tensorflow"
    assert json.loads(forced["stdout"])["texts"] == json.loads(ran["numpy"]["stdout"])["texts"]
