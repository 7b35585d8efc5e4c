"""Stateful training (truncated backpropagation through time): contiguous streams per batch
row, the GRU state carried from one batch to the next, saved in last.npz for exact resume."""

import numpy as np
import pytest
import tensorflow as tf

from shakegen.config import ConfigError
from shakegen.data import prepare
from shakegen.errors import TrainingInterrupted
from shakegen.runs import checkpoint
from shakegen.training.dataset import epoch_window_starts, steps_per_epoch
from shakegen.training.events import Checkpointed, Stepped
from shakegen.training.trainer import train


def test_stream_layout():
    starts = epoch_window_starts(10_000, 16, 8, random_seed=3, epoch=0, stateful=True)
    steps = starts.shape[0]
    assert starts.shape == (steps, 8) and steps == steps_per_epoch(10_000, 16, 8, stateful=True)
    np.testing.assert_array_equal(np.diff(starts, axis=0), 16)  # row b reads its stream in order
    stream = starts[0, 1] - starts[0, 0]
    np.testing.assert_array_equal(np.diff(starts[0]), stream)  # equal, disjoint streams
    assert starts[-1, -1] + 16 + 1 <= 10_000 and starts[-1, 0] + 17 <= starts[0, 1]  # windows stay in their stream
    # A fresh offset each epoch: over 20 epochs the first window starts at more than one place, always
    # inside the first window's length, and every epoch keeps the layout above.
    epochs = [epoch_window_starts(10_000, 16, 8, random_seed=3, epoch=epoch, stateful=True) for epoch in range(20)]
    firsts = {int(layout[0, 0]) for layout in epochs}
    assert len(firsts) > 1 and all(0 <= first < 16 for first in firsts)
    for layout in epochs:
        np.testing.assert_array_equal(np.diff(layout, axis=0), 16)
        assert layout[-1, -1] + 17 <= 10_000


def _window(data_dir, config, step):
    data = prepare.load_prepared(data_dir)
    starts = epoch_window_starts(len(data.train), config.seq_length, config.batch_size, config.random_seed, 0, True)
    windows = np.stack([np.asarray(data.train[start : start + config.seq_length + 1]) for start in starts[step]])
    return windows[:, :-1].astype(np.int32), windows[:, 1:].astype(np.int32)


def _loss(model, inputs, targets, states):
    logits, final = model(tf.constant(inputs), states=states)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    return float(tf.reduce_mean(loss)), final


def test_the_second_batch_starts_from_the_first_batchs_state(tmp_path, small_data, small_config):
    import shutil

    config = small_config.replace(stateful=True)
    losses = []
    (tmp_path / "one").mkdir()

    def record(event):
        _record(event, losses)
        if isinstance(event, Checkpointed) and event.step == 1:  # last.npz holds step 1's weights and state
            for name in ("config.json", "last.npz"):
                shutil.copy2(tmp_path / "two" / name, tmp_path / "one" / name)

    # A timed checkpoint is due after every step: the one after step 1 is copied to one/ as a run stopped there.
    train(config.replace(max_steps=2, checkpoint_minutes=1e-9), tmp_path / "two", small_data, progress=record)
    assert checkpoint.read_state(tmp_path / "one" / "last.npz")["global_step"] == 1
    # Independently: the weights after one step, on window 2, from the state window 1 ended in.
    model, _, _ = checkpoint.load_model(tmp_path / "one", "last")
    carried = checkpoint.read_carried(tmp_path / "one" / "last.npz")
    assert len(carried) == 1 and carried[0].shape == (config.batch_size, config.rnn_units)
    inputs, targets = _window(small_data, config, 1)
    with_state, _ = _loss(model, inputs, targets, [tf.constant(state) for state in carried])
    from_zero, _ = _loss(model, inputs, targets, None)
    assert losses[1] == pytest.approx(with_state, rel=1e-5)
    assert abs(with_state - from_zero) > 1e-3  # the carried state matters, so the check can fail


def test_the_carried_state_is_the_end_of_the_window(tmp_path, small_data, small_config):
    import keras

    from shakegen.model.network import build_model

    config = small_config.replace(stateful=True, max_steps=1)
    train(config, tmp_path / "run", small_data)
    keras.utils.set_random_seed(config.random_seed)  # the run's initial weights, rebuilt
    vocab = checkpoint.read_run(tmp_path / "run").vocab
    initial = build_model(len(vocab), config)
    inputs, targets = _window(small_data, config, 0)
    _, final = _loss(initial, inputs, targets, None)
    carried = checkpoint.read_carried(tmp_path / "run" / "last.npz")
    np.testing.assert_allclose(carried[0], final[0].numpy(), rtol=1e-5, atol=1e-6)


def test_stateful_resume_mid_epoch_matches_uninterrupted(tmp_path, small_data, small_config):
    per_epoch = steps_per_epoch(
        len(prepare.load_prepared(small_data).train), small_config.seq_length, small_config.batch_size, stateful=True
    )
    # Both runs stop 8 steps into epoch 2: the resumed one takes 4 steps from the carried state it saved.
    config = small_config.replace(stateful=True, dropout=0.1, max_steps=per_epoch + 8)
    train(config, tmp_path / "straight", small_data)

    def interrupt(event):
        if isinstance(event, Stepped) and event.epoch == 2 and event.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "resumed", small_data, progress=interrupt)
    train(None, tmp_path / "resumed", small_data, resume=True)
    with np.load(tmp_path / "straight" / "last.npz") as a, np.load(tmp_path / "resumed" / "last.npz") as b:
        for key in a.files:
            if key.startswith(("weights/", "carried/")):
                np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_stateful_needs_a_stream_per_row(tmp_path, small_data, small_config):
    with pytest.raises(ConfigError, match="streams of at least"):
        train(small_config.replace(stateful=True, batch_size=512), tmp_path / "run", small_data)


def _record(event, losses):
    if isinstance(event, Stepped):
        losses.append(event.loss)
