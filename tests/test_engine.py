"""The NumPy inference engine against TensorFlow's model, the float64 reference and the definitions."""

import subprocess
import sys

import numpy as np
import pytest

from shakegen.config import CELLS, TrainConfig
from shakegen.data.vocab import Vocabulary
from shakegen.errors import CheckpointError, SamplingError
from shakegen.runs import checkpoint, folder, pretrained
from shakegen.use import blas_threads, engine
from tests import reference
from tests.runs import train_tiny_run
from tests.test_noise import reference_uniform

tf = pytest.importorskip("tensorflow")

TEXT_LENGTH = 160


def write_random_run(run_dir, text, cell="gru", num_layers=1, seed=0, **overrides):
    """A run folder (config.json, best.npz, last.npz) written by the project's own writers, holding a
    model of ``cell`` with random weights large enough that every gate and layer matters."""
    from shakegen.model.network import build_model

    vocab = Vocabulary.from_characters(text)
    config = TrainConfig(cell=cell, num_layers=num_layers, embedding_dim=6, rnn_units=12, **overrides)
    model = build_model(len(vocab), config)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.5, tuple(variable.shape)).astype(np.float32))
    data = {"source": "test", "sha256": "", "characters": len(text), "options": {}}
    folder.start_run(run_dir, config, vocab, data, model.count_params())
    for which in checkpoint.WHICH:
        checkpoint.save(checkpoint.checkpoint_path(run_dir, which), model, {"epoch": 1})
    return run_dir


def tensorflow_log_probs(run_dir, ids):
    """Per-character log-probabilities (n - 1,) from the project's own float32 TensorFlow model."""
    model, _, _ = checkpoint.load_model(run_dir, "best", precision="float32")
    logits, _ = model(tf.constant(np.asarray(ids, np.int32)[None, :]), training=False)
    log_probs = tf.nn.log_softmax(logits[0]).numpy()
    return log_probs[np.arange(len(ids) - 1), ids[1:]], model


def reference_log_probs(weights, ids):
    logits, _ = reference.model_logits(weights, np.asarray(ids)[None, :])
    return reference.log_softmax(logits[0])[np.arange(len(ids) - 1), ids[1:]]


def assert_scores_match(run_dir, text, tf_tolerance=1e-5, reference_tolerance=1e-4):
    loaded, info, _ = engine.load(run_dir)
    ids = info.vocab.encode(text)
    scores = loaded.score(ids)
    from_tf, model = tensorflow_log_probs(run_dir, ids)
    from_reference = reference_log_probs(reference.model_weights(model), ids)
    assert scores.log_probs.shape == (len(ids) - 1,)
    np.testing.assert_allclose(scores.log_probs, from_tf, rtol=0, atol=tf_tolerance)
    np.testing.assert_allclose(scores.log_probs, from_reference, rtol=0, atol=reference_tolerance)
    assert np.ptp(from_reference) > 1  # the model is far from uniform: a wrong gate would show


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_log_probs_equal_tensorflow_and_the_float64_reference(tmp_path, small_text, cell, num_layers):
    run_dir = write_random_run(tmp_path / "run", small_text, cell, num_layers, seed=num_layers)
    assert_scores_match(run_dir, small_text[:TEXT_LENGTH])


def test_a_mixed_bfloat16_run_scores_as_its_float32_weights(tmp_path, small_text):
    # test_export's mixed_bfloat16 run (two layers of the classic cell): tests/runs.py trains it once for both.
    run_dir = train_tiny_run(tmp_path, small_text, precision="mixed_bfloat16", cell="classic", num_layers=2)
    assert checkpoint.read_run(run_dir).config.precision == "mixed_bfloat16"
    assert_scores_match(run_dir, small_text[1000 : 1000 + TEXT_LENGTH])


def test_the_float16_pretrained_bundle_scores_as_tensorflow_does():
    assert checkpoint.read_weights(pretrained.BUNDLE_DIR / "best.npz")["rnn_0/kernel"].dtype == np.float16
    assert_scores_match(pretrained.BUNDLE_DIR, "ROMEO:\nBut soft, what light through yonder window breaks?\n")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, small_text):
    """A two-layer random gru run: (engine, reference weights, vocabulary)."""
    run_dir = write_random_run(tmp_path_factory.mktemp("tiny") / "run", small_text, "gru", 2, seed=5)
    loaded, info, _ = engine.load(run_dir)
    model, _, _ = checkpoint.load_model(run_dir, precision="float32")
    return loaded, reference.model_weights(model), info.vocab


def sampled(loaded, seed_ids, length, **options):
    return np.concatenate(list(loaded.sample(seed_ids, length, **options)), axis=1)


def reference_noise(key, vocab_size):
    return lambda t: np.array([reference_uniform(key, t, character) for character in range(vocab_size)])


@pytest.mark.parametrize("cell", ["gru", "classic", "gru3"])
def test_greedy_is_the_argmax_chain_of_the_reference(tmp_path, small_text, cell):
    run_dir = write_random_run(tmp_path / "run", small_text, cell, 2, seed=3)
    loaded, info, _ = engine.load(run_dir)
    model, _, _ = checkpoint.load_model(run_dir, precision="float32")
    seed_ids = info.vocab.encode("First Citizen:")
    expected = reference.sample_ids(reference.model_weights(model), seed_ids, 60, temperature=0)
    for temperature in (0, 1e-39):  # below float32's smallest normal: greedy too
        assert sampled(loaded, seed_ids, 60, temperature=temperature)[0].tolist() == expected


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(0.8, None, None), (1.4, None, None), (0.6, 5, None), (1.0, None, 0.9), (0.7, 10, 0.8)],
)
def test_samples_follow_the_reference_probabilities_and_the_same_noise(tiny, temperature, top_k, top_p):
    """Each character, across a block boundary, is the float64 definition's choice (softmax of
    logits / T, top-k, nucleus, Gumbel-max) fed the uniforms of an independent MurmurHash3."""
    loaded, weights, vocab = tiny
    seed_ids = vocab.encode("ROMEO:")
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    texts = sampled(loaded, seed_ids, 80, num_samples=2, random_seed=3, block=32, **options)
    for index in range(2):
        noise = reference_noise(3 + index, len(vocab))
        assert texts[index].tolist() == reference.sample_ids(weights, seed_ids, 80, noise=noise, **options)


def _forced_logits(weights, seed_ids, chosen):
    """Float64 logits before each sampled character, the model fed the seed and the sample."""
    logits, _ = reference.model_logits(weights, np.concatenate([seed_ids, chosen])[None, :])
    return logits[0, len(seed_ids) - 1 : -1]  # (len(chosen), V)


def test_top_k_and_top_p_restrict_the_choice_as_defined(tiny):
    """At a high temperature, top-k 3 picks only among the three likeliest characters and top-p
    0.5 only inside the nucleus, while unrestricted sampling leaves both sets often."""
    loaded, weights, vocab = tiny
    seed_ids = vocab.encode("First")

    def ranks_and_mass(chosen):
        logits = _forced_logits(weights, seed_ids, chosen) / 2.0
        probabilities = reference.softmax(logits)
        picked = probabilities[np.arange(len(chosen)), chosen]
        rank = (probabilities > picked[:, None]).sum(axis=1)
        mass_before = np.where(probabilities > picked[:, None], probabilities, 0).sum(axis=1)
        return rank, mass_before

    rank, _ = ranks_and_mass(sampled(loaded, seed_ids, 300, temperature=2.0, top_k=3, random_seed=1)[0])
    assert rank.max() <= 2
    _, mass = ranks_and_mass(sampled(loaded, seed_ids, 300, temperature=2.0, top_p=0.5, random_seed=1)[0])
    assert np.all(mass < 0.5 + 1e-6)  # the smallest set reaching 0.5: everything likelier weighs less
    rank, mass = ranks_and_mass(sampled(loaded, seed_ids, 300, temperature=2.0, random_seed=1)[0])
    assert (rank > 2).mean() > 0.2 and (mass >= 0.5).mean() > 0.2


def test_sample_i_of_a_batch_is_the_single_sample_with_seed_plus_i(tiny):
    loaded, _, vocab = tiny
    seed_ids = vocab.encode("ROMEO:")
    start = 2**32 - 2  # the keys wrap: 2**32 - 2, 2**32 - 1, 0, 1
    batch = sampled(loaded, seed_ids, 100, num_samples=4, random_seed=start, temperature=0.9, top_p=0.95)
    for index in range(4):
        single = sampled(loaded, seed_ids, 100, random_seed=(start + index) % 2**32, temperature=0.9, top_p=0.95)
        assert batch[index].tolist() == single[0].tolist()
    assert len({tuple(row) for row in batch.tolist()}) == 4


def test_streamed_text_equals_unstreamed_whatever_the_block(tiny):
    loaded, _, vocab = tiny
    seed_ids = vocab.encode("MENENIUS:")
    whole = sampled(loaded, seed_ids, 150, num_samples=2, random_seed=9, block=150)
    for block in (1, 7, 64):
        blocks = list(loaded.sample(seed_ids, 150, num_samples=2, random_seed=9, block=block))
        assert all(piece.shape == (2, min(block, 150 - block * i)) for i, piece in enumerate(blocks))
        assert np.array_equal(np.concatenate(blocks, axis=1), whole)


def test_long_seeds_and_texts_carry_the_state_across_windows(tiny, small_text):
    """Priming and scoring more than two windows give the float64 one-pass logits, states and
    hidden states; scoring in two parts, the second from the first's context, gives the whole."""
    loaded, weights, vocab = tiny
    ids = vocab.encode((small_text * 2)[: 2 * engine.WINDOW + 150])
    logits, finals = reference.model_logits(weights, ids[None, :])
    context = loaded.prime(ids)
    np.testing.assert_allclose(context.logits[0], logits[0, -1], atol=1e-4)
    for state, final in zip(context.states, finals, strict=True):
        np.testing.assert_allclose(state, final, atol=1e-4)
    scores = loaded.score(ids, hidden=True)
    expected = reference.log_softmax(logits[0])[np.arange(len(ids) - 1), ids[1:]]
    np.testing.assert_allclose(scores.log_probs, expected, atol=1e-4)
    x = np.asarray(weights[0], np.float64)[ids][None]
    for hidden, (variant, kernel, recurrent, bias) in zip(scores.hidden, weights[1], strict=True):
        x, _ = reference.gru_sequence(variant, x, kernel, recurrent, bias)
        assert hidden.shape == (len(ids), x.shape[-1])
        np.testing.assert_allclose(hidden, x[0], atol=1e-4)
    first = loaded.score(ids[:1000])
    rest = loaded.score(ids[1000:], context=first.context)
    np.testing.assert_allclose(np.concatenate([first.log_probs, rest.log_probs]), scores.log_probs, atol=1e-6)
    np.testing.assert_allclose(rest.context.logits, context.logits, atol=1e-6)


def test_bad_requests_are_refused_with_a_reason(tiny):
    loaded, _, vocab = tiny
    seed_ids = vocab.encode("A")
    for options, message in [
        (dict(temperature=-1), "temperature must be"),
        (dict(top_k=0), "top-k must be between 1"),
        (dict(top_p=1.5), "top-p must be a number"),
        (dict(random_seed=2**32), "random seed must be an integer from 0"),
        (dict(num_samples=0), "num_samples must be a positive integer"),
    ]:
        with pytest.raises(SamplingError, match=message):
            loaded.sample(seed_ids, 10, **options)
    with pytest.raises(SamplingError, match="at least 1 character"):
        loaded.sample([], 10)
    with pytest.raises(SamplingError, match="Character ids must be in 0"):
        loaded.score([0, len(vocab)])


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, small_text):
    run_dir = write_random_run(tmp_path / "run", small_text, "classic", 1)
    raw = checkpoint.fileio.read_json(run_dir / "config.json")
    raw["config"]["cell"] = "gru"  # a gru's bias is (2, 3u); the checkpoint's is (3u,)
    checkpoint.fileio.write_json(run_dir / "config.json", raw)
    with pytest.raises(CheckpointError, match="does not fit its config.json"):
        engine.load(run_dir)


def test_the_engine_never_imports_tensorflow_or_keras():
    code = (
        "import sys; from shakegen.use import engine; e, info, _ = engine.load(sys.argv[1]); "
        "ids = info.vocab.encode('ROMEO:'); next(e.sample(ids, 10, temperature=0.8, top_k=5)); e.score(ids); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(pretrained.BUNDLE_DIR)], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_loops_run_on_one_blas_thread_and_restore_the_count():
    found = blas_threads._openblas()
    if found is None:
        pytest.skip("NumPy's BLAS here is not OpenBLAS")
    session = found[0]()  # conftest keeps the tests themselves on one thread
    found[1](2)
    if found[0]() < 2:
        found[1](session)
        pytest.skip("OpenBLAS runs one thread here")
    try:
        with blas_threads.limited(1):
            assert found[0]() == 1
        assert found[0]() == 2
    finally:
        found[1](session)
