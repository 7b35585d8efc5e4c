"""Training windows: their layout per epoch, and the batches gathered from it (plain NumPy).

Each epoch cuts the training split into windows of ``seq_length + 1`` characters (stride
``seq_length``, so every character is a target once) from a fresh random offset, shuffles
them and batches them. The order is a pure function of (random seed, epoch), which is what
makes an interrupted run resume onto exactly the batches it would have seen.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def epoch_window_starts(
    num_characters: int, seq_length: int, batch_size: int, random_seed: int, epoch: int, stateful: bool = False
) -> np.ndarray:
    """Window start positions for one epoch, shaped (batches, batch_size).

    Shuffled windows by default. With ``stateful`` (truncated backpropagation through time,
    as char-rnn trains), the text is cut into ``batch_size`` contiguous streams and batch
    row b reads stream b window after window, so the GRU state at the end of one batch is
    the right initial state for the next: ``starts[t + 1, b] == starts[t, b] + seq_length``.
    """
    rng = np.random.default_rng([random_seed, epoch])
    offset = int(rng.integers(0, seq_length))  # the first draw: see _epoch_offset
    if stateful:
        offset, stream_length = _stream_layout(num_characters, seq_length, batch_size, offset)
        steps = max(1, (stream_length - 1) // seq_length)
        # (steps, batch): stream b starts at offset + b * stream_length, windows follow each other.
        return offset + np.arange(batch_size)[None, :] * stream_length + seq_length * np.arange(steps)[:, None]
    offset, count = _shuffled_layout(num_characters, seq_length, batch_size, offset)
    starts = offset + seq_length * rng.permutation(count)
    batches = len(starts) // batch_size
    if batches == 0:
        # Fewer windows than one batch: repeat windows so a tiny corpus still trains.
        starts = np.resize(starts, batch_size)
        batches = 1
    return starts[: batches * batch_size].reshape(batches, batch_size)


def epoch_batches(
    num_characters: int, seq_length: int, batch_size: int, random_seed: int, epoch: int, stateful: bool = False
) -> int:
    """``len(epoch_window_starts(...))``, without drawing or holding the epoch's windows."""
    offset = _epoch_offset(random_seed, epoch, seq_length)
    if stateful:
        _, stream_length = _stream_layout(num_characters, seq_length, batch_size, offset)
        return max(1, (stream_length - 1) // seq_length)
    _, count = _shuffled_layout(num_characters, seq_length, batch_size, offset)
    return max(1, count // batch_size)


def steps_per_epoch(num_characters: int, seq_length: int, batch_size: int, stateful: bool = False) -> int:
    """Batches per epoch (the same for every epoch's random offset, up to one)."""
    return epoch_batches(num_characters, seq_length, batch_size, 0, 0, stateful)


def _epoch_offset(random_seed: int, epoch: int, seq_length: int) -> int:
    return int(np.random.default_rng([random_seed, epoch]).integers(0, seq_length))


def _shuffled_layout(num_characters: int, seq_length: int, batch_size: int, offset: int) -> tuple[int, int]:
    """(offset, number of windows) of a shuffled epoch."""
    count = (num_characters - offset - 1) // seq_length
    if count < batch_size:  # small corpora: fall back to offset 0 and wrap nothing
        offset = 0
        count = (num_characters - 1) // seq_length
    return offset, count


def _stream_layout(num_characters: int, seq_length: int, batch_size: int, offset: int) -> tuple[int, int]:
    """(offset, stream length) of a stateful epoch."""
    stream_length = (num_characters - offset) // batch_size
    if (stream_length - 1) // seq_length < 1:  # too short for the epoch's offset: start at 0
        offset, stream_length = 0, num_characters // batch_size
    return offset, stream_length


def epoch_windows(
    data: np.ndarray,
    seq_length: int,
    batch_size: int,
    random_seed: int,
    epoch: int,
    skip_batches: int = 0,
    stateful: bool = False,
    id_table: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) int32 arrays of shape (batch_size, seq_length), one per batch left in the epoch.

    Each batch is gathered when it is asked for, in the calling thread: ``data`` may be a memory
    map and memory stays flat. ``id_table`` maps ``data``'s ids to the model's (a fine-tuned
    run's vocabulary is not the prepared one's), window by window too. No tf.data pipeline:
    its ``numpy_function`` ran this gather on TensorFlow's threads, which took Python's lock
    from under the training loop (stalls of many seconds), for a gather that costs microseconds.
    """
    starts = epoch_window_starts(len(data), seq_length, batch_size, random_seed, epoch, stateful)[skip_batches:]
    offsets = np.arange(seq_length + 1)
    for batch_starts in starts:
        windows = data[batch_starts[:, None] + offsets]  # (batch, seq + 1)
        windows = np.asarray(windows if id_table is None else id_table[windows], dtype=np.int32)
        yield windows[:, :-1], windows[:, 1:]
