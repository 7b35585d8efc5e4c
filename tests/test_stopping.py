"""Stop texts and line counts, against a brute-force definition: the shortest prefix that ends."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shakegen.use import engine, stopping
from shakegen.use.stopping import LENGTH, LINES, STOP, Stopping, StopRule
from tests.test_engine import sampled, write_random_run


def brute_force(text, stops, keep_stop, lines):
    """Grow the text one character at a time; the first prefix that ends a stop text (the longer at a
    tie) or holds ``lines`` newlines is where the sample ends."""
    for n in range(1, len(text) + 1):
        prefix = text[:n]
        ending = [stop for stop in sorted(stops, key=len, reverse=True) if prefix.endswith(stop)]
        if ending:
            return (prefix if keep_stop else prefix[: -len(ending[0])]), STOP, ending[0]
        if lines is not None and prefix.count("\n") == lines:
            return prefix, LINES, None
    return text, LENGTH, None


def in_pieces(stopper, text, cuts):
    """Feed ``text`` to a one-sample Stopping in pieces cut at ``cuts``; returns the handed-out text."""
    bounds = [0, *sorted(cuts), len(text)]
    pieces = [[text[a:b]] for a, b in zip(bounds, bounds[1:], strict=False)]
    return "".join(out[0] for out in stopper.run(pieces))


ALPHABET = "ab\n "


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(ALPHABET, max_size=40),
    stops=st.lists(st.text(ALPHABET, min_size=1, max_size=4), max_size=3),
    keep_stop=st.booleans(),
    lines=st.none() | st.integers(1, 4),
    cuts=st.lists(st.integers(0, 40), max_size=6),
)
def test_the_text_ends_exactly_where_the_brute_force_definition_says(text, stops, keep_stop, lines, cuts):
    rule = StopRule(tuple(stops), keep_stop, lines)
    expected, reason, stop = brute_force(text, stops, keep_stop, lines)
    stopper = Stopping(rule, 1)
    handed = in_pieces(stopper, text, [cut for cut in cuts if cut <= len(text)])
    assert handed == expected
    assert stopper.texts[0] == (expected if rule.active else "")  # kept only when something can end it
    assert (stopper.ended[0].reason, stopper.ended[0].stop) == (reason, stop)


def test_nothing_after_or_inside_a_dropped_stop_is_handed_out_before_it_is_known():
    """A stop straddling two pieces: its first half is held back, never handed out and taken back."""
    stopper = Stopping(StopRule(("\n\n",)), 1)
    assert stopper.feed(["To be\n"]) == ["To be"]  # the newline may begin the stop text
    assert stopper.feed(["\nor not"]) == [""]
    assert stopper.done and stopper.texts == ["To be"]
    kept = Stopping(StopRule(("\n\n",), keep_stop=True), 1)
    assert kept.feed(["To be\n"]) == ["To be\n"] and kept.feed(["\nor"]) == ["\n"]


def test_each_sample_of_a_batch_ends_on_its_own():
    stopper = Stopping(StopRule(("END",), lines=2), 3)
    pieces = [["abEN", "x\ny", "never"], ["D tail", "\nz", " stops"]]
    handed = ["".join(parts) for parts in zip(*stopper.run(pieces), strict=True)]
    assert handed == ["ab", "x\ny\n", "never stops"]
    assert [ended.reason for ended in stopper.ended] == [STOP, LINES, LENGTH]
    assert [ended.as_dict()["stop_text"] for ended in stopper.ended] == ["END", None, None]


def test_escapes_mean_newline_and_tab_as_real_ones_do():
    assert stopping.unescape(r"\n\n") == "\n\n"
    assert stopping.unescape("\\t|\t") == "\t|\t"
    assert stopping.unescape(r"a\\nb") == "a\\nb"  # an escaped backslash, then a plain n
    assert stopping.unescape(r"\q") == r"\q"


def test_bad_rules_are_refused_in_one_line():
    with pytest.raises(ValueError, match="at least one character"):
        StopRule(("",))
    for lines in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="lines must be a positive integer"):
            StopRule(lines=lines)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, small_text):
    run_dir = write_random_run(tmp_path_factory.mktemp("stop") / "run", small_text, "gru", 1, seed=2)
    loaded, info, _ = engine.load(run_dir)
    return loaded, info.vocab


def test_sampled_texts_are_cut_at_the_first_stop_and_stop_sampling(tiny):
    """A batch sampled in blocks of 8 through the rule equals each whole unstopped sample cut by the brute
    force; a stop text that never appears runs to the length; sampling stops once all samples ended."""
    loaded, vocab = tiny
    seed_ids = vocab.encode("ROMEO:")
    options = dict(num_samples=4, random_seed=6, temperature=1.0)
    whole = [vocab.decode(row) for row in sampled(loaded, seed_ids, 300, **options)]
    for stops, lines in [(("\n",), None), ((" th", "e "), None), ((), 2), (("\u00a7never",), None)]:
        rule = StopRule(stops, False, lines)
        blocks = loaded.sample(seed_ids, 300, block=8, **options)
        taken = []

        def pieces(blocks=blocks, taken=taken):
            for block in blocks:
                taken.append(block.shape[1])
                yield [vocab.decode(row) for row in block]

        stopper = Stopping(rule, 4)
        handed = ["".join(parts) for parts in zip(*stopper.run(pieces()), strict=True)]
        for index in range(4):
            expected, reason, _ = brute_force(whole[index], stops, False, lines)
            assert handed[index] == expected and stopper.ended[index].reason == reason
        if stops == ("\u00a7never",):
            assert handed == whole and {e.reason for e in stopper.ended} == {LENGTH}
        elif all(e.reason != LENGTH for e in stopper.ended):
            longest = max(len(text) + len(stops[0]) if stops else len(text) for text in handed)
            assert sum(taken) < 300 and sum(taken) - 8 < longest + 8
    assert np.all([len(text) == 300 for text in whole])


# -- the Python API and the command line: the same rule on the one sampling function --


@pytest.fixture(scope="module")
def api_model(tmp_path_factory, small_text):
    import shakegen

    run_dir = write_random_run(tmp_path_factory.mktemp("api_stop") / "run", small_text, "gru", 1, seed=9)
    return shakegen.load(run_dir), run_dir


def test_generate_and_stream_cut_at_the_first_stop_and_say_why(api_model):
    model, _ = api_model
    options = dict(length=300, temperature=1.0, random_seed=11)
    whole = model.generate("ROMEO:", num_samples=3, **options)
    cut = model.generate("ROMEO:", num_samples=3, stop=["\n", "th"], **options)
    reasons = model.last_stop_reasons
    for index in range(3):
        expected, reason, stop = brute_force(whole[index][len("ROMEO:") :], ("\n", "th"), False, None)
        assert cut[index] == "ROMEO:" + expected
        assert reasons[index] == {"stop_reason": reason, "stop_text": stop}
    streamed = "".join(model.stream("ROMEO:", stop=["\n", "th"], **options))
    assert streamed == cut[0] and model.last_stop_reasons == reasons[:1]
    lined = model.generate(None, lines=3, keep_stop=True, **options)
    assert lined == brute_force(model.generate(None, **options), (), True, 3)[0]
    assert model.generate("ROMEO:", stop="\u00a7", **options) == whole[0]
    assert model.last_stop_reasons == [{"stop_reason": "length", "stop_text": None}]


def test_the_cli_stops_at_an_escaped_stop_and_reports_it_in_json(api_model):
    import json

    from click.testing import CliRunner

    from shakegen.cli import main

    model, run_dir = api_model
    args = ["generate", "--checkpoint", str(run_dir), "--seed", "ROMEO:", "--length", "300", "--random-seed", "11"]
    args += ["--temperature", "1.0", "--num-samples", "2"]
    result = CliRunner().invoke(main, [*args, "--stop", r"\n", "--stop", "th", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = model.generate("ROMEO:", length=300, temperature=1.0, random_seed=11, num_samples=2, stop=["\n", "th"])
    assert report["texts"] == expected
    assert report["stopped"] == model.last_stop_reasons
    kept = CliRunner().invoke(main, [*args, "--lines", "2", "--keep-stop"])
    assert kept.exit_code == 0 and kept.stdout.count("\n") >= 4
