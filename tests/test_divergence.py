"""The divergence guard: a non-finite or exploded loss stops training with nothing bad saved.

The bad loss is produced deterministically by poisoning a weight between two steps (a
seam around ``make_train_step``), never by float overflow, so each test behaves the same
on every processor and fails if its guard is removed.
"""

import math

import numpy as np
import pytest
from click.testing import CliRunner

from shakegen.cli import main
from shakegen.errors import TrainingDiverged
from shakegen.runs import checkpoint, folder
from shakegen.training import step as stepping
from shakegen.training import trainer as training
from shakegen.training.divergence import ExplosionGuard
from shakegen.training.events import Stepped
from shakegen.training.trainer import train

RUN_FILES = ("last.npz", "best.npz", "history.csv")


REAL_TRAIN_STEP = stepping.make_train_step


def _poison_at(monkeypatch, step: int, poison, after_step: bool = False):
    """Apply ``poison(model)`` just before (or just after) the given 1-based step of this process."""
    real = REAL_TRAIN_STEP

    def make(model, *args, **kwargs):
        step_function = real(model, *args, **kwargs)
        calls = 0

        def poisoned_step(batch):
            nonlocal calls
            calls += 1
            if calls == step and not after_step:
                poison(model)
            loss = step_function(batch)
            if calls == step and after_step:
                poison(model)
            return loss

        return poisoned_step

    monkeypatch.setattr(stepping, "make_train_step", make)


def _to_nan(model):
    kernel = model.dense.kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def _to_huge(model):
    # Finite but exploded: logits of size ~1e4 give a loss in the thousands, in float32 on any CPU.
    kernel = model.dense.kernel
    kernel.assign(kernel.numpy() * 1e4)


def _files(run_dir):
    return {name: (run_dir / name).read_bytes() for name in RUN_FILES if (run_dir / name).exists()}


@pytest.mark.parametrize("poison, message", [(_to_nan, "loss became nan"), (_to_huge, "loss exploded")])
def test_bad_loss_during_resume_stops_and_keeps_every_file(monkeypatch, trained_run, small_data, poison, message):
    before = _files(trained_run)
    _poison_at(monkeypatch, 4, poison)
    with pytest.raises(TrainingDiverged, match=message) as raised:
        train(None, trained_run, small_data, resume=True, changes={"epochs": 3})
    assert "--learning-rate" in str(raised.value) and "--clip-norm" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert _files(trained_run) == before  # neither last.npz, best.npz nor a history row
    state = checkpoint.read_state(trained_run / "last.npz")
    assert state["epoch"] == 2 and state["stop_reason"] == "epochs"


def test_timed_checkpoint_before_an_explosion_is_not_written(monkeypatch, tmp_path, small_data, small_config):
    # A checkpoint is due after every step; the weights poisoned after step 6 must never reach last.npz.
    _poison_at(monkeypatch, 6, _to_huge, after_step=True)
    saved = []
    with pytest.raises(TrainingDiverged, match="loss exploded"):
        train(
            small_config.replace(checkpoint_minutes=1e-9),
            tmp_path / "run",
            small_data,
            progress=lambda event: saved.append(event) if type(event).__name__ == "Checkpointed" else None,
        )
    assert [event.step for event in saved] == [1, 2, 3, 4, 5]  # step 6's weights were never vouched for
    state = checkpoint.read_state(tmp_path / "run" / "last.npz")
    assert state["global_step"] == 5
    model, _, _ = checkpoint.load_model(tmp_path / "run", "last")
    assert np.abs(model.dense.kernel.numpy()).max() < 10


def test_bad_validation_at_epoch_end_saves_nothing(monkeypatch, tmp_path, small_data, small_config):
    steps = []
    # Poison right after the last step of epoch 1, so only validation can see it.
    from shakegen.training.dataset import steps_per_epoch

    prepared = __import__("shakegen.data.prepare", fromlist=["x"]).load_prepared(small_data)
    last = steps_per_epoch(len(prepared.train), small_config.seq_length, small_config.batch_size)
    _poison_at(monkeypatch, last, _to_nan, after_step=True)
    with pytest.raises(TrainingDiverged, match="validation loss became nan"):
        train(small_config, tmp_path / "run", small_data, progress=lambda e: steps.append(e))
    assert sum(isinstance(event, Stepped) for event in steps) == last
    assert not (tmp_path / "run" / "best.npz").exists() and not (tmp_path / "run" / "history.csv").exists()
    # The failed start left no run behind: a plain rerun starts again, --resume has nothing to resume.
    assert not folder.is_run(tmp_path / "run")
    monkeypatch.setattr(stepping, "make_train_step", REAL_TRAIN_STEP)
    result = train(small_config.replace(max_steps=3), tmp_path / "run", small_data)
    assert result.state.global_step == 3


def test_cli_failed_start_is_not_a_stuck_folder(monkeypatch, tmp_path, small_data):
    _poison_at(monkeypatch, 1, _to_nan)
    args = ["train", "--preset", "tiny", "--data-dir", str(small_data), "--run-dir", str(tmp_path / "run")]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 1 and "loss became nan" in first.output and "Traceback" not in first.output
    resumed = CliRunner().invoke(main, [*args, "--resume"])
    assert resumed.exit_code == 1 and "Nothing to resume" in resumed.output
    monkeypatch.setattr(stepping, "make_train_step", REAL_TRAIN_STEP)
    again = CliRunner().invoke(main, [*args, "--max-steps", "2"])
    assert again.exit_code == 0, again.output
    bad = CliRunner().invoke(main, [*args, "--clip-norm", "nan", "--overwrite"])
    assert bad.exit_code == 1 and "clip_norm must be a finite positive number" in bad.output


def test_guard_rule():
    guard = ExplosionGuard(vocab_size=65, run_dir="run", config=training.TrainConfig())
    guard.check_step(1.5, 1)  # a resume at loss 1.5: the limit is max(3 × 1.5, ln 65) = 4.5
    assert guard.threshold == pytest.approx(4.5)
    for step in range(2, 10):
        guard.check_step(4.4, step)  # high, but under the limit
    with pytest.raises(TrainingDiverged, match="exploded"):
        for step in range(10, 20):
            guard.check_step(4.7, step)
    fresh = ExplosionGuard(vocab_size=65, run_dir="run", config=training.TrainConfig())
    fresh.check_step(0.5, 1)  # a first loss below ln V/3: the uniform-guess loss is the floor
    assert fresh.threshold == pytest.approx(math.log(65))
    with pytest.raises(TrainingDiverged, match="became inf"):
        fresh.check_step(math.inf, 2)


def test_huge_finite_best_loss_renders(capsys):
    from shakegen.cli import train_display
    from shakegen.training.events import Finished
    from shakegen.training.trainer import TrainState

    train_display.TrainDisplay()(Finished("epochs", TrainState(best_val_loss=1e6, best_epoch=1.0)))
    assert "perplexity inf" in capsys.readouterr().err
