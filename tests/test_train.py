import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from shakegen.cli import main
from shakegen.config import PRESETS, ConfigError, TrainConfig
from shakegen.data import prepare
from shakegen.runs import checkpoint
from shakegen.training.events import Checkpointed, Stepped, Validated
from shakegen.training.trainer import TrainingInterrupted, train
from tests.reference import run_weights, windowed_nll


def _weights(run_dir, which="last"):
    with np.load(run_dir / f"{which}.npz") as archive:
        return {key: archive[key] for key in archive.files if not key == "state"}


def _interrupt_when(predicate):
    def progress(event):
        if predicate(event):
            raise KeyboardInterrupt

    return progress


def test_run_folder_is_self_contained(trained_run, small_config):
    names = {path.name for path in trained_run.iterdir()}
    assert {"config.json", "last.npz", "best.npz", "history.csv", "curves.png"} <= names
    saved = json.loads((trained_run / "config.json").read_text())
    assert saved["config"] == small_config.to_json()
    assert saved["vocab"] == sorted(set(saved["vocab"])) and len(saved["vocab"]) > 30
    assert saved["data"]["sha256"] and sum(saved["data"]["train_counts"]) == saved["data"]["train_characters"]
    with open(trained_run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["epoch"]) for row in rows] == [1.0, 2.0]
    # The val loss in the history is the streaming figure of the best weights.
    model, info, state = checkpoint.load_model(trained_run, "best")
    best = min(float(row["val_loss"]) for row in rows)
    assert state["val_loss"] == pytest.approx(best, rel=1e-5)
    assert (trained_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_gives_both_protocols(trained_run, small_data):
    state = checkpoint.read_state(trained_run / "last.npz")
    result = CliRunner().invoke(
        main,
        ["eval", "--checkpoint", str(trained_run), "--data-dir", str(small_data), "--protocol", "windows", "--json"],
    )
    windows = json.loads(result.stdout)
    assert windows["window"] == 256 and state["best_val_loss_windows"] == pytest.approx(windows["loss"], rel=1e-6)


def test_training_learns(trained_run):
    with open(trained_run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    vocab_size = len(json.loads((trained_run / "config.json").read_text())["vocab"])
    # From uniform (ln V) down to well below it in two small epochs.
    assert float(rows[-1]["val_loss"]) < np.log(vocab_size) - 0.5


def test_same_seed_same_losses(tmp_path, small_data, small_config):
    config = small_config.replace(max_steps=50)  # into epoch 2 (42 steps an epoch): its window order too
    first = train(config, tmp_path / "a", small_data).history
    second = train(config, tmp_path / "b", small_data).history
    assert len(first) == 2
    assert [row["train_loss"] for row in first] == [row["train_loss"] for row in second]
    assert [row["val_loss"] for row in first] == [row["val_loss"] for row in second]


@pytest.mark.parametrize(
    "where",
    [
        lambda event: isinstance(event, Validated) and event.row["epoch"] == 1,  # after epoch 1
        lambda event: isinstance(event, Stepped) and event.epoch == 2 and event.step == 5,  # mid-epoch
    ],
    ids=["after-epoch-1", "mid-epoch-2"],
)
def test_interrupt_and_resume_matches_uninterrupted_run(tmp_path, small_text, small_config, where):
    # Dropout and weight-drop masks must replay too, the weights' moving average continue, and
    # AdamW's decay (quick and large use it) follow the restored step and schedule.
    from tests.runs import train_tiny_run

    changes = dict(dropout=0.2, weight_drop=0.3, ema_decay=0.9, weight_decay=0.1, warmup_steps=3)
    config = small_config.replace(**changes)
    # The uninterrupted run: trained once per session by tests/runs.py (both cases only read it).
    train_tiny_run(tmp_path, small_text, **changes).rename(tmp_path / "straight")
    small_data = tmp_path / "data"
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "resumed", small_data, progress=_interrupt_when(where))
    interrupted_state = checkpoint.read_state(tmp_path / "resumed" / "last.npz")
    assert interrupted_state["global_step"] < checkpoint.read_state(tmp_path / "straight" / "last.npz")["global_step"]
    train(None, tmp_path / "resumed", small_data, resume=True)
    for which in ("last", "best"):
        straight, resumed = _weights(tmp_path / "straight", which), _weights(tmp_path / "resumed", which)
        assert straight.keys() == resumed.keys()
        for key in straight:
            np.testing.assert_allclose(resumed[key], straight[key], rtol=1e-5, atol=1e-6, err_msg=f"{which}: {key}")


def test_resume_can_extend_epochs(trained_run, small_data, small_config):
    result = train(None, trained_run, small_data, resume=True, changes={"epochs": 3})
    assert result.state.epoch == 3 and len(result.history) == 3


def test_resume_refuses_a_different_architecture(trained_run, small_data, small_config):
    with pytest.raises(ConfigError, match="rnn_units 16 .saved. vs 32"):
        train(None, trained_run, small_data, resume=True, changes={"rnn_units": 32})
    with pytest.raises(ConfigError, match="rnn_units 16 .saved. vs 32"):  # without --resume too
        train(small_config.replace(rnn_units=32), trained_run, small_data)
    # --resume keeps the saved architecture: requesting another is refused without --overwrite,
    # and a different vocabulary is refused even with --resume.
    other = trained_run.parent / "other.txt"
    other.write_text("completely different alphabet 0123456789 " * 50)
    from shakegen.data import prepare

    prepare.prepare_corpus(other, trained_run.parent / "otherdata")
    with pytest.raises(ConfigError, match="vocabulary"):
        train(None, trained_run, trained_run.parent / "otherdata", resume=True)


def test_existing_run_is_not_overwritten_silently(trained_run, small_data, small_config):
    before = (trained_run / "last.npz").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        train(small_config, trained_run, small_data)
    assert (trained_run / "last.npz").read_bytes() == before


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rnn_units": 0}, "rnn_units must be a positive integer"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"dropout": -0.1}, r"dropout must be in \[0, 1\)"),
        ({"weight_drop": 1.0}, r"weight_drop must be in \[0, 1\)"),
        ({"weight_drop": 0.2, "rnn_kernel": "keras"}, "weight_drop needs shakegen's fused loop"),
        ({"seq_length": 100000}, "training split holds only"),
        ({"learning_rate": 0}, "learning_rate must be a finite positive number"),
        ({"learning_rate": float("inf")}, "learning_rate must be a finite positive number"),
        ({"clip_norm": float("nan")}, "clip_norm must be a finite positive number"),
        ({"clip_norm": float("inf")}, "clip_norm must be a finite positive number"),
        ({"checkpoint_minutes": -1.0}, "checkpoint_minutes must be a finite number"),
        ({"eval_every": 0}, "eval_every must be a positive integer"),
    ],
)
def test_invalid_values_refused_before_any_work(tmp_path, small_data, small_config, change, message):
    with pytest.raises(ConfigError, match=message):
        train(small_config.replace(**change), tmp_path / "run", small_data)
    assert not (tmp_path / "run").exists()


def test_glorot_initialisation_is_explicit():
    from shakegen.model.network import build_model

    model = build_model(65, TrainConfig(embedding_dim=32, rnn_units=24))
    embedding = model.embedding.embeddings.numpy()
    limit = np.sqrt(6 / (65 + 32))  # Glorot uniform bound for a (65, 32) matrix
    assert np.abs(embedding).max() <= limit and np.abs(embedding).max() > 0.8 * limit
    kernel = model.rnn_layers[0].kernel.numpy()
    limit = np.sqrt(6 / (32 + 72))  # Glorot uniform bound for a (32, 3 × 24) matrix
    assert 0.8 * limit < np.abs(kernel).max() <= limit
    assert np.std(kernel) == pytest.approx(limit / np.sqrt(3), rel=0.15)  # uniform(-l, l) has std l / √3
    recurrent = model.rnn_layers[0].recurrent_kernel.numpy()  # Glorot by default (measured better)
    limit = np.sqrt(6 / (24 + 72))
    assert 0.8 * limit < np.abs(recurrent).max() <= limit
    assert np.std(recurrent) == pytest.approx(limit / np.sqrt(3), rel=0.15)
    orthogonal = build_model(65, TrainConfig(embedding_dim=32, rnn_units=24, recurrent_initializer="orthogonal"))
    recurrent = orthogonal.rnn_layers[0].recurrent_kernel.numpy()  # as Keras: rows orthonormal
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(24), atol=1e-4)


def test_cli_train_tiny_preset(tmp_path, monkeypatch, small_text):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--max-steps", "5"])
    assert result.exit_code == 0, result.output
    assert "preparing the Tiny Shakespeare copy embedded" in result.output
    assert "total" in result.output and "epoch" in result.output
    assert (tmp_path / "checkpoints" / "tiny" / "best.npz").is_file()
    again = CliRunner().invoke(main, ["train", "--preset", "tiny", "--max-steps", "5"])
    assert again.exit_code == 1 and "--resume" in again.output and "Traceback" not in again.output
    bad = CliRunner().invoke(main, ["train", "--preset", "tiny", "--dropout", "1.5", "--run-dir", "x"])
    assert bad.exit_code == 1 and "dropout must be in [0, 1)" in bad.output
    assert PRESETS["standard"].rnn_units == 1024 and PRESETS["standard"].embedding_dim == 256


def test_mixed_bfloat16_trains(tmp_path, small_data, small_config):
    # Ten steps learn enough (bfloat16 is emulated, and slow, on CPUs without it).
    config = small_config.replace(precision="mixed_bfloat16", epochs=1, max_steps=10)
    result = train(config, tmp_path / "bf16", small_data)
    vocab_size = len(checkpoint.read_run(tmp_path / "bf16").vocab)
    assert np.isfinite(result.state.best_val_loss) and result.state.best_val_loss < np.log(vocab_size)
    model, _, _ = checkpoint.load_model(tmp_path / "bf16", "best")
    assert model.rnn_layers[0].compute_dtype == "bfloat16" and model.rnn_layers[0].kernel.dtype == "float32"


@pytest.mark.parametrize(
    "native, gpu, expected", [(True, False, "mixed_bfloat16"), (False, False, "float32"), (True, True, "float32")]
)
def test_precision_auto_is_made_concrete_for_the_machine(native, gpu, expected, monkeypatch):
    from shakegen import machine
    from shakegen.config import TrainConfig

    monkeypatch.setattr(machine, "native_bfloat16", lambda: native)
    assert TrainConfig(precision="auto").resolved(gpu=gpu).precision == expected
    assert TrainConfig(precision="float32").resolved(gpu=gpu).precision == "float32"


def test_a_run_saves_the_precision_auto_chose(tmp_path, small_data, small_config, monkeypatch):
    from shakegen import machine
    from shakegen.model import cells

    monkeypatch.setattr(cells, "gpu_visible", lambda: False)
    monkeypatch.setattr(machine, "native_bfloat16", lambda: True)
    # One step each way, scored on few characters: bfloat16 is emulated (slow) on CPUs without it.
    train(small_config.replace(precision="auto", max_steps=1, val_characters=64), tmp_path / "run", small_data)
    assert checkpoint.read_run(tmp_path / "run").config.precision == "mixed_bfloat16"
    monkeypatch.setattr(machine, "native_bfloat16", lambda: False)  # resumed elsewhere: it keeps its own
    result = train(None, tmp_path / "run", small_data, resume=True, changes={"max_steps": 2})
    assert result.state.global_step == 2
    assert checkpoint.read_run(tmp_path / "run").config.precision == "mixed_bfloat16"


def test_ema_decay_validates_and_keeps_the_moving_average_of_the_weights(tmp_path, small_data, small_config):
    """best.npz after k steps is the exponential moving average of the raw weights after steps
    1..k (each read from the timed checkpoint written after that step, which holds the raw weights),
    computed here in NumPy; last.npz keeps the raw weights."""
    decay, steps = 0.6, 4
    config = small_config.replace(ema_decay=decay, eval_every=steps, lr_schedule="constant", max_steps=steps)
    raw = []

    def keep_raw(event):  # last.npz has just been written with the weights after step event.step
        if isinstance(event, Checkpointed):
            raw.append((event.step, _weights(tmp_path / "run")))

    # A timed checkpoint is due after every step; the last step's weights are in the final last.npz.
    train(config.replace(checkpoint_minutes=1e-9), tmp_path / "run", small_data, progress=keep_raw)
    assert [step for step, _ in raw] == list(range(1, steps))
    raw = [weights for _, weights in raw] + [_weights(tmp_path / "run")]
    names = [key for key in raw[0] if key.startswith("weights/")]
    average = {name: raw[0][name].astype(np.float64) for name in names}  # the first step takes the weights
    for weights in raw[1:]:
        average = {name: decay * average[name] + (1 - decay) * weights[name] for name in names}
    best = _weights(tmp_path / "run", "best")
    for name in names:
        np.testing.assert_allclose(best[name], average[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert not np.allclose(best[names[0]], raw[-1][names[0]])  # last.npz: the raw weights
    # The summary's figure scores the best (averaged) weights as nanoGPT does: windows of 256
    # from a zero state over the validation split, here in float64 NumPy.
    ids = np.asarray(prepare.load_prepared(small_data).val)
    weights = run_weights(tmp_path / "run" / "best.npz", config.cell)
    total, count = windowed_nll(weights, ids, range(0, len(ids) - 1, 256), 256)
    assert count == len(ids) - 1
    state = checkpoint.read_state(tmp_path / "run" / "last.npz")
    assert state["best_val_loss_windows"] == pytest.approx(total / count, rel=1e-5)
    history = checkpoint.read_history(tmp_path / "run")
    plain = train(config.replace(ema_decay=0.0), tmp_path / "plain", small_data)
    assert history[-1]["val_loss"] != plain.history[-1]["val_loss"]  # validated on the average
    assert history[-1]["train_loss"] == pytest.approx(plain.history[-1]["train_loss"], rel=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"weight_decay": -0.1}, "weight_decay must be a finite number"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number"),
        ({"warmup_steps": -1}, "warmup_steps must be 0 or a positive integer"),
        ({"lr_schedule": "linear"}, "Unknown lr_schedule 'linear'"),
    ],
)
def test_invalid_optimizer_settings_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig().replace(**change).validate()


def test_learning_rate_schedule_warms_up_then_decays_as_planned():
    """Known points of the schedule the optimizer reads: linear warm-up from 0 (Keras's), then cosine or constant."""
    from shakegen.training.schedule import learning_rate_schedule

    spe = 10  # 3 epochs: 30 planned steps, 10 of them warm-up, a cosine over the other 20
    config = TrainConfig(epochs=3, learning_rate=1e-2, final_learning_rate=1e-3, warmup_steps=10)
    rate = learning_rate_schedule(config, spe)
    expected = {0: 0.0, 4: 4e-3, 9: 9e-3, 10: 1e-2, 20: 5.5e-3, 30: 1e-3, 45: 1e-3}
    for step, value in expected.items():
        assert float(rate(step)) == pytest.approx(value, rel=1e-6), step
    constant = learning_rate_schedule(config.replace(lr_schedule="constant"), spe)
    assert [float(constant(step)) for step in (0, 9, 10, 30)] == pytest.approx([0.0, 9e-3, 1e-2, 1e-2])
    # Without warm-up it is Keras's own cosine decay, which runs used before warm-up existed.
    import keras

    plain = TrainConfig(epochs=3, learning_rate=1e-2, final_learning_rate=1e-3)
    reference = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=30, alpha=0.1)
    for step in (0, 7, 15, 29, 30, 40):
        assert float(learning_rate_schedule(plain, spe)(step)) == pytest.approx(float(reference(step)), rel=1e-6)


def test_learning_rate_column_follows_the_warm_up(tmp_path, small_data, small_config):
    config = small_config.replace(warmup_steps=4, eval_every=1, max_steps=3, lr_schedule="constant")
    result = train(config, tmp_path / "run", small_data)
    # The history records the rate of the step that follows each validation (step k: k / 4 of the peak).
    rates = [row["learning_rate"] for row in result.history]
    assert rates == pytest.approx([config.learning_rate * k / 4 for k in (1, 2, 3)], rel=1e-5)


def test_weight_decay_is_decoupled_and_spares_biases(tmp_path, small_data, small_config):
    """One step of AdamW differs from one of Adam by exactly lr · decay · w0 on every matrix
    (the decay does not pass through Adam's normalisation) and not at all on the biases."""
    import keras

    from shakegen.model.network import build_model

    decay = 0.5
    config = small_config.replace(max_steps=1, lr_schedule="constant")
    train(config, tmp_path / "adam", small_data)
    train(config.replace(weight_decay=decay), tmp_path / "adamw", small_data)
    adam, adamw = _weights(tmp_path / "adam"), _weights(tmp_path / "adamw")
    keras.utils.set_random_seed(config.random_seed)  # the initial weights, as the trainer draws them
    initial = build_model(len(checkpoint.read_run(tmp_path / "adam").vocab), config)
    names = [key for key in adam if key.startswith("weights/")]
    assert len(names) == len(initial.weights)
    decayed = 0
    for name, w0 in zip(names, initial.weights, strict=True):
        w0 = np.asarray(w0)
        assert w0.shape == adam[name].shape, name
        difference = adam[name] - adamw[name]
        if "bias" in name:
            np.testing.assert_array_equal(difference, 0, err_msg=name)
        else:
            np.testing.assert_allclose(difference, config.learning_rate * decay * w0, atol=2e-7, err_msg=name)
            decayed += 1
    assert decayed >= 3  # embedding, kernels, output


def _cosine(step, total, peak, final):
    """The cosine from ``peak`` to ``final`` over ``total`` steps, written out (not Keras's)."""
    import math

    progress = min(step, total) / total
    return final + (peak - final) * 0.5 * (1 + math.cos(math.pi * progress))


def test_tiny_anneals_to_the_final_rate_at_its_step_budget(tmp_path, small_data):
    """tiny stops at step 20: the schedule must end there, not after its planned epochs."""
    from shakegen.training.schedule import learning_rate_schedule

    tiny = PRESETS["tiny"]
    rate = learning_rate_schedule(tiny, steps_per_epoch=1960)  # the embedded corpus: 3,920 planned steps
    for step in (0, 5, 10, 15, 20, 25):
        assert float(rate(step)) == pytest.approx(_cosine(step, 20, tiny.learning_rate, tiny.final_learning_rate))
    assert float(rate(20)) == pytest.approx(tiny.final_learning_rate)
    # A run: ten epochs planned, the budget of 20 steps reached first; the history's rates follow it.
    config = tiny.replace(epochs=10, max_steps=20, eval_every=5)
    result = train(config, tmp_path / "run", small_data)
    assert [row["step"] for row in result.history] == [5, 10, 15, 20]
    expected = [_cosine(row["step"], 20, tiny.learning_rate, tiny.final_learning_rate) for row in result.history]
    assert [row["learning_rate"] for row in result.history] == pytest.approx(expected, rel=1e-5)
    assert result.history[-1]["learning_rate"] == pytest.approx(tiny.final_learning_rate, rel=1e-5)


def test_a_character_budget_sets_the_schedule_and_minutes_say_they_cannot():
    from shakegen.training.schedule import learning_rate_schedule, schedule_steps

    config = TrainConfig(batch_size=4, seq_length=8, epochs=50, learning_rate=1e-2, final_learning_rate=1e-3)
    characters = config.replace(max_characters=4 * 8 * 12 - 5)  # 12 steps reach it (the last one partly)
    assert schedule_steps(characters, steps_per_epoch=100) == (12, "max_characters")
    assert float(learning_rate_schedule(characters, 100)(12)) == pytest.approx(1e-3)
    assert float(learning_rate_schedule(characters, 100)(6)) == pytest.approx(_cosine(6, 12, 1e-2, 1e-3))
    assert schedule_steps(config.replace(max_minutes=3.0), steps_per_epoch=100) == (5000, "epochs")
    assert schedule_steps(config.replace(max_steps=30, max_characters=10**9), steps_per_epoch=100) == (30, "max_steps")


def test_a_minutes_budget_says_the_schedule_follows_the_epochs(tmp_path, small_data):
    args = ["train", "--preset", "tiny", "--epochs", "1", "--max-minutes", "5", "--data-dir", str(small_data)]
    result = CliRunner().invoke(main, [*args, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    steps = checkpoint.read_state(tmp_path / "run" / "last.npz")["global_step"]
    assert f"The learning-rate schedule follows the planned epochs ({steps} steps)" in result.output
    assert "--max-minutes" in result.output


@pytest.mark.parametrize(
    "given",
    [{"epochs": 3}, {"max_characters": 200_000}, {"max_minutes": 2.0}],
    ids=["epochs", "characters", "minutes"],
)
def test_a_budget_given_replaces_the_presets_step_cap(given):
    """tiny caps runs at 20 steps; a budget asked for must not be cut short by it (README's
    `compare --preset tiny --characters 200000` trained 10,240 characters)."""
    config = PRESETS["tiny"].replace(**given)
    assert config.max_steps is None
    assert {name: getattr(config, name) for name in given} == given
    assert PRESETS["tiny"].replace(dropout=0.1).max_steps == 20  # other options keep it
    both = PRESETS["tiny"].replace(max_steps=5, max_characters=100)
    assert (both.max_steps, both.max_characters) == (5, 100)


def test_compare_base_budget_trains_the_characters_asked_for(tmp_path, small_data):
    """The base config `compare --preset tiny --characters N` builds trains N characters (more epochs
    than tiny's two: the small corpus holds 10 steps an epoch)."""
    base = PRESETS["tiny"].replace(max_minutes=None, max_characters=16 * 32 * 25, epochs=10, random_seed=1)
    result = train(base.replace(cell="gru"), tmp_path / "run", small_data)
    assert result.state.stop_reason == "max_characters" and result.state.characters_seen == 16 * 32 * 25


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_random_seed_out_of_range_is_one_line(tmp_path, small_data, seed):
    args = ["train", "--preset", "tiny", "--random-seed", seed, "--data-dir", str(small_data)]
    result = CliRunner().invoke(main, [*args, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "0<=x<=4294967295" in result.output.replace(" ", "")
    with pytest.raises(ConfigError, match=r"random_seed must be an integer from 0 to 4294967295"):
        train(PRESETS["tiny"].replace(random_seed=int(seed)), tmp_path / "run", small_data)
    assert not (tmp_path / "run").exists()


def test_the_largest_random_seed_trains(tmp_path, small_data, small_config):
    config = small_config.replace(max_steps=2, dropout=0.3, weight_drop=0.2, random_seed=2**32 - 1)
    assert train(config, tmp_path / "top", small_data).state.global_step == 2
    assert all(np.isfinite(value).all() for value in _weights(tmp_path / "top").values() if value.dtype.kind == "f")


def test_val_characters_below_two_is_refused_before_training(tmp_path, small_data, small_config):
    args = ["train", "--preset", "tiny", "--val-characters", "1", "--data-dir", str(small_data)]
    result = CliRunner().invoke(main, [*args, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "val_characters must be at least 2" in result.output
    assert not (tmp_path / "run").exists()
    train(small_config.replace(val_characters=2, max_steps=2, eval_every=1), tmp_path / "two", small_data)


def test_a_history_missing_a_column_is_one_line_on_resume(trained_run, small_data):
    text = (trained_run / "history.csv").read_text().splitlines()
    header = text[0].split(",")
    column = header.index("step")
    lines = [",".join(value for index, value in enumerate(line.split(",")) if index != column) for line in text]
    (trained_run / "history.csv").write_text("\n".join(lines) + "\n")
    args = ["train", "--resume", "--epochs", "3", "--run-dir", str(trained_run), "--data-dir", str(small_data)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "history.csv is damaged" in result.output and "step" in result.output


def test_data_options_not_an_object_is_one_line(trained_run):
    raw = json.loads((trained_run / "config.json").read_text())
    raw["data"]["options"] = ["lowercase"]
    (trained_run / "config.json").write_text(json.dumps(raw))
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(trained_run), "--length", "5"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "'data.options' must be an object" in result.output
