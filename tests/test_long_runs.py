"""Long runs: validation and checkpoints inside an epoch, preemption (SIGKILL, SIGTERM), and
faults while saving. A killed or signalled run resumes onto the weights of an uninterrupted one."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from click.testing import CliRunner

from shakegen import fileio
from shakegen.cli import main
from shakegen.errors import CheckpointError, CheckpointWriteError, TrainingInterrupted
from shakegen.runs import checkpoint
from shakegen.training.events import Started, Stepped
from shakegen.training.trainer import train

# Trains in a child process, slowed by a sleep per step of its second epoch (the first runs at full
# speed) so the parent can kill it mid-epoch 2.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from shakegen.config import TrainConfig
    from shakegen.training.events import Stepped
    from shakegen.training.trainer import train

    config = TrainConfig(**json.loads(sys.argv[1]))
    slow = lambda event: time.sleep(0.05) if isinstance(event, Stepped) and event.epoch >= 2 else None
    train(config, sys.argv[2], sys.argv[3], progress=slow)
    """
)


def _weights(run_dir):
    with np.load(run_dir / "last.npz") as archive:
        return {key: archive[key] for key in archive.files if key.startswith("weights/")}


def _assert_same_weights(a, b):
    first, second = _weights(a), _weights(b)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_allclose(second[key], first[key], rtol=1e-5, atol=1e-6, err_msg=key)


def _start_child(config, run_dir, data_dir):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(config.to_json()), str(run_dir), str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_step(run_dir, step, process, timeout=180):
    """Wait until last.npz holds at least ``step``; return its state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = checkpoint.read_state(run_dir / "last.npz")
        if state.get("global_step", 0) >= step:
            return state
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint at step {step} within {timeout} s")


LONG = dict(dropout=0.2)  # two epochs of about 42 steps on the small corpus; dropout so the masks must replay too


@pytest.fixture
def long_config(small_config):
    return small_config.replace(**LONG)


@pytest.fixture
def straight(tmp_path, small_text):
    """An uninterrupted run of ``long_config`` in tmp_path/straight (tests/runs.py trains it once
    per session), its prepared corpus in tmp_path/data; returns (run folder, its history, its state)."""
    from tests.runs import train_tiny_run

    run_dir = train_tiny_run(tmp_path, small_text, **LONG).rename(tmp_path / "straight")
    return run_dir, checkpoint.read_history(run_dir), checkpoint.read_state(run_dir / "last.npz")


def test_sigkill_mid_epoch_resumes_from_a_timed_checkpoint(tmp_path, straight, long_config):
    small_data = tmp_path / "data"
    _, history, final = straight
    per_epoch = int(history[0]["step"])
    config = long_config.replace(checkpoint_minutes=0.001)  # every 0.06 s: every other slowed step
    child = _start_child(config, tmp_path / "killed", small_data)
    state = _wait_for_step(tmp_path / "killed", per_epoch + 5, child)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert 0 < state["global_step"] - state["epoch_start_step"] < per_epoch  # saved inside epoch 2
    resumed = train(None, tmp_path / "killed", small_data, resume=True, changes={"checkpoint_minutes": 0})
    assert resumed.state.global_step == final["global_step"]
    _assert_same_weights(tmp_path / "straight", tmp_path / "killed")
    assert [int(row["step"]) for row in resumed.history] == [int(row["step"]) for row in history]


def test_sigterm_saves_and_exits_non_zero_then_resumes(tmp_path, straight, long_config):
    small_data = tmp_path / "data"
    per_epoch = int(straight[1][0]["step"])
    child = _start_child(long_config, tmp_path / "run", small_data)  # timed checkpoints off by default (10 min)
    _wait_for_step(tmp_path / "run", per_epoch, child)  # epoch 1 validated and saved
    time.sleep(0.3)  # some (slowed) steps into epoch 2
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=60)
    assert child.returncode != 0
    assert "TrainingInterrupted" in output and "SIGTERM" in output
    state = checkpoint.read_state(tmp_path / "run" / "last.npz")
    assert state["global_step"] > per_epoch  # the running epoch's steps were saved
    train(None, tmp_path / "run", small_data, resume=True)
    _assert_same_weights(tmp_path / "straight", tmp_path / "run")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_cli_signal_prints_the_resume_command(tmp_path, small_data, stop):
    args = ["train", "--preset", "tiny", "--epochs", "400", "--max-steps", "100000", "--data-dir", str(small_data)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "shakegen", *args, "--run-dir", str(tmp_path / "run")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for_step(tmp_path / "run", 1, process)
    process.send_signal(stop)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert f"interrupted ({stop.name})" in output and f"shakegen train --resume --run-dir {tmp_path / 'run'}" in output
    assert checkpoint.read_state(tmp_path / "run" / "last.npz")["global_step"] >= 1
    assert "Traceback" not in output


def test_eval_every_writes_rows_inside_an_epoch(tmp_path, small_data, small_config):
    seen = []
    config = small_config.replace(eval_every=10, val_characters=300)
    train(config, tmp_path / "run", small_data, progress=seen.append)
    rows = checkpoint.read_history(tmp_path / "run")
    epoch_ends = [int(row["step"]) for row in rows if float(row["epoch"]).is_integer()]
    assert len(epoch_ends) == 2
    expected, last = [], 0  # every 10 steps since the last validation, and at each epoch's end
    for step in range(1, epoch_ends[-1] + 1):
        if step - last >= 10 or step in epoch_ends:
            expected.append(step)
            last = step
    assert [int(row["step"]) for row in rows] == expected
    assert len(rows) > 4 and sum(not float(row["epoch"]).is_integer() for row in rows) >= 4
    started = next(event for event in seen if isinstance(event, Started))
    assert started.val_characters == 300 and started.val_split_characters > 300
    best = checkpoint.read_state(tmp_path / "run" / "best.npz")
    assert best["val_loss"] == pytest.approx(min(row["val_loss"] for row in rows), rel=1e-5)


def test_patience_counts_validations(tmp_path, small_data, small_config):
    config = small_config.replace(
        eval_every=1, patience=2, learning_rate=0.05, final_learning_rate=0.05, val_characters=300
    )
    result = train(config, tmp_path / "run", small_data)
    losses = [row["val_loss"] for row in checkpoint.read_history(tmp_path / "run")]
    # Independent rule: stop at the first validation that is the 2nd in a row without a new best.
    best, since, stop_at = float("inf"), 0, None
    for index, loss in enumerate(losses):
        best, since = (loss, 0) if loss < best else (best, since + 1)
        if since >= 2:
            stop_at = index
            break
    assert result.state.stop_reason == "patience" and stop_at == len(losses) - 1


def test_disk_full_while_saving_keeps_the_previous_checkpoint(monkeypatch, trained_run, small_data):
    before = (trained_run / "last.npz").read_bytes()
    one_more = {"epochs": 3, "max_steps": checkpoint.read_state(trained_run / "last.npz")["global_step"] + 1}
    real_replace = os.replace

    def full_disk(source, target, *args, **kwargs):
        if str(target).endswith("last.npz"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(fileio.os, "replace", full_disk)
    with pytest.raises(CheckpointWriteError, match="No space left on device.*previous checkpoint there is intact"):
        train(None, trained_run, small_data, resume=True, changes=one_more)  # one step, then its save fails
    assert (trained_run / "last.npz").read_bytes() == before
    assert not [path for path in trained_run.iterdir() if path.name.endswith(".tmp")]
    checkpoint.load_model(trained_run, "last")  # still loadable
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    args = ["--run-dir", str(trained_run), "--data-dir", str(small_data), "--epochs", "3"]
    result = CliRunner().invoke(main, ["train", "--resume", *args, "--max-steps", str(one_more["max_steps"])])
    assert result.exit_code == 0, result.output


def test_history_rows_past_the_checkpoint_are_dropped_on_resume(trained_run, small_data):
    rows = checkpoint.read_history(trained_run)
    # As if killed after history.csv was written but before last.npz: one row too many.
    checkpoint.write_history(trained_run, [*rows, {**rows[-1], "step": rows[-1]["step"] + 7, "epoch": 2.2}])
    result = train(None, trained_run, small_data, resume=True, changes={"epochs": 3})
    assert [row["epoch"] for row in result.history] == [1.0, 2.0, 3.0]


def test_damaged_config_gives_one_line_and_overwrite_replaces_it(trained_run, small_data):
    (trained_run / "config.json").write_text("[1, 2, 3]\n")
    with pytest.raises(CheckpointError, match="JSON list, expected an object"):
        checkpoint.read_run(trained_run)
    args = ["--run-dir", str(trained_run), "--data-dir", str(small_data)]
    resumed = CliRunner().invoke(main, ["train", "--preset", "tiny", "--resume", *args])
    assert resumed.exit_code == 1 and "damaged" in resumed.output and "Traceback" not in resumed.output
    overwritten = CliRunner().invoke(main, ["train", "--preset", "tiny", "--overwrite", "--max-steps", "2", *args])
    assert overwritten.exit_code == 0, overwritten.output
    assert checkpoint.read_run(trained_run).config.rnn_units == 16


def test_out_of_range_config_values_are_refused_on_load(trained_run):
    raw = json.loads((trained_run / "config.json").read_text())
    raw["config"]["dropout"] = 7
    (trained_run / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"dropout must be in \[0, 1\)"):
        checkpoint.read_run(trained_run)


def test_checkpoint_without_state_is_a_one_line_error(trained_run):
    with np.load(trained_run / "best.npz") as archive:
        arrays = {key: archive[key] for key in archive.files if key != "state"}
    np.savez(trained_run / "best.npz", **arrays)
    with pytest.raises(CheckpointError, match="training state is missing"):
        checkpoint.load_model(trained_run, "best")


def _event_scalars(log_dir):
    """{tag: {step: value}} from every TensorBoard event file, read with TensorFlow alone."""
    import tensorflow as tf

    scalars = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return scalars


def test_tensorboard_logs_hold_the_history_across_a_resume(tmp_path, small_data, small_config):
    with pytest.raises(TrainingInterrupted):
        train(
            small_config.replace(eval_every=15),
            tmp_path / "run",
            small_data,
            progress=lambda event: _stop_at(event, 50),
        )
    train(None, tmp_path / "run", small_data, resume=True)
    history = checkpoint.read_history(tmp_path / "run")
    scalars = _event_scalars(tmp_path / "run" / "logs")
    validation = scalars["validation/loss"]
    assert sorted(validation) == [int(row["step"]) for row in history]  # one step axis, continued
    for row in history:
        assert validation[int(row["step"])] == pytest.approx(row["val_loss"], rel=1e-5)
        assert scalars["validation/perplexity"][int(row["step"])] == pytest.approx(row["val_perplexity"], rel=1e-5)
    train_steps = sorted(scalars["train/loss"])
    assert train_steps[0] == 10 and train_steps[-1] > 50
    assert all(later - earlier == 10 for earlier, later in zip(train_steps, train_steps[1:], strict=False))
    assert all(0 < value < 5 for value in scalars["train/loss"].values())
    assert set(scalars) >= {"train/learning_rate", "train/characters_per_second", "validation/bits_per_character"}


def _stop_at(event, step):
    if isinstance(event, Stepped) and event.epoch == 2 and event.step >= step - event.steps:
        raise KeyboardInterrupt


def test_one_training_process_per_run_folder(trained_run, small_data):
    stale = trained_run / ".last.npz.abcd1234.tmp"  # what a process killed mid-write leaves
    stale.write_bytes(b"half a checkpoint")
    with fileio.folder_lock(trained_run):  # as if another process were training there
        with pytest.raises(CheckpointError, match="Another shakegen process is training"):
            train(None, trained_run, small_data, resume=True, changes={"epochs": 3})
    assert stale.exists()
    steps = checkpoint.read_state(trained_run / "last.npz")["global_step"]
    train(None, trained_run, small_data, resume=True, changes={"epochs": 3, "max_steps": steps + 1})  # one step
    assert not stale.exists()


def test_curves_are_redrawn_at_most_every_30_s_and_show_every_row_at_the_end(
    tmp_path, small_data, small_config, monkeypatch
):
    """Frequent validations do not each redraw curves.png: a validation 30 s after the last drawing
    (or the start) does, and the run's end draws every row."""
    from shakegen.runs import plots
    from shakegen.training import validation

    drawn, real_curves = [], plots.loss_curves_png
    monkeypatch.setattr(
        plots, "loss_curves_png", lambda history, title: drawn.append(len(history)) or real_curves(history, title)
    )
    train(small_config.replace(eval_every=5), tmp_path / "run", small_data)
    rows = checkpoint.read_history(tmp_path / "run")
    assert len(rows) > 10 and drawn == [len(rows)]  # a run of seconds: drawn once, when it ends
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn.clear()
    clock = iter(range(0, 10_000, 12))  # 12 s pass between two readings of the clock
    monkeypatch.setattr(validation, "_now", lambda: next(clock))
    train(small_config.replace(eval_every=5, max_steps=22), tmp_path / "timed", small_data)
    # Started at 0; validations read 12, 24, 36 (due: drawn, then 48), 60, 72; the end draws all five rows.
    assert drawn == [3, 5]
    drawn.clear()
    monkeypatch.setattr(validation, "CURVES_SECONDS", 0.0)  # due at every validation
    train(small_config.replace(eval_every=5, max_steps=12), tmp_path / "every", small_data)
    assert drawn == [1, 2, 3]  # steps 5, 10 and the stop at 12; the end has nothing new to draw


@pytest.mark.parametrize("how", ["KeyboardInterrupt", "SIGTERM"])
def test_an_interrupt_during_validation_keeps_best_and_last_in_step(
    tmp_path, small_data, small_text, small_config, how, monkeypatch
):
    """Stopped just after an improved validation's history row is written (curves.png may be redrawn
    there too), before best.npz and the state commit: last.npz must not record a best that best.npz
    does not hold, and the resumed run ends where an uninterrupted one does."""
    from tests.runs import train_tiny_run

    config = small_config.replace(eval_every=10)
    straight = train_tiny_run(tmp_path / "reference", small_text, eval_every=10)  # the same run, uninterrupted
    straight_history = checkpoint.read_history(straight)
    improved_at, best_so_far = [], float("inf")
    for row in straight_history:
        if row["val_loss"] < best_so_far:
            improved_at.append(int(row["step"]))
            best_so_far = row["val_loss"]
    target = improved_at[1]  # the second validation that set a best: best.npz exists before it
    real_history = checkpoint.write_history

    def interrupted_history(run_dir, history):
        real_history(run_dir, history)
        if int(history[-1]["step"]) == target:
            if how == "SIGTERM":
                signal.raise_signal(signal.SIGTERM)  # the handler runs, and raises KeyboardInterrupt, right here
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "write_history", interrupted_history)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "run", small_data)
    last = checkpoint.read_state(tmp_path / "run" / "last.npz")
    best = checkpoint.read_state(tmp_path / "run" / "best.npz")
    assert last["global_step"] == target
    assert last["best_val_loss"] == best["val_loss"] and best["step"] < target
    monkeypatch.setattr(checkpoint, "write_history", real_history)
    resumed = train(None, tmp_path / "run", small_data, resume=True)
    assert [row["step"] for row in resumed.history] == [row["step"] for row in straight_history]  # no row twice
    assert [row["val_loss"] for row in resumed.history] == pytest.approx(
        [row["val_loss"] for row in straight_history],
        rel=1e-5,  # history.csv keeps 6 significant digits
    )
    assert checkpoint.read_state(tmp_path / "run" / "best.npz") == checkpoint.read_state(straight / "best.npz")
    _assert_same_weights(straight, tmp_path / "run")


def _event_points(log_dir):
    """[(tag, step, value)] of every scalar in every event file, duplicates included."""
    import tensorflow as tf

    points = []
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                points.append((value.tag, event.step, float(tf.make_ndarray(value.tensor))))
    return points


def test_a_resume_trims_the_points_written_past_its_checkpoint(tmp_path, small_data, small_config):
    """A process that wrote TensorBoard points past its last checkpoint (killed after a timed
    checkpoint, say) leaves them behind; the resumed run must not log those steps twice."""
    config = small_config.replace(eval_every=10, lr_schedule="constant", max_steps=20)
    run_dir = tmp_path / "run"
    train(config, run_dir, small_data)
    at_20 = (run_dir / "last.npz").read_bytes()
    train(None, run_dir, small_data, resume=True, changes={"max_steps": 40})  # logs steps 21..40
    (run_dir / "last.npz").write_bytes(at_20)  # as if it had died with its last checkpoint at step 20
    result = train(None, run_dir, small_data, resume=True, changes={"max_steps": 40})
    points = _event_points(run_dir / "logs")
    counted = {}
    for tag, step, _ in points:
        counted[(tag, step)] = counted.get((tag, step), 0) + 1
    assert max(counted.values()) == 1, sorted(key for key, count in counted.items() if count > 1)
    validation = {step: value for tag, step, value in points if tag == "validation/loss"}
    assert validation == pytest.approx({int(row["step"]): row["val_loss"] for row in result.history}, rel=1e-5)
    assert sorted(step for tag, step, _ in points if tag == "train/loss") == [10, 20, 30, 40]
