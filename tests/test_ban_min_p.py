"""Banned characters and min-p in the engine's sampler, against the float64 reference's softmax."""

import numpy as np
import pytest

from shakegen.errors import SamplingError
from shakegen.runs import checkpoint
from shakegen.use import engine
from shakegen.use.logits import ban_mask, filter_logits
from tests import reference
from tests.test_engine import reference_noise, sampled, write_random_run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, small_text):
    """A two-layer random gru run: (engine, float64 reference weights read from its file, vocabulary)."""
    run_dir = write_random_run(tmp_path_factory.mktemp("ban") / "run", small_text, "gru", 2, seed=11)
    loaded, info, _ = engine.load(run_dir)
    return loaded, reference.run_weights(checkpoint.checkpoint_path(run_dir, "best"), "gru"), info.vocab


def reference_next_logits(weights, ids):
    logits, _ = reference.model_logits(weights, np.asarray(ids)[None, :])
    return logits[0, -1]


def test_banned_characters_never_appear_in_100_samples(tiny):
    loaded, weights, vocab = tiny
    seed_ids = vocab.encode("First Citizen:")
    free = sampled(loaded, seed_ids, 120, num_samples=100, random_seed=4, temperature=1.0)
    counts = np.bincount(free.reshape(-1), minlength=len(vocab))
    banned = np.argsort(-counts)[:4]  # the four characters the model emits most
    assert counts[banned].min() > 100
    texts = sampled(loaded, seed_ids, 120, num_samples=100, random_seed=4, temperature=1.0, ban=banned)
    assert not np.isin(texts, banned).any()
    greedy = sampled(loaded, seed_ids, 120, temperature=0, ban=banned)
    assert not np.isin(greedy, banned).any()


def test_banning_renormalises_the_others_as_the_softmax_says(tiny):
    """The engine's filtered logits give the reference softmax restricted to the allowed characters and
    divided by their total; each sampled character is the definition's Gumbel-max choice over them, and
    2,000 first characters fall in proportion to the renormalised probabilities."""
    loaded, weights, vocab = tiny
    seed_ids = vocab.encode("ROMEO:")
    logits = reference_next_logits(weights, seed_ids)
    probabilities = reference.softmax(logits)
    banned = np.argsort(-probabilities)[:2]  # the two likeliest: what is left must be renormalised
    mask = ban_mask(banned, len(vocab))
    expected = np.where(mask, 0.0, probabilities) / probabilities[~mask].sum()

    context = loaded.prime(seed_ids)
    filtered = filter_logits(context.logits, ban=mask)
    np.testing.assert_allclose(reference.softmax(np.asarray(filtered, np.float64))[0], expected, atol=1e-5)

    first = sampled(loaded, seed_ids, 1, num_samples=2000, random_seed=1, temperature=1.0, ban=banned)[:, 0]
    frequencies = np.bincount(first, minlength=len(vocab)) / len(first)
    assert frequencies[banned].sum() == 0
    sigma = np.sqrt(expected * (1 - expected) / len(first))
    assert np.all(np.abs(frequencies - expected) <= 4.5 * sigma + 1e-3)

    banned_logits = lambda row: np.where(mask, -np.inf, row)  # noqa: E731
    texts = sampled(loaded, seed_ids, 70, num_samples=2, random_seed=8, temperature=0.9, top_k=6, block=32, ban=banned)
    for index in range(2):
        noise = reference_noise(8 + index, len(vocab))
        inputs = np.concatenate([seed_ids, texts[index][:-1]])[None, :]
        forced = reference.model_logits(weights, inputs)[0][0, len(seed_ids) - 1 :]
        for t, chosen in enumerate(texts[index]):
            scores = reference.scores(banned_logits(forced[t]), 0.9, 6, None, noise(t))
            assert scores.max() - scores[chosen] < 1e-4  # the definition's choice (a rounding at a near-tie)


def test_min_p_keeps_what_is_at_least_p_times_the_top_probability(tiny):
    loaded, weights, vocab = tiny
    seed_ids = vocab.encode("MENENIUS:")
    temperature, min_p = 2.0, 0.3
    context = loaded.prime(seed_ids)
    scaled = (context.logits - context.logits.max()) / np.float32(temperature)
    kept = np.isfinite(filter_logits(scaled, min_p=min_p))[0]
    probabilities = reference.softmax(reference_next_logits(weights, seed_ids) / temperature)
    ratio = probabilities / probabilities.max()
    assert np.array_equal(kept[np.abs(ratio - min_p) > 1e-5], (ratio >= min_p)[np.abs(ratio - min_p) > 1e-5])
    assert 1 < kept.sum() < len(vocab)

    texts = sampled(loaded, seed_ids, 200, random_seed=2, temperature=temperature, min_p=min_p)[0]
    inputs = np.concatenate([seed_ids, texts[:-1]])[None, :]
    forced = reference.model_logits(weights, inputs)[0][0, len(seed_ids) - 1 :]
    step_probabilities = reference.softmax(forced / temperature)
    picked = step_probabilities[np.arange(len(texts)), texts] / step_probabilities.max(axis=1)
    assert picked.min() >= min_p - 1e-5
    unrestricted = sampled(loaded, seed_ids, 200, random_seed=2, temperature=temperature)[0]
    inputs = np.concatenate([seed_ids, unrestricted[:-1]])[None, :]
    forced = reference.model_logits(weights, inputs)[0][0, len(seed_ids) - 1 :]
    step_probabilities = reference.softmax(forced / temperature)
    ratio = step_probabilities[np.arange(200), unrestricted] / step_probabilities.max(axis=1)
    assert (ratio < min_p).mean() > 0.1  # without min-p the unlikely characters are drawn often
    assert (
        sampled(loaded, seed_ids, 50, random_seed=2, temperature=0.8, min_p=0).tolist()
        == sampled(loaded, seed_ids, 50, random_seed=2, temperature=0.8).tolist()
    )


def test_bad_bans_and_min_p_are_refused_in_one_line(tiny):
    loaded, _, vocab = tiny
    seed_ids = vocab.encode("A")
    for options, message in [
        (dict(ban=list(range(len(vocab)))), "Every one of the model's"),
        (dict(ban=[len(vocab)]), "Banned character ids must be in 0"),
        (dict(min_p=1.5), "min-p must be a number in"),
        (dict(min_p=float("nan")), "min-p must be a number in"),
    ]:
        with pytest.raises(SamplingError, match=message) as raised:
            loaded.sample(seed_ids, 10, **options)
        assert "\n" not in str(raised.value)


def test_the_api_bans_and_routes_ban_and_min_p_to_the_engine(tmp_path, small_text):
    import shakegen

    model = shakegen.load(write_random_run(tmp_path / "run", small_text, "gru", 1, seed=3))
    texts = model.generate("ROMEO:", length=200, num_samples=8, temperature=1.0, random_seed=1, ban="e t")
    assert model.last_engine == "numpy"  # auto would pick TensorFlow for 8 samples; ban is the engine's only
    assert not any(set("e t") & set(text[len("ROMEO:") :]) for text in texts)
    with pytest.raises(SamplingError, match="NumPy engine only"):
        model.generate("ROMEO:", length=10, min_p=0.1, engine="tensorflow")
    with pytest.raises(ValueError, match="Cannot ban characters the model does not know"):
        model.generate("ROMEO:", length=10, ban="\u00e9")
    with pytest.raises(ValueError, match="bans every one"):
        model.generate("ROMEO:", length=10, ban=model.vocabulary)
