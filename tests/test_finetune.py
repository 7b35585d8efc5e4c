"""Fine-tuning (--init-from): a new run from a base run's weights, its vocabulary extended.

The base is a tiny run on the start of Tiny Shakespeare; the new corpus is another stretch of
it with characters the base never saw (accented letters, digits, brackets) and without some
it knew. Checks are made against the base model itself and against independent computations
(a dict for the vocabulary, NumPy for the exported model's scores), never against the code's
own figures.
"""

import hashlib
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import shakegen
from shakegen.cli import main
from shakegen.config import PRESETS, TrainConfig
from shakegen.data import prepare
from shakegen.data.vocab import UnknownCharactersError, Vocabulary, VocabularyError, translate
from shakegen.errors import CheckpointError, ConfigError, PreparedDataError, ShakegenError, TrainingInterrupted
from shakegen.runs import checkpoint, pretrained
from shakegen.training import finetune
from shakegen.training import trainer as training
from shakegen.training.events import FineTuning, Stepped
from tests.conftest import SMALL_CONFIG
from tests.reference import log_softmax, model_logits, model_weights


def _new_text(small_text: str) -> str:
    """Text with characters the base lacks (one of them, 'é', frequent) and without 'q' and 'z'."""
    text = small_text[500:5500].replace("q", "k").replace("z", "s").replace("Z", "S")
    text = text.replace("e ", "é ").replace("ar", "är")
    verses = " ".join(f"({number}:{number * 7 % 100})" for number in range(1, 60))
    return text[:2500] + verses + text[2500:]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def base_run(folder, _trained_once):
    """conftest's tiny run on ``small_text`` (trained once per session), copied to base/ and its
    prepared corpus to base_data/."""
    shutil.copytree(_trained_once / "data", folder / "base_data")
    shutil.copytree(_trained_once / "run", folder / "base")
    return folder / "base"


@pytest.fixture(scope="module")
def new_data(folder, small_text):
    source = folder / "new.txt"
    source.write_text(_new_text(small_text), encoding="utf-8")
    prepare.prepare_corpus(source, folder / "new_data")
    return folder / "new_data"


@pytest.fixture(scope="module")
def fine_tuned(folder, base_run, new_data):
    """A fine-tuned run trained for two small epochs, through the Python API."""
    seen = []
    shakegen.train(
        "tiny",
        folder / "fine_tuned",
        new_data,
        init_from=base_run,
        progress=seen.append,
        max_steps=1000,  # the tiny preset's 20 would stop it early
        epochs=2,
        seq_length=16,
        batch_size=8,
        learning_rate=1e-2,
        dropout=0.1,
    )
    return folder / "fine_tuned", seen


def _files(path):
    """Every file under ``path`` with its bytes: to show that a refused command changed nothing."""
    return {item: item.read_bytes() for item in sorted(path.rglob("*")) if item.is_file()} if path.exists() else None


def _config(**changes):
    return TrainConfig(**SMALL_CONFIG).replace(**changes)


# -- the vocabulary ---------------------------------------------------------------------------


def test_extended_vocabulary_keeps_every_id_and_encodes_by_character():
    base = Vocabulary.from_characters("hello world")
    grown = base.extended("brave new wörld 42")
    assert grown.chars[: len(base)] == base.chars  # the base's ids, unchanged
    assert grown.chars[len(base) :] == ("2", "4", "a", "b", "n", "v", "ö")  # new ones appended, sorted
    assert grown.extended("") == grown and not grown.require_sorted
    # Encoding and decoding go by character, whatever the order (checked against a plain dict).
    text = "brave new wörld 42 hello"
    by_hand = {char: index for index, char in enumerate(grown.chars)}
    assert grown.encode(text).tolist() == [by_hand[char] for char in text]
    assert grown.decode(grown.encode(text)) == text
    with pytest.raises(UnknownCharactersError):
        grown.encode("hello?")
    # A run's vocabulary reads back in id order; a prepared one must still be sorted.
    assert Vocabulary.in_id_order(grown.to_json()) == grown
    with pytest.raises(VocabularyError):
        Vocabulary(grown.chars)
    with pytest.raises(VocabularyError):
        Vocabulary.in_id_order(("a", "b", "a"))


def test_translation_maps_prepared_ids_to_run_ids():
    prepared = Vocabulary.from_characters("abcxyz")
    assert prepared.translation_to(prepared) is None  # same ids: no lookup at all
    assert prepared.translation_to(Vocabulary.from_characters("abc").extended("xyz")) is None
    run = Vocabulary.in_id_order(("z", "a", "q", "b", "c", "x", "y"))
    table = prepared.translation_to(run)
    assert table.tolist() == [1, 3, 4, 5, 6, 0]
    assert run.covers(prepared) and not prepared.covers(run)
    ids = prepared.encode("cabbyzax")
    assert run.decode(translate(ids, table)) == "cabbyzax" and translate(ids, None) is ids
    with pytest.raises(UnknownCharactersError):
        run.translation_to(prepared)  # 'q' has no id there


# -- the zero-step model ------------------------------------------------------------------------


def test_before_any_step_the_base_characters_logits_are_the_base_models(folder, base_run, new_data, small_text):
    import contextlib

    base_model, base_info, _ = checkpoint.load_model(base_run, "best")
    data = prepare.load_prepared(new_data)
    events = []
    trainer = training._open_run(
        _config(learning_rate=1e-2), folder / "zero", new_data, False, {}, False, "one", events.append, base_run
    )
    with trainer.holding_run_folder(), contextlib.closing(trainer):
        trainer.begin()
    model, vocab = trainer.model, trainer.vocab
    base_size = len(base_info.vocab)

    # Ids of the characters the base knows are unchanged; the new ones come after them.
    assert vocab.chars[:base_size] == base_info.vocab.chars
    assert vocab.chars[base_size:] == tuple(sorted(set(_new_text(small_text)) - set(base_info.vocab.chars)))
    assert {"(", "7", "é", "ä"} <= set(vocab.chars[base_size:])
    assert {"q", "z"} <= set(vocab.chars[:base_size]) - set(data.vocab.chars)  # kept though unused
    [announced] = [event for event in events if isinstance(event, FineTuning)]
    assert announced.added == vocab.chars[base_size:] and announced.unused >= 3

    # Logits over the same input (text the base knows), before any step.
    text = "First Citizen:\nBefore we proceed any further, hear me speak."
    ids = base_info.vocab.encode(text)[None, :]
    assert vocab.encode(text).tolist() == ids[0].tolist()
    expected, _ = base_model(ids)
    logits, _ = model(ids)
    assert logits.shape[-1] == len(vocab) > base_size
    np.testing.assert_allclose(np.asarray(logits)[..., :base_size], np.asarray(expected), rtol=1e-6, atol=1e-6)

    # New characters: embedding rows at the base's mean, no say of the context yet, and on
    # average the probability their frequency in the new corpus gives them.
    base_embedding = base_model.embedding.embeddings.numpy()
    for row in model.embedding.embeddings.numpy()[base_size:]:
        np.testing.assert_allclose(row, base_embedding.mean(axis=0), rtol=1e-6)
    assert not model.dense.kernel.numpy()[:, base_size:].any()
    train_ids = translate(data.train, data.vocab.translation_to(vocab))
    sample = np.asarray(train_ids[:2048], np.int32).reshape(8, 256)
    probabilities = np.exp(log_softmax(np.asarray(model(sample)[0], np.float64))).reshape(-1, len(vocab))
    counts = np.bincount(train_ids, minlength=len(vocab))
    frequencies = (counts + 1) / (counts.sum() + len(vocab))
    for index in range(base_size, len(vocab)):
        assert probabilities[:, index].mean() == pytest.approx(frequencies[index], rel=0.25), vocab.chars[index]


def test_run_folder_records_its_parent(fine_tuned, base_run, new_data):
    run, _ = fine_tuned
    saved = json.loads((run / "config.json").read_text(encoding="utf-8"))
    parent = saved["parent"]
    best = base_run / "best.npz"
    assert parent["sha256"] == hashlib.sha256(best.read_bytes()).hexdigest()
    assert parent["val_loss"] == checkpoint.read_state(best)["val_loss"]
    assert parent["vocab_size"] == len(checkpoint.read_run(base_run).vocab)
    # Named relative to the run folder (both sit in one folder), never by this machine's absolute path.
    assert parent["run"] == parent["path"] == "../base" and (run / parent["run"]).resolve() == base_run.resolve()
    assert str(base_run.parent) not in (run / "config.json").read_text(encoding="utf-8")
    info = checkpoint.read_run(run)
    assert info.parent == parent
    # The base's architecture, the fine-tuning defaults the user did not override, the user's others.
    base_config = checkpoint.read_run(base_run).config
    assert info.config.architecture() == base_config.architecture()
    assert info.config.learning_rate == 1e-2 and info.config.final_learning_rate == pytest.approx(1e-3)
    assert info.config.patience == finetune.FINE_TUNING_DEFAULTS["patience"] and info.config.dropout == 0.1
    # train_counts are by the run's ids: each character's count in the new training split.
    data = prepare.load_prepared(new_data)
    text = data.vocab.decode(data.train)
    counts = saved["data"]["train_counts"]
    assert counts == [text.count(char) for char in info.vocab.chars]


def test_fine_tuning_drops_a_presets_weight_decay_unless_asked(base_run, tmp_path):
    """quick trains with AdamW 0.1; decay would pull the base's weights to zero, so a fine-tuned
    run has none unless the user gives --weight-decay (then theirs is kept)."""
    base = finetune.open_base(base_run, tmp_path / "run")
    assert PRESETS["quick"].weight_decay > 0
    assert finetune.fine_tuning_config(base, PRESETS["quick"], {}).weight_decay == 0.0
    asked = PRESETS["quick"].replace(weight_decay=0.05)  # the config carries the user's options
    assert finetune.fine_tuning_config(base, asked, {"weight_decay": 0.05}).weight_decay == 0.05


def test_fine_tuned_run_generates_new_characters_and_is_evaluated_like_any_run(fine_tuned, base_run, new_data):
    run, seen = fine_tuned
    history = checkpoint.read_history(run)
    model = shakegen.load(run)
    assert len(history) == 2 and min(row["val_loss"] for row in history) < np.log(len(model.vocabulary)) - 1
    text = model.generate("Before wé", length=400, temperature=1.0, random_seed=3)
    assert text.startswith("Before wé") and "é" in text[9:]  # a character the base never knew
    # The validation split scored by eval is the one training scored (ids looked up alike).
    state = checkpoint.read_state(run / "best.npz")
    assert model.evaluate(split="val", data_dir=new_data).loss == pytest.approx(state["val_loss"], rel=1e-5)
    # The base's own corpus is a subset of the run's characters: what it forgot, measurable.
    forgot = model.evaluate(split="val", data_dir=base_run.parent / "base_data")
    assert np.isfinite(forgot.loss) and forgot.characters > 100


def test_export_of_a_fine_tuned_run_scores_as_numpy_does(fine_tuned, folder):
    import tensorflow as tf

    from shakegen.exports import savedmodel as export

    run, _ = fine_tuned
    export.export_run(run, folder / "exported")
    loaded = tf.saved_model.load(str(folder / "exported"))
    text = "Thé citizéns (7:49) är hére."
    scores = loaded.signatures["log_prob"](text=tf.constant(text))
    model, info, _ = checkpoint.load_model(run, "best")
    by_hand = {char: index for index, char in enumerate(info.vocab.chars)}  # independent of Vocabulary
    ids = np.array([[by_hand[char] for char in text]])
    logits, _ = model_logits(model_weights(model), ids[:, :-1])
    expected = -np.take_along_axis(log_softmax(logits), ids[:, 1:, None], -1).sum()
    assert scores["cross_entropy"].numpy() == pytest.approx(expected, rel=1e-5)
    generated = loaded.signatures["generate"](
        seed=tf.constant("é"),
        length=tf.constant(200),
        temperature=tf.constant(1.0),
        top_k=tf.constant(0),
        top_p=tf.constant(1.0),
        random_seed=tf.constant(5, tf.int64),
    )["text"]
    expected_text = shakegen.load(run).generate("é", length=200, temperature=1.0, random_seed=5)
    assert "é" + generated.numpy().decode("utf-8") == expected_text


def test_resumed_fine_tuned_run_matches_an_uninterrupted_one(folder, base_run, new_data):
    config = _config(dropout=0.2, learning_rate=1e-2)
    training.train(config, folder / "straight", new_data, init_from=base_run)

    def interrupt(event):
        if isinstance(event, Stepped) and event.epoch == 2 and event.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        training.train(config, folder / "resumed", new_data, init_from=base_run, progress=interrupt)
    training.train(None, folder / "resumed", new_data, resume=True)
    for which in ("last", "best"):
        with (
            np.load(folder / "straight" / f"{which}.npz") as straight,
            np.load(folder / "resumed" / f"{which}.npz") as resumed,
        ):
            keys = [key for key in straight.files if key.startswith("weights/")]
            assert keys and keys == [key for key in resumed.files if key.startswith("weights/")]
            for key in keys:
                np.testing.assert_allclose(resumed[key], straight[key], rtol=1e-5, atol=1e-6, err_msg=key)


# -- bad input ------------------------------------------------------------------------------------


def _damaged_copies(folder, base_run):
    """Base runs damaged in each way a user may meet, built once per test from the good one."""
    cases = {}
    for name in ("garbled_best", "no_best", "bad_config", "misfit"):
        target = folder / "bad" / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(base_run, target)
        cases[name] = target
    (cases["garbled_best"] / "best.npz").write_bytes(b"not a zip file at all")
    (cases["no_best"] / "best.npz").unlink()
    (cases["bad_config"] / "config.json").write_text("{", encoding="utf-8")
    config = json.loads((cases["misfit"] / "config.json").read_text(encoding="utf-8"))
    config["config"]["rnn_units"] = 24  # best.npz holds 16 units
    (cases["misfit"] / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return cases


@pytest.mark.parametrize(
    "case, error, message",
    [
        ("missing", CheckpointError, "does not exist"),
        ("pretrained", CheckpointError, "No pretrained model ships"),
        ("garbled_best", CheckpointError, "damaged"),
        ("no_best", CheckpointError, "best.npz is missing"),
        ("bad_config", CheckpointError, "damaged"),
        ("misfit", CheckpointError, "does not fit"),
        ("resume", ConfigError, "--resume"),
        ("shape", ConfigError, "--rnn-units 32 would change the shape"),
        ("same_folder", ConfigError, "is the --run-dir itself"),
        ("short_corpus", ConfigError, "training split holds only"),
        ("unprepared", PreparedDataError, "Prepare your text first"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
    folder, base_run, new_data, case, error, message, monkeypatch
):
    monkeypatch.setattr(pretrained, "BUNDLE_DIR", folder / "no-bundle")  # as if none shipped
    damaged = _damaged_copies(folder, base_run) if case in ("garbled_best", "no_best", "bad_config", "misfit") else {}
    init_from = damaged.get(case, {"missing": folder / "nowhere", "pretrained": "pretrained"}.get(case, base_run))
    run_dir, data_dir, config, changes = folder / f"refused_{case}", new_data, _config(), {}
    if case == "shape":
        config, changes = config.replace(rnn_units=32), {"rnn_units": 32}
    if case == "same_folder":
        run_dir = base_run
    if case == "short_corpus":
        config, changes = config.replace(seq_length=20000), {"seq_length": 20000}
    if case == "unprepared":
        data_dir = folder / "nothing_prepared"
    before = {path: _files(path) for path in (folder / "base", new_data, folder / "bad", data_dir)}
    with pytest.raises(error, match=message) as raised:
        training.train(
            config, run_dir, data_dir, resume=case == "resume", changes=changes, overwrite=True, init_from=init_from
        )
    assert isinstance(raised.value, ShakegenError) and "\n" not in str(raised.value)
    assert case == "same_folder" or not run_dir.exists()
    assert {path: _files(path) for path in before} == before


def test_into_a_folder_holding_a_run_needs_overwrite(folder, base_run, new_data):
    run_dir = folder / "occupied"
    training.train(_config(max_steps=1), run_dir, new_data)
    before = _files(run_dir)
    with pytest.raises(ConfigError, match="already holds a run. Pass --overwrite"):
        training.train(_config(), run_dir, new_data, init_from=base_run)
    assert _files(run_dir) == before
    training.train(_config(max_steps=1), run_dir, new_data, init_from=base_run, overwrite=True)
    assert checkpoint.read_run(run_dir).parent["run"] == "../base"


def test_the_pretrained_parent_is_recorded_by_name(tmp_path):
    base = finetune.open_base("pretrained", tmp_path / "run")
    record = base.record(tmp_path / "run")
    assert record["run"] == "pretrained" and record["path"] is None
    assert not any(isinstance(value, str) and "/" in value for value in record.values())


def test_command_line(folder, base_run, new_data, monkeypatch):
    monkeypatch.setattr(pretrained, "BUNDLE_DIR", folder / "no-bundle")  # as if none shipped
    run_dir = folder / "cli_run"
    common = ["--data-dir", new_data, "--run-dir", run_dir, "--preset", "tiny", "--max-steps", "3"]
    result = CliRunner().invoke(main, ["train", "--init-from", base_run, *map(str, common)])
    assert result.exit_code == 0, result.output
    added = "".join(checkpoint.read_run(run_dir).vocab.chars[len(checkpoint.read_run(base_run).vocab) :])
    output = " ".join(result.output.split())  # rich wraps long lines at the console's width
    assert f"Fine-tuning from {base_run}" in output
    assert f"{len(added)} characters added" in output and " ".join(added) in output
    generated = CliRunner().invoke(main, ["generate", "--checkpoint", str(run_dir), "--seed", "é(", "--length", "20"])
    assert generated.exit_code == 0 and generated.stdout.startswith("é(")
    refusals = [
        ([base_run, "--resume"], "--resume"),
        ([base_run, "--rnn-units", "32"], "--rnn-units 32"),
        ([folder / "nowhere", "--overwrite"], "Cannot fine-tune from"),
        (["pretrained", "--overwrite"], "No pretrained model ships"),
    ]
    before = _files(run_dir)
    for (init_from, *extra), shown in refusals:
        refused = CliRunner().invoke(main, ["train", "--init-from", str(init_from), *map(str, common + extra)])
        assert refused.exit_code == 1 and "Traceback" not in refused.output
        assert len(refused.output.strip().splitlines()) == 1 and shown in refused.output
    assert _files(run_dir) == before
