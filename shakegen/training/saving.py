"""When training writes last.npz: after each validation, on a timer, and when it is interrupted.

last.npz holds the weights, the optimizer (its moments and step) and the run's state, and a
stateful run's carried states. A timed checkpoint (--checkpoint-minutes) is first a snapshot
in memory: it is written only once the next step's loss passes the divergence guard, so the
weights it holds are vouched for. Only the chief writes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shakegen.runs import archive, checkpoint
from shakegen.training import events


class CheckpointPolicy:
    """Loads and saves the run's last.npz during training, and decides when a timed checkpoint is due."""

    def __init__(self, run_dir: Path, model, optimizer, carried: list, chief: bool, minutes: float | None, emit):
        self.run_dir, self.model, self.optimizer, self.carried = run_dir, model, optimizer, carried
        self.chief, self.minutes, self.emit = chief, minutes, emit
        self._pending = None  # a timed checkpoint waiting for the next step to vouch for it
        self._last_save = time.monotonic()

    def load_last(self) -> dict:
        """Load last.npz into the model, the optimizer and the carried states; return the saved state."""
        last = checkpoint.checkpoint_path(self.run_dir, "last")
        saved = checkpoint.load(last, self.model, self.optimizer)
        for variable, value in zip(self.carried, checkpoint.read_carried(last), strict=False):
            variable.assign(value)
        return saved

    def snapshot_if_due(self, state) -> None:
        """Keep a timed checkpoint in memory; it is written once the next step's loss passes the guard."""
        if self.chief and self.minutes and time.monotonic() - self._last_save >= self.minutes * 60:
            self._pending = (
                state.global_step,
                archive.snapshot(self.model, state.to_json(), self.optimizer, self._carried_arrays()),
            )
            self._last_save = time.monotonic()

    def write_pending(self) -> None:
        """Write the timed checkpoint kept in memory, if any (a step's loss has just vouched for it)."""
        if self._pending is not None:
            (step, arrays), self._pending = self._pending, None
            path = checkpoint.checkpoint_path(self.run_dir, "last")
            archive.write_snapshot(path, arrays)
            self.emit(events.Checkpointed(step, str(path)))

    def drop_pending(self) -> None:
        """Forget the timed checkpoint kept in memory (a validation's checkpoint supersedes it)."""
        self._pending = None

    def save_last(self, state) -> None:
        if self.chief:
            path = checkpoint.checkpoint_path(self.run_dir, "last")
            checkpoint.save(path, self.model, state.to_json(), self.optimizer, self._carried_arrays())
            self._last_save = time.monotonic()

    def save_interrupted(self, state, characters_per_step: int) -> None:
        """Save where training stands, unless the weights are no longer finite."""
        steps = int(self.optimizer.iterations.numpy())
        if steps != state.global_step:  # the step ran before Python saw the signal
            state.characters_seen += (steps - state.global_step) * characters_per_step
            state.global_step = steps
        if all(np.isfinite(variable.numpy()).all() for variable in self.model.trainable_variables):
            self.save_last(state)

    def _carried_arrays(self) -> list:
        return [variable.numpy() for variable in self.carried]
