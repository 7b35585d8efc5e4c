import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from shakegen import checkpoint, sampling
from shakegen.cli import main
from tests.reference import model_logits, model_weights


@pytest.fixture
def loaded(trained_run):
    model, info, _ = checkpoint.load_model(trained_run, "best")
    return model, info


def _generate(model, info, seed_text, length, options, num_samples=1, random_seed=0):
    sampler = sampling.Sampler(model, options)
    return sampling.generate_text(sampler, info.vocab, seed_text, length, num_samples, random_seed).texts


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


def test_top_k_one_equals_greedy(loaded):
    model, info = loaded
    greedy = _generate(model, info, "First", 100, sampling.SamplingOptions(temperature=0))
    top1 = _generate(model, info, "First", 100, sampling.SamplingOptions(temperature=0.9, top_k=1), random_seed=3)
    assert top1 == greedy


@pytest.mark.parametrize(
    "top_p, kept",
    [(0.5, [0]), (0.6, [0, 1]), (0.74, [0, 1]), (0.76, [0, 1, 2]), (0.95, [0, 1, 2, 3]), (1.0, [0, 1, 2, 3, 4])],
)
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    probabilities = np.array([[0.5, 0.25, 0.15, 0.07, 0.03]])
    order = np.array([3, 0, 4, 1, 2])  # shuffled so the filter cannot rely on positions
    logits = tf.constant(np.log(probabilities[:, order]), tf.float32)
    filtered = sampling.filter_logits(logits, top_k=None, top_p=top_p).numpy()[0]
    kept_original = sorted(int(order[i]) for i in np.flatnonzero(np.isfinite(filtered)))
    assert kept_original == kept


def test_top_k_keeps_k_largest():
    logits = tf.constant([[0.1, 3.0, -1.0, 2.0, 0.5]])
    filtered = sampling.filter_logits(logits, top_k=2, top_p=None).numpy()[0]
    assert np.flatnonzero(np.isfinite(filtered)).tolist() == [1, 3]


def test_batch_of_n_equals_n_single_samples(loaded):
    model, info = loaded
    options = sampling.SamplingOptions(temperature=0.8, top_p=0.95)
    batch = _generate(model, info, "ROMEO:", 130, options, num_samples=3, random_seed=11)
    singles = [_generate(model, info, "ROMEO:", 130, options, random_seed=11 + index)[0] for index in range(3)]
    assert batch == singles
    assert len(set(batch)) == 3


def test_sampling_follows_the_model_distribution(loaded):
    """The first sampled character's frequencies match softmax(logits / T) (chi-square-free check)."""
    model, info = loaded
    weights = model_weights(model)
    seed = "ROMEO:\nI"
    logits, _ = model_logits(weights, np.array([info.vocab.encode(seed)]))
    probabilities = np.exp(logits[0, -1] / 0.7 - np.max(logits[0, -1] / 0.7))
    probabilities /= probabilities.sum()
    texts = _generate(model, info, seed, 1, sampling.SamplingOptions(temperature=0.7), num_samples=600, random_seed=0)
    counts = np.bincount(info.vocab.encode("".join(texts)), minlength=len(info.vocab)) / 600
    assert np.abs(counts - probabilities).max() < 0.07


def _cli(*args):
    return CliRunner().invoke(main, ["generate", *args])


def test_cli_piped_output_is_exactly_seed_plus_sample(trained_run):
    result = _cli("--checkpoint", str(trained_run), "--seed", "ROMEO:", "--length", "77", "--random-seed", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ROMEO:") and len(result.stdout) == len("ROMEO:") + 77
    assert "char/s" in result.stderr
    again = _cli(
        "--checkpoint", str(trained_run), "--seed", "ROMEO:", "--length", "77", "--random-seed", "1", "--no-stream"
    )
    assert again.stdout == result.stdout


def test_cli_json_and_seed_file(trained_run, tmp_path):
    seed_file = tmp_path / "seed.txt"
    seed_file.write_text("Citizen:\r\n")
    result = _cli(
        "--checkpoint",
        str(trained_run),
        "--seed-file",
        str(seed_file),
        "--length",
        "20",
        "--num-samples",
        "2",
        "--json",
    )
    samples = json.loads(result.stdout)
    assert len(samples) == 2 and all(s.startswith("Citizen:\n") and len(s) == 29 for s in samples)


def test_cli_unknown_characters(trained_run):
    result = _cli("--checkpoint", str(trained_run), "--seed", "ROMEO€é", "--length", "5")
    assert result.exit_code == 1
    assert "'€', 'é'" in result.output and "knows" in result.output and "--skip-unknown" in result.output
    assert "Traceback" not in result.output
    skipped = _cli(
        "--checkpoint", str(trained_run), "--seed", "ROMEO€", "--length", "5", "--skip-unknown", "--random-seed", "2"
    )
    assert skipped.exit_code == 0 and skipped.stdout.startswith("ROMEO") and "dropped" in skipped.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--length", "0"], 2, "positive"),
        (["--length", "-5"], 2, "positive"),
        (["--temperature", "-1"], 2, "temperature"),
        (["--top-k", "0"], 2, "top-k"),
        (["--top-k", "1000"], 2, "top-k"),
        (["--top-p", "0"], 2, "top-p"),
        (["--top-p", "1.5"], 2, "top-p"),
    ],
)
def test_cli_bad_options(trained_run, args, code, message):
    result = _cli("--checkpoint", str(trained_run), "--seed", "A", *args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


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
