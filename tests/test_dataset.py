"""The epoch layout: counting an epoch's batches without drawing its windows, and the windows themselves."""

import numpy as np
import pytest

from shakegen.training.dataset import epoch_batches, epoch_window_starts, epoch_windows, steps_per_epoch


@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("num_characters", [40, 300, 1_000, 10_007, 123_457])
def test_batch_count_equals_the_windows_drawn(num_characters, stateful):
    for seed in (0, 3, 42):
        for epoch in range(4):
            drawn = epoch_window_starts(num_characters, 16, 8, seed, epoch, stateful)
            assert epoch_batches(num_characters, 16, 8, seed, epoch, stateful) == drawn.shape[0]
    assert (
        steps_per_epoch(num_characters, 16, 8, stateful)
        == epoch_window_starts(num_characters, 16, 8, 0, 0, stateful).shape[0]
    )


@pytest.mark.parametrize("num_characters", [40, 1_000, 1_041, 4_099])
def test_shuffled_windows_lie_inside_the_split_and_cover_every_window_that_fits(num_characters):
    """Windows read back from the batches themselves: the data is 0, 1, 2, ... so a window's first input is its start."""
    seq_length, batch_size = 16, 8
    data = np.arange(num_characters, dtype=np.int32)
    for epoch in range(6):
        batches = list(epoch_windows(data, seq_length, batch_size, random_seed=7, epoch=epoch))
        inputs = np.concatenate([x for x, _ in batches])
        targets = np.concatenate([y for _, y in batches])
        assert inputs.shape == targets.shape and inputs.shape[1] == seq_length
        starts = inputs[:, 0]
        # Each row is a run of consecutive positions and its targets are the same run shifted by one.
        assert np.array_equal(inputs, starts[:, None] + np.arange(seq_length))
        assert np.array_equal(targets, inputs + 1)
        assert starts.min() >= 0 and targets.max() <= num_characters - 1  # inside the split
        offsets = set(starts % seq_length)
        assert len(offsets) == 1  # one random offset per epoch, windows a stride apart
        offset = offsets.pop()
        # Every start on the epoch's stride whose window of seq_length + 1 characters ends inside the text.
        fitting = [
            start for start in range(offset, num_characters, seq_length) if start + seq_length + 1 <= num_characters
        ]
        if len(fitting) >= batch_size:
            assert len(set(starts)) == len(starts)  # no window twice
            assert set(starts) <= set(fitting)
            assert len(starts) == len(fitting) // batch_size * batch_size  # full batches; the rest wait for next epoch
        else:  # a corpus shorter than one batch of windows: windows repeat to fill a batch
            assert offset == 0 and len(starts) == batch_size and set(starts) == set(fitting)
    assert len(batches) == epoch_batches(num_characters, seq_length, batch_size, 7, 5)


def test_training_gathers_its_batches_in_its_own_thread(tmp_path, small_data, small_config, monkeypatch):
    """Every batch a run trains on is gathered by the thread that trains, one per step. A tf.data
    pipeline's numpy_function gathered them on TensorFlow's threads instead, where they took Python's
    lock from under the training loop: workers of this suite stood still for up to 78 s."""
    import threading

    from shakegen.training import distribute
    from shakegen.training.trainer import train

    threads = []
    windows = distribute.epoch_windows

    def recorded(*args, **kwargs):
        for batch in windows(*args, **kwargs):
            threads.append(threading.get_ident())
            yield batch

    monkeypatch.setattr(distribute, "epoch_windows", recorded)
    result = train(small_config.replace(max_steps=5), tmp_path / "run", small_data)
    assert result.state.global_step == 5
    assert threads == [threading.get_ident()] * 5
