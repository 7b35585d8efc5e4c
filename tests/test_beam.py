"""Beam search against greedy decoding and an exhaustive enumeration with the float64 reference forward."""

import itertools

import numpy as np
import pytest

from shakegen.errors import SamplingError
from shakegen.runs import checkpoint
from shakegen.use import engine
from shakegen.use.beam import beam_search
from shakegen.use.stopping import LENGTH, STOP, StopRule
from tests import reference
from tests.test_engine import write_random_run


def load(run_dir, cell="gru"):
    loaded, info, _ = engine.load(run_dir)
    return loaded, reference.run_weights(checkpoint.checkpoint_path(run_dir, "best"), cell), info.vocab


def reference_totals(weights, seed_ids, continuations):
    """Total float64 log-probability of each continuation (n, L) after the seed, by the reference forward."""
    continuations = np.asarray(continuations)
    inputs = np.concatenate([np.tile(seed_ids, (len(continuations), 1)), continuations], axis=1)
    logits, _ = reference.model_logits(weights, inputs)
    log_probs = reference.log_softmax(logits[:, len(seed_ids) - 1 : -1])  # (n, L, V)
    picked = np.take_along_axis(log_probs, continuations[:, :, None], axis=2)[:, :, 0]
    return picked.sum(axis=1)


@pytest.fixture(scope="module")
def shakespeare_like(tmp_path_factory, small_text):
    return load(write_random_run(tmp_path_factory.mktemp("beam") / "run", small_text, "gru", 2, seed=7))


def test_one_beam_is_greedy(shakespeare_like):
    loaded, weights, vocab = shakespeare_like
    seed_ids = vocab.encode("MENENIUS:")
    (best,) = beam_search(loaded, seed_ids, 60, beams=1)
    greedy = reference.sample_ids(weights, seed_ids, 60, temperature=0)
    assert list(best.ids) == greedy
    assert best.log_prob == pytest.approx(reference_totals(weights, seed_ids, [greedy])[0], abs=1e-4)
    assert best.length == 60 and best.ended.reason == LENGTH


@pytest.mark.parametrize("cell", ["gru", "classic"])
def test_k_equal_to_every_continuation_finds_the_exhaustive_optimum(tmp_path, cell):
    """Vocabulary 5, length 4: beam 625 keeps every continuation, so its beams are all 625 in the order of
    their reference totals, the best the exhaustive optimum; beam 5 returns beams whose totals are the
    reference's for those texts, best first."""
    loaded, weights, vocab = load(write_random_run(tmp_path / "run", "ab c\nca b", cell, 1, seed=3), cell)
    assert len(vocab) == 5
    seed_ids = vocab.encode("ab")
    everything = np.array(list(itertools.product(range(len(vocab)), repeat=4)))
    totals = reference_totals(weights, seed_ids, everything)
    found = beam_search(loaded, seed_ids, 4, beams=len(everything))
    assert len(found) == len(everything)
    assert list(found[0].ids) == everything[np.argmax(totals)].tolist()
    np.testing.assert_allclose([beam.log_prob for beam in found], np.sort(totals)[::-1], atol=1e-5)
    by_text = dict(zip(map(tuple, everything.tolist()), totals, strict=True))
    np.testing.assert_allclose([beam.log_prob for beam in found], [by_text[beam.ids] for beam in found], atol=1e-5)
    five = beam_search(loaded, seed_ids, 4, beams=5)
    assert [beam.log_prob for beam in five] == sorted((beam.log_prob for beam in five), reverse=True)
    np.testing.assert_allclose([beam.log_prob for beam in five], [by_text[beam.ids] for beam in five], atol=1e-5)


def test_stops_end_beams_ranked_per_character_and_it_is_deterministic(shakespeare_like):
    """A stop text taken from the best beam's own text ends beams there: each beam's text holds neither the
    stop nor a banned character, its log-probability is the reference's for what it generated (the stop
    included), and the beams come ranked by log-probability per character, the same on a second run."""
    loaded, weights, vocab = shakespeare_like
    seed_ids = vocab.encode("ROMEO:\n")
    ban = vocab.encode("Y")
    (best,) = beam_search(loaded, seed_ids, 30, beams=1, ban=ban)
    stop = vocab.decode(np.array(best.ids[3:5]))
    rule = StopRule((stop,), keep_stop=False)
    found = beam_search(loaded, seed_ids, 30, beams=6, rule=rule, decode=vocab.decode, ban=ban)
    assert found == beam_search(loaded, seed_ids, 30, beams=6, rule=rule, decode=vocab.decode, ban=ban)
    assert len(found) == 6
    per_character = [beam.per_character for beam in found]
    assert per_character == sorted(per_character, reverse=True)
    for beam in found:
        text = vocab.decode(np.array(beam.ids, np.int64))
        assert stop not in text and "Y" not in text
        generated = list(beam.ids) + (list(vocab.encode(stop)) if beam.ended.reason == STOP else [])
        assert beam.length == len(generated)
        assert beam.log_prob == pytest.approx(reference_totals(weights, seed_ids, [generated])[0], abs=1e-4)
    assert any(beam.ended.reason == STOP for beam in found)


def test_bad_requests_are_refused(shakespeare_like):
    loaded, _, vocab = shakespeare_like
    for kwargs, message in [
        (dict(beams=0), "beams must be a positive integer"),
        (dict(beams=10**6), "beams must be at most"),
        (dict(ban=list(range(len(vocab)))), "Every one of the model's"),
        (dict(rule=StopRule(("x",))), "need the vocabulary's decode"),
    ]:
        with pytest.raises(SamplingError, match=message):
            beam_search(loaded, vocab.encode("A"), 5, **kwargs)


def test_the_api_and_cli_beam_search(tmp_path, small_text):
    import json

    from click.testing import CliRunner

    import shakegen
    from shakegen.cli import main

    run_dir = write_random_run(tmp_path / "run", small_text, "gru", 1, seed=2)
    model = shakegen.load(run_dir)
    (one,) = model.beam_search("ROMEO:", length=40, beams=1)
    assert one["text"] == model.generate("ROMEO:", length=40, temperature=0)
    found = model.beam_search("ROMEO:", length=40, beams=3)
    assert [beam["log_prob"] for beam in found] == sorted((beam["log_prob"] for beam in found), reverse=True)
    result = CliRunner().invoke(
        main, ["generate", "--checkpoint", str(run_dir), "--seed", "ROMEO:", "--length", "40", "--beam", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["beams"] == found and report["texts"] == [beam["text"] for beam in found]
    plain = CliRunner().invoke(
        main, ["generate", "--checkpoint", str(run_dir), "--seed", "ROMEO:", "--length", "40", "--beam", "3"]
    )
    assert plain.exit_code == 0
    assert all(beam["text"] in plain.stdout for beam in found)
    assert "log-probability" in plain.stderr
    refused = CliRunner().invoke(main, ["generate", "--checkpoint", str(run_dir), "--beam", "3", "--num-samples", "2"])
    assert refused.exit_code == 2 and "--beam" in refused.output
