"""The pretrained model that ships in the package: its figure, its size, the fallback to it, and
how a bundle is built from a run (float16 storage, the card's figures)."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import shakegen
from shakegen.cli import main
from shakegen.config import TrainConfig
from shakegen.data import corpus, prepare
from shakegen.errors import CheckpointError
from shakegen.exports.bundle import build as build_bundle
from shakegen.runs import checkpoint, pretrained
from shakegen.training import trainer as training
from tests.reference import log_softmax, model_logits, run_weights


def test_the_bundled_model_scores_the_figure_stored_with_it():
    """Evaluated from nothing prepared (the embedded corpus's split, in memory), as a user would."""
    assert pretrained.available(), "no pretrained model in shakegen/pretrained_model/"
    card = pretrained.card()
    size = sum(path.stat().st_size for path in pretrained.BUNDLE_DIR.iterdir())
    assert size <= pretrained.MAX_BYTES
    model = shakegen.load("pretrained")
    assert model.run_dir == pretrained.BUNDLE_DIR and model.info.parameters == card["parameters"]
    report = model.evaluate(split="val", data_dir=None)
    assert report.characters == model.info.data["val_characters"] - 1
    assert report.loss == pytest.approx(card["val_loss_streaming"], abs=1e-4)
    # No last.npz ships: how long it trained to its best weights comes from its history.
    history = checkpoint.read_history(pretrained.BUNDLE_DIR)
    at_best = next(row for row in history if row["step"] == report.step)
    assert report.training_minutes == pytest.approx(at_best["elapsed_seconds"] / 60)
    # The weights ship in float16; float32 copies of them are what runs.
    weights = checkpoint.read_weights(pretrained.BUNDLE_DIR / checkpoint.BEST_FILE)
    assert all(value.dtype == np.float16 for value in weights.values())
    assert abs(card["val_loss_streaming"] - card["val_loss_streaming_float32_weights"]) < pretrained.STORAGE_TOLERANCE


def test_the_bundled_model_scores_a_validation_slice_as_a_numpy_forward_pass():
    """Independent of the code that wrote the card: its float16 weights read from the file, a
    float64 forward pass written from the GRU equations, on the first 2,000 characters of the
    validation split (the cleaned corpus after its training characters), streaming from zeros."""
    info = checkpoint.read_run(pretrained.BUNDLE_DIR)
    text = info.clean(corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8"))
    assert len(text) == info.data["characters"]
    validation = text[info.data["train_characters"] :]
    assert len(validation) == info.data["val_characters"]
    piece = validation[:2000]
    ids = info.vocab.encode(piece)
    logits, _ = model_logits(
        run_weights(pretrained.BUNDLE_DIR / checkpoint.BEST_FILE, info.config.cell), ids[None, :-1]
    )
    expected = -log_softmax(logits[0])[np.arange(len(ids) - 1), ids[1:]].mean()
    report = shakegen.load("pretrained").evaluate(piece)
    assert report.characters == len(piece) - 1 and report.left_out_characters == 0
    assert report.loss == pytest.approx(expected, abs=1e-4)
    assert 1.0 < expected < 2.0  # a trained model's figure, not a degenerate one


def test_portable_run_config_names_no_path():
    raw = {
        "format": "shakegen-run/1",
        "data": {"source": "/home/someone/corpora/bible.txt", "sha256": "ab", "characters": 10},
        "parent": {"run": "/home/someone/runs/base/", "path": "/home/someone/runs/base", "sha256": "cd"},
        "config": {"cell": "gru"},
    }
    portable = pretrained.portable_run_config(raw)
    assert portable == {
        "format": "shakegen-run/1",
        "data": {"source": "bible.txt", "sha256": "ab", "characters": 10},
        "parent": {"run": "base", "sha256": "cd"},
        "config": {"cell": "gru"},
    }
    assert raw["data"]["source"] == "/home/someone/corpora/bible.txt"  # a copy: the run's own is untouched
    windows = {"data": {"source": "C:\\Users\\x\\input.txt"}, "parent": {"run": "pretrained"}}
    assert pretrained.portable_run_config(windows) == {"data": {"source": "input.txt"}, "parent": {"run": "pretrained"}}


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    """A small run trained on the embedded Tiny Shakespeare (what a bundle must come from)."""
    folder = tmp_path_factory.mktemp("embedded")
    prepare.prepare_corpus(corpus.EMBEDDED_CORPUS, folder / "data")
    config = TrainConfig(embedding_dim=8, rnn_units=16, seq_length=32, batch_size=16, epochs=1, max_steps=30)
    training.train(config, folder / "run", folder / "data")
    return folder / "run"


@pytest.fixture(scope="module")
def built(embedded_run, tmp_path_factory):
    """``embedded_run`` built into a bundle once (building scores the split four times): (its folder, the card
    ``build`` returned). Tests take a copy (``bundle_copy``)."""
    out = tmp_path_factory.mktemp("built") / "bundle"
    return out, build_bundle(embedded_run, out, command="shakegen train --preset tiny")


def bundle_copy(built, folder):
    """A copy of the built bundle in ``folder``/bundle, for a test to read or change as it likes."""
    shutil.copytree(built[0], folder / "bundle")
    return folder / "bundle"


def test_build_stores_float16_weights_and_their_measured_figures(embedded_run, built, tmp_path):
    built_in, card = built
    out = bundle_copy(built, tmp_path)
    assert pretrained.available(built_in) and pretrained.card(built_in) == card and pretrained.card(out) == card
    assert sorted(path.name for path in out.iterdir()) == ["best.npz", "config.json", "history.csv", "pretrained.json"]
    original = checkpoint.read_weights(embedded_run / "best.npz")
    stored = checkpoint.read_weights(out / "best.npz")
    for name, value in original.items():
        np.testing.assert_array_equal(stored[name], value.astype(np.float16))
    # Figures the card states are what evaluating the bundle gives (here: on the prepared split,
    # an independent path from the in-memory embedded split the card was measured on).
    data_dir = embedded_run.parent / "data"
    for protocol, key in (("streaming", "val_loss_streaming"), ("windows", "val_loss_windows_256")):
        report = shakegen.load(out).evaluate(split="val", data_dir=data_dir, protocol=protocol)
        assert report.loss == pytest.approx(card[key], abs=1e-6)
    float32 = shakegen.load(embedded_run).evaluate(split="val", data_dir=data_dir)
    assert float32.loss == pytest.approx(card["val_loss_streaming_float32_weights"], abs=1e-6)
    assert card["command"] == "shakegen train --preset tiny" and card["storage"] == "float16"
    # What ships names no path of the machine that built it: the corpus by its file name.
    assert checkpoint.read_run(out).data["source"] == corpus.EMBEDDED_CORPUS.name
    for path in built_in.iterdir():
        for where in (built_in.parent, embedded_run.parent, corpus.EMBEDDED_CORPUS.parent):
            assert str(where.resolve()).encode() not in path.read_bytes(), (path.name, where)


def test_build_refuses_a_run_trained_on_another_corpus(trained_run, tmp_path):
    with pytest.raises(CheckpointError, match="not trained on the embedded Tiny Shakespeare"):
        build_bundle(trained_run, tmp_path / "bundle", command="x")
    assert not (tmp_path / "bundle").exists()


def test_build_never_replaces_a_folder_that_is_not_a_bundle(embedded_run, tmp_path):
    before = sorted(path.name for path in embedded_run.iterdir())
    with pytest.raises(CheckpointError, match="is not a pretrained bundle"):
        build_bundle(embedded_run, embedded_run, command="x")
    assert sorted(path.name for path in embedded_run.iterdir()) == before
    assert not list(embedded_run.parent.glob("*.building"))


def test_the_bundle_is_scored_on_its_own_split_beside_other_prepared_data(embedded_run, built, trained_run, tmp_path):
    """A user's own prepared corpus in data/ does not silently replace the bundle's split; a
    bundle has only best weights, and asking for the last says so."""
    bundle, card = bundle_copy(built, tmp_path), built[1]
    others = trained_run.parent / "data"  # a prepared small corpus, all of whose characters it knows
    report = shakegen.load(bundle).evaluate(split="val", data_dir=others)
    assert report.loss == pytest.approx(card["val_loss_streaming"], abs=1e-6)
    with pytest.raises(CheckpointError, match="holds only its best weights .no last.npz.; use --which best"):
        shakegen.load(bundle, "last")
    from shakegen.serve.card import model_card
    from shakegen.serve.limits import Limits

    served = model_card(shakegen.load(bundle), Limits())
    history = checkpoint.read_history(embedded_run)
    assert served["training_minutes"] == pytest.approx(history[-1]["elapsed_seconds"] / 60)
    assert served["best_validation_loss"] == pytest.approx(min(row["val_loss"] for row in history))


def test_generate_and_eval_fall_back_to_the_pretrained_model_and_say_so(embedded_run, built, tmp_path, monkeypatch):
    bundle = bundle_copy(built, tmp_path)
    monkeypatch.setattr(pretrained, "BUNDLE_DIR", bundle)
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here, nothing prepared
    runner = CliRunner()
    generated = runner.invoke(main, ["generate", "--seed", "ROMEO:", "--length", "40", "--random-seed", "3"])
    assert generated.exit_code == 0, generated.output
    assert generated.stdout.startswith("ROMEO:") and len(generated.stdout.rstrip("\n")) == len("ROMEO:") + 40
    said = [line for line in generated.stderr.splitlines() if "pretrained model" in line]
    assert said == ["No run under checkpoints/: using the pretrained model (--checkpoint pretrained)."]
    named = runner.invoke(
        main, ["generate", "--checkpoint", "pretrained", "--seed", "ROMEO:", "--length", "40", "--random-seed", "3"]
    )
    assert named.exit_code == 0 and named.stdout == generated.stdout and "pretrained model" not in named.stderr
    evaluated = runner.invoke(main, ["eval", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    row = json.loads(evaluated.stdout)  # one run: one object
    assert row["loss"] == pytest.approx(pretrained.card(bundle)["val_loss_streaming"], abs=1e-6)
    # A run of one's own under checkpoints/ wins over the bundle, silently.
    shutil.copytree(embedded_run, tmp_path / "checkpoints" / "mine")
    own = runner.invoke(main, ["generate", "--seed", "ROMEO:", "--length", "10"])
    assert own.exit_code == 0 and "pretrained model" not in own.stderr


def test_without_a_bundle_the_error_says_how_to_train_one(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "BUNDLE_DIR", tmp_path / "none")
    monkeypatch.chdir(tmp_path)
    for args in (["generate", "--checkpoint", "pretrained"], ["eval", "--checkpoint", "pretrained"], ["generate"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
        assert "shakegen train" in result.output
