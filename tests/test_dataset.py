"""The epoch layout: counting an epoch's batches without drawing its windows."""

import pytest

from shakegen.dataset import epoch_batches, epoch_window_starts, steps_per_epoch


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
