"""The epoch a run is in: its global batches, opened where the run stands, and how many steps it has.

An epoch's window order is a pure function of (random seed, epoch), so a run resumed inside
an epoch skips the batches it already took and goes on with the same ones. A stateful run's
carried states start each epoch from zeros.
"""

from __future__ import annotations

import numpy as np

from shakegen.config import TrainConfig
from shakegen.training import distribute
from shakegen.training.dataset import epoch_batches


class EpochFeed:
    """The current epoch's batches for one run (``train_ids``: the prepared training split)."""

    def __init__(self, strategy, train_ids, config: TrainConfig, id_table, carried: list):
        self.strategy, self.train_ids, self.config = strategy, train_ids, config
        self.id_table, self.carried = id_table, carried
        self.steps = 0  # steps in the current epoch, once opened
        self._batches = None  # iterator over the rest of the current epoch

    def open(self, state) -> None:
        """Open the epoch ``state`` (a ``TrainState``) is in, at its next step, unless it is open."""
        if self._batches is not None:
            return

        skip, config, epoch = state.global_step - state.epoch_start_step, self.config, state.epoch
        if skip == 0:
            for variable in self.carried:  # each epoch's streams start from nothing
                variable.assign(np.zeros(variable.shape, np.float32))
        self.steps = epoch_batches(
            len(self.train_ids), config.seq_length, config.batch_size, config.random_seed, epoch, config.stateful
        )
        self._batches = iter(
            distribute.distributed_epoch(self.strategy, self.train_ids, config, epoch, skip, self.id_table)
        )

    def next_batch(self):
        return next(self._batches)

    def finished(self, state) -> bool:
        return state.global_step - state.epoch_start_step >= self.steps

    def end(self) -> None:
        """The epoch ended: the next ``open`` opens the next one."""
        self._batches = None
